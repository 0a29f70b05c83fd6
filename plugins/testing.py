"""The provider conformance kit: one contract test suite for every payout provider.

Use it from a provider's test module (real HTTP against the provider's local sandbox, no mocks)::

    pytest_plugins = ["plugins.testing"]

    @pytest.fixture(scope="module")
    def sandbox():
        with MySandbox(settle_after=0.05) as running:
            yield running

    @pytest.fixture
    def provider(sandbox):
        return MyProvider({"base_url": sandbox.url, "read_timeout": 0.3, "connect_timeout": 0.5,
                           "credentials": {...}})

    @pytest.fixture
    def conformance_cases():
        return ConformanceCases(valid_accounts={...}, invalid_accounts={...},
                                amount=Decimal("100.00"), magic_accounts={...})

    class TestMyProvider(ProviderConformance):
        pass

The sandbox must settle pending transfers by time (``settle_after``) or by status reads
(``settle_reads``), and the provider fixture needs a small ``read_timeout`` (at most 1 second):
one test makes the sandbox answer later than that. The kit resets the sandbox around each test.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from plugins.manager import provider_class_problems
from plugins.provider import (
    ErrorCode,
    InvalidAccount,
    PayoutProvider,
    PayoutProviderError,
    PayoutRequest,
    PayoutStatus,
    Result,
)
from plugins.sandbox import Sandbox

__all__ = ["ACCOUNT_FORCED_CODES", "ConformanceCases", "ProviderConformance"]

#: Error codes a provider can usually force with a magic recipient account in its sandbox.
ACCOUNT_FORCED_CODES: tuple[ErrorCode, ...] = (
    ErrorCode.INVALID_ACCOUNT, ErrorCode.ACCOUNT_BLOCKED, ErrorCode.IDENTIFICATION_REQUIRED,
    ErrorCode.RECIPIENT_LIMIT, ErrorCode.REJECTED_BY_RECIPIENT, ErrorCode.DECLINED,
    ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.SENDER_LIMIT, ErrorCode.AUTH, ErrorCode.CONFIG,
)


@dataclass(frozen=True)
class ConformanceCases:
    """What a provider package tells the kit about its accounts (the ``conformance_cases`` fixture)."""

    #: Raw customer input -> the normalized account ``validate_account`` must return.
    valid_accounts: Mapping[str, str]
    #: Raw customer input -> the ``InvalidAccount.reason_code`` it must raise.
    invalid_accounts: Mapping[str, str]
    #: An amount within limits that succeeds when paid to the first valid account.
    amount: Decimal
    #: Error code -> a normalized account that makes the sandbox fail with it
    #: (codes from :data:`ACCOUNT_FORCED_CODES`; a missing code skips its test).
    magic_accounts: Mapping[ErrorCode, str] = field(default_factory=dict)
    #: Credentials the sandbox rejects, for the ``auth`` test (None skips it).
    wrong_credentials: Mapping[str, str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: payout provider contract tests from plugins.testing")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the kit's tests ``conformance`` (``-m conformance`` selects them)."""
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, ProviderConformance):
            item.add_marker("conformance")


def _key() -> str:
    return f"conf-{uuid.uuid4().hex[:24]}"


