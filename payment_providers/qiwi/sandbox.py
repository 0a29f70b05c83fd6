"""The QIWI Wallet personal API (sinap payments, payment history, webhooks), emulated over
:class:`plugins.sandbox.Sandbox`.

``python -m payment_providers.qiwi.sandbox [--port 8767] [--token T] [--webhook-secret K]``
serves it until Ctrl+C, with the token, wallet and webhook key the ``qiwi`` provider uses by
default. What it emulates (reference §2.1, §6):

* ``Authorization: Bearer <token>`` on every call; a wrong or missing token is 401 in QIWI's
  general error shape (``serviceName``, ``errorCode``, ``userMessage``, ``dateTime``, ``traceId``).
* ``POST /sinap/api/v2/terms/{99|1|2|3}/payments``: checks ``id`` (digits, at most 20),
  ``sum{amount > 0 with at most 2 places, currency "643"}``, ``paymentMethod{type "Account",
  accountId "643"}``, ``fields.account`` (``+7…`` for 99, else error 4; 10 digits for mobile
  providers 1/2/3, else 303). Always answers ``PaymentInfo`` with state ``Accepted``; a replay
  of the same ``id`` with the same data answers the same ``PaymentInfo``; the same ``id`` with
  other data is ``QWPRC-408`` [?]. Payment errors are HTTP 400 ``{"code": "QWPRC-<n>",
  "message": ...}`` [sdk].
* ``GET /payment-history/v2/persons/{wallet}/payments?rows=1..50&operation=…&startDate&endDate``
  (paging by ``nextTxnId``/``nextTxnDate``) and ``GET /payment-history/v2/transactions/{txnId}``:
  items with ``trmTxnId`` = our ``id`` and ``status`` ``WAITING`` -> ``SUCCESS`` / ``ERROR`` +
  ``errorCode`` as the sandbox clock passes ``settle_after``. More than ``history_limit``
  (100) history calls a minute: 423 for five minutes [doc].
* Magic wallets ``+7999000XXXX``: XXXX is a documented error code (``+79990000220`` -> 220);
  codes of :data:`SYNC_CODES` come back at once as ``QWPRC-<n>`` (nothing recorded), the rest
  as ``ERROR`` in the history once the payment settles. ``+79990009401`` answers 401 and
  ``+79990009403`` 403 (as if the token had expired / lost its scope); ``+79990009999`` stays
  ``WAITING`` for ever. Every other valid wallet succeeds.
* Webhooks (:meth:`QiwiSandbox.build_callback`): ``{messageId, hookId, payment{…, signFields},
  hash, test, version}``, ``hash`` = HMAC-SHA256 with the base64 webhook key [doc].
* The base fault switchboard; its rate limit answers QIWI's 423.
"""
from __future__ import annotations

import argparse
import base64
import hmac
import itertools
import json
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

from plugins.wire import dumps_exact
from plugins.sandbox import (
    FAILED,
    INSUFFICIENT_FUNDS,
    PENDING,
    REVERSED,
    SUCCEEDED,
    LedgerConflict,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    Transfer,
    dump_json,
)

from .client import DEFAULT_SIGN_FIELDS, ERROR_CODES, sign_notification

__all__ = ["MAGIC_PREFIX", "QiwiSandbox", "SYNC_CODES", "main", "magic_wallet"]

DEFAULT_TOKEN = "sandbox-token"
DEFAULT_WALLET = "+79990000000"
DEFAULT_WEBHOOK_KEY = base64.b64encode(b"qiwi-sandbox-webhook-key").decode()
MAGIC_PREFIX = "+7999000"
STUCK_WALLET, UNAUTHORIZED_WALLET, FORBIDDEN_WALLET = "+79990009999", "+79990009401", \
    "+79990009403"
#: Codes the payment call itself refuses (QWPRC-<n>, nothing recorded); the others come
#: later as ERROR in the history. [?] which codes QIWI answers at once is not documented.
SYNC_CODES = frozenset({4, 5, 303, 166, 319, 204, 220, 472, 455, 241, 254, 242, 558, 408,
                        461, 901, 700, 704, 705, 711, 716, 717, 757, 943, 1050})
_MESSAGES = {4: "Неверный формат номера", 5: "Номер не принадлежит оператору",
             220: "Недостаточно средств", 241: "Сумма платежа меньше минимальной",
             242: "Сумма платежа больше максимальной", 303: "Неверный номер телефона",
             408: "Платеж с таким ID уже существует"}  # [?] message texts
_ID_RE = re.compile(r"^\d{1,20}$")
_AMOUNT_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_WALLET_RE = re.compile(r"^\+\d{11,15}$")
_PROVIDERS = {99: "QIWI Wallet", 1: "МТС", 2: "Билайн", 3: "МегаФон"}  # ids 1/2/3 [?]
_MAX_AMOUNT = Decimal("99999.00")


