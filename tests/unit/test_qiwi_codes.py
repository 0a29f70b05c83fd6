"""Every documented QIWI answer mapped to our status set and error taxonomy (table-driven)."""
from __future__ import annotations

import json
import socket
from datetime import timedelta
from decimal import Decimal

import pytest
import requests

from payment_providers.qiwi.client import (
    ERROR_CODES,
    HTTP_ERRORS,
    QiwiClient,
    history_result,
    parse_qwprc,
    sign_notification,
    signed_values,
    verify_notification,
)
from plugins import ErrorCode, PayoutStatus

FINAL, RETRY, UNKNOWN = (PayoutStatus.FAILED_FINAL, PayoutStatus.FAILED_RETRYABLE,
                         PayoutStatus.UNKNOWN)
E = ErrorCode

#: The documented ``errorCode`` table (reference §2.1) with the class §5 gives each code.
DOCUMENTED = [
    *[(n, RETRY, E.PROVIDER_UNAVAILABLE) for n in (3, 202, 300, 749, 750)],
    (4, FINAL, E.INVALID_ACCOUNT), (5, FINAL, E.INVALID_ACCOUNT),
    *[(n, RETRY, E.PROVIDER_UNAVAILABLE) for n in (8, 271, 500)],
    (57, FINAL, E.IDENTIFICATION_REQUIRED), (167, FINAL, E.IDENTIFICATION_REQUIRED),
    (131, FINAL, E.DECLINED),
    (166, RETRY, E.CONFIG), (319, RETRY, E.CONFIG), (204, RETRY, E.CONFIG),
    (220, RETRY, E.INSUFFICIENT_FUNDS), (472, RETRY, E.INSUFFICIENT_FUNDS),
    (407, RETRY, E.INSUFFICIENT_FUNDS),
    (241, FINAL, E.AMOUNT_TOO_SMALL), (254, FINAL, E.AMOUNT_TOO_SMALL),
    (242, FINAL, E.AMOUNT_TOO_LARGE), (558, FINAL, E.AMOUNT_TOO_LARGE),
    (303, FINAL, E.INVALID_ACCOUNT),
    (408, FINAL, E.DUPLICATE_CONFLICT),
    (455, RETRY, E.INSUFFICIENT_FUNDS),
    (461, RETRY, E.CONFIG), (901, RETRY, E.CONFIG),
    *[(n, RETRY, E.SENDER_LIMIT) for n in (700, 704, 705, 711, 716, 717, 757, 943, 1050)],
    (702, FINAL, E.RECIPIENT_LIMIT),
    *[(n, FINAL, E.RECIPIENT_LIMIT) for n in (710, 746, 747, 852)],
    (797, FINAL, E.DECLINED),
    *[(n, FINAL, E.REJECTED_BY_RECIPIENT) for n in (522, 547, 548, 561, 7000, 7600)],
]


def _client() -> QiwiClient:
    return QiwiClient("http://qiwi.invalid", "token", "+79990000000", connect_timeout=1,
                      read_timeout=1)


def _response(status: int, body: object, headers: dict[str, str] | None = None
              ) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json", **(headers or {})})
    return response


def _item(status: str, error_code: int = 0, trm: str = "42") -> dict[str, object]:
    """A history item as the client parses it (numbers with a point as Decimal)."""
    return json.loads(json.dumps({"txnId": 20000000001, "trmTxnId": trm, "status": status, "type": "OUT",
            "errorCode": error_code, "error": "text" if error_code else None,
            "sum": {"amount": 100.0, "currency": 643},
            "commission": {"amount": 1.5, "currency": 643},
            "total": {"amount": 101.5, "currency": 643}}), parse_float=Decimal)


def _info(txn: str = "42", state: str = "Accepted") -> dict[str, object]:
    return {"id": txn, "terms": "99", "fields": {"account": "+79161234567"},
            "sum": {"amount": 100.0, "currency": "643"}, "source": "account_643",
            "transaction": {"id": "20000000001", "state": {"code": state}}}


