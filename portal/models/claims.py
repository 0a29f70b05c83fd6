"""Missing-cashback claims and the manual credits (ledger adjustments) that resolve them.

States, reason codes and the rules that move a claim live in ``portal.services.claims``.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from sqlalchemy.orm import deferred, relationship

from .types import BigId, Money, UtcDateTime, utcnow


class Claim(Model):
    """A customer's "my cashback is missing" for one order, with the automatic verdict."""

    __tablename__ = "claim"
    __table_args__ = (
        sa.Index("ix_claim_state_since", "state", "state_since"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    #: The order number as the customer typed it (the network's order id).
    order_number = sa.Column(sa.String(80), nullable=False, index=True)
    order_date = sa.Column(sa.Date, nullable=False)
    #: What the customer says they paid, USD (optional).
    amount_usd = sa.Column(Money, nullable=True)
    #: open, diagnosed, escalated, resolved_credit, resolved_rejected
    state = sa.Column(sa.String(20), nullable=False, default="open")
    #: The diagnosis' one reason code (``services.claims.REASONS``); NULL while open.
    reason_code = sa.Column(sa.String(30), nullable=True)
    #: The diagnosis' evidence: what was looked at, the relevant ids and times.
    verdict = sa.Column(sa.JSON, nullable=True)
    #: The templated reply in the customer's language, for Support to edit and send.
    suggested_reply = sa.Column(sa.Text, nullable=False, default="")
    #: What Support sent the customer (the customer sees it).
    reply_sent = sa.Column(sa.Text, nullable=True)
    replied_at = sa.Column(UtcDateTime, nullable=True)
    #: ``customer`` or the staff username that opened it for the customer.
    opened_by = sa.Column(sa.String(120), nullable=False, default="customer")
    #: web (cabinet), api, staff
    channel = sa.Column(sa.String(12), nullable=False, default="web")
    #: Up to ``CLAIM_SCREENSHOT_MAX_BYTES``; loaded only when read (lists stay light).
    screenshot = deferred(sa.Column(sa.LargeBinary, nullable=True))
    #: image/png or image/jpeg (checked by magic bytes)
    screenshot_type = sa.Column(sa.String(20), nullable=True)
    #: When the claim entered its current state: the SLA clock.
    state_since = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    customer = relationship("Customer")
    credits = relationship("ClaimCredit", back_populates="claim", order_by="ClaimCredit.id")

    def __repr__(self) -> str:
        return f"claim #{self.id} ({self.order_number})"


class ClaimCredit(Model):
    """A manual credit for a claim: proposed by Support, approved or rejected by Finance (four eyes)."""

    __tablename__ = "claim_credit"

    id = sa.Column(sa.Integer, primary_key=True)
    claim_id = sa.Column(sa.Integer, sa.ForeignKey("claim.id"), nullable=False, index=True)
    amount_usd = sa.Column(Money, nullable=False)
    reason = sa.Column(sa.Text, nullable=False)
    #: proposed, approved, rejected
    state = sa.Column(sa.String(12), nullable=False, default="proposed", index=True)
    proposed_by = sa.Column(sa.String(120), nullable=False)
    proposed_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    decided_by = sa.Column(sa.String(120), nullable=True)
    decided_at = sa.Column(UtcDateTime, nullable=True)
    decision_note = sa.Column(sa.Text, nullable=True)
    #: The ledger posting of an approved credit.
    posting_id = sa.Column(BigId, sa.ForeignKey("ledger_posting.id"), nullable=True)

    claim = relationship("Claim", back_populates="credits")

    def __repr__(self) -> str:
        return f"credit #{self.id} for claim #{self.claim_id}"
