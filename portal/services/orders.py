"""Network events, orders and the cashback they earn.

An event (postback or reconciliation line) is stored once per (network, event id) and
applied to its order:

* the order's status only moves forward: ``paid`` → ``confirmed`` → ``cancelled``
  (``paid`` → ``cancelled`` too); a late ``paid`` after ``confirmed`` changes nothing;
* ``refunded`` events carry the cumulative refunded amount: the largest one seen wins;
* amount corrections come with any event newer than the order's last one.

After every change ``sync_cashback`` compares what the ledger holds for the order
(``booked_in``, ``booked_cashback``, ``booked_from_promo``) with what it should hold, and
posts the difference as ONE posting referenced by the event:

* where: none (orphan, cancelled), ``pending`` (paid) or ``available`` (confirmed);
* how much: ``cashback_for`` — the paid amount less refunds × the rate frozen at the
  click, capped by the promo's cap, never above our (pro-rated) network commission
  unless the promo pays the difference (that part comes from ``promo_expense``).

Taking cashback back from ``available`` beyond what the customer still has (they may
have withdrawn it) books the rest to the customer's ``receivable``; new available
cashback first nets an open receivable.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal import observability
from portal.errors import Conflict, Invalid, NotFound
from portal.i18n import _l
from portal.models import Click, Customer, NetworkEvent, Order, Promo
from portal.models.types import to_micros, utcnow
from portal.services import audit, fx, ledger
from portal.services.db import insert_or_ignore
from portal.services.audit import Actor
from portal.services.ledger import Leg, customer_account, system_account
from portal.services.money import cashback_amount, is_ledger_exact, quantize_ledger

STATUSES = ("paid", "confirmed", "cancelled", "refunded")
#: How far along an order is; events never move it back.
RANK = {"paid": 1, "confirmed": 2, "cancelled": 3}
WHERE = {"paid": "pending", "confirmed": "available", "cancelled": "none"}
MAX_AMOUNT = Decimal("10000000")
#: Who applies the network's events (postings and audit say so).
NETWORK_ACTOR = Actor.system("network")


class EventConflict(Conflict):
    code = "event_conflict"
    default_message = _l("This event id was already received with different data.")


# --- the event -------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderEvent:
    """One event about one order, as the network reports it.

    :ivar network: network code (``epn``)
    :ivar event_id: the network's id of this event; (network, event_id) is unique
    :ivar network_order_id: the network's order number
    :ivar sub_id: our click's sub-id as the network saw it (may be unknown to us)
    :ivar status: paid, confirmed, cancelled or refunded
    :ivar amount: order amount in ``currency`` (USD or RUB)
    :ivar commission: our commission from the network, in ``currency``
    :ivar refunded_amount: cumulative refunded amount (``refunded`` events), in ``currency``
    :ivar event_time: when it happened at the network (aware, UTC)
    :ivar channel: web or app, where the order was paid
    :ivar coupon_used / items_in_cart_before_click: flags the network reports
    :ivar source: postback or reconciliation
    """

    network: str
    event_id: str
    network_order_id: str
    sub_id: str
    status: str
    amount: Decimal
    currency: str
    commission: Decimal
    event_time: dt.datetime
    refunded_amount: Decimal | None = None
    channel: str | None = None
    coupon_used: bool = False
    items_in_cart_before_click: bool = False
    source: str = "postback"

    def digest(self) -> str:
        """sha256 of the event's fields as text (not ``source``): stored with it, compared on a replay."""
        data = {k: (None if (v := getattr(self, k)) is None else str(v)) for k in _DIGESTED}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


#: The fields ``OrderEvent.digest`` covers (every one but ``source``).
_DIGESTED = tuple(f.name for f in fields(OrderEvent) if f.name != "source")


def _field_error(field: str, message) -> dict:
    return {"field": field, "code": "invalid", "message": message}


def _text(body: Mapping, field: str, errors: list, *, required: bool = True, limit: int = 120) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            errors.append(_field_error(field, _l("This field is required.")))
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > limit:
        errors.append(_field_error(field, _l("Expected text of at most %(limit)s characters.", limit=limit)))
        return ""
    return str(value)


def _amount(body: Mapping, field: str, errors: list, *, required: bool = True) -> Decimal | None:
    value = body.get(field)
    if value is None:
        if required:
            errors.append(_field_error(field, _l("This field is required.")))
        return None
    try:
        if isinstance(value, bool) or isinstance(value, float):
            raise InvalidOperation
        amount = Decimal(str(value))
    except InvalidOperation:
        errors.append(_field_error(field, _l("Expected a decimal amount such as \"12.50\".")))
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT or not is_ledger_exact(amount):
        errors.append(_field_error(field, _l("The amount must be between 0 and 10,000,000 with at most "
                                             "6 decimal places.")))
        return None
    return amount


