"""Withdrawals and payouts: the state machine, maker-checker, the ledger side, and the
provider switchboard (kill switch, circuit breaker).

Payout states (``Payout.state``)::

    requested ─► in_review ─► approved ─► submitting ─► succeeded ─► reversed
        │            │   ▲        │  ▲        │   │
        └────────────┼───┼────────┘  │        │   └► unknown ─► succeeded | failed | approved
                     ▼   │           └────────┘ (retryable: new attempt, new key, later)
                 rejected│cancelled              └► failed

Every transition is a function here that locks the payout row, re-checks the state,
changes it, writes an audit record — or raises ``IllegalTransition``.  Functions never
commit: the command (API view, job) owns the transaction.

Money: the amount moves ``available → on_hold`` in the transaction that creates the
payout; ``on_hold → provider_float:<code>`` when it succeeds, with the provider's fee
``fees_expense → provider_float`` (the customer pays no fee); ``on_hold → available``
when it is rejected, cancelled or fails for good; ``provider_float → available`` when a
succeeded payout is reversed.

Attempts: each call to a provider is a ``PayoutAttempt`` with its own idempotency key,
committed before the call.  A timeout or garbled answer makes it ``unknown``; only an
answer about the same key moves it on (``apply_result``).
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Callable, Mapping

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from plugins import ErrorCode, InvalidAccount, PayoutProvider, PayoutProviderError, PayoutRequest, PayoutStatus, Result
from portal import observability
from portal.errors import Conflict, DomainError, Invalid, NotFound
from portal.i18n import _l
from portal.models import (Account, Claim, ClaimCredit, Customer, Entry, Payout, PayoutApproval, PayoutAttempt,
                           Order, PayoutDetails, Posting, ProviderState, ReconImport, ReconLine)
from portal.models.payouts import mask
from portal.models.types import from_micros, to_micros, utcnow
from portal.services import audit, fx, ledger
from portal.services.audit import Actor
from portal.services.ledger import Leg, customer_account, system_account, transfer
from portal.services.money import LEDGER_QUANTUM, convert, payable

TRANSITIONS: dict[str, set[str]] = {
    "requested": {"in_review", "approved"},
    "in_review": {"approved", "rejected", "cancelled"},
    "approved": {"submitting", "cancelled", "rejected"},
    "submitting": {"succeeded", "failed", "unknown", "approved"},
    "unknown": {"succeeded", "failed", "approved", "submitting"},
    "succeeded": {"reversed"},
}
FINAL = {"succeeded", "failed", "rejected", "reversed", "cancelled"}
#: states in which the customer's money sits in on_hold
HELD = {"requested", "in_review", "approved", "submitting", "unknown"}


# --- errors ------------------------------------------------------------------------------

class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = _l("This payout cannot change that way now.")


class ProviderDisabled(Conflict):
    code = "provider_disabled"
    default_message = _l("Payouts to this payment method are switched off for now. "
                         "Please choose other payout details.")


class BelowMinimum(Invalid):
    code = "below_minimum"


class MakerChecker(DomainError):
    status = 403
    code = "maker_checker"


class RequestKeyConflict(Conflict):
    code = "idempotency_key_reused"
    default_message = _l("This Idempotency-Key was already used for a different withdrawal.")


# --- providers ---------------------------------------------------------------------------

def new_provider_state(code: str, provider: PayoutProvider | None) -> ProviderState:
    """The switchboard a provider has before anything was saved for it (not added to a session).

    The plugin decides the kill switch's starting position (``default_enabled``: QIWI starts
    off, with its ``disabled_reason``); the breaker starts closed.  :func:`provider_state`
    saves exactly this, and :func:`provider_states` shows it for a provider never used yet,
    so every page gives the same answer before and after the first save.
    """
    enabled = getattr(provider, "default_enabled", True)
    reasons = getattr(provider, "disabled_reason", None) or {}
    return ProviderState(code=code, enabled=enabled, breaker="closed", consecutive_failures=0,
                         disabled_reason=None if enabled else (reasons.get("ru") or reasons.get("en")))


def provider_state(session: Session, code: str, *, lock: bool = False) -> ProviderState:
    """The switchboard row of a provider, created on first use (as :func:`new_provider_state`)."""
    query = sa.select(ProviderState).where(ProviderState.code == code)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        from portal import providers as registry
        from portal.services.db import insert_or_ignore

        fresh = new_provider_state(code, registry.provider(code) if has_app_context() else None)
        session.execute(insert_or_ignore(session, ProviderState.__table__)
                        .values(code=code, enabled=fresh.enabled, breaker=fresh.breaker,
                                consecutive_failures=fresh.consecutive_failures,
                                disabled_reason=fresh.disabled_reason, updated_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["code"]))
        row = session.execute(query).scalar_one()
    return row


def provider_states(session: Session, known: Mapping[str, PayoutProvider | None]) -> dict[str, ProviderState]:
    """Every provider's switchboard without writing (read replicas, health checks): the saved
    row, else :func:`new_provider_state` for each of ``known``; codes sorted."""
    rows = {row.code: row for row in session.execute(sa.select(ProviderState)).scalars()}
    return {code: rows.get(code) or new_provider_state(code, known.get(code))
            for code in sorted(set(known) | set(rows))}


def provider_available(state: ProviderState, provider: PayoutProvider | None, now: dt.datetime) -> bool:
    """May a worker send to this provider now?"""
    if provider is None or not provider.enabled or not state.enabled:
        return False
    return state.breaker == "closed" or (state.paused_until is not None and state.paused_until <= now)


def set_provider_enabled(session: Session, code: str, enabled: bool, *, actor: Actor, reason: str) -> ProviderState:
    """The kill switch (Finance/Admin), audited.  Re-enabling lets held payouts go."""
    if not reason or not reason.strip():
        raise Invalid(_l("Say why."), code="reason_required")
    state = provider_state(session, code, lock=True)
    before = {"enabled": state.enabled, "reason": state.disabled_reason}
    state.enabled = enabled
    state.disabled_reason = None if enabled else reason.strip()
    if enabled:
        state.breaker, state.paused_until, state.pause_reason, state.consecutive_failures = "closed", None, None, 0
    audit.record(session, actor, "provider.enabled" if enabled else "provider.disabled", "provider", code,
                 reason=reason.strip(), before=before, after={"enabled": enabled})
    if enabled:
        _send_held(session, code)
    return state


def _breaker_after(session: Session, code: str, result: Result, config: Mapping, now: dt.datetime,
                   seen: ProviderState | None = None, status_read: bool = False) -> None:
    """Count transport failures; open the breaker on too many, or at once on auth/config/our funds.

    The common case (a normal answer while the breaker is closed and nothing failed)
    neither locks nor writes the provider's row, so workers do not queue on it.
    """
    if status_read and result.status is PayoutStatus.UNKNOWN and result.error is ErrorCode.RATE_LIMITED:
        # a throttled status read (QIWI's history budget spent, its 423 history block) says
        # nothing about sending: its Retry-After spaces the next check; pausing the provider
        # would hold every payout to it (a burst of due checks paused QIWI's submits for 60 s)
        return
    transport = result.error in (ErrorCode.PROVIDER_UNAVAILABLE, ErrorCode.TIMEOUT, ErrorCode.RATE_LIMITED) \
        or (result.status is PayoutStatus.UNKNOWN and result.error is not ErrorCode.NOT_FOUND)
    pausing = result.error is not None and (result.error.pauses_provider or result.error is ErrorCode.INSUFFICIENT_FUNDS)
    healthy = result.status in (PayoutStatus.SUCCEEDED, PayoutStatus.PENDING, PayoutStatus.ACCEPTED,
                                PayoutStatus.FAILED_FINAL)
    seen = seen or provider_state(session, code)  # ``seen``: read with the payout's lock
    if healthy and seen.consecutive_failures == 0 and seen.breaker == "closed":
        return
    state = provider_state(session, code, lock=True)
    if pausing:
        state.breaker, state.paused_until = "open", None  # stays paused until someone resumes it
        state.pause_reason = f"{result.error.value}: {result.raw_message}"[:400]
        audit.record(session, Actor.system("breaker"), "provider.paused", "provider", code,
                     reason=state.pause_reason)
    elif transport:
        state.consecutive_failures += 1
        if state.consecutive_failures >= int(config["BREAKER_THRESHOLD"]) and state.breaker == "closed":
            state.breaker = "open"
            state.paused_until = now + dt.timedelta(seconds=int(config["BREAKER_COOLDOWN_SECONDS"]))
            state.pause_reason = f"{state.consecutive_failures} failures in a row"
            audit.record(session, Actor.system("breaker"), "provider.paused", "provider", code,
                         reason=state.pause_reason)
    elif healthy:
        state.consecutive_failures = 0
        if state.breaker == "open" and state.paused_until is not None:
            state.breaker, state.paused_until, state.pause_reason = "closed", None, None


def low_balance(state: ProviderState, provider: PayoutProvider | None) -> bool:
    """Below the provider's ``low_balance`` setting (its currency): Finance should top it up."""
    threshold = provider.settings.get("low_balance") if provider is not None else None
    return state.balance is not None and threshold is not None and state.balance < Decimal(str(threshold))