def magic_wallet(code: int) -> str:
    """The magic wallet forcing QIWI error ``code``."""
    return f"{MAGIC_PREFIX}{code:04d}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=3))).isoformat(timespec="seconds")


def general_error(status: int, error_code: str, message: str) -> SandboxResponse:
    """QIWI's general error body [?]: ``serviceName``, ``errorCode``, ``userMessage`` ..."""
    return SandboxResponse.json(status, {
        "serviceName": "sandbox", "errorCode": error_code, "userMessage": message,
        "description": message, "dateTime": _iso(datetime.now(timezone.utc)),
        "traceId": uuid.uuid4().hex})


def payment_error(number: int, message: str | None = None) -> SandboxResponse:
    """A payment error: HTTP 400 ``{"code": "QWPRC-<n>", "message": ...}`` [sdk]."""
    return SandboxResponse.json(400, {"code": f"QWPRC-{number}",
                                      "message": message or _MESSAGES.get(number, "Ошибка")})


class QiwiSandbox(Sandbox):
    """One QIWI wallet (ours) with its token and webhook key."""

    name: ClassVar[str] = "qiwi"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN,
                 wallet: str = DEFAULT_WALLET, webhook_key: str = DEFAULT_WEBHOOK_KEY,
                 history_limit: int = 100, **options: Any) -> None:
        super().__init__(host, port, **options)
        base64.b64decode(webhook_key, validate=True)  # QIWI hands the key out in base64
        self.token, self.wallet, self.webhook_key = token, wallet, webhook_key
        self.history_limit = history_limit
        self._txn_ids = itertools.count(20_000_000_001)
        self._lock = threading.Lock()
        self._history_calls: deque[float] = deque()
        self._blocked_until = 0.0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._history_calls.clear()
            self._blocked_until = 0.0

    # -- protocol --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        given = (request.headers.get("Authorization") or "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            return general_error(401, "auth.unauthorized", "Unauthorized: token is invalid")
        if match := re.fullmatch(r"/sinap/api/v2/terms/(\d+)/payments", request.path):
            if request.method != "POST":
                return general_error(405, "http.method.not.allowed", "Method not allowed")
            return self._pay(int(match.group(1)), request)
        if match := re.fullmatch(r"/payment-history/v2/persons/\+?(\d+)/payments", request.path):
            if request.method != "GET":
                return general_error(405, "http.method.not.allowed", "Method not allowed")
            if "+" + match.group(1) != self.wallet:
                return general_error(403, "auth.forbidden", "Access denied to this wallet")
            return self._throttled() or self._history(request)
        if match := re.fullmatch(r"/payment-history/v2/transactions/(\d+)", request.path):
            if request.method != "GET":
                return general_error(405, "http.method.not.allowed", "Method not allowed")
            return self._throttled() or self._transaction(int(match.group(1)))
        return general_error(404, "http.not.found", f"No endpoint {request.method} {request.path}")

    def _pay(self, provider_id: int, request: SandboxRequest) -> SandboxResponse:
        if provider_id not in _PROVIDERS:
            return general_error(404, "payment.provider.not.found", "Provider not found")
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return general_error(415, "http.media.type", "Content-Type must be application/json")
        try:
            data = request.json()
        except (ValueError, UnicodeDecodeError):
            return general_error(400, "request.invalid", "Request body is not valid JSON")
        if not isinstance(data, dict):
            return general_error(400, "request.invalid", "Request body must be a JSON object")
        txn = data.get("id")
        if not isinstance(txn, str) or not _ID_RE.match(txn):
            return general_error(400, "request.invalid", "id: up to 20 digits")
        total = data.get("sum")
        amount = total.get("amount") if isinstance(total, dict) else None
        if isinstance(amount, bool) or not isinstance(amount, (int, Decimal)) \
                or not _AMOUNT_RE.match(format(Decimal(amount), "f")) or amount <= 0:
            return general_error(400, "request.invalid", "sum.amount: a positive number, kopecks")
        if total.get("currency") != "643":
            return general_error(400, "request.invalid", "sum.currency: only 643 (RUB)")
        if data.get("paymentMethod") != {"type": "Account", "accountId": "643"}:
            return general_error(400, "request.invalid", "paymentMethod: Account/643")
        fields = data.get("fields")
        account = fields.get("account") if isinstance(fields, dict) else None
        comment = data.get("comment", "")
        if not isinstance(account, str):
            return general_error(400, "request.invalid", "fields.account is required")
        if provider_id == 99 and not _WALLET_RE.match(account):
            return payment_error(4)
        if provider_id != 99 and not re.fullmatch(r"\d{10}", account):
            return payment_error(303)
        if not isinstance(comment, str) or (comment and provider_id != 99):
            return general_error(400, "request.invalid", "comment: text, provider 99 only")
        amount = Decimal(amount).quantize(Decimal("0.01"))

        existing = self.ledger.get(txn)
        if existing is not None:
            if (existing.extra.get("comment"), existing.extra.get("provider")) != (
                    comment, provider_id):
                return payment_error(408)
        else:
            refusal = self._refusal(account, amount)
            if refusal is not None:
                return refusal
        outcome, error = self._plan(account)
        try:
            transfer, created = self.ledger.record(
                txn, amount=amount, currency="RUB", account=account, outcome=outcome,
                error=error, extra={"comment": comment, "provider": provider_id,
                                    "txnId": next(self._txn_ids) if existing is None
                                    else existing.extra["txnId"]})
        except LedgerConflict:
            return payment_error(408)
        if transfer.status == FAILED and transfer.error == INSUFFICIENT_FUNDS:
            return payment_error(220)
        return SandboxResponse(200, dumps_exact(self.payment_info(transfer)))

    @staticmethod
    def _refusal(account: str, amount: Decimal) -> SandboxResponse | None:
        if amount < 1:
            return payment_error(241)
        if amount > _MAX_AMOUNT:
            return payment_error(242)
        if account == UNAUTHORIZED_WALLET:
            return general_error(401, "auth.unauthorized", "Unauthorized: token expired")
        if account == FORBIDDEN_WALLET:
            return general_error(403, "auth.forbidden", "Token has no payment scope")
        if account.startswith(MAGIC_PREFIX) and int(account[-4:]) in SYNC_CODES:
            return payment_error(int(account[-4:]))
        return None

    @staticmethod
    def _plan(account: str) -> tuple[str, str | None]:
        if account == STUCK_WALLET:
            return PENDING, None
        if account.startswith(MAGIC_PREFIX) and int(account[-4:]) in ERROR_CODES:
            return FAILED, str(int(account[-4:]))
        return SUCCEEDED, None

    def payment_info(self, transfer: Transfer) -> dict[str, Any]:
        """QIWI's ``PaymentInfo``: state is always ``Accepted`` [doc]."""
        body: dict[str, Any] = {
            "id": transfer.handle,
            "terms": str(transfer.extra["provider"]),
            "fields": {"account": transfer.account},
            "sum": {"amount": transfer.amount, "currency": "643"},
            "source": "account_643",
            "transaction": {"id": str(transfer.extra["txnId"]), "state": {"code": "Accepted"}},
        }
        if transfer.extra.get("comment"):
            body["comment"] = transfer.extra["comment"]
        return body

    # -- history --
    def _throttled(self) -> SandboxResponse | None:
        now = self.clock()
        with self._lock:
            if now < self._blocked_until:
                return general_error(423, "request.blocked", "Too many requests, try later")
            while self._history_calls and self._history_calls[0] <= now - 60:
                self._history_calls.popleft()
            self._history_calls.append(now)
            if len(self._history_calls) > self.history_limit:
                self._blocked_until = now + 300
                return general_error(423, "request.blocked", "Too many requests, try later")
        return None

    def history_item(self, transfer: Transfer) -> dict[str, Any]:
        """One payment-history item (``Txn``). A reversed transfer still reads ``SUCCESS``:
        the stored documentation has no state for a returned transfer."""
        state = {PENDING: "WAITING", SUCCEEDED: "SUCCESS", REVERSED: "SUCCESS",
                 FAILED: "ERROR"}[transfer.status]
        code = 0
        if state == "ERROR":
            code = 220 if transfer.error == INSUFFICIENT_FUNDS else int(transfer.error or 3)
        amount, fee = transfer.amount, transfer.fee
        provider = int(transfer.extra["provider"])
        return {
            "txnId": transfer.extra["txnId"], "personId": int(self.wallet.lstrip("+")),
            "date": _iso(transfer.created_at), "errorCode": code,
            "error": _MESSAGES.get(code, "Ошибка") if code else None,
            "status": state, "type": "OUT", "statusText": state.title(),
            "trmTxnId": transfer.handle, "account": transfer.account,
            "sum": {"amount": amount, "currency": 643},
            "commission": {"amount": fee, "currency": 643},
            "total": {"amount": amount + fee, "currency": 643},
            "provider": {"id": provider, "shortName": _PROVIDERS[provider]},
            "comment": transfer.extra.get("comment") or None,
            "currencyRate": 1,
        }

    def _history(self, request: SandboxRequest) -> SandboxResponse:
        def arg(name: str) -> str | None:
            values = request.query.get(name)
            return values[0] if values else None

        rows = arg("rows")
        if rows is None or not rows.isdigit() or not 1 <= int(rows) <= 50:
            return general_error(400, "request.invalid", "rows: 1..50")
        operation = arg("operation") or "ALL"
        if operation not in ("ALL", "IN", "OUT", "QIWI_CARD"):
            return general_error(400, "request.invalid", "operation: ALL|IN|OUT|QIWI_CARD")
        start, end = arg("startDate"), arg("endDate")
        if (start is None) != (end is None):
            return general_error(400, "request.invalid", "startDate and endDate go together")
        try:
            window = (datetime.fromisoformat(start), datetime.fromisoformat(end)) \
                if start and end else None
        except ValueError:
            return general_error(400, "request.invalid", "dates: ISO 8601 with offset")
        if window is not None and (window[0].tzinfo is None or window[1].tzinfo is None
                                   or not timedelta(0) <= window[1] - window[0]
                                   <= timedelta(days=90)):
            return general_error(400, "request.invalid", "date range: at most 90 days")
        next_id = arg("nextTxnId")
        items = [t for t in reversed(self.transfers())]  # newest first
        if operation == "IN":
            items = []
        if window is not None:
            items = [t for t in items if window[0] <= t.created_at <= window[1]]
        if next_id is not None:
            if not next_id.isdigit():
                return general_error(400, "request.invalid", "nextTxnId: digits")
            items = [t for t in items if int(t.extra["txnId"]) <= int(next_id)]
        page, rest = items[:int(rows)], items[int(rows):]
        data = []
        for transfer in page:
            current = self.ledger.get(transfer.handle, read=True) or transfer
            data.append(self.history_item(current))
        body: dict[str, Any] = {"data": data, "nextTxnId": None, "nextTxnDate": None}
        if rest:
            body["nextTxnId"] = rest[0].extra["txnId"]
            body["nextTxnDate"] = _iso(rest[0].created_at)
        return SandboxResponse(200, dumps_exact(body))

    def _transaction(self, txn_id: int) -> SandboxResponse:
        for transfer in self.transfers():
            if transfer.extra["txnId"] == txn_id:
                current = self.ledger.get(transfer.handle, read=True) or transfer
                return SandboxResponse(200, dumps_exact(self.history_item(current)))
        return general_error(404, "payment.not.found", "Transaction not found")

    # -- protocol-shaped faults --
    def error_response(self, status: int) -> SandboxResponse:
        return general_error(status, "internal.error", "Internal server error")

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        return general_error(423, "request.blocked", "Too many requests, try later")

    # -- webhooks --
    def build_callback(self, transfer: Transfer) -> tuple[Mapping[str, str], bytes] | None:
        item = self.history_item(transfer)
        payment: dict[str, Any] = {
            "txnId": str(item["txnId"]), "date": item["date"], "type": "OUT",
            "status": item["status"], "errorCode": str(item["errorCode"]),
            "personId": item["personId"], "account": transfer.account,
            "comment": item["comment"] or "", "provider": item["provider"]["id"],
            "sum": item["sum"], "commission": item["commission"], "total": item["total"],
            "signFields": DEFAULT_SIGN_FIELDS,
        }
        # Sign what the receiver will parse: numbers as their JSON text.
        as_text = json.loads(dump_json(payment), parse_float=str, parse_int=str)
        body = {"messageId": str(uuid.uuid4()), "hookId": "sandbox-hook",
                "payment": payment, "hash": sign_notification(as_text, self.webhook_key),
                "test": False, "version": "1.0.0"}
        return {"Content-Type": "application/json"}, dump_json(body)


