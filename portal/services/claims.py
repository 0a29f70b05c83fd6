"""Missing-cashback claims: open, diagnose automatically, reply, resolve; manual credits (four eyes).

States
------
``open`` → ``diagnosed`` (the automatic checks, run on open) → ``resolved_credit`` |
``resolved_rejected`` | ``escalated`` (to the network) → ``resolved_credit`` |
``resolved_rejected``.  Each transition is a function here that locks the claim
(``SELECT … FOR UPDATE``), re-checks its state, changes it, writes an audit record in the
same transaction, or raises a ``DomainError`` (nothing changed).  The caller commits.

SLA: a claim may stay in a state ``CLAIM_SLA_HOURS[state]`` hours (config: open 1 h,
diagnosed 24 h, escalated 14 days); ``breaching(…, now=…)`` lists the ones over it.

Diagnosis and its precedence
----------------------------
The diagnosis reads only our own rows (the customer's clicks and their visits, the
network's orders and events with the claimed order number) and gives ONE reason code, the
first that holds, in this order (the evidence JSON lists what was looked at either way):

When the network reported the order **for this customer** (our click's sub-id):

1. ``cancelled_or_refunded`` — the order is cancelled or (partly) refunded: show the event;
2. ``credited`` — its cashback is on the available balance: nothing is missing;
3. ``awaiting_confirmation`` — paid, cashback pending: explain the wait;
4. ``foreign_coupon`` / ``cart_before_click`` — no cashback because the network flagged
   the order (a coupon of another service; items in the cart before the click);
5. otherwise ``awaiting_confirmation`` (paid) or ``credited``.

Otherwise (unknown to us, an orphan, or reported under another sub-id) the cause is on
the way from our click to the network, the customer's side first:

6. ``no_click`` — no click of the customer in ``CLAIM_CLICK_LOOKBACK_DAYS`` before the order
   and none after it;
7. ``click_after_order`` — clicks, but only after the order was paid (when only the
   claimed date is known: only on later days);
8. ``foreign_coupon`` — the network's event says a coupon/bonus programme was used;
9. ``cart_before_click`` — the network's event says the items were in the cart before;
10. ``channel_mismatch`` — the order was paid in the app after a browser click;
11. ``click_spam`` — ``CLICK_SPAM_THRESHOLD`` or more clicks within
    ``CLICK_REPEAT_WINDOW_MINUTES`` before the order (``customer_views.is_spam``);
12. ``not_reported`` — our click is there but the network reported the order under another
    sub-id or not at all (an extension replacing our link, an ad blocker).

Network facts (flags) come before our own inferences (channel, spam), and both before the
catch-all ``not_reported``.

Manual credits
--------------
Support proposes a credit (USD, reason) for a diagnosed or escalated claim; Finance
approves or rejects it.  The approver must not be the proposer.  Approval posts
``adjustments → customer available`` through the ledger with the reference
``claim:<id>:credit`` — a second approval finds the credit approved and is refused, and
even a replayed posting moves nothing — and resolves the claim as ``resolved_credit``.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.errors import Conflict, Invalid, NotFound
from portal.i18n import _l
from portal.labels import ENUMS
from portal.models import AuditRecord, Claim, ClaimCredit, Click, ClickVisit, Customer, NetworkEvent, Order
from portal.models.types import utcnow
from portal.services import audit, ledger
from portal.services.audit import Actor
from portal.services.customer_views import BOOKED_IN_LABELS, ORDER_STATUS_LABELS, is_spam, label

STATES = ("open", "diagnosed", "escalated", "resolved_credit", "resolved_rejected")
RESOLVED = ("resolved_credit", "resolved_rejected")
#: Reason codes, in the order of ``DIAGNOSIS`` precedence (see the module docstring).
REASONS = ("cancelled_or_refunded", "credited", "awaiting_confirmation", "no_click", "click_after_order",
           "foreign_coupon", "cart_before_click", "channel_mismatch", "click_spam", "not_reported")
CREDIT_STATES = ("proposed", "approved", "rejected")
CHANNELS = ("web", "api", "staff")
BROWSER_CHANNELS = ("web", "extension")

STATE_LABELS = ENUMS["claim_state"]
REASON_LABELS = ENUMS["claim_reason"]
CREDIT_STATE_LABELS = ENUMS["credit_state"]

DEFAULT_SLA_HOURS = {"open": 1, "diagnosed": 24, "escalated": 336}
DEFAULT_SCREENSHOT_MAX_BYTES = 2 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
_ORDER_NUMBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_AMOUNT_RE = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
MAX_REPLY = 5000
MAX_REASON = 2000
MAX_CREDIT_USD = Decimal("1000.00")


# --- errors -------------------------------------------------------------------------------------

class ClaimNotFound(NotFound):
    code = "claim_not_found"
    default_message = _l("No such claim.")


class CreditNotFound(NotFound):
    code = "credit_not_found"
    default_message = _l("No such credit.")


class ClaimStateError(Conflict):
    code = "claim_state"
    default_message = _l("The claim is not in a state that allows this.")


class ClaimExists(Conflict):
    code = "claim_exists"
    default_message = _l("There is already an open claim for this order.")


class FourEyes(Conflict):
    code = "four_eyes"
    default_message = _l("A credit must be approved by someone other than the person who proposed it.")


def _field_error(field_name: str, message: Any, code: str = "invalid") -> dict:
    return {"field": field_name, "code": code, "message": message}


def _raise(errors: list[dict]) -> None:
    if errors:
        first = errors[0]
        raise Invalid(first["message"] if len(errors) == 1 else _l("Some fields are not valid."),
                      code=first["code"] if len(errors) == 1 else "invalid", errors=errors)


# --- input --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimInput:
    order_number: str
    order_date: dt.date
    amount_usd: Decimal | None = None
    screenshot: bytes | None = None
    screenshot_type: str | None = None


def screenshot_type(data: bytes, max_bytes: int = DEFAULT_SCREENSHOT_MAX_BYTES) -> str:
    """``image/png`` or ``image/jpeg`` by the file's magic bytes; ``Invalid`` for anything else."""
    if not data:
        raise Invalid(_l("The screenshot is empty."), code="screenshot_empty",
                      errors=[_field_error("screenshot", _l("The screenshot is empty."), "screenshot_empty")])
    if len(data) > max_bytes:
        message = _l("The screenshot is too large: at most %(size)s MB.", size=round(max_bytes / 1024 / 1024, 1))
        raise Invalid(message, code="screenshot_too_large",
                      errors=[_field_error("screenshot", message, "screenshot_too_large")])
    if data.startswith(PNG_MAGIC):
        return "image/png"
    if data.startswith(JPEG_MAGIC):
        return "image/jpeg"
    message = _l("The screenshot must be a PNG or JPEG image.")
    raise Invalid(message, code="screenshot_type", errors=[_field_error("screenshot", message, "screenshot_type")])