def test_the_table_is_exactly_the_documented_codes() -> None:
    assert set(ERROR_CODES) == {n for n, _, _ in DOCUMENTED}
    assert len(DOCUMENTED) == len(ERROR_CODES)


@pytest.mark.parametrize(("number", "status", "code"), DOCUMENTED,
                         ids=[str(n) for n, _, _ in DOCUMENTED])
def test_history_error_code(number: int, status: PayoutStatus, code: ErrorCode) -> None:
    result = history_result(_item("ERROR", number), "raw")
    assert (result.status, result.error) == (status, code)
    assert str(number) in result.raw_message and result.provider_reference == "20000000001"


@pytest.mark.parametrize(("number", "status", "code"), DOCUMENTED,
                         ids=[str(n) for n, _, _ in DOCUMENTED])
def test_qwprc_on_the_payment_call(number: int, status: PayoutStatus, code: ErrorCode) -> None:
    body = {"code": f"QWPRC-{number}", "message": "m"}
    result = _client().interpret_payment(_response(400, body), 42)
    assert (result.status, result.error) == (status, code)
    assert f"QWPRC-{number}" in result.raw_message


def test_unknown_codes_are_final_declines() -> None:
    assert history_result(_item("ERROR", 99999), "r").error is E.DECLINED
    result = _client().interpret_payment(_response(400, {"code": "QWPRC-31337"}), 42)
    assert (result.status, result.error) == (FINAL, E.DECLINED)


@pytest.mark.parametrize(("value", "number"), [("QWPRC-220", 220), ("qwprc-4", 4),
                                               ("QWPRC-", None), ("QWPRC-x", None),
                                               ("220", None), (220, None), (None, None)])
def test_parse_qwprc(value: object, number: int | None) -> None:
    assert parse_qwprc(value) == number


def test_history_states() -> None:
    waiting = history_result(_item("WAITING"), "r")
    assert (waiting.status, waiting.error, waiting.amount) == (PayoutStatus.PENDING, None,
                                                               Decimal("100.0"))
    done = history_result(_item("SUCCESS"), "r")
    assert (done.status, done.amount, done.fee) == (PayoutStatus.SUCCEEDED, Decimal("100.0"),
                                                    Decimal("1.5"))


@pytest.mark.parametrize("item", [{**_item("SUCCESS"), "status": "PAID"},
                                  {**_item("ERROR"), "errorCode": None},
                                  {"txnId": 1, "status": "SUCCESS"},
                                  {**_item("SUCCESS"), "sum": {"amount": True}}],
                         ids=["odd-status", "error-without-code", "no-sum", "bool-amount"])
def test_garbled_history_items_raise(item: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        history_result(item, "r")


# --------------------------------------------------------------------------- the payment call

def test_accepted_is_accepted() -> None:
    result = _client().interpret_payment(_response(200, _info()), 42)
    assert (result.status, result.error, result.provider_reference) == (
        PayoutStatus.ACCEPTED, None, "20000000001")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", {"id": "42"}, _info("43"),
                                  _info(state="Rejected")],
                         ids=["broken", "binary", "no-transaction", "other-id", "odd-state"])
def test_garbled_200_is_unknown(body: object) -> None:
    result = _client().interpret_payment(_response(200, body), 42)
    assert (result.status, result.error) == (UNKNOWN, E.PROVIDER_UNAVAILABLE)


HTTP_CASES = [
    (400, RETRY, E.CONFIG), (401, RETRY, E.AUTH), (403, RETRY, E.CONFIG),
    (404, RETRY, E.CONFIG), (423, UNKNOWN, E.RATE_LIMITED), (429, RETRY, E.RATE_LIMITED),
    (500, UNKNOWN, E.PROVIDER_UNAVAILABLE), (502, UNKNOWN, E.PROVIDER_UNAVAILABLE),
    (503, UNKNOWN, E.PROVIDER_UNAVAILABLE), (418, UNKNOWN, E.PROVIDER_UNAVAILABLE),
]


