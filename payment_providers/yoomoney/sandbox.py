"""YooKassa API v3 payouts to YooMoney wallets, emulated over :class:`plugins.sandbox.Sandbox`.

``python -m payment_providers.yoomoney.sandbox [--port 8766] [--settle-after 5]`` serves it
until Ctrl+C, with the credentials the ``yoomoney`` provider uses by default. It answers YooKassa's
real paths, status codes, ``application/json`` bodies and error shapes, so an official client
(``yookassa`` SDK with its API URL pointed here) should not notice the difference.
"""
from __future__ import annotations

import argparse
import base64
import hmac
import logging
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import unquote

from plugins.sandbox import (
    FAILED,
    PENDING,
    REVERSED,
    SUCCEEDED,
    LedgerConflict,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    Transfer,
)

from .client import IDEMPOTENCE_PARAMETER, check_wallet, make_wallet

__all__ = ["MAGIC_WALLETS", "SANDBOX_ONLY_WALLETS", "YooMoneySandbox", "main"]

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # [?] YooKassa: up to 64 characters
_AMOUNT_RE = re.compile(r"^\d{1,10}\.\d{2}$")
_MIN = Decimal("1.00")
_DESCRIPTION_MAX = 128      # [?]
_METADATA_KEYS_MAX = 16     # [?]
_METADATA_KEY_LEN = 32      # [?]
_METADATA_VALUE_LEN = 512   # [?]

#: YooKassa's own test wallets [doc, §1.1] -> (outcome, cancellation reason, party).
#: The success wallets are not listed: every other valid wallet succeeds.
MAGIC_WALLETS: Mapping[str, tuple[str, str | None, str | None]] = {
    "41001614575572": (FAILED, "one_time_limit_exceeded", "yoo_money"),
    "41001614575643": (FAILED, "periodic_limit_exceeded", "yoo_money"),
    "410011806060766": (FAILED, "insufficient_funds", "yoo_kassa"),
    "410011788545536": (FAILED, "general_decline", "yoo_money"),
}
#: Extra magic wallets of this sandbox only (valid check digits, processing code 1001,
#: account 9990000N) for outcomes YooKassa's test gateway has no wallet for.
SANDBOX_ONLY_WALLETS: Mapping[str, str] = {
    make_wallet("1001", "99900001"): "fraud_suspected",
    make_wallet("1001", "99900002"): "rejected_by_payee",
    make_wallet("1001", "99900003"): "forbidden",        # HTTP 403
    make_wallet("1001", "99900004"): "unauthorized",     # HTTP 401 (as if the key was revoked)
    make_wallet("1001", "99900005"): "stays_pending",
}
_PARTIES = {"fraud_suspected": "yoo_kassa", "rejected_by_payee": "payee",  # [?] parties
            "insufficient_funds": "yoo_kassa"}
_ERROR_CODES = {400: "invalid_request", 401: "invalid_credentials", 403: "forbidden",
                404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type",
                429: "too_many_requests", 500: "internal_server_error"}


def _iso(moment: datetime) -> str:
    """YooKassa's timestamps: UTC, milliseconds, ``Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error(status: int, description: str, parameter: str | None = None, *,
          code: str | None = None, headers: Mapping[str, str] | None = None) -> SandboxResponse:
    """YooKassa's error answer: ``{type: "error", id, code, description, parameter}``."""
    body: dict[str, Any] = {"type": "error", "id": str(uuid.uuid4()),
                            "code": code or _ERROR_CODES.get(status, "internal_server_error"),
                            "description": description}
    if parameter is not None:
        body["parameter"] = parameter
    return SandboxResponse.json(status, body, headers)


def payout_id(transfer: Transfer) -> str:
    """A YooKassa-looking payout id (``po-…``) derived from the ledger reference."""
    ref = transfer.reference
    return f"po-{ref[:8]}-{ref[8:12]}-5000-a000-{ref[12:16]}00000000"


