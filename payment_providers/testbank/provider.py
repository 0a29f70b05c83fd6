"""The ``test`` payout provider plugin (Test Bank; protocol in the package docstring)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from plugins import (
    CONTRACT_VERSION,
    InvalidAccount,
    Limits,
    PayoutProvider,
    PayoutRequest,
    ProviderSettings,
    Quote,
    Result,
    hookimpl,
)
from portal.i18n import _l

from .client import TestBankClient, fee_for

__all__ = ["TestBankProvider", "luhn_check_digit", "register_payout_providers"]

_ACCOUNT_RE = re.compile(r"^TEST(\d{8})$")
_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def luhn_check_digit(body: str) -> str:
    """The Luhn check digit that completes the digits of ``body``."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


class TestBankProvider(PayoutProvider):
    """Payouts to Test Bank wallets through the Test Bank sandbox."""

    __test__ = False  # not a pytest test class, despite the name

    code: ClassVar[str] = "test"
    verbose_name: ClassVar[Mapping[str, str]] = {"en": "Test Bank (sandbox)",
                                                 "ru": "Тестовый банк (песочница)"}
    currency: ClassVar[str] = "RUB"
    limits: ClassVar[Limits] = Limits(Decimal("1.00"), Decimal("15000.00"))
    contract_version: ClassVar[str] = CONTRACT_VERSION
    supports_status_query: ClassVar[bool] = True
    supports_callbacks: ClassVar[bool] = True
    supports_balance: ClassVar[bool] = True
    #: Play money: offered in development and the tests, never in production.
    development_only: ClassVar[bool] = True
    #: Matches ``python -m payment_providers.testbank.sandbox`` with its defaults.
    default_settings: ClassVar[ProviderSettings] = {
        "base_url": "http://127.0.0.1:8765",
        "credentials": {"username": "merchant", "password": "sandbox-secret",
                        "webhook_secret": "sandbox-webhook-secret"},
    }

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        missing = {"username", "password", "webhook_secret"} - self.credentials.keys()
        if missing:
            raise ValueError(f"test: credentials lack {sorted(missing)}")
        self.client = TestBankClient(self.base_url, self.credentials["username"],
                                     self.credentials["password"],
                                     connect_timeout=self.connect_timeout,
                                     read_timeout=self.read_timeout)

    def validate_account(self, raw: str) -> str:
        compact = re.sub(r"[\s-]", "", raw or "").upper()
        if not compact:
            raise InvalidAccount("empty", _l("Enter the wallet number."))
        match = _ACCOUNT_RE.match(compact)
        if match is None:
            raise InvalidAccount("format", _l(
                "A Test Bank wallet number is TEST- followed by 8 digits."))
        digits = match.group(1)
        if luhn_check_digit(digits[:7]) != digits[7]:
            raise InvalidAccount("check_digit", _l(
                "This wallet number has a typo: please check the digits."))
        return f"TEST-{digits}"

    def quote(self, amount: Decimal, account: str) -> Quote:
        self.check_amount(amount)
        return Quote(fee=fee_for(amount), credited=amount)

    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        early = self.check_request(request, idempotency_key)
        if early is not None:
            return early
        return self.client.create_payout(
            idempotency_key, amount=request.amount, currency=request.currency,
            account=request.account, description=request.description, metadata=request.metadata)

    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        return self.client.get_payout(idempotency_key)

    def balance(self) -> Decimal:
        return self.client.get_balance()

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> str | None:
        lowered = {name.lower(): value for name, value in headers.items()}
        secret = self.credentials["webhook_secret"].encode()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        given = lowered.get("x-testbank-signature", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected.encode()):
            return None
        try:
            key = json.loads(body)["payout"]["idempotency_key"]
        except (ValueError, KeyError, TypeError):
            return None
        return key if isinstance(key, str) and _KEY_RE.match(key) else None


@hookimpl
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Contribute the ``test`` provider."""
    return [TestBankProvider]
