"""Figures in the reader's locale (``portal.formatting``): money, numbers, percents, dates.

Plain functions (no app: the default locale, Russian, and UTC) and inside requests with
``?_l_=ru`` / ``?_l_=en`` (in-memory SQLite, no services), including the Jinja globals.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from flask import render_template_string

from portal import formatting as fmt
from portal.app import create_app

NBSP = "\xa0"


@pytest.fixture(scope="module")
def app():
    return create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True, "CASHBACK_ENV": "testing"})


@pytest.fixture(params=["ru", "en"])
def locale(request, app):
    """A request in ``ru`` or ``en``; yields the locale code."""
    with app.test_request_context(f"/cabinet/?_l_={request.param}"):
        yield request.param


MONEY = {
    # (amount, currency): {locale: text}
    (D("1234.5"), "RUB"): {"ru": f"1{NBSP}234,50{NBSP}₽", "en": f"RUB{NBSP}1,234.50"},
    (D("1234.5"), "USD"): {"ru": f"1{NBSP}234,50{NBSP}$", "en": "$1,234.50"},
    (D("0.20"), "USD"): {"ru": f"0,20{NBSP}$", "en": "$0.20"},
    (D("0.035"), "USD"): {"ru": f"0,03{NBSP}$", "en": "$0.03"},  # sub-cent: rounded down
    (D("0.999999"), "RUB"): {"ru": f"0,99{NBSP}₽", "en": f"RUB{NBSP}0.99"},  # never up
    (D("1000000"), "USD"): {"ru": f"1{NBSP}000{NBSP}000,00{NBSP}$", "en": "$1,000,000.00"},
    (D("-40"), "USD"): {"ru": f"-40,00{NBSP}$", "en": "-$40.00"},
    (0, "USD"): {"ru": f"0,00{NBSP}$", "en": "$0.00"},
}


@pytest.mark.parametrize(("amount", "currency"), list(MONEY))
def test_money_in_the_readers_locale(locale, amount, currency):
    """Money has the locale's separators and symbol, rounded down to the minor unit."""
    assert fmt.money(amount, currency) == MONEY[(amount, currency)][locale]


@pytest.mark.parametrize(("amount", "expected"), [
    (D("0.035"), {"ru": f"0,035{NBSP}$", "en": "$0.035"}),
    (D("0.035000"), {"ru": f"0,035{NBSP}$", "en": "$0.035"}),
    (D("1"), {"ru": f"1,00{NBSP}$", "en": "$1.00"}),
    (D("1234.123456"), {"ru": f"1{NBSP}234,123456{NBSP}$", "en": "$1,234.123456"}),
])
def test_exact_money_shows_the_ledger_digits(locale, amount, expected):
    """``exact=True`` rounds nothing: every ledger digit, at least the minor unit."""
    assert fmt.money(amount, "USD", exact=True) == expected[locale]


def test_money_of_a_currency_we_do_not_pay_in(locale):
    """A currency the network reports but we do not hold uses Babel's precision."""
    assert fmt.money(D("10.5"), "EUR") == {"ru": f"10,50{NBSP}€", "en": "€10.50"}[locale]
    assert fmt.money(D("100"), "JPY") == {"ru": f"100{NBSP}¥", "en": "¥100"}[locale]


@pytest.mark.parametrize(("value", "places", "expected"), [
    (D("1234.5"), None, {"ru": f"1{NBSP}234,5", "en": "1,234.5"}),
    (12345, None, {"ru": f"12{NBSP}345", "en": "12,345"}),
    (D("79.5"), 4, {"ru": "79,5000", "en": "79.5000"}),
    (D("2.005"), 2, {"ru": "2,00", "en": "2.00"}),  # half-even, like Decimal
    (D("7"), 0, {"ru": "7", "en": "7"}),
])
def test_number(locale, value, places, expected):
    """Numbers take the locale's grouping and decimal mark; ``places`` fixes the decimals."""
    assert fmt.number(value, places) == expected[locale]


@pytest.mark.parametrize(("value", "expected"), [
    (D("1234.5"), {"ru": f"1{NBSP}234,50", "en": "1,234.50"}),
    (D("0.035000"), {"ru": "0,035", "en": "0.035"}),
    (D("-0.123456"), {"ru": "-0,123456", "en": "-0.123456"}),
])
def test_amount_beside_its_currency_keeps_the_ledger_digits(locale, value, expected):
    """``amount`` (a row's currency in its own column): separators, nothing rounded."""
    assert fmt.amount(value) == expected[locale]


