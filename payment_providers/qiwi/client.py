"""HTTP client of the QIWI Wallet personal API ("sinap" payments + payment history), its error
mapping, and the webhook signature shared by the provider and the sandbox (see the package
docstring).

Every call has explicit ``(connect, read)`` timeouts and no automatic retries: a retry after the
request left would be a second payout attempt, and that decision belongs to the engine.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from plugins.wire import dumps_exact, json_decimal as _json, retry_after as _retry_after, transport_failure
from requests.adapters import HTTPAdapter

from plugins import ErrorCode, PayoutStatus, Result

__all__ = [
    "DEFAULT_SIGN_FIELDS",
    "ERROR_CODES",
    "HTTP_ERRORS",
    "QiwiClient",
    "error_result",
    "history_result",
    "parse_qwprc",
    "sign_notification",
    "signed_values",
]

# --------------------------------------------------------------------------- error codes

def _codes(numbers: tuple[int, ...], code: ErrorCode) -> dict[int, ErrorCode]:
    return {number: code for number in numbers}


#: QIWI ``errorCode`` (history) / ``QWPRC-<n>`` (payment answer) -> our taxonomy, every code of
#: the documented table (reference §2.1, §5). The status follows from the code.
ERROR_CODES: Mapping[int, ErrorCode] = {
    # technical at QIWI, retry later (new id)
    **_codes((3, 202, 300, 749, 750), ErrorCode.PROVIDER_UNAVAILABLE),
    # recipient bank technical problem
    **_codes((8, 271, 500), ErrorCode.PROVIDER_UNAVAILABLE),
    # bad account format / no such number / phone must be 10 digits
    **_codes((4, 5, 303), ErrorCode.INVALID_ACCOUNT),
    # recipient must raise the wallet identification status
    **_codes((57, 167), ErrorCode.IDENTIFICATION_REQUIRED),
    # not available for the recipient's country
    131: ErrorCode.DECLINED,
    # our (sender) wallet identification status / cash top-up not allowed: the account is
    # not fit for payouts, pause the provider
    **_codes((166, 319, 204), ErrorCode.CONFIG),
    # our wallet's funds (407: on the card)
    **_codes((220, 472, 407), ErrorCode.INSUFFICIENT_FUNDS),
    # minimum balance must stay on our wallet
    455: ErrorCode.INSUFFICIENT_FUNDS,
    # amount below 1 RUB / above the maximum
    **_codes((241, 254), ErrorCode.AMOUNT_TOO_SMALL),
    **_codes((242, 558), ErrorCode.AMOUNT_TOO_LARGE),
    # the same payment is already being processed
    408: ErrorCode.DUPLICATE_CONFLICT,
    # payment confirmation (SMS) expired: the wallet requires confirmations, a config problem
    **_codes((461, 901), ErrorCode.CONFIG),
    # sender (our wallet) limits: retry later
    **_codes((700, 704, 705, 711, 716, 717, 757, 943, 1050), ErrorCode.SENDER_LIMIT),
    # recipient balance limit, per-recipient limits
    **_codes((702, 710, 746, 747, 852), ErrorCode.RECIPIENT_LIMIT),
    # payment cancelled, money returned
    797: ErrorCode.DECLINED,
    # card / bank rejections
    **_codes((522, 547, 548, 561, 7000, 7600), ErrorCode.REJECTED_BY_RECIPIENT),
}
#: A code not in the table: QIWI refused or failed the payment (no money moved), reason unknown.
UNKNOWN_CODE = ErrorCode.DECLINED

#: HTTP status -> our taxonomy for answers without a ``QWPRC`` code.
HTTP_ERRORS: Mapping[int, ErrorCode] = {
    400: ErrorCode.CONFIG,        # request format: our bug
    401: ErrorCode.AUTH,          # token wrong or expired
    403: ErrorCode.CONFIG,        # token lacks the scope
    404: ErrorCode.CONFIG,        # wrong base_url / provider id (status(): not found)
    423: ErrorCode.RATE_LIMITED,  # too many requests / temporarily unavailable
    429: ErrorCode.RATE_LIMITED,
}

#: The ``signFields`` of QIWI's webhook example [doc]; the sandbox signs these.
DEFAULT_SIGN_FIELDS = "sum.currency,sum.amount,type,account,txnId"


def code_for(number: int) -> ErrorCode:
    return ERROR_CODES.get(number, UNKNOWN_CODE)


def parse_qwprc(value: object) -> int | None:
    """``"QWPRC-220"`` -> 220; anything else -> None."""
    if isinstance(value, str) and value.upper().startswith("QWPRC-") and value[6:].isdigit():
        return int(value[6:])
    return None


def error_result(number: int, raw: str, *, provider_reference: str | None = None) -> Result:
    """The failure QIWI reported with ``errorCode`` / ``QWPRC-<number>``."""
    return Result.failed(code_for(number), f"QIWI error {number}: {raw}",
                         provider_reference=provider_reference)


# --------------------------------------------------------------------------- webhooks

def _lookup(payment: Mapping[str, Any], dotted: str) -> object:
    value: object = payment
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def signed_values(payment: Mapping[str, Any]) -> str:
    """The values named in ``payment["signFields"]``, in order, joined with ``|`` [doc].

    Numbers must be given as their JSON text (parse with ``parse_float=str, parse_int=str``).
    :raises KeyError, TypeError: a field is missing.
    """
    fields = payment["signFields"]
    if not isinstance(fields, str) or not fields:
        raise TypeError("signFields missing")
    values = []
    for name in fields.split(","):
        value = _lookup(payment, name.strip())
        if isinstance(value, (Mapping, list)) or value is None:
            raise TypeError(f"{name} is not a plain value")
        values.append("true" if value is True else "false" if value is False else str(value))
    return "|".join(values)


def sign_notification(payment: Mapping[str, Any], key_b64: str) -> str:
    """HMAC-SHA256 (hex) of :func:`signed_values` with the base64-decoded webhook key [doc]."""
    key = base64.b64decode(key_b64, validate=True)
    return hmac.new(key, signed_values(payment).encode("utf-8"), hashlib.sha256).hexdigest()


def verify_notification(body: bytes, key_b64: str) -> Mapping[str, Any] | None:
    """The notification's ``payment`` when ``hash`` is right, else None."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=str, parse_int=str)
        payment, given = data["payment"], data["hash"]
        if not isinstance(payment, dict) or not isinstance(given, str):
            return None
        expected = sign_notification(payment, key_b64)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error, AttributeError):
        return None
    if not hmac.compare_digest(expected.lower(), given.strip().lower()):
        return None
    return payment


