"""The cashback path: clicks and their visits, network events, orders, promos, FX rates,
rejected postbacks and reconciliation imports."""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from sqlalchemy.orm import relationship

from .types import BigId, Exact, Money, UtcDateTime, utcnow


class Promo(Model):
    """A campaign raising the customer's rate for clicks made inside its window."""

    __tablename__ = "promo"

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(120), nullable=False)
    #: Percent of the paid amount, e.g. 10.00.
    rate = sa.Column(Exact, nullable=False)
    starts_at = sa.Column(UtcDateTime, nullable=False)
    ends_at = sa.Column(UtcDateTime, nullable=False)
    #: Only a customer's first order (no earlier order on record) gets the rate.
    first_order_only = sa.Column(sa.Boolean, nullable=False, default=False)
    #: Upper limit of cashback per order, USD; NULL = no cap.
    cap_usd = sa.Column(Money, nullable=True)
    #: When the rate pays more than the network commission, we pay the difference
    #: (booked to promo_expense).  Otherwise cashback is capped at the commission.
    pays_difference = sa.Column(sa.Boolean, nullable=False, default=False)
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"{self.name} ({self.rate} %)"


class Click(Model):
    """A customer's tracked click on a product: the sub-id the network reports back."""

    __tablename__ = "click"
    __table_args__ = (
        sa.Index("ix_click_customer_product", "customer_id", "product_id", "created_at"),
        {"extend_existing": True},
    )

    id = sa.Column(BigId, primary_key=True)
    #: Unguessable id sent to the network (``secrets.token_urlsafe``).
    sub_id = sa.Column(sa.String(40), nullable=False, unique=True)
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    product_id = sa.Column(sa.String(24), nullable=False)
    canonical_url = sa.Column(sa.String(200), nullable=False)
    #: Where the click was made: web (cabinet), extension, app.
    channel = sa.Column(sa.String(12), nullable=False)
    #: The customer's rate, frozen now, in percent.
    rate = sa.Column(Exact, nullable=False)
    promo_id = sa.Column(sa.Integer, sa.ForeignKey("promo.id"), nullable=True)
    #: Clicks by this customer on this product within the repeat window, this one included.
    repeat_count = sa.Column(sa.Integer, nullable=False, default=1)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, index=True)

    customer = relationship("Customer")
    promo = relationship("Promo")
    visits = relationship("ClickVisit", back_populates="click", order_by="ClickVisit.id")

    def __repr__(self) -> str:
        return f"click {self.sub_id}"


class ClickVisit(Model):
    """One pass through ``/go/<sub_id>`` on the way to the shop."""

    __tablename__ = "click_visit"

    id = sa.Column(BigId, primary_key=True)
    click_id = sa.Column(BigId, sa.ForeignKey("click.id"), nullable=False, index=True)
    visited_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    user_agent = sa.Column(sa.String(400), nullable=False, default="")
    #: HMAC of the IP address under the app secret: comparable, not reversible.
    ip_hash = sa.Column(sa.String(64), nullable=False, default="")
    channel = sa.Column(sa.String(12), nullable=False)

    click = relationship("Click", back_populates="visits")


