"""Every documented WebMoney X2 retval mapped to our status set and error taxonomy
(table-driven, reference §3 and §5), plus the answer parser and the HTTP-level mapping."""
from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from payment_providers.webmoney.client import (
    DOCUMENTED_RETVALS,
    OPERTYPES,
    RETRY_SAME_TRANID,
    RETVALS,
    TestSigner,
    WebMoneyClient,
    X2Answer,
    operation_result,
    parse_response,
    retval_result,
)
from plugins import ErrorCode, PayoutStatus

FINAL, RETRY, UNKNOWN = (PayoutStatus.FAILED_FINAL, PayoutStatus.FAILED_RETRYABLE,
                         PayoutStatus.UNKNOWN)

#: (retval, status, code) for every documented refusal of X2 (reference §3), per §5.
REFUSALS = [
    (-100, RETRY, ErrorCode.CONFIG),
    (-110, RETRY, ErrorCode.CONFIG),
    (-1, RETRY, ErrorCode.CONFIG),
    (-2, RETRY, ErrorCode.AUTH),
    (-3, RETRY, ErrorCode.CONFIG),
    (-4, RETRY, ErrorCode.CONFIG),
    (-5, FINAL, ErrorCode.INVALID_ACCOUNT),
    (-6, FINAL, ErrorCode.AMOUNT_TOO_SMALL),
    (-7, RETRY, ErrorCode.CONFIG),
    (-8, RETRY, ErrorCode.CONFIG),
    (-9, RETRY, ErrorCode.CONFIG),
    (-10, RETRY, ErrorCode.CONFIG),
    (-11, RETRY, ErrorCode.CONFIG),
    (-12, RETRY, ErrorCode.AUTH),
    (-14, RETRY, ErrorCode.AUTH),
    (-15, RETRY, ErrorCode.AUTH),
    (110, RETRY, ErrorCode.CONFIG),
    (111, RETRY, ErrorCode.CONFIG),
    (5, RETRY, ErrorCode.AUTH),
    (6, FINAL, ErrorCode.INVALID_ACCOUNT),
    (7, FINAL, ErrorCode.INVALID_ACCOUNT),
    (11, RETRY, ErrorCode.CONFIG),
    (13, FINAL, ErrorCode.AMOUNT_TOO_SMALL),
    (17, RETRY, ErrorCode.INSUFFICIENT_FUNDS),
    (18, RETRY, ErrorCode.CONFIG),
    (20, RETRY, ErrorCode.CONFIG),
    (21, RETRY, ErrorCode.CONFIG),
    (22, RETRY, ErrorCode.CONFIG),
    (25, RETRY, ErrorCode.CONFIG),
    (26, FINAL, ErrorCode.INVALID_ACCOUNT),
    (29, FINAL, ErrorCode.INVALID_ACCOUNT),
    (30, FINAL, ErrorCode.INVALID_ACCOUNT),
    (32, RETRY, ErrorCode.CONFIG),
    (34, RETRY, ErrorCode.CONFIG),
    (35, FINAL, ErrorCode.REJECTED_BY_RECIPIENT),
    (58, FINAL, ErrorCode.RECIPIENT_LIMIT),
    (72, RETRY, ErrorCode.CONFIG),
    (73, FINAL, ErrorCode.IDENTIFICATION_REQUIRED),
    (74, FINAL, ErrorCode.IDENTIFICATION_REQUIRED),
]
#: Internal errors creating the transaction: unknown (X3 by tranid, then the same tranid).
INTERNAL = [4, 15, 19, 23]
#: The reference's list, written out once more: the tables must cover exactly these.
DOCUMENTED = {0, -100, -110, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -14, -15, 102,
              103, 110, 111, 4, 15, 19, 23, 5, 6, 7, 11, 13, 17, 18, 20, 21, 22, 25, 26, 29, 30,
              32, 34, 35, 58, 72, 73, 74}


def test_tables_cover_every_documented_retval() -> None:
    assert set(RETVALS) == {r for r, _, _ in REFUSALS}
    assert set(RETRY_SAME_TRANID) == set(INTERNAL)
    assert DOCUMENTED_RETVALS == DOCUMENTED
    assert set(RETVALS).isdisjoint(RETRY_SAME_TRANID | {0, 102, 103})


@pytest.mark.parametrize(("retval", "status", "code"), REFUSALS, ids=[str(r[0]) for r in REFUSALS])
def test_refusal(retval: int, status: PayoutStatus, code: ErrorCode) -> None:
    result = retval_result(retval, "desc")
    assert (result.status, result.error) == (status, code)
    assert f"retval {retval}" in result.raw_message


