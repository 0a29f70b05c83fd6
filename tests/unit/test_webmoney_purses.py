"""WebMoney purse validation: a letter and 12 digits, the payout currency's purse type
(P for RUB; R retired), normalization, and the purse-type mapping in settings."""
from __future__ import annotations

import pytest

from payment_providers.webmoney.client import PURSE_RE
from payment_providers.webmoney.provider import WebMoneyProvider
from plugins import ErrorCode, InvalidAccount


@pytest.fixture(scope="module")
def provider() -> WebMoneyProvider:
    return WebMoneyProvider()


def _reason(provider: WebMoneyProvider, raw: str) -> str:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account(raw)
    assert caught.value.code is ErrorCode.INVALID_ACCOUNT
    text = str(caught.value.message)
    assert text and "%(" not in text
    return caught.value.reason_code


@pytest.mark.parametrize(("raw", "normalized"), [
    ("P123456789012", "P123456789012"),
    ("p123456789012", "P123456789012"),
    (" P123456789012 ", "P123456789012"),
    ("P 1234 5678 9012", "P123456789012"),
    ("P-1234-5678-9012", "P123456789012"),
    ("P1234\t5678\n9012", "P123456789012"),
    ("WMP123456789012", "P123456789012"),
    ("wmp123456789012", "P123456789012"),
    ("P000000000000", "P000000000000"),
    ("P999999999999", "P999999999999"),
    ("P100000000001", "P100000000001"),
])
def test_valid_purses(provider: WebMoneyProvider, raw: str, normalized: str) -> None:
    assert provider.validate_account(raw) == normalized
    assert provider.validate_account(normalized) == normalized


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    (" - ", "empty"),
    ("123456789012", "wmid"),
    ("1234 5678 9012", "wmid"),
    ("P12345678901", "format"),
    ("P1234567890123", "format"),
    ("P12345678901A", "format"),
    ("12345678901P", "format"),
    ("PP2345678901", "format"),
    ("PP23456789012", "format"),
    ("P12345678901٣", "format"),      # Arabic-Indic digit
    ("Р123456789012", "format"),       # Cyrillic Р
    ("WM123456789012", "format"),
    ("1P23456789012", "format"),
    ("P123456.89012", "format"),
    ("R123456789012", "retired"),
    ("r123456789012", "retired"),
    ("WMR123456789012", "retired"),
    ("Z123456789012", "currency"),
    ("E123456789012", "currency"),
    ("U123456789012", "currency"),
    ("B123456789012", "currency"),
    ("C123456789012", "currency"),
    ("D123456789012", "currency"),
    ("X123456789012", "currency"),
])
def test_invalid_purses(provider: WebMoneyProvider, raw: str, reason: str) -> None:
    assert _reason(provider, raw) == reason


def test_messages_name_the_purse_type(provider: WebMoneyProvider) -> None:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account("Z123456789012")
    assert "P" in str(caught.value.message) and "RUB" in str(caught.value.message)
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account("R123456789012")
    assert "R" in str(caught.value.message) and "P" in str(caught.value.message)


def test_purse_regex() -> None:
    assert PURSE_RE.match("Z238479008342")  # the reference's example
    assert not PURSE_RE.match("z238479008342")
    assert not PURSE_RE.match("Z238479008342\n")


def test_purse_type_mapping_is_a_setting() -> None:
    """Another type can be configured (e.g. if WebMoney renames again); our purse must match."""
    custom = WebMoneyProvider({"purse_types": {"RUB": "Z"}, "credentials": {
        "wmid": "100000000001", "purse": "Z100000000001", "test_key": "k"}})
    assert custom.validate_account("z123456789012") == "Z123456789012"
    assert _reason(custom, "P123456789012") == "currency"
    assert _reason(custom, "R123456789012") == "currency"  # R only retires into P
    with pytest.raises(ValueError):
        WebMoneyProvider({"purse_types": {"USD": "Z"}})
    with pytest.raises(ValueError):
        WebMoneyProvider({"purse_types": {"RUB": "PP"}})