class YooMoneySandbox(Sandbox):
    """YooKassa payouts with the gateway credentials given here."""

    name: ClassVar[str] = "yoomoney"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, shop_id: str = "sandbox-shop",
                 secret_key: str = "test_sandbox-secret", **options: Any) -> None:
        super().__init__(host, port, **options)
        self.shop_id, self.secret_key = shop_id, secret_key
        self._authorization = "Basic " + base64.b64encode(
            f"{shop_id}:{secret_key}".encode()).decode()

    # -- protocol --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        given = request.headers.get("Authorization") or ""
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self._authorization.encode()):
            return error(401, "Authentication by given credentials failed")
        if request.path in ("/v3/payouts", "/v3/payouts/"):
            if request.method != "POST":
                return error(405, f"Method {request.method} is not allowed here")
            return self._create(request)
        if match := re.fullmatch(r"/v3/payouts/([^/]+)", request.path):
            if request.method != "GET":
                return error(405, f"Method {request.method} is not allowed here")
            return self._read(unquote(match.group(1)))
        return error(404, f"No endpoint {request.method} {request.path}")

    def _read(self, wanted: str) -> SandboxResponse:
        for transfer in self.ledger.transfers():
            if payout_id(transfer) == wanted:
                current = self.ledger.get(transfer.handle, read=True) or transfer
                return SandboxResponse.json(200, self.payout_json(current))
        return error(404, "Payout doesn't exist or access denied", "payout_id")

    def _create(self, request: SandboxRequest) -> SandboxResponse:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return error(415, "Content-Type must be application/json")
        key = request.headers.get("Idempotence-Key") or ""
        if not key:
            return error(400, "Idempotence key is required", IDEMPOTENCE_PARAMETER)
        if not _KEY_RE.match(key):
            return error(400, "Idempotence key is invalid: up to 64 printable characters",
                         IDEMPOTENCE_PARAMETER)
        try:
            data = request.json()
        except (ValueError, UnicodeDecodeError):
            return error(400, "Request body is not valid JSON")
        if not isinstance(data, dict):
            return error(400, "Request body must be a JSON object")
        problem = self._validate(data)
        if problem is not None:
            return problem
        amount = Decimal(data["amount"]["value"])
        account = data["payout_destination_data"]["account_number"]
        description = data.get("description", "")
        metadata = data.get("metadata") or {}

        existing = self.ledger.get(key)
        if existing is not None and (existing.extra.get("description"),
                                     existing.extra.get("metadata")) != (description, metadata):
            return self._conflict()
        if account in SANDBOX_ONLY_WALLETS and existing is None:
            special = SANDBOX_ONLY_WALLETS[account]
            if special == "forbidden":
                return error(403, "Payouts to YooMoney wallets are not enabled for this shop")
            if special == "unauthorized":
                return error(401, "Authentication by given credentials failed")
        outcome, reason, party = self._plan(account)
        try:
            transfer, created = self.ledger.record(
                key, amount=amount, currency="RUB", account=account, outcome=outcome,
                error=reason, immediate=outcome == FAILED,
                extra={"description": description, "metadata": metadata, "party": party})
        except LedgerConflict:
            return self._conflict()
        if not created:  # the documented status check: a replay counts as a read
            transfer = self.ledger.get(key, read=True) or transfer
        return SandboxResponse.json(200, self.payout_json(transfer))

    @staticmethod
    def _conflict() -> SandboxResponse:
        # [?] YooKassa answers a reused key with other data by 400 invalid_request; the exact
        # description is unverified. The parameter names the header.
        return error(400, "Idempotence key duplicated: the same key was used with other data",
                     IDEMPOTENCE_PARAMETER)

    @staticmethod
    def _plan(account: str) -> tuple[str, str | None, str | None]:
        if account in MAGIC_WALLETS:
            return MAGIC_WALLETS[account]
        special = SANDBOX_ONLY_WALLETS.get(account)
        if special == "stays_pending":
            return PENDING, None, None
        if special in ("fraud_suspected", "rejected_by_payee"):
            return FAILED, special, _PARTIES[special]
        return SUCCEEDED, None, None

    @staticmethod
    def _validate(data: Mapping[str, Any]) -> SandboxResponse | None:
        amount = data.get("amount")
        if not isinstance(amount, dict):
            return error(400, "amount is required", "amount")
        value = amount.get("value")
        if not isinstance(value, str) or not _AMOUNT_RE.match(value):
            return error(400, "amount.value must be a string with two decimals", "amount.value")
        if amount.get("currency") != "RUB":
            return error(400, "Only RUB payouts to YooMoney wallets", "amount.currency")
        if Decimal(value) < _MIN:
            return error(400, f"The minimum payout is {_MIN} RUB", "amount.value")
        destination = data.get("payout_destination_data")
        if not isinstance(destination, dict):
            return error(400, "payout_destination_data is required", "payout_destination_data")
        if destination.get("type") != "yoo_money":
            return error(400, "Unsupported payout method", "payout_destination_data.type")
        account = destination.get("account_number")
        if not isinstance(account, str) or not 11 <= len(account) <= 20 \
                or check_wallet(account) is not None:
            return error(400, "Invalid YooMoney wallet number",
                         "payout_destination_data.account_number")
        description = data.get("description", "")
        if not isinstance(description, str) or len(description) > _DESCRIPTION_MAX:
            return error(400, f"description: up to {_DESCRIPTION_MAX} characters", "description")
        metadata = data.get("metadata") or {}
        if not (isinstance(metadata, dict) and len(metadata) <= _METADATA_KEYS_MAX and all(
                isinstance(k, str) and isinstance(v, str) and len(k) <= _METADATA_KEY_LEN
                and len(v) <= _METADATA_VALUE_LEN for k, v in metadata.items())):
            return error(400, "metadata: up to 16 string pairs", "metadata")
        return None

    def payout_json(self, transfer: Transfer) -> dict[str, Any]:
        """YooKassa's payout object for ``transfer``. YooKassa has no ``reversed`` payout status:
        a reversed transfer still reads ``succeeded``."""
        state = {PENDING: "pending", SUCCEEDED: "succeeded", REVERSED: "succeeded",
                 FAILED: "canceled"}[transfer.status]
        body: dict[str, Any] = {
            "id": payout_id(transfer),
            "amount": {"value": transfer.amount, "currency": transfer.currency},
            "status": state,
            "payout_destination": {"type": "yoo_money", "account_number": transfer.account},
            "created_at": _iso(transfer.created_at),
            "test": True,
            "metadata": dict(transfer.extra.get("metadata") or {}),
        }
        if transfer.extra.get("description"):
            body["description"] = transfer.extra["description"]
        if state == "succeeded":
            body["succeeded_at"] = _iso(transfer.updated_at)
        if state == "canceled":
            body["cancellation_details"] = {
                "party": transfer.extra.get("party") or _PARTIES.get(transfer.error or "",
                                                                     "yoo_kassa"),
                "reason": transfer.error or "general_decline"}
        return body

    # -- protocol-shaped faults --
    def error_response(self, status: int) -> SandboxResponse:
        return error(status, "Internal server error, the result is unknown: repeat the request "
                             "with the same Idempotence-Key", code="internal_server_error")

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        # [?] whether YooKassa sends Retry-After is unverified; we do not.
        return error(429, "Too many requests, slow down")


def main(argv: list[str] | None = None) -> None:
    """Serve the YooKassa payouts sandbox until Ctrl+C."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--shop-id", default="sandbox-shop", help="gateway id (Basic auth user)")
    parser.add_argument("--secret-key", default="test_sandbox-secret",
                        help="secret key (Basic auth password)")
    parser.add_argument("--settle-after", type=float, default=5.0,
                        help="seconds before a payout leaves 'pending' (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sandbox = YooMoneySandbox(args.host, args.port, shop_id=args.shop_id,
                              secret_key=args.secret_key, settle_after=args.settle_after)
    sandbox.start()  # bind first, so --port 0 prints the real port
    print(f"YooKassa payouts sandbox on {sandbox.url}/v3 (HTTP Basic: shop id "
          f"{args.shop_id!r}, secret key {args.secret_key!r})", flush=True)
    sandbox.serve()


if __name__ == "__main__":
    main()
