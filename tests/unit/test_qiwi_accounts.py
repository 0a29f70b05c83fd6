"""QIWI wallet validation: a Russian mobile number, normalized to E.164 ``+79XXXXXXXXX`` by the
shared phone normalizer."""
from __future__ import annotations

import pytest

from payment_providers.phones.operators import normalize_mobile
from payment_providers.qiwi.provider import QiwiProvider
from plugins import ErrorCode, InvalidAccount


@pytest.fixture(scope="module")
def provider() -> QiwiProvider:
    return QiwiProvider()


VALID = [
    ("+79161234567", "+79161234567"),
    ("+7 (916) 123-45-67", "+79161234567"),
    ("+7 916 123 45 67", "+79161234567"),
    ("8 916 123 45 67", "+79161234567"),
    ("8 (916) 123-45-67", "+79161234567"),
    ("89161234567", "+79161234567"),
    ("79161234567", "+79161234567"),
    ("9161234567", "+79161234567"),
    ("916 123 45 67", "+79161234567"),
    ("(916) 123-45-67", "+79161234567"),
    ("916.123.45.67", "+79161234567"),
    ("  +7-926-765-43-21  ", "+79267654321"),
    ("+79031234567", "+79031234567"),
    ("+7 999 000-02-20", "+79990000220"),
    ("8-999-000-00-00", "+79990000000"),
]

INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    ("+7 916 abc 45 67", "characters"),
    ("+7 916 123 45 67 доб. 1", "characters"),
    ("qiwi@example.com", "characters"),
    ("12345", "format"),
    ("916123456", "format"),
    ("+7916123456", "format"),
    ("+791612345678", "format"),
    ("891612345678", "format"),
    ("+380501234567", "country"),
    ("+1 202 555 0143", "country"),
    ("+77011234567", "country"),
    ("+74951234567", "not_mobile"),
    ("84951234567", "not_mobile"),
]


@pytest.mark.parametrize(("raw", "normalized"), VALID, ids=[v[0] for v in VALID])
def test_valid_wallets_are_normalized(provider: QiwiProvider, raw: str, normalized: str) -> None:
    assert provider.validate_account(raw) == normalized
    assert provider.validate_account(normalized) == normalized


@pytest.mark.parametrize(("raw", "reason"), INVALID, ids=[v[0] or "blank" for v in INVALID])
def test_invalid_wallets_are_rejected(provider: QiwiProvider, raw: str, reason: str) -> None:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account(raw)
    assert caught.value.reason_code == reason
    assert caught.value.code is ErrorCode.INVALID_ACCOUNT
    text = str(caught.value.message)
    assert text and "%(" not in text


@pytest.mark.parametrize("raw", [v[0] for v in VALID] + [v[0] for v in INVALID])
def test_same_rules_as_the_phone_providers(provider: QiwiProvider, raw: str) -> None:
    """QIWI reuses the shared normalizer: identical answers, identical reason codes."""
    try:
        expected: object = normalize_mobile(raw)
    except InvalidAccount as exc:
        expected = exc.reason_code
    try:
        got: object = provider.validate_account(raw)
    except InvalidAccount as exc:
        got = exc.reason_code
    assert got == expected  # the messages may differ (wallet wording), the reasons do not


@pytest.mark.parametrize(("raw", "word"), [("", "QIWI"), ("12345", "QIWI"),
                                           ("+77011234567", "QIWI"),
                                           ("+74951234567", "mobile")])
def test_messages_speak_of_wallets(provider: QiwiProvider, raw: str, word: str) -> None:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account(raw)
    assert word in str(caught.value.message)
    assert "topped up" not in str(caught.value.message)


def test_none_is_empty(provider: QiwiProvider) -> None:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account(None)  # type: ignore[arg-type]
    assert caught.value.reason_code == "empty"


def test_submit_refuses_an_unnormalized_account(provider: QiwiProvider) -> None:
    from decimal import Decimal

    from plugins import PayoutRequest

    request = PayoutRequest("k-1", Decimal("10.00"), "RUB", "8 916 123 45 67")
    with pytest.raises(ValueError):
        provider.submit(request, "k-1")
    bad = PayoutRequest("k-2", Decimal("10.00"), "RUB", "+74951234567")
    result = provider.submit(bad, "k-2")
    assert result.error is ErrorCode.INVALID_ACCOUNT
