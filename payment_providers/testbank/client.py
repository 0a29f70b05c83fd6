"""HTTP client of the Test Bank protocol (see the package docstring), with its error mapping.

Every call has explicit ``(connect, read)`` timeouts and no automatic retries: a retry after the
request left would be a second payout attempt, and that decision belongs to the engine.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from plugins import ErrorCode, PayoutProviderError, PayoutStatus, Result
from plugins.wire import transport_failure, retry_after as _retry_after, json_decimal as _json

__all__ = ["FAILURE_CODES", "TARIFF_RATE", "TestBankClient", "fee_for", "transport_failure"]

#: Test Bank charges the sender 1 % of the amount, rounded half up to the kopeck.
TARIFF_RATE = Decimal("0.01")
_KOPECK = Decimal("0.01")

#: ``failure.code`` of a failed payout -> our taxonomy. Unknown codes map to ``declined``.
FAILURE_CODES: Mapping[str, ErrorCode] = {
    "wallet_not_found": ErrorCode.INVALID_ACCOUNT,
    "wallet_blocked": ErrorCode.ACCOUNT_BLOCKED,
    "identification_required": ErrorCode.IDENTIFICATION_REQUIRED,
    "recipient_limit_exceeded": ErrorCode.RECIPIENT_LIMIT,
    "rejected_by_payee": ErrorCode.REJECTED_BY_RECIPIENT,
    "general_decline": ErrorCode.DECLINED,
    "insufficient_funds": ErrorCode.INSUFFICIENT_FUNDS,
    "daily_limit_exceeded": ErrorCode.SENDER_LIMIT,
}
#: ``error.code`` of a 422 answer -> our taxonomy.
_REJECTION_CODES: Mapping[str, ErrorCode] = {
    "invalid_wallet": ErrorCode.INVALID_ACCOUNT,
    "amount_below_minimum": ErrorCode.AMOUNT_TOO_SMALL,
    "amount_above_maximum": ErrorCode.AMOUNT_TOO_LARGE,
}
#: HTTP statuses of a POST that prove nothing was paid, and what they mean.
_SUBMIT_REFUSALS: Mapping[int, ErrorCode] = {
    400: ErrorCode.CONFIG,     # our request is malformed: a bug or a protocol change
    401: ErrorCode.AUTH,
    403: ErrorCode.CONFIG,     # payouts not enabled for this merchant
    404: ErrorCode.CONFIG,     # wrong base_url
    409: ErrorCode.DUPLICATE_CONFLICT,
}


def fee_for(amount: Decimal) -> Decimal:
    """What Test Bank charges us for paying ``amount``."""
    return (amount * TARIFF_RATE).quantize(_KOPECK, rounding=ROUND_HALF_UP)










def _money(value: object) -> Decimal:
    amount = Decimal(value) if isinstance(value, (str, Decimal)) else None
    if amount is None or not amount.is_finite():
        raise ValueError(f"bad amount {value!r}")
    return amount


class TestBankClient:
    """One merchant account at Test Bank. Thread-safe (one ``requests.Session`` per thread)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, base_url: str, username: str, password: str, *,
                 connect_timeout: float, read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = (username, password)
        self._timeout = (connect_timeout, read_timeout)
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
                      description: str, metadata: Mapping[str, str]) -> Result:
        """``POST /payouts`` under ``Idempotency-Key: key``."""
        body = json.dumps({"amount": format(amount, "f"), "currency": currency, "account": account,
                           "description": description, "metadata": dict(metadata)})
        try:
            response = self._session().post(
                f"{self.base_url}/payouts", data=body.encode(), timeout=self._timeout,
                headers={"Idempotency-Key": key, "Content-Type": "application/json"})
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=True)
        return self._interpret(response, key, submitting=True)

    def get_payout(self, key: str) -> Result:
        """``GET /payouts/<key>``."""
        try:
            response = self._session().get(f"{self.base_url}/payouts/{key}", timeout=self._timeout)
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=False)
        return self._interpret(response, key, submitting=False)

    def get_balance(self) -> Decimal:
        """``GET /balance``. :raises PayoutProviderError: on any failure."""
        try:
            response = self._session().get(f"{self.base_url}/balance", timeout=self._timeout)
        except requests.RequestException as exc:
            result = transport_failure(exc, submitting=False)
            raise PayoutProviderError(result.error or ErrorCode.PROVIDER_UNAVAILABLE,
                                      result.raw_message) from exc
        raw = f"HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code != 200:
            code = {401: ErrorCode.AUTH, 403: ErrorCode.CONFIG, 404: ErrorCode.CONFIG,
                    429: ErrorCode.RATE_LIMITED}.get(response.status_code,
                                                     ErrorCode.PROVIDER_UNAVAILABLE)
            raise PayoutProviderError(code, raw)
        try:
            return _money(_json(response)["available"])
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise PayoutProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled: {raw}") from exc

    # -- mapping --
    def _interpret(self, response: requests.Response, key: str, *, submitting: bool) -> Result:
        status = response.status_code
        raw = f"HTTP {status}: {response.text[:500]}"
        if status in (200, 201):
            try:
                return self._payout_result(_json(response), key, raw)
            except (ValueError, KeyError, TypeError, ArithmeticError):
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer: {raw}")
        try:
            error_code = str(_json(response)["error"]["code"])
        except (ValueError, KeyError, TypeError):
            error_code = ""
        if status == 429:
            wait = _retry_after(response)
            if submitting:
                return Result.failed(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
            return Result.unknown(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
        if not submitting:
            if status == 404 and error_code == "not_found":
                return Result.unknown(ErrorCode.NOT_FOUND, raw)
            if 400 <= status < 500:
                return Result.unknown(_SUBMIT_REFUSALS.get(status, ErrorCode.CONFIG), raw)
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)
        if status in _SUBMIT_REFUSALS:
            return Result.failed(_SUBMIT_REFUSALS[status], raw)
        if status == 422:
            return Result.failed(_REJECTION_CODES.get(error_code, ErrorCode.DECLINED), raw)
        return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)  # 5xx and anything unexpected

    @staticmethod
    def _payout_result(payout: Any, key: str, raw: str) -> Result:
        if payout["idempotency_key"] != key:
            raise ValueError("answer about another payout")
        reference, state = str(payout["id"]), payout["status"]
        amount, fee = _money(payout["amount"]), _money(payout["fee"])
        if state == "processing":
            return Result(PayoutStatus.PENDING, None, reference, amount, fee)
        if state == "succeeded":
            return Result(PayoutStatus.SUCCEEDED, None, reference, amount, fee)
        failure = payout.get("failure") or {}
        error = FAILURE_CODES.get(str(failure.get("code")), ErrorCode.DECLINED)
        if state == "failed":
            return Result(error.default_status, error, reference, amount, fee, raw_message=raw)
        if state == "reversed":
            return Result(PayoutStatus.REVERSED, error if failure else None, reference, amount,
                          fee, raw_message=raw)
        raise ValueError(f"unknown payout status {state!r}")