def parse_amount(raw: Any, field_name: str, errors: list[dict], *, required: bool) -> Decimal | None:
    """Dollars and cents as typed (``12``, ``12.5``, ``12.50``), positive."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            errors.append(_field_error(field_name, _l("Enter the amount in USD, e.g. 12.50.")))
        return None
    text = raw.strip().replace(",", ".") if isinstance(raw, str) else None
    if text is None or not _AMOUNT_RE.match(text) or Decimal(text) <= 0:
        errors.append(_field_error(field_name, _l("Enter a positive amount in USD with at most 2 decimals, "
                                                  "e.g. 12.50.")))
        return None
    return Decimal(text)


#: No order is older than the network (AliExpress opened in 2010).
EARLIEST_ORDER_DATE = dt.date(2010, 1, 1)


def parse_claim(data: Mapping[str, Any], *, now: dt.datetime, screenshot: bytes | None = None,
                max_screenshot: int = DEFAULT_SCREENSHOT_MAX_BYTES) -> ClaimInput:
    """Validate a claim's fields (text as typed or JSON values); ``Invalid`` lists every problem.

    ``screenshot`` are the raw bytes (a form upload); a JSON body may instead carry
    ``screenshot`` as base64.
    """
    errors: list[dict] = []
    number = data.get("order_number")
    number = number.strip() if isinstance(number, str) else (str(number) if isinstance(number, int)
                                                            and not isinstance(number, bool) else "")
    if not number:
        errors.append(_field_error("order_number", _l("Enter the order number.")))
    elif not _ORDER_NUMBER_RE.match(number):
        errors.append(_field_error("order_number", _l("The order number has letters, digits and dashes only "
                                                      "(at most 80).")))
    raw_date = data.get("order_date")
    order_date = None
    if isinstance(raw_date, dt.date):
        order_date = raw_date
    elif isinstance(raw_date, str) and raw_date.strip():
        try:
            order_date = dt.date.fromisoformat(raw_date.strip())
        except ValueError:
            errors.append(_field_error("order_date", _l("Enter the order date as YYYY-MM-DD.")))
    else:
        errors.append(_field_error("order_date", _l("Enter the order date.")))
    if order_date is not None and order_date > now.date():
        errors.append(_field_error("order_date", _l("The order date cannot be in the future.")))
        order_date = None
    elif order_date is not None and order_date < EARLIEST_ORDER_DATE:  # 0001-01-01 overflowed the diagnosis
        errors.append(_field_error("order_date", _l("Enter the order date as YYYY-MM-DD.")))
        order_date = None
    amount = parse_amount(data.get("amount_usd"), "amount_usd", errors, required=False)
    kind = None
    if screenshot is None and data.get("screenshot"):
        raw = data.get("screenshot")
        try:
            screenshot = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            screenshot = None
        if screenshot is None:
            errors.append(_field_error("screenshot", _l("Send the screenshot as base64."), "screenshot_encoding"))
    if screenshot:
        try:
            kind = screenshot_type(screenshot, max_screenshot)
        except Invalid as err:
            errors.extend(err.errors)
            screenshot = None
    else:
        screenshot = None
    _raise(errors)
    return ClaimInput(number, order_date, amount, screenshot, kind)


# --- diagnosis ----------------------------------------------------------------------------------

@dataclass
class Diagnosis:
    reason_code: str
    #: JSON: what was looked at, the relevant ids and times.
    evidence: dict[str, Any]
    #: Values for the reply's placeholders (Python objects).
    facts: dict[str, Any] = field(default_factory=dict)


#: Clicks up to this many days after the order are looked at too (``click_after_order``).
CLICKS_AFTER_DAYS = 7


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _click_json(click: Click, visits: Sequence[ClickVisit]) -> dict[str, Any]:
    return {"id": click.id, "sub_id": click.sub_id, "channel": click.channel, "created_at": _iso(click.created_at),
            "repeat_count": click.repeat_count, "product_id": click.product_id,
            "visits": [{"id": v.id, "at": _iso(v.visited_at), "channel": v.channel} for v in visits]}


def _order_json(order: Order) -> dict[str, Any]:
    return {"id": order.id, "network": order.network, "network_order_id": order.network_order_id,
            "sub_id": order.sub_id, "click_id": order.click_id, "customer_id": order.customer_id,
            "status": order.status, "channel": order.channel, "amount_usd": str(order.amount_usd),
            "refunded_usd": str(order.refunded_usd), "booked_in": order.booked_in,
            "booked_cashback": str(order.booked_cashback), "coupon_used": order.coupon_used,
            "items_in_cart_before_click": order.items_in_cart_before_click, "paid_at": _iso(order.paid_at),
            "confirmed_at": _iso(order.confirmed_at), "cancelled_at": _iso(order.cancelled_at)}


def _event_json(event: NetworkEvent) -> dict[str, Any]:
    return {"id": event.id, "event_id": event.event_id, "status": event.status, "sub_id": event.sub_id,
            "event_time": _iso(event.event_time), "channel": event.channel, "coupon_used": event.coupon_used,
            "items_in_cart_before_click": event.items_in_cart_before_click, "outcome": event.outcome,
            "order_id": event.order_id}


def diagnose_order(session: Session, customer_id: int, order_number: str, order_date: dt.date,
                   config: Mapping[str, Any]) -> Diagnosis:
    """The verdict on one claimed order from our own data (reads only; see the module docstring)."""
    orders = session.execute(sa.select(Order).where(Order.network_order_id == order_number)
                             .order_by(Order.id)).scalars().all()
    own = next((o for o in orders if o.customer_id == customer_id), None)
    order = own or (orders[0] if orders else None)
    events = session.execute(sa.select(NetworkEvent).where(NetworkEvent.network_order_id == order_number)
                             .order_by(NetworkEvent.event_time, NetworkEvent.id)).scalars().all()
    paid_events = [e for e in events if e.status == "paid"]
    # when the order was paid: the network's time when known, else the end of the claimed day
    if order is not None and order.paid_at is not None:
        order_time, time_source = order.paid_at, "order"
    elif paid_events:
        order_time, time_source = paid_events[0].event_time, "event"
    elif events:
        order_time, time_source = events[0].event_time, "event"
    else:
        order_time = dt.datetime.combine(order_date, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
        time_source = "claim_date"
    lookback = dt.timedelta(days=int(config.get("CLAIM_CLICK_LOOKBACK_DAYS", 30)))
    clicks = session.execute(
        sa.select(Click).where(Click.customer_id == customer_id, Click.created_at >= order_time - lookback,
                               Click.created_at <= order_time + dt.timedelta(days=CLICKS_AFTER_DAYS))
        .order_by(Click.created_at, Click.id).limit(200)).scalars().all()
    visits: dict[int, list[ClickVisit]] = {c.id: [] for c in clicks}
    if clicks:
        for visit in session.execute(sa.select(ClickVisit).where(ClickVisit.click_id.in_(list(visits)))
                                     .order_by(ClickVisit.visited_at)).scalars():
            visits[visit.click_id].append(visit)

    def before(click: Click) -> bool:
        if time_source == "claim_date":  # only a date: a click that day gets the benefit of the doubt
            return click.created_at.date() <= order_date
        return click.created_at <= order_time

    clicks_before = [c for c in clicks if before(c)]
    clicks_after = [c for c in clicks if not before(c)]
    last_click = clicks_before[-1] if clicks_before else None
    if own is not None and own.click_id is not None:
        last_click = next((c for c in clicks if c.id == own.click_id), None) or session.get(Click, own.click_id)
    evidence: dict[str, Any] = {
        "checked": ["orders", "network_events", "clicks", "click_visits"],
        "order_number": order_number,
        "claimed_order_date": order_date.isoformat(),
        "order_time": _iso(order_time), "order_time_source": time_source,
        "lookback_days": lookback.days,
        "orders": [_order_json(o) for o in orders],
        "events": [_event_json(e) for e in events],
        "clicks_before": [_click_json(c, visits.get(c.id, [])) for c in clicks_before][-20:],
        "clicks_after": [_click_json(c, visits.get(c.id, [])) for c in clicks_after][:20],
        "relevant": {},
    }
    facts: dict[str, Any] = {"order_time": order_time if time_source != "claim_date" else None}
    relevant = evidence["relevant"]

    def verdict(code: str, **more: Any) -> Diagnosis:
        relevant.update({k: v for k, v in more.items() if k.endswith("_id") or k.endswith("_ids")})
        evidence["rule"] = code
        facts.update(more)
        return Diagnosis(code, evidence, facts)

    if order is not None:
        relevant["order_id"] = order.id
        facts.update(cashback=order.booked_cashback, paid_at=order.paid_at, confirmed_at=order.confirmed_at)
    if last_click is not None:
        relevant["click_id"] = last_click.id
        facts["click_time"] = last_click.created_at

    # --- the network reported it for this customer -------------------------------------------
    if own is not None:
        refunds = [e for e in events if e.order_id == own.id and e.status in ("cancelled", "refunded")]
        if own.status == "cancelled" or own.refunded_usd > 0:
            shown = refunds[-1] if refunds else None
            return verdict("cancelled_or_refunded", event_id=shown.id if shown else None,
                           status=("cancelled" if own.status == "cancelled" else "refunded"),
                           event_time=shown.event_time if shown else (own.cancelled_at or own.last_event_at))
        if own.booked_in == "available" and own.booked_cashback > 0:
            return verdict("credited")
        if own.booked_in == "pending" and own.booked_cashback > 0:
            return verdict("awaiting_confirmation", days=int(config.get("CLAIM_CONFIRMATION_DAYS", 60)))
        flagged = [e for e in events if e.order_id == own.id]
        if own.coupon_used or any(e.coupon_used for e in flagged):
            return verdict("foreign_coupon", event_ids=[e.id for e in flagged if e.coupon_used])
        if own.items_in_cart_before_click or any(e.items_in_cart_before_click for e in flagged):
            return verdict("cart_before_click", event_ids=[e.id for e in flagged if e.items_in_cart_before_click])
        if own.status == "paid":
            return verdict("awaiting_confirmation", days=int(config.get("CLAIM_CONFIRMATION_DAYS", 60)))
        return verdict("credited")

    # --- not attributed to this customer: from our click to the network ------------------------
    if not clicks_before:
        if clicks_after:
            return verdict("click_after_order", click_ids=[c.id for c in clicks_after][:20],
                           click_time=clicks_after[0].created_at)
        return verdict("no_click")
    if any(o.coupon_used for o in orders) or any(e.coupon_used for e in events):
        return verdict("foreign_coupon", event_ids=[e.id for e in events if e.coupon_used])
    if any(o.items_in_cart_before_click for o in orders) or any(e.items_in_cart_before_click for e in events):
        return verdict("cart_before_click", event_ids=[e.id for e in events if e.items_in_cart_before_click])
    order_channel = (order.channel if order is not None and order.channel else
                     next((e.channel for e in reversed(events) if e.channel), None))
    evidence["order_channel"] = order_channel
    if order_channel == "app" and last_click is not None and last_click.channel in BROWSER_CHANNELS:
        return verdict("channel_mismatch", channel=order_channel)
    window = dt.timedelta(minutes=int(config.get("CLICK_REPEAT_WINDOW_MINUTES", 60)))
    burst = [c for c in clicks_before if c.created_at >= last_click.created_at - window]
    threshold = {"CLICK_SPAM_THRESHOLD": int(config.get("CLICK_SPAM_THRESHOLD", 3))}
    if is_spam(last_click.repeat_count, threshold) or is_spam(len(burst), threshold):
        return verdict("click_spam", click_ids=[c.id for c in burst],
                       count=max(last_click.repeat_count, len(burst)))
    return verdict("not_reported", event_ids=[e.id for e in events],
                   reported_sub_id=order.sub_id if order is not None else None)


# --- replies ------------------------------------------------------------------------------------

GREETING = _l("Hello, %(name)s!")
SIGNATURE = _l("Best regards, the cashback support team")
REPLIES = {
    "no_click": _l("We checked order %(order)s of %(order_date)s. We found no visit to AliExpress through "
                   "our service before this order, so the network could not link the purchase to you and no "
                   "cashback is due. Next time, start every purchase with the cashback link and place the "
                   "order in the same browser."),
    "click_after_order": _l("We checked order %(order)s of %(order_date)s. Your visit through our link "
                            "(%(click_time)s) came after the order was paid (%(order_time)s). Cashback is only "
                            "paid when the purchase is made after following our link."),
    "channel_mismatch": _l("We checked order %(order)s of %(order_date)s. You followed our link in a browser "
                           "(%(click_time)s), but the order was paid in the AliExpress mobile app. The network "
                           "does not link app purchases to browser clicks: please pay in the same browser "
                           "where you opened our link."),
    "cart_before_click": _l("We checked order %(order)s of %(order_date)s. The network reports that the items "
                            "were already in your cart before you followed our link (%(click_time)s). No "
                            "commission is paid for such items: add items to the cart only after following "
                            "the cashback link."),
    "click_spam": _l("We checked order %(order)s of %(order_date)s. The product link was opened %(count)s "
                     "times in a short time before the order. The network treats repeated clicks as spam and "
                     "pays no commission for them: open the link once, then buy."),
    "foreign_coupon": _l("We checked order %(order)s of %(order_date)s. A coupon or bonus programme of another "
                         "service was used for this order, so the network pays the commission to that service "
                         "and no cashback is due from us."),
    "not_reported": _l("We checked order %(order)s of %(order_date)s. We found your visit through our link "
                       "(%(click_time)s), but the network did not report this order to us under it. Browser "
                       "extensions (other cashback services, coupon finders) or ad blockers can replace our "
                       "link. We have asked the network to check the order; please turn such extensions off "
                       "for your next purchases."),
    "awaiting_confirmation": _l("We checked order %(order)s of %(order_date)s. The order is paid and its "
                                "cashback of %(cashback)s is pending. It becomes available when the network "
                                "confirms the order, usually within %(days)s days of payment (after you "
                                "confirm delivery and the protection period ends). Nothing else is needed."),
    "cancelled_or_refunded": _l("We checked order %(order)s of %(order_date)s. The network reported the order "
                                "as %(status)s on %(event_time)s. No cashback is paid for cancelled or refunded "
                                "amounts; the cashback now booked for this order is %(cashback)s."),
    "credited": _l("We checked order %(order)s of %(order_date)s. Its cashback of %(cashback)s is already on "
                   "your available balance. Nothing is missing."),
}


def render_reply(reason_code: str, *, customer_name: str, order_number: str, order_date: dt.date,
                 facts: Mapping[str, Any]) -> str:
    """The templated reply, in the current locale (wrap in ``force_locale``), placeholders filled."""
    from portal.formatting import date, money, number, when

    values = {
        "order": order_number, "order_date": date(order_date),
        "click_time": when(facts.get("click_time")), "order_time": when(facts.get("order_time")),
        "cashback": money(facts.get("cashback") or Decimal(0), "USD"),
        "days": number(facts.get("days") or 0), "count": number(facts.get("count") or 0),
        "status": label(ORDER_STATUS_LABELS, facts.get("status")).lower(),
        "event_time": when(facts.get("event_time")),
    }
    template = str(REPLIES[reason_code])
    for key, value in values.items():  # "23 нояб. 2026 г." ends the sentence itself: no "г.."
        if value.endswith("."):
            template = template.replace(f"%({key})s.", f"%({key})s")
    body = template % values
    return "\n\n".join([str(GREETING) % {"name": customer_name or "—"}, body, str(SIGNATURE)])


def suggested_reply(customer: Customer, claim: Claim, diagnosis: Diagnosis) -> str:
    """The reply in the customer's language (``Customer.locale``, else Russian)."""
    from flask import has_app_context
    from flask_babel import force_locale

    kwargs = dict(customer_name=customer.name or customer.email, order_number=claim.order_number,
                  order_date=claim.order_date, facts=diagnosis.facts)
    if not has_app_context():
        return render_reply(diagnosis.reason_code, **kwargs)
    with force_locale(customer.locale or "ru"):
        return render_reply(diagnosis.reason_code, **kwargs)


