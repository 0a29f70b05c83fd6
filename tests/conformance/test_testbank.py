"""The conformance kit run on the built-in ``test`` provider against its real local sandbox."""
from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from payment_providers.testbank.provider import TestBankProvider
from payment_providers.testbank.sandbox import TestBankSandbox
from plugins import ErrorCode, PayoutRequest, PayoutStatus
from plugins.testing import ConformanceCases, ProviderConformance

pytest_plugins = ["plugins.testing"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TestBankSandbox]:
    with TestBankSandbox(settle_after=0.05) as running:
        yield running


@pytest.fixture
def provider(sandbox: TestBankSandbox) -> TestBankProvider:
    return TestBankProvider({"base_url": sandbox.url, "connect_timeout": 0.5, "read_timeout": 1.0})


@pytest.fixture
def conformance_cases() -> ConformanceCases:
    return ConformanceCases(
        valid_accounts={"TEST-12345674": "TEST-12345674", " test 1234 5674 ": "TEST-12345674",
                        "TEST12345674": "TEST-12345674", "test-0000-0000": "TEST-00000000"},
        invalid_accounts={"": "empty", "  ": "empty", "TEST-1234567": "format",
                          "QIWI-12345674": "format", "TEST-123456789": "format",
                          "TEST-12345675": "check_digit", "TEST-21345674": "check_digit"},
        amount=Decimal("100.00"),
        magic_accounts={
            ErrorCode.INVALID_ACCOUNT: "TEST-99000010",
            ErrorCode.ACCOUNT_BLOCKED: "TEST-99000028",
            ErrorCode.IDENTIFICATION_REQUIRED: "TEST-99000036",
            ErrorCode.RECIPIENT_LIMIT: "TEST-99000044",
            ErrorCode.REJECTED_BY_RECIPIENT: "TEST-99000051",
            ErrorCode.DECLINED: "TEST-99000069",
            ErrorCode.INSUFFICIENT_FUNDS: "TEST-99000077",
            ErrorCode.SENDER_LIMIT: "TEST-99000085",
            ErrorCode.AUTH: "TEST-99000093",
            ErrorCode.CONFIG: "TEST-99000101",
        },
        wrong_credentials={"username": "merchant", "password": "wrong",
                           "webhook_secret": "sandbox-webhook-secret"},
    )


class TestTestBank(ProviderConformance):
    """The whole provider contract, on Test Bank."""


# --------------------------------------------------------------------------- beyond the kit

@pytest.fixture
def clean_sandbox(sandbox: TestBankSandbox) -> Iterator[TestBankSandbox]:
    sandbox.reset()
    yield sandbox
    sandbox.reset()


def _request(key: str) -> PayoutRequest:
    return PayoutRequest(key, Decimal("100.00"), "RUB", "TEST-12345674")


def test_sandbox_is_driven_over_http(clean_sandbox: TestBankSandbox,
                                     provider: TestBankProvider) -> None:
    """Faults, the ledger, settlement, reversal and reset work through /__sandbox__/."""
    admin = f"{clean_sandbox.url}/__sandbox__"
    assert requests.post(f"{admin}/faults", json={"drop": 1}, timeout=30).json()["drop"] == 1
    assert provider.submit(_request("http-1"), "http-1").status is PayoutStatus.UNKNOWN
    [row] = requests.get(f"{admin}/ledger", timeout=30).json()["transfers"]
    assert (row["handle"], row["amount"], row["status"]) == ("http-1", "100.00", "pending")

    assert requests.post(f"{admin}/settle", json={"handle": "http-1"}, timeout=30).ok
    assert provider.status("http-1").status is PayoutStatus.SUCCEEDED
    reversed_row = requests.post(f"{admin}/reverse/http-1", timeout=30).json()
    assert reversed_row["status"] == "reversed"
    assert provider.status("http-1").status is PayoutStatus.REVERSED

    assert requests.post(f"{admin}/faults", json={"latency": "soon"}, timeout=30).status_code == 400
    assert requests.post(f"{admin}/faults", json={"bogus": 1}, timeout=30).status_code == 400
    assert requests.post(f"{admin}/reset", timeout=30).ok
    assert requests.get(f"{admin}/ledger", timeout=30).json()["transfers"] == []


def test_sandbox_down_for_a_while_over_http(clean_sandbox: TestBankSandbox,
                                            provider: TestBankProvider) -> None:
    """``down_for`` refuses connections, then the sandbox comes back on the same port."""
    requests.post(f"{clean_sandbox.url}/__sandbox__/faults", json={"down_for": 0.5}, timeout=30)
    refused = provider.submit(_request("down-1"), "down-1")
    assert (refused.status, refused.error) == (PayoutStatus.FAILED_RETRYABLE,
                                               ErrorCode.PROVIDER_UNAVAILABLE)
    deadline = time.monotonic() + 3
    while clean_sandbox.faults.down and time.monotonic() < deadline:
        time.sleep(0.02)
    assert provider.submit(_request("down-2"), "down-2").status is PayoutStatus.PENDING


def test_sandbox_can_settle_on_status_reads() -> None:
    """With ``settle_reads=2`` the second status read sees the outcome, whatever the time."""
    with TestBankSandbox(settle_after=None, settle_reads=2) as sandbox:
        provider = TestBankProvider({"base_url": sandbox.url, "read_timeout": 0.3})
        provider.submit(_request("reads-1"), "reads-1")
        sandbox.advance(3600)
        assert provider.status("reads-1").status is PayoutStatus.PENDING
        assert provider.status("reads-1").status is PayoutStatus.SUCCEEDED


def test_protocol_refuses_unauthenticated_and_keyless_requests(
        clean_sandbox: TestBankSandbox) -> None:
    """Test Bank answers 401 without credentials and 400 without an Idempotency-Key."""
    body = {"amount": "100.00", "currency": "RUB", "account": "TEST-12345674"}
    url = f"{clean_sandbox.url}/payouts"
    assert requests.post(url, json=body, timeout=30).status_code == 401
    keyless = requests.post(url, json=body, auth=("merchant", "sandbox-secret"), timeout=30)
    assert keyless.status_code == 400
    assert keyless.json()["error"]["code"] == "invalid_idempotency_key"
    assert clean_sandbox.transfers() == []
