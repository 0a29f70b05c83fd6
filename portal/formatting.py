"""Numbers, money and dates in the reader's locale (Babel), for templates and messages.

One way to show a figure: ``money(amount, "RUB")`` → ``1 234,50 ₽`` for Russian readers,
``RUB 1,234.50``/``$0.20`` for English ones.  Amounts are rounded *down* to the currency's
minor unit first (``customer_views.display``: we never show more than the customer can
withdraw); the exact figure stays in the ledger and in the JSON API's ``exact`` field.

Installed as Jinja globals *and* filters by :func:`init_app`::

    {{ money(balance, 'USD') }}   {{ balance|money('RUB') }}
    {{ when(order.paid_at) }}     {{ order.paid_at|when }}       {{ day|date }}
    {{ number(count) }}           {{ rate|percent }}

Outside a request (CLI, workers) the default locale (``BABEL_DEFAULT_LOCALE``) is used.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from babel import numbers as babel_numbers
from flask import Flask
from flask_babel import format_date, format_datetime, get_locale

from portal.services.money import payable

__all__ = ["money", "when", "date", "number", "percent", "init_app"]


def _locale() -> str:
    try:
        locale = get_locale()
    except Exception:  # no app context at all: tests of plain functions
        locale = None
    return str(locale) if locale else "ru"


def money(amount: Decimal | int | None, currency: str = "USD", *, exact: bool = False) -> str:
    """``amount`` in ``currency``, in the reader's locale; ``None`` → an em dash.

    ``exact=True`` shows every ledger digit (6 decimals, no rounding) — for staff pages
    that must show what the ledger holds.
    """
    if amount is None:
        return "—"
    value = Decimal(amount)
    if exact:
        return babel_numbers.format_currency(value, currency, locale=_locale(), currency_digits=False,
                                             format=None, decimal_quantization=False)
    return babel_numbers.format_currency(payable(value, currency), currency, locale=_locale())


def number(value: Decimal | int | None, places: int | None = None) -> str:
    """A plain number with the locale's separators (``1 234,5``); ``places`` fixes decimals."""
    if value is None:
        return "—"
    if places is None:
        return babel_numbers.format_decimal(value, locale=_locale())
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return babel_numbers.format_decimal(Decimal(value), format=pattern, locale=_locale(),
                                        decimal_quantization=True)


def percent(value: Decimal | int | None) -> str:
    """A rate stored in percent (``7.00``) as ``7 %`` / ``7%``."""
    if value is None:
        return "—"
    return babel_numbers.format_percent(Decimal(value) / 100, format="#,##0.##%", locale=_locale())


def when(value: dt.datetime | None, fmt: str = "short") -> str:
    """A timestamp in the reader's locale (UTC, as ``BABEL_DEFAULT_TIMEZONE`` says)."""
    if value is None:
        return "—"
    return format_datetime(value, fmt)


def date(value: dt.date | dt.datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return "—"
    return format_date(value, fmt)


def init_app(app: Flask) -> None:
    """Make the helpers Jinja globals and filters of every template."""
    helpers = {"money": money, "when": when, "date": date, "number": number, "percent": percent}
    app.jinja_env.globals.update(helpers)
    app.jinja_env.filters.update(helpers)