# --------------------------------------------------------------------------- history mapping

def _money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValueError(f"bad amount {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"bad amount {value!r}")
    return amount


def history_result(item: Mapping[str, Any], raw: str) -> Result:
    """The :class:`Result` of one payment-history item (``status`` WAITING|SUCCESS|ERROR).

    :raises ValueError, KeyError, TypeError: not a history item (garbled).
    """
    reference = str(item["txnId"])
    state = item["status"]
    amount = _money(item["sum"]["amount"])
    commission = item.get("commission") or {}
    fee = _money(commission["amount"]) if commission.get("amount") is not None else None
    if state == "WAITING":
        return Result(PayoutStatus.PENDING, None, reference, amount)
    if state == "SUCCESS":
        return Result(PayoutStatus.SUCCEEDED, None, reference, amount, fee)
    if state == "ERROR":
        number = item.get("errorCode")
        if isinstance(number, bool) or not isinstance(number, (int, str, Decimal)) \
                or not str(number).isdigit():
            raise ValueError(f"ERROR without errorCode: {number!r}")
        return error_result(int(number), f"{item.get('error') or ''} ({raw})",
                            provider_reference=reference)
    raise ValueError(f"unknown history status {state!r}")






# --------------------------------------------------------------------------- the client

#: How long QIWI blocks a wallet's history after more than 100 calls a minute [doc].
HISTORY_BLOCK = timedelta(minutes=5)

#: Asked before every history call: None to go ahead, or how long to wait (the budget is spent).
HistoryBudget = Callable[[], "timedelta | None"]


class QiwiClient:
    """One QIWI wallet (token + wallet number). Thread-safe (one session per thread)."""

    def __init__(self, base_url: str, token: str, wallet: str, *, connect_timeout: float,
                 read_timeout: float, history_days: int = 89, history_pages: int = 5,
                 history_rows: int = 50, history_budget: HistoryBudget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.wallet = wallet
        self._timeout = (connect_timeout, read_timeout)
        self.history_days, self.history_pages, self.history_rows = (
            history_days, history_pages, history_rows)
        self._history_budget = history_budget
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update({"Authorization": f"Bearer {self._token}",
                                    "Accept": "application/json"})
            adapter = HTTPAdapter(max_retries=0)  # never resend on our own
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    # -- payments --
    def pay(self, txn_id: int, *, amount: Decimal, account: str, comment: str,
            provider_id: int = 99) -> Result:
        """``POST /sinap/api/v2/terms/{provider_id}/payments`` with our ``id``."""
        body: dict[str, Any] = {
            "id": str(txn_id),
            "sum": {"amount": amount, "currency": "643"},  # a JSON number, written exactly
            "paymentMethod": {"type": "Account", "accountId": "643"},
            "fields": {"account": account},
        }
        if comment:
            body["comment"] = comment
        try:
            response = self._session().post(
                f"{self.base_url}/sinap/api/v2/terms/{provider_id}/payments",
                data=dumps_exact(body), timeout=self._timeout,
                headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=True)
        return self.interpret_payment(response, txn_id)

    def interpret_payment(self, response: requests.Response, txn_id: int) -> Result:
        """Map the answer of the payment call."""
        status = response.status_code
        raw = f"HTTP {status}: {response.text[:500]}"
        if status == 200:
            try:
                info = _json(response)
                if str(info["id"]) != str(txn_id):
                    raise ValueError("answer about another payment")
                transaction = info["transaction"]
                state = transaction["state"]["code"]
                reference = str(transaction["id"])
            except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer: {raw}")
            if state == "Accepted":
                return Result(PayoutStatus.ACCEPTED, None, reference, raw_message=raw)
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"unexpected state: {raw}")
        if status >= 500:
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)
        number = parse_qwprc(self._error_body(response).get("code"))
        if number is not None and status < 500:
            return error_result(number, raw)
        if status in (423, 429):
            # 423: QIWI's "too many requests / unavailable"; the reference files it under
            # pending/unknown, so a submit that got it is unknown (resolve with the same id).
            wait = _retry_after(response)
            if status == 429:
                return Result.failed(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
            return Result.unknown(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
        if status in HTTP_ERRORS:
            return Result.failed(HTTP_ERRORS[status], raw)
        return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)

    # -- history --
    def find(self, txn_id: int, *, now: datetime | None = None) -> Result:
        """Our payment in the history of our wallet, matched by ``trmTxnId``; transport problems
        and refusals are ``unknown`` (they say nothing about the payment)."""
        now = now or datetime.now(timezone.utc)
        params: dict[str, str] = {
            "rows": str(self.history_rows), "operation": "OUT",
            "startDate": (now - timedelta(days=self.history_days)).isoformat(timespec="seconds"),
            "endDate": (now + timedelta(days=1)).isoformat(timespec="seconds"),
        }
        url = f"{self.base_url}/payment-history/v2/persons/{quote(self.wallet.lstrip('+'))}/payments"
        for _ in range(self.history_pages):
            # every page is one call of the wallet's history budget: spent -> ask again later,
            # without calling QIWI (a 101st call a minute would block the history for 5 minutes)
            wait = self._history_budget() if self._history_budget is not None else None
            if wait is not None:
                return Result.unknown(ErrorCode.RATE_LIMITED,
                                      "QIWI history budget spent for this minute; not called",
                                      retry_after=wait)
            try:
                response = self._session().get(url, params=params, timeout=self._timeout)
            except requests.RequestException as exc:
                return transport_failure(exc, submitting=False)
            status = response.status_code
            raw = f"HTTP {status}: {response.text[:500]}"
            if status != 200:
                code = HTTP_ERRORS.get(status, ErrorCode.PROVIDER_UNAVAILABLE)
                if status == 404:
                    code = ErrorCode.CONFIG
                # 423: more than 100 history calls a minute block the wallet for five minutes
                # [doc]; without a Retry-After we wait the block out instead of extending it
                wait = (_retry_after(response) or HISTORY_BLOCK) if status in (423, 429) else None
                return Result.unknown(code, raw, retry_after=wait)
            try:
                page = _json(response)
                items = page["data"]
                if not isinstance(items, list):
                    raise TypeError("data is not a list")
                for item in items:
                    if str(item.get("trmTxnId")) == str(txn_id) and item.get("type", "OUT") == "OUT":
                        return history_result(item, raw[:300])
                next_id, next_date = page.get("nextTxnId"), page.get("nextTxnDate")
            except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError,
                    UnicodeDecodeError):
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer: {raw}")
            if not next_id or not next_date:
                break
            params = {**params, "nextTxnId": str(next_id), "nextTxnDate": str(next_date)}
        return Result.unknown(ErrorCode.NOT_FOUND, f"no payment with trmTxnId {txn_id} in history")

    @staticmethod
    def _error_body(response: requests.Response) -> Mapping[str, Any]:
        try:
            body = _json(response)
        except (ValueError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}
