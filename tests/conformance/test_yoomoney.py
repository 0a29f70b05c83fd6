"""The conformance kit run on the ``yoomoney`` provider against its local YooKassa sandbox, plus
protocol tests (real HTTP, no mocks)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from payment_providers.yoomoney.provider import YooMoneyProvider
from payment_providers.yoomoney.sandbox import YooMoneySandbox, main
from plugins import ErrorCode, PayoutRequest, PayoutStatus
from plugins.testing import ConformanceCases, ProviderConformance

pytest_plugins = ["plugins.testing"]

SHOP, SECRET = "sandbox-shop", "test_sandbox-secret"
NAMED = "4100116075156746"
ANONYMOUS = "41001614575714"
IDENTIFIED = "4100116074720387"
FRAUD, REJECTED, FORBIDDEN, REVOKED, STUCK = (
    "410019990000110", "410019990000280", "410019990000351", "410019990000422",
    "410019990000592")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[YooMoneySandbox]:
    with YooMoneySandbox(settle_after=0.05) as running:
        yield running


def _settings(sandbox: YooMoneySandbox, **extra: object) -> dict[str, object]:
    return {"base_url": f"{sandbox.url}/v3", "connect_timeout": 0.5, "read_timeout": 1.0,
            "credentials": {"shop_id": SHOP, "secret_key": SECRET}, **extra}


@pytest.fixture
def provider(sandbox: YooMoneySandbox) -> YooMoneyProvider:
    return YooMoneyProvider(_settings(sandbox))


@pytest.fixture
def conformance_cases() -> ConformanceCases:
    return ConformanceCases(
        valid_accounts={NAMED: NAMED, "4100 1160 7515 6746": NAMED,
                        " 4100-1160-7515-6746 ": NAMED, ANONYMOUS: ANONYMOUS,
                        IDENTIFIED: IDENTIFIED},
        invalid_accounts={"": "empty", "   ": "empty", "4100116075156747": "check_digit",
                          "41001abc075156746": "format", "4100": "length",
                          "410011607515674612345": "length", "01001614575714": "prefix",
                          "5100116075156746": "prefix"},
        amount=Decimal("100.00"),
        magic_accounts={
            ErrorCode.RECIPIENT_LIMIT: "41001614575572",
            ErrorCode.INSUFFICIENT_FUNDS: "410011806060766",
            ErrorCode.DECLINED: "410011788545536",
            ErrorCode.REJECTED_BY_RECIPIENT: REJECTED,
            ErrorCode.AUTH: REVOKED,
            ErrorCode.CONFIG: FORBIDDEN,
        },
        wrong_credentials={"shop_id": SHOP, "secret_key": "wrong"},
    )


class TestYooMoney(ProviderConformance):
    """The whole provider contract, on the YooKassa payouts sandbox."""

    def test_reversal_after_success(self, provider, sandbox, conformance_cases) -> None:
        """YooKassa v3 has no ``reversed`` payout status for wallets: a payout the sandbox
        ledger reverses still reads ``succeeded`` (never a failure)."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        assert self.settled_status(provider, sandbox, request).status is PayoutStatus.SUCCEEDED
        [transfer] = sandbox.transfers()
        sandbox.reverse(transfer.handle)
        assert provider.status(request.idempotency_key, request).status is PayoutStatus.SUCCEEDED


# --------------------------------------------------------------------------- beyond the kit

