"""Numbers, money and dates in the reader's locale (Babel), for templates and messages.

One way to show a figure: ``money(amount, "RUB")`` → ``1 234,50 ₽`` for Russian readers,
``RUB 1,234.50``/``$0.20`` for English ones.  Amounts are rounded *down* to the currency's
minor unit first (``customer_views.display``: we never show more than the customer can
withdraw); the exact figure stays in the ledger and in the JSON API's ``exact`` field.
``exact=True`` shows what the ledger holds (up to its 6 decimals) for staff pages.

Installed as Jinja globals *and* filters by :func:`init_app`::

    {{ money(balance, 'USD') }}   {{ balance|money('RUB') }}
    {{ when(order.paid_at) }}     {{ order.paid_at|when }}       {{ day|date }}
    {{ number(count) }}           {{ rate|percent }}            {{ amount(x) }} {{ currency }}

FAB list columns use the same helpers through :func:`list_formatters`.

Outside a request (CLI, workers, plain unit tests) the default locale (``BABEL_DEFAULT_LOCALE``,
``ru`` when there is no app at all) and UTC are used.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import Flask

from portal.services.money import LEDGER_QUANTUM, MoneyError, currency as currency_info

__all__ = ["money", "amount", "when", "date", "number", "percent", "list_formatters", "init_app", "EMPTY"]

#: What an absent figure shows as.
EMPTY = "—"
#: Decimals the ledger keeps (``money.LEDGER_QUANTUM``): the most ``exact=True`` shows.
LEDGER_DIGITS = -LEDGER_QUANTUM.as_tuple().exponent


def _locale() -> str:
    """The reader's locale code: Flask-Babel's choice in a request, else the app's default."""
    try:
        from flask_babel import get_locale

        locale = get_locale()
    except Exception:  # no app context at all: tests of plain functions
        locale = None
    return str(locale) if locale else "ru"


def _timezone() -> dt.tzinfo:
    try:
        from flask_babel import get_timezone

        return get_timezone()
    except Exception:  # no app context: UTC, as BABEL_DEFAULT_TIMEZONE says by default
        return dt.timezone.utc


def _currency_pattern(locale: Locale, min_digits: int, max_digits: int) -> str:
    """The locale's currency pattern with ``min_digits``–``max_digits`` decimals."""
    pattern = locale.currency_formats["standard"].pattern.split(";")[0]
    fraction = "0" * min_digits + "#" * (max_digits - min_digits)
    return re.sub(r"0(\.0+)?(?!.*0)", "0" + ("." + fraction if fraction else ""), pattern, count=1)


def money(amount: Decimal | int | str | None, currency: str = "USD", *, exact: bool = False) -> str:
    """``amount`` in ``currency``, in the reader's locale; ``None`` → an em dash.

    Rounded down to the currency's minor unit (``$0.035`` → ``$0.03``).  ``exact=True``
    rounds nothing and shows the ledger digits (at least the minor unit, at most 6:
    ``$0.035``, ``$1.00``) — for staff pages that must show what the ledger holds.
    """
    if amount is None or amount == "":
        return EMPTY
    value = _decimal(amount)
    if value is None or not currency:  # text a report sent as is, or no currency to show
        return str(amount) if value is None else _plain(value)
    minor = _minor_digits(currency)
    locale = Locale.parse(_locale())
    if exact:
        pattern = _currency_pattern(locale, minor, max(minor, LEDGER_DIGITS))
    else:
        value = value.quantize(Decimal(1).scaleb(-minor), rounding=ROUND_DOWN)  # as money.payable
        pattern = _currency_pattern(locale, minor, minor)
    text = babel_numbers.format_currency(value, currency, format=pattern, locale=locale,
                                         currency_digits=False, decimal_quantization=not exact)
    symbol = babel_numbers.get_currency_symbol(currency, locale)
    if symbol.isalpha():  # "RUB1,234.50" → "RUB 1,234.50"; "1 234,50 RUB" is already spaced
        text = re.sub(re.escape(symbol) + r"(?=[\d\-−])", symbol + "\xa0", text)
    return text


def _decimal(value: object) -> Decimal | None:
    """``value`` as a Decimal, or None for text that is no number (a report's raw field)."""
    try:
        result = Decimal(value) if not isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return result if result.is_finite() else None