class Order(Model):
    """An order as the network reports it, and the cashback we booked for it."""

    __tablename__ = "network_order"
    __table_args__ = (
        sa.UniqueConstraint("network", "network_order_id", name="uq_network_order"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    network = sa.Column(sa.String(30), nullable=False)
    network_order_id = sa.Column(sa.String(80), nullable=False)
    sub_id = sa.Column(sa.String(200), nullable=False, default="", index=True)
    click_id = sa.Column(BigId, sa.ForeignKey("click.id"), nullable=True)
    #: NULL while the order is an orphan (unknown sub-id) waiting for Support.
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=True, index=True)
    #: paid, confirmed, cancelled — only moves forward.
    status = sa.Column(sa.String(12), nullable=False)
    #: Paid amount in USD (converted at the event day's rate when reported in RUB).
    amount_usd = sa.Column(Money, nullable=False)
    #: Total refunded so far, USD (refund events carry the cumulative amount).
    refunded_usd = sa.Column(Money, nullable=False, default=0)
    #: Our commission from the network, USD.
    commission_usd = sa.Column(Money, nullable=False)
    #: As reported: amount and currency of the order.
    reported_amount = sa.Column(Money, nullable=False)
    reported_currency = sa.Column(sa.String(3), nullable=False)
    #: Percent, frozen from the click (or the default when there was no click).
    rate = sa.Column(Exact, nullable=False)
    promo_id = sa.Column(sa.Integer, sa.ForeignKey("promo.id"), nullable=True)
    channel = sa.Column(sa.String(12), nullable=True)
    coupon_used = sa.Column(sa.Boolean, nullable=False, default=False)
    items_in_cart_before_click = sa.Column(sa.Boolean, nullable=False, default=False)
    # --- what the ledger holds for this order right now ---------------------------
    #: none, pending or available.
    booked_in = sa.Column(sa.String(10), nullable=False, default="none")
    #: Cashback booked (USD) = from the network's share + from promo_expense.
    booked_cashback = sa.Column(Money, nullable=False, default=0)
    booked_from_promo = sa.Column(Money, nullable=False, default=0)
    paid_at = sa.Column(UtcDateTime, nullable=True)
    confirmed_at = sa.Column(UtcDateTime, nullable=True)
    cancelled_at = sa.Column(UtcDateTime, nullable=True)
    last_event_at = sa.Column(UtcDateTime, nullable=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    # --- four eyes on an orphan: Support proposes its customer, Finance confirms -------
    attach_customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=True, index=True)
    attach_proposed_by = sa.Column(sa.String(120), nullable=True)
    attach_proposed_at = sa.Column(UtcDateTime, nullable=True)
    attach_reason = sa.Column(sa.Text, nullable=True)
    attach_confirmed_by = sa.Column(sa.String(120), nullable=True)
    attach_confirmed_at = sa.Column(UtcDateTime, nullable=True)

    customer = relationship("Customer", foreign_keys=[customer_id])
    attach_customer = relationship("Customer", foreign_keys=[attach_customer_id])
    click = relationship("Click")
    promo = relationship("Promo")
    events = relationship("NetworkEvent", back_populates="order", order_by="NetworkEvent.event_time")

    def __repr__(self) -> str:
        return f"order {self.network}:{self.network_order_id}"


class NetworkEvent(Model):
    """Every accepted event from the network (postback or reconciliation), as received."""

    __tablename__ = "network_event"
    __table_args__ = (
        sa.UniqueConstraint("network", "event_id", name="uq_network_event"),
        {"extend_existing": True},
    )

    id = sa.Column(BigId, primary_key=True)
    network = sa.Column(sa.String(30), nullable=False)
    event_id = sa.Column(sa.String(120), nullable=False)
    #: postback or reconciliation
    source = sa.Column(sa.String(16), nullable=False, default="postback")
    network_order_id = sa.Column(sa.String(80), nullable=False, index=True)
    sub_id = sa.Column(sa.String(200), nullable=False, default="")
    status = sa.Column(sa.String(12), nullable=False)
    amount = sa.Column(Money, nullable=False)
    currency = sa.Column(sa.String(3), nullable=False)
    commission = sa.Column(Money, nullable=False)
    refunded_amount = sa.Column(Money, nullable=True)
    event_time = sa.Column(UtcDateTime, nullable=False)
    channel = sa.Column(sa.String(12), nullable=True)
    coupon_used = sa.Column(sa.Boolean, nullable=False, default=False)
    items_in_cart_before_click = sa.Column(sa.Boolean, nullable=False, default=False)
    #: sha256 of the normalized event: a replay with other data is a conflict.
    digest = sa.Column(sa.String(64), nullable=False)
    #: applied, stale (state did not move), orphan (unknown sub-id)
    outcome = sa.Column(sa.String(12), nullable=False, default="applied")
    order_id = sa.Column(sa.Integer, sa.ForeignKey("network_order.id"), nullable=True, index=True)
    received_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    order = relationship("Order", back_populates="events")


class PostbackRejection(Model):
    """A postback we refused (forged, stale, malformed): kept for Developers."""

    __tablename__ = "postback_rejection"

    id = sa.Column(BigId, primary_key=True)
    received_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, index=True)
    network = sa.Column(sa.String(30), nullable=True)
    reason = sa.Column(sa.String(40), nullable=False)
    message = sa.Column(sa.String(400), nullable=False)
    http_status = sa.Column(sa.Integer, nullable=False)
    ip_hash = sa.Column(sa.String(64), nullable=False, default="")
    #: The first 2,000 characters of the body, for diagnosis (postbacks carry no secrets).
    body_excerpt = sa.Column(sa.Text, nullable=False, default="")