@pytest.fixture
def clean(sandbox: YooMoneySandbox) -> Iterator[YooMoneySandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def _request(key: str, account: str = NAMED, amount: str = "100.00", **extra: object
             ) -> PayoutRequest:
    return PayoutRequest(key, Decimal(amount), "RUB", account, **extra)  # type: ignore[arg-type]


def _body(account: str = NAMED, value: str = "100.00") -> dict[str, object]:
    return {"amount": {"value": value, "currency": "RUB"},
            "payout_destination_data": {"type": "yoo_money", "account_number": account},
            "description": "cashback", "metadata": {"payout_id": "7"}}


def _post(sandbox: YooMoneySandbox, body: object, *, key: str | None = "raw-1",
          auth: tuple[str, str] | None = (SHOP, SECRET), **kwargs: object) -> requests.Response:
    headers = {"Idempotence-Key": key} if key is not None else {}
    if "data" not in kwargs:
        kwargs["json"] = body
    return requests.post(f"{sandbox.url}/v3/payouts", headers=headers, auth=auth, timeout=30,
                         **kwargs)  # type: ignore[arg-type]


def test_wire_format_of_the_create_call(clean: YooMoneySandbox) -> None:
    """The provider sends YooKassa's body and headers; the answer is a YooKassa payout object."""
    seen: list[object] = []
    original = clean.handle

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return original(request)

    clean.handle = spy  # type: ignore[method-assign]
    try:
        provider = YooMoneyProvider(_settings(clean))
        result = provider.submit(_request("wire-1", description="cashback #7",
                                          metadata={"payout_id": "7"}), "wire-1")
    finally:
        del clean.handle
    [request] = seen
    assert request.method == "POST" and request.path == "/v3/payouts"
    assert request.headers["Idempotence-Key"] == "wire-1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(request.body) == {
        "amount": {"value": "100.00", "currency": "RUB"},
        "payout_destination_data": {"type": "yoo_money", "account_number": NAMED},
        "description": "cashback #7", "metadata": {"payout_id": "7"}}
    assert result.status is PayoutStatus.PENDING
    assert re.fullmatch(r"po-[0-9a-f-]{36}", result.provider_reference or "")


def test_payout_object_shape(clean: YooMoneySandbox) -> None:
    """200 with application/json and the documented fields; then GET by id."""
    answer = _post(clean, _body())
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    payout = answer.json()
    assert set(payout) >= {"id", "amount", "status", "payout_destination", "description",
                           "created_at", "test", "metadata"}
    assert payout["amount"] == {"value": "100.00", "currency": "RUB"}
    assert payout["status"] == "pending" and payout["test"] is True
    assert payout["payout_destination"] == {"type": "yoo_money", "account_number": NAMED}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payout["created_at"])
    clean.settle()
    read = requests.get(f"{clean.url}/v3/payouts/{payout['id']}", auth=(SHOP, SECRET), timeout=30)
    assert read.status_code == 200
    assert read.json()["status"] == "succeeded" and "succeeded_at" in read.json()
    missing = requests.get(f"{clean.url}/v3/payouts/po-nope", auth=(SHOP, SECRET), timeout=30)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_canceled_payout_carries_cancellation_details(clean: YooMoneySandbox) -> None:
    payout = _post(clean, _body("41001614575572")).json()
    assert payout["status"] == "canceled"
    assert payout["cancellation_details"] == {"party": "yoo_money",
                                              "reason": "one_time_limit_exceeded"}


def test_auth_is_basic_and_checked(clean: YooMoneySandbox) -> None:
    """No or wrong credentials: 401 invalid_credentials in YooKassa's error shape."""
    for auth in (None, (SHOP, "wrong"), ("other-shop", SECRET)):
        answer = _post(clean, _body(), auth=auth)
        assert answer.status_code == 401
        assert answer.headers["Content-Type"] == "application/json"
        body = answer.json()
        assert (body["type"], body["code"]) == ("error", "invalid_credentials")
        assert body["id"] and body["description"]
    assert clean.transfers() == []


