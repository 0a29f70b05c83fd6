"""Referrals: codes, first-touch attribution, self-referral checks, the referral reward.

* Every customer has a referral link ``/r/<code>``: 10 characters from an alphabet without
  look-alikes (``ensure_code``; ~48 bits, unique index).
* **Attribution** (:func:`attribute`) happens once, at registration, with the code of the
  first link the visitor followed (kept in the session); it is never changed afterwards.
* **Self-referral** (:func:`evidence`): the referred customer and the referrer look like the
  same person when

  - their addresses are equal after :func:`identity_email` (lower case, ``+tag`` removed for
    every domain; for Gmail the dots of the local part are removed and ``googlemail.com`` is
    ``gmail.com``; Yandex's domains ``ya.ru``, ``yandex.*`` are one domain);
  - the registration device fingerprint (keyed hash) is the referrer's;
  - the registration IP (keyed hash) is the referrer's registration IP or one the referrer's
    clicks were visited from;
  - later, new payout details (:func:`check_payout_details`): the same wallet or phone as the
    referrer's (or as a referred customer's, when the referrer adds them).

  Then the attribution is kept but ``Customer.referral_flag`` says why, a
  :class:`ReferralReview` holds the evidence for Support, and no reward is paid while the
  flag stands.  Support dismisses the review (not the same person: the flag is lifted, later
  cashback earns the reward) or confirms it (the flag stays).
* **The reward** (:func:`sync_reward`, called by ``orders.sync_cashback`` in the same
  transaction): ``REFERRAL_REWARD_PERCENT`` % (0 = off, the default) of the referred
  customer's cashback while it is ``available``, credited to the referrer's available balance
  from ``promo_expense`` (posting ``referral.reward``) and taken back with it
  (``referral.clawback``; beyond the referrer's available balance into their receivable, like
  cashback).  Each posting's reference is ``referral:order:<id>:<the cashback posting's
  reference>`` so a replayed event posts nothing twice.  The reward is granted when the
  cashback becomes available and then follows it at the share it was paid at
  (:func:`wanted_reward`): switching the percent off or changing it, or a flag raised later,
  never re-prices a paid reward; it only goes as its cashback goes.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from portal.errors import Conflict, Invalid, NotFound
from portal.i18n import _l
from portal.labels import ENUMS
from portal.models import Account, ClickVisit, Click, Customer, Entry, Order, PayoutDetails, Posting
from portal.models.referrals import ReferralReview
from portal.models.types import utcnow
from portal.services import audit, ledger
from portal.services.audit import Actor
from portal.services.ledger import Leg, customer_account, system_account
from portal.services.money import quantize_ledger

CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_LENGTH = 10
KIND_REWARD = "referral.reward"
KIND_CLAWBACK = "referral.clawback"

#: Why a referral looks like self-referral.
REASONS: Mapping[str, Any] = ENUMS["referral_reason"]
REVIEW_STATES: Mapping[str, Any] = ENUMS["review_state"]

_GMAIL = {"gmail.com", "googlemail.com"}
_YANDEX = {"ya.ru", "yandex.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua"}


# --- codes --------------------------------------------------------------------------------------

def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def ensure_code(session: Session, customer: Customer) -> str:
    """The customer's referral code, made on first use."""
    while customer.referral_code is None:
        code = new_code()
        if session.execute(sa.select(Customer.id).where(Customer.referral_code == code)).first() is None:
            customer.referral_code = code
    return customer.referral_code


def clean_code(code: str | None) -> str | None:
    """A code as typed in a link (case and spaces forgiven), or None when it cannot be one."""
    code = (code or "").strip().lower()
    if not code or len(code) > 16 or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def referrer_for(session: Session, code: str | None) -> Customer | None:
    code = clean_code(code)
    if code is None:
        return None
    return session.execute(sa.select(Customer).where(Customer.referral_code == code)).scalar_one_or_none()


# --- self-referral --------------------------------------------------------------------------------

def identity_email(email: str) -> str:
    """The address with the variations one mailbox accepts removed (see the module docstring)."""
    local, _, domain = (email or "").strip().lower().rpartition("@")
    if not local:
        return (email or "").strip().lower()
    local = local.split("+", 1)[0]
    if domain in _GMAIL:
        local, domain = local.replace(".", ""), "gmail.com"
    elif domain in _YANDEX:
        local, domain = local.replace(".", "-"), "yandex.ru"
    return f"{local}@{domain}"


