"""The payout provider contract: the base class every provider subclasses, and its value types.

A provider plugin turns one normalized request ("pay this amount to this account, under this
idempotency key") into one provider's protocol, and maps every answer back to one normalized
:class:`Result`. The payout engine only ever sees these types; it never parses a provider's
reply. See ``/work/shared/reference/provider-protocols.md`` §5 for the rules behind them.

Ground rules for implementers:

* Money is :class:`~decimal.Decimal`, never float. Amounts are in major units (rubles), with at
  most :attr:`PayoutProvider.amount_places` decimal places.
* Money moves only in :meth:`PayoutProvider.submit`. Every other method is read-only.
* ``submit`` and ``status`` *return* a :class:`Result` for every outcome of talking to the
  provider, including transport failures; they raise only for caller bugs (``ValueError``).
  ``validate_account``, ``quote`` and ``balance`` have no result to carry, so they raise
  :class:`PayoutProviderError` (or its subclass :class:`InvalidAccount`).
* When in doubt whether money moved, answer ``unknown``, never a ``failed_*`` status.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from enum import Enum
from types import MappingProxyType
from typing import Any, ClassVar, TypedDict

from portal.i18n import _l

__all__ = [
    "CONTRACT_VERSION",
    "ErrorCode",
    "InvalidAccount",
    "Limits",
    "PayoutProvider",
    "PayoutProviderError",
    "PayoutRequest",
    "PayoutStatus",
    "PluginStartupError",
    "ProviderSettings",
    "Quote",
    "Result",
    "contract_compatible",
]

#: Version of this contract, ``"<major>.<minor>"``. A provider declares the version it was written
#: against in :attr:`PayoutProvider.contract_version`; it loads when the majors are equal and its
#: minor is not newer than ours (minor bumps only add optional things).
CONTRACT_VERSION = "1.0"

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")


def contract_compatible(declared: str, core: str = CONTRACT_VERSION) -> bool:
    """Whether a provider written against contract ``declared`` runs on contract ``core``."""
    mine, theirs = _VERSION_RE.match(core), _VERSION_RE.match(declared)
    if mine is None or theirs is None:
        return False
    return mine.group(1) == theirs.group(1) and int(theirs.group(2)) <= int(mine.group(2))


# --------------------------------------------------------------------------- statuses and errors

class PayoutStatus(str, Enum):
    """The normalized outcome of one payout attempt (one idempotency key).

    What the engine does with each one:

    * ``accepted`` / ``pending``: the provider has it, no outcome yet. Ask :meth:`~PayoutProvider.status`
      later with the same key.
    * ``succeeded``: money reached the recipient.
    * ``failed_retryable``: the provider confirmed that **no money moved**; a later attempt may work.
      The next attempt uses a **new** idempotency key (a replay of this key may return this same failure).
    * ``failed_final``: no money moved and retrying will not help: return the funds to the customer.
    * ``unknown``: we cannot tell (timeout, dropped connection, 5xx, garbled answer). Resolve it only
      with :meth:`~PayoutProvider.status` for the **same** key; never resubmit under a new key.
    * ``reversed``: a payout that had succeeded came back (e.g. an operator returned a phone top-up).
      Money is back in our float; a human decides what happens to the customer's funds.
    """

    ACCEPTED = "accepted"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_FINAL = "failed_final"
    UNKNOWN = "unknown"
    REVERSED = "reversed"

    @property
    def in_flight(self) -> bool:
        """True while the outcome is still open (``accepted``, ``pending``, ``unknown``)."""
        return self in (PayoutStatus.ACCEPTED, PayoutStatus.PENDING, PayoutStatus.UNKNOWN)


class ErrorCode(str, Enum):
    """Why a payout did not (or may not) succeed: one taxonomy for every provider.

    :attr:`default_status` says which status the code goes with when a provider reports it for a
    payout; :attr:`pauses_provider` marks codes that concern the provider account as a whole.
    """

    # The recipient side: final for this payout.
    INVALID_ACCOUNT = "invalid_account"
    ACCOUNT_BLOCKED = "account_blocked"
    IDENTIFICATION_REQUIRED = "identification_required"
    RECIPIENT_LIMIT = "recipient_limit"
    AMOUNT_TOO_SMALL = "amount_too_small"
    AMOUNT_TOO_LARGE = "amount_too_large"
    REJECTED_BY_RECIPIENT = "rejected_by_recipient"
    DECLINED = "declined"
    #: Same idempotency key, different data: a bug on our side. Final, and alert.
    DUPLICATE_CONFLICT = "duplicate_conflict"
    # Our side: retryable later with a new key.
    #: Our float at the provider is too low: retry after a top-up, alert finance.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    SENDER_LIMIT = "sender_limit"
    #: Credentials, certificate or signature rejected: pause the provider (circuit breaker).
    AUTH = "auth"
    #: Our configuration or request shape is wrong (interface off, IP not allowed, 400): pause.
    CONFIG = "config"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    # No answer about this payout: the status is unknown.
    TIMEOUT = "timeout"
    #: ``status()`` only: the provider has no record of this key (yet). Resolve by resubmitting the
    #: same request under the **same** key, which is safe because submits are idempotent.
    NOT_FOUND = "not_found"

    @property
    def default_status(self) -> PayoutStatus:
        """The status a payout that failed with this code has."""
        if self in _UNKNOWN_CODES:
            return PayoutStatus.UNKNOWN
        if self in _RETRYABLE_CODES:
            return PayoutStatus.FAILED_RETRYABLE
        return PayoutStatus.FAILED_FINAL

    @property
    def pauses_provider(self) -> bool:
        """True for ``auth`` and ``config``: stop sending to this provider until a human fixes it."""
        return self in (ErrorCode.AUTH, ErrorCode.CONFIG)


_UNKNOWN_CODES = frozenset({ErrorCode.TIMEOUT, ErrorCode.NOT_FOUND})
_RETRYABLE_CODES = frozenset({
    ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.SENDER_LIMIT, ErrorCode.AUTH, ErrorCode.CONFIG,
    ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_UNAVAILABLE,
})


# --------------------------------------------------------------------------- exceptions

class PayoutProviderError(Exception):
    """A provider operation that has no :class:`Result` to carry its failure (quote, balance).

    :param code: the normalized reason.
    :param message: text for staff, or a lazy customer-readable message (``_l(...)``) when the
        error is one a customer can act on (limits, account format).
    """

    def __init__(self, code: ErrorCode, message: Any = "") -> None:
        super().__init__(code, message)
        self.code = ErrorCode(code)
        self.message = message

    def __str__(self) -> str:
        return str(self.message) or self.code.value


class InvalidAccount(PayoutProviderError):
    """``validate_account`` rejected the input.

    :param reason_code: a short machine code, stable per provider, e.g. ``empty``, ``format``,
        ``check_digit``, ``currency``. Tests and the API use it; customers never see it.
    :param message: an English, customer-readable message wrapped in ``_l`` (translated lazily).
    """

    def __init__(self, reason_code: str, message: Any) -> None:
        super().__init__(ErrorCode.INVALID_ACCOUNT, message)
        self.reason_code = reason_code
        self.args = (reason_code, message)  # so that copy/pickle rebuild the same exception


class PluginStartupError(RuntimeError):
    """A plugin could not be loaded or failed validation. The message names the plugin
    (name, module, distribution) and the problem; the process must not start."""


# --------------------------------------------------------------------------- value types

def _require_decimal(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal, got {value!r}")


@dataclass(frozen=True)
class Limits:
    """Per-payout amount limits of a provider, in its currency (inclusive)."""

    min_amount: Decimal
    max_amount: Decimal

    def __post_init__(self) -> None:
        _require_decimal("min_amount", self.min_amount)
        _require_decimal("max_amount", self.max_amount)
        if not Decimal(0) < self.min_amount <= self.max_amount:
            raise ValueError(f"limits must satisfy 0 < min <= max, got {self}")

    def check(self, amount: Decimal) -> ErrorCode | None:
        """``amount_too_small`` / ``amount_too_large``, or None when ``amount`` is within limits."""
        if amount < self.min_amount:
            return ErrorCode.AMOUNT_TOO_SMALL
        if amount > self.max_amount:
            return ErrorCode.AMOUNT_TOO_LARGE
        return None


@dataclass(frozen=True)
class Quote:
    """What a payout costs us. The customer is never charged: ``credited`` is the full amount and
    ``fee`` (what the provider charges us) is our expense, booked to ``fees_expense``."""

    fee: Decimal
    credited: Decimal

    def __post_init__(self) -> None:
        _require_decimal("fee", self.fee)
        _require_decimal("credited", self.credited)
        if self.fee < 0:
            raise ValueError("fee must not be negative")


_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class PayoutRequest:
    """What ``submit`` receives: one attempt to pay ``amount`` to ``account``.

    The engine builds it from a payout attempt row; the same attempt always yields an equal
    request, so a replay under the same key is recognised by the provider as the same transfer.
    """

    #: Unique per attempt; 1-64 characters of ``A-Z a-z 0-9 . _ : -`` (64 is the smallest limit
    #: among our providers: YooKassa's ``Idempotence-Key``).
    idempotency_key: str
    #: Amount credited to the recipient, in major units of ``currency``.
    amount: Decimal
    #: ISO 4217 code; must equal the provider's :attr:`PayoutProvider.currency`.
    currency: str
    #: The account as returned by :meth:`PayoutProvider.validate_account`.
    account: str
    #: Short text the provider may show to the recipient (payment purpose). No personal data.
    description: str = ""
    #: Opaque string pairs the provider may store with the transfer (e.g. our payout id).
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.idempotency_key, str) or not _KEY_RE.match(self.idempotency_key):
            raise ValueError(f"bad idempotency key {self.idempotency_key!r}")
        _require_decimal("amount", self.amount)
        if self.amount <= 0:
            raise ValueError("amount must be positive")
        if not re.fullmatch(r"[A-Z]{3}", self.currency or ""):
            raise ValueError(f"bad currency {self.currency!r}")
        if not self.account:
            raise ValueError("account is empty")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


@dataclass(frozen=True)
class Result:
    """The normalized answer of ``submit`` and ``status``.

    Build failures with :meth:`failed` / :meth:`unknown` so the status matches the error code.
    """

    status: PayoutStatus
    #: Why it failed or is unknown; None for ``accepted``, ``pending`` and ``succeeded``.
    error: ErrorCode | None = None
    #: The provider's own id of the transfer, when it gave one (shown to staff, kept for support).
    provider_reference: str | None = None
    #: Amount the provider reports as credited, when it reports one.
    amount: Decimal | None = None
    #: Fee the provider reports charging us, when it reports one.
    fee: Decimal | None = None
    #: The provider's raw text (code, message, HTTP status) for staff. Never shown to customers.
    raw_message: str = ""
    #: How long to wait before trying again (``rate_limited``), if the provider said.
    retry_after: timedelta | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", PayoutStatus(self.status))
        if self.error is not None:
            object.__setattr__(self, "error", ErrorCode(self.error))
        _require_decimal("amount", self.amount, optional=True)
        _require_decimal("fee", self.fee, optional=True)
        if self.retry_after is not None and not isinstance(self.retry_after, timedelta):
            raise TypeError("retry_after must be a timedelta")
        failed = self.status in (PayoutStatus.FAILED_FINAL, PayoutStatus.FAILED_RETRYABLE)
        if failed and self.error is None:
            raise ValueError(f"a {self.status.value} result needs an error code")
        if self.status in (PayoutStatus.ACCEPTED, PayoutStatus.PENDING, PayoutStatus.SUCCEEDED) \
                and self.error is not None:
            raise ValueError(f"a {self.status.value} result cannot carry an error code")

    @classmethod
    def failed(cls, error: ErrorCode, raw_message: str = "", *,
               retry_after: timedelta | None = None, provider_reference: str | None = None) -> Result:
        """A failure whose status follows from the code (:attr:`ErrorCode.default_status`)."""
        return cls(ErrorCode(error).default_status, ErrorCode(error), provider_reference,
                   raw_message=raw_message, retry_after=retry_after)

    @classmethod
    def unknown(cls, error: ErrorCode, raw_message: str = "", *,
                retry_after: timedelta | None = None) -> Result:
        """We cannot tell whether money moved; ``error`` says why."""
        return cls(PayoutStatus.UNKNOWN, error, raw_message=raw_message, retry_after=retry_after)


class ProviderSettings(TypedDict, total=False):
    """Settings of one provider instance (``config.PAYOUT_PROVIDERS[code]``). Defaults below."""

    #: Root URL of the provider API (the sandbox's ``url`` in tests). Default: the class's.
    base_url: str
    #: Provider-specific secrets, a flat mapping of strings (login, password, token, ...).
    credentials: Mapping[str, str]
    #: Seconds to wait for the TCP connection. Default 5.
    connect_timeout: float
    #: Seconds to wait for an answer once the request is sent. Default 30. A timeout here gives
    #: ``unknown``, so keep it generous in production.
    read_timeout: float
    #: Kill switch: a disabled provider is loaded but the engine must not submit to it.
    enabled: bool


_BASE_DEFAULTS: ProviderSettings = {
    "base_url": "",
    "credentials": {},
    "connect_timeout": 5.0,
    "read_timeout": 30.0,
    "enabled": True,
}


# --------------------------------------------------------------------------- the base class

if TYPE_CHECKING:
    from plugins.handles import HandleStore


class PayoutProvider(abc.ABC):
    """Base class of payout providers. Subclass it, fill in the class attributes, implement the
    abstract methods, and return the class from the ``register_payout_providers`` hook.

    Instances are created once per process by the plugin manager and shared by threads, so keep
    per-call state local. All methods are synchronous, take plain values and are safe to call twice.
    """

    # -- identity and capabilities (class attributes, checked at startup) --
    #: Unique short code, ``[a-z][a-z0-9_]{1,31}``; stored on payouts, never change it.
    code: ClassVar[str]
    #: Display name per language: ``{"ru": ..., "en": ...}``.
    verbose_name: ClassVar[Mapping[str, str]]
    #: ISO 4217 code of the only currency this provider pays out in.
    currency: ClassVar[str]
    #: Per-payout amount limits, in ``currency``.
    limits: ClassVar[Limits]
    #: The contract version this class was written against (see :data:`CONTRACT_VERSION`).
    contract_version: ClassVar[str]
    #: Decimal places the provider accepts in amounts.
    amount_places: ClassVar[int] = 2
    #: ``status()`` really asks the provider. If False, ``unknown`` can only be resolved by a human.
    supports_status_query: ClassVar[bool] = True
    #: ``parse_callback()`` understands the provider's notifications.
    supports_callbacks: ClassVar[bool] = False
    #: ``balance()`` is implemented.
    supports_balance: ClassVar[bool] = False
    #: Settings this class fills in when the configuration leaves them out (over the base defaults).
    default_settings: ClassVar[ProviderSettings] = {}
    #: Whether the kill switch starts "on" for a new deployment (QIWI: off, its licence is gone).
    default_enabled: ClassVar[bool] = True
    #: A provider for trying the system only (the Test Bank): never offered under CASHBACK_ENV=production.
    development_only: ClassVar[bool] = False
    #: Why it starts off, per language ({"ru": ..., "en": ...}); shown to Finance and customers.
    disabled_reason: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        """Merge ``settings`` over :attr:`default_settings` over the base defaults.

        :raises ValueError: a setting has the wrong type.
        """
        merged: dict[str, Any] = {**_BASE_DEFAULTS, **self.default_settings, **(settings or {})}
        for name in ("connect_timeout", "read_timeout"):
            value = merged[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{self.code}: setting {name} must be a positive number of seconds")
        if not isinstance(merged["base_url"], str):
            raise ValueError(f"{self.code}: setting base_url must be a string")
        merged["credentials"] = MappingProxyType(dict(merged["credentials"]))
        self.settings: Mapping[str, Any] = MappingProxyType(merged)
        from plugins.handles import MemoryHandleStore

        #: Where numeric handles and counters are kept (the core binds a database store).
        self.handles: HandleStore = MemoryHandleStore()

    def production_problems(self) -> list[str]:
        """Why this configured instance must never run under ``CASHBACK_ENV=production`` (the
        portal refuses to start): the sandbox stand-in signer (``signer: "test"``) or a credential
        equal to one the class ships for its local sandbox.  Subclasses with more sandbox secrets
        extend the list."""
        problems = []
        if self.settings.get("signer") == "test":
            problems.append("signer 'test' is the sandbox's stand-in")
        shipped = dict((self.default_settings.get("credentials") or {}))
        problems += [f"credential {name!r} is the sandbox's" for name, value in self.credentials.items()
                     if name in shipped and value == shipped[name]]
        return problems

    def bind_handles(self, store: HandleStore) -> None:
        """Use ``store`` for numeric handles and counters (the core calls this at start-up)."""
        self.handles = store

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> PayoutProvider:
        """The factory the plugin manager calls. Override when construction needs more than the
        mapping (e.g. loading a certificate file named in it); the default is ``cls(settings)``."""
        return cls(settings)

    # -- settings shortcuts --
    @property
    def base_url(self) -> str:
        return str(self.settings["base_url"]).rstrip("/")

    @property
    def credentials(self) -> Mapping[str, str]:
        return self.settings["credentials"]

    def decimal_setting(self, name: str, *, default: Any = None, optional: bool = False) -> Decimal | None:
        """A non-negative amount setting (fees, limits) as ``Decimal``: a string, int or Decimal,
        never a float; ``optional`` lets an absent one be ``None``.

        :raises ValueError: naming the provider and the setting.
        """
        value = self.settings.get(name, default)
        if value is None and optional:
            return None
        try:
            number = Decimal(value) if isinstance(value, (str, Decimal, int)) \
                and not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number < 0:
            raise ValueError(f"{self.code}: setting {name} must be a non-negative decimal string")
        return number

    @property
    def connect_timeout(self) -> float:  # seconds (not money)
        return float(self.settings["connect_timeout"])

    @property
    def read_timeout(self) -> float:  # seconds (not money)
        return float(self.settings["read_timeout"])

    @property
    def enabled(self) -> bool:
        return bool(self.settings["enabled"])

    def display_name(self, locale: str) -> str:
        """:attr:`verbose_name` in ``locale`` (``"ru"``, ``"ru_RU"``, ...), falling back to English."""
        return self.verbose_name.get(locale[:2], self.verbose_name["en"])

    # -- the contract --
    @abc.abstractmethod
    def validate_account(self, raw: str) -> str:
        """Check and normalize an account as a customer typed it. Local only: no network.

        :param raw: the customer's input.
        :returns: the normalized account, stable (``validate_account(normalized) == normalized``).
        :raises InvalidAccount: with a reason code and a lazy customer-readable message.
        """

    def quote(self, amount: Decimal, account: str) -> Quote:
        """What paying ``amount`` to ``account`` costs us. The default is free; override with the
        provider's tariff. Must not move money.

        :raises PayoutProviderError: ``amount_too_small`` / ``amount_too_large`` outside :attr:`limits`.
        """
        self.check_amount(amount)
        return Quote(fee=Decimal("0.00"), credited=amount)

    @abc.abstractmethod
    def submit(self, request: PayoutRequest, idempotency_key: str) -> Result:
        """Send money. The only method that may move money.

        Start with ``if (early := self.check_request(request, idempotency_key)): return early``.
        The same key with the same request must never pay twice; with different data it must give
        ``failed_final`` / ``duplicate_conflict``. Map the answer: connection refused before sending
        -> ``failed_retryable`` / ``provider_unavailable``; read timeout, dropped connection, 5xx,
        garbled body -> ``unknown``; 429 -> ``failed_retryable`` / ``rate_limited``.

        :param request: the attempt; ``request.idempotency_key == idempotency_key``.
        :param idempotency_key: the attempt's key, our handle at the provider.
        :raises ValueError: only for caller bugs (mismatched key or currency).
        """

    @abc.abstractmethod
    def status(self, idempotency_key: str, request: PayoutRequest | None = None) -> Result:
        """Ask the provider what happened to the payout submitted under ``idempotency_key``.

        Never moves money under a new handle. Transport problems give ``unknown`` (never
        ``failed_*``: they say nothing about the payout); a provider with no record of the key
        gives ``unknown`` / ``not_found``.

        :param request: the original request. The engine always passes it; protocols whose only
            status check is "repeat the same request under the same handle" (YooKassa v3,
            YooMoney ``process-payment``, WebMoney X2 with the same ``tranid``) need it.
        """

    def balance(self) -> Decimal:
        """Our float at the provider, in :attr:`currency`. Read-only.

        :raises PayoutProviderError: ``auth``, ``timeout``, ``provider_unavailable``, ...
        :raises NotImplementedError: when :attr:`supports_balance` is False.
        """
        raise NotImplementedError(f"{self.code} does not report a balance")

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Read a provider notification. A callback is only a hint: the engine answers it by
        calling :meth:`status` for the returned key; it never settles money by itself.

        :returns: the idempotency key the notification is about, or None when the callback is
            not authentic, not understood, or not about a payout.
        """
        return None

    # -- helpers for implementations --
    def check_amount(self, amount: Decimal) -> None:
        """Raise :class:`PayoutProviderError` with a customer-readable message when ``amount`` is
        outside :attr:`limits`."""
        problem = self.limits.check(amount)
        if problem is ErrorCode.AMOUNT_TOO_SMALL:
            raise PayoutProviderError(problem, _l(
                "The amount is below the minimum payout of %(amount)s %(currency)s.",
                amount=self.limits.min_amount, currency=self.currency))
        if problem is ErrorCode.AMOUNT_TOO_LARGE:
            raise PayoutProviderError(problem, _l(
                "The amount is above the maximum payout of %(amount)s %(currency)s.",
                amount=self.limits.max_amount, currency=self.currency))

    def check_request(self, request: PayoutRequest, idempotency_key: str) -> Result | None:
        """Local checks every ``submit`` runs first; a failure here sends nothing.

        :returns: a ``failed_final`` result (amount outside limits, account no longer valid), or
            None when the request may be sent.
        :raises ValueError: the key or currency does not match, or the amount has too many places.
        """
        if request.idempotency_key != idempotency_key:
            raise ValueError("idempotency_key does not match request.idempotency_key")
        if request.currency != self.currency:
            raise ValueError(f"{self.code} pays out in {self.currency}, not {request.currency}")
        exponent = request.amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.amount_places:
            raise ValueError(f"amount {request.amount} has more than {self.amount_places} places")
        problem = self.limits.check(request.amount)
        if problem is not None:
            return Result.failed(problem, f"amount {request.amount} outside {self.limits}")
        try:
            normalized = self.validate_account(request.account)
        except InvalidAccount as exc:
            return Result.failed(ErrorCode.INVALID_ACCOUNT, f"{exc.reason_code}: {exc}")
        if normalized != request.account:
            raise ValueError("request.account is not normalized; pass validate_account()'s result")
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} code={self.code!r} base_url={self.base_url!r}>"
