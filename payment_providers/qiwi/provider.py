"""The ``qiwi`` payout provider plugin (QIWI wallets through the sinap personal API; protocol in
the package docstring). Disabled by default: QIWI Bank's licence was revoked on 2024-02-21."""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from payment_providers.phones.operators import normalize_mobile
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
from plugins.handles import seconds_to_next_window
from portal.i18n import _l

from .client import QiwiClient, verify_notification

__all__ = ["QiwiProvider", "register_payout_providers", "comment_for", "key_from_comment"]

_KOPECK = Decimal("0.01")
_KEY_IN_COMMENT = re.compile(r"\[([A-Za-z0-9._:-]{1,64})\]\s*$")
#: Our ``id`` is at most 20 digits [doc].
_MAX_ID = 10 ** 20 - 1


def comment_for(request: PayoutRequest) -> str:
    """The payment ``comment``: the description, then our key in brackets (the webhook carries
    the comment but not our ``id``, so ``parse_callback`` reads the key from it)."""
    return f"{request.description} [{request.idempotency_key}]".strip()


def key_from_comment(comment: object) -> str | None:
    match = _KEY_IN_COMMENT.search(comment) if isinstance(comment, str) else None
    return match.group(1) if match else None


def _wallet_message(reason_code: str) -> Any:
    """QIWI's wording for the shared normalizer's reason codes (None: keep the phone text)."""
    if reason_code == "empty":
        return _l("Enter the QIWI wallet number: the phone number the wallet is registered to.")
    if reason_code == "format":
        return _l("A QIWI wallet number is a Russian mobile number: +7 and 10 digits, "
                  "for example +7 912 345-67-89.")
    if reason_code == "country":
        return _l("Only QIWI wallets registered to Russian mobile numbers (+7 9XX) "
                  "are supported.")
    return None


def _int_setting(settings: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = settings.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"qiwi: setting {name} must be an integer in [{low}, {high}]")
    return value


