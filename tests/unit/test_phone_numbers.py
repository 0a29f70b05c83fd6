"""Normalization and validation of Russian mobile numbers (E.164 ``+79XXXXXXXXX``)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_providers.phones.operators import (
    OPERATORS,
    allocated_operator,
    dst_account,
    normalize_mobile,
)
from payment_providers.phones.provider import MtsProvider
from plugins import ErrorCode, InvalidAccount

VALID = [
    ("+7 (916) 123-45-67", "+79161234567"),
    ("+7 916 123 45 67", "+79161234567"),
    ("+79161234567", "+79161234567"),
    ("8 916 123 45 67", "+79161234567"),
    ("8 (916) 123-45-67", "+79161234567"),
    ("89161234567", "+79161234567"),
    ("79161234567", "+79161234567"),
    ("7 916 123-45-67", "+79161234567"),
    ("9161234567", "+79161234567"),
    ("916 123 45 67", "+79161234567"),
    ("(916) 123-45-67", "+79161234567"),
    ("916.123.45.67", "+79161234567"),
    ("  +7-926-765-43-21  ", "+79267654321"),
    ("8-903-555-12-34", "+79035551234"),
    ("+7(999)0000042", "+79990000042"),
]

INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    ("+7 916 ABC 45 67", "characters"),
    ("tel:+79161234567", "characters"),
    ("+7 916 123 45 67 доб. 5", "characters"),
    ("916 123 45 6", "format"),
    ("9161234567890", "format"),
    ("123", "format"),
    ("+7 916 123 45 678", "format"),
    ("+7 916 123 45 6", "format"),
    ("69161234567", "format"),
    ("+7 (495) 123-45-67", "not_mobile"),
    ("8 812 123 45 67", "not_mobile"),
    ("4951234567", "not_mobile"),
    ("+7 701 123 45 67", "country"),
    ("+380 50 123 45 67", "country"),
    ("+1 202 555 0100", "country"),
    ("+8 916 123 45 67", "country"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_numbers_normalize(raw: str, expected: str) -> None:
    assert normalize_mobile(raw) == expected
    assert normalize_mobile(expected) == expected


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_numbers_are_refused_readably(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAccount) as caught:
        normalize_mobile(raw)
    assert caught.value.reason_code == reason
    assert caught.value.code is ErrorCode.INVALID_ACCOUNT
    text = str(caught.value.message)
    assert text and "%(" not in text


def test_enough_cases() -> None:
    assert len(VALID) + len(INVALID) >= 20


def test_provider_uses_the_same_rules() -> None:
    provider = MtsProvider()
    assert provider.validate_account("8 916 123 45 67") == "+79161234567"
    with pytest.raises(InvalidAccount):
        provider.validate_account("+7 495 123 45 67")


def test_dst_account_and_allocation_hint() -> None:
    assert dst_account("+79161234567") == "79161234567"
    with pytest.raises(ValueError):
        dst_account("79161234567")
    assert allocated_operator("+79031234567") == "beeline"  # a hint only: numbers are portable
    assert set(OPERATORS) == {"mts", "megafon", "beeline"}


_FORMATS = [
    lambda d: f"+7{d}",
    lambda d: f"8{d}",
    lambda d: f"7{d}",
    lambda d: d,
    lambda d: f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
    lambda d: f"8 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
    lambda d: f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
    lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}",
    lambda d: f" +7 {d} ",
]


@given(rest=st.text(alphabet="0123456789", min_size=9, max_size=9),
       fmt=st.sampled_from(range(len(_FORMATS))))
def test_any_accepted_format_gives_the_same_e164(rest: str, fmt: int) -> None:
    digits = "9" + rest
    assert normalize_mobile(_FORMATS[fmt](digits)) == f"+7{digits}"
