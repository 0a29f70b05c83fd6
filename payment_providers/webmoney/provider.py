"""The ``webmoney`` payout provider plugin (WebMoney purses through X2/X3; protocol in the
package docstring)."""
from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
from plugins.provider import ErrorCode
from portal.i18n import _l

from .client import PURSE_RE, WMID_RE, WebMoneyClient, settings_signer

__all__ = ["WebMoneyProvider", "fee_for", "register_payout_providers"]

_SEPARATORS = re.compile(r"[\s\-]")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Purse type letters that are not (or no longer) ordinary payout purses.
_RETIRED = {"R": "P"}   # R (WMR) replaced by P (WMP) from 2019-08-01 [doc]
_CREDIT = {"C", "D"}    # credit purses: no direct transfers (retval 30) [doc]


def fee_for(amount: Decimal, *, percent: Decimal, minimum: Decimal, maximum: Decimal | None,
            rounding: str) -> Decimal:
    """WebMoney's fee: ``percent`` % of the amount, rounded to 0.01 with ``rounding``, at least
    ``minimum``, at most ``maximum`` (when set) [doc: 0.8 %, min 0.01 WM, capped per type]."""
    fee = (amount * percent / 100).quantize(Decimal("0.01"), rounding=rounding)
    fee = max(fee, minimum)
    if maximum is not None:
        fee = min(fee, maximum)
    return fee