class QiwiProvider(PayoutProvider):
    """Payouts to QIWI wallets: ``POST /sinap/api/v2/terms/99/payments``, outcome from history."""

    code: ClassVar[str] = "qiwi"
    verbose_name: ClassVar[Mapping[str, str]] = {"ru": "QIWI Кошелёк", "en": "QIWI Wallet"}
    currency: ClassVar[str] = "RUB"
    #: Min 1 RUB (errors 241/254) [doc]; max 99 999 RUB, the payment form's limit [doc].
    limits: ClassVar[Limits] = Limits(Decimal("1.00"), Decimal("99999.00"))
    contract_version: ClassVar[str] = CONTRACT_VERSION
    supports_status_query: ClassVar[bool] = True
    supports_callbacks: ClassVar[bool] = True
    supports_balance: ClassVar[bool] = False
    #: The kill switch starts off: QIWI no longer serves Russian wallets.
    default_enabled: ClassVar[bool] = False
    disabled_reason: ClassVar[Mapping[str, str]] = {
        "ru": "Банк России отозвал лицензию у КИВИ Банка 21 февраля 2024 года.",
        "en": "QIWI Bank's licence was revoked by the Bank of Russia on 2024-02-21.",
    }
    #: Matches ``python -m payment_providers.qiwi.sandbox`` with its defaults, so an
    #: unconfigured install can never reach the live API (``https://edge.qiwi.com``).
    default_settings: ClassVar[ProviderSettings] = {
        "base_url": "http://127.0.0.1:8767",
        "credentials": {"token": "sandbox-token", "wallet": "+79990000000",
                        "webhook_key": "cWl3aS1zYW5kYm94LXdlYmhvb2sta2V5"},
        # Tariff (QIWI quotes through onlineCommission; not used): fee = percent + fixed.
        "fee_percent": "0",
        "fee_fixed": "0",
        # Added to the handle store's number to form QIWI's ``id`` (ids must grow [doc]; a
        # wallet that already used 1000 x Unix time ids needs a base above them).
        "id_base": 0,
        # History search: days back (<= 90 [doc]), pages of ``history_rows`` (<= 50 [doc]).
        "history_days": 89,
        "history_pages": 5,
        "history_rows": 50,
        # QIWI provider id: 99 = transfer to a QIWI wallet.
        "provider_id": 99,
        # History calls per wallet in any 60 seconds, shared by every worker on every host
        # through the handle store (7..100: QIWI blocks the wallet's history for five minutes
        # after more than 100 a minute [doc]). Counted in fixed 10-second windows of
        # budget // 7 calls each: any 60 seconds overlap at most 7 such windows, so even a burst
        # across a window boundary stays within the budget (100 → 14 a window, 84 a minute
        # steady). Every status check is 1..history_pages calls; a check over budget stays
        # unknown/pending and is asked again when the next window starts.
        "history_budget_per_minute": 100,
        # QIWI's own limit the budget must stay within: 100 a minute [doc]. Change it only for
        # a sandbox run at another scale (the fault soak compresses time).
        "history_limit_per_minute": 100,
    }  # type: ignore[typeddict-unknown-key]

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        missing = {"token", "wallet"} - self.credentials.keys()
        if missing:
            raise ValueError(f"qiwi: credentials lack {sorted(missing)}")
        self.fee_percent = self.decimal_setting("fee_percent", default="0")
        self.fee_fixed = self.decimal_setting("fee_fixed", default="0")
        self.id_base = _int_setting(self.settings, "id_base", 0, _MAX_ID // 2)
        self.provider_id = _int_setting(self.settings, "provider_id", 1, 10 ** 9)
        limit = _int_setting(self.settings, "history_limit_per_minute", self.WINDOWS_PER_MINUTE_SPAN, 10 ** 6)
        self.history_budget_per_minute = _int_setting(self.settings, "history_budget_per_minute",
                                                      self.WINDOWS_PER_MINUTE_SPAN, limit)
        #: Calls granted per window: any 60 s overlap at most WINDOWS_PER_MINUTE_SPAN windows.
        self.history_calls_per_window = self.history_budget_per_minute // self.WINDOWS_PER_MINUTE_SPAN
        #: Unix time for the history budget's windows (tests may replace it).
        self.clock: Callable[[], float] = time.time
        self.client = QiwiClient(
            self.base_url, self.credentials["token"], self.credentials["wallet"],
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            history_days=_int_setting(self.settings, "history_days", 1, 90),
            history_pages=_int_setting(self.settings, "history_pages", 1, 100),
            history_rows=_int_setting(self.settings, "history_rows", 1, 50),
            history_budget=self.take_history_call)

    #: The history budget's window.  QIWI counts 100 calls a minute [doc] — we do not know
    #: whether a fixed or a rolling minute, so the budget holds for any 60 seconds.
    HISTORY_WINDOW_SECONDS: ClassVar[int] = 10
    #: How many windows any 60 seconds can overlap.
    WINDOWS_PER_MINUTE_SPAN: ClassVar[int] = 60 // HISTORY_WINDOW_SECONDS + 1

    def history_bucket(self) -> str:
        """The budget's name in the handle store: one per wallet (QIWI limits per wallet)."""
        return "history:" + "".join(ch for ch in self.credentials["wallet"] if ch.isdigit())

    def take_history_call(self) -> timedelta | None:
        """One unit of the wallet's history budget (shared by every process through the handle
        store): None when granted, else the time until the next window."""
        now = self.clock()
        if self.handles.take(self.code, self.history_bucket(), self.HISTORY_WINDOW_SECONDS,
                             self.history_calls_per_window, now):
            return None
        return timedelta(seconds=seconds_to_next_window(now, self.HISTORY_WINDOW_SECONDS))

    # -- accounts and money --
    def validate_account(self, raw: str) -> str:
        """A QIWI wallet is a Russian mobile number; normalized to E.164 ``+79XXXXXXXXX`` by the
        shared phone normalizer (same reason codes). Where its wording speaks of phone top-ups,
        the message is replaced by one about wallets."""
        try:
            return normalize_mobile(raw)
        except InvalidAccount as exc:
            message = _wallet_message(exc.reason_code)
            if message is None:
                raise
            raise InvalidAccount(exc.reason_code, message) from None

    def quote(self, amount: Decimal, account: str) -> Quote:
        self.check_amount(amount)
        fee = (amount * self.fee_percent / 100 + self.fee_fixed).quantize(
            _KOPECK, rounding=ROUND_HALF_UP)
        return Quote(fee=fee, credited=amount)

    def txn_id(self, idempotency_key: str) -> int:
        """Our QIWI ``id`` for ``idempotency_key``: durable, allocated before any call."""
        number = self.id_base + self.handles.number_for(self.code, idempotency_key)
        if not 0 < number <= _MAX_ID:
            raise ValueError(f"qiwi id {number} out of range (at most 20 digits)")
        return number

    # -- payouts --
    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        early = self.check_request(request, idempotency_key)
        if early is not None:
            return early
        return self.client.pay(self.txn_id(idempotency_key), amount=request.amount,
                               account=request.account, comment=comment_for(request),
                               provider_id=self.provider_id)

    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        """The payment history of our wallet, searched for ``trmTxnId`` = our id. The history
        never shows a payment that QIWI did not take, so "not found" is ``unknown``/``not_found``
        (resubmitting under the same key is safe: same id)."""
        if request is not None and request.idempotency_key != idempotency_key:
            raise ValueError("idempotency_key does not match request.idempotency_key")
        return self.client.find(self.txn_id(idempotency_key))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """QIWI's webhook: ``hash`` = HMAC-SHA256 over the ``signFields`` values with the hook
        key. Only outgoing payments count; the key comes from the comment we sent."""
        key = self.credentials.get("webhook_key")
        if not key or not body:
            return None
        payment = verify_notification(body, key)
        if payment is None or payment.get("type") != "OUT":
            return None
        return key_from_comment(payment.get("comment"))


@hookimpl
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Contribute the ``qiwi`` provider."""
    return [QiwiProvider]