def _flag(body: Mapping, field: str, errors: list) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        errors.append(_field_error(field, _l("Expected true or false.")))
        return False
    return value


def _time(body: Mapping, field: str, errors: list) -> dt.datetime | None:
    value = body.get(field)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        errors.append(_field_error(field, _l("Expected an ISO 8601 time such as 2026-11-25T10:00:00Z.")))
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def parse_event(body: Any, network: str, source: str = "postback") -> OrderEvent:
    """Validate a postback body (a JSON object) into an ``OrderEvent``; ``Invalid`` lists every problem."""
    if not isinstance(body, Mapping):
        raise Invalid(_l("The body must be a JSON object."), code="malformed_body")
    errors: list[dict] = []
    event_id = _text(body, "event_id", errors)
    order_id = _text(body, "order_id", errors, limit=80)
    sub_id = _text(body, "sub_id", errors, required=False, limit=200)
    status = body.get("status")
    if status not in STATUSES:
        errors.append(_field_error("status", _l("Expected paid, confirmed, cancelled or refunded.")))
    amount = _amount(body, "order_amount", errors)
    commission = _amount(body, "commission", errors)
    refunded = _amount(body, "refunded_amount", errors, required=status == "refunded")
    currency = body.get("currency")
    if currency not in ("USD", "RUB"):
        errors.append(_field_error("currency", _l("Expected USD or RUB.")))
    channel = body.get("channel")
    if channel not in (None, "web", "app"):
        errors.append(_field_error("channel", _l("Expected web or app.")))
    event_time = _time(body, "event_time", errors)
    coupon = _flag(body, "coupon_used", errors)
    in_cart = _flag(body, "items_in_cart_before_click", errors)
    if amount is not None and refunded is not None and refunded > amount:
        errors.append(_field_error("refunded_amount", _l("The refunded amount exceeds the order amount.")))
    if errors:
        raise Invalid(_l("The event is not valid."), code="invalid_event", errors=errors)
    return OrderEvent(network=network, event_id=event_id, network_order_id=order_id, sub_id=sub_id,
                      status=status, amount=amount, currency=currency, commission=commission,
                      event_time=event_time, refunded_amount=refunded, channel=channel,
                      coupon_used=coupon, items_in_cart_before_click=in_cart, source=source)


# --- cashback ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Cashback:
    total: Decimal
    #: the part paid by us beyond the network's commission (promo_expense)
    from_promo: Decimal


def cashback_for(order: Order, promo: Promo | None) -> Cashback:
    """The cashback an order earns now (see the module docstring)."""
    zero = Decimal("0.000000")
    paid = order.amount_usd - order.refunded_usd
    if paid <= 0 or order.amount_usd <= 0:
        return Cashback(zero, zero)
    total = cashback_amount(paid, order.rate)
    if promo is not None and promo.cap_usd is not None:
        total = min(total, promo.cap_usd)
    commission = quantize_ledger(order.commission_usd * paid / order.amount_usd)
    if total <= commission:
        return Cashback(total, zero)
    if promo is not None and promo.pays_difference:
        return Cashback(total, total - commission)
    return Cashback(commission, zero)


def _target(order: Order) -> tuple[str, Cashback]:
    if order.customer_id is None or order.status == "cancelled":
        return "none", Cashback(Decimal(0), Decimal(0))
    return WHERE[order.status], cashback_for(order, order.promo)