def main(argv: list[str] | None = None) -> None:
    """Serve the QIWI Wallet sandbox until Ctrl+C."""
    parser = argparse.ArgumentParser(description="QIWI Wallet personal API sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the Bearer token it accepts")
    parser.add_argument("--wallet", default=DEFAULT_WALLET, help="our (sender) wallet")
    parser.add_argument("--webhook-secret", default=DEFAULT_WEBHOOK_KEY,
                        help="the webhook key, base64 (as QIWI hands it out)")
    parser.add_argument("--webhook-url", default=None, help="where callbacks go")
    parser.add_argument("--settle-after", type=float, default=5.0,
                        help="seconds before a payment leaves WAITING (default 5)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sandbox = QiwiSandbox(args.host, args.port, token=args.token, wallet=args.wallet,
                          webhook_key=args.webhook_secret, settle_after=args.settle_after,
                          callback_url=args.webhook_url)
    sandbox.start()  # bind first, so --port 0 prints the real port
    print(f"QIWI Wallet sandbox on {sandbox.url} (Authorization: Bearer {args.token}; "
          f"wallet {args.wallet}; webhook key {args.webhook_secret}; magic wallets "
          f"{MAGIC_PREFIX}XXXX = error XXXX)", flush=True)
    sandbox.serve()


if __name__ == "__main__":
    main()
