"""Column types shared by the models.

Money is stored as a BIGINT count of micro-units (1/1,000,000 of the currency unit) on
every database, SQLite included, so sums in SQL are exact integer arithmetic; Python
code only ever sees ``Decimal``.  A value with more than six decimal places is refused
instead of being rounded silently: rounding happens once, in ``portal.services.money``.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

MICROS = Decimal(1_000_000)

#: Primary keys that grow fast: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def from_micros(value: int) -> Decimal:
    """Integer micro-units to a 6-place Decimal."""
    return (Decimal(int(value)) / MICROS).quantize(Decimal("0.000001"))


def to_micros(value: Decimal) -> int:
    """A Decimal with at most 6 places to integer micro-units (refuses anything else)."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal or int, never float")
    micros = Decimal(value) * MICROS
    if micros != micros.to_integral_value():
        raise ValueError(f"{value} has more than 6 decimal places")
    return int(micros)


class Money(TypeDecorator):
    """A Decimal amount stored as integer micro-units."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else to_micros(value)

    def process_result_value(self, value, dialect):
        return None if value is None else from_micros(value)


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC (stored as such on PostgreSQL)."""
    return dt.datetime.now(dt.timezone.utc)


class UtcDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no zone: add it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


def render_item(type_, obj, autogen_context):
    """Alembic autogenerate hook: write our column types as plain SQLAlchemy types.

    Migrations then never import project code, and stay valid when the code changes.
    """
    if type_ == "type" and isinstance(obj, Money):
        return "sa.BigInteger()"
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


#: Rates and percentages (7.00 %, 78.1234 RUB per USD) use the same exact 6-place storage.
Exact = Money
