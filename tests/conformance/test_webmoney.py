"""The conformance kit run on the ``webmoney`` provider against its local X2/X3 sandbox, plus
protocol tests (real HTTP, no mocks)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from payment_providers.webmoney.client import (
    ENCODING,
    LIGHT_PATHS,
    LightCertSigner,
    TestSigner,
    build_x2,
    build_x3,
    parse_response,
)
from payment_providers.webmoney.provider import WebMoneyProvider
from payment_providers.webmoney.sandbox import MAGIC_PURSES, WebMoneySandbox, magic_purse, main
from plugins import ErrorCode, MemoryHandleStore, PayoutRequest, PayoutStatus
from plugins.testing import ConformanceCases, ProviderConformance

pytest_plugins = ["plugins.testing"]

WMID, PURSE, KEY = "100000000001", "P100000000001", "sandbox-wm-key"
DEST = "P123456789012"
OTHER = "P210987654321"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[WebMoneySandbox]:
    with WebMoneySandbox(settle_after=0.05) as running:
        yield running


@pytest.fixture(scope="module")
def store() -> MemoryHandleStore:
    return MemoryHandleStore()


def _settings(sandbox: WebMoneySandbox, **extra: object) -> dict[str, object]:
    return {"base_url": sandbox.url, "connect_timeout": 0.5, "read_timeout": 1.0,
            "credentials": {"wmid": WMID, "purse": PURSE, "test_key": KEY}, **extra}


@pytest.fixture
def provider(sandbox: WebMoneySandbox, store: MemoryHandleStore) -> WebMoneyProvider:
    made = WebMoneyProvider(_settings(sandbox))
    made.bind_handles(store)
    return made


@pytest.fixture
def conformance_cases() -> ConformanceCases:
    return ConformanceCases(
        valid_accounts={DEST: DEST, "p123456789012": DEST, " P1234-5678-9012 ": DEST,
                        "WMP123456789012": DEST, OTHER: OTHER},
        invalid_accounts={"": "empty", "  ": "empty", "123456789012": "wmid",
                          "P12345678901": "format", "P1234567890123": "format",
                          "PP23456789012": "format", "R123456789012": "retired",
                          "Z123456789012": "currency", "C123456789012": "currency"},
        amount=Decimal("100.00"),
        magic_accounts={
            ErrorCode.INVALID_ACCOUNT: magic_purse(7),
            ErrorCode.IDENTIFICATION_REQUIRED: magic_purse(73),
            ErrorCode.RECIPIENT_LIMIT: magic_purse(58),
            ErrorCode.REJECTED_BY_RECIPIENT: magic_purse(35),
            ErrorCode.INSUFFICIENT_FUNDS: magic_purse(17),
            ErrorCode.AUTH: magic_purse(-12),
            ErrorCode.CONFIG: magic_purse(110),
        },
        wrong_credentials={"wmid": WMID, "purse": PURSE, "test_key": "wrong-key"},
    )


class TestWebMoney(ProviderConformance):
    """The whole provider contract, on the WebMoney X2/X3 sandbox."""


# --------------------------------------------------------------------------- beyond the kit

@pytest.fixture
def clean(sandbox: WebMoneySandbox) -> Iterator[WebMoneySandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def _request(key: str, account: str = DEST, amount: str = "100.00", **extra: object
             ) -> PayoutRequest:
    return PayoutRequest(key, Decimal(amount), "RUB", account, **extra)  # type: ignore[arg-type]


def _x2(sandbox: WebMoneySandbox, reqn: int, tranid: int, *, dest: str = DEST,
        amount: str = "100.00", key: str = KEY, wmid: str = WMID, desc: str = "test"):
    body = build_x2(TestSigner(key), reqn=reqn, wmid=wmid, tranid=tranid, pursesrc=PURSE,
                    pursedest=dest, amount=Decimal(amount), desc=desc)
    answer = requests.post(f"{sandbox.url}/asp/XMLTrans.asp", data=body, timeout=30)
    assert answer.status_code == 200
    return parse_response(answer.content)


def _x3(sandbox: WebMoneySandbox, reqn: int, tranid: int):
    from datetime import datetime, timedelta
    now = datetime.utcnow()
    body = build_x3(TestSigner(KEY), reqn=reqn, wmid=WMID, purse=PURSE, tranid=tranid,
                    datestart=now - timedelta(days=1), datefinish=now + timedelta(days=1))
    answer = requests.post(f"{sandbox.url}/asp/XMLOperations.asp", data=body, timeout=30)
    assert answer.status_code == 200
    return parse_response(answer.content)


def test_wire_format_of_x2(clean: WebMoneySandbox) -> None:
    """The provider posts WebMoney's X2 XML, signed over the documented string."""
    seen: list[object] = []
    original = clean.handle

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return original(request)

    clean.handle = spy  # type: ignore[method-assign]
    try:
        provider = WebMoneyProvider(_settings(clean))
        result = provider.submit(_request("wire-1", description="Кэшбэк №7"), "wire-1")
    finally:
        del clean.handle
    [request] = seen
    assert request.method == "POST" and request.path == "/asp/XMLTrans.asp"
    assert ENCODING in request.headers["Content-Type"]
    root = ET.fromstring(request.body)
    assert root.tag == "w3s.request"
    assert [child.tag for child in root] == ["reqn", "wmid", "sign", "trans"]
    trans = {child.tag: child.text or "" for child in root.find("trans")}
    assert trans == {"tranid": "1", "pursesrc": PURSE, "pursedest": DEST, "amount": "100.00",
                     "period": "0", "pcode": "", "desc": "Кэшбэк №7", "wminvid": "0",
                     "onlyauth": "1"}
    reqn = root.findtext("reqn")
    expected = TestSigner(KEY).sign(f"{reqn}1{PURSE}{DEST}100.000Кэшбэк №70")
    assert root.findtext("sign") == expected
    assert result.status is PayoutStatus.SUCCEEDED
    assert result.fee == Decimal("0.80") and result.amount == Decimal("100.00")
    assert result.provider_reference and result.provider_reference.isdigit()


