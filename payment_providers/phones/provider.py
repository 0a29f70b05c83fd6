"""The ``mts``, ``megafon`` and ``beeline`` payout providers: thin subclasses of one
:class:`PhoneProvider` over the shared :class:`~payment_providers.phones.client.PhoneClient`."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from plugins import (
    CONTRACT_VERSION,
    ErrorCode,
    Limits,
    PayoutProvider,
    PayoutRequest,
    PayoutStatus,
    Quote,
    Result,
    hookimpl,
)

from .client import (
    REVERSAL_CODES,
    SANDBOX_SECRETS,
    PhoneClient,
    ProtocolError,
    parse_xml,
    settings_signer,
)
from .operators import OPERATORS, dst_account, normalize_mobile

__all__ = ["BeelineProvider", "MegafonProvider", "MtsProvider", "PhoneProvider",
           "register_payout_providers"]

_KOPECK = Decimal("0.01")


def _decimal_setting(settings: Mapping[str, Any], name: str, default: Decimal) -> Decimal:
    value = settings.get(name, default)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"setting {name} must be a Decimal")
    return value


class PhoneProvider(PayoutProvider):
    """Top-ups of Russian mobile numbers through YooKassa's mass-payout protocol.

    Settings beyond the base ones (all have defaults that match the local sandbox):

    * ``agent_id``: the YooKassa gateway id (``agentId``).
    * ``credentials``: ``certificate_name``, ``signing_secret`` (TestSigner only),
      ``server_certificate``, ``server_secret`` (how answers must be signed).
    * ``signer``: ``"test"`` (sandbox only) or ``"module:factory"`` returning a PKCS#7 signer.
    * ``currency_code``: ``"643"`` live, ``"10643"`` on the test gateway.
    * ``client_order_id``: ``"key"`` (our key as is) or ``"digest"`` (a positive integer).
    * ``contract``: the ``contract`` text (basis of the payout).
    * ``min_amount`` / ``max_amount``: per-payout limits per the contract [unverified].
    * ``fee_rate``: our tariff as a fraction of the amount [per contract; default 0].
    """

    #: Operator code the subclass tops up (``mts``, ``megafon``, ``beeline``).
    operator: ClassVar[str]
    currency: ClassVar[str] = "RUB"
    #: Defaults only: no phone payout limits were found in the documentation; set per contract.
    limits: ClassVar[Limits] = Limits(Decimal("1.00"), Decimal("15000.00"))
    contract_version: ClassVar[str] = CONTRACT_VERSION
    supports_status_query: ClassVar[bool] = True
    supports_callbacks: ClassVar[bool] = True
    supports_balance: ClassVar[bool] = True
    #: The sandbox's own agent id for this operator (see ``sandbox.DEFAULT_AGENTS``).
    default_agent_id: ClassVar[str] = "250000"

    def production_problems(self) -> list[str]:
        """The base checks, plus the sandbox's signing secrets wherever they appear: with the
        ``test`` signer an answer without ``server_secret`` would be checked against the public
        ``sandbox-deposit-secret``, so anyone could sign a reversal notification."""
        problems = super().production_problems()
        problems += [f"credential {name!r} is a sandbox secret" for name, value in self.credentials.items()
                     if value in SANDBOX_SECRETS]
        return problems

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        defaults: dict[str, Any] = {
            "base_url": "http://127.0.0.1:9094",
            "credentials": {"certificate_name": "/business/cashback-sandbox",
                            "signing_secret": "sandbox-signing-secret",
                            "server_certificate": "deposit",
                            "server_secret": "sandbox-deposit-secret"},
            "agent_id": self.default_agent_id, "signer": "test", "currency_code": "643",
            "client_order_id": "key", "contract": "Cashback payout",
        }
        super().__init__({**defaults, **(settings or {})})
        missing = {"certificate_name"} - self.credentials.keys()
        if missing:
            raise ValueError(f"{self.code}: credentials lack {sorted(missing)}")
        self.limits = Limits(  # type: ignore[misc]  # instance override of the class default
            _decimal_setting(self.settings, "min_amount", type(self).limits.min_amount),
            _decimal_setting(self.settings, "max_amount", type(self).limits.max_amount))
        self.fee_rate = _decimal_setting(self.settings, "fee_rate", Decimal("0"))
        self.signer = settings_signer(self.settings)
        self.client = PhoneClient(
            self.base_url, agent_id=str(self.settings["agent_id"]), signer=self.signer,
            currency_code=str(self.settings["currency_code"]),
            contract=str(self.settings["contract"]),
            client_order_ids=str(self.settings["client_order_id"]),
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout)
        #: clientOrderId -> (our key, error code) of authentic errorDepositionNotifications.
        #: In memory: the engine persists what matters (the payout turns ``reversed``).
        self._reversals: dict[str, tuple[str, int]] = {}
        self._order_keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def validate_account(self, raw: str) -> str:
        return normalize_mobile(raw)

    def quote(self, amount: Decimal, account: str) -> Quote:
        self.check_amount(amount)
        fee = (amount * self.fee_rate).quantize(_KOPECK, rounding=ROUND_HALF_UP)
        return Quote(fee=fee, credited=amount)

    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        early = self.check_request(request, idempotency_key)
        if early is not None:
            return early
        return self._deposit(request, submitting=True)

    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        if request is None:
            return Result.unknown(ErrorCode.NOT_FOUND,
                                  "makeDeposition status needs the original request to repeat")
        if request.idempotency_key != idempotency_key:
            raise ValueError("idempotency_key does not match request.idempotency_key")
        return self._deposit(request, submitting=False)

    def _deposit(self, request: PayoutRequest, *, submitting: bool) -> Result:
        order_id = self.client.order_id(request.idempotency_key)
        with self._lock:
            self._order_keys[order_id] = request.idempotency_key
        result = self.client.deposit(request.idempotency_key,
                                     dst_account=dst_account(request.account),
                                     amount=request.amount, submitting=submitting)
        with self._lock:
            reversal = self._reversals.get(order_id)
        if reversal is not None and result.status in (PayoutStatus.SUCCEEDED,
                                                      PayoutStatus.FAILED_FINAL,
                                                      PayoutStatus.REVERSED):
            return Result(PayoutStatus.REVERSED, ErrorCode.REJECTED_BY_RECIPIENT,
                          result.provider_reference, result.amount,
                          raw_message=f"errorDepositionNotification error={reversal[1]}; "
                                      f"{result.raw_message}")
        return result

    def balance(self) -> Decimal:
        return self.client.balance()

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """An ``errorDepositionNotification``: verified, remembered, and named by our key.

        The web layer must answer it with the acknowledgement document the protocol expects."""
        lowered = {name.lower(): value for name, value in headers.items()}
        if self.signer.content_type not in lowered.get("content-type", ""):
            return None
        try:
            note = parse_xml(self.signer.unwrap(body), "errorDepositionNotificationRequest")
            order_id, error = note.get("clientOrderId") or "", int(note.get("error") or 0)
        except (ProtocolError, ValueError):
            return None
        with self._lock:
            key = self._order_keys.get(order_id)
            if key is None and self.client.order_id(order_id) == order_id:
                key = order_id  # clientOrderId is the key itself
            if key is None:
                return None
            if error in REVERSAL_CODES:
                self._reversals[order_id] = (key, error)
        return key


class MtsProvider(PhoneProvider):
    """MTS top-ups."""

    code: ClassVar[str] = "mts"
    operator: ClassVar[str] = "mts"
    verbose_name: ClassVar[Mapping[str, str]] = OPERATORS["mts"]
    default_agent_id: ClassVar[str] = "250001"


class MegafonProvider(PhoneProvider):
    """MegaFon top-ups."""

    code: ClassVar[str] = "megafon"
    operator: ClassVar[str] = "megafon"
    verbose_name: ClassVar[Mapping[str, str]] = OPERATORS["megafon"]
    default_agent_id: ClassVar[str] = "250002"


class BeelineProvider(PhoneProvider):
    """Beeline top-ups."""

    code: ClassVar[str] = "beeline"
    operator: ClassVar[str] = "beeline"
    verbose_name: ClassVar[Mapping[str, str]] = OPERATORS["beeline"]
    default_agent_id: ClassVar[str] = "250003"


@hookimpl
def register_payout_providers() -> list[type[PayoutProvider]]:
    """Contribute ``mts``, ``megafon`` and ``beeline``."""
    return [MtsProvider, MegafonProvider, BeelineProvider]
