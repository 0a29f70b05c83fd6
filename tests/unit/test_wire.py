"""dumps_exact: Decimals become exact JSON numbers, never floats."""
import json
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from plugins.wire import dumps_exact


def test_decimals_are_numbers_with_their_digits():
    body = dumps_exact({"sum": {"amount": Decimal("100.10"), "currency": "643"}, "n": [Decimal("0.035")]})
    assert body == b'{"sum": {"amount": 100.10, "currency": "643"}, "n": [0.035]}'


def test_non_finite_is_refused():
    with pytest.raises(ValueError):
        dumps_exact({"amount": Decimal("NaN")})


@given(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=6))
def test_round_trip_is_exact(amount):
    assert json.loads(dumps_exact({"a": amount}), parse_float=Decimal)["a"] == amount