def _referrer_click_ips(session: Session, referrer_id: int, limit: int = 500) -> set[str]:
    rows = session.execute(sa.select(ClickVisit.ip_hash).join(Click, Click.id == ClickVisit.click_id)
                           .where(Click.customer_id == referrer_id, ClickVisit.ip_hash != "")
                           .order_by(ClickVisit.id.desc()).limit(limit))
    return {ip for (ip,) in rows}


def evidence(session: Session, customer: Customer, referrer: Customer) -> tuple[list[str], dict]:
    """Reasons (codes of ``REASONS``) to think both accounts are one person, and what matched."""
    reasons: list[str] = []
    found: dict[str, Any] = {"customer_id": customer.id, "referrer_id": referrer.id}
    if identity_email(customer.email) == identity_email(referrer.email):
        reasons.append("same_email")
        found["email"] = identity_email(customer.email)
    if customer.registration_fingerprint and customer.registration_fingerprint == referrer.registration_fingerprint:
        reasons.append("same_device")
        found["fingerprint"] = customer.registration_fingerprint[:16]
    ip = customer.registration_ip_hash
    if ip:
        if ip == referrer.registration_ip_hash:
            reasons.append("same_ip")
            found["ip_hash"], found["ip_seen"] = ip[:16], "referrer_registration"
        elif ip in _referrer_click_ips(session, referrer.id):
            reasons.append("same_ip")
            found["ip_hash"], found["ip_seen"] = ip[:16], "referrer_click"
    return reasons, found


def _flag(session: Session, customer: Customer, referrer: Customer, stage: str, reasons: list[str],
          found: dict, actor: Actor) -> ReferralReview:
    review = ReferralReview(customer_id=customer.id, referrer_id=referrer.id, stage=stage, reasons=reasons,
                            evidence=found, state="open", created_at=utcnow())
    session.add(review)
    session.flush()
    customer.referral_flag = ",".join(sorted(set((customer.referral_flag or "").split(",") + reasons) - {""}))[:200]
    audit.record(session, actor, "referral.flagged", "customer", customer.id,
                 after={"review": review.id, "referrer_id": referrer.id, "stage": stage, "reasons": reasons})
    return review


def attribute(session: Session, customer: Customer, code: str | None, *, actor: Actor) -> ReferralReview | None:
    """First-touch attribution at registration; flags self-referral (returns the review)."""
    if customer.referred_by_id is not None:
        return None
    referrer = referrer_for(session, code)
    if referrer is None or referrer.id == customer.id:
        return None
    customer.referred_by_id = referrer.id
    audit.record(session, actor, "referral.attributed", "customer", customer.id,
                 after={"referrer_id": referrer.id, "code": referrer.referral_code})
    reasons, found = evidence(session, customer, referrer)
    if reasons:
        return _flag(session, customer, referrer, "registration", reasons, found, actor)
    return None


def check_payout_details(session: Session, customer: Customer, details: PayoutDetails, *,
                         actor: Actor) -> list[ReferralReview]:
    """New payout details: the same wallet/phone as the referrer's, or a referred customer's?"""
    pairs: list[tuple[Customer, Customer]] = []
    if customer.referred_by_id is not None:
        pairs.append((customer, session.get(Customer, customer.referred_by_id)))
    referred = session.execute(sa.select(Customer).where(Customer.referred_by_id == customer.id)).scalars().all()
    pairs += [(r, customer) for r in referred]
    reviews = []
    for referred_customer, referrer in pairs:
        other = referrer if referred_customer.id == customer.id else referred_customer
        same = session.execute(sa.select(PayoutDetails.id).where(
            PayoutDetails.customer_id == other.id, PayoutDetails.account == details.account)).first()
        if same is None:
            continue
        already = session.execute(sa.select(ReferralReview.id).where(
            ReferralReview.customer_id == referred_customer.id, ReferralReview.referrer_id == referrer.id,
            ReferralReview.stage == "payout_details", ReferralReview.state == "open")).first()
        if already is not None:
            continue
        reviews.append(_flag(session, referred_customer, referrer, "payout_details", ["same_payout_account"],
                             {"customer_id": referred_customer.id, "referrer_id": referrer.id,
                              "provider": details.provider_code, "details_id": details.id,
                              "other_details_id": same[0]}, actor))
    return reviews


# --- Support's decisions -------------------------------------------------------------------------------

class ReviewClosed(Conflict):
    code = "review_closed"
    default_message = _l("This review is closed already.")


def open_reviews(session: Session, limit: int = 200) -> list[ReferralReview]:
    return session.execute(sa.select(ReferralReview).where(ReferralReview.state == "open")
                           .order_by(ReferralReview.created_at, ReferralReview.id).limit(limit)).scalars().all()