def test_bad_signature_is_refused_with_retval_minus_14(clean: WebMoneySandbox) -> None:
    answer = _x2(clean, 1, 1, key="not-the-key")
    assert answer.retval == -14
    assert clean.transfers() == []
    assert _x2(clean, 1, 1).retval == 0  # the refused request did not consume reqn 1


def test_reqn_must_strictly_increase(clean: WebMoneySandbox) -> None:
    """Smaller or equal reqn: retval 102, nothing done."""
    assert _x2(clean, 10, 1).retval == 0
    assert _x2(clean, 10, 2).retval == 102
    assert _x2(clean, 9, 2).retval == 102
    assert _x3(clean, 5, 1).retval == 102  # one counter per WMID, across interfaces
    assert len(clean.transfers()) == 1
    assert _x2(clean, 11, 2).retval == 0


def test_provider_recovers_from_102_with_a_new_reqn_same_tranid(
        clean: WebMoneySandbox) -> None:
    """Another worker used higher reqns: the provider retries with fresh reqns, same tranid."""
    store = MemoryHandleStore()
    provider = WebMoneyProvider(_settings(clean))
    provider.bind_handles(store)
    assert _x2(clean, 2, 777, dest=OTHER).retval == 0  # the sandbox's last reqn is now 2
    result = provider.submit(_request("r102"), "r102")
    assert result.status is PayoutStatus.SUCCEEDED, result
    assert store.next_counter("webmoney", "reqn") == 4  # reqns 1, 2 refused; 3 accepted
    assert {t.handle for t in clean.transfers()} == {"777", "1"}


def test_persistent_102_pauses_the_provider(clean: WebMoneySandbox) -> None:
    _x2(clean, 1000, 1, dest=OTHER)
    result = WebMoneyProvider(_settings(clean)).submit(_request("stuck"), "stuck")
    assert (result.status, result.error) == (PayoutStatus.FAILED_RETRYABLE, ErrorCode.CONFIG)
    assert "102" in result.raw_message


def test_replay_is_103_and_x3_finds_the_operation(clean: WebMoneySandbox) -> None:
    first = _x2(clean, 1, 42)
    assert first.retval == 0
    again = _x2(clean, 2, 42)
    assert again.retval == 103 and again.operations == ()
    assert len(clean.transfers()) == 1
    found = _x3(clean, 3, 42)
    assert found.retval == 0
    [operation] = found.operations
    assert (operation.tranid, operation.pursedest, operation.amount, operation.comiss,
            operation.opertype) == ("42", DEST, Decimal("100.00"), Decimal("0.80"), 0)
    assert operation.wmtranid == first.operations[0].wmtranid
    assert _x3(clean, 4, 43).operations == ()


