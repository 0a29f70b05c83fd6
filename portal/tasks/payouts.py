"""Payout jobs: submit, check status, and the janitor.  Each takes ids only.

Log lines start with ``Payout <id>:``.  Expected provider outcomes are results, not
exceptions; an unexpected exception while the provider is being called is treated as
``unknown`` (the money may have moved), never as a failure to retry blindly.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from plugins import ErrorCode, PayoutProvider, PayoutRequest, PayoutStatus, Result
from portal import observability, providers
from portal.extensions import db
from portal.models import Payout, PayoutAttempt
from portal.models.types import utcnow
from portal.services import payouts
from portal.services.audit import Actor
from portal.tasks import QUEUE_PAYOUTS, QUEUE_STATUS, enqueue_after_commit, job

log = logging.getLogger(__name__)
SUBMIT = "portal.tasks.payouts.submit_payout"
CHECK = "portal.tasks.payouts.check_attempt"
IN_FLIGHT = ("submitting", "pending", "accepted", "unknown")


def enqueue_submit(session, payout: Payout, delay: dt.timedelta | None = None) -> None:
    enqueue_after_commit(session, QUEUE_PAYOUTS, SUBMIT, payout.id, delay=delay,
                         job_id=f"submit-{payout.id}-a{len(payout.attempts) + 1}")


def check_now(session, payout_id: int) -> PayoutAttempt | None:
    """Finance's «check status now»: ask the provider about the payout's open attempt at once
    (a status-check job, sent after the caller commits), instead of at its next scheduled check.

    ``None`` when the payout has no attempt still in flight (nothing to ask about).  The check
    itself is :func:`check_attempt`, the same as the janitor's: only the provider's answer about
    the attempt's own key moves the payout.
    """
    attempt = session.execute(
        sa.select(PayoutAttempt).where(PayoutAttempt.payout_id == payout_id, PayoutAttempt.status.in_(IN_FLIGHT))
        .order_by(PayoutAttempt.number.desc()).limit(1)).scalar_one_or_none()
    if attempt is None:
        return None
    enqueue_after_commit(session, QUEUE_STATUS, CHECK, attempt.id, job_id=f"check-{attempt.id}-now-{attempt.checks + 1}")
    return attempt


def _follow_up(session, payout: Payout, attempt: PayoutAttempt, now: dt.datetime) -> None:
    """After a result: schedule the next step the row asks for (sent after commit)."""
    if payout.state == "approved":
        delay = (payout.next_attempt_at - now) if payout.next_attempt_at else None
        enqueue_submit(session, payout, delay)
    elif attempt.status in IN_FLIGHT and attempt.next_check_at is not None:
        enqueue_after_commit(session, QUEUE_STATUS, CHECK, attempt.id, delay=attempt.next_check_at - now,
                             job_id=f"check-{attempt.id}-{attempt.checks + 1}")


def _call(fn, *args) -> Result:
    # timed and counted per provider and operation (cashback_provider_call_seconds)
    with observability.provider_call(getattr(getattr(fn, "__self__", None), "code", "?"),
                                     getattr(fn, "__name__", "call")) as seen:
        try:
            result = fn(*args)
        except Exception as exc:  # a plugin bug mid-call: the money may have moved
            log.exception("provider call raised")
            result = Result.unknown(ErrorCode.TIMEOUT, f"{type(exc).__name__}: {exc}"[:500])
        seen["status"] = result.status.value
        return result


@dataclass(frozen=True)
class Claimed:
    """An attempt claimed and committed: what the provider call and its result need."""
    payout_id: int
    attempt_id: int
    number: int
    provider: PayoutProvider
    request: PayoutRequest
    facts: payouts.PaidFacts


def claim_submit(payout_id: int) -> Claimed | str:
    """The first step of a submit: a new attempt with its key, committed (the key is durable
    before the provider hears of it); "missing" or "skipped" when there is nothing to send."""
    session = db.session
    claim = payouts.claim_attempt(session, payout_id, providers=providers.all_providers())
    if isinstance(claim, str):
        session.rollback()
        return claim
    provider = providers.provider(claim.facts.provider_code)
    session.commit()
    claimed = Claimed(payout_id, claim.attempt_id, claim.number, provider, claim.request, claim.facts)
    log.info("Payout %s: attempt %s submitting with key %s", payout_id, claimed.number,
             observability.key_hint(claimed.request.idempotency_key))
    return claimed


def call_submit(claimed: Claimed) -> Result:
    """The provider call of a claimed attempt (no transaction of ours is open meanwhile)."""
    return _call(claimed.provider.submit, claimed.request, claimed.request.idempotency_key)


def finish_submit(claimed: Claimed, result: Result) -> str:
    """The provider's answer applied to the claimed attempt and its payout, the next step
    scheduled, committed; the payout's state."""
    session = db.session
    now = utcnow()
    if payouts.apply_success(session, claimed.attempt_id, result, claimed.facts, now=now):
        state = "succeeded"  # the common case, in one round trip (PostgreSQL): nothing follows
    else:
        payout = payouts.apply_result(session, claimed.attempt_id, result, config=current_app.config, now=now)
        attempt = session.get(PayoutAttempt, claimed.attempt_id)  # read by apply_result: no statement
        _follow_up(session, payout, attempt, now)
        state = payout.state  # read before the commit expires it (no statement to read it back)
    session.commit()
    log.info("Payout %s: %s (%s)", claimed.payout_id, state,
             result.error.value if result.error else result.status.value)
    return state