# --- the evidence, for people -------------------------------------------------------------------

#: What each verdict means for the customer (one line, for the agent reading the claim).
REASON_MEANINGS = {
    "no_click": _l("The customer did not follow our link before the order, so the network could not "
                   "link the purchase to them."),
    "click_after_order": _l("The customer followed our link only after the order was paid."),
    "channel_mismatch": _l("The customer clicked in a browser but paid in the AliExpress app; the network "
                           "does not link the two."),
    "cart_before_click": _l("The network says the items were in the cart before our click: it pays no "
                            "commission for them."),
    "click_spam": _l("The product link was opened many times in a short time: the network treats it as spam."),
    "foreign_coupon": _l("A coupon or bonus programme of another service was used: that service gets the "
                         "commission."),
    "not_reported": _l("Our click is there, but the network did not report the order to us under it "
                       "(often an extension or ad blocker replaced our link)."),
    "awaiting_confirmation": _l("The order is paid and its cashback is pending until the network confirms it."),
    "cancelled_or_refunded": _l("The network reported the order as cancelled or refunded: no cashback for "
                                "those amounts."),
    "credited": _l("The cashback is already on the customer's available balance: nothing is missing."),
}
#: What the agent should do next, per verdict.
REASON_NEXT_STEPS = {
    "no_click": _l("Reject with the reply template; there is nothing to credit."),
    "click_after_order": _l("Reject with the reply template; there is nothing to credit."),
    "channel_mismatch": _l("Reject with the reply template, which explains how to pay in the same browser."),
    "cart_before_click": _l("Reject with the reply template; there is nothing to credit."),
    "click_spam": _l("Reject with the reply template; there is nothing to credit."),
    "foreign_coupon": _l("Reject with the reply template; there is nothing to credit."),
    "not_reported": _l("Escalate to the network, or propose a credit if the click is convincing."),
    "awaiting_confirmation": _l("Send the reply template: tell the customer to wait until %(date)s."),
    "cancelled_or_refunded": _l("Reject with the reply template; only the cashback still booked is due."),
    "credited": _l("Send the reply template and reject the claim: nothing more is due."),
}
TIME_SOURCE_LABELS = {
    "order": _l("the network's payment time of the order"),
    "event": _l("the time of the network's first event"),
    "claim_date": _l("the end of the claimed day (the network reported nothing)"),
}


