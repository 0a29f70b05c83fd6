"""Tracked clicks: a checked product link becomes a click with an unguessable sub-id,
the customer's rate is frozen, and ``/go/<sub_id>`` logs each visit on the way out."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.errors import DomainError, Invalid, NotFound
from portal.i18n import _l
from portal.models import Click, ClickVisit, Customer, Order, Promo
from portal.models.types import utcnow
from portal.services.links import LinkError, ProductLink, check_link

CHANNELS = ("web", "extension", "app")


class CustomerBlocked(DomainError):
    status = 403
    code = "customer_blocked"
    default_message = _l("Your account is blocked: new purchases with cashback are not possible. "
                         "Please contact support.")


class UnknownClick(NotFound):
    code = "unknown_click"
    default_message = _l("This link is not valid. Paste the product link again to get a new one.")


@dataclass(frozen=True)
class RateOffer:
    rate: Decimal
    promo: Promo | None


def rate_for(session: Session, customer_id: int | None, at: dt.datetime, default: Decimal) -> RateOffer:
    """The best rate a customer gets for a click at ``at``: the default or an active promo."""
    promos = session.execute(
        sa.select(Promo).where(Promo.is_active.is_(True), Promo.starts_at <= at, Promo.ends_at > at)
        .order_by(Promo.rate.desc(), Promo.id)
    ).scalars().all()
    if promos and customer_id is not None:
        has_orders = session.execute(
            sa.select(sa.func.count()).select_from(Order).where(Order.customer_id == customer_id)
        ).scalar_one() > 0
    else:
        has_orders = customer_id is None
    for promo in promos:
        if promo.rate > default and not (promo.first_order_only and has_orders):
            return RateOffer(promo.rate, promo)
    return RateOffer(default, None)


def new_sub_id() -> str:
    """128 random bits, URL-safe: not guessable, not sequential."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class ClickResult:
    click: Click
    #: Clicks on this product within the repeat window, this one included.
    repeat_count: int
    #: True when so many repeats that the network may flag them as spam.
    spam_warning: bool


def create_click(session: Session, customer: Customer, raw_url: str, channel: str, *, config: dict,
                 resolver=None, now: dt.datetime | None = None) -> ClickResult:
    """Check the link and record a click (the caller commits)."""
    if customer.is_blocked:
        raise CustomerBlocked()
    if channel not in CHANNELS:
        raise Invalid(_l("Unknown channel: use web, extension or app."), code="bad_channel")
    try:
        link: ProductLink = check_link(raw_url, resolver=resolver)
    except LinkError as err:
        raise Invalid(err.message, code=str(err.code)) from None
    now = now or utcnow()
    window = now - dt.timedelta(minutes=int(config["CLICK_REPEAT_WINDOW_MINUTES"]))
    earlier = session.execute(
        sa.select(sa.func.count()).select_from(Click).where(
            Click.customer_id == customer.id, Click.product_id == link.product_id, Click.created_at > window)
    ).scalar_one()
    offer = rate_for(session, customer.id, now, config["DEFAULT_CASHBACK_RATE"])
    click = Click(sub_id=new_sub_id(), customer_id=customer.id, product_id=link.product_id,
                  canonical_url=link.canonical_url, channel=channel, rate=offer.rate,
                  promo_id=offer.promo.id if offer.promo else None, repeat_count=earlier + 1,
                  created_at=now)
    session.add(click)
    session.flush()
    return ClickResult(click, earlier + 1, earlier + 1 >= int(config["CLICK_SPAM_THRESHOLD"]))


def affiliate_url(click: Click, template: str) -> str:
    """The network's tracking URL for this click."""
    return template.format(sub_id=click.sub_id, url=quote(click.canonical_url, safe=""))


def hash_ip(ip: str | None, secret: str) -> str:
    """A keyed hash of the visitor's IP: comparable between visits, not reversible."""
    if not ip:
        return ""
    return hmac.new(secret.encode(), ip.encode(), hashlib.sha256).hexdigest()


def record_visit(session: Session, sub_id: str, *, user_agent: str, ip: str | None, channel: str | None,
                 secret: str) -> Click:
    """Log a pass through ``/go/<sub_id>``; return the click (the caller commits and redirects)."""
    click = session.execute(sa.select(Click).where(Click.sub_id == sub_id)).scalar_one_or_none()
    if click is None:
        raise UnknownClick()
    session.add(ClickVisit(click_id=click.id, user_agent=(user_agent or "")[:400],
                           ip_hash=hash_ip(ip, secret),
                           channel=channel if channel in CHANNELS else click.channel))
    return click
