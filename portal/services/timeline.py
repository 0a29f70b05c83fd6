"""One customer's story for Support and Finance: search, and a merged timeline.

* :func:`search` finds customers by id, e-mail (substring), network order number, click
  sub-id, or a payout wallet / phone number typed in any usual format (normalized the way
  the providers normalize accounts), and says *why* each customer matched.
* :func:`timeline` merges, newest first, every source about one customer: clicks (with
  their visit counts), the network's events on their orders, the orders and their
  cashback, ledger postings touching their accounts, withdrawals and each provider
  attempt (with the provider's answer), claims, audit records about them and their
  account events (registration, last login), plus a summary header.

Performance: one query per source, each limited to the page window (``limit + 1`` rows
not newer than ``until``), then merged in Python; no per-row queries.  Paging is by a
time cursor: the next page shows entries at or before ``Page.next_until``.  A page never
splits one timestamp across two pages (entries sharing the boundary timestamp move to the
next page), so nothing is shown twice or skipped.

Masking: unless ``show_pii`` is true, wallets and phone numbers are shown as
``mask(account)`` — in payouts, in search reasons, and inside free text (the providers'
raw answers, failure messages, audit before/after) where anything shaped like an account
number is masked too.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from flask_appbuilder.security.sqla.models import User
from sqlalchemy.orm import Session

from portal.i18n import _l
from portal.labels import label
from portal.models import (Account, AuditRecord, Click, ClickVisit, Customer, Entry, NetworkEvent, Order, Payout,
                           PayoutAttempt, PayoutDetails, Posting)
from portal.models.claims import Claim, ClaimCredit
from portal.models.payouts import mask
from portal.services import claims as claim_rules, ledger

#: Default and largest number of entries on one timeline page.
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: Most customers one search returns.
SEARCH_LIMIT = 50
#: Products shown in the header's click summary.
TOP_PRODUCTS = 10

#: Entry kinds, in the order a tie (same timestamp) is shown, and their labels.
KINDS: dict[str, Any] = {
    "claim": _l("Claim"),
    "audit": _l("Audit record"),
    "attempt": _l("Payout attempt"),
    "payout": _l("Withdrawal"),
    "posting": _l("Ledger posting"),
    "network_event": _l("Network event"),
    "order": _l("Order"),
    "click": _l("Click"),
    "account": _l("Account"),
}
_RANK = {kind: i for i, kind in enumerate(reversed(list(KINDS)))}

#: Characters (letters and digits) a wallet's start needs before it is searched.
WALLET_PREFIX_MIN = 4
#: Why a customer matched a search.
REASONS: dict[str, Any] = {
    "id": _l("Customer id"),
    "name": _l("Name"),
    "email": _l("E-mail"),
    "order": _l("Order number"),
    "sub_id": _l("Click sub-id"),
    "wallet": _l("Wallet"),
    "phone": _l("Phone number"),
}

#: Labels of the ``details`` keys of entries.
DETAIL_LABELS: dict[str, Any] = {
    "product": _l("Product"), "url": _l("Link"), "channel": _l("Channel"), "rate": _l("Rate, %"),
    "visits": _l("Visits"), "repeat": _l("Clicks on this product in the window"), "sub_id": _l("Sub-id"),
    "order": _l("Network order"), "status": _l("Status"), "outcome": _l("Outcome"), "source": _l("Source"),
    "event_id": _l("Event id"), "event_time": _l("Event time"), "booked_in": _l("Cashback in"),
    "reference": _l("Reference"), "actor": _l("Actor"), "memo": _l("Memo"), "provider": _l("Provider"),
    "account": _l("Account"), "state": _l("State"), "failure": _l("Failure"), "message": _l("Provider's message"),
    "key": _l("Idempotency key"), "error": _l("Error"), "provider_reference": _l("Provider reference"),
    "answer": _l("Provider's answer"), "checks": _l("Status checks"), "payout": _l("Withdrawal"),
    "reason": _l("Reason"), "before": _l("Before"), "after": _l("After"), "object": _l("Object"),
    "order_date": _l("Order date"), "reply_sent": _l("Reply sent"), "review": _l("Review reasons"),
    "network": _l("Network"), "legs": _l("Entries"),
    "referrer": _l("Referred by"), "referred": _l("Referred customer"), "flag": _l("Self-referral flag"),
}

#: The table of ``portal.labels`` a detail's code goes through: by key, then by the entry's kind.
DETAIL_ENUMS: dict[str, Any] = {
    "status": {"order": "order_status", "network_event": "order_status", "attempt": "attempt_status"},
    "state": {"payout": "payout_state", "claim": "claim_state"},
    "outcome": "event_outcome", "source": "event_source", "booked_in": "booked_in", "channel": "channel",
    "provider": "provider", "failure": "failure_code", "error": "failure_code", "actor": "actor",
    "flag": "referral_reason", "review": "review_reason",
}


def detail_kind(entry_kind: str, key: str) -> str | None:
    """The labels table of detail ``key`` of an entry of ``entry_kind`` (``None``: not a code)."""
    kind = DETAIL_ENUMS.get(key)
    return kind.get(entry_kind) if isinstance(kind, dict) else kind


#: Labels of amounts.
AMOUNT_LABELS: dict[str, Any] = {
    "amount": _l("Amount"), "commission": _l("Commission"), "cashback": _l("Cashback"),
    "refunded": _l("Refunded"), "payout": _l("Sent"), "fee": _l("Our fee"),
    "pending": _l("Pending"), "available": _l("Available"), "on_hold": _l("On hold"),
    "receivable": _l("Receivable"), "claimed": _l("Claimed"),
}


# --- results ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Amount:
    label: str  # a key of AMOUNT_LABELS
    value: Decimal
    currency: str = "USD"
    #: Show every ledger digit (postings) instead of whole cents.
    exact: bool = False


@dataclass(frozen=True)
class Link:
    """A page about the entry: ``url_for(endpoint, **args)``, shown when the viewer has
    ``permission`` on ``view``."""

    endpoint: str
    args: dict
    permission: str
    view: str


@dataclass(frozen=True)
class TimelineEntry:
    kind: str  # a key of KINDS
    at: dt.datetime
    id: int
    title: Any  # a lazy string
    details: dict[str, Any] = field(default_factory=dict)
    amounts: list[Amount] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple:
        return (self.at, _RANK[self.kind], self.id)


@dataclass(frozen=True)
class Summary:
    customer: Customer
    balances: dict[str, Decimal]
    clicks_total: int
    #: (product id, clicks), most clicked first
    top_products: list[tuple[str, int]]
    orders_by_status: dict[str, int]
    total_cashback: Decimal
    total_withdrawn: Decimal
    #: (provider, account as the viewer may see it, active)
    payout_details: list[tuple[str, str, bool]]
    claims_total: int


@dataclass(frozen=True)
class Timeline:
    summary: Summary
    entries: list[TimelineEntry]
    #: Cursor of the next (older) page, or None when this is the last page.
    next_until: dt.datetime | None


@dataclass(frozen=True)
class Reason:
    code: str  # a key of REASONS
    value: str


@dataclass
class Match:
    customer: Customer
    reasons: list[Reason]


# --- masking ---------------------------------------------------------------------------------------

#: Things shaped like a payout account inside free text: Russian mobile numbers (with the
#: usual separators), YooMoney wallets (4100…), WebMoney purses (a letter and 12 digits),
#: Test Bank wallets.  Order numbers (long digit runs of another shape) stay readable.
_ACCOUNT_LIKE = re.compile(
    r"(?<![\w+])(?:TEST-\d{8}|[A-Z]\d{12}|4100\d{7,16}"
    r"|(?:(?:\+7|8|7)[\s\-(]*)?9\d\d[\s\-)]*\d{3}[\s\-]*\d\d[\s\-]*\d\d)(?![\w:])")


def scrub(text: Any, accounts: Iterable[str] = ()) -> Any:
    """``text`` with every known account, and anything shaped like one, masked.

    Non-strings (numbers, None) come back unchanged; dicts and lists are scrubbed deeply.
    """
    if isinstance(text, dict):
        return {k: scrub(v, accounts) for k, v in text.items()}
    if isinstance(text, (list, tuple)):
        return [scrub(v, accounts) for v in text]
    if not isinstance(text, str) or not text:
        return text
    for account in sorted({a for a in accounts if a}, key=len, reverse=True):
        text = text.replace(account, mask(account))
    return _ACCOUNT_LIKE.sub(lambda m: mask(re.sub(r"[\s\-()]", "", m.group(0))), text)


# --- search ----------------------------------------------------------------------------------------

def _mobile(text: str) -> str | None:
    """``text`` as E.164 when it is a Russian mobile number, else None."""
    try:
        from payment_providers.phones.operators import normalize_mobile
    except ImportError:  # pragma: no cover - the phone providers are part of the project
        return None
    try:
        return normalize_mobile(text)
    except Exception:
        return None


def account_candidates(text: str) -> tuple[set[str], str | None]:
    """The normalized forms ``text`` may have as a stored account, and the phone if it is one."""
    raw = text.strip()
    compact = re.sub(r"[\s\-().]", "", raw)
    upper = compact.upper()
    found = {raw, compact, upper}
    if upper.startswith("WM") and len(upper) > 3:
        found.add(upper[2:])
    if upper.startswith("TEST") and upper[4:].isdigit():
        found.add("TEST-" + upper[4:])
    phone = _mobile(raw)
    if phone:
        found.add(phone)
    return {c for c in found if c}, phone


def search(session: Session, query: str, *, show_pii: bool = False, limit: int = SEARCH_LIMIT) -> list[Match]:
    """Customers matching ``query``, each with why; most reasons first, then newest customer first."""
    text = (query or "").strip()
    if not text:
        return []
    reasons: dict[int, list[Reason]] = {}

    def hit(customer_id: int | None, code: str, value: str) -> None:
        if customer_id is None:
            return
        found = reasons.setdefault(int(customer_id), [])
        if Reason(code, value) not in found:
            found.append(Reason(code, value))

    number = text.lstrip("#")
    if number.isascii() and number.isdigit() and len(number) <= 9:
        if session.get(Customer, int(number)) is not None:
            hit(int(number), "id", number)
    if len(text) >= 3 or "@" in text:
        for cid, email in session.execute(
                sa.select(Customer.id, Customer.email)
                .where(sa.func.lower(Customer.email).contains(text.lower(), autoescape=True))
                .order_by(Customer.id.desc()).limit(limit)):
            hit(cid, "email", email)
    if len(text) >= 2:  # a name or part of it, any case («смирн» finds Анна Смирнова)
        for cid, name in session.execute(
                sa.select(Customer.id, Customer.name)
                .where(sa.func.lower(Customer.name).contains(text.lower(), autoescape=True))
                .order_by(Customer.id.desc()).limit(limit)):
            hit(cid, "name", name)
    for cid, order_no in session.execute(
            sa.select(Order.customer_id, Order.network_order_id)
            .where(Order.network_order_id == text, Order.customer_id.is_not(None)).limit(limit)):
        hit(cid, "order", order_no)
    for cid, sub_id in session.execute(sa.select(Click.customer_id, Click.sub_id).where(Click.sub_id == text)):
        hit(cid, "sub_id", sub_id)
    candidates, phone = account_candidates(text)
    if len(re.sub(r"\W", "", text)) >= WALLET_PREFIX_MIN:  # a wallet or phone, or its start
        def starts(column):
            return sa.or_(*(column.startswith(c, autoescape=True) for c in candidates))

        rows = session.execute(
            sa.union(
                sa.select(PayoutDetails.customer_id, PayoutDetails.provider_code, PayoutDetails.account)
                .where(starts(PayoutDetails.account)),
                sa.select(Payout.customer_id, Payout.provider_code, Payout.account).where(starts(Payout.account)),
            ).limit(limit)).all()
        for cid, provider, account in rows:
            shown = account if show_pii else mask(account)
            hit(cid, "phone" if phone and account == phone else "wallet", f"{label('provider', provider)}: {shown}")
    if not reasons:
        return []
    customers = {c.id: c for c in session.execute(
        sa.select(Customer).where(Customer.id.in_(list(reasons)))).scalars()}
    ordered = sorted(customers, key=lambda cid: (-len(reasons[cid]), -cid))[:limit]
    return [Match(customers[cid], reasons[cid]) for cid in ordered]


# --- timeline --------------------------------------------------------------------------------------

def _window(query, column, until: dt.datetime | None, since: dt.datetime | None, limit: int):
    """The page window of one source: not newer than ``until``, not older than ``since``."""
    if until is not None:
        query = query.where(column <= until)
    if since is not None:
        query = query.where(column >= since)
    return query.order_by(column.desc()).limit(limit + 1)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _clicks(session, customer_id, window) -> list[TimelineEntry]:
    visits = (sa.select(sa.func.count(ClickVisit.id)).where(ClickVisit.click_id == Click.id)
              .correlate(Click).scalar_subquery())
    rows = session.execute(window(sa.select(Click, visits).where(Click.customer_id == customer_id),
                                  Click.created_at)).all()
    return [TimelineEntry(
        "click", c.created_at, c.id, _l("Click on product %(product)s", product=c.product_id),
        {"product": c.product_id, "url": c.canonical_url, "channel": c.channel, "rate": c.rate, "visits": n,
         "repeat": c.repeat_count, "sub_id": c.sub_id}) for c, n in rows]


def _orders(session, customer_id, window) -> list[TimelineEntry]:
    rows = session.execute(window(sa.select(Order).where(Order.customer_id == customer_id),
                                  Order.created_at)).scalars()
    return [TimelineEntry(
        "order", o.created_at, o.id,
        _l("Order %(order)s: %(status)s", order=o.network_order_id, status=label("order_status", o.status)),
        {"order": o.network_order_id, "network": o.network, "status": o.status, "booked_in": o.booked_in,
         "sub_id": o.sub_id, "rate": o.rate},
        [Amount("amount", o.amount_usd), Amount("commission", o.commission_usd),
         Amount("cashback", o.booked_cashback)] + ([Amount("refunded", o.refunded_usd)] if o.refunded_usd else []),
        [Link("OrderView.show", {"pk": o.id}, "can_show", "OrderView")]) for o in rows]


def _events(session, customer_id, window) -> list[TimelineEntry]:
    query = (sa.select(NetworkEvent).join(Order, Order.id == NetworkEvent.order_id)
             .where(Order.customer_id == customer_id))
    rows = session.execute(window(query, NetworkEvent.received_at)).scalars()
    return [TimelineEntry(
        "network_event", e.received_at, e.id,
        _l("Network: order %(order)s %(status)s", order=e.network_order_id,
           status=label("order_status", e.status)),
        {"order": e.network_order_id, "status": e.status, "outcome": e.outcome, "source": e.source,
         "event_id": e.event_id, "event_time": e.event_time},
        [Amount("amount", e.amount, e.currency), Amount("commission", e.commission, e.currency)]
        + ([Amount("refunded", e.refunded_amount, e.currency)] if e.refunded_amount else []),
        [Link("NetworkEventView.show", {"pk": e.id}, "can_show", "NetworkEventView")]) for e in rows]


def _postings(session, customer_id, window, show_pii, accounts) -> list[TimelineEntry]:
    mine = sa.select(Entry.posting_id).join(Account, Account.id == Entry.account_id).where(
        Account.customer_id == customer_id)
    postings = session.execute(window(sa.select(Posting).where(Posting.id.in_(mine)),
                                      Posting.created_at)).scalars().all()
    if not postings:
        return []
    moves: dict[int, Counter] = {p.id: Counter() for p in postings}
    currency: dict[int, str] = {}
    for posting_id, kind, amount, cur in session.execute(
            sa.select(Entry.posting_id, Account.kind, Entry.amount, Entry.currency)
            .join(Account, Account.id == Entry.account_id)
            .where(Entry.posting_id.in_(list(moves)), Account.customer_id == customer_id)):
        sign = -1 if ledger.ACCOUNT_KINDS[kind].normal == "debit" else 1
        moves[posting_id][kind] += sign * amount
        currency[posting_id] = cur
    return [TimelineEntry(
        "posting", p.created_at, p.id, _l("Ledger: %(kind)s", kind=label("posting_kind", p.kind)),
        {"reference": p.reference, "actor": p.actor, "memo": p.memo if show_pii else scrub(p.memo, accounts)},
        [Amount(kind, value, currency.get(p.id, "USD"), exact=True)
         for kind, value in moves[p.id].items() if value],
        [Link("PostingView.show", {"pk": p.id}, "can_show", "PostingView")]) for p in postings]


def _payouts(session, customer_id, window, show_pii) -> list[TimelineEntry]:
    rows = session.execute(window(sa.select(Payout).where(Payout.customer_id == customer_id),
                                  Payout.created_at)).scalars()
    entries = []
    for p in rows:
        account = p.account if show_pii else mask(p.account)
        message = p.failure_message if show_pii else scrub(p.failure_message, [p.account])
        entries.append(TimelineEntry(
            "payout", p.created_at, p.id,
            _l("Withdrawal #%(id)s to %(provider)s: %(state)s", id=p.id, provider=label("provider", p.provider_code),
               state=label("payout_state", p.state)),
            {"provider": p.provider_code, "account": account, "state": p.state,
             "review": list(p.review_reasons or []) or "", "failure": p.failure_code or "", "message": message or ""},
            [Amount("amount", p.amount_usd), Amount("payout", p.payout_amount, p.payout_currency)]
            + ([Amount("fee", p.fee, p.payout_currency)] if p.fee else []),
            [Link("PayoutView.show", {"pk": p.id}, "can_show", "PayoutView")]))
    return entries


def _attempts(session, customer_id, window, show_pii) -> list[TimelineEntry]:
    query = (sa.select(PayoutAttempt, Payout.account, Payout.provider_code)
             .join(Payout, Payout.id == PayoutAttempt.payout_id).where(Payout.customer_id == customer_id))
    entries = []
    for a, account, provider in session.execute(window(query, PayoutAttempt.created_at)):
        answer = a.raw_message if show_pii else scrub(a.raw_message, [account])
        entries.append(TimelineEntry(
            "attempt", a.created_at, a.id,
            _l("Attempt %(number)s of withdrawal #%(payout)s: %(status)s", number=a.number, payout=a.payout_id,
               status=label("attempt_status", a.status)),
            {"payout": a.payout_id, "provider": provider, "key": a.idempotency_key, "status": a.status,
             "error": a.error_code or "", "provider_reference": a.provider_reference or "",
             "answer": answer or "", "checks": a.checks},
            [], [Link("PayoutView.show", {"pk": a.payout_id}, "can_show", "PayoutView")]))
    return entries


def _claims(session, customer_id, window) -> list[TimelineEntry]:
    rows = session.execute(window(sa.select(Claim).where(Claim.customer_id == customer_id),
                                  Claim.created_at)).scalars()
    return [TimelineEntry(
        "claim", c.created_at, c.id,
        _l("Claim #%(id)s for order %(order)s: %(state)s", id=c.id, order=c.order_number,
           state=claim_rules.STATE_LABELS.get(c.state, c.state)),
        {"order": c.order_number, "order_date": c.order_date, "state": c.state,
         "reason": claim_rules.REASON_LABELS.get(c.reason_code, c.reason_code) if c.reason_code else "",
         "reply_sent": c.replied_at if c.reply_sent else ""},
        [Amount("claimed", c.amount_usd)] if c.amount_usd is not None else [],
        [Link("ClaimDeskView.show", {"claim_id": c.id}, "can_read", "ClaimDesk")]) for c in rows]


def _audit(session, customer: Customer, window, show_pii, accounts) -> list[TimelineEntry]:
    cid = customer.id

    def ids(column, owner):
        return sa.select(sa.cast(column, sa.String)).where(owner == cid)

    about = [
        sa.and_(AuditRecord.object_type == "customer", AuditRecord.object_id == str(cid)),
        sa.and_(AuditRecord.object_type == "payout", AuditRecord.object_id.in_(ids(Payout.id, Payout.customer_id))),
        sa.and_(AuditRecord.object_type == "payout_details",
                AuditRecord.object_id.in_(ids(PayoutDetails.id, PayoutDetails.customer_id))),
        sa.and_(AuditRecord.object_type == "order", AuditRecord.object_id.in_(ids(Order.id, Order.customer_id))),
        sa.and_(AuditRecord.object_type == "claim", AuditRecord.object_id.in_(ids(Claim.id, Claim.customer_id))),
        sa.and_(AuditRecord.object_type == "claim_credit", AuditRecord.object_id.in_(
            sa.select(sa.cast(ClaimCredit.id, sa.String)).join(Claim, Claim.id == ClaimCredit.claim_id)
            .where(Claim.customer_id == cid))),
    ]
    if customer.user_id is not None:
        about.append(AuditRecord.actor_id == customer.user_id)
    rows = session.execute(window(sa.select(AuditRecord).where(sa.or_(*about)), AuditRecord.created_at)).scalars()
    entries = []
    for r in rows:
        details = {"object": f"{r.object_type}:{r.object_id}", "actor": r.actor, "reason": r.reason or "",
                   "before": r.before or "", "after": r.after or ""}
        if not show_pii:
            details = scrub(details, accounts)
        entries.append(TimelineEntry("audit", r.created_at, r.id, _l("Audit: %(action)s", action=label("audit_action", r.action)), details))
    return entries


def _account(customer: Customer, user: User | None, until, since) -> list[TimelineEntry]:
    events = [TimelineEntry("account", customer.created_at, 1, _l("Customer registered"), {})]
    last_login = _aware(getattr(user, "last_login", None))
    if last_login is not None:
        events.append(TimelineEntry("account", last_login, 2, _l("Last login"), {}))
    return [e for e in events if (until is None or e.at <= until) and (since is None or e.at >= since)]


def summary(session: Session, customer: Customer, *, show_pii: bool) -> Summary:
    """The header: balances, clicks per product, orders per status, cashback and withdrawals."""
    cid = customer.id
    products = session.execute(
        sa.select(Click.product_id, sa.func.count()).where(Click.customer_id == cid)
        .group_by(Click.product_id).order_by(sa.func.count().desc(), Click.product_id).limit(TOP_PRODUCTS)).all()
    clicks_total = session.execute(sa.select(sa.func.count()).select_from(Click)
                                   .where(Click.customer_id == cid)).scalar_one()
    by_status: dict[str, int] = {}
    total_cashback = Decimal("0")
    for status, count, cashback in session.execute(
            sa.select(Order.status, sa.func.count(), sa.func.coalesce(sa.func.sum(Order.booked_cashback), 0))
            .where(Order.customer_id == cid).group_by(Order.status)):
        by_status[status] = count
        total_cashback += Decimal(cashback)
    withdrawn = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Payout.amount_usd), 0))
        .where(Payout.customer_id == cid, Payout.state == "succeeded")).scalar_one()
    details = [(d.provider_code, d.account if show_pii else mask(d.account), d.is_active)
               for d in session.execute(sa.select(PayoutDetails).where(PayoutDetails.customer_id == cid)
                                        .order_by(PayoutDetails.id)).scalars()]
    claims_total = session.execute(sa.select(sa.func.count()).select_from(Claim)
                                   .where(Claim.customer_id == cid)).scalar_one()
    return Summary(customer, ledger.customer_balances(session, cid), clicks_total,
                   [(p, n) for p, n in products], by_status, total_cashback,
                   Decimal(withdrawn), details, claims_total)


def timeline(session: Session, customer_id: int, *, show_pii: bool, limit: int = DEFAULT_LIMIT,
             until: dt.datetime | None = None, since: dt.datetime | None = None,
             kinds: Iterable[str] | None = None) -> Timeline | None:
    """The customer's timeline page, newest first; None when there is no such customer.

    ``until`` (inclusive) is the cursor from the previous page's ``next_until``; ``since``
    bounds the oldest entry; ``kinds`` keeps only those kinds (and skips the other sources'
    queries).
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    limit = max(1, min(int(limit), MAX_LIMIT))
    wanted = set(KINDS) if not kinds else set(kinds) & set(KINDS)

    def window(query, column):
        return _window(query, column, until, since, limit)

    accounts = [a for (a,) in session.execute(
        sa.select(PayoutDetails.account).where(PayoutDetails.customer_id == customer_id)
        .union(sa.select(Payout.account).where(Payout.customer_id == customer_id)))]
    entries: list[TimelineEntry] = []
    if "click" in wanted:
        entries += _clicks(session, customer_id, window)
    if "order" in wanted:
        entries += _orders(session, customer_id, window)
    if "network_event" in wanted:
        entries += _events(session, customer_id, window)
    if "posting" in wanted:
        entries += _postings(session, customer_id, window, show_pii, accounts)
    if "payout" in wanted:
        entries += _payouts(session, customer_id, window, show_pii)
    if "attempt" in wanted:
        entries += _attempts(session, customer_id, window, show_pii)
    if "claim" in wanted:
        entries += _claims(session, customer_id, window)
    if "audit" in wanted:
        entries += _audit(session, customer, window, show_pii, accounts)
    if "account" in wanted:
        user = session.get(User, customer.user_id) if customer.user_id is not None else None
        entries += _account(customer, user, until, since)
        from portal.services import referrals  # referred by / referred customers

        entries += referrals.timeline_entries(session, customer, until, since, limit)
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    page, next_until = _cut(entries, limit)
    return Timeline(summary(session, customer, show_pii=show_pii), page, next_until)


def _cut(entries: list[TimelineEntry], limit: int) -> tuple[list[TimelineEntry], dt.datetime | None]:
    """The first ``limit`` entries and the next page's cursor, never splitting a timestamp.

    Entries sharing the first left-out entry's timestamp move to the next page (the cursor
    is inclusive).  When a whole page shares one timestamp, the page keeps them all and the
    cursor moves one microsecond back (each source fetched ``limit + 1`` rows, so the rare
    overflow beyond that at one instant is the only thing a reader could miss).
    """
    if len(entries) <= limit:
        return entries, None
    boundary = entries[limit].at
    page = [e for e in entries[:limit] if e.at != boundary]
    if page:
        return page, boundary
    page = [e for e in entries if e.at == boundary]
    return page, boundary - dt.timedelta(microseconds=1)