@dataclass(frozen=True)
class ClickRow:
    id: int
    at: dt.datetime | None
    product_id: str | None
    channel: str | None
    sub_id: str | None
    repeat_count: int
    visits: int
    before_order: bool
    #: The customer's timeline up to a minute after the click (the click is at its top).
    timeline_until: dt.datetime | None


@dataclass(frozen=True)
class OrderRow:
    network_order_id: str | None
    network: str | None
    status: str
    amount_usd: Decimal | None
    refunded_usd: Decimal | None
    cashback_usd: Decimal | None
    booked_in: str
    channel: str | None
    sub_id: str | None
    paid_at: dt.datetime | None
    #: Reported for this customer (under one of their clicks).
    for_customer: bool
    flags: tuple[str, ...]


@dataclass(frozen=True)
class EventRow:
    event_id: str | None
    status: str
    at: dt.datetime | None
    channel: str | None
    sub_id: str | None
    outcome: str | None
    flags: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceView:
    """The diagnosis evidence as an agent reads it (``evidence_view``); the template only renders."""

    reason_code: str | None
    verdict: str
    meaning: str
    next_step: str
    customer_id: int | None
    clicks: tuple[ClickRow, ...]
    orders: tuple[OrderRow, ...]
    events: tuple[EventRow, ...]
    order_time: dt.datetime | None
    order_time_source: str
    window_from: dt.datetime | None
    window_to: dt.datetime | None
    lookback_days: int | None


