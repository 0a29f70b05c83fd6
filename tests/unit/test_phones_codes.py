"""Every documented YooKassa mass-payout status and error code maps to our status and taxonomy."""
from __future__ import annotations

import pytest

from payment_providers.phones.client import ERROR_CODES, REVERSAL_CODES, ProtocolError, map_answer
from plugins import ErrorCode, PayoutStatus

FINAL, RETRYABLE = PayoutStatus.FAILED_FINAL, PayoutStatus.FAILED_RETRYABLE

#: code -> (expected error, expected status), per the reference's §5 table.
EXPECTED = {
    10: (ErrorCode.CONFIG, FINAL),
    11: (ErrorCode.CONFIG, RETRYABLE),
    12: (ErrorCode.CONFIG, RETRYABLE),
    14: (ErrorCode.CONFIG, FINAL),
    15: (ErrorCode.CONFIG, FINAL),
    16: (ErrorCode.INVALID_ACCOUNT, FINAL),
    17: (ErrorCode.CONFIG, FINAL),
    18: (ErrorCode.CONFIG, FINAL),
    19: (ErrorCode.CONFIG, FINAL),
    21: (ErrorCode.CONFIG, RETRYABLE),
    26: (ErrorCode.DUPLICATE_CONFLICT, FINAL),
    30: (ErrorCode.PROVIDER_UNAVAILABLE, RETRYABLE),
    31: (ErrorCode.REJECTED_BY_RECIPIENT, FINAL),
    40: (ErrorCode.INVALID_ACCOUNT, FINAL),
    41: (ErrorCode.ACCOUNT_BLOCKED, FINAL),
    42: (ErrorCode.INVALID_ACCOUNT, FINAL),
    43: (ErrorCode.RECIPIENT_LIMIT, FINAL),
    44: (ErrorCode.SENDER_LIMIT, RETRYABLE),
    45: (ErrorCode.INSUFFICIENT_FUNDS, RETRYABLE),
    46: (ErrorCode.AMOUNT_TOO_SMALL, FINAL),
    47: (ErrorCode.DECLINED, FINAL),
    48: (ErrorCode.REJECTED_BY_RECIPIENT, FINAL),
    50: (ErrorCode.AUTH, RETRYABLE),
    51: (ErrorCode.AUTH, RETRYABLE),
    53: (ErrorCode.AUTH, RETRYABLE),
    55: (ErrorCode.AUTH, RETRYABLE),
    105: (ErrorCode.DECLINED, FINAL),
    110: (ErrorCode.REJECTED_BY_RECIPIENT, PayoutStatus.REVERSED),
    201: (ErrorCode.RECIPIENT_LIMIT, FINAL),
}


def test_table_covers_every_documented_code() -> None:
    assert set(ERROR_CODES) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_status_3_with_code(code: int) -> None:
    error, status = EXPECTED[code]
    result = map_answer("3", code, f"status=3 error={code}", reference="order-1")
    assert (result.status, result.error) == (status, error)
    assert result.provider_reference == "order-1" and result.raw_message


@pytest.mark.parametrize("code", [11, 12, 21, 50, 51, 53, 55])
def test_auth_and_config_codes_pause_the_provider(code: int) -> None:
    assert map_answer("3", code, "x").error.pauses_provider  # type: ignore[union-attr]


@pytest.mark.parametrize("code", [10, 14, 15, 17, 18, 19])
def test_request_bugs_are_final_and_pause(code: int) -> None:
    result = map_answer("3", code, "x")
    assert result.status is FINAL and result.error is ErrorCode.CONFIG


def test_success_and_in_progress() -> None:
    assert map_answer("0", None, "").status is PayoutStatus.SUCCEEDED
    assert map_answer("1", None, "").status is PayoutStatus.PENDING
    assert map_answer("0", None, "").error is None


def test_unlisted_code_and_rejection_without_code_are_declined() -> None:
    for code in (999, None):
        result = map_answer("3", code, "x")
        assert (result.status, result.error) == (FINAL, ErrorCode.DECLINED)


@pytest.mark.parametrize("status", ["2", "", "ok"])
def test_unknown_status_is_a_protocol_error(status: str) -> None:
    with pytest.raises(ProtocolError):
        map_answer(status, None, "")


def test_reversal_codes() -> None:
    assert REVERSAL_CODES == {31, 105, 110}