def test_same_tranid_other_data_is_103_then_conflict(clean: WebMoneySandbox) -> None:
    """The same key (so the same tranid) with another purse: WebMoney answers 103, X3 shows
    the original operation with other data: failed_final / duplicate_conflict."""
    provider = WebMoneyProvider(_settings(clean))
    assert provider.submit(_request("c1"), "c1").status is PayoutStatus.SUCCEEDED
    conflict = provider.submit(_request("c1", OTHER), "c1")
    assert (conflict.status, conflict.error) == (PayoutStatus.FAILED_FINAL,
                                                 ErrorCode.DUPLICATE_CONFLICT), conflict
    assert "103" in conflict.raw_message
    replay = provider.submit(_request("c1"), "c1")
    assert replay.status is PayoutStatus.SUCCEEDED and "103" in replay.raw_message
    [transfer] = clean.transfers()
    assert transfer.account == DEST


def test_status_reads_x3_and_never_transfers(clean: WebMoneySandbox) -> None:
    provider = WebMoneyProvider(_settings(clean))
    request = _request("st-1")
    missing = provider.status("st-1", request)
    assert (missing.status, missing.error) == (PayoutStatus.UNKNOWN, ErrorCode.NOT_FOUND)
    assert clean.transfers() == []
    provider.submit(request, "st-1")
    found = provider.status("st-1", request)
    assert found.status is PayoutStatus.SUCCEEDED and found.fee == Decimal("0.80")
    clean.inject(errors=1, error_status=500, errors_after_commit=False)
    assert provider.status("st-1").status is PayoutStatus.UNKNOWN
    clean.inject(rate_limit=1)
    limited = provider.status("st-1")
    assert (limited.status, limited.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)


def test_reversed_operation_reads_opertype_12(clean: WebMoneySandbox) -> None:
    provider = WebMoneyProvider(_settings(clean))
    provider.submit(_request("rev-1"), "rev-1")
    clean.reverse("1")
    assert provider.status("rev-1").status is PayoutStatus.REVERSED


@pytest.mark.parametrize("retval", sorted(MAGIC_PURSES.values()))
def test_every_magic_purse_forces_its_retval(clean: WebMoneySandbox, retval: int) -> None:
    answer = _x2(clean, 1, 5, dest=magic_purse(retval))
    assert answer.retval == retval
    assert answer.retdesc
    assert clean.transfers() == []


@pytest.mark.parametrize(("dest", "retval"), [
    (PURSE, 26), ("Z123456789012", 29), ("D123456789012", 30)])
def test_purse_rules_of_the_sandbox(clean: WebMoneySandbox, dest: str, retval: int) -> None:
    assert _x2(clean, 1, 5, dest=dest).retval == retval


def test_internal_error_retval_is_unknown_and_resolvable(clean: WebMoneySandbox) -> None:
    provider = WebMoneyProvider(_settings(clean))
    result = provider.submit(_request("int-4", magic_purse(4)), "int-4")
    assert result.status is PayoutStatus.UNKNOWN
    status = provider.status("int-4")
    assert (status.status, status.error) == (PayoutStatus.UNKNOWN, ErrorCode.NOT_FOUND)


def test_wrong_wmid_and_garbage(clean: WebMoneySandbox) -> None:
    assert _x2(clean, 1, 1, wmid="100000000009").retval == -12
    answer = requests.post(f"{clean.url}/asp/XMLTrans.asp", data=b"<nope", timeout=30)
    assert parse_response(answer.content).retval == -100
    assert requests.post(f"{clean.url}{LIGHT_PATHS['x2']}", data=b"", timeout=2
                         ).status_code == 404


def test_insufficient_balance_is_17() -> None:
    with WebMoneySandbox(balance=Decimal("100.50")) as sandbox:
        result = WebMoneyProvider(_settings(sandbox)).submit(_request("poor"), "poor")
        assert (result.status, result.error) == (PayoutStatus.FAILED_RETRYABLE,
                                                 ErrorCode.INSUFFICIENT_FUNDS)
        assert "17" in result.raw_message