def _time(value: Any) -> dt.datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "", "None") else None
    except ArithmeticError:
        return None


def _flags(row: Mapping[str, Any], channel: str | None) -> tuple[str, ...]:
    flags = []
    if row.get("coupon_used"):
        flags.append(str(_l("coupon or bonus programme used")))
    if row.get("items_in_cart_before_click"):
        flags.append(str(_l("items in the cart before the click")))
    if channel == "app":
        flags.append(str(_l("paid in the app")))
    return tuple(flags)


def evidence_view(claim: Claim, *, confirmation_days: int = 60) -> EvidenceView:
    """Turn a claim's stored evidence (``claim.verdict``, the JSON of ``diagnose_order``) into rows to show.

    Pure: reads only the claim's fields (no queries), so older or partial evidence gives
    fewer rows, never an error.  Strings are in the current locale; times are aware datetimes
    and amounts Decimals (the template formats them).
    """
    evidence: Mapping[str, Any] = claim.verdict if isinstance(claim.verdict, Mapping) else {}
    code = claim.reason_code
    order_time = _time(evidence.get("order_time"))
    lookback = evidence.get("lookback_days")
    lookback = int(lookback) if isinstance(lookback, int) else None

    clicks: list[ClickRow] = []
    for key, before in (("clicks_before", True), ("clicks_after", False)):
        for row in evidence.get(key) or []:
            at = _time(row.get("created_at"))
            clicks.append(ClickRow(
                id=row.get("id"), at=at, product_id=row.get("product_id"), channel=label(ENUMS["channel"], row.get("channel")),
                sub_id=row.get("sub_id"), repeat_count=int(row.get("repeat_count") or 1),
                visits=len(row.get("visits") or []), before_order=before,
                timeline_until=at + dt.timedelta(minutes=1) if at else None))

    orders = tuple(OrderRow(
        network_order_id=row.get("network_order_id"), network=row.get("network"),
        status=label(ORDER_STATUS_LABELS, row.get("status")), amount_usd=_money(row.get("amount_usd")),
        refunded_usd=_money(row.get("refunded_usd")), cashback_usd=_money(row.get("booked_cashback")),
        booked_in=label(BOOKED_IN_LABELS, row.get("booked_in")), channel=label(ENUMS["channel"], row.get("channel")),
        sub_id=row.get("sub_id"), paid_at=_time(row.get("paid_at")),
        for_customer=row.get("customer_id") is not None and row.get("customer_id") == claim.customer_id,
        flags=_flags(row, row.get("channel"))) for row in evidence.get("orders") or [])
    events = tuple(EventRow(
        event_id=row.get("event_id"), status=label(ORDER_STATUS_LABELS, row.get("status")),
        at=_time(row.get("event_time")), channel=label(ENUMS["channel"], row.get("channel")), sub_id=row.get("sub_id"),
        outcome=row.get("outcome"), flags=_flags(row, row.get("channel"))) for row in evidence.get("events") or [])

    meaning = str(REASON_MEANINGS.get(code or "", "")) if code else str(_l("The claim has not been checked yet."))
    if code == "awaiting_confirmation":
        from portal.formatting import date

        paid = next((o.paid_at for o in orders if o.for_customer and o.paid_at), None) or order_time
        until = date(paid + dt.timedelta(days=confirmation_days)) if paid else "—"
        next_step = str(REASON_NEXT_STEPS[code]) % {"date": until}
    else:
        next_step = str(REASON_NEXT_STEPS.get(code or "", ""))
    if claim.state in RESOLVED:  # closed: nothing left to advise
        next_step = ""
    return EvidenceView(
        reason_code=code, verdict=label(REASON_LABELS, code) if code else "—", meaning=meaning, next_step=next_step,
        customer_id=claim.customer_id, clicks=tuple(clicks), orders=orders, events=events,
        order_time=order_time, order_time_source=label(TIME_SOURCE_LABELS, evidence.get("order_time_source")),
        window_from=order_time - dt.timedelta(days=lookback) if order_time and lookback is not None else None,
        window_to=order_time + dt.timedelta(days=CLICKS_AFTER_DAYS) if order_time else None,
        lookback_days=lookback)


# --- reading ------------------------------------------------------------------------------------

def _lock(session: Session, claim_id: int) -> Claim:
    claim = session.execute(sa.select(Claim).where(Claim.id == claim_id).with_for_update()
                            .execution_options(populate_existing=True)).scalar_one_or_none()
    if claim is None:
        raise ClaimNotFound(claim_id=claim_id)
    return claim


def get_claim(session: Session, claim_id: int) -> Claim:
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise ClaimNotFound(claim_id=claim_id)
    return claim


def own_claim(session: Session, customer_id: int, claim_id: int) -> Claim:
    """The customer's claim; another customer's id is ``ClaimNotFound`` (404), like a missing one."""
    claim = session.execute(sa.select(Claim).where(Claim.id == claim_id, Claim.customer_id == customer_id)
                            ).scalar_one_or_none()
    if claim is None:
        raise ClaimNotFound(claim_id=claim_id)
    return claim


def customer_claims(session: Session, customer_id: int, limit: int = 100) -> list[Claim]:
    return list(session.execute(sa.select(Claim).where(Claim.customer_id == customer_id)
                                .order_by(Claim.created_at.desc(), Claim.id.desc()).limit(limit)).scalars())


def sla_hours(state: str, config: Mapping[str, Any]) -> int | None:
    hours = dict(DEFAULT_SLA_HOURS, **(config.get("CLAIM_SLA_HOURS") or {}))
    return int(hours[state]) if state in hours else None


def sla_deadline(claim: Claim, config: Mapping[str, Any]) -> dt.datetime | None:
    """When the claim's current state breaches its SLA; None for resolved claims."""
    hours = sla_hours(claim.state, config)
    return None if hours is None else claim.state_since + dt.timedelta(hours=hours)


