"""The Developer desk: which provider plugins run and in what state, the RQ queues and
their failed jobs (requeue, audited), and test payouts fired at a provider's sandbox.

Plain functions: the views in ``portal/views/devdesk.py`` and the tests call them alike.

* :func:`plugins` — every registered payout provider with the distribution (package) and
  version it came from, its capability flags, and its status from the provider switchboard
  (``portal.services.payouts.provider_state``): enabled, paused by the circuit breaker, or
  disabled and why.
* :func:`queues`, :func:`failed_jobs`, :func:`requeue` — RQ (2.x) queues of this deployment
  (``portal.tasks.QUEUES`` under ``QUEUE_PREFIX``): depths per registry, the failed jobs,
  and putting one back on its queue through RQ's own ``FailedJobRegistry.requeue``.
  Without ``REDIS_URL`` jobs run in-process and there are no queues to show.
* :func:`fire_test_payout` — one payout through the provider plugin's own ``submit`` and
  ``status`` under a fresh idempotency key, **only** when the provider's configured
  ``base_url`` points at this machine (``localhost``, ``127.0.0.1``, ``::1``): a local
  sandbox.  It creates no payout, no attempt and no ledger posting; the only rows it
  writes are its audit record and, for providers that need one, the numeric handle of
  the sandbox key (``provider_handle``/``provider_counter``, through the handle store).
  Its result never reaches the circuit breaker.

No customer data: jobs show ids only; error texts and sandbox answers have e-mail addresses
and long digit runs (wallets, phone numbers) masked, except the account the developer typed.
"""
from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import logging
import re
import secrets
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from plugins import ErrorCode, InvalidAccount, PayoutProvider, PayoutProviderError, PayoutRequest, Result
from plugins.manager import ENTRYPOINT_GROUP
from portal.errors import DomainError, Invalid, NotFound
from portal.i18n import _l
from portal.models.payouts import mask
from portal.services import audit, payouts
from portal.services.audit import Actor

log = logging.getLogger(__name__)

#: Hosts a provider's ``base_url`` must name for the sandbox page to fire at it.
SANDBOX_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Most failed jobs listed (newest first, over all queues).
FAILED_LIMIT = 200


class NotASandbox(DomainError):
    status = 409
    code = "not_a_sandbox"
    default_message = _l("This provider's base URL is not a local sandbox (localhost or 127.0.0.1): "
                         "test payouts are refused.")


class UnknownJob(NotFound):
    code = "unknown_job"
    default_message = _l("There is no failed job with this id.")


# --- masking ---------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITS_RE = re.compile(r"\d{8,}")


def scrub(text: str | None, keep: Iterable[str] = (), limit: int = 500) -> str:
    """``text`` with e-mail addresses and runs of 8+ digits (wallets, phones) masked, except
    inside the strings of ``keep``; cut to ``limit`` characters."""
    keep = [k for k in keep if k]

    def hide(match: re.Match) -> str:
        found = match.group(0)
        return found if any(found in k for k in keep) else mask(found)

    text = _EMAIL_RE.sub(lambda m: "•••@•••", text or "")
    return _DIGITS_RE.sub(hide, text)[:limit]


# --- plugins ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PluginInfo:
    code: str
    name: str
    #: the entry point (plugin) name, or the module when loaded otherwise
    plugin: str
    #: the distribution (package) it came from, and its version (``built-in`` when unknown)
    distribution: str
    version: str
    module: str
    currency: str
    min_amount: Decimal
    max_amount: Decimal
    contract_version: str
    base_url: str
    is_sandbox: bool
    supports_status_query: bool
    supports_callbacks: bool
    supports_balance: bool
    #: ``enabled``, ``paused`` (breaker open) or ``disabled`` (kill switch or configuration)
    status: str
    paused_until: dt.datetime | None = None
    reason: str | None = None


@functools.lru_cache(maxsize=None)
def origin(cls: type) -> tuple[str, str, str]:
    """``(plugin name, distribution, version)`` of a provider class: the entry point of the
    ``cashback.payment_providers`` group whose module holds it, else the nearest
    ``__version__`` of its module or packages, else ``built-in``.  Once per class and process:
    reading the entry points scans every installed distribution (~35 ms, on each desk page before)."""
    module = cls.__module__
    for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
        if module == ep.module or module.startswith(ep.module + "."):
            if ep.dist is not None:
                return ep.name, ep.dist.name, ep.dist.version
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        version = getattr(sys.modules.get(".".join(parts[:end])), "__version__", None)
        if version:
            return module, ".".join(parts[:end]), str(version)
    return module, parts[0], "built-in"