def _minor_digits(code: str) -> int:
    """Our currencies' minor unit (``money.CURRENCIES``); Babel's for one the network reports."""
    try:
        return currency_info(code).minor_digits
    except MoneyError:
        return babel_numbers.get_currency_precision(code)


def number(value: Decimal | int | None, places: int | None = None) -> str:
    """A plain number with the locale's separators (``1 234,5``); ``places`` fixes decimals."""
    if value is None:
        return EMPTY
    if places is None:
        return babel_numbers.format_decimal(value, locale=_locale(), decimal_quantization=False)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return babel_numbers.format_decimal(Decimal(value), format=pattern, locale=_locale(),
                                        decimal_quantization=True)


def percent(value: Decimal | int | None) -> str:
    """A rate stored in percent (``7.00``) in the locale's way: ``7 %`` (ru), ``7%`` (en);
    up to two decimals (``7,5 %``)."""
    if value is None:
        return EMPTY
    locale = Locale.parse(_locale())
    pattern = locale.percent_formats[None].pattern.split(";")[0].replace("#,##0", "#,##0.##", 1)
    return babel_numbers.format_percent(Decimal(value) / 100, format=pattern, locale=locale)


def _aware(value: dt.datetime) -> dt.datetime:
    """Naive timestamps in the database are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def when(value: dt.datetime | None, fmt: str = "short") -> str:
    """A timestamp in the reader's locale and time zone (UTC unless configured)."""
    if value is None:
        return EMPTY
    if not isinstance(value, dt.datetime):
        return date(value)
    return babel_dates.format_datetime(_aware(value), fmt, tzinfo=_timezone(), locale=_locale())


def date(value: dt.date | dt.datetime | str | None, fmt: str = "medium") -> str:
    """A day in the reader's locale (``25 нояб. 2026 г.``, ``Nov 25, 2026``); ISO text is parsed."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = _aware(value).astimezone(_timezone()).date()
    return babel_dates.format_date(value, fmt, locale=_locale())


def amount(value: Decimal | int | None) -> str:
    """An amount whose currency is shown beside it (a row's own currency column): the
    locale's separators, the ledger's digits, at least two decimals (``1 234,50``, ``0,035``)."""
    number_ = None if value is None else _decimal(value)
    if number_ is None:
        return EMPTY if value is None else str(value)
    return _plain(number_)


def _plain(value: Decimal) -> str:
    return babel_numbers.format_decimal(value, format="#,##0.00" + "#" * (LEDGER_DIGITS - 2), locale=_locale())


def list_formatters(*, money_columns: Iterable[str] = (), currency: str | dict[str, str] = "USD",
                    exact: bool = True, amount_columns: Iterable[str] = (), time_columns: Iterable[str] = (),
                    date_columns: Iterable[str] = (), number_columns: Iterable[str] = (),
                    percent_columns: Iterable[str] = ()) -> dict[str, Callable[[object], str]]:
    """``formatters_columns`` for a Flask-AppBuilder view: the same helpers as the templates.

    ``money_columns`` are in one ``currency`` (a code, or ``{column: code}``); staff lists show
    the exact ledger figure by default (``exact=True``).  ``amount_columns`` are amounts whose
    currency is another column of the row (:func:`amount`).  Times, days, numbers and
    percents use :func:`when`, :func:`date`, :func:`number` and :func:`percent`.
    """
    def money_of(code: str) -> Callable[[object], str]:
        return lambda value: money(value, code, exact=exact)

    codes = currency if isinstance(currency, dict) else {}
    result: dict[str, Callable[[object], str]] = {}
    for column in money_columns:
        result[column] = money_of(codes.get(column, currency if isinstance(currency, str) else "USD"))
    for column in amount_columns:
        result[column] = amount
    for column in time_columns:
        result[column] = when
    for column in date_columns:
        result[column] = date
    for column in number_columns:
        result[column] = number
    for column in percent_columns:
        result[column] = percent
    return result


def init_app(app: Flask) -> None:
    """Make the helpers Jinja globals and filters of every template."""
    helpers = {"money": money, "amount": amount, "when": when, "date": date, "number": number, "percent": percent}
    app.jinja_env.globals.update(helpers)
    app.jinja_env.filters.update(helpers)
