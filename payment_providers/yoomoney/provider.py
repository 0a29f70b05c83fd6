"""The ``yoomoney`` payout provider plugin (YooMoney wallets through YooKassa API v3 payouts;
protocol in the package docstring)."""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from plugins import (
    CONTRACT_VERSION,
    InvalidAccount,
    Limits,
    PayoutProvider,
    PayoutRequest,
    PayoutStatus,
    ProviderSettings,
    Quote,
    Result,
    hookimpl,
)
from plugins.provider import ErrorCode
from portal.i18n import _l

from .client import IDEMPOTENCE_PARAMETER, YooKassaClient, check_wallet

__all__ = ["YooMoneyProvider", "register_payout_providers"]

_SEPARATORS = re.compile(r"[\s\-]")
_KOPECK = Decimal("0.01")
#: How many key -> payout id pairs one process remembers for ``GET /payouts/{id}``.
_KNOWN_IDS = 10_000


class YooMoneyProvider(PayoutProvider):
    """Payouts to YooMoney wallets through YooKassa API v3 (``POST /v3/payouts``)."""

    code: ClassVar[str] = "yoomoney"
    verbose_name: ClassVar[Mapping[str, str]] = {"ru": "ЮMoney", "en": "YooMoney"}
    currency: ClassVar[str] = "RUB"
    #: Min 1 RUB [doc]. Max: an identified wallet may hold at most 500 000 RUB after the payout
    #: [doc], so no single payout above that can succeed (the 600 000 RUB/month cap is per wallet
    #: and enforced by YooKassa as ``periodic_limit_exceeded``).
    limits: ClassVar[Limits] = Limits(Decimal("1.00"), Decimal("500000.00"))
    contract_version: ClassVar[str] = CONTRACT_VERSION
    supports_status_query: ClassVar[bool] = True
    supports_callbacks: ClassVar[bool] = False
    supports_balance: ClassVar[bool] = False
    #: Matches ``python -m payment_providers.yoomoney.sandbox`` with its defaults, so an
    #: unconfigured install can never reach the live API. Production: ``base_url``
    #: ``https://api.yookassa.ru/v3`` and the gateway's shop id and secret key.
    default_settings: ClassVar[ProviderSettings] = {
        "base_url": "http://127.0.0.1:8766/v3",
        "credentials": {"shop_id": "sandbox-shop", "secret_key": "test_sandbox-secret"},
        # YooKassa's wallet payout tariff is per contract and not returned by the API:
        # fee = fee_percent % of the amount + fee_fixed, rounded half up to the kopeck.
        "fee_percent": "0",
        "fee_fixed": "0",
        # Required leading digits of a wallet number (empty: any). The published check digits
        # cannot catch a changed first digit (it re-parses the number: 21001614575714 passes),
        # and every real wallet number starts with 4100 [doc] (41001…, 41003…).
        "wallet_prefixes": ("4100",),
        # The ``parameter`` of the 400 answer to a reused Idempotence-Key with other data [?].
        "idempotence_conflict_parameter": IDEMPOTENCE_PARAMETER,
    }  # type: ignore[typeddict-unknown-key]

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        missing = {"shop_id", "secret_key"} - self.credentials.keys()
        if missing:
            raise ValueError(f"yoomoney: credentials lack {sorted(missing)}")
        self.fee_percent = self.decimal_setting("fee_percent", default="0")
        self.fee_fixed = self.decimal_setting("fee_fixed", default="0")
        self.client = YooKassaClient(
            self.base_url, self.credentials["shop_id"], self.credentials["secret_key"],
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            idempotence_parameter=str(self.settings.get("idempotence_conflict_parameter")
                                      or IDEMPOTENCE_PARAMETER))
        prefixes = self.settings.get("wallet_prefixes") or ()
        if isinstance(prefixes, str) or not all(
                isinstance(p, str) and p.isdigit() for p in prefixes):
            raise ValueError("yoomoney: setting wallet_prefixes must be a list of digit strings")
        self.wallet_prefixes: tuple[str, ...] = tuple(prefixes)
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._ids_lock = threading.Lock()

    # -- accounts and money --
    def validate_account(self, raw: str) -> str:
        compact = _SEPARATORS.sub("", raw or "")
        if not compact:
            raise InvalidAccount("empty", _l("Enter the wallet number."))
        if not (compact.isascii() and compact.isdigit()):
            raise InvalidAccount("format", _l(
                "A YooMoney wallet number is 11 to 20 digits."))
        if not 11 <= len(compact) <= 20:
            raise InvalidAccount("length", _l(
                "A YooMoney wallet number is 11 to 20 digits."))
        if self.wallet_prefixes and not compact.startswith(self.wallet_prefixes):
            raise InvalidAccount("prefix", _l(
                "A YooMoney wallet number starts with %(prefix)s.",
                prefix=self.wallet_prefixes[0]))
        problem = check_wallet(compact)
        if problem == "format":
            raise InvalidAccount("format", _l(
                "This is not a YooMoney wallet number: please check it."))
        if problem is not None:
            raise InvalidAccount("check_digit", _l(
                "This wallet number has a typo: please check the digits."))
        return compact

    def quote(self, amount: Decimal, account: str) -> Quote:
        self.check_amount(amount)
        fee = (amount * self.fee_percent / 100 + self.fee_fixed).quantize(
            _KOPECK, rounding=ROUND_HALF_UP)
        return Quote(fee=fee, credited=amount)

    # -- payouts --
    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        early = self.check_request(request, idempotency_key)
        if early is not None:
            return early
        return self._remember(idempotency_key, self._post(request, submitting=True))

    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        """GET by YooKassa's payout id when this process knows it; otherwise the documented way:
        repeat the same POST with the same ``Idempotence-Key`` and data (YooKassa answers the
        original result). Without the request and the id there is nothing to ask with."""
        with self._ids_lock:
            payout_id = self._ids.get(idempotency_key)
        if payout_id is not None:
            result = self.client.get_payout(payout_id)
            if result.error is not ErrorCode.NOT_FOUND or request is None:
                return result
        if request is None:
            return Result.unknown(ErrorCode.NOT_FOUND,
                                  "no payout id known for this key and no request to repeat")
        if request.idempotency_key != idempotency_key:
            raise ValueError("idempotency_key does not match request.idempotency_key")
        return self._remember(idempotency_key, self._post(request, submitting=False))

    def _post(self, request: PayoutRequest, *, submitting: bool) -> Result:
        return self.client.create_payout(
            request.idempotency_key, amount=request.amount, currency=request.currency,
            account=request.account, description=request.description,
            metadata=request.metadata, submitting=submitting)

    def _remember(self, key: str, result: Result) -> Result:
        if result.provider_reference and result.status in (
                PayoutStatus.PENDING, PayoutStatus.SUCCEEDED, PayoutStatus.ACCEPTED):
            with self._ids_lock:
                self._ids[key] = result.provider_reference
                self._ids.move_to_end(key)
                while len(self._ids) > _KNOWN_IDS:
                    self._ids.popitem(last=False)
        return result


@hookimpl
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Contribute the ``yoomoney`` provider."""
    return [YooMoneyProvider]