@pytest.mark.parametrize(("mutate", "parameter"), [
    (lambda b: b.pop("amount"), "amount"),
    (lambda b: b["amount"].update(value="100"), "amount.value"),
    (lambda b: b["amount"].update(value="100.001"), "amount.value"),
    (lambda b: b["amount"].update(value=100), "amount.value"),
    (lambda b: b["amount"].update(value="0.99"), "amount.value"),
    (lambda b: b["amount"].update(currency="USD"), "amount.currency"),
    (lambda b: b.pop("payout_destination_data"), "payout_destination_data"),
    (lambda b: b["payout_destination_data"].update(type="bank_card"),
     "payout_destination_data.type"),
    (lambda b: b["payout_destination_data"].update(account_number="4100116075156747"),
     "payout_destination_data.account_number"),
    (lambda b: b["payout_destination_data"].update(account_number="4100"),
     "payout_destination_data.account_number"),
    (lambda b: b.update(description="x" * 129), "description"),
    (lambda b: b.update(metadata={"k": 1}), "metadata"),
], ids=["no-amount", "no-decimals", "three-decimals", "number", "below-min", "currency",
        "no-destination", "type", "check-digit", "short", "description", "metadata"])
def test_input_is_validated(clean: YooMoneySandbox, mutate, parameter) -> None:  # type: ignore[no-untyped-def]
    body = _body()
    mutate(body)
    answer = _post(clean, body)
    assert answer.status_code == 400
    error = answer.json()
    assert (error["type"], error["code"], error["parameter"]) == (
        "error", "invalid_request", parameter)
    assert clean.transfers() == []


def test_idempotence_key_is_required(clean: YooMoneySandbox) -> None:
    answer = _post(clean, _body(), key=None)
    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["parameter"]) == ("invalid_request",
                                                                   "Idempotence-Key")
    assert _post(clean, _body(), key="k" * 65).status_code == 400
    assert clean.transfers() == []


def test_wrong_method_path_and_media_type(clean: YooMoneySandbox) -> None:
    url = f"{clean.url}/v3/payouts"
    assert requests.put(url, auth=(SHOP, SECRET), timeout=30).status_code == 405
    assert requests.get(f"{clean.url}/v3/nothing", auth=(SHOP, SECRET),
                        timeout=30).status_code == 404
    text = requests.post(url, data=json.dumps(_body()), auth=(SHOP, SECRET), timeout=30,
                         headers={"Idempotence-Key": "m", "Content-Type": "text/plain"})
    assert text.status_code == 415 and text.json()["type"] == "error"


def test_replay_returns_the_original_and_conflict_is_reported(clean: YooMoneySandbox) -> None:
    """Same key + same data: the original payout; same key + other data: 400 on the key."""
    first = _post(clean, _body()).json()
    again = _post(clean, _body()).json()
    assert again["id"] == first["id"]
    other = _body()
    other["description"] = "something else"
    conflict = _post(clean, other)
    assert conflict.status_code == 400
    assert (conflict.json()["code"], conflict.json()["parameter"]) == ("invalid_request",
                                                                       "Idempotence-Key")
    assert len(clean.transfers()) == 1


def test_status_repeats_the_same_post(clean: YooMoneySandbox) -> None:
    """A fresh provider (no payout id known) resolves status by repeating the POST: no new
    payout; a provider that saw the id uses GET."""
    request = _request("repeat-1")
    YooMoneyProvider(_settings(clean)).submit(request, "repeat-1")
    clean.settle()
    fresh = YooMoneyProvider(_settings(clean))
    result = fresh.status("repeat-1", request)
    assert result.status is PayoutStatus.SUCCEEDED and result.amount == Decimal("100.00")
    assert len(clean.transfers()) == 1
    assert fresh.status("repeat-1").status is PayoutStatus.SUCCEEDED  # now by GET
    assert YooMoneyProvider(_settings(clean)).status("repeat-1").error is ErrorCode.NOT_FOUND


