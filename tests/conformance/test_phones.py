"""The conformance kit run on ``mts``, ``megafon`` and ``beeline`` against the phone sandbox
(YooKassa mass payouts), plus protocol tests: certificates, ported numbers, reversals."""
from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from payment_providers.phones.client import (
    CONTENT_TYPE,
    DEPOSITION_PATH,
    TestSigner,
    deposition_xml,
    parse_xml,
)
from payment_providers.phones.provider import (
    BeelineProvider,
    MegafonProvider,
    MtsProvider,
    PhoneProvider,
)
from payment_providers.phones.sandbox import MAGIC_PENDING, PhoneSandbox, magic_number
from plugins import ErrorCode, PayoutRequest, PayoutStatus
from plugins.testing import ConformanceCases, ProviderConformance

pytest_plugins = ["plugins.testing"]

GOOD_CREDENTIALS = {"certificate_name": "/business/cashback-sandbox",
                    "signing_secret": "sandbox-signing-secret"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[PhoneSandbox]:
    with PhoneSandbox(settle_after=0.05, expired_certificates={"/business/old"},
                      certificates={"/business/cashback-sandbox": "sandbox-signing-secret",
                                    "/business/old": "old-secret"}) as running:
        yield running


def _make(cls: type[PhoneProvider], sandbox: PhoneSandbox, **extra: object) -> PhoneProvider:
    return cls({"base_url": sandbox.url, "connect_timeout": 0.5, "read_timeout": 1.0, **extra})


def _cases(valid: dict[str, str]) -> ConformanceCases:
    return ConformanceCases(
        valid_accounts=valid,
        invalid_accounts={"": "empty", "   ": "empty", "+7 916 ABC-45-67": "characters",
                          "916 123 45 6": "format", "+7 (495) 123-45-67": "not_mobile",
                          "+7 701 123 45 67": "country", "+380 50 123 45 67": "country"},
        amount=Decimal("100.00"),
        magic_accounts={
            ErrorCode.INVALID_ACCOUNT: "+" + magic_number(42),
            ErrorCode.ACCOUNT_BLOCKED: "+" + magic_number(41),
            ErrorCode.RECIPIENT_LIMIT: "+" + magic_number(43),
            ErrorCode.REJECTED_BY_RECIPIENT: "+" + magic_number(31),
            ErrorCode.DECLINED: "+" + magic_number(105),
            ErrorCode.INSUFFICIENT_FUNDS: "+" + magic_number(45),
            ErrorCode.SENDER_LIMIT: "+" + magic_number(44),
            ErrorCode.AUTH: "+" + magic_number(55),
            ErrorCode.CONFIG: "+" + magic_number(21),
        },
        wrong_credentials={"certificate_name": "/business/someone-else",
                           "signing_secret": "sandbox-signing-secret"},
    )


class TestMts(ProviderConformance):
    @pytest.fixture
    def provider(self, sandbox: PhoneSandbox) -> PhoneProvider:
        return _make(MtsProvider, sandbox)

    @pytest.fixture
    def conformance_cases(self) -> ConformanceCases:
        return _cases({"+7 (916) 123-45-67": "+79161234567", "8 916 123 45 67": "+79161234567",
                       "9161234567": "+79161234567", "+79161234567": "+79161234567"})


class TestMegafon(ProviderConformance):
    @pytest.fixture
    def provider(self, sandbox: PhoneSandbox) -> PhoneProvider:
        return _make(MegafonProvider, sandbox)

    @pytest.fixture
    def conformance_cases(self) -> ConformanceCases:
        return _cases({"8-926-765-43-21": "+79267654321", "+7 926 765 43 21": "+79267654321"})


class TestBeeline(ProviderConformance):
    @pytest.fixture
    def provider(self, sandbox: PhoneSandbox) -> PhoneProvider:
        return _make(BeelineProvider, sandbox)

    @pytest.fixture
    def conformance_cases(self) -> ConformanceCases:
        return _cases({"(903) 555-12-34": "+79035551234", "79035551234": "+79035551234"})


# --------------------------------------------------------------------------- beyond the kit

@pytest.fixture
def clean(sandbox: PhoneSandbox) -> Iterator[PhoneSandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def _request(key: str, account: str = "+79161234567", amount: str = "100.00") -> PayoutRequest:
    return PayoutRequest(key, Decimal(amount), "RUB", account)


def test_registered_classes() -> None:
    from payment_providers.phones.provider import register_payout_providers

    classes = register_payout_providers()
    assert [c.code for c in classes] == ["mts", "megafon", "beeline"]
    assert [c.verbose_name["ru"] for c in classes] == ["МТС", "МегаФон", "Билайн"]
    assert [c.verbose_name["en"] for c in classes] == ["MTS", "MegaFon", "Beeline"]
    assert {c.currency for c in classes} == {"RUB"}


def test_unknown_certificate_is_refused_with_53(clean: PhoneSandbox) -> None:
    impostor = _make(MtsProvider, clean, credentials={
        "certificate_name": "/business/stranger", "signing_secret": "whatever"})
    result = impostor.submit(_request("cert-1"), "cert-1")
    assert (result.status, result.error) == (PayoutStatus.FAILED_RETRYABLE, ErrorCode.AUTH)
    assert "error=53" in result.raw_message
    assert clean.transfers() == []


@pytest.mark.parametrize(("credentials", "code"), [
    ({"certificate_name": "/business/old", "signing_secret": "old-secret"}, 55),
    ({"certificate_name": "/business/cashback-sandbox", "signing_secret": "forged"}, 51),
])
def test_expired_certificate_and_bad_signature(clean: PhoneSandbox, credentials: dict[str, str],
                                               code: int) -> None:
    provider = _make(MtsProvider, clean, credentials=credentials)
    result = provider.submit(_request(f"sig-{code}"), f"sig-{code}")
    assert result.error is ErrorCode.AUTH and f"error={code}" in result.raw_message
    status = provider.status(f"sig-{code}", _request(f"sig-{code}"))
    assert status.status is PayoutStatus.UNKNOWN  # says nothing about the payout
    assert clean.transfers() == []


def test_broken_envelope_is_50_and_unsigned_answer_is_not_trusted(clean: PhoneSandbox) -> None:
    url = clean.url + DEPOSITION_PATH
    answer = requests.post(url, data=b"<makeDepositionRequest/>", timeout=30,
                           headers={"Content-Type": CONTENT_TYPE})
    reply = parse_xml(TestSigner("x", "y").unwrap(answer.content), "makeDepositionResponse")
    assert (reply.get("status"), reply.get("error")) == ("3", "50")
    assert requests.post(url, data=b"x", timeout=30).status_code == 415
    # an answer signed with another server secret is garbled for us: unknown
    provider = _make(MtsProvider, clean, credentials={**GOOD_CREDENTIALS,
                                                      "server_secret": "not-yookassa"})
    result = provider.submit(_request("trust-1"), "trust-1")
    assert (result.status, result.error) == (PayoutStatus.UNKNOWN, ErrorCode.PROVIDER_UNAVAILABLE)


def test_field_errors_10_to_19(clean: PhoneSandbox) -> None:
    signer = TestSigner(**{"certificate_name": "/business/cashback-sandbox",
                           "secret": "sandbox-signing-secret"})

    def send(**overrides: object) -> tuple[str | None, str | None]:
        fields = {"agent_id": "250001", "client_order_id": "f-1", "dst_account": "79161234567",
                  "amount": Decimal("10.00"), "currency": "643", "contract": "x"}
        fields.update(overrides)
        document = deposition_xml(**fields)  # type: ignore[arg-type]
        answer = requests.post(clean.url + DEPOSITION_PATH, data=signer.wrap(document),
                               headers={"Content-Type": CONTENT_TYPE}, timeout=30)
        reply = parse_xml(signer.unwrap(answer.content), "makeDepositionResponse")
        return reply.get("status"), reply.get("error")

    assert send(agent_id="999") == ("3", "11")
    assert send(currency="10643") == ("3", "14")
    assert send(dst_account="4100116075156746") == ("3", "16")
    assert send(amount=Decimal("0.00")) == ("3", "17")
    assert send(client_order_id="bad id with spaces") == ("3", "18")
    assert send(contract="") == ("3", "19")
    assert send(requested_at="yesterday") == ("3", "15")
    assert clean.transfers() == []
    assert send()[0] in ("0", "1")


def test_ported_number_is_refused_with_a_clear_message(clean: PhoneSandbox) -> None:
    """+7 916 111-22-33 is an MTS block ported to MegaFon: MTS refuses, MegaFon pays."""
    mts, megafon = _make(MtsProvider, clean), _make(MegafonProvider, clean)
    request = _request("ported-1", "+79161112233")
    result = mts.submit(request, request.idempotency_key)
    assert (result.status, result.error) == (PayoutStatus.FAILED_FINAL, ErrorCode.INVALID_ACCOUNT)
    assert "served by megafon, not mts (ported)" in result.raw_message
    other = _request("ported-2", "+79161112233")
    megafon.submit(other, other.idempotency_key)
    clean.settle()
    assert megafon.status(other.idempotency_key, other).status is PayoutStatus.SUCCEEDED


def test_replay_and_conflict_by_contract(clean: PhoneSandbox) -> None:
    provider = _make(BeelineProvider, clean)
    request = _request("rep-1", "+79035551234")
    first = provider.submit(request, "rep-1")
    assert first.status is PayoutStatus.PENDING and first.provider_reference == "rep-1"
    other_contract = _make(BeelineProvider, clean, contract="Another basis")
    conflict = other_contract.submit(request, "rep-1")
    assert conflict.error is ErrorCode.DUPLICATE_CONFLICT
    assert len(clean.transfers()) == 1


def test_status_moves_from_1_to_0(clean: PhoneSandbox) -> None:
    provider = _make(MtsProvider, clean)
    request = _request("move-1")
    assert provider.submit(request, "move-1").status is PayoutStatus.PENDING
    clean.advance(60)
    assert provider.status("move-1", request).status is PayoutStatus.SUCCEEDED
    stuck = _request("stuck-1", "+" + MAGIC_PENDING)
    provider.submit(stuck, "stuck-1")
    clean.advance(3600)
    assert provider.status("stuck-1", stuck).status is PayoutStatus.PENDING


@pytest.mark.parametrize("code", [31, 110])
def test_reversal_notification_after_success(clean: PhoneSandbox, code: int) -> None:
    """errorDepositionNotification (31/110) after a success: status says reversed."""
    from plugins.testing import _Receiver

    provider = _make(MegafonProvider, clean)
    request = _request(f"rev-{code}", "+79267654321")
    provider.submit(request, request.idempotency_key)
    clean.settle()
    assert provider.status(request.idempotency_key, request).status is PayoutStatus.SUCCEEDED
    with _Receiver() as receiver:
        assert clean.notify_reversal(request.idempotency_key, code, receiver.url) == 200
    [(headers, body)] = receiver.received
    assert provider.parse_callback(headers, body) == request.idempotency_key
    result = provider.status(request.idempotency_key, request)
    assert result.status is PayoutStatus.REVERSED, result
    assert f"error={code}" in result.raw_message
    assert clean.ledger.balance == Decimal("100000.00")


def test_digest_client_order_ids(clean: PhoneSandbox) -> None:
    provider = _make(MtsProvider, clean, client_order_id="digest")
    request = _request("digest-key-1")
    result = provider.submit(request, request.idempotency_key)
    [transfer] = clean.transfers()
    assert transfer.handle.isdigit() and result.provider_reference == transfer.handle
    clean.settle()
    assert provider.status(request.idempotency_key, request).status is PayoutStatus.SUCCEEDED


def test_test_gateway_currency_is_a_setting() -> None:
    with PhoneSandbox(currency_code="10643", settle_after=0) as sandbox:
        provider = _make(MtsProvider, sandbox, currency_code="10643")
        request = _request("cur-1")
        assert provider.submit(request, "cur-1").status in (PayoutStatus.PENDING,
                                                            PayoutStatus.SUCCEEDED)
        live = _make(MtsProvider, sandbox)
        assert live.submit(_request("cur-2"), "cur-2").error is ErrorCode.CONFIG


def test_limits_are_settings(clean: PhoneSandbox) -> None:
    provider = _make(MtsProvider, clean, min_amount="10.00", max_amount="5000.00")
    assert (provider.limits.min_amount, provider.limits.max_amount) == (Decimal("10.00"),
                                                                        Decimal("5000.00"))
    assert MtsProvider.limits.max_amount == Decimal("15000.00")
    result = provider.submit(_request("lim-1", amount="5.00"), "lim-1")
    assert result.error is ErrorCode.AMOUNT_TOO_SMALL and clean.transfers() == []


def test_cli_prints_what_it_accepts(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from payment_providers.phones import sandbox as module

    monkeypatch.setattr(module.PhoneSandbox, "serve", lambda self: None)
    module.main(["--port", "0", "--agent-id", "42=mts", "--certificate-name", "/business/x"])
    out = capsys.readouterr().out
    assert "'42': 'mts'" in out and "/business/x" in out and "makeDeposition" in out