@job
def submit_payout(payout_id: int) -> str:
    """Send an approved payout: a new attempt (committed first), the call, the result.
    (``cashback worker`` runs the three steps itself, overlapping one payout's database work
    with the previous payout's provider call: ``portal.tasks.worker``.)"""
    claimed = claim_submit(payout_id)
    if isinstance(claimed, str):
        return claimed
    return finish_submit(claimed, call_submit(claimed))


@dataclass
class ClaimedCheck:
    """A status check claimed and committed (``checks`` counted, a lease on ``next_check_at``):
    what the provider call and its result need."""
    attempt_id: int
    status: str  # the attempt's status when claimed
    provider: PayoutProvider
    request: PayoutRequest
    facts: payouts.PaidFacts
    #: set by :func:`call_check`: the answer is a resubmit's (the provider had no record), not a read's
    resubmitted: bool = False


def claim_check(attempt_id: int, after_callback: bool = False, due_only: bool = False) -> ClaimedCheck | str:
    """The first step of a status check: count it and lease the attempt, committed.

    One conditional UPDATE takes the attempt when it is still in flight (after a provider's
    callback a succeeded one too) and, with ``due_only``, only when its check is due
    (``next_check_at`` passed or none): a worker's own follow-up check and the janitor's job
    for the same attempt race for it and exactly one asks the provider; the other finds
    "nothing to do".  The lease moves ``next_check_at`` to ``PAYOUT_STALE_SUBMIT_SECONDS``
    ahead while the provider is asked: the answer sets it anew; if the asker dies, the
    janitor finds the attempt due again once the lease has passed."""
    session = db.session
    config = current_app.config
    now = utcnow()
    wanted = IN_FLIGHT + ("succeeded",) if after_callback else IN_FLIGHT
    where = [PayoutAttempt.id == attempt_id, PayoutAttempt.status.in_(wanted)]
    if due_only:
        where.append(sa.or_(PayoutAttempt.next_check_at.is_(None), PayoutAttempt.next_check_at <= now))
    lease = now + dt.timedelta(seconds=int(config["PAYOUT_STALE_SUBMIT_SECONDS"]))
    row = session.execute(
        sa.update(PayoutAttempt).where(*where)
        .values(checks=PayoutAttempt.checks + 1,
                next_check_at=sa.case((PayoutAttempt.status.in_(IN_FLIGHT), sa.literal(lease, PayoutAttempt.next_check_at.type)),
                                      else_=PayoutAttempt.next_check_at))
        .returning(PayoutAttempt.payout_id, PayoutAttempt.idempotency_key, PayoutAttempt.status)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        session.rollback()
        return "nothing to do"
    payout_id, key, status = row
    payout = session.get(Payout, payout_id)
    provider = providers.provider(payout.provider_code)
    if provider is None:
        session.rollback()
        return "no provider"
    request = payouts.payout_request(payout, key)
    facts = payouts.PaidFacts.of(payout)
    session.commit()
    return ClaimedCheck(attempt_id, status, provider, request, facts)


def call_check(claimed: ClaimedCheck) -> Result:
    """Ask the provider about the attempt's key; resend the same request under the same key
    only when the provider has no record of it (no transaction of ours is open meanwhile)."""
    request = claimed.request
    result = _call(claimed.provider.status, request.idempotency_key, request)
    if result.status is PayoutStatus.UNKNOWN and result.error is ErrorCode.NOT_FOUND and claimed.status != "succeeded":
        log.info("Payout %s: provider has no record of %s: sending it under the same key",
                 request.metadata["payout_id"], observability.key_hint(request.idempotency_key))
        claimed.resubmitted = True
        result = _call(claimed.provider.submit, request, request.idempotency_key)
    return result


def finish_check(claimed: ClaimedCheck, result: Result) -> str:
    """The provider's answer applied to the checked attempt, the next check scheduled (or the
    payout handed to Finance after ``PAYOUT_MAX_CHECKS``), committed; the attempt's status."""
    session = db.session
    config = current_app.config
    now = utcnow()
    if payouts.apply_success(session, claimed.attempt_id, result, claimed.facts, now=now):  # one round trip
        session.commit()
        return "succeeded"
    payout = payouts.apply_result(session, claimed.attempt_id, result, config=config, now=now,
                                  status_read=not claimed.resubmitted)
    attempt = session.get(PayoutAttempt, claimed.attempt_id)  # read by apply_result: no statement
    if attempt.status in IN_FLIGHT and attempt.checks >= int(config["PAYOUT_MAX_CHECKS"]):
        payout.needs_attention = True  # Finance's "fix state" now
        attempt.next_check_at = None
        log.warning("Payout %s: still %s after %s checks: handed to Finance", payout.id, attempt.status, attempt.checks)
    _follow_up(session, payout, attempt, now)
    status = attempt.status  # read before the commit expires it
    session.commit()
    return status


@job
def check_attempt(attempt_id: int, after_callback: bool = False, due_only: bool = False) -> str:
    """Ask the provider about an attempt's key (:func:`claim_check`, :func:`call_check`,
    :func:`finish_check`).  After a provider's callback a succeeded attempt is asked about too
    (a top-up can come back); ``due_only`` (the janitor's checks) skips an attempt whose check
    is not due, e.g. because a worker is asking about it right now.  (``cashback worker`` runs
    the call and the result on a call thread: ``portal.tasks.worker``.)"""
    claimed = claim_check(attempt_id, after_callback, due_only)
    if isinstance(claimed, str):
        return claimed
    return finish_check(claimed, call_check(claimed))


def _poll_balances(session, config, now: dt.datetime) -> int:
    """Refresh provider balances older than BALANCE_POLL_SECONDS (a failure is logged, not raised)."""
    polled = 0
    every = dt.timedelta(seconds=int(config["BALANCE_POLL_SECONDS"]))
    for code, provider in providers.all_providers().items():
        if not provider.supports_balance:
            continue
        state = payouts.provider_state(session, code)
        if not state.enabled or (state.balance_checked_at and state.balance_checked_at > now - every):
            continue
        session.commit()  # no transaction open while the provider answers
        try:
            payouts.refresh_balance(session, code, provider, actor=Actor.system("janitor"), now=now)
            session.commit()
            polled += 1
        except Exception as exc:  # noqa: BLE001 — a provider that cannot tell must not stop the janitor
            session.rollback()
            log.warning("balance of %s not read: %s", code, exc)
    return polled


@job
def janitor() -> dict[str, int]:
    """Adopt what fell between the cracks: due status checks, stale submits, approved
    payouts whose job was lost or whose provider is available again."""
    session = db.session
    config = current_app.config
    now = utcnow()
    stale = now - dt.timedelta(seconds=int(config["PAYOUT_STALE_SUBMIT_SECONDS"]))
    due = session.execute(sa.select(PayoutAttempt.id).where(sa.or_(
        sa.and_(PayoutAttempt.status == "submitting", PayoutAttempt.updated_at < stale),
        sa.and_(PayoutAttempt.status.in_(("pending", "accepted", "unknown")),
                PayoutAttempt.next_check_at.is_not(None), PayoutAttempt.next_check_at <= now),
    ))).scalars().all()
    for attempt_id in due:
        # due_only: a worker asking about it right now (or at its due time) is not asked after
        enqueue_after_commit(session, QUEUE_STATUS, CHECK, attempt_id, False, True,
                             job_id=f"janitor-check-{attempt_id}-{now:%H%M%S}")
    waiting = session.execute(sa.select(Payout).where(
        Payout.state == "approved",
        sa.or_(Payout.next_attempt_at.is_(None), Payout.next_attempt_at <= now))).scalars().all()
    sent = 0
    for payout in waiting:
        state = payouts.provider_state(session, payout.provider_code)
        if payouts.provider_available(state, providers.provider(payout.provider_code), now):
            enqueue_submit(session, payout)
            sent += 1
    session.commit()
    polled = _poll_balances(session, config, now)
    session.commit()  # end the read transaction: `janitor --every N` must not sit idle in one
    counts = {"checks": len(due), "submits": sent, "held": len(waiting) - sent, "balances": polled}
    log.info("janitor: %s", counts)
    return counts