class FxRate(Model):
    """How many ``quote`` units one ``base`` unit costs on a day (CBR: RUB per USD)."""

    __tablename__ = "fx_rate"
    __table_args__ = (
        sa.UniqueConstraint("day", "base", "quote", name="uq_fx_rate_day"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    day = sa.Column(sa.Date, nullable=False, index=True)
    base = sa.Column(sa.String(3), nullable=False, default="USD")
    quote = sa.Column(sa.String(3), nullable=False, default="RUB")
    rate = sa.Column(Exact, nullable=False)
    #: cbr (imported) or manual (corrected by Finance)
    source = sa.Column(sa.String(10), nullable=False, default="cbr")
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class ReconImport(Model):
    """One import of the network's order report; the same file twice is one import."""

    __tablename__ = "recon_import"

    id = sa.Column(sa.Integer, primary_key=True)
    digest = sa.Column(sa.String(64), nullable=False, unique=True)
    filename = sa.Column(sa.String(200), nullable=False, default="")
    imported_by = sa.Column(sa.String(120), nullable=False)
    imported_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    rows = sa.Column(sa.Integer, nullable=False, default=0)
    errors = sa.Column(sa.JSON, nullable=False, default=list)

    lines = relationship("ReconLine", back_populates="recon_import", order_by="ReconLine.line")


class ReconLine(Model):
    """A difference between the network's report and our orders (or a match)."""

    __tablename__ = "recon_line"

    id = sa.Column(sa.Integer, primary_key=True)
    import_id = sa.Column(sa.Integer, sa.ForeignKey("recon_import.id"), nullable=False, index=True)
    line = sa.Column(sa.Integer, nullable=False)
    network_order_id = sa.Column(sa.String(80), nullable=False)
    #: match, missing_here, missing_there, status_drift, amount_drift
    kind = sa.Column(sa.String(16), nullable=False)
    ours = sa.Column(sa.JSON, nullable=True)
    theirs = sa.Column(sa.JSON, nullable=True)
    applied_at = sa.Column(UtcDateTime, nullable=True)
    applied_by = sa.Column(sa.String(120), nullable=True)
    # --- four eyes: a line that would create or raise cashback is proposed, then approved
    #: The customer whose cashback the line would raise, and by how much (USD, at proposal).
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=True, index=True)
    raise_usd = sa.Column(Money, nullable=True)
    proposed_by = sa.Column(sa.String(120), nullable=True)
    proposed_at = sa.Column(UtcDateTime, nullable=True)
    proposal_reason = sa.Column(sa.Text, nullable=True)
    #: approved or rejected, by someone other than the proposer and the importer.
    decision = sa.Column(sa.String(10), nullable=True)
    decided_by = sa.Column(sa.String(120), nullable=True)
    decided_at = sa.Column(UtcDateTime, nullable=True)

    recon_import = relationship("ReconImport", back_populates="lines")