def test_quote_and_fee_settings(sandbox: WebMoneySandbox) -> None:
    provider = WebMoneyProvider(_settings(sandbox))
    assert provider.quote(Decimal("100.00"), DEST).fee == Decimal("0.80")
    assert provider.quote(Decimal("1.00"), DEST).fee == Decimal("0.01")
    assert provider.quote(Decimal("1.31"), DEST).fee == Decimal("0.01")
    assert provider.quote(Decimal("10.63"), DEST).fee == Decimal("0.09")  # 0.08504
    assert provider.quote(Decimal("10.56"), DEST).fee == Decimal("0.08")  # 0.08448
    assert provider.quote(Decimal("1.00"), DEST).credited == Decimal("1.00")
    capped = WebMoneyProvider(_settings(sandbox, fee_max="50", max_amount="100000"))
    assert capped.quote(Decimal("10000.00"), DEST).fee == Decimal("50")
    down = WebMoneyProvider(_settings(sandbox, fee_rounding="ROUND_DOWN"))
    assert down.quote(Decimal("10.63"), DEST).fee == Decimal("0.08")


def test_settings_are_checked(sandbox: WebMoneySandbox) -> None:
    with pytest.raises(ValueError):
        WebMoneyProvider(_settings(sandbox, fee_percent=0.8))
    with pytest.raises(ValueError):
        WebMoneyProvider(_settings(sandbox, signer="wmsigner"))
    with pytest.raises(ValueError):  # the test signer never talks to a real host
        WebMoneyProvider({**_settings(sandbox), "base_url": "https://w3s.webmoney.ru"})
    with pytest.raises(ValueError):
        WebMoneyProvider({**_settings(sandbox), "credentials": {"wmid": "1", "purse": PURSE,
                                                                "test_key": KEY}})
    with pytest.raises(ValueError):
        WebMoneyProvider({**_settings(sandbox), "credentials": {
            "wmid": WMID, "purse": "Z100000000001", "test_key": KEY}})
    with pytest.raises(ValueError):
        WebMoneyProvider(_settings(sandbox, signer="light"))  # no cert_file


def test_light_signer_uses_cert_endpoints_and_no_sign() -> None:
    provider = WebMoneyProvider({
        "base_url": "https://w3s.wmtransfer.com", "signer": "light",
        "credentials": {"wmid": WMID, "purse": PURSE, "cert_file": "/etc/wm/cert.pem",
                        "key_file": "/etc/wm/key.pem"}})
    signer = provider.client.signer
    assert isinstance(signer, LightCertSigner)
    assert signer.paths == {"x2": "/asp/XMLTransCert.asp", "x3": "/asp/XMLOperationsCert.asp"}
    assert signer.cert == ("/etc/wm/cert.pem", "/etc/wm/key.pem")
    assert provider.client._session().cert == ("/etc/wm/cert.pem", "/etc/wm/key.pem")
    body = build_x2(signer, reqn=1, wmid=WMID, tranid=1, pursesrc=PURSE, pursedest=DEST,
                    amount=Decimal("1.00"), desc="x")
    assert ET.fromstring(body).find("sign") is None


def test_limits_come_from_settings(sandbox: WebMoneySandbox) -> None:
    provider = WebMoneyProvider(_settings(sandbox, min_amount="10.00", max_amount="500.00"))
    assert (provider.limits.min_amount, provider.limits.max_amount) == (Decimal("10.00"),
                                                                        Decimal("500.00"))
    result = provider.submit(_request("lim", amount="501.00"), "lim")
    assert (result.status, result.error) == (PayoutStatus.FAILED_FINAL,
                                             ErrorCode.AMOUNT_TOO_LARGE)


def test_cli_prints_what_it_accepts(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[WebMoneySandbox] = []
    monkeypatch.setattr(WebMoneySandbox, "serve", lambda self: served.append(self))
    main(["--port", "0", "--wmid", "123456789012", "--key", "k3y"])
    out = capsys.readouterr().out
    assert "123456789012" in out and "k3y" in out and "XMLTrans.asp" in out
    [sandbox] = served
    try:
        assert sandbox.url in out
        provider = WebMoneyProvider({"base_url": sandbox.url, "read_timeout": 0.5,
                                     "credentials": {"wmid": "123456789012", "purse": PURSE,
                                                     "test_key": "k3y"}})
        assert provider.submit(_request("cli-1"), "cli-1").status is PayoutStatus.SUCCEEDED
    finally:
        sandbox.stop()
