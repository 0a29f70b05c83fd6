"""HTTP client of YooKassa API v3 payouts (see the package docstring), with its error mapping,
and the YooMoney wallet check-digit algorithm shared by the provider and the sandbox.

Every call has explicit ``(connect, read)`` timeouts and no automatic retries: a retry after the
request left would be a second payout attempt, and that decision belongs to the engine.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from plugins import ErrorCode, PayoutStatus, Result
from plugins.wire import transport_failure, retry_after as _retry_after, json_decimal as _json

__all__ = [
    "CANCELLATION_REASONS",
    "HTTP_ERRORS",
    "IDEMPOTENCE_PARAMETER",
    "YooKassaClient",
    "account_number_redundancy",
    "check_wallet",
    "make_wallet",
    "transport_failure",
]

# --------------------------------------------------------------------------- wallet numbers

#: (13 ** i) mod 99, the weights of the redundancy function.
_FACTORS = tuple(pow(13, i, 99) for i in range(32))


def account_number_redundancy(x: str, y: str) -> str:
    """The two check digits Z of a wallet N·X·Y·Z (published YooMoney algorithm, §1.4).

    Y's digits from the least significant end, zero-padded to 20, then X's the same way padded
    to 10; a digit 0 (padding included) counts as 10; the k-th digit (k = 0..29) is weighted by
    13^(k+2) mod 99; Z = (sum mod 99) + 1 as two digits.
    """
    sequence = y[::-1].ljust(20, "0") + x[::-1].ljust(10, "0")
    total = sum((int(char) or 10) * _FACTORS[k + 2] for k, char in enumerate(sequence))
    return f"{total % 99 + 1:02d}"


def check_wallet(number: str) -> str | None:
    """None when ``number`` (digits only) passes the published check, else the reason:
    ``format`` (cannot be parsed) or ``check_digit`` (parsed, but Z is wrong)."""
    if not number.isascii() or not number.isdigit():
        return "format"
    n = int(number[0])
    if n == 0 or len(number) < n + 4:
        return "format"
    x, y, z = number[1:1 + n], number[1 + n:-2], number[-2:]
    if len(y) > 20:
        return "format"
    if z == "00" or account_number_redundancy(x, y) != z:
        return "check_digit"
    return None


def make_wallet(x: str, y: str) -> str:
    """A valid wallet number with processing code ``x`` and account ``y`` (for sandboxes/tests)."""
    return f"{len(x)}{x}{y}{account_number_redundancy(x, y)}"


# --------------------------------------------------------------------------- error mapping

#: ``cancellation_details.reason`` of a canceled payout -> our taxonomy (status follows from the
#: code: ``insufficient_funds`` is retryable after a top-up, the rest are final). Unknown reasons
#: map to ``declined``: a canceled payout moved no money, so final is safe.
CANCELLATION_REASONS: Mapping[str, ErrorCode] = {
    "fraud_suspected": ErrorCode.DECLINED,
    "general_decline": ErrorCode.DECLINED,
    "one_time_limit_exceeded": ErrorCode.RECIPIENT_LIMIT,
    "periodic_limit_exceeded": ErrorCode.RECIPIENT_LIMIT,
    "rejected_by_payee": ErrorCode.REJECTED_BY_RECIPIENT,
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
}

#: HTTP status of ``POST /v3/payouts`` -> our taxonomy, when the answer proves nothing was paid.
#: 400 is refined by the error's ``parameter`` (see :meth:`YooKassaClient._error_code`).
HTTP_ERRORS: Mapping[int, ErrorCode] = {
    400: ErrorCode.CONFIG,           # invalid_request: our request shape is wrong
    401: ErrorCode.AUTH,             # invalid_credentials
    403: ErrorCode.CONFIG,           # forbidden: payouts not enabled for this gateway
    404: ErrorCode.CONFIG,           # not_found: wrong base_url
    405: ErrorCode.CONFIG,           # method not allowed: a client bug
    415: ErrorCode.CONFIG,           # unsupported media type: a client bug
    429: ErrorCode.RATE_LIMITED,     # too_many_requests
}

#: The ``parameter`` of the 400 ``invalid_request`` error YooKassa answers when an
#: ``Idempotence-Key`` is reused with other data [?: exact code/description unverified; the
#: sandbox mirrors this choice and the client matches on it, configurable per provider].
IDEMPOTENCE_PARAMETER = "Idempotence-Key"
_ACCOUNT_PARAMETERS = frozenset({"payout_destination_data.account_number",
                                 "payout_destination_data"})
_AMOUNT_PARAMETERS = frozenset({"amount", "amount.value"})










def _money(value: object) -> Decimal:
    amount = Decimal(value) if isinstance(value, (str, Decimal)) else None
    if amount is None or not amount.is_finite():
        raise ValueError(f"bad amount {value!r}")
    return amount


def amount_text(amount: Decimal) -> str:
    """YooKassa's amount value: a string with exactly two decimals (``"100.00"``)."""
    return format(amount.quantize(Decimal("0.01")), "f")