def refresh_balance(session: Session, code: str, provider: PayoutProvider, *, actor: Actor,
                    now: dt.datetime | None = None) -> Decimal:
    """Ask the provider for our balance there and keep it (the call happens outside any lock).

    :raises PayoutProviderError: the provider could not tell; nothing is written.
    :raises NotImplementedError: the provider does not report a balance.
    """
    amount = provider.balance()
    state = provider_state(session, code, lock=True)
    was_low = low_balance(state, provider)
    state.balance, state.balance_checked_at = amount, now or utcnow()
    if low_balance(state, provider) and not was_low:
        audit.record(session, actor, "provider.balance.low", "provider", code,
                     after={"balance": amount, "threshold": provider.settings.get("low_balance")})
    return amount


def resume_provider(session: Session, code: str, *, actor: Actor, reason: str) -> ProviderState:
    """Close an open breaker by hand (after fixing credentials or topping up), audited."""
    state = provider_state(session, code, lock=True)
    before = {"breaker": state.breaker, "pause_reason": state.pause_reason}
    state.breaker, state.paused_until, state.pause_reason, state.consecutive_failures = "closed", None, None, 0
    audit.record(session, actor, "provider.resumed", "provider", code, reason=reason, before=before)
    _send_held(session, code)
    return state


# --- payout details ------------------------------------------------------------------------