def is_sandbox(provider: PayoutProvider) -> bool:
    """Does the provider's configured ``base_url`` point at this machine?

    Only a plain ``http(s)://host[:port]/path`` counts: a URL with a user-info part, a
    backslash or whitespace is refused, since HTTP clients and ``urlsplit`` may read its host
    differently (``http://evil.example\\@127.0.0.1/`` is 127.0.0.1 to one, evil.example to
    the other)."""
    url = provider.base_url or ""
    if any(ch in url for ch in "\\@ \t\r\n"):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.password is not None:
        return False
    return (parts.hostname or "").lower() in SANDBOX_HOSTS


def status_of(state: Any, provider: PayoutProvider, locale: str = "en"
              ) -> tuple[str, dt.datetime | None, str | None]:
    """``(status, paused_until, reason)`` from the switchboard row and the configuration."""
    if not provider.enabled:
        return "disabled", None, str(_l("switched off in the configuration"))
    if not state.enabled:
        reasons = provider.disabled_reason or {}
        if state.disabled_reason and state.disabled_reason in reasons.values():  # the plugin's own, translated
            return "disabled", None, reasons.get(locale[:2], reasons.get("en", state.disabled_reason))
        return "disabled", None, state.disabled_reason
    if state.breaker == "open":
        return "paused", state.paused_until, state.pause_reason
    return "enabled", None, None


def plugins(app, session: Session, locale: str = "en") -> list[PluginInfo]:
    """Every registered payout provider of ``app``, by code."""
    from portal import providers as registry

    rows = []
    for code, provider in sorted(registry.all_providers(app).items()):
        cls = type(provider)
        plugin, distribution, version = origin(cls)
        status, until, reason = status_of(payouts.provider_state(session, code), provider, locale)
        rows.append(PluginInfo(
            code=code, name=provider.display_name(locale), plugin=plugin, distribution=distribution,
            version=version, module=cls.__module__, currency=provider.currency,
            min_amount=provider.limits.min_amount, max_amount=provider.limits.max_amount,
            contract_version=provider.contract_version, base_url=provider.base_url,
            is_sandbox=is_sandbox(provider), supports_status_query=provider.supports_status_query,
            supports_callbacks=provider.supports_callbacks, supports_balance=provider.supports_balance,
            status=status, paused_until=until, reason=reason))
    return rows


# --- queues ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueDepth:
    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    function: str
    #: the arguments, ids only (anything that is not a number shows as its type)
    args: str
    #: the last line of the traceback, masked
    error: str
    failed_at: dt.datetime | None


def _rq_queues(redis, prefix: str):
    from rq import Queue

    from portal.tasks import QUEUES

    return [(name, Queue(f"{prefix}{name}", connection=redis)) for name in QUEUES]


def queues(redis, prefix: str = "") -> list[QueueDepth]:
    """Depths of this deployment's queues (read-only: no registry clean-up runs)."""
    return [QueueDepth(name, queue.count,
                       queue.started_job_registry.get_job_count(cleanup=False),
                       queue.scheduled_job_registry.get_job_count(cleanup=False),
                       queue.deferred_job_registry.get_job_count(cleanup=False),
                       queue.failed_job_registry.get_job_count(cleanup=False))
            for name, queue in _rq_queues(redis, prefix)]


def _ids_only(args: Any) -> str:
    shown = []
    for arg in args or ():
        if isinstance(arg, (bool, int)):
            shown.append(str(arg))
        else:
            shown.append(f"<{type(arg).__name__}>")
    return ", ".join(shown)


def _failed_job(job, queue_name: str) -> FailedJob:
    try:
        function, args = job.func_name or "", _ids_only(job.args)
    except Exception:  # a job this process cannot deserialize
        function, args = "?", "?"
    result = job.latest_result()
    lines = [line for line in ((result.exc_string if result else None) or "").splitlines() if line.strip()]
    failed_at = job.ended_at or (result.created_at if result else None)
    if failed_at is not None and failed_at.tzinfo is None:
        failed_at = failed_at.replace(tzinfo=dt.timezone.utc)
    return FailedJob(job.id, queue_name, function, args, scrub(lines[-1].strip() if lines else "", limit=300),
                     failed_at)


def failed_jobs(redis, prefix: str = "", limit: int = FAILED_LIMIT) -> list[FailedJob]:
    """The failed jobs of this deployment's queues, newest first."""
    from rq.job import Job

    found: list[FailedJob] = []
    for name, queue in _rq_queues(redis, prefix):
        ids = queue.failed_job_registry.get_job_ids(0, limit - 1, desc=True, cleanup=False)
        for job in Job.fetch_many(ids, connection=redis):
            if job is not None:
                found.append(_failed_job(job, name))
    epoch = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    found.sort(key=lambda j: j.failed_at or epoch, reverse=True)
    return found[:limit]