def is_breaching(claim: Claim, config: Mapping[str, Any], now: dt.datetime) -> bool:
    deadline = sla_deadline(claim, config)
    return deadline is not None and deadline < now


def _breach_condition(config: Mapping[str, Any], now: dt.datetime):
    hours = dict(DEFAULT_SLA_HOURS, **(config.get("CLAIM_SLA_HOURS") or {}))
    return sa.or_(*(sa.and_(Claim.state == state, Claim.state_since < now - dt.timedelta(hours=int(h)))
                    for state, h in hours.items()))


def breaching(session: Session, config: Mapping[str, Any], *, now: dt.datetime, limit: int = 500) -> list[Claim]:
    """Claims longer in their state than its SLA allows, the longest overdue first."""
    return list(session.execute(sa.select(Claim).where(_breach_condition(config, now))
                                .order_by(Claim.state_since, Claim.id).limit(limit)).scalars())


def _desk_filter(query, config: Mapping[str, Any], now: dt.datetime, state: str | None, reason: str | None,
                 breached: bool, text: str | None):
    if state:
        query = query.where(Claim.state == state)
    if reason:
        query = query.where(Claim.reason_code == reason)
    if breached:
        query = query.where(_breach_condition(config, now))
    text = (text or "").strip()
    if text:  # the claim's number, its order number, or the customer's e-mail or name
        needle = text.lower()
        customers = sa.select(Customer.id).where(sa.or_(
            sa.func.lower(Customer.email).contains(needle, autoescape=True),
            sa.func.lower(Customer.name).contains(needle, autoescape=True)))
        found = [Claim.order_number.contains(text, autoescape=True), Claim.customer_id.in_(customers)]
        number = text.lstrip("#")
        if number.isascii() and number.isdigit() and len(number) <= 9:
            found.append(Claim.id == int(number))
        query = query.where(sa.or_(*found))
    return query


def staff_claims(session: Session, config: Mapping[str, Any], *, now: dt.datetime, state: str | None = None,
                 reason: str | None = None, breached: bool = False, text: str | None = None, offset: int = 0,
                 limit: int = 500) -> list[Claim]:
    """The support desk's list, newest first, filtered by state, reason code, SLA breach and
    ``text`` (claim number, order number, the customer's e-mail or name); ``offset``/``limit`` page it."""
    query = _desk_filter(sa.select(Claim), config, now, state, reason, breached, text)
    return list(session.execute(query.order_by(Claim.created_at.desc(), Claim.id.desc())
                                .offset(offset).limit(limit)).scalars())


def count_staff_claims(session: Session, config: Mapping[str, Any], *, now: dt.datetime, state: str | None = None,
                       reason: str | None = None, breached: bool = False, text: str | None = None) -> int:
    """How many claims :func:`staff_claims` pages through."""
    query = _desk_filter(sa.select(sa.func.count()).select_from(Claim), config, now, state, reason, breached, text)
    return session.execute(query).scalar_one()


def worked_by(session: Session, claim_ids: list[int]) -> dict[int, str]:
    """Who works each claim: the staff member who acted on it last (audit log), by claim id.

    There is no assignment: the desk shows who touched the claim last, so two agents do not
    pick up the same claim.
    """
    if not claim_ids:
        return {}
    rows = session.execute(
        sa.select(AuditRecord.object_id, AuditRecord.actor)
        .where(AuditRecord.object_type == "claim", AuditRecord.object_id.in_([str(i) for i in claim_ids]),
               AuditRecord.actor.like("user:%"))
        .order_by(AuditRecord.id.desc())).all()
    found: dict[int, str] = {}
    for object_id, who in rows:
        found.setdefault(int(object_id), who)
    return found


def proposed_credits(session: Session, limit: int = 500) -> list[ClaimCredit]:
    """Credits waiting for Finance, oldest first."""
    return list(session.execute(sa.select(ClaimCredit).where(ClaimCredit.state == "proposed")
                                .order_by(ClaimCredit.proposed_at, ClaimCredit.id).limit(limit)).scalars())


# --- transitions --------------------------------------------------------------------------------

def _snapshot(claim: Claim) -> dict[str, Any]:
    return {"state": claim.state, "reason_code": claim.reason_code}


def _move(session: Session, claim: Claim, to: str, actor: Actor, action: str, now: dt.datetime,
          reason: str | None = None, extra: Mapping[str, Any] | None = None) -> None:
    before = _snapshot(claim)
    claim.state, claim.state_since, claim.updated_at = to, now, now
    audit.record(session, actor, action, "claim", claim.id, reason=reason, before=before,
                 after={**_snapshot(claim), **(extra or {})})


def open_claim(session: Session, customer: Customer, data: ClaimInput, *, actor: Actor, opened_by: str,
               channel: str, config: Mapping[str, Any], now: dt.datetime | None = None) -> Claim:
    """Open a claim and diagnose it at once (the caller commits): the claim ends ``diagnosed``.

    A second claim for the same order while the first is unresolved is ``ClaimExists``.
    """
    now = now or utcnow()
    if channel not in CHANNELS:
        raise ValueError(f"unknown claim channel {channel!r}")
    session.execute(sa.select(Customer.id).where(Customer.id == customer.id).with_for_update())
    existing = session.execute(sa.select(Claim.id).where(
        Claim.customer_id == customer.id, Claim.order_number == data.order_number,
        Claim.state.not_in(RESOLVED))).first()
    if existing is not None:
        raise ClaimExists(claim_id=existing[0])
    claim = Claim(customer_id=customer.id, order_number=data.order_number, order_date=data.order_date,
                  amount_usd=data.amount_usd, state="open", suggested_reply="", opened_by=opened_by,
                  channel=channel, screenshot=data.screenshot, screenshot_type=data.screenshot_type,
                  state_since=now, created_at=now, updated_at=now)
    session.add(claim)
    session.flush()
    audit.record(session, actor, "claim.opened", "claim", claim.id,
                 after={"state": "open", "order_number": claim.order_number, "order_date": claim.order_date,
                        "amount_usd": claim.amount_usd, "channel": channel, "opened_by": opened_by,
                        "screenshot": claim.screenshot_type})
    diagnose(session, claim.id, actor=Actor.system("claims.diagnosis"), config=config, now=now)
    return claim


