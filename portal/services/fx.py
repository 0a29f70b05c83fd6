"""Exchange rates in the database: CBR imports, Finance corrections, the day's rate.

Cashback is kept in USD; customers see RUB at the day's rate (the latest rate on or
before the day), and RUB payouts convert at it.  Rates are stored to 6 decimal places.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.errors import Invalid, NotFound
from portal.i18n import _l
from portal.models import FxRate
from portal.services import audit
from portal.services.audit import Actor
from portal.services.money import LEDGER_QUANTUM, convert, payable
from portal.services.rates import parse_cbr_daily

#: Currencies kept from a CBR file (RUB per one unit).
KEPT = ("USD", "EUR")


class NoRate(NotFound):
    code = "no_rate"
    default_message = _l("There is no exchange rate for that day yet.")


@dataclass(frozen=True)
class ImportResult:
    day: dt.date
    created: int
    updated: int
    unchanged: int


def _q(rate: Decimal) -> Decimal:
    return rate.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN)


def import_cbr(session: Session, data: bytes, actor: Actor) -> ImportResult:
    """Store the USD and EUR rates of a CBR daily file (re-importing it changes nothing).

    A rate Finance corrected by hand (``source = manual``) is not overwritten.
    """
    daily = parse_cbr_daily(data)
    created = updated = unchanged = 0
    for code in KEPT:
        if code not in daily.rates:
            continue
        rate = _q(daily.rates[code])
        row = session.execute(sa.select(FxRate).where(
            FxRate.day == daily.date, FxRate.base == code, FxRate.quote == "RUB")).scalar_one_or_none()
        if row is None:
            session.add(FxRate(day=daily.date, base=code, quote="RUB", rate=rate, source="cbr"))
            created += 1
        elif row.source == "manual" or row.rate == rate:
            unchanged += 1
        else:
            before = {"rate": row.rate}
            row.rate = rate
            audit.record(session, actor, "fx.rate.reimported", "fx_rate", row.id, before=before,
                         after={"rate": rate})
            updated += 1
    if created or updated:
        audit.record(session, actor, "fx.rates.imported", "fx_day", daily.date.isoformat(),
                     after={"created": created, "updated": updated})
    session.flush()
    return ImportResult(daily.date, created, updated, unchanged)


def correct_rate(session: Session, day: dt.date, rate: Decimal, actor: Actor, reason: str,
                 base: str = "USD") -> FxRate:
    """Finance sets a day's rate by hand; audited with the reason."""
    if not reason or not reason.strip():
        raise Invalid(_l("Say why the rate is corrected."), code="reason_required")
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0 or rate > 100000:
        raise Invalid(_l("The rate must be a positive number."), code="bad_rate")
    rate = _q(rate)
    row = session.execute(sa.select(FxRate).where(
        FxRate.day == day, FxRate.base == base, FxRate.quote == "RUB").with_for_update()).scalar_one_or_none()
    before = None if row is None else {"rate": row.rate, "source": row.source}
    if row is None:
        row = FxRate(day=day, base=base, quote="RUB", rate=rate, source="manual")
        session.add(row)
        session.flush()
    else:
        row.rate, row.source = rate, "manual"
    audit.record(session, actor, "fx.rate.corrected", "fx_rate", row.id, reason=reason.strip(),
                 before=before, after={"day": day, "base": base, "rate": rate, "source": "manual"})
    return row


def rate_on(session: Session, day: dt.date, base: str = "USD") -> Decimal:
    """RUB per one ``base`` unit on ``day``: the latest known rate on or before it."""
    rate = session.execute(
        sa.select(FxRate.rate).where(FxRate.base == base, FxRate.quote == "RUB", FxRate.day <= day)
        .order_by(FxRate.day.desc()).limit(1)
    ).scalar_one_or_none()
    if rate is None:
        raise NoRate(day=day.isoformat(), base=base)
    return rate


def usd_to_rub(session: Session, amount_usd: Decimal, day: dt.date) -> Decimal:
    return convert(amount_usd, rate_on(session, day))


def rub_to_usd(session: Session, amount_rub: Decimal, day: dt.date) -> Decimal:
    return (amount_rub / rate_on(session, day)).quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class MinimumWithdrawal:
    usd: Decimal
    rub: Decimal | None  # None when no rate is known yet
    rate: Decimal | None


def minimum_withdrawal(session: Session, minimum_usd: Decimal, day: dt.date) -> MinimumWithdrawal:
    """The minimum withdrawal in USD and, at the day's rate, in RUB (rounded up to a kopeck)."""
    try:
        rate = rate_on(session, day)
    except NoRate:
        return MinimumWithdrawal(minimum_usd, None, None)
    rub = convert(minimum_usd, rate)
    shown = payable(rub, "RUB")
    if shown < rub:
        shown += Decimal("0.01")
    return MinimumWithdrawal(minimum_usd, shown, rate)