def test_other_cancellation_reasons(clean: YooMoneySandbox) -> None:
    provider = YooMoneyProvider(_settings(clean))
    fraud = provider.submit(_request("fraud-1", FRAUD), "fraud-1")
    assert (fraud.status, fraud.error) == (PayoutStatus.FAILED_FINAL, ErrorCode.DECLINED)
    assert "fraud_suspected" in fraud.raw_message
    periodic = provider.submit(_request("period-1", "41001614575643"), "period-1")
    assert (periodic.status, periodic.error) == (PayoutStatus.FAILED_FINAL,
                                                 ErrorCode.RECIPIENT_LIMIT)
    stuck = provider.submit(_request("stuck-1", STUCK), "stuck-1")
    clean.settle()
    assert provider.status("stuck-1", _request("stuck-1", STUCK)).status is PayoutStatus.PENDING


def test_our_float_running_out_is_insufficient_funds() -> None:
    """A balance too low for the payout: canceled insufficient_funds, retryable."""
    with YooMoneySandbox(balance=Decimal("50.00"), settle_after=0.05) as sandbox:
        result = YooMoneyProvider(_settings(sandbox)).submit(_request("poor-1"), "poor-1")
        assert (result.status, result.error) == (PayoutStatus.FAILED_RETRYABLE,
                                                 ErrorCode.INSUFFICIENT_FUNDS)


def test_status_errors_are_never_failures(clean: YooMoneySandbox) -> None:
    """During status, a 5xx or a 429 says nothing about the payout: unknown."""
    provider = YooMoneyProvider(_settings(clean))
    request = _request("st-1")
    provider.submit(request, "st-1")
    fresh = YooMoneyProvider(_settings(clean))
    # Before commit: a slow request left over from an earlier test cannot eat the fault.
    clean.inject(errors=1, error_status=500, errors_after_commit=False)
    assert fresh.status("st-1", request).status is PayoutStatus.UNKNOWN
    clean.inject(rate_limit=1)
    limited = fresh.status("st-1", request)
    assert (limited.status, limited.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)


def test_sandbox_settles_on_repeated_posts() -> None:
    """With ``settle_reads=2`` the second repeat of the POST sees the outcome."""
    with YooMoneySandbox(settle_after=None, settle_reads=2) as sandbox:
        provider = YooMoneyProvider(_settings(sandbox))
        request = _request("reads-1")
        provider.submit(request, "reads-1")
        fresh = YooMoneyProvider(_settings(sandbox))
        assert fresh.status("reads-1", request).status is PayoutStatus.PENDING
        assert YooMoneyProvider(_settings(sandbox)).status(
            "reads-1", request).status is PayoutStatus.SUCCEEDED


def test_quote_uses_the_configured_tariff(sandbox: YooMoneySandbox) -> None:
    provider = YooMoneyProvider(_settings(sandbox, fee_percent="1.5", fee_fixed="10"))
    assert provider.quote(Decimal("100.00"), NAMED).fee == Decimal("11.50")
    with pytest.raises(ValueError):
        YooMoneyProvider(_settings(sandbox, fee_percent=0.5))
    with pytest.raises(ValueError):
        YooMoneyProvider({"credentials": {"shop_id": SHOP}})


def test_cli_prints_the_credentials(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``main()`` announces the URL and the credentials it accepts, then serves."""
    served: list[YooMoneySandbox] = []
    monkeypatch.setattr(YooMoneySandbox, "serve", lambda self: served.append(self))
    main(["--port", "0", "--shop-id", "shop-9", "--secret-key", "s3cret"])
    out = capsys.readouterr().out
    assert "shop-9" in out and "s3cret" in out and "/v3" in out
    [sandbox] = served
    try:
        assert sandbox.url in out
        assert (sandbox.shop_id, sandbox.secret_key) == ("shop-9", "s3cret")
        provider = YooMoneyProvider({"base_url": f"{sandbox.url}/v3", "read_timeout": 0.5,
                                     "credentials": {"shop_id": "shop-9", "secret_key": "s3cret"}})
        assert provider.submit(_request("cli-1"), "cli-1").status is PayoutStatus.PENDING
    finally:
        sandbox.stop()
