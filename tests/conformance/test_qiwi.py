"""The conformance kit run on the ``qiwi`` provider against its local QIWI Wallet sandbox, plus
protocol tests (real HTTP, no mocks)."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from payment_providers.qiwi.client import sign_notification
from payment_providers.qiwi.provider import QiwiProvider, comment_for, key_from_comment
from payment_providers.qiwi.sandbox import (
    DEFAULT_WEBHOOK_KEY,
    FORBIDDEN_WALLET,
    STUCK_WALLET,
    UNAUTHORIZED_WALLET,
    QiwiSandbox,
    magic_wallet,
    main,
)
from plugins import ErrorCode, MemoryHandleStore, PayoutRequest, PayoutStatus
from plugins.manager import provider_class_problems
from plugins.testing import ConformanceCases, ProviderConformance, _Receiver

pytest_plugins = ["plugins.testing"]

TOKEN, WALLET = "sandbox-token", "+79990000000"
GOOD = "+79161234567"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[QiwiSandbox]:
    with QiwiSandbox(settle_after=0.05) as running:
        yield running


def _settings(sandbox: QiwiSandbox, **extra: object) -> dict[str, object]:
    return {"base_url": sandbox.url, "connect_timeout": 0.5, "read_timeout": 1.0,
            "credentials": {"token": TOKEN, "wallet": WALLET,
                            "webhook_key": DEFAULT_WEBHOOK_KEY}, **extra}


def _provider(sandbox: QiwiSandbox, **extra: object) -> QiwiProvider:
    """The provider with every history call in a budget window of its own: these tests check
    the protocol and its mapping; the history budget is tested in tests/*/test_qiwi_budget.py."""
    made = QiwiProvider(_settings(sandbox, **extra))
    ticks = itertools.count(1_700_000_000, QiwiProvider.HISTORY_WINDOW_SECONDS)
    made.clock = lambda: float(next(ticks))
    return made


@pytest.fixture
def provider(sandbox: QiwiSandbox) -> QiwiProvider:
    return _provider(sandbox)


@pytest.fixture
def conformance_cases() -> ConformanceCases:
    return ConformanceCases(
        valid_accounts={GOOD: GOOD, "+7 (916) 123-45-67": GOOD, "8 916 123 45 67": GOOD,
                        "9161234567": GOOD, "+79031234567": "+79031234567"},
        invalid_accounts={"": "empty", "   ": "empty", "+7 916 abc": "characters",
                          "12345": "format", "+77011234567": "country",
                          "+74951234567": "not_mobile"},
        amount=Decimal("100.00"),
        magic_accounts={
            ErrorCode.INVALID_ACCOUNT: magic_wallet(5),
            ErrorCode.IDENTIFICATION_REQUIRED: magic_wallet(57),
            ErrorCode.RECIPIENT_LIMIT: magic_wallet(702),
            ErrorCode.REJECTED_BY_RECIPIENT: magic_wallet(522),
            ErrorCode.DECLINED: magic_wallet(797),
            ErrorCode.INSUFFICIENT_FUNDS: magic_wallet(220),
            ErrorCode.SENDER_LIMIT: magic_wallet(700),
            ErrorCode.AUTH: UNAUTHORIZED_WALLET,
            ErrorCode.CONFIG: magic_wallet(166),
        },
        wrong_credentials={"token": "wrong", "wallet": WALLET},
    )


class TestQiwi(ProviderConformance):
    """The whole provider contract, on the QIWI Wallet sandbox."""

    def test_reversal_after_success(self, provider, sandbox, conformance_cases) -> None:
        """QIWI's history has no "returned" state: a transfer the sandbox ledger reverses
        still reads ``SUCCESS`` (never a failure)."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        assert self.settled_status(provider, sandbox, request).status is PayoutStatus.SUCCEEDED
        [transfer] = sandbox.transfers()
        sandbox.reverse(transfer.handle)
        assert provider.status(request.idempotency_key, request).status is PayoutStatus.SUCCEEDED

    def test_rate_limit_is_retryable(self, provider, sandbox, conformance_cases) -> None:
        """QIWI throttles with 423, which the reference files under pending/unknown: the submit
        is unknown/rate_limited; the history does not know it; the same key then pays once."""
        request = self.request(provider, conformance_cases)
        sandbox.inject(rate_limit=1, retry_after=2)
        result = provider.submit(request, request.idempotency_key)
        assert (result.status, result.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)
        assert sandbox.transfers() == []
        assert provider.status(request.idempotency_key, request).error is ErrorCode.NOT_FOUND
        provider.submit(request, request.idempotency_key)
        assert self.settled_status(provider, sandbox, request).status is PayoutStatus.SUCCEEDED
        assert len(sandbox.transfers()) == 1

    def test_callback_names_the_payout(self, provider, sandbox, conformance_cases) -> None:
        """QIWI signs the *values* named in ``signFields``, not the bytes: whitespace does not
        matter, a changed signed value or hash does; the key comes from the comment."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        sandbox.settle()
        [transfer] = sandbox.transfers()
        headers, body = sandbox.build_callback(transfer)
        with _Receiver() as receiver:
            assert sandbox.fire_callback(transfer.handle, receiver.url) == 200
        [(got_headers, got_body)] = receiver.received
        assert provider.parse_callback(got_headers, got_body) == request.idempotency_key
        assert provider.parse_callback(headers, body.replace(b"}", b" }", 1)) \
            == request.idempotency_key
        data = json.loads(body)
        data["payment"]["sum"]["amount"] = 1000.0
        assert provider.parse_callback(headers, json.dumps(data).encode()) is None
        assert provider.parse_callback({}, b"") is None


# --------------------------------------------------------------------------- beyond the kit

@pytest.fixture
def clean(sandbox: QiwiSandbox) -> Iterator[QiwiSandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def _request(key: str, account: str = GOOD, amount: str = "100.00", **extra: object
             ) -> PayoutRequest:
    return PayoutRequest(key, Decimal(amount), "RUB", account, **extra)  # type: ignore[arg-type]


def _body(txn: str = "1001", account: str = GOOD, amount: object = 100.0) -> dict[str, object]:
    return {"id": txn, "sum": {"amount": amount, "currency": "643"},
            "paymentMethod": {"type": "Account", "accountId": "643"},
            "fields": {"account": account}, "comment": "cashback"}


def _pay(sandbox: QiwiSandbox, body: object, *, token: str | None = TOKEN, terms: int = 99,
         **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if "data" not in kwargs:
        kwargs["json"] = body
    return requests.post(f"{sandbox.url}/sinap/api/v2/terms/{terms}/payments", headers=headers,
                         timeout=30, **kwargs)  # type: ignore[arg-type]


def _history(sandbox: QiwiSandbox, token: str = TOKEN, **params: str) -> requests.Response:
    params.setdefault("rows", "50")
    return requests.get(f"{sandbox.url}/payment-history/v2/persons/79990000000/payments",
                        params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_declared_disabled_by_default_with_reason() -> None:
    assert QiwiProvider.default_enabled is False
    assert QiwiProvider.disabled_reason["en"] == (
        "QIWI Bank's licence was revoked by the Bank of Russia on 2024-02-21.")
    assert "2024" in QiwiProvider.disabled_reason["ru"]
    assert provider_class_problems(QiwiProvider) == []
    assert QiwiProvider.code == "qiwi" and QiwiProvider.currency == "RUB"
    assert QiwiProvider.verbose_name == {"ru": "QIWI Кошелёк", "en": "QIWI Wallet"}


def test_wire_format_of_the_payment_call(clean: QiwiSandbox) -> None:
    """The provider sends QIWI's path, headers and body, with the handle store's number as id."""
    seen: list[object] = []
    original = clean.handle

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return original(request)

    clean.handle = spy  # type: ignore[method-assign]
    try:
        provider = _provider(clean, id_base=1_700_000_000_000)
        result = provider.submit(_request("wire-1", description="cashback #7"), "wire-1")
    finally:
        del clean.handle
    [request] = seen
    assert request.method == "POST" and request.path == "/sinap/api/v2/terms/99/payments"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    number = 1_700_000_000_000 + provider.handles.number_for("qiwi", "wire-1")
    assert json.loads(request.body) == {
        "id": str(number), "sum": {"amount": 100.0, "currency": "643"},
        "paymentMethod": {"type": "Account", "accountId": "643"},
        "fields": {"account": GOOD}, "comment": "cashback #7 [wire-1]"}
    assert result.status is PayoutStatus.ACCEPTED and result.provider_reference


def test_payment_info_and_history_shape(clean: QiwiSandbox) -> None:
    """PaymentInfo says Accepted; history goes WAITING -> SUCCESS with trmTxnId = our id."""
    answer = _pay(clean, _body())
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    info = answer.json()
    assert info["id"] == "1001" and info["transaction"]["state"] == {"code": "Accepted"}
    assert info["source"] == "account_643" and info["sum"] == {"amount": 100.0, "currency": "643"}
    clean.ledger.settle_after = None
    try:
        [item] = _history(clean, operation="OUT").json()["data"]
        assert (item["status"], item["trmTxnId"], item["type"]) == ("WAITING", "1001", "OUT")
        assert str(item["txnId"]) == info["transaction"]["id"]
        clean.settle()
        item = _history(clean).json()["data"][0]
        assert item["status"] == "SUCCESS" and item["errorCode"] == 0
        assert item["sum"] == {"amount": 100.0, "currency": 643}
        read = requests.get(f"{clean.url}/payment-history/v2/transactions/{item['txnId']}",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert read.status_code == 200 and read.json()["trmTxnId"] == "1001"
    finally:
        clean.ledger.settle_after = 0.05
    assert _history(clean, operation="IN").json()["data"] == []


def test_history_pages(clean: QiwiSandbox) -> None:
    for n in range(5):
        assert _pay(clean, _body(str(2000 + n))).status_code == 200
    first = _history(clean, rows="2").json()
    assert [i["trmTxnId"] for i in first["data"]] == ["2004", "2003"]
    second = _history(clean, rows="2", nextTxnId=str(first["nextTxnId"]),
                      nextTxnDate=first["nextTxnDate"]).json()
    assert [i["trmTxnId"] for i in second["data"]] == ["2002", "2001"]
    # The provider pages too: a 1-row page still finds the oldest payment.
    provider = _provider(clean, history_rows=1, history_pages=10)
    clean.settle()
    found = provider.client.find(2000)
    assert found.status is PayoutStatus.SUCCEEDED
    assert _provider(clean, history_rows=1, history_pages=2).client.find(
        2000).error is ErrorCode.NOT_FOUND


def test_wrong_token(clean: QiwiSandbox) -> None:
    """No or wrong token: 401 in QIWI's general error shape, on both APIs; nothing recorded."""
    for token in (None, "wrong"):
        answer = _pay(clean, _body(), token=token)
        assert answer.status_code == 401
        assert answer.json()["errorCode"] == "auth.unauthorized"
        assert {"serviceName", "userMessage", "traceId"} <= set(answer.json())
    assert _history(clean, token="wrong").status_code == 401
    assert clean.transfers() == []
    impostor = _provider(clean, credentials={"token": "x", "wallet": WALLET})
    assert impostor.status("k-1").error is ErrorCode.AUTH
    assert impostor.status("k-1").status is PayoutStatus.UNKNOWN


@pytest.mark.parametrize(("mutate", "status", "code"), [
    (lambda b: b.update(id="12a"), 400, None),
    (lambda b: b.update(id="1" * 21), 400, None),
    (lambda b: b.update(id=1001), 400, None),
    (lambda b: b["sum"].update(amount=100.001), 400, None),
    (lambda b: b["sum"].update(amount="100"), 400, None),
    (lambda b: b["sum"].update(amount=0), 400, None),
    (lambda b: b["sum"].update(currency="RUB"), 400, None),
    (lambda b: b.update(paymentMethod={"type": "Card", "accountId": "643"}), 400, None),
    (lambda b: b.pop("fields"), 400, None),
    (lambda b: b["fields"].update(account="89161234567"), 400, "QWPRC-4"),
    (lambda b: b["sum"].update(amount=0.5), 400, "QWPRC-241"),
    (lambda b: b["sum"].update(amount=100000), 400, "QWPRC-242"),
], ids=["id-letters", "id-long", "id-number", "three-decimals", "amount-text", "zero",
        "currency", "method", "no-fields", "account-format", "below-min", "above-max"])
def test_input_is_validated(clean: QiwiSandbox, mutate, status, code) -> None:  # type: ignore[no-untyped-def]
    body = _body()
    mutate(body)
    answer = _pay(clean, body)
    assert answer.status_code == status
    if code is not None:
        assert answer.json()["code"] == code and answer.json()["message"]
    else:
        assert answer.json()["errorCode"] == "request.invalid"
    assert clean.transfers() == []


def test_mobile_terms_want_ten_digits(clean: QiwiSandbox) -> None:
    body = _body(account="+79161234567")
    body.pop("comment")
    assert _pay(clean, body, terms=1).json()["code"] == "QWPRC-303"
    body["fields"] = {"account": "9161234567"}
    assert _pay(clean, body, terms=1).status_code == 200
    assert _pay(clean, _body(), terms=12345).status_code == 404


def test_wrong_method_path_and_media_type(clean: QiwiSandbox) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{clean.url}/sinap/api/v2/terms/99/payments", headers=auth,
                        timeout=30).status_code == 405
    assert requests.get(f"{clean.url}/nothing", headers=auth, timeout=30).status_code == 404
    text = requests.post(f"{clean.url}/sinap/api/v2/terms/99/payments", timeout=30,
                         data=json.dumps(_body()), headers={**auth, "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert _history(clean, rows="0").status_code == 400
    assert _history(clean, rows="10", startDate="2026-01-01T00:00:00+00:00").status_code == 400
    assert _history(clean, startDate="2025-01-01T00:00:00+00:00",
                    endDate="2026-01-01T00:00:00+00:00").status_code == 400
    other = requests.get(f"{clean.url}/payment-history/v2/persons/79161234567/payments",
                         params={"rows": "5"}, headers=auth, timeout=30)
    assert other.status_code == 403


def test_replay_is_idempotent_and_conflict_is_408(clean: QiwiSandbox) -> None:
    """Same id + same data: the same PaymentInfo; same id + other data: QWPRC-408."""
    first = _pay(clean, _body()).json()
    again = _pay(clean, _body()).json()
    assert again == first
    for other in (_body(amount=200.0), _body(account="+79031234567"),
                  {**_body(), "comment": "other"}):
        conflict = _pay(clean, other)
        assert (conflict.status_code, conflict.json()["code"]) == (400, "QWPRC-408")
    [transfer] = clean.transfers()
    assert transfer.amount == Decimal("100.00")
    provider = _provider(clean)
    request = _request("rep-1")
    a = provider.submit(request, "rep-1")
    b = provider.submit(request, "rep-1")
    assert a.provider_reference == b.provider_reference and len(clean.transfers()) == 2


def test_every_documented_code_is_forced_by_a_magic_wallet(clean: QiwiSandbox) -> None:
    """Each ``+7999000XXXX`` ends in QIWI error XXXX, at once or after settling."""
    from payment_providers.qiwi.client import ERROR_CODES

    provider = _provider(clean)
    for number, code in ERROR_CODES.items():
        key = f"magic-{number}"
        request = _request(key, magic_wallet(number))
        result = provider.submit(request, key)
        if result.status.in_flight:
            clean.settle()
            result = provider.status(key, request)
        assert (result.status, result.error) == (code.default_status, code), number
        assert str(number) in result.raw_message


def test_token_losing_scope_and_stuck_payment(clean: QiwiSandbox) -> None:
    provider = _provider(clean)
    forbidden = provider.submit(_request("f-1", FORBIDDEN_WALLET), "f-1")
    assert (forbidden.status, forbidden.error) == (PayoutStatus.FAILED_RETRYABLE,
                                                   ErrorCode.CONFIG)
    request = _request("stuck-1", STUCK_WALLET)
    provider.submit(request, "stuck-1")
    clean.settle()
    assert provider.status("stuck-1", request).status is PayoutStatus.PENDING


def test_our_float_running_out_is_insufficient_funds() -> None:
    with QiwiSandbox(balance=Decimal("50.00"), settle_after=0.05) as sandbox:
        result = _provider(sandbox).submit(_request("poor-1"), "poor-1")
        assert (result.status, result.error) == (PayoutStatus.FAILED_RETRYABLE,
                                                 ErrorCode.INSUFFICIENT_FUNDS)


def test_history_is_throttled_with_423() -> None:
    with QiwiSandbox(settle_after=0.05, history_limit=3) as sandbox:
        provider = _provider(sandbox)
        request = _request("th-1")
        provider.submit(request, "th-1")
        for _ in range(3):
            assert provider.status("th-1", request).status in (PayoutStatus.PENDING,
                                                                PayoutStatus.SUCCEEDED)
        limited = provider.status("th-1", request)
        assert (limited.status, limited.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)
        sandbox.advance(120)  # still blocked: five minutes
        assert _history(sandbox).status_code == 423
        sandbox.advance(300)
        assert provider.status("th-1", request).status is PayoutStatus.SUCCEEDED


def test_status_errors_are_never_failures(clean: QiwiSandbox) -> None:
    provider = _provider(clean)
    request = _request("st-1")
    provider.submit(request, "st-1")
    clean.inject(errors=1, error_status=500, errors_after_commit=False)
    assert provider.status("st-1", request).status is PayoutStatus.UNKNOWN
    clean.inject(garble=1)
    garbled = provider.status("st-1", request)
    assert (garbled.status, garbled.error) == (PayoutStatus.UNKNOWN,
                                               ErrorCode.PROVIDER_UNAVAILABLE)
    clean.settle()
    done = provider.status("st-1", request)
    assert done.status is PayoutStatus.SUCCEEDED and done.amount == Decimal("100.00")
    assert done.fee == Decimal("0")


def test_webhook_signature_good_and_bad(clean: QiwiSandbox) -> None:
    """The sandbox signs with the base64 hook key; the provider checks it against its own."""
    provider = _provider(clean)
    request = _request("hook-1", description="cashback")
    provider.submit(request, "hook-1")
    clean.settle()
    [transfer] = clean.transfers()
    headers, body = clean.build_callback(transfer)
    data = json.loads(body)
    assert data["payment"]["signFields"] == "sum.currency,sum.amount,type,account,txnId"
    assert data["payment"]["comment"] == "cashback [hook-1]"
    assert provider.parse_callback(headers, body) == "hook-1"
    # Re-signed by hand with the documented recipe: still accepted.
    as_text = json.loads(body, parse_float=str, parse_int=str)
    assert sign_notification(as_text["payment"], DEFAULT_WEBHOOK_KEY) == data["hash"]
    other_key = QiwiProvider(_settings(clean, credentials={
        "token": TOKEN, "wallet": WALLET, "webhook_key": "b3RoZXIta2V5"}))
    assert other_key.parse_callback(headers, body) is None
    no_key = _provider(clean, credentials={"token": TOKEN, "wallet": WALLET})
    assert no_key.parse_callback(headers, body) is None
    for mutate in (lambda d: d.update(hash="0" * 64), lambda d: d.pop("hash"),
                   lambda d: d["payment"].update(account="+79031234567"),
                   lambda d: d["payment"].update(txnId="1"),
                   lambda d: d["payment"].update(signFields="")):
        tampered = json.loads(body)
        mutate(tampered)
        assert provider.parse_callback(headers, json.dumps(tampered).encode()) is None
    incoming = json.loads(body)
    incoming["payment"]["type"] = "IN"
    incoming["hash"] = sign_notification(json.loads(json.dumps(incoming), parse_float=str,
                                                    parse_int=str)["payment"],
                                         DEFAULT_WEBHOOK_KEY)
    assert provider.parse_callback(headers, json.dumps(incoming).encode()) is None
    assert provider.parse_callback(headers, b"\xff garbage") is None


def test_key_travels_in_the_comment() -> None:
    assert comment_for(_request("k.1:a-b_c", description="Cashback")) == "Cashback [k.1:a-b_c]"
    assert comment_for(_request("k-2")) == "[k-2]"
    assert key_from_comment("Cashback [k.1:a-b_c]") == "k.1:a-b_c"
    assert key_from_comment("no key") is None and key_from_comment(None) is None


def test_handles_come_from_the_bound_store(clean: QiwiSandbox) -> None:
    """Two provider instances (two workers) bound to one store use the same id for a key."""
    store = MemoryHandleStore()
    first, second = _provider(clean), _provider(clean)
    first.bind_handles(store)
    second.bind_handles(store)
    request = _request("shared-1")
    first.submit(request, "shared-1")
    clean.settle()
    assert second.status("shared-1", request).status is PayoutStatus.SUCCEEDED
    assert second.submit(request, "shared-1").status is PayoutStatus.ACCEPTED
    assert len(clean.transfers()) == 1


def test_settings_are_checked(sandbox: QiwiSandbox) -> None:
    with pytest.raises(ValueError):
        QiwiProvider({"credentials": {"token": "t"}})
    for bad in ({"history_days": 91}, {"history_rows": 51}, {"id_base": -1},
                {"fee_percent": 0.5}, {"provider_id": "99"}):
        with pytest.raises(ValueError):
            _provider(sandbox, **bad)
    quoted = _provider(sandbox, fee_percent="1", fee_fixed="0.5")
    assert quoted.quote(Decimal("100.00"), GOOD).fee == Decimal("1.50")


def test_cli_prints_what_it_accepts(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[QiwiSandbox] = []
    monkeypatch.setattr(QiwiSandbox, "serve", lambda self: served.append(self))
    main(["--port", "0", "--token", "tok-9", "--webhook-secret", "a2V5LTk="])
    out = capsys.readouterr().out
    assert "tok-9" in out and "a2V5LTk=" in out
    [sandbox] = served
    try:
        assert sandbox.url in out
        provider = QiwiProvider({"base_url": sandbox.url, "read_timeout": 0.5,
                                 "credentials": {"token": "tok-9", "wallet": WALLET,
                                                 "webhook_key": "a2V5LTk="}})
        assert provider.submit(_request("cli-1"), "cli-1").status is PayoutStatus.ACCEPTED
    finally:
        sandbox.stop()
