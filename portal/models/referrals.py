"""Referral reviews: a referral attribution that looks like self-referral, for Support.

The attribution stays on the customer (``Customer.referred_by_id``) with
``Customer.referral_flag`` set; no referral reward is paid while a review is open or
confirmed.  Rules live in ``portal.services.referrals``.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from sqlalchemy.orm import relationship

from .types import UtcDateTime, utcnow


class ReferralReview(Model):
    """Evidence that the referred customer and the referrer may be the same person."""

    __tablename__ = "referral_review"
    __table_args__ = (
        sa.Index("ix_referral_review_state", "state", "created_at"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    #: The referred customer (the account that registered through the link).
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    referrer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    #: Where it was detected: ``registration`` or ``payout_details``.
    stage = sa.Column(sa.String(20), nullable=False, default="registration")
    #: Reason codes, e.g. ``["same_email", "same_device"]``.
    reasons = sa.Column(sa.JSON, nullable=False, default=list)
    #: What matched (hashes, ids, times), never raw secrets.
    evidence = sa.Column(sa.JSON, nullable=False, default=dict)
    #: open, dismissed (not the same person: reward allowed), confirmed (self-referral)
    state = sa.Column(sa.String(12), nullable=False, default="open")
    resolved_by = sa.Column(sa.String(120), nullable=True)
    resolved_at = sa.Column(UtcDateTime, nullable=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    customer = relationship("Customer", foreign_keys=[customer_id])
    referrer = relationship("Customer", foreign_keys=[referrer_id])

    def __repr__(self) -> str:
        return f"referral review #{self.id}"
