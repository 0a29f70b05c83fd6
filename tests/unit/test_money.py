"""Money parsing, rounding points and the integer storage type (no services)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from portal.models.types import Money
from portal.services.money import MoneyError, cashback_amount, convert, payable, to_decimal

D = Decimal


def test_fraction_of_a_cent_is_kept():
    """$0.50 at 7 % is $0.035 exactly, not rounded to cents."""
    assert cashback_amount(D("0.50"), D("7.00")) == D("0.035")


def test_cashback_rounds_half_even_once():
    assert cashback_amount(D("0.0000125"), D("100")) == D("0.000012")
    assert cashback_amount(D("0.0000135"), D("100")) == D("0.000014")


def test_payable_rounds_down_to_minor_unit():
    assert payable(D("0.239999"), "USD") == D("0.23")
    assert payable(D("15.999"), "RUB") == D("15.99")


def test_convert_at_rate():
    assert convert(D("0.20"), D("78.1234")) == D("15.62468")


@pytest.mark.parametrize("bad", [0.1, float("nan"), "abc", "", None, "Infinity", True, [1]])
def test_bad_money_is_refused(bad):
    with pytest.raises(MoneyError):
        to_decimal(bad)


@pytest.mark.parametrize("good,expected", [("1.23", D("1.23")), (" 2 ", D(2)), (3, D(3)), (D("0.035"), D("0.035"))])
def test_good_money_parses(good, expected):
    assert to_decimal(good) == expected


def test_storage_type_refuses_float_and_excess_precision():
    money = Money()
    with pytest.raises(TypeError):
        money.process_bind_param(0.1, None)
    with pytest.raises(ValueError):
        money.process_bind_param(D("0.0000001"), None)


@given(st.decimals(min_value=D("-9e12"), max_value=D("9e12"), places=6))
def test_storage_round_trips_exactly(amount):
    """Every 6-place amount survives the trip to integer micro-units and back."""
    money = Money()
    assert money.process_result_value(money.process_bind_param(amount, None), None) == amount


@given(st.decimals(min_value=D(0), max_value=D("100000"), places=2),
       st.decimals(min_value=D(0), max_value=D(100), places=2))
def test_cashback_never_exceeds_the_order(paid, rate):
    assert 0 <= cashback_amount(paid, rate) <= paid