def resolve_review(session: Session, review_id: int, decision: str, *, actor: Actor, note: str = "") -> ReferralReview:
    """``dismissed`` (not the same person: the flag is lifted) or ``confirmed`` (self-referral)."""
    if decision not in ("dismissed", "confirmed"):
        raise Invalid(_l("Choose dismiss or confirm."), code="bad_decision")
    review = session.execute(sa.select(ReferralReview).where(ReferralReview.id == review_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if review is None:
        raise NotFound()
    if review.state != "open":
        raise ReviewClosed()
    customer = session.execute(sa.select(Customer).where(Customer.id == review.customer_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one()
    review.state, review.resolved_by, review.resolved_at = decision, actor.label, utcnow()
    before = customer.referral_flag
    if decision == "confirmed":
        customer.referral_flag = "self_referral"
    else:
        others = session.execute(sa.select(ReferralReview.id).where(
            ReferralReview.customer_id == customer.id, ReferralReview.id != review.id,
            ReferralReview.state.in_(("open", "confirmed")))).first()
        if others is None:
            customer.referral_flag = None
    audit.record(session, actor, f"referral.review.{decision}", "customer", customer.id, reason=note.strip() or None,
                 before={"review": review.id, "referral_flag": before},
                 after={"review": review.id, "state": decision, "referral_flag": customer.referral_flag})
    return review


# --- the reward -------------------------------------------------------------------------------------------

def reward_percent() -> Decimal:
    """``REFERRAL_REWARD_PERCENT`` of the running app (0 outside one: off)."""
    if not has_app_context():
        return Decimal(0)
    return Decimal(str(current_app.config.get("REFERRAL_REWARD_PERCENT") or 0))


def _order_reward(session: Session, order_id: int, referrer_id: int) -> Decimal:
    """What the referrer holds in rewards for this order (rewards less clawbacks)."""
    total = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Entry.amount), 0))
        .join(Posting, Posting.id == Entry.posting_id).join(Account, Account.id == Entry.account_id)
        .where(Posting.kind.in_((KIND_REWARD, KIND_CLAWBACK)), Posting.reference.like(f"referral:order:{order_id}:%"),
               Account.customer_id == referrer_id)).scalar_one()
    return Decimal(total) if not isinstance(total, Decimal) else total


def wanted_reward(*, had: Decimal, previous_available: Decimal, available: Decimal, percent: Decimal,
                  flagged: bool) -> Decimal:
    """The reward an order should carry now (pure; the rules of the module docstring).

    * A reward is granted once, when the order's cashback *becomes* available: ``percent`` of
      it, unless the referral is flagged or the reward is off.  An order whose cashback was
      already available earns nothing later (no reward after the fact, e.g. after a dismissed
      flag or a raised percent).
    * Once paid, the reward follows its cashback at the share it was paid at: a partial refund
      takes back that share of the reward, a cancellation all of it.  A later change of the
      setting never re-prices it; a flag raised later never lets it grow.
    """
    if had > 0:
        if previous_available <= 0:
            return had if available > 0 else Decimal(0)
        want = quantize_ledger(had * available / previous_available)
        return min(want, had) if flagged else want
    if percent > 0 and not flagged and previous_available <= 0 < available:
        return quantize_ledger(available * percent / Decimal(100))
    return Decimal(0)


def sync_reward(session: Session, order: Order, *, reference: str, actor: Actor,
                previous_available: Decimal = Decimal(0)) -> ledger.PostResult | None:
    """Bring the referrer's reward for ``order`` in line with its cashback (see the module docstring).

    ``previous_available``: the order's cashback on the available balance before this change
    (``orders.sync_cashback`` passes it; it has already booked the new figure).
    """
    if order.customer_id is None:
        return None
    customer = session.get(Customer, order.customer_id)
    if customer is None or customer.referred_by_id is None:
        return None
    referrer_id = customer.referred_by_id
    available = order.booked_cashback if order.booked_in == "available" else Decimal(0)
    had = _order_reward(session, order.id, referrer_id)
    want = wanted_reward(had=had, previous_available=previous_available, available=available,
                         percent=reward_percent(), flagged=customer.referral_flag is not None)
    delta = want - had
    if not delta:
        return None
    legs_delta = {"available": Decimal(0), "receivable": Decimal(0)}
    current = ledger.customer_balances(session, referrer_id, lock=True)
    if delta < 0 and current["available"] + delta < 0:
        shortfall = -(current["available"] + delta)
        legs_delta["available"] = delta + shortfall
        legs_delta["receivable"] = -shortfall
    elif delta > 0 and current["receivable"] > 0:
        net = min(current["receivable"], delta)
        legs_delta["available"] = delta - net
        legs_delta["receivable"] = net
    else:
        legs_delta["available"] = delta
    legs = [Leg(customer_account(referrer_id, k), v) for k, v in legs_delta.items() if v]
    legs.append(Leg(system_account("promo_expense"), -delta))
    kind = KIND_REWARD if delta > 0 else KIND_CLAWBACK
    return ledger.post(session, kind=kind, reference=f"referral:order:{order.id}:{reference}"[:200], legs=legs,
                       actor=actor, memo=f"referral of customer {customer.id}, order {order.network}:{order.network_order_id}")