class ProviderConformance:
    """The contract tests. Subclass it as ``Test<Provider>`` where the fixtures ``provider``,
    ``sandbox`` and ``conformance_cases`` are available."""

    @pytest.fixture(autouse=True)
    def _fresh_sandbox(self, sandbox: Sandbox) -> Iterator[None]:
        sandbox.reset()
        yield
        sandbox.reset()

    # -- helpers --
    @staticmethod
    def request(provider: PayoutProvider, cases: ConformanceCases, *, account: str | None = None,
                amount: Decimal | None = None, key: str | None = None) -> PayoutRequest:
        """A request for ``cases.amount`` to the first valid account, under a fresh key."""
        return PayoutRequest(idempotency_key=key or _key(),
                             amount=cases.amount if amount is None else amount,
                             currency=provider.currency,
                             account=account or next(iter(cases.valid_accounts.values())),
                             description="conformance", metadata={"payout_id": "1"})

    @staticmethod
    def settled_status(provider: PayoutProvider, sandbox: Sandbox, request: PayoutRequest) -> Result:
        """Let the sandbox settle, then ask ``status`` for the request's key."""
        sandbox.settle()
        return provider.status(request.idempotency_key, request)

    @staticmethod
    def assert_no_money_moved(result: Result, sandbox: Sandbox) -> None:
        assert result.status is PayoutStatus.FAILED_RETRYABLE, result
        assert all(t.status == "failed" for t in sandbox.transfers()), sandbox.transfers()

    # -- declaration and accounts --
    def test_class_declares_the_contract(self, provider: PayoutProvider) -> None:
        """The provider class passes the startup validation of the plugin manager."""
        assert provider_class_problems(type(provider)) == []
        assert provider.read_timeout <= 1.0, "give the provider fixture a small read_timeout"

    def test_valid_accounts_are_normalized(self, provider: PayoutProvider,
                                           conformance_cases: ConformanceCases) -> None:
        """validate_account normalizes valid input, and normalizing twice changes nothing."""
        assert conformance_cases.valid_accounts, "give at least one valid account"
        for raw, normalized in conformance_cases.valid_accounts.items():
            assert provider.validate_account(raw) == normalized, raw
            assert provider.validate_account(normalized) == normalized, normalized

    def test_invalid_accounts_are_rejected(self, provider: PayoutProvider,
                                           conformance_cases: ConformanceCases) -> None:
        """Invalid input raises InvalidAccount with the expected reason and a readable message."""
        assert conformance_cases.invalid_accounts, "give at least one invalid account"
        for raw, reason in conformance_cases.invalid_accounts.items():
            with pytest.raises(InvalidAccount) as caught:
                provider.validate_account(raw)
            assert caught.value.reason_code == reason, raw
            assert caught.value.code is ErrorCode.INVALID_ACCOUNT
            text = str(caught.value.message)
            assert text and "%(" not in text, text

    # -- money, locally --
    def test_quote_charges_us_not_the_customer(self, provider: PayoutProvider,
                                               conformance_cases: ConformanceCases) -> None:
        """quote returns Decimals; the customer is credited the full amount."""
        account = next(iter(conformance_cases.valid_accounts.values()))
        quote = provider.quote(conformance_cases.amount, account)
        assert isinstance(quote.fee, Decimal) and quote.fee >= 0
        assert quote.credited == conformance_cases.amount

    def test_amounts_outside_limits_are_refused_locally(self, provider: PayoutProvider,
                                                        sandbox: Sandbox,
                                                        conformance_cases: ConformanceCases) -> None:
        """Below min / above max: quote raises, submit fails final without contacting the provider."""
        step = Decimal(1).scaleb(-provider.amount_places)
        account = next(iter(conformance_cases.valid_accounts.values()))
        for amount, code in ((provider.limits.min_amount - step, ErrorCode.AMOUNT_TOO_SMALL),
                             (provider.limits.max_amount + step, ErrorCode.AMOUNT_TOO_LARGE)):
            if amount <= 0:
                continue
            with pytest.raises(PayoutProviderError) as caught:
                provider.quote(amount, account)
            assert caught.value.code is code
            assert str(caught.value)
            request = self.request(provider, conformance_cases, amount=amount)
            result = provider.submit(request, request.idempotency_key)
            assert (result.status, result.error) == (PayoutStatus.FAILED_FINAL, code)
        assert sandbox.transfers() == []

    def test_caller_bugs_raise(self, provider: PayoutProvider,
                               conformance_cases: ConformanceCases) -> None:
        """A key that does not match the request is a bug: ValueError, nothing sent."""
        request = self.request(provider, conformance_cases)
        with pytest.raises(ValueError):
            provider.submit(request, _key())

    # -- the happy path and idempotency --
    def test_submit_then_status_succeeds(self, provider: PayoutProvider, sandbox: Sandbox,
                                         conformance_cases: ConformanceCases) -> None:
        """A payout is accepted, then status reports it succeeded: one transfer, right amount."""
        request = self.request(provider, conformance_cases)
        first = provider.submit(request, request.idempotency_key)
        assert first.status in (PayoutStatus.ACCEPTED, PayoutStatus.PENDING,
                                PayoutStatus.SUCCEEDED), first
        final = self.settled_status(provider, sandbox, request)
        assert final.status is PayoutStatus.SUCCEEDED, final
        assert final.error is None
        assert final.amount in (None, request.amount)
        [transfer] = sandbox.transfers()
        assert (transfer.amount, transfer.status) == (request.amount, "succeeded")

    def test_status_moves_over_time(self, provider: PayoutProvider, sandbox: Sandbox,
                                    conformance_cases: ConformanceCases) -> None:
        """Without help, a pending payout settles as the sandbox clock moves or it is polled."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        sandbox.advance(3600)
        for _ in range(5):
            result = provider.status(request.idempotency_key, request)
            if not result.status.in_flight:
                break
        assert result.status is PayoutStatus.SUCCEEDED, result

    def test_replay_returns_the_same_transfer(self, provider: PayoutProvider, sandbox: Sandbox,
                                              conformance_cases: ConformanceCases) -> None:
        """Submitting the same request under the same key twice pays once."""
        request = self.request(provider, conformance_cases)
        first = provider.submit(request, request.idempotency_key)
        again = provider.submit(request, request.idempotency_key)
        assert again.status is not PayoutStatus.FAILED_FINAL, again
        if first.provider_reference and again.provider_reference:
            assert first.provider_reference == again.provider_reference
        assert len(sandbox.transfers()) == 1

    def test_same_key_different_data_conflicts(self, provider: PayoutProvider, sandbox: Sandbox,
                                               conformance_cases: ConformanceCases) -> None:
        """The same key with another amount is duplicate_conflict, and the first transfer stands."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        changed = self.request(provider, conformance_cases, key=request.idempotency_key,
                               amount=request.amount + provider.limits.min_amount)
        result = provider.submit(changed, changed.idempotency_key)
        assert (result.status, result.error) == (PayoutStatus.FAILED_FINAL,
                                                 ErrorCode.DUPLICATE_CONFLICT), result
        [transfer] = sandbox.transfers()
        assert transfer.amount == request.amount

    # -- unknown outcomes and their resolution --
    def _unknown_then_resolved(self, provider: PayoutProvider, sandbox: Sandbox,
                               cases: ConformanceCases, **faults: Any) -> Result:
        request = self.request(provider, cases)
        sandbox.inject(**faults)
        result = provider.submit(request, request.idempotency_key)
        assert result.status is PayoutStatus.UNKNOWN, result
        assert result.error is not None
        sandbox.reset_faults()
        final = self.settled_status(provider, sandbox, request)
        assert final.status is PayoutStatus.SUCCEEDED, final
        assert len(sandbox.transfers()) == 1
        return result

    def test_timeout_after_commit_is_unknown_then_resolved(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """The provider commits but answers too late: unknown/timeout; status finds the transfer."""
        result = self._unknown_then_resolved(provider, sandbox, conformance_cases,
                                             latency=provider.read_timeout + 0.2)
        assert result.error is ErrorCode.TIMEOUT

    def test_dropped_connection_after_commit_is_unknown_then_resolved(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """The provider commits, then the connection drops without an answer: unknown."""
        self._unknown_then_resolved(provider, sandbox, conformance_cases, drop=1)

    def test_server_error_after_commit_is_unknown_then_resolved(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """The provider commits, then answers 500: unknown, never failed."""
        self._unknown_then_resolved(provider, sandbox, conformance_cases, errors=1,
                                    error_status=500)

    def test_garbled_answer_is_unknown_then_resolved(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """The provider commits, then the answer is garbage: unknown."""
        self._unknown_then_resolved(provider, sandbox, conformance_cases, garble=1)

    def test_server_error_before_commit_is_unknown_and_safe_to_resubmit(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """503 before anything was recorded: unknown; status says not_found (or settles it);
        resubmitting under the same key pays exactly once."""
        request = self.request(provider, conformance_cases)
        sandbox.inject(errors=1, error_status=503, errors_after_commit=False)
        result = provider.submit(request, request.idempotency_key)
        assert result.status is PayoutStatus.UNKNOWN, result
        status = provider.status(request.idempotency_key, request)
        if status.status is PayoutStatus.UNKNOWN:
            assert status.error is ErrorCode.NOT_FOUND, status
            assert sandbox.transfers() == []
            provider.submit(request, request.idempotency_key)
        final = self.settled_status(provider, sandbox, request)
        assert final.status is PayoutStatus.SUCCEEDED, final
        assert len(sandbox.transfers()) == 1

    def test_status_of_an_unknown_key_is_not_found(self, provider: PayoutProvider,
                                                   sandbox: Sandbox) -> None:
        """Asking about a key the provider never saw is unknown/not_found, never failed."""
        result = provider.status(_key())
        assert (result.status, result.error) == (PayoutStatus.UNKNOWN, ErrorCode.NOT_FOUND), result

    # -- retryable refusals --
    def test_rate_limit_is_retryable(self, provider: PayoutProvider, sandbox: Sandbox,
                                     conformance_cases: ConformanceCases) -> None:
        """429: failed_retryable/rate_limited, with the wait when the provider gives one."""
        request = self.request(provider, conformance_cases)
        sandbox.inject(rate_limit=1, retry_after=2)
        result = provider.submit(request, request.idempotency_key)
        assert result.error is ErrorCode.RATE_LIMITED, result
        assert result.retry_after in (None, timedelta(seconds=2)), result
        self.assert_no_money_moved(result, sandbox)

    def test_provider_down_is_retryable_and_nothing_is_sent(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """Connection refused: submit is failed_retryable/provider_unavailable, status is unknown."""
        request = self.request(provider, conformance_cases)
        sandbox.inject(down=True)
        result = provider.submit(request, request.idempotency_key)
        assert result.error is ErrorCode.PROVIDER_UNAVAILABLE, result
        self.assert_no_money_moved(result, sandbox)
        status = provider.status(request.idempotency_key, request)
        assert status.status is PayoutStatus.UNKNOWN, status
        if provider.supports_balance:
            with pytest.raises(PayoutProviderError):
                provider.balance()
        sandbox.reset_faults()
        provider.submit(request, request.idempotency_key)
        assert self.settled_status(provider, sandbox, request).status is PayoutStatus.SUCCEEDED
        assert len(sandbox.transfers()) == 1

    def test_wrong_credentials_pause_the_provider(self, provider: PayoutProvider,
                                                  sandbox: Sandbox,
                                                  conformance_cases: ConformanceCases) -> None:
        """Rejected credentials: failed_retryable with a code that pauses the provider."""
        if conformance_cases.wrong_credentials is None:
            pytest.skip("no wrong_credentials in conformance_cases")
        impostor = type(provider).from_settings(
            {**provider.settings, "credentials": conformance_cases.wrong_credentials})
        request = self.request(impostor, conformance_cases)
        result = impostor.submit(request, request.idempotency_key)
        assert result.error is not None and result.error.pauses_provider, result
        self.assert_no_money_moved(result, sandbox)

    @pytest.mark.parametrize("code", ACCOUNT_FORCED_CODES, ids=lambda code: code.value)
    def test_magic_account_forces_error(self, code: ErrorCode, provider: PayoutProvider,
                                        sandbox: Sandbox,
                                        conformance_cases: ConformanceCases) -> None:
        """Each magic account ends in its error code with the matching status; no money moves."""
        account = conformance_cases.magic_accounts.get(code)
        if account is None:
            pytest.skip(f"no magic account for {code.value}")
        balance = sandbox.ledger.balance
        request = self.request(provider, conformance_cases, account=account)
        result = provider.submit(request, request.idempotency_key)
        if result.status.in_flight:
            result = self.settled_status(provider, sandbox, request)
        assert (result.status, result.error) == (code.default_status, code), result
        assert result.raw_message
        assert sandbox.ledger.balance == balance

    # -- after success --
    def test_reversal_after_success(self, provider: PayoutProvider, sandbox: Sandbox,
                                    conformance_cases: ConformanceCases) -> None:
        """A succeeded payout that the provider returns reports reversed."""
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        assert self.settled_status(provider, sandbox, request).status is PayoutStatus.SUCCEEDED
        [transfer] = sandbox.transfers()
        sandbox.reverse(transfer.handle)
        result = provider.status(request.idempotency_key, request)
        assert result.status is PayoutStatus.REVERSED, result

    def test_balance_is_decimal_and_pays_amount_plus_fee(
            self, provider: PayoutProvider, sandbox: Sandbox,
            conformance_cases: ConformanceCases) -> None:
        """balance() is a Decimal that drops by the amount plus the quoted fee."""
        if not provider.supports_balance:
            pytest.skip("provider does not report a balance")
        before = provider.balance()
        assert isinstance(before, Decimal)
        request = self.request(provider, conformance_cases)
        quote = provider.quote(request.amount, request.account)
        provider.submit(request, request.idempotency_key)
        result = self.settled_status(provider, sandbox, request)
        assert result.fee in (None, quote.fee), (result, quote)
        assert before - provider.balance() == request.amount + quote.fee

    def test_callback_names_the_payout(self, provider: PayoutProvider, sandbox: Sandbox,
                                       conformance_cases: ConformanceCases) -> None:
        """A sandbox notification parses to the payout's key; a tampered one to None."""
        if not provider.supports_callbacks:
            pytest.skip("provider has no callbacks")
        request = self.request(provider, conformance_cases)
        provider.submit(request, request.idempotency_key)
        sandbox.settle()
        [transfer] = sandbox.transfers()
        built = sandbox.build_callback(transfer)
        assert built is not None, "supports_callbacks needs Sandbox.build_callback"
        headers, body = built
        with _Receiver() as receiver:
            assert sandbox.fire_callback(transfer.handle, receiver.url) == 200
        [(got_headers, got_body)] = receiver.received
        assert provider.parse_callback(got_headers, got_body) == request.idempotency_key
        assert provider.parse_callback(headers, body.replace(b"}", b" }", 1)) is None
        assert provider.parse_callback({}, body) is None


class _Receiver:
    """A one-endpoint HTTP server on 127.0.0.1 that records the callbacks it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/callback"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> _Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