@pytest.mark.parametrize(("value", "expected"), [
    (D("7.00"), {"ru": f"7{NBSP}%", "en": "7%"}),
    (D("7.5"), {"ru": f"7,5{NBSP}%", "en": "7.5%"}),
    (D("12.25"), {"ru": f"12,25{NBSP}%", "en": "12.25%"}),
    (100, {"ru": f"100{NBSP}%", "en": "100%"}),
])
def test_percent(locale, value, expected):
    """A rate stored in percent is shown as a percent, not a fraction, in the locale's way."""
    assert fmt.percent(value) == expected[locale]


def test_dates_and_times(locale):
    """Days and timestamps in the locale; naive timestamps are UTC."""
    moment = dt.datetime(2026, 11, 25, 8, 5)
    assert fmt.when(moment) == {"ru": "25.11.2026, 08:05", "en": "11/25/26, 8:05\u202fAM"}[locale]
    assert fmt.when(moment.replace(tzinfo=dt.timezone.utc)) == fmt.when(moment)
    assert fmt.date(dt.date(2026, 11, 25)) == {"ru": "25 нояб. 2026\u202fг.", "en": "Nov 25, 2026"}[locale]
    assert fmt.date("2026-11-25") == fmt.date(dt.date(2026, 11, 25))
    assert fmt.date(moment) == fmt.date(dt.date(2026, 11, 25))
    assert fmt.when(dt.date(2026, 11, 25)) == fmt.date(dt.date(2026, 11, 25))


@pytest.mark.parametrize("helper", [fmt.money, fmt.amount, fmt.number, fmt.percent, fmt.when, fmt.date])
def test_none_is_a_dash(locale, helper):
    """An absent figure is an em dash, never ``None`` or an error."""
    assert helper(None) == "—"


def test_text_that_is_no_number_is_shown_as_is(locale):
    """A report's raw field (``lots``) is shown, not an error page; no currency → a plain amount."""
    assert fmt.money("lots", "USD") == "lots"
    assert fmt.amount("n/a") == "n/a"
    assert fmt.money("90.00", "") == fmt.amount(D("90"))
    assert fmt.money("90.00", "USD") == fmt.money(D("90"), "USD")


def test_outside_a_request_russian_and_utc():
    """Without an app (workers, plain functions) the default locale is Russian."""
    assert fmt.money(D("1234.567"), "RUB") == f"1{NBSP}234,56{NBSP}₽"
    assert fmt.percent(D("7")) == f"7{NBSP}%"
    assert fmt.when(dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)) == "02.01.2026, 03:04"


def test_templates_have_the_helpers_as_globals_and_filters(app):
    """``money(…)`` and ``|money(…)`` render the same in a template, in the request's locale."""
    source = "{{ money(a, 'RUB') }}|{{ a|money('USD') }}|{{ r|percent }}|{{ number(n) }}|{{ d|date }}"
    context = {"a": D("1234.5"), "r": D("7"), "n": 1000, "d": dt.date(2026, 11, 25)}
    with app.test_request_context("/cabinet/?_l_=en"):
        assert render_template_string(source, **context) == f"RUB{NBSP}1,234.50|$1,234.50|7%|1,000|Nov 25, 2026"
    with app.test_request_context("/cabinet/?_l_=ru"):
        assert render_template_string(source, **context) == \
            "1 234,50 ₽|1 234,50 $|7 %|1 000|".replace(" ", NBSP) + "25 нояб. 2026\u202fг."


def test_list_formatters_build_fab_formatters_columns(locale):
    """``list_formatters`` maps columns to the helpers; money columns are exact by default."""
    columns = fmt.list_formatters(money_columns=["amount_usd", "payout_amount"],
                                  currency={"amount_usd": "USD", "payout_amount": "RUB"},
                                  amount_columns=["fee"], time_columns=["created_at"], date_columns=["day"],
                                  percent_columns=["rate"], number_columns=["fx_rate"])
    assert set(columns) == {"amount_usd", "payout_amount", "fee", "created_at", "day", "rate", "fx_rate"}
    assert columns["fee"](D("1234.5")) == fmt.amount(D("1234.5"))
    assert columns["fx_rate"](D("79.5012")) == fmt.number(D("79.5012"))
    assert columns["amount_usd"](D("0.035")) == fmt.money(D("0.035"), "USD", exact=True)
    assert columns["payout_amount"](D("2.5")) == fmt.money(D("2.5"), "RUB", exact=True)
    assert columns["created_at"](dt.datetime(2026, 11, 25, 8, 5)) == fmt.when(dt.datetime(2026, 11, 25, 8, 5))
    assert columns["day"](dt.date(2026, 11, 25)) == fmt.date(dt.date(2026, 11, 25))
    assert columns["rate"](D("7")) == fmt.percent(D("7"))
    rounded = fmt.list_formatters(money_columns=["amount"], exact=False)
    assert rounded["amount"](D("0.035")) == fmt.money(D("0.03"), "USD")