def diagnose(session: Session, claim_id: int, *, actor: Actor, config: Mapping[str, Any],
             now: dt.datetime | None = None) -> Claim:
    """``open`` → ``diagnosed``: attach the verdict, its evidence and the suggested reply."""
    now = now or utcnow()
    claim = _lock(session, claim_id)
    if claim.state != "open":
        raise ClaimStateError(_l("Only an open claim is diagnosed."), claim_id=claim_id, state=claim.state)
    result = diagnose_order(session, claim.customer_id, claim.order_number, claim.order_date, config)
    customer = session.get(Customer, claim.customer_id)
    claim.reason_code = result.reason_code
    claim.verdict = audit._jsonable(result.evidence)
    claim.suggested_reply = suggested_reply(customer, claim, result)
    _move(session, claim, "diagnosed", actor, "claim.diagnosed", now, extra={"relevant": result.evidence["relevant"]})
    return claim


def send_reply(session: Session, claim_id: int, text: str, *, actor: Actor, now: dt.datetime | None = None) -> Claim:
    """Store the reply sent to the customer (what they then see), audited; not while ``open``."""
    now = now or utcnow()
    text = (text or "").strip()
    if not text:
        raise Invalid(_l("Write the reply."), code="reply_required",
                      errors=[_field_error("reply", _l("Write the reply."), "reply_required")])
    if len(text) > MAX_REPLY:
        message = _l("The reply is too long: at most %(limit)s characters.", limit=MAX_REPLY)
        raise Invalid(message, code="reply_too_long", errors=[_field_error("reply", message, "reply_too_long")])
    claim = _lock(session, claim_id)
    if claim.state == "open":
        raise ClaimStateError(_l("The claim has not been checked yet."), claim_id=claim_id)
    before = {"reply_sent": claim.reply_sent}
    claim.reply_sent, claim.replied_at, claim.updated_at = text, now, now
    audit.record(session, actor, "claim.replied", "claim", claim.id, before=before, after={"reply_sent": text})
    return claim


def _note(note: str | None, required: bool = True) -> str:
    note = (note or "").strip()
    if required and not note:
        raise Invalid(_l("Say why."), code="reason_required",
                      errors=[_field_error("note", _l("Say why."), "reason_required")])
    if len(note) > MAX_REASON:
        message = _l("At most %(limit)s characters.", limit=MAX_REASON)
        raise Invalid(message, code="reason_too_long", errors=[_field_error("note", message, "reason_too_long")])
    return note


def reject(session: Session, claim_id: int, *, actor: Actor, note: str, now: dt.datetime | None = None) -> Claim:
    """``diagnosed`` | ``escalated`` → ``resolved_rejected`` (no cashback due), with a reason."""
    now = now or utcnow()
    note = _note(note)
    claim = _lock(session, claim_id)
    if claim.state not in ("diagnosed", "escalated"):
        raise ClaimStateError(_l("Only a checked or escalated claim can be rejected."), claim_id=claim_id,
                              state=claim.state)
    if any(c.state == "proposed" for c in claim.credits):
        raise ClaimStateError(_l("A credit for this claim is waiting for Finance: it must be decided first."),
                              claim_id=claim_id)
    _move(session, claim, "resolved_rejected", actor, "claim.rejected", now, reason=note)
    return claim


def escalate(session: Session, claim_id: int, *, actor: Actor, note: str, now: dt.datetime | None = None) -> Claim:
    """``diagnosed`` → ``escalated`` (sent to the network), with a note."""
    now = now or utcnow()
    note = _note(note)
    claim = _lock(session, claim_id)
    if claim.state != "diagnosed":
        raise ClaimStateError(_l("Only a checked claim can be escalated."), claim_id=claim_id, state=claim.state)
    _move(session, claim, "escalated", actor, "claim.escalated", now, reason=note)
    return claim


def propose_credit(session: Session, claim_id: int, amount_usd: Decimal, *, reason: str, actor: Actor,
                   proposed_by: str, now: dt.datetime | None = None) -> ClaimCredit:
    """Support proposes a manual credit for a ``diagnosed`` or ``escalated`` claim (one at a time)."""
    now = now or utcnow()
    reason = _note(reason)
    if not isinstance(amount_usd, Decimal) or amount_usd <= 0 or amount_usd > MAX_CREDIT_USD \
            or amount_usd != amount_usd.quantize(Decimal("0.01")):
        message = _l("Enter a positive amount in USD with at most 2 decimals, up to %(max)s.", max=MAX_CREDIT_USD)
        raise Invalid(message, code="bad_amount", errors=[_field_error("amount_usd", message, "bad_amount")])
    claim = _lock(session, claim_id)
    if claim.state not in ("diagnosed", "escalated"):
        raise ClaimStateError(_l("A credit can only be proposed for a checked or escalated claim."),
                              claim_id=claim_id, state=claim.state)
    if any(c.state in ("proposed", "approved") for c in claim.credits):
        raise ClaimStateError(_l("This claim already has a credit proposed or approved."), claim_id=claim_id)
    credit = ClaimCredit(claim_id=claim.id, amount_usd=amount_usd, reason=reason, state="proposed",
                         proposed_by=proposed_by, proposed_at=now)
    session.add(credit)
    session.flush()
    claim.updated_at = now
    audit.record(session, actor, "claim.credit.proposed", "claim_credit", credit.id, reason=reason,
                 after={"claim_id": claim.id, "amount_usd": amount_usd, "state": "proposed"})
    return credit


def credit_reference(claim_id: int) -> str:
    return f"claim:{claim_id}:credit"