def save_details(session: Session, customer: Customer, provider: PayoutProvider | None, raw_account: str, *,
                 actor: Actor) -> PayoutDetails:
    """Validate and keep a customer's payout details (the same ones twice are one row)."""
    if provider is None:
        raise Invalid(_l("Unknown payment method."), code="unknown_provider")
    state = provider_state(session, provider.code)
    if not state.enabled or not provider.enabled:
        raise ProviderDisabled(reason=state.disabled_reason)
    try:
        account = provider.validate_account(raw_account)
    except InvalidAccount as err:
        raise Invalid(err.message, code="invalid_account",
                      errors=[{"field": "account", "code": err.reason_code, "message": err.message}]) from None
    existing = session.execute(sa.select(PayoutDetails).where(
        PayoutDetails.customer_id == customer.id, PayoutDetails.provider_code == provider.code,
        PayoutDetails.account == account)).scalar_one_or_none()
    if existing is not None:
        existing.is_active = True
        return existing
    details = PayoutDetails(customer_id=customer.id, provider_code=provider.code, account=account)
    session.add(details)
    session.flush()
    audit.record(session, actor, "payout_details.created", "payout_details", details.id,
                 after={"provider": provider.code, "account": mask(account)})
    from portal.services import referrals  # the referrer's wallet or phone: flag for Support

    referrals.check_payout_details(session, customer, details, actor=actor)
    return details


# --- transitions ---------------------------------------------------------------------------