def sync_cashback(session: Session, order: Order, *, reference: str, actor: Actor) -> ledger.PostResult | None:
    """Post the difference between what the ledger holds for ``order`` and what it should."""
    where, want = _target(order)
    had_where, had_total, had_promo = order.booked_in, order.booked_cashback, order.booked_from_promo
    if (where, want.total, want.from_promo) == (had_where, had_total, had_promo):
        return None
    cid = order.customer_id  # never None here: an orphan's target and booking are both "none"
    referrer_id = session.get(Customer, cid).referred_by_id  # loaded once: sync_reward reads it again
    if referrer_id is not None:  # this transaction may post for both: lock both before any system row
        ledger.lock_customers(session, (cid, referrer_id))
    delta = {"pending": Decimal(0), "available": Decimal(0), "receivable": Decimal(0)}
    if had_where != "none":
        delta[had_where] -= had_total
    if where != "none":
        delta[where] += want.total
    if delta["available"]:
        current = ledger.customer_balances(session, cid, lock=True)
        if delta["available"] < 0 and current["available"] + delta["available"] < 0:
            shortfall = -(current["available"] + delta["available"])
            delta["available"] += shortfall
            delta["receivable"] = -shortfall  # debit: owed by the customer, netted later
        elif delta["available"] > 0 and current["receivable"] > 0:
            net = min(current["receivable"], delta["available"])
            delta["available"] -= net
            delta["receivable"] = net  # credit: pays the open receivable back
    legs = [Leg(customer_account(cid, k), v) for k, v in delta.items() if v]
    network_delta = (want.total - want.from_promo) - (had_total - had_promo)
    promo_delta = want.from_promo - had_promo
    if network_delta:
        legs.append(Leg(system_account("network_receivable"), -network_delta))
    if promo_delta:
        legs.append(Leg(system_account("promo_expense"), -promo_delta))
    result = None
    if len(legs) >= 2:
        kind = "cashback." + (where if where != "none" else "reversed")
        result = ledger.post(session, kind=kind, reference=reference, legs=legs, actor=actor,
                             memo=f"order {order.network}:{order.network_order_id}")
    order.booked_in, order.booked_cashback, order.booked_from_promo = where, want.total, want.from_promo
    from portal.services import referrals  # the referrer's reward follows this cashback (same transaction)

    referrals.sync_reward(session, order, reference=reference, actor=actor,
                          previous_available=had_total if had_where == "available" else Decimal(0))
    return result


# --- applying events --------------------------------------------------------------------

@dataclass(frozen=True)
class EventOutcome:
    event_row_id: int
    #: applied, stale (nothing moved), orphan (order kept for Support), duplicate (replay)
    outcome: str
    order_id: int | None
    duplicate: bool = False
    #: the kind of the posting this event created on the server-side path (else None)
    posting_kind: str | None = None


def _to_usd(session: Session, amount: Decimal | None, event: OrderEvent) -> Decimal | None:
    if amount is None or event.currency == "USD":
        return amount
    return fx.rub_to_usd(session, amount, event.event_time.date())


def _insert_event(session: Session, event: OrderEvent) -> int | None:
    table = NetworkEvent.__table__
    values = dict(network=event.network, event_id=event.event_id, source=event.source,
                  network_order_id=event.network_order_id, sub_id=event.sub_id, status=event.status,
                  amount=event.amount, currency=event.currency, commission=event.commission,
                  refunded_amount=event.refunded_amount, event_time=event.event_time, channel=event.channel,
                  coupon_used=event.coupon_used, items_in_cart_before_click=event.items_in_cart_before_click,
                  digest=event.digest(), outcome="applied", received_at=utcnow())
    return session.execute(
        insert_or_ignore(session, table).values(**values)
        .on_conflict_do_nothing(index_elements=["network", "event_id"]).returning(table.c.id)
    ).scalar_one_or_none()


