"""Every documented YooKassa v3 answer mapped to our status set and error taxonomy (table-driven)."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests

from payment_providers.yoomoney.client import (
    CANCELLATION_REASONS,
    HTTP_ERRORS,
    YooKassaClient,
    payout_result,
)
from plugins import ErrorCode, PayoutStatus

FINAL, RETRY, UNKNOWN = (PayoutStatus.FAILED_FINAL, PayoutStatus.FAILED_RETRYABLE,
                         PayoutStatus.UNKNOWN)


def _client() -> YooKassaClient:
    return YooKassaClient("http://yookassa.invalid/v3", "shop", "key",
                          connect_timeout=1, read_timeout=1)


def _response(status: int, body: object, headers: dict[str, str] | None = None
              ) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    return response


def _error(code: str, parameter: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"type": "error", "id": "e-1", "code": code, "description": "d"}
    if parameter is not None:
        body["parameter"] = parameter
    return body


def _payout(status: str, reason: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "id": "po-1", "amount": {"value": "100.00", "currency": "RUB"}, "status": status,
        "payout_destination": {"type": "yoo_money", "account_number": "4100116075156746"},
        "created_at": "2026-01-01T00:00:00.000Z", "test": True, "metadata": {}}
    if reason is not None:
        body["cancellation_details"] = {"party": "yoo_money", "reason": reason}
    return body


# --------------------------------------------------------------------------- cancellation reasons

REASONS = [
    ("one_time_limit_exceeded", FINAL, ErrorCode.RECIPIENT_LIMIT),
    ("periodic_limit_exceeded", FINAL, ErrorCode.RECIPIENT_LIMIT),
    ("insufficient_funds", RETRY, ErrorCode.INSUFFICIENT_FUNDS),
    ("general_decline", FINAL, ErrorCode.DECLINED),
    ("rejected_by_payee", FINAL, ErrorCode.REJECTED_BY_RECIPIENT),
    ("fraud_suspected", FINAL, ErrorCode.DECLINED),
    ("some_future_reason", FINAL, ErrorCode.DECLINED),
]


def test_every_documented_reason_is_in_the_table() -> None:
    assert set(CANCELLATION_REASONS) == {r for r, _, _ in REASONS if r != "some_future_reason"}


@pytest.mark.parametrize(("reason", "status", "code"), REASONS, ids=[r[0] for r in REASONS])
@pytest.mark.parametrize("submitting", [True, False], ids=["submit", "status"])
def test_cancellation_reason(reason: str, status: PayoutStatus, code: ErrorCode,
                             submitting: bool) -> None:
    result = _client().interpret(_response(200, _payout("canceled", reason)),
                                 submitting=submitting)
    assert (result.status, result.error) == (status, code)
    assert result.provider_reference == "po-1" and result.amount == Decimal("100.00")
    assert reason in result.raw_message


@pytest.mark.parametrize(("state", "status"), [("pending", PayoutStatus.PENDING),
                                               ("succeeded", PayoutStatus.SUCCEEDED)])
def test_payout_states(state: str, status: PayoutStatus) -> None:
    result = _client().interpret(_response(200, _payout(state)), submitting=True)
    assert (result.status, result.error, result.provider_reference) == (status, None, "po-1")
    assert isinstance(result.amount, Decimal)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", {"id": "po-1"},
                                  _payout("exploded"), {**_payout("succeeded"),
                                                        "amount": {"value": 1e400}}],
                         ids=["broken", "binary", "no-status", "odd-status", "bad-amount"])
def test_garbled_200_is_unknown(body: object) -> None:
    result = _client().interpret(_response(200, body), submitting=True)
    assert (result.status, result.error) == (UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE)


def test_get_about_another_payout_is_garbled() -> None:
    result = _client().interpret(_response(200, _payout("succeeded")), submitting=False,
                                 expected_id="po-2")
    assert result.status is UNKNOWN
    with pytest.raises(ValueError):
        payout_result(_payout("succeeded"), "", expected_id="po-2")


# --------------------------------------------------------------------------- HTTP statuses

#: (HTTP status, error code, parameter) -> (submit status, submit code, status() code)
HTTP_CASES = [
    (400, "invalid_request", "amount.value", RETRY, ErrorCode.CONFIG, ErrorCode.CONFIG),
    (400, "invalid_request", None, RETRY, ErrorCode.CONFIG, ErrorCode.CONFIG),
    (400, "invalid_request", "Idempotence-Key", FINAL, ErrorCode.DUPLICATE_CONFLICT,
     ErrorCode.DUPLICATE_CONFLICT),
    (400, "invalid_request", "payout_destination_data.account_number", FINAL,
     ErrorCode.INVALID_ACCOUNT, ErrorCode.INVALID_ACCOUNT),
    (401, "invalid_credentials", None, RETRY, ErrorCode.AUTH, ErrorCode.AUTH),
    (403, "forbidden", None, RETRY, ErrorCode.CONFIG, ErrorCode.CONFIG),
    (404, "not_found", None, RETRY, ErrorCode.CONFIG, ErrorCode.NOT_FOUND),
    (405, "method_not_allowed", None, RETRY, ErrorCode.CONFIG, ErrorCode.CONFIG),
    (415, "unsupported_media_type", None, RETRY, ErrorCode.CONFIG, ErrorCode.CONFIG),
    (429, "too_many_requests", None, RETRY, ErrorCode.RATE_LIMITED, ErrorCode.RATE_LIMITED),
    (500, "internal_server_error", None, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE,
     ErrorCode.PROVIDER_UNAVAILABLE),
    (502, "internal_server_error", None, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE,
     ErrorCode.PROVIDER_UNAVAILABLE),
    (503, "internal_server_error", None, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE,
     ErrorCode.PROVIDER_UNAVAILABLE),
    (418, "teapot", None, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE,
     ErrorCode.PROVIDER_UNAVAILABLE),
]


def test_every_documented_http_status_is_covered() -> None:
    covered = {case[0] for case in HTTP_CASES}
    assert {400, 401, 403, 404, 405, 415, 429, 500} <= covered
    assert set(HTTP_ERRORS) <= covered


@pytest.mark.parametrize(("http", "code", "parameter", "status", "error", "status_error"),
                         HTTP_CASES, ids=[f"{c[0]}-{c[2] or c[1]}" for c in HTTP_CASES])
def test_http_error_on_submit(http: int, code: str, parameter: str | None,
                              status: PayoutStatus, error: ErrorCode,
                              status_error: ErrorCode) -> None:
    result = _client().interpret(_response(http, _error(code, parameter)), submitting=True)
    assert (result.status, result.error) == (status, error)
    assert str(http) in result.raw_message


@pytest.mark.parametrize(("http", "code", "parameter", "status", "error", "status_error"),
                         HTTP_CASES, ids=[f"{c[0]}-{c[2] or c[1]}" for c in HTTP_CASES])
def test_http_error_on_status_is_never_a_failure(http: int, code: str, parameter: str | None,
                                                 status: PayoutStatus, error: ErrorCode,
                                                 status_error: ErrorCode) -> None:
    """``status()`` repeats the POST: a refusal then says nothing about the payout."""
    result = _client().interpret(_response(http, _error(code, parameter)), submitting=False)
    assert (result.status, result.error) == (UNKNOWN, status_error)


def test_errors_without_a_yookassa_body_map_by_status() -> None:
    client = _client()
    assert client.interpret(_response(401, b"<html>"), submitting=True).error is ErrorCode.AUTH
    plain = client.interpret(_response(400, b""), submitting=True)
    assert (plain.status, plain.error) == (RETRY, ErrorCode.CONFIG)


@pytest.mark.parametrize(("header", "wait"), [("7", timedelta(seconds=7)), ("", None),
                                              ("soon", None)])
def test_rate_limit_carries_retry_after_when_given(header: str, wait: timedelta | None) -> None:
    headers = {"Retry-After": header} if header else {}
    result = _client().interpret(_response(429, _error("too_many_requests"), headers),
                                 submitting=True)
    assert (result.status, result.error, result.retry_after) == (RETRY, ErrorCode.RATE_LIMITED,
                                                                 wait)


def test_conflict_parameter_is_configurable() -> None:
    client = YooKassaClient("http://x.invalid/v3", "s", "k", connect_timeout=1, read_timeout=1,
                            idempotence_parameter="idempotence_key")
    body = _error("invalid_request", "idempotence_key")
    assert client.interpret(_response(400, body), submitting=True).error \
        is ErrorCode.DUPLICATE_CONFLICT
    assert client.interpret(_response(400, _error("invalid_request", "Idempotence-Key")),
                            submitting=True).error is ErrorCode.CONFIG


# --------------------------------------------------------------------------- transport

def test_connection_refused_and_timeouts() -> None:
    """Nothing sent -> retryable on submit, unknown on status; a read timeout -> unknown."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client = YooKassaClient(f"http://127.0.0.1:{port}/v3", "s", "k", connect_timeout=0.5,
                            read_timeout=0.5)
    kwargs = dict(amount=Decimal("1.00"), currency="RUB", account="4100116075156746",
                  description="", metadata={})
    refused = client.create_payout("k-1", **kwargs)
    assert (refused.status, refused.error) == (RETRY, ErrorCode.PROVIDER_UNAVAILABLE)
    again = client.create_payout("k-1", submitting=False, **kwargs)
    assert (again.status, again.error) == (UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE)
    assert client.get_payout("po-1").status is UNKNOWN