# --- what people see ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReferralStats:
    code: str
    referred: int
    flagged: int
    earned_usd: Decimal


def stats(session: Session, customer: Customer) -> ReferralStats:
    """The cabinet's referral section: the code, customers referred, rewards earned (net)."""
    code = ensure_code(session, customer)
    referred = session.execute(sa.select(sa.func.count()).select_from(Customer)
                               .where(Customer.referred_by_id == customer.id)).scalar_one()
    flagged = session.execute(sa.select(sa.func.count()).select_from(Customer).where(
        Customer.referred_by_id == customer.id, Customer.referral_flag.is_not(None))).scalar_one()
    earned = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Entry.amount), 0))
        .join(Posting, Posting.id == Entry.posting_id).join(Account, Account.id == Entry.account_id)
        .where(Posting.kind.in_((KIND_REWARD, KIND_CLAWBACK)), Account.customer_id == customer.id)).scalar_one()
    return ReferralStats(code, referred, flagged, Decimal(earned))


def timeline_entries(session: Session, customer: Customer, until: dt.datetime | None,
                     since: dt.datetime | None, limit: int = 200) -> list:
    """Timeline entries (kind ``account``): who referred the customer, whom they referred."""
    from portal.services.timeline import TimelineEntry

    entries = []
    if customer.referred_by_id is not None:
        referrer = session.get(Customer, customer.referred_by_id)
        details = {"referrer": f"#{referrer.id} {referrer.email}" if referrer else f"#{customer.referred_by_id}"}
        if customer.referral_flag:
            details["flag"] = customer.referral_flag
        entries.append(TimelineEntry("account", customer.created_at, 3,
                                     _l("Registered through a referral link"), details))
    for r in session.execute(sa.select(Customer).where(Customer.referred_by_id == customer.id)
                             .order_by(Customer.created_at.desc()).limit(limit)).scalars():
        details = {"referred": f"#{r.id} {r.email}"}
        if r.referral_flag:
            details["flag"] = r.referral_flag
        entries.append(TimelineEntry("account", r.created_at, 1_000_000 + r.id,
                                     _l("Referred a new customer"), details))
    return [e for e in entries if (until is None or e.at <= until) and (since is None or e.at >= since)]


def reason_labels(codes: Iterable[str]) -> list[str]:
    return [str(REASONS.get(c, c)) for c in codes]


# --- demo ------------------------------------------------------------------------------------------------------

def seed_demo(session: Session, customers: list[Customer], config) -> None:
    """Demo referrals (idempotent: first touch is never replaced).

    Everyone gets a referral code; customer 3 came through customer 1's link (customer 1
    earns rewards on customer 3's cashback when ``REFERRAL_REWARD_PERCENT`` is on, as in
    ``scripts/demo.sh``); customer 19 came through customer 4's link from customer 4's own
    device: a self-referral review for Support.
    """
    from portal.services.accounts import Device, fingerprint_hash

    actor = Actor.system("seed-demo")
    for customer in customers:
        ensure_code(session, customer)
    session.flush()
    if len(customers) < 19:
        return
    referrer, friend = customers[0], customers[2]
    if friend.referred_by_id is None:
        attribute(session, friend, referrer.referral_code, actor=actor)
    owner, twin = customers[3], customers[18]
    if twin.referred_by_id is None:
        shared = fingerprint_hash(Device(user_agent="Mozilla/5.0 (demo phone)", accept_language="ru-RU",
                                         client_fingerprint="demo-shared-device"), config["SECRET_KEY"])
        for c in (owner, twin):
            c.registration_fingerprint = c.registration_fingerprint or shared
            c.email_confirmed_at = c.email_confirmed_at or c.created_at
        twin.registration_fingerprint = owner.registration_fingerprint
        attribute(session, twin, owner.referral_code, actor=actor)