def _lock_or_create_order(session: Session, event: OrderEvent, amount_usd: Decimal, commission_usd: Decimal,
                          default_rate: Decimal) -> tuple[Order, bool]:
    click = session.execute(sa.select(Click).where(Click.sub_id == event.sub_id)).scalar_one_or_none() \
        if event.sub_id else None
    table = Order.__table__
    now = utcnow()
    new_id = session.execute(
        insert_or_ignore(session, table).values(
            network=event.network, network_order_id=event.network_order_id, sub_id=event.sub_id,
            click_id=click.id if click else None, customer_id=click.customer_id if click else None,
            status=event.status if event.status in RANK else "paid",
            amount_usd=amount_usd, refunded_usd=Decimal(0), commission_usd=commission_usd,
            reported_amount=event.amount, reported_currency=event.currency,
            rate=click.rate if click else default_rate, promo_id=click.promo_id if click else None,
            channel=event.channel, coupon_used=event.coupon_used,
            items_in_cart_before_click=event.items_in_cart_before_click,
            booked_in="none", booked_cashback=Decimal(0), booked_from_promo=Decimal(0),
            last_event_at=event.event_time, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["network", "network_order_id"]).returning(table.c.id)
    ).scalar_one_or_none()
    order = session.execute(
        sa.select(Order).where(Order.network == event.network, Order.network_order_id == event.network_order_id)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    return order, new_id is not None


def _apply(order: Order, event: OrderEvent, created: bool, amount_usd: Decimal, commission_usd: Decimal,
           refunded_usd: Decimal | None) -> bool:
    """Move the order forward with the event; True when anything changed."""
    changed = created
    if not created and event.event_time >= (order.last_event_at or event.event_time):
        if (order.amount_usd, order.commission_usd) != (amount_usd, commission_usd):
            order.amount_usd, order.commission_usd = amount_usd, commission_usd
            order.reported_amount, order.reported_currency = event.amount, event.currency
            changed = True
        order.last_event_at = event.event_time
    if event.channel and not order.channel:
        order.channel = event.channel
    if event.coupon_used and not order.coupon_used:
        order.coupon_used = changed = True
    if event.items_in_cart_before_click and not order.items_in_cart_before_click:
        order.items_in_cart_before_click = changed = True
    if refunded_usd is not None and refunded_usd > order.refunded_usd:
        order.refunded_usd = min(refunded_usd, order.amount_usd)
        changed = True
    if event.status in RANK and RANK[event.status] > RANK[order.status]:
        order.status = event.status
        changed = True
    stamp = {"paid": "paid_at", "confirmed": "confirmed_at", "cancelled": "cancelled_at"}.get(event.status)
    if stamp and getattr(order, stamp) is None:
        setattr(order, stamp, event.event_time)
    if order.paid_at is None and order.status in ("confirmed", "cancelled"):
        order.paid_at = event.event_time
    return changed


def receive_event(session: Session, event: OrderEvent, *, default_rate: Decimal,
                  actor: Actor = NETWORK_ACTOR, server_side: bool = True) -> EventOutcome:
    """Store the event once and apply it to its order (the caller commits).

    On PostgreSQL the whole of it runs server-side in one call of ``apply_order_event()``
    (migrations 0017, 0018), which hands back what it does not do (a referred customer, an RUB day
    without a rate, a posting the ledger refuses); then, as on SQLite, the steps run here.
    ``server_side=False``: straight to those steps (the caller saw the function hand it back).
    """
    if server_side and session.get_bind().dialect.name == "postgresql":
        outcome = _receive_postgres(session, event, default_rate, actor)
        if outcome is not None:
            return outcome
    return _receive_python(session, event, default_rate=default_rate, actor=actor)


#: One event in one round trip (migrations 0017, 0018), on the session's own DBAPI connection (same
#: transaction; psycopg prepares it after a few calls), as ``ledger._post_postgres`` does.
_PG_APPLY = (
    "SELECT event_row_id, outcome, order_id, duplicate, conflict, fallback, posting_kind, posting_created"
    " FROM apply_order_event(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def apply_on_connection(dbapi_connection, event: OrderEvent, default_rate: Decimal, actor: Actor,
                        hot_shards: int) -> EventOutcome | None:
    """``apply_order_event()`` on a DBAPI connection (psycopg), in its open transaction; None when
    the function handed the event back (the caller takes the Python path).  Raises
    ``EventConflict`` for a replay with other data.  A created posting's kind is in
    ``EventOutcome.posting_kind`` (for the metric, counted by the caller on commit)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_PG_APPLY, (
            event.network, event.event_id, event.source, event.network_order_id, event.sub_id, event.status,
            to_micros(event.amount), event.currency, to_micros(event.commission),
            None if event.refunded_amount is None else to_micros(event.refunded_amount),
            event.event_time, event.channel, event.coupon_used, event.items_in_cart_before_click,
            event.digest(), to_micros(default_rate), actor.label, utcnow(), hot_shards,
        ))
        row_id, outcome, order_id, duplicate, conflict, fallback, posting_kind, posting_created = cursor.fetchone()
    finally:
        cursor.close()
    if conflict:
        raise EventConflict(event_id=event.event_id)
    if fallback:
        return None
    return EventOutcome(row_id, outcome, order_id, duplicate=duplicate,
                        posting_kind=posting_kind if posting_created else None)


def _receive_postgres(session: Session, event: OrderEvent, default_rate: Decimal,
                      actor: Actor) -> EventOutcome | None:
    """:func:`apply_on_connection` on the session's connection and transaction."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # the function reads what this transaction wrote
    outcome = apply_on_connection(session.connection().connection, event, default_rate, actor, ledger.hot_shards())
    if outcome is None:
        return None
    if outcome.posting_kind:
        observability.count_on_commit(session, observability.LEDGER_POSTINGS, kind=outcome.posting_kind)
    if session.identity_map:  # rows changed behind the ORM's back: reload what it holds
        session.expire_all()
    return outcome


def _receive_python(session: Session, event: OrderEvent, *, default_rate: Decimal, actor: Actor) -> EventOutcome:
    """``receive_event``'s steps, statement by statement (SQLite, and what the function hands back)."""
    event_row_id = _insert_event(session, event)
    if event_row_id is None:
        row = session.execute(sa.select(NetworkEvent).where(
            NetworkEvent.network == event.network, NetworkEvent.event_id == event.event_id)).scalar_one()
        if row.digest != event.digest():
            raise EventConflict(event_id=event.event_id)
        return EventOutcome(row.id, row.outcome, row.order_id, duplicate=True)

    amount_usd = _to_usd(session, event.amount, event)
    commission_usd = _to_usd(session, event.commission, event)
    refunded_usd = _to_usd(session, event.refunded_amount, event)
    order, created = _lock_or_create_order(session, event, amount_usd, commission_usd, default_rate)
    changed = _apply(order, event, created, amount_usd, commission_usd, refunded_usd)
    if order.customer_id is None:
        outcome = "orphan"
    else:
        outcome = "applied" if changed else "stale"
    sync_cashback(session, order, reference=f"event:{event.network}:{event.event_id}", actor=actor)
    session.execute(sa.update(NetworkEvent).where(NetworkEvent.id == event_row_id)
                    .values(outcome=outcome, order_id=order.id))
    return EventOutcome(event_row_id, outcome, order.id)


class AttachFourEyes(Conflict):
    code = "four_eyes"
    default_message = _l("You proposed this attachment: another person (Finance) confirms it.")


def _lock_orphan(session: Session, order_id: int) -> Order:
    order = session.execute(sa.select(Order).where(Order.id == order_id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if order is None:
        raise NotFound()
    if order.customer_id is not None:
        raise Conflict(_l("This order already belongs to a customer."), code="not_orphan")
    return order


def propose_attach(session: Session, order_id: int, customer_id: int, *, actor: Actor, reason: str) -> Order:
    """Support proposes the customer of an orphan order; nothing is booked until Finance
    confirms (:func:`decide_attach`, four eyes).  Audited; one open proposal per order."""
    if not reason or not reason.strip():
        raise Invalid(_l("Say why the order belongs to this customer."), code="reason_required")
    order = _lock_orphan(session, order_id)
    if order.attach_proposed_at is not None:
        raise Conflict(_l("An attachment of this order is already waiting for Finance."), code="attach_proposed")
    if session.get(Customer, customer_id) is None:
        raise NotFound(_l("No such customer."), code="unknown_customer")
    order.attach_customer_id, order.attach_reason = customer_id, reason.strip()
    order.attach_proposed_by, order.attach_proposed_at = actor.label[:120], utcnow()
    audit.record(session, actor, "order.orphan.attach_proposed", "order", order.id, reason=reason.strip(),
                 after={"customer_id": customer_id, "status": order.status, "amount_usd": order.amount_usd})
    return order


def proposed_attachments(session: Session, limit: int = 500) -> list[Order]:
    """Orphan orders with a proposed customer, waiting for Finance (oldest first)."""
    return list(session.execute(sa.select(Order).where(Order.customer_id.is_(None),
                                                       Order.attach_proposed_at.is_not(None))
                                .order_by(Order.attach_proposed_at, Order.id).limit(limit)).scalars())


def decide_attach(session: Session, order_id: int, *, approve: bool, actor: Actor, note: str | None = None) -> Order:
    """Finance confirms (the order becomes the customer's and its cashback is booked) or rejects
    (the proposal is dropped; Support may propose again) a proposed attachment; audited.

    Four eyes: the proposer never decides.
    """
    note = (note or "").strip()
    if not approve and not note:
        raise Invalid(_l("Say why."), code="reason_required")
    order = _lock_orphan(session, order_id)
    if order.attach_proposed_at is None:
        raise Conflict(_l("Nobody proposed a customer for this order."), code="no_proposal")
    if order.attach_proposed_by == actor.label[:120]:
        raise AttachFourEyes()
    proposed = {"customer_id": order.attach_customer_id, "proposed_by": order.attach_proposed_by}
    if not approve:
        order.attach_customer_id = order.attach_proposed_by = order.attach_proposed_at = order.attach_reason = None
        audit.record(session, actor, "order.orphan.attach_rejected", "order", order.id, reason=note,
                     before=proposed)
        return order
    order.customer_id = order.attach_customer_id
    order.attach_confirmed_by, order.attach_confirmed_at = actor.label[:120], utcnow()
    sync_cashback(session, order, reference=f"order:{order.id}:attach", actor=actor)
    audit.record(session, actor, "order.orphan.attached", "order", order.id, reason=note or order.attach_reason,
                 before={"customer_id": None, **proposed},
                 after={"customer_id": order.customer_id, "booked_in": order.booked_in,
                        "cashback": order.booked_cashback})
    return order