def test_every_documented_http_status_is_covered() -> None:
    assert {400, 401, 403, 404, 423, 500} <= {c[0] for c in HTTP_CASES}
    assert set(HTTP_ERRORS) <= {c[0] for c in HTTP_CASES}


@pytest.mark.parametrize(("http", "status", "code"), HTTP_CASES, ids=[str(c[0]) for c in HTTP_CASES])
def test_http_error_on_submit(http: int, status: PayoutStatus, code: ErrorCode) -> None:
    body = {"serviceName": "x", "errorCode": "e", "userMessage": "m"}
    result = _client().interpret_payment(_response(http, body), 42)
    assert (result.status, result.error) == (status, code)
    assert str(http) in result.raw_message


def test_qwprc_in_a_5xx_is_still_unknown() -> None:
    result = _client().interpret_payment(_response(500, {"code": "QWPRC-220"}), 42)
    assert result.status is UNKNOWN


@pytest.mark.parametrize(("header", "wait"), [("7", timedelta(seconds=7)), ("", None),
                                              ("soon", None)])
def test_throttling_carries_retry_after_when_given(header: str, wait: timedelta | None) -> None:
    headers = {"Retry-After": header} if header else {}
    for http in (423, 429):
        result = _client().interpret_payment(_response(http, {}, headers), 42)
        assert (result.error, result.retry_after) == (E.RATE_LIMITED, wait)


# --------------------------------------------------------------------------- webhook signature

KEY = "c2VjcmV0"  # base64("secret")


def _notification(key: str = KEY) -> bytes:
    payment = {"txnId": "123", "type": "OUT", "account": "+79161234567", "comment": "x [k-1]",
               "sum": {"amount": 100.5, "currency": 643},
               "signFields": "sum.currency,sum.amount,type,account,txnId"}
    text = json.loads(json.dumps(payment), parse_float=str, parse_int=str)
    return json.dumps({"payment": payment, "hash": sign_notification(text, key)}).encode()


def test_signed_values_follow_sign_fields() -> None:
    payment = json.loads(_notification())["payment"]
    text = json.loads(json.dumps(payment), parse_float=str, parse_int=str)
    assert signed_values(text) == "643|100.5|OUT|+79161234567|123"
    import hashlib
    import hmac

    assert sign_notification(text, KEY) == hmac.new(
        b"secret", b"643|100.5|OUT|+79161234567|123", hashlib.sha256).hexdigest()


def test_verify_notification() -> None:
    assert verify_notification(_notification(), KEY) is not None
    assert verify_notification(_notification(), "b3RoZXI=") is None
    assert verify_notification(_notification(), "not base64!") is None
    assert verify_notification(b"[]", KEY) is None
    assert verify_notification(b'{"payment": {"signFields": "nope"}, "hash": "x"}', KEY) is None


# --------------------------------------------------------------------------- transport

def test_connection_refused_and_timeouts() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client = QiwiClient(f"http://127.0.0.1:{port}", "t", "+79990000000", connect_timeout=0.5,
                        read_timeout=0.5)
    sent = client.pay(1, amount=Decimal("1.00"), account="+79161234567", comment="")
    assert (sent.status, sent.error) == (RETRY, E.PROVIDER_UNAVAILABLE)
    asked = client.find(1)
    assert (asked.status, asked.error) == (UNKNOWN, E.PROVIDER_UNAVAILABLE)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        slow = QiwiClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", "+79990000000",
                          connect_timeout=0.5, read_timeout=0.2)
        timed_out = slow.pay(1, amount=Decimal("1.00"), account="+79161234567", comment="")
        assert (timed_out.status, timed_out.error) == (UNKNOWN, E.TIMEOUT)
    finally:
        silent.close()