_JOB_ID_RE = re.compile(r"^[\w.:-]{1,80}$")  # audit object ids are at most 80


def requeue(session: Session, redis, prefix: str, job_id: str, *, actor: Actor) -> FailedJob:
    """Put a failed job of this deployment back on its queue (RQ's ``FailedJobRegistry.requeue``),
    with an audit record (who, when, which job) added to ``session``: the caller commits.

    :raises UnknownJob: ``job_id`` is not in the failed registry of one of our queues.
    """
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.job import Job

    if not isinstance(job_id, str) or not _JOB_ID_RE.match(job_id):
        raise UnknownJob()
    for name, queue in _rq_queues(redis, prefix):
        registry = queue.failed_job_registry
        if job_id not in registry:
            continue
        try:
            seen = _failed_job(Job.fetch(job_id, connection=redis), name)
            audit.record(session, actor, "job.requeued", "rq_job", job_id,
                         after={"queue": name, "function": seen.function, "args": seen.args, "error": seen.error})
            session.flush()
            registry.requeue(job_id)
        except (NoSuchJobError, InvalidJobOperation):  # expired, or requeued by someone else meanwhile
            raise UnknownJob() from None
        return seen
    raise UnknownJob()


# --- sandbox ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SandboxOutcome:
    provider_code: str
    idempotency_key: str
    amount: Decimal
    currency: str
    #: the account as the provider normalized what the developer typed
    account: str
    submit: Result
    #: the status query right after (None when the provider cannot be asked)
    status: Result | None


def _call(fn, *args) -> Result:
    try:
        return fn(*args)
    except Exception as exc:  # a plugin bug: show it, do not crash the page
        log.exception("sandbox call raised")
        return Result.unknown(ErrorCode.TIMEOUT, f"{type(exc).__name__}: {exc}"[:500])


def sandbox_key() -> str:
    """A fresh idempotency key, recognisable as a sandbox test in the provider's logs."""
    return f"sandbox-{secrets.token_hex(12)}"


def fire_test_payout(session: Session, provider: PayoutProvider | None, *, amount: Decimal | str,
                     account: str, actor: Actor) -> SandboxOutcome:
    """Send one test payout to ``provider``'s sandbox and ask for its status; audited.

    Refused unless the provider's ``base_url`` is local.  The kill switch and the breaker do
    not apply (nothing real is paid), and the result is not fed to the breaker.  Nothing here
    touches payouts or the ledger; the audit record is added to ``session`` (the caller commits).  Call it with
    no transaction open: the provider is called first.

    :raises Invalid: unknown provider, bad amount or account.
    :raises NotASandbox: the base URL is not ``localhost``/``127.0.0.1``/``::1``.
    """
    if provider is None:
        raise Invalid(_l("Unknown payment method."), code="unknown_provider")
    if not is_sandbox(provider):
        raise NotASandbox(base_url=provider.base_url)
    try:
        amount = Decimal(str(amount).strip())
        if not amount.is_finite() or amount <= 0:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise Invalid(_l("Not an amount."), code="invalid_amount",
                      errors=[{"field": "amount", "code": "invalid_amount", "message": _l("Not an amount.")}]) from None
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > provider.amount_places:
        raise Invalid(_l("At most %(places)s decimal places.", places=provider.amount_places), code="invalid_amount")
    try:
        provider.check_amount(amount)
        normalized = provider.validate_account(account or "")
    except InvalidAccount as err:
        raise Invalid(err.message, code="invalid_account") from None
    except PayoutProviderError as err:
        raise Invalid(err.message, code=err.code.value) from None
    key = sandbox_key()
    request = PayoutRequest(idempotency_key=key, amount=amount, currency=provider.currency, account=normalized,
                            description="Sandbox test payout", metadata={"sandbox": "1"})
    submitted = _call(provider.submit, request, key)
    status = _call(provider.status, key, request) if provider.supports_status_query else None
    audit.record(session, actor, "sandbox.payout_fired", "provider", provider.code, after={
        "idempotency_key": key, "amount": amount, "currency": provider.currency, "account": mask(normalized),
        "base_url": provider.base_url, "submit": _summary(submitted),
        "status": _summary(status) if status is not None else None})
    return SandboxOutcome(provider.code, key, amount, provider.currency, normalized, submitted, status)


def _summary(result: Result) -> dict:
    return {"status": result.status.value, "error": result.error.value if result.error else None,
            "reference": result.provider_reference}