def lock_payout(session: Session, payout_id: int) -> Payout:
    payout = session.execute(sa.select(Payout).where(Payout.id == payout_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if payout is None:
        raise NotFound()
    return payout


def _send(session: Session, payout: Payout) -> None:
    """Queue the submit job of an approved payout (sent when the session commits)."""
    from portal.tasks.payouts import enqueue_submit

    enqueue_submit(session, payout)


def _send_held(session: Session, code: str) -> None:
    for payout in session.execute(sa.select(Payout).where(Payout.provider_code == code,
                                                         Payout.state == "approved")).scalars():
        _send(session, payout)


def _move(session: Session, payout: Payout, to: str, actor: Actor, *, reason: str | None = None,
          **after) -> None:
    if to not in TRANSITIONS.get(payout.state, set()):
        raise IllegalTransition(frm=payout.state, to=to)
    before = payout.state
    payout.state = to
    if to in FINAL:
        payout.finished_at = utcnow()
        observability.count_on_commit(session, observability.PAYOUTS_FINISHED,
                                      provider=payout.provider_code, state=to)
    audit.record(session, actor, f"payout.{to}", "payout", payout.id, reason=reason,
                 before={"state": before}, after={"state": to, **after})


def _release(session: Session, payout: Payout, actor: Actor, why: str) -> None:
    ledger.post(session, kind="withdrawal.release", reference=f"payout:{payout.id}:release", actor=actor,
                memo=why, legs=transfer(customer_account(payout.customer_id, "on_hold"),
                                        customer_account(payout.customer_id, "available"), payout.amount_usd))


@dataclass(frozen=True)
class WithdrawalResult:
    payout: Payout
    #: False when the Idempotency-Key named an existing withdrawal (a double click).
    created: bool


def _review_reasons(session: Session, payout: Payout, details: PayoutDetails, config: Mapping,
                    now: dt.datetime) -> list[str]:
    reasons = []
    if payout.amount_usd > config["REVIEW_THRESHOLD_USD"]:
        reasons.append("amount_above_threshold")
    if details.created_at > now - dt.timedelta(hours=int(config["NEW_DETAILS_HOURS"])):
        reasons.append("new_payout_details")
    today = session.execute(sa.select(sa.func.count()).select_from(Payout).where(
        Payout.customer_id == payout.customer_id, Payout.created_at > now - dt.timedelta(days=1))).scalar_one()
    if today > int(config["MAX_WITHDRAWALS_PER_DAY"]):
        reasons.append("many_withdrawals_today")
    shared = session.execute(sa.select(sa.func.count(sa.distinct(PayoutDetails.customer_id))).where(
        PayoutDetails.provider_code == details.provider_code, PayoutDetails.account == details.account)).scalar_one()
    if shared > 1:
        reasons.append("wallet_shared_by_customers")
    return reasons


def request_withdrawal(session: Session, customer: Customer, *, details_id: int, amount_usd: Decimal,
                       request_key: str, provider: PayoutProvider | None, config: Mapping, actor: Actor,
                       now: dt.datetime | None = None) -> WithdrawalResult:
    """Create a payout: check everything, hold the money, apply the risk rules."""
    now = now or utcnow()
    if not request_key or len(request_key) > 80:
        raise Invalid(_l("Send an Idempotency-Key header of 1 to 80 characters."), code="idempotency_key_required")
    existing = session.execute(sa.select(Payout).where(
        Payout.customer_id == customer.id, Payout.request_key == request_key)).scalar_one_or_none()
    if existing is not None:
        if existing.details_id != details_id or existing.amount_usd != amount_usd:
            raise RequestKeyConflict()
        return WithdrawalResult(existing, created=False)
    if customer.is_blocked:
        raise DomainError(_l("Your account is blocked: withdrawals are not possible. Please contact support."),
                          code="customer_blocked")
    from portal.services import accounts  # self-registered customers confirm their e-mail first

    accounts.ensure_can_withdraw(customer)
    from portal.services.partners import ensure_not_partner_linked

    ensure_not_partner_linked(customer)  # 409 partner_linked: withdrawals are in the partner account
    details = session.get(PayoutDetails, details_id)
    if details is None or details.customer_id != customer.id or not details.is_active:
        raise NotFound(_l("These payout details were not found."), code="unknown_details")
    if provider is None or provider.code != details.provider_code:
        raise Invalid(_l("Unknown payment method."), code="unknown_provider")
    state = provider_state(session, provider.code)
    if not state.enabled or not provider.enabled:
        raise ProviderDisabled(reason=state.disabled_reason)
    if not isinstance(amount_usd, Decimal) or amount_usd != amount_usd.quantize(Decimal("0.01")):
        raise Invalid(_l("Enter the amount in dollars and cents, e.g. 1.25."), code="bad_amount")
    minimum = Decimal(config["MIN_WITHDRAWAL_USD"])
    if amount_usd < minimum:
        shown = fx.minimum_withdrawal(session, minimum, now.date())
        raise BelowMinimum(_l("The minimum withdrawal is $%(usd)s (%(rub)s ₽ at today's rate).",
                              usd=minimum, rub=shown.rub if shown.rub is not None else "—"),
                           minimum_usd=str(minimum))
    rate = None
    payout_amount = amount_usd
    if provider.currency != "USD":
        rate = fx.rate_on(session, now.date(), "USD") if provider.currency == "RUB" else None
        if rate is None:
            raise Invalid(_l("This payment method's currency is not supported."), code="unsupported_currency")
        payout_amount = payable(convert(amount_usd, rate), provider.currency)
    try:
        quote = provider.quote(payout_amount, details.account)
    except PayoutProviderError as err:
        raise Invalid(_l("This amount cannot be sent with this payment method (%(reason)s).",
                         reason=err.code.value), code=err.code.value) from None
    payout = Payout(customer_id=customer.id, details_id=details.id, provider_code=provider.code,
                    account=details.account, request_key=request_key, amount_usd=amount_usd,
                    payout_currency=provider.currency, payout_amount=payout_amount, fx_rate=rate,
                    fee=quote.fee, state="requested", review_reasons=[], approvals_needed=0, created_at=now)
    session.add(payout)
    session.flush()
    try:
        ledger.post(session, kind="withdrawal.hold", reference=f"payout:{payout.id}:hold", actor=actor,
                    legs=transfer(customer_account(customer.id, "available"),
                                  customer_account(customer.id, "on_hold"), amount_usd))
    except ledger.InsufficientBalance:
        raise ledger.InsufficientBalance(_l("There is not enough available cashback for this withdrawal.")) from None
    audit.record(session, actor, "payout.requested", "payout", payout.id,
                 after={"amount_usd": amount_usd, "provider": provider.code, "account": mask(details.account),
                        "payout_amount": payout_amount, "fx_rate": rate})
    reasons = _review_reasons(session, payout, details, config, now)
    if reasons:
        payout.review_reasons = reasons
        payout.approvals_needed = 2 if amount_usd > config["SECOND_APPROVAL_USD"] else 1
        _move(session, payout, "in_review", Actor.system("risk"), reason=", ".join(reasons))
    else:
        _move(session, payout, "approved", Actor.system("risk"), reason="auto-approved")
        _send(session, payout)
    return WithdrawalResult(payout, created=True)


def _own_wallet(session: Session, user_id: int, payout: Payout) -> bool:
    return session.execute(sa.select(sa.func.count()).select_from(PayoutDetails).join(
        Customer, Customer.id == PayoutDetails.customer_id).where(
        Customer.user_id == user_id, PayoutDetails.provider_code == payout.provider_code,
        PayoutDetails.account == payout.account)).scalar_one() > 0


#: How long after raising a customer's balance a Finance user may not approve their payouts (days).
DEFAULT_RAISED_BALANCE_DAYS = 30


def raised_balance(session: Session, customer_id: int, actor: Actor, *, now: dt.datetime | None = None,
                   days: int | None = None) -> bool:
    """True when ``actor`` recently raised this customer's balance by hand: approved a posting that
    credited their pending or available cashback, proposed (or imported the report of) an approved
    reconciliation line for them, proposed an approved claim credit or orphan attachment for them."""
    if actor.user_id is None:
        return False  # the system is not a person: risk rules and jobs raise nothing by hand
    if days is None:
        days = current_app.config.get("RAISED_BALANCE_DAYS", DEFAULT_RAISED_BALANCE_DAYS) \
            if has_app_context() else DEFAULT_RAISED_BALANCE_DAYS
    since = (now or utcnow()) - dt.timedelta(days=days)
    label = actor.label[:120]
    username = label.split(":", 1)[1] if label.startswith("user:") else None
    checks = [
        sa.select(Entry.id).join(Posting, Posting.id == Entry.posting_id).join(Account, Account.id == Entry.account_id)
        .where(Account.customer_id == customer_id, Account.kind.in_(("pending", "available")), Entry.amount > 0,
               Posting.actor == label, Posting.created_at >= since),
        sa.select(ReconLine.id).join(ReconImport, ReconImport.id == ReconLine.import_id)
        .where(ReconLine.customer_id == customer_id, ReconLine.decision == "approved", ReconLine.decided_at >= since,
               sa.or_(ReconLine.proposed_by == label, ReconImport.imported_by == label)),
    ]
    checks.append(sa.select(Order.id).where(Order.customer_id == customer_id, Order.attach_confirmed_at >= since,
                                            Order.attach_proposed_by == label))
    if username:
        checks.append(sa.select(ClaimCredit.id).join(Claim, Claim.id == ClaimCredit.claim_id)
                      .where(Claim.customer_id == customer_id, ClaimCredit.state == "approved",
                             ClaimCredit.decided_at >= since, ClaimCredit.proposed_by == username))
    return any(session.execute(check.limit(1)).first() is not None for check in checks)


def decide(session: Session, payout_id: int, *, user_id: int, actor: Actor, approve: bool, reason: str) -> Payout:
    """A Finance decision on a payout in review (maker-checker)."""
    if not reason or not reason.strip():
        raise Invalid(_l("Say why."), code="reason_required")
    payout = lock_payout(session, payout_id)
    if payout.state != "in_review":
        raise IllegalTransition(_l("This payout is not waiting for a review."))
    if payout.customer.user_id == user_id:
        raise MakerChecker(_l("You cannot decide on your own withdrawal."))
    if approve and _own_wallet(session, user_id, payout):
        raise MakerChecker(_l("You cannot approve a payout to your own wallet."))
    if approve and raised_balance(session, payout.customer_id, actor):
        raise MakerChecker(_l("You recently raised this customer's balance (a reconciliation line, a claim credit "
                              "or an attached order): another Finance user must approve their payouts."))
    if any(a.user_id == user_id for a in payout.approvals):
        raise MakerChecker(_l("You have already decided on this payout: a second approver must be someone else."))
    session.add(PayoutApproval(payout_id=payout.id, user_id=user_id, decision="approve" if approve else "reject",
                               reason=reason.strip()))
    session.flush()
    session.refresh(payout, ["approvals"])
    if not approve:
        _move(session, payout, "rejected", actor, reason=reason.strip())
        _release(session, payout, actor, "rejected")
        return payout
    approvals = sum(1 for a in payout.approvals if a.decision == "approve")
    audit.record(session, actor, "payout.approval", "payout", payout.id, reason=reason.strip(),
                 after={"approvals": approvals, "needed": payout.approvals_needed})
    if approvals >= payout.approvals_needed:
        _move(session, payout, "approved", actor, reason=reason.strip())
        _send(session, payout)
    return payout


def cancel_by_customer(session: Session, payout_id: int, customer: Customer, *, actor: Actor) -> Payout:
    """The customer withdraws the request before anything was sent (e.g. the provider is switched off)."""
    payout = lock_payout(session, payout_id)
    if payout.customer_id != customer.id:
        raise NotFound()
    if payout.state not in ("in_review", "approved") or payout.attempts:
        raise IllegalTransition(_l("This withdrawal can no longer be cancelled."))
    _move(session, payout, "cancelled", actor, reason="cancelled by the customer")
    _release(session, payout, actor, "cancelled by the customer")
    return payout


# --- attempts --------------------------------------------------------------------------------

def new_attempt_key(payout_id: int, number: int) -> str:
    """Our handle at the provider: unique, unguessable, within 64 of ``A-Za-z0-9._:-``."""
    return f"cb-{payout_id}-{number}-{secrets.token_hex(8)}"


def payout_request(payout: Payout, key: str) -> PayoutRequest:
    """What the provider is sent for ``payout`` under an attempt's idempotency ``key``."""
    return _request(payout.id, key, payout.payout_amount, payout.payout_currency, payout.account)


def _request(payout_id: int, key: str, amount: Decimal, currency: str, account: str) -> PayoutRequest:
    return PayoutRequest(idempotency_key=key, amount=payable(amount, currency),  # exact: 2 places
                         currency=currency, account=account,
                         description=f"Cashback payout {payout_id}", metadata={"payout_id": str(payout_id)})


@dataclass(frozen=True)
class ClaimedAttempt:
    """An attempt a worker claimed (not committed yet): the call's request, the success's facts."""
    attempt_id: int
    number: int
    request: PayoutRequest
    facts: "PaidFacts"


_PG_CLAIM = ("SELECT outcome, attempt_id, attempt_number, idempotency_key, customer_id, provider_code, account, "
             "amount_usd, payout_currency, payout_amount, fx_rate, fee FROM payout_claim(%s, %s, %s, %s, %s::text[])")


def _claim_postgres(session: Session, payout_id: int, providers: Mapping[str, PayoutProvider],
                    now: dt.datetime) -> ClaimedAttempt | str | None:
    codes = ledger._pg_array(code for code, p in providers.items() if p is not None and p.enabled)
    cursor = session.connection().connection.cursor()  # the session's transaction, no ORM work
    try:
        cursor.execute(_PG_CLAIM, (payout_id, secrets.token_hex(8), now, Actor.system("worker").label, codes))
        (outcome, attempt_id, number, key, customer_id, code, account, amount_usd, currency, amount, fx_rate,
         fee) = cursor.fetchone()
    finally:
        cursor.close()
    if outcome != "claimed":
        return outcome
    money = {name: None if v is None else from_micros(v)
             for name, v in (("amount_usd", amount_usd), ("amount", amount), ("fx_rate", fx_rate), ("fee", fee))}
    return ClaimedAttempt(attempt_id, number, _request(payout_id, key, money["amount"], currency, account),
                 PaidFacts(payout_id, customer_id, code, money["amount_usd"], money["fx_rate"], money["fee"]))


def claim_attempt(session: Session, payout_id: int, *, providers: Mapping[str, PayoutProvider],
                  now: dt.datetime | None = None) -> ClaimedAttempt | str:
    """Claim an approved payout for sending (a worker's submit; commit before the call):
    :func:`start_attempt`'s new attempt, key, state and audit record — on PostgreSQL in one
    round trip, ``payout_claim()`` (migration 0016).  "missing" (no such payout) or "skipped"
    (nothing to send now) instead of a claim.  ``providers``: the loaded plugins by code."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        claim = _claim_postgres(session, payout_id, providers, now)
        if claim is not None:
            return claim
        # the provider's switchboard row does not exist yet: the Python path creates it
    try:
        attempt = start_attempt(session, payout_id, provider_for=providers.get, now=now)
    except NotFound:
        return "missing"
    if attempt is None:
        return "skipped"
    payout = attempt.payout  # read with the lock: no statement
    return ClaimedAttempt(attempt.id, attempt.number, payout_request(payout, attempt.idempotency_key), PaidFacts.of(payout))


def _lock_with_state(session: Session, where, *, attempt: bool = False):
    """One statement for a worker's step: lock the payout (``FOR UPDATE OF payout``), read
    its provider's switchboard row (not locked; None before its first use), the number of its
    newest attempt, and with ``attempt`` the attempt ``where`` names, fresh."""
    other = aliased(PayoutAttempt)
    newest = (sa.select(sa.func.max(other.number)).where(other.payout_id == Payout.id)
              .correlate(Payout).scalar_subquery())
    query = sa.select(Payout, *((PayoutAttempt,) if attempt else ()), ProviderState, newest)
    if attempt:
        query = query.join(PayoutAttempt, PayoutAttempt.payout_id == Payout.id)
    row = session.execute(
        query.outerjoin(ProviderState, ProviderState.code == Payout.provider_code)
        .where(where).with_for_update(of=Payout).execution_options(populate_existing=True)).one_or_none()
    if row is None:
        raise NotFound()
    return tuple(row)


def start_attempt(session: Session, payout_id: int, *, provider: PayoutProvider | None = None,
                  provider_for: Callable[[str], PayoutProvider | None] | None = None,
                  now: dt.datetime | None = None) -> PayoutAttempt | None:
    """Claim an approved payout for sending: a new attempt row with a new key (commit it
    before calling the provider).  None when there is nothing to send now (already taken,
    provider switched off or paused, not due yet).  ``provider_for(code)`` names the provider
    once the payout is read (a worker knows only the payout's id).

    One statement locks the payout and reads its provider's state and newest attempt; the
    flush writes the attempt, the payout's state and the audit record."""
    now = now or utcnow()
    payout, state, newest = _lock_with_state(session, Payout.id == payout_id)
    if payout.state != "approved":
        return None
    if payout.next_attempt_at is not None and payout.next_attempt_at > now:
        return None
    if provider_for is not None:
        provider = provider_for(payout.provider_code)
    if state is None:
        state = provider_state(session, payout.provider_code)
    if not provider_available(state, provider, now):
        return None
    number = (newest or 0) + 1
    attempt = PayoutAttempt(payout_id=payout.id, number=number, idempotency_key=new_attempt_key(payout.id, number),
                            status="submitting", checks=0, created_at=now)
    session.add(attempt)
    set_committed_value(attempt, "payout", payout)  # attempt.payout without a statement or a backref load
    _move(session, payout, "submitting", Actor.system("worker"), attempt=number, key=attempt.idempotency_key)
    session.flush()
    return attempt


def _schedule(delays: list[int], index: int, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=delays[min(index, len(delays) - 1)])


def _next_check(config: Mapping, checks: int, now: dt.datetime, retry_after: dt.timedelta | None) -> dt.datetime:
    """When to ask about an attempt again: the check ladder, but never before the provider's
    ``Retry-After`` — asking a throttled provider sooner only extends its block (QIWI's
    history: more than 100 calls a minute blocks the wallet for five minutes)."""
    when = _schedule(config["PAYOUT_CHECK_SECONDS"], checks, now)
    return max(when, now + retry_after) if retry_after else when


def apply_result(session: Session, attempt_id: int, result: Result, *, config: Mapping,
                 actor: Actor = Actor.system("worker"), now: dt.datetime | None = None,
                 status_read: bool = False) -> Payout:
    """Move the attempt and its payout on with a provider's answer about that attempt's key
    (``status_read``: the answer of a status call, not of a submit)."""
    now = now or utcnow()
    # one statement: the payout locked, this attempt fresh, the provider's state, the newest attempt
    payout, attempt, state, newest = _lock_with_state(session, PayoutAttempt.id == attempt_id, attempt=True)
    status, error = result.status, result.error
    attempt.error_code = error.value if error else None
    attempt.raw_message = (result.raw_message or "")[:1000]
    attempt.provider_reference = result.provider_reference or attempt.provider_reference
    if attempt.number != newest or payout.state in ("failed", "rejected", "cancelled"):
        return payout  # an old attempt's late answer: the payout has moved on
    _breaker_after(session, payout.provider_code, result, config, now, seen=state, status_read=status_read)

    if status is PayoutStatus.SUCCEEDED:
        attempt.status, attempt.next_check_at = "succeeded", None
        if payout.state != "succeeded":
            _succeed(session, payout, result, actor)
    elif status is PayoutStatus.REVERSED:
        attempt.status, attempt.next_check_at = "reversed", None
        if payout.state == "succeeded":
            _reverse(session, payout, actor, result.raw_message)
        elif payout.state != "reversed":  # reversed before we saw success: it never succeeded for us
            _fail(session, payout, "rejected_by_recipient", result.raw_message, actor)
    elif status in (PayoutStatus.PENDING, PayoutStatus.ACCEPTED):
        attempt.status = status.value
        attempt.next_check_at = _next_check(config, attempt.checks, now, result.retry_after)
        if payout.state == "unknown":
            _move(session, payout, "submitting", actor, reason="provider has the payout")
    elif status is PayoutStatus.UNKNOWN:
        attempt.status = "unknown"
        attempt.next_check_at = _next_check(config, attempt.checks, now, result.retry_after)
        if payout.state == "submitting":
            _move(session, payout, "unknown", actor, reason=error.value if error else "unknown")
    elif status is PayoutStatus.FAILED_RETRYABLE:
        attempt.status, attempt.next_check_at = "failed_retryable", None
        if len(payout.attempts) >= int(config["PAYOUT_MAX_ATTEMPTS"]) and not (
                error and (error.pauses_provider or error is ErrorCode.INSUFFICIENT_FUNDS)):
            _fail(session, payout, error.value if error else "failed", result.raw_message, actor)
        elif payout.state in ("submitting", "unknown"):
            delay = result.retry_after or dt.timedelta(
                seconds=config["PAYOUT_RETRY_SECONDS"][min(len(payout.attempts) - 1,
                                                           len(config["PAYOUT_RETRY_SECONDS"]) - 1)])
            payout.next_attempt_at = now + delay
            _move(session, payout, "approved", actor, reason=f"retry later: {error.value if error else ''}")
    elif status is PayoutStatus.FAILED_FINAL:
        attempt.status, attempt.next_check_at = "failed_final", None
        if payout.state in ("submitting", "unknown"):
            _fail(session, payout, error.value if error else "failed", result.raw_message, actor)
    return payout


@dataclass(frozen=True)
class PaidFacts:
    """What a payout's success posting needs, read when its attempt was claimed (none of it
    changes once a payout is approved): :func:`apply_success` needs no read of its own."""
    payout_id: int
    customer_id: int
    provider_code: str
    amount_usd: Decimal
    fx_rate: Decimal | None
    fee: Decimal | None  # quoted; the provider's own fee, when it says one, wins

    @classmethod
    def of(cls, payout: Payout) -> "PaidFacts":
        return cls(payout.id, payout.customer_id, payout.provider_code, payout.amount_usd, payout.fx_rate, payout.fee)


def apply_success(session: Session, attempt_id: int, result: Result, facts: PaidFacts, *,
                  actor: Actor = Actor.system("worker"), now: dt.datetime | None = None) -> bool:
    """The common "succeeded" in one round trip: ``payout_apply_success()`` (migration 0015) moves
    the attempt and the payout, writes the audit record and the posting — exactly what
    :func:`apply_result` writes for it — when the attempt is the newest of a ``submitting``
    payout and the provider's breaker is closed with no failures.  False when that is not
    the case (nothing written) or off PostgreSQL: call :func:`apply_result`."""
    if result.status is not PayoutStatus.SUCCEEDED or result.error is not None \
            or session.get_bind().dialect.name != "postgresql":
        return False
    now = now or utcnow()
    fee = result.fee if result.fee is not None else facts.fee
    legs = _paid_legs(facts, fee)
    ledger.validate_legs(legs)
    reference = f"payout:{facts.payout_id}:paid"
    cursor = session.connection().connection.cursor()  # the session's transaction, no ORM work
    try:
        cursor.execute(_PG_APPLY_SUCCESS, (
            attempt_id, (result.raw_message or "")[:1000], result.provider_reference or None,
            None if fee is None else to_micros(fee), now, actor.label,
            json.dumps(audit._jsonable({"state": "succeeded", "fee": fee})),
            "payout.succeeded", reference, "", *ledger.pg_post_arguments(legs)))
        posting_id, created = cursor.fetchone()
    finally:
        cursor.close()
    if posting_id is None:
        return False
    if not created and not ledger._same_legs(session, posting_id, "payout.succeeded", legs):
        raise ledger.ReferenceConflict(reference=reference)
    if created:
        observability.count_on_commit(session, observability.LEDGER_POSTINGS, kind="payout.succeeded")
    observability.count_on_commit(session, observability.PAYOUTS_FINISHED, provider=facts.provider_code,
                                  state="succeeded")
    return True


_PG_APPLY_SUCCESS = (
    "SELECT posting_id, created FROM payout_apply_success(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s::text[], %s::text[], %s::bigint[], %s::smallint[], %s::text[], %s::integer[], %s)"
)


def _paid_legs(facts: PaidFacts, fee: Decimal | None) -> list[Leg]:
    """One posting: the customer's held amount and our fee both leave the provider float."""
    fee_usd = _in_usd(fee or Decimal(0), facts.fx_rate)
    legs = [Leg(customer_account(facts.customer_id, "on_hold"), -facts.amount_usd),
            Leg(system_account("provider_float", "USD", facts.provider_code), facts.amount_usd + fee_usd)]
    if fee_usd > 0:
        legs.append(Leg(system_account("fees_expense"), -fee_usd))
    return legs


def _succeed(session: Session, payout: Payout, result: Result, actor: Actor) -> None:
    fee = result.fee if result.fee is not None else payout.fee
    payout.fee = fee
    payout.needs_attention = False
    _move(session, payout, "succeeded", actor, fee=fee)
    ledger.post(session, kind="payout.succeeded", reference=f"payout:{payout.id}:paid", actor=actor,
                legs=_paid_legs(PaidFacts.of(payout), fee))


def _in_usd(amount: Decimal, fx_rate: Decimal | None) -> Decimal:
    if fx_rate is None:
        return amount
    return (amount / fx_rate).quantize(LEDGER_QUANTUM, rounding=ROUND_DOWN)


def _fail(session: Session, payout: Payout, code: str, message: str, actor: Actor) -> None:
    payout.failure_code, payout.failure_message = code[:40], (message or "")[:400]
    _move(session, payout, "failed", actor, reason=code)
    _release(session, payout, actor, f"failed: {code}")


def _reverse(session: Session, payout: Payout, actor: Actor, message: str) -> None:
    payout.needs_attention = True  # Finance is told: the money came back
    _move(session, payout, "reversed", actor, reason=message or "reversed by the provider")
    ledger.post(session, kind="payout.reversed", reference=f"payout:{payout.id}:reversed", actor=actor,
                legs=transfer(system_account("provider_float", "USD", payout.provider_code),
                              customer_account(payout.customer_id, "available"), payout.amount_usd))


def acknowledge(session: Session, payout_id: int, *, actor: Actor, reason: str) -> Payout:
    """Finance has dealt with a payout that needs attention but no state change (a reversal)."""
    if not reason or not reason.strip():
        raise Invalid(_l("Say why."), code="reason_required")
    payout = lock_payout(session, payout_id)
    if not payout.needs_attention or payout.state in ("unknown", "submitting"):
        raise IllegalTransition(_l("This payout needs a state fix, not an acknowledgement."))
    payout.needs_attention = False
    audit.record(session, actor, "payout.acknowledged", "payout", payout.id, reason=reason.strip(),
                 after={"state": payout.state})
    return payout


def fix_state(session: Session, payout_id: int, *, to: str, actor: Actor, reason: str) -> Payout:
    """Finance settles a payout no automatic step could resolve (``unknown``), with a reason."""
    if to not in ("succeeded", "failed"):
        raise Invalid(_l("A payout can be fixed as succeeded or failed only."), code="bad_state")
    if not reason or not reason.strip():
        raise Invalid(_l("Say why: what did the provider confirm?"), code="reason_required")
    payout = lock_payout(session, payout_id)
    if payout.state not in ("unknown", "submitting"):
        raise IllegalTransition(_l("Only a payout in an unknown state can be fixed by hand."))
    # maker-checker as in decide(): "failed" would hand the money back while the provider may have paid
    if actor.user_id is not None and (payout.customer.user_id == actor.user_id
                                      or _own_wallet(session, actor.user_id, payout)):
        raise MakerChecker(_l("You cannot settle your own withdrawal or a payout to your own wallet."))
    for attempt in payout.attempts:
        if attempt.status in ("submitting", "unknown", "pending", "accepted"):
            attempt.status, attempt.next_check_at = f"fixed_{to}"[:20], None
    if to == "succeeded":
        _succeed(session, payout, Result(status=PayoutStatus.SUCCEEDED, raw_message=reason), actor)
    else:
        _fail(session, payout, "fixed_by_finance", reason.strip(), actor)
    audit.record(session, actor, "payout.fixed", "payout", payout.id, reason=reason.strip(), after={"state": to})
    return payout