class WebMoneyProvider(PayoutProvider):
    """Payouts to WebMoney purses with X2 (transfer, idempotent by ``tranid``) and X3 (status)."""

    code: ClassVar[str] = "webmoney"
    verbose_name: ClassVar[Mapping[str, str]] = {"ru": "WebMoney", "en": "WebMoney"}
    currency: ClassVar[str] = "RUB"
    #: Class-level defaults; the ``min_amount`` / ``max_amount`` settings override them per
    #: instance (WebMoney publishes no per-transfer payout limit for WMP [?]).
    limits: ClassVar[Limits] = Limits(Decimal("1.00"), Decimal("15000.00"))
    contract_version: ClassVar[str] = CONTRACT_VERSION
    supports_status_query: ClassVar[bool] = True
    supports_callbacks: ClassVar[bool] = False
    supports_balance: ClassVar[bool] = False
    #: Matches ``python -m payment_providers.webmoney.sandbox`` with its defaults, so an
    #: unconfigured install never reaches WebMoney. Production: ``base_url``
    #: ``https://w3s.wmtransfer.com`` (Light) or ``https://w3s.webmoney.ru``, ``signer`` ``light``
    #: and credentials ``wmid``, ``purse``, ``cert_file``, ``key_file``.
    default_settings: ClassVar[ProviderSettings] = {
        "base_url": "http://127.0.0.1:8768",
        "credentials": {"wmid": "100000000001", "purse": "P100000000001",
                        "test_key": "sandbox-wm-key"},
        # "light" (client certificate, real use) or "test" (sandbox HMAC; loopback URLs only).
        "signer": "test",
        "min_amount": "1.00",
        "max_amount": "15000.00",          # [?] per-contract / per-identification
        # Purse type per payout currency [doc: P replaced R for RUB].
        "purse_types": {"RUB": "P"},
        # Fee [doc: 0.8 %, min 0.01 WM; cap per type, e.g. 50 WMZ/WME; WMP cap not found [?]].
        "fee_percent": "0.8",
        "fee_min": "0.01",
        "fee_max": None,
        "fee_rounding": decimal.ROUND_HALF_UP,   # [?] rounding rule not documented
        # X2 onlyauth=1: respect the recipient's "only authorized correspondents" (retval 35).
        "onlyauth": True,
        # How many fresh reqns one call may use after retval 102. Calls in flight together (a
        # worker's call threads, other workers) sometimes reach WebMoney out of reqn order: 5 %
        # of the bench's X2 calls got a 102 with 2 workers x 4 calls; at that rate 3 in a row (a
        # CONFIG failure: the provider paused) would come about once in 8,000 calls, 5 in a row
        # once in millions.
        "reqn_attempts": 5,
        # X3 window (datestart = now - lookback_days; dates are required) [?: WebMoney's limit].
        "lookback_days": 90,
        # Text of the desc element when the request has none.
        "default_description": "Cashback payout",
    }  # type: ignore[typeddict-unknown-key]

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings)
        credentials = self.credentials
        wmid, purse = str(credentials.get("wmid", "")), str(credentials.get("purse", ""))
        if not WMID_RE.match(wmid):
            raise ValueError("webmoney: credentials.wmid must be 12 digits")
        if not PURSE_RE.match(purse):
            raise ValueError("webmoney: credentials.purse must be a letter and 12 digits")
        types = self.settings.get("purse_types") or {}
        if not isinstance(types, Mapping) or not re.fullmatch(
                r"[A-Z]", str(types.get(self.currency, ""))):
            raise ValueError(f"webmoney: setting purse_types needs a letter for {self.currency}")
        self.purse_type = str(types[self.currency])
        if purse[0] != self.purse_type:
            raise ValueError(f"webmoney: our purse {purse} is not a {self.purse_type} purse")
        minimum = self.decimal_setting("min_amount")
        maximum = self.decimal_setting("max_amount")
        self.limits = Limits(minimum, maximum)  # type: ignore[arg-type,misc]
        self.fee_percent = self.decimal_setting("fee_percent")
        self.fee_min = self.decimal_setting("fee_min")
        self.fee_max = self.decimal_setting("fee_max", optional=True)
        self.fee_rounding = str(self.settings.get("fee_rounding"))
        if self.fee_rounding not in {getattr(decimal, n) for n in dir(decimal)
                                     if n.startswith("ROUND_")}:
            raise ValueError("webmoney: setting fee_rounding must be a decimal.ROUND_* name")
        mode = str(self.settings.get("signer") or "")
        signer = settings_signer(mode, credentials)
        if mode == "test" and (urlsplit(self.base_url).hostname or "") not in _LOOPBACK:
            raise ValueError("webmoney: the test signer is for local sandboxes only")
        self.client = WebMoneyClient(
            self.base_url, wmid=wmid, purse=purse, signer=signer,
            next_reqn=lambda: self.handles.next_counter(self.code, "reqn"),
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            reqn_attempts=int(self.settings.get("reqn_attempts") or 1),
            onlyauth=bool(self.settings.get("onlyauth")),
            lookback_days=int(self.settings.get("lookback_days") or 90))

    # -- accounts and money --
    def validate_account(self, raw: str) -> str:
        compact = _SEPARATORS.sub("", raw or "").upper()
        if not compact:
            raise InvalidAccount("empty", _l("Enter the WebMoney purse number."))
        if WMID_RE.match(compact):
            raise InvalidAccount("wmid", _l(
                "This looks like a WMID. Enter the purse number: a letter and 12 digits."))
        if compact.startswith("WM") and len(compact) > 2 and PURSE_RE.match(compact[2:]):
            compact = compact[2:]  # "WMP123…" typed for "P123…"
        if not PURSE_RE.match(compact):
            raise InvalidAccount("format", _l(
                "A WebMoney purse number is a letter and 12 digits, e.g. %(example)s.",
                example=f"{self.purse_type}123456789012"))
        letter = compact[0]
        if _RETIRED.get(letter) == self.purse_type:
            raise InvalidAccount("retired", _l(
                "%(old)s purses are no longer in use: enter your %(new)s purse.",
                old=letter, new=self.purse_type))
        if letter != self.purse_type:
            raise InvalidAccount("currency", _l(
                "Payouts in %(currency)s go to %(type)s purses only.",
                currency=self.currency, type=self.purse_type))
        return compact

    def quote(self, amount: Decimal, account: str) -> Quote:
        self.check_amount(amount)
        return Quote(fee=self.fee(amount), credited=amount)

    def fee(self, amount: Decimal) -> Decimal:
        """The ``comiss`` WebMoney charges our purse for ``amount``."""
        return fee_for(amount, percent=self.fee_percent, minimum=self.fee_min,  # type: ignore[arg-type]
                       maximum=self.fee_max, rounding=self.fee_rounding)

    # -- payouts --
    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        early = self.check_request(request, idempotency_key)
        if early is not None:
            return early
        # Durable before the call: a retry after a crash reuses the same tranid.
        tranid = self.handles.number_for(self.code, idempotency_key)
        desc = request.description or str(self.settings.get("default_description") or "")
        return self.client.transfer(tranid=tranid, pursedest=request.account,
                                    amount=request.amount, desc=desc)

    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        """X3 by our ``tranid``; never repeats the transfer. Not found -> ``unknown``/``not_found``
        (the engine may then resubmit under the same key: same tranid, so at most once)."""
        if request is not None and request.idempotency_key != idempotency_key:
            raise ValueError("idempotency_key does not match request.idempotency_key")
        tranid = self.handles.number_for(self.code, idempotency_key)
        return self.client.status(tranid)


@hookimpl
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Contribute the ``webmoney`` provider."""
    return [WebMoneyProvider]