@pytest.mark.parametrize("retval", INTERNAL + [999, -999])
def test_internal_and_undocumented_are_unknown(retval: int) -> None:
    result = retval_result(retval, "internal")
    assert (result.status, result.error) == (UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE)


def test_auth_and_config_pause_the_provider() -> None:
    for retval in (-2, -12, -14, -15, -110, 5, 11, 110, 111, 32, 34, 72):
        assert RETVALS[retval].pauses_provider, retval


@pytest.mark.parametrize(("opertype", "status"), [(0, PayoutStatus.SUCCEEDED),
                                                  (4, PayoutStatus.PENDING),
                                                  (12, PayoutStatus.REVERSED)])
def test_opertypes(opertype: int, status: PayoutStatus) -> None:
    assert OPERTYPES[opertype] is status
    answer = parse_response(_operation_xml(opertype))
    result = operation_result(answer.operations[0], "raw")
    assert result.status is status
    assert (result.provider_reference, result.amount, result.fee) == (
        "901", Decimal("100.00"), Decimal("0.80"))


def test_unknown_opertype_is_unknown() -> None:
    answer = parse_response(_operation_xml(99))
    assert operation_result(answer.operations[0], "raw").status is UNKNOWN


def _operation_xml(opertype: int = 0) -> bytes:
    return ("<?xml version='1.0' encoding='windows-1251'?><w3s.response><reqn>5</reqn>"
            "<retval>0</retval><retdesc></retdesc><operation id='901' ts='1'>"
            "<pursesrc>P100000000001</pursesrc><pursedest>P123456789012</pursedest>"
            f"<amount>100.00</amount><comiss>0.80</comiss><opertype>{opertype}</opertype>"
            "<tranid>7</tranid><desc>Кэшбэк</desc></operation></w3s.response>"
            ).encode("windows-1251")


def test_parse_response_reads_windows_1251() -> None:
    answer = parse_response(_operation_xml())
    assert isinstance(answer, X2Answer)
    assert (answer.reqn, answer.retval, answer.retdesc) == ("5", 0, "")
    [operation] = answer.operations
    assert (operation.wmtranid, operation.tranid, operation.desc) == ("901", "7", "Кэшбэк")


@pytest.mark.parametrize("body", [
    b"", b"<html>oops</html>", b"<w3s.response><retval>x</retval></w3s.response>",
    b"<w3s.response></w3s.response>", b"<w3s.response><retval>0</retval>",
    b"<w3s.response><retval>0</retval><operation id='1'><amount>NaN</amount></operation>"
    b"</w3s.response>",
], ids=["empty", "html", "retval", "no-retval", "cut", "amount"])
def test_garbled_answers_raise(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_response(body)


def _client() -> WebMoneyClient:
    return WebMoneyClient("http://w3s.invalid", wmid="100000000001", purse="P100000000001",
                          signer=TestSigner("k"), next_reqn=lambda: 1, connect_timeout=1,
                          read_timeout=1)


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None
              ) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(("status", "submitting", "expected", "code"), [
    (500, True, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE),
    (502, True, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE),
    (503, False, UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE),
    (429, True, RETRY, ErrorCode.RATE_LIMITED),
    (429, False, UNKNOWN, ErrorCode.RATE_LIMITED),
    (404, True, RETRY, ErrorCode.CONFIG),
    (403, True, RETRY, ErrorCode.CONFIG),
    (404, False, UNKNOWN, ErrorCode.CONFIG),
])
def test_http_level_answers(status: int, submitting: bool, expected: PayoutStatus,
                            code: ErrorCode) -> None:
    result = _client()._answer(_response(status, b"<html/>", {"Retry-After": "3"}),
                               submitting=submitting)
    assert (result.status, result.error) == (expected, code)


def test_garbled_200_is_unknown() -> None:
    result = _client()._answer(_response(200, b"<w3s.resp\xff"), submitting=True)
    assert (result.status, result.error) == (UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE)


def test_signing_string_and_signature() -> None:
    from payment_providers.webmoney.client import x2_signing_string, x3_signing_string
    assert x2_signing_string(1, 2, "P1", "P2", "3.00", "0", "", "д", "0") == "12P1P23.000д0"
    assert x3_signing_string("P100000000001", 9) == "P1000000000019"
    signature = TestSigner("k").sign("д")
    assert len(signature) == 64 and signature == TestSigner("k").sign("д")
    assert signature != TestSigner("other").sign("д")
