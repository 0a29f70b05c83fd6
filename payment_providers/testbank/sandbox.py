"""Test Bank's local emulator: the protocol of the package docstring over :class:`plugins.sandbox.Sandbox`.

``python -m payment_providers.testbank.sandbox [--port 8765] [--settle-after 5]`` serves it
until Ctrl+C, with the credentials the ``test`` provider uses by default.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar
from urllib.parse import unquote

from plugins.sandbox import (
    FAILED,
    PENDING,
    SUCCEEDED,
    LedgerConflict,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    Transfer,
    dump_json,
)

__all__ = ["MAGIC_WALLETS", "TestBankSandbox"]

_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_AMOUNT_RE = re.compile(r"^\d{1,9}\.\d{2}$")
_WALLET_RE = re.compile(r"^TEST-(\d{7})(\d)$")
_MIN, _MAX = Decimal("1.00"), Decimal("15000.00")
_STATUS_NAMES = {PENDING: "processing"}

#: Magic wallet body suffix ``NN`` (body ``99000NN``) -> (planned outcome, failure code, at once).
MAGIC_WALLETS: Mapping[str, tuple[str, str | None, bool]] = {
    "01": (FAILED, "wallet_not_found", True),
    "02": (FAILED, "wallet_blocked", True),
    "03": (FAILED, "identification_required", True),
    "04": (FAILED, "recipient_limit_exceeded", True),
    "05": (FAILED, "rejected_by_payee", False),
    "06": (FAILED, "general_decline", True),
    "07": (FAILED, "insufficient_funds", True),
    "08": (FAILED, "daily_limit_exceeded", True),
    "11": (PENDING, None, False),
}
_FAILURE_MESSAGES = {
    "wallet_not_found": "No wallet with this number",
    "wallet_blocked": "The wallet is blocked",
    "identification_required": "The wallet owner must pass identification",
    "recipient_limit_exceeded": "The wallet's incoming limit is exceeded",
    "rejected_by_payee": "The payee's bank returned the transfer",
    "general_decline": "Declined",
    "insufficient_funds": "Not enough money on the merchant balance",
    "daily_limit_exceeded": "The merchant's daily payout limit is exceeded",
}


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char) * (2 if position % 2 == 1 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None
           ) -> SandboxResponse:
    return SandboxResponse.json(status, {"error": {"code": code, "message": message}}, headers)


class TestBankSandbox(Sandbox):
    """Test Bank's API with the merchant credentials given here."""

    __test__ = False  # not a pytest test class, despite the name
    name: ClassVar[str] = "testbank"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, username: str = "merchant",
                 password: str = "sandbox-secret", webhook_secret: str = "sandbox-webhook-secret",
                 settle_at_once: bool = False, **options: Any) -> None:
        super().__init__(host, port, **options)
        #: Answer the create call with the final outcome (one call per payout: the bench).
        self.settle_at_once = settle_at_once
        self._authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.webhook_secret = webhook_secret

    # -- protocol --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        given = request.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode(), self._authorization.encode()):
            return _error(401, "unauthorized", "Bad merchant credentials")
        if request.path == "/payouts" and request.method == "POST":
            return self._create(request)
        if match := re.fullmatch(r"/payouts/([^/]+)", request.path):
            if request.method == "GET":
                transfer = self.ledger.get(unquote(match.group(1)), read=True)
                if transfer is None:
                    return _error(404, "not_found", "No payout with this idempotency key")
                return SandboxResponse.json(200, self.payout_json(transfer))
        if request.path == "/balance" and request.method == "GET":
            return SandboxResponse.json(200, {"currency": "RUB", "available": self.ledger.balance})
        return _error(404, "not_found", f"No endpoint {request.method} {request.path}")

    def _create(self, request: SandboxRequest) -> SandboxResponse:
        key = request.headers.get("Idempotency-Key") or ""
        if not _KEY_RE.match(key):
            return _error(400, "invalid_idempotency_key", "Idempotency-Key: 1-64 of A-Za-z0-9._:-")
        try:
            data = request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_json", "The body is not JSON")
        if not isinstance(data, dict):
            return _error(400, "invalid_json", "The body must be a JSON object")
        amount_text, account = data.get("amount"), data.get("account")
        description, metadata = data.get("description", ""), data.get("metadata", {})
        if not isinstance(amount_text, str) or not _AMOUNT_RE.match(amount_text):
            return _error(400, "invalid_amount", "amount: a string with two decimals")
        if data.get("currency") != "RUB":
            return _error(400, "unsupported_currency", "Only RUB")
        if not isinstance(description, str) or len(description) > 128:
            return _error(400, "invalid_description", "description: up to 128 characters")
        if not (isinstance(metadata, dict) and len(metadata) <= 20
                and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            return _error(400, "invalid_metadata", "metadata: up to 20 string pairs")
        wallet = _WALLET_RE.match(account) if isinstance(account, str) else None
        if wallet is None or not _luhn_ok(wallet.group(1) + wallet.group(2)):
            return _error(422, "invalid_wallet", "Not a Test Bank wallet number")
        amount = Decimal(amount_text)
        if amount < _MIN:
            return _error(422, "amount_below_minimum", f"The minimum is {_MIN}")
        if amount > _MAX:
            return _error(422, "amount_above_maximum", f"The maximum is {_MAX}")

        body = wallet.group(1)
        magic = body[5:] if body.startswith("99000") else ""
        if magic == "09":
            return _error(401, "unauthorized", "Merchant credentials revoked")
        if magic == "10":
            return _error(403, "payouts_disabled", "Payouts are not enabled for this merchant")
        outcome, failure, at_once = MAGIC_WALLETS.get(magic, (SUCCEEDED, None, False))
        fee = (amount * Decimal("0.01")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        try:
            transfer, created = self.ledger.record(
                key, amount=amount, currency="RUB", account=account, fee=fee, outcome=outcome,
                error=failure, immediate=at_once or (self.settle_at_once and outcome != PENDING),
                extra={"description": description, "metadata": metadata})
        except LedgerConflict:
            return _error(409, "idempotency_conflict",
                          "This Idempotency-Key was used for another payout")
        return SandboxResponse.json(201 if created else 200, self.payout_json(transfer))

    @staticmethod
    def payout_json(transfer: Transfer) -> dict[str, Any]:
        """The protocol's payout object for ``transfer``."""
        failure = None
        if transfer.error:
            failure = {"code": transfer.error,
                       "message": _FAILURE_MESSAGES.get(transfer.error, transfer.error)}
        return {"id": f"tbp_{transfer.reference}", "idempotency_key": transfer.handle,
                "status": _STATUS_NAMES.get(transfer.status, transfer.status),
                "amount": transfer.amount, "fee": transfer.fee, "currency": transfer.currency,
                "account": transfer.account, "failure": failure,
                "created_at": transfer.created_at, "updated_at": transfer.updated_at}

    # -- protocol-shaped faults and notifications --
    def error_response(self, status: int) -> SandboxResponse:
        return _error(status, "internal_error", "Something went wrong on our side")

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        return _error(429, "too_many_requests", "Slow down",
                      headers={"Retry-After": str(retry_after)})

    def build_callback(self, transfer: Transfer) -> tuple[Mapping[str, str], bytes]:
        body = dump_json({"event": "payout.updated", "payout": self.payout_json(transfer)})
        signature = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json",
                "X-TestBank-Signature": f"sha256={signature}"}, body


def main(argv: list[str] | None = None) -> None:
    """Serve Test Bank until Ctrl+C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--settle-after", type=float, default=5.0,
                        help="seconds before a payout leaves 'processing' (default 5)")
    parser.add_argument("--settle-at-once", action="store_true",
                        help="answer the create call with the final outcome")
    parser.add_argument("--username", default="merchant", help="merchant login (Basic auth)")
    parser.add_argument("--password", default="sandbox-secret", help="merchant password (Basic auth)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(f"Test Bank sandbox on http://{args.host}:{args.port} (login {args.username!r}, "
          f"password {args.password!r})", flush=True)
    TestBankSandbox(args.host, args.port, username=args.username, password=args.password,
                    settle_after=args.settle_after, settle_at_once=args.settle_at_once).serve()


if __name__ == "__main__":
    main()