def decide_credit(session: Session, credit_id: int, *, approve: bool, decided_by: str, actor: Actor,
                  note: str | None = None, now: dt.datetime | None = None) -> ClaimCredit:
    """Finance approves (posts the credit, resolves the claim) or rejects a proposed credit.

    Four eyes: ``decided_by`` must differ from the proposer.  Only a ``proposed`` credit is
    decided: a second approval is refused, and the posting's reference would move nothing.
    """
    now = now or utcnow()
    note = _note(note, required=not approve)
    credit = session.execute(sa.select(ClaimCredit).where(ClaimCredit.id == credit_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if credit is None:
        raise CreditNotFound(credit_id=credit_id)
    if credit.state != "proposed":
        raise ClaimStateError(_l("This credit was already decided (%(state)s).",
                                 state=label(CREDIT_STATE_LABELS, credit.state)), credit_id=credit_id)
    if credit.proposed_by == decided_by:
        raise FourEyes(credit_id=credit_id)
    claim = _lock(session, credit.claim_id)
    if approve and claim.state not in ("diagnosed", "escalated"):
        raise ClaimStateError(_l("The claim is already resolved: the credit cannot be approved."),
                              claim_id=claim.id, state=claim.state)
    credit.decided_by, credit.decided_at, credit.decision_note = decided_by, now, note or None
    if not approve:
        credit.state = "rejected"
        audit.record(session, actor, "claim.credit.rejected", "claim_credit", credit.id, reason=note,
                     before={"state": "proposed"}, after={"state": "rejected", "claim_id": claim.id})
        return credit
    result = ledger.post(
        session, kind="adjustment.claim", reference=credit_reference(claim.id),
        legs=ledger.transfer(ledger.system_account("adjustments"),
                             ledger.customer_account(claim.customer_id, "available"), credit.amount_usd),
        actor=actor, memo=f"claim #{claim.id} order {claim.order_number}")
    credit.state, credit.posting_id = "approved", result.posting_id
    audit.record(session, actor, "claim.credit.approved", "claim_credit", credit.id, reason=note,
                 before={"state": "proposed"},
                 after={"state": "approved", "claim_id": claim.id, "posting_id": result.posting_id,
                        "amount_usd": credit.amount_usd})
    _move(session, claim, "resolved_credit", actor, "claim.credited", now, reason=note or credit.reason,
          extra={"credit_id": credit.id, "posting_id": result.posting_id})
    return credit


# --- demo ---------------------------------------------------------------------------------------

def seed_demo(session: Session, customers: Sequence[Customer], config: Mapping[str, Any],
              now: dt.datetime) -> int:
    """Believable claims, each reason code at least once (idempotent: only when there are none).

    Builds the rows each diagnosis needs through the real services (clicks, network events),
    then opens the claims; one ``not_reported`` claim is escalated with a credit awaiting
    Finance, a ``no_click`` one is answered and rejected.  Returns the claims created.
    """
    from portal.services import clicks as click_service, orders as order_service

    if session.execute(sa.select(Claim.id).limit(1)).first() is not None or len(customers) < 20:
        return 0
    actor = Actor.system("seed-demo")
    network = config.get("DEFAULT_NETWORK", "epn")
    rate = config["DEFAULT_CASHBACK_RATE"]
    base = now - dt.timedelta(days=2)

    def click(customer: Customer, n: int, at: dt.datetime, channel: str = "web") -> Click:
        url = f"https://aliexpress.ru/item/{1005007000000000 + customer.id * 100 + n}.html"
        return click_service.create_click(session, customer, url, channel, config=config, now=at).click

    def event(order_no: str, status: str, at: dt.datetime, sub_id: str, amount: str = "40.00",
              commission: str = "3.20", channel: str = "web", **flags: bool) -> None:
        body = {"event_id": f"demo-claim-{order_no}:{status}", "order_id": order_no, "sub_id": sub_id,
                "status": status, "order_amount": amount, "currency": "USD", "commission": commission,
                "event_time": at.isoformat(), "channel": channel, **flags}
        order_service.receive_event(session, order_service.parse_event(body, network), default_rate=rate,
                                    actor=actor)

    c = {i: customers[i - 1] for i in range(1, 21)}
    plans: list[tuple[Customer, str, Decimal, dt.date]] = []
    day = (base - dt.timedelta(days=3)).date()
    # no_click: a registered customer who never clicked
    plans.append((c[18], "8100000000018", Decimal("23.40"), day))
    # click_after_order: the click came a day after the order
    click(c[19], 1, base + dt.timedelta(days=1))
    plans.append((c[19], "8100000000019", Decimal("15.00"), (base - dt.timedelta(days=1)).date()))
    # channel_mismatch: a browser click, the order paid in the app (reported without our sub-id)
    at = base - dt.timedelta(days=3)
    click(c[20], 1, at)
    event("8100000000020", "paid", at + dt.timedelta(minutes=25), "app-organic", channel="app")
    plans.append((c[20], "8100000000020", Decimal("40.00"), at.date()))
    # click_spam: four clicks on one product within ten minutes, no order reported
    at = base - dt.timedelta(days=1)
    for k in range(4):
        click(c[4], 90, at + dt.timedelta(minutes=3 * k))
    plans.append((c[4], "8100000000004", Decimal("31.99"), at.date()))
    # not_reported: one clean click, the network never reported the order (escalated, credit proposed)
    at = base - dt.timedelta(days=4)
    click(c[5], 91, at)
    plans.append((c[5], "8100000000005", Decimal("57.10"), at.date()))
    # cart_before_click and foreign_coupon: reported under our click, no commission
    for idx, order_no, flag in ((6, "8100000000006", "items_in_cart_before_click"),
                                (7, "8100000000007", "coupon_used")):
        at = base - dt.timedelta(days=5)
        sub = click(c[idx], 92, at).sub_id
        event(order_no, "paid", at + dt.timedelta(minutes=40), sub, commission="0.00", **{flag: True})
        plans.append((c[idx], order_no, Decimal("40.00"), at.date()))
    # awaiting_confirmation, cancelled_or_refunded, credited: reported under our click
    at = base - dt.timedelta(days=6)
    sub = click(c[8], 93, at).sub_id
    event("8100000000008", "paid", at + dt.timedelta(minutes=15), sub)
    plans.append((c[8], "8100000000008", Decimal("40.00"), at.date()))
    sub = click(c[9], 93, at).sub_id
    event("8100000000009", "paid", at + dt.timedelta(minutes=15), sub)
    event("8100000000009", "cancelled", at + dt.timedelta(days=3), sub)
    plans.append((c[9], "8100000000009", Decimal("40.00"), at.date()))
    sub = click(c[10], 93, at).sub_id
    event("8100000000010", "paid", at + dt.timedelta(minutes=15), sub)
    event("8100000000010", "confirmed", at + dt.timedelta(days=4), sub)
    plans.append((c[10], "8100000000010", Decimal("40.00"), at.date()))

    created = {}
    for customer, number, amount, order_date in plans:
        data = ClaimInput(number, order_date, amount)
        created[number] = open_claim(session, customer, data, actor=actor, opened_by="customer", channel="web",
                                     config=config, now=now - dt.timedelta(hours=30 if customer is c[18] else 2))
    rejected = created["8100000000018"]
    send_reply(session, rejected.id, rejected.suggested_reply, actor=actor, now=now - dt.timedelta(hours=26))
    reject(session, rejected.id, actor=actor, note="No click through us before the order.",
           now=now - dt.timedelta(hours=26))
    hijacked = created["8100000000005"]
    escalate(session, hijacked.id, actor=actor, note="Asked the network to check the order's sub-id.",
             now=now - dt.timedelta(hours=1))
    propose_credit(session, hijacked.id, Decimal("3.99"), reason="Click confirmed in our logs; goodwill credit.",
                   actor=actor, proposed_by="support", now=now - dt.timedelta(minutes=30))
    return len(created)