class YooKassaClient:
    """One YooKassa gateway (shop id + secret key). Thread-safe (one session per thread)."""

    def __init__(self, base_url: str, shop_id: str, secret_key: str, *,
                 connect_timeout: float, read_timeout: float,
                 idempotence_parameter: str = IDEMPOTENCE_PARAMETER) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (shop_id, secret_key)
        self._timeout = (connect_timeout, read_timeout)
        self._idempotence_parameter = idempotence_parameter.lower()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            adapter = HTTPAdapter(max_retries=0)  # never resend on our own
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    # -- operations --
    def create_payout(self, key: str, *, amount: Decimal, currency: str, account: str,
                      description: str, metadata: Mapping[str, str],
                      submitting: bool = True) -> Result:
        """``POST /payouts`` under ``Idempotence-Key: key``.

        ``submitting=False`` is the status check by repetition (same key, same data): transport
        failures and refusals then say nothing about the payout and give ``unknown``.
        """
        body: dict[str, Any] = {
            "amount": {"value": amount_text(amount), "currency": currency},
            "payout_destination_data": {"type": "yoo_money", "account_number": account},
        }
        if description:
            body["description"] = description
        if metadata:
            body["metadata"] = dict(metadata)
        try:
            response = self._session().post(
                f"{self.base_url}/payouts", data=json.dumps(body).encode(), timeout=self._timeout,
                headers={"Idempotence-Key": key, "Content-Type": "application/json"})
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=submitting)
        return self.interpret(response, submitting=submitting)

    def get_payout(self, payout_id: str) -> Result:
        """``GET /payouts/{id}``."""
        try:
            response = self._session().get(f"{self.base_url}/payouts/{quote(payout_id, safe='')}",
                                           timeout=self._timeout)
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=False)
        return self.interpret(response, submitting=False, expected_id=payout_id)

    # -- mapping --
    def interpret(self, response: requests.Response, *, submitting: bool,
                  expected_id: str | None = None) -> Result:
        """Map one HTTP answer of the payouts API to a :class:`Result`."""
        status = response.status_code
        raw = f"HTTP {status}: {response.text[:500]}"
        if status == 200:
            try:
                return payout_result(_json(response), raw, expected_id=expected_id)
            except (ValueError, KeyError, TypeError, ArithmeticError, AttributeError):
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer: {raw}")
        if status >= 500 or status not in HTTP_ERRORS:
            # 500 internal_server_error: result unknown, repeat with the same key and data.
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)
        code = self.error_code(status, self._error_body(response))
        if status == 429:
            wait = _retry_after(response)
            if submitting:
                return Result.failed(code, raw, retry_after=wait)
            return Result.unknown(code, raw, retry_after=wait)
        if not submitting:
            if status == 404:
                return Result.unknown(ErrorCode.NOT_FOUND, raw)
            return Result.unknown(code, raw)
        return Result.failed(code, raw)

    def error_code(self, status: int, error: Mapping[str, Any]) -> ErrorCode:
        """Our code for an HTTP error answer (``error`` is the parsed error body, maybe empty)."""
        if status == 400:
            parameter = str(error.get("parameter") or "")
            if parameter.lower() == self._idempotence_parameter and error.get("code") in (
                    None, "invalid_request"):
                return ErrorCode.DUPLICATE_CONFLICT
            if parameter in _ACCOUNT_PARAMETERS:
                return ErrorCode.INVALID_ACCOUNT
        return HTTP_ERRORS.get(status, ErrorCode.PROVIDER_UNAVAILABLE)

    @staticmethod
    def _error_body(response: requests.Response) -> Mapping[str, Any]:
        try:
            body = _json(response)
        except (ValueError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) and body.get("type") == "error" else {}


def payout_result(payout: Any, raw: str, *, expected_id: str | None = None) -> Result:
    """The :class:`Result` of a YooKassa payout object.

    :raises ValueError, KeyError, TypeError: the object is not a payout (garbled answer).
    """
    reference, state = str(payout["id"]), payout["status"]
    if expected_id is not None and reference != expected_id:
        raise ValueError("answer about another payout")
    amount = _money(payout["amount"]["value"])
    if state == "pending":
        return Result(PayoutStatus.PENDING, None, reference, amount)
    if state == "succeeded":
        return Result(PayoutStatus.SUCCEEDED, None, reference, amount)
    if state == "canceled":
        details = payout.get("cancellation_details") or {}
        reason = str(details.get("reason") or "")
        error = CANCELLATION_REASONS.get(reason, ErrorCode.DECLINED)
        text = f"canceled by {details.get('party') or '?'}: {reason or '?'} ({raw})"
        return Result(error.default_status, error, reference, amount, raw_message=text)
    raise ValueError(f"unknown payout status {state!r}")
