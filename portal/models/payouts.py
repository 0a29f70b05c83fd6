"""Withdrawals and payouts: saved payout details, payouts, their approvals and attempts,
and the per-provider switchboard (kill switch, circuit breaker, last known balance)."""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from sqlalchemy.orm import relationship

from .types import BigId, Exact, Money, UtcDateTime, utcnow


class PayoutDetails(Model):
    """Where a customer wants money sent: a provider and a normalized account."""

    __tablename__ = "payout_details"
    __table_args__ = (
        sa.UniqueConstraint("customer_id", "provider_code", "account", name="uq_payout_details"),
        sa.Index("ix_payout_details_account", "provider_code", "account"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    provider_code = sa.Column(sa.String(30), nullable=False)
    #: Normalized by the provider's ``validate_account``.
    account = sa.Column(sa.String(64), nullable=False)
    is_active = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    customer = relationship("Customer")

    def __repr__(self) -> str:
        return f"{self.provider_code}:{mask(self.account)}"


def mask(account: str | None) -> str:
    """``41001614575714`` -> ``4100••••5714``: enough to recognise, not to reuse."""
    if not account:
        return ""
    if len(account) <= 6:
        return account[:1] + "•" * (len(account) - 1)
    return account[:4] + "••••" + account[-4:]


class Payout(Model):
    """A customer's withdrawal and its way to the provider.  The row is the truth."""

    __tablename__ = "payout"
    __table_args__ = (
        sa.UniqueConstraint("customer_id", "request_key", name="uq_payout_request_key"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    customer_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=False, index=True)
    details_id = sa.Column(sa.Integer, sa.ForeignKey("payout_details.id"), nullable=False)
    provider_code = sa.Column(sa.String(30), nullable=False, index=True)
    #: Snapshot of the normalized account at request time.
    account = sa.Column(sa.String(64), nullable=False)
    #: The client's ``Idempotency-Key``: one withdrawal per key per customer.
    request_key = sa.Column(sa.String(80), nullable=False)
    #: Taken from the customer's available balance, USD (whole cents).
    amount_usd = sa.Column(Money, nullable=False)
    #: What the provider sends, in its currency (RUB: converted at ``fx_rate``, rounded down).
    payout_currency = sa.Column(sa.String(3), nullable=False)
    payout_amount = sa.Column(Money, nullable=False)
    fx_rate = sa.Column(Exact, nullable=True)
    #: Our cost at the provider (never charged to the customer), payout currency.
    fee = sa.Column(Money, nullable=True)
    #: requested, in_review, approved, submitting, succeeded, failed, unknown, rejected,
    #: reversed, cancelled
    state = sa.Column(sa.String(12), nullable=False, index=True)
    review_reasons = sa.Column(sa.JSON, nullable=False, default=list)
    #: Finance approvals needed (2 above the second threshold).
    approvals_needed = sa.Column(sa.SmallInteger, nullable=False, default=0)
    failure_code = sa.Column(sa.String(40), nullable=True)
    failure_message = sa.Column(sa.String(400), nullable=True)
    #: When a worker may try again (retry back-off, paused provider).
    next_attempt_at = sa.Column(UtcDateTime, nullable=True)
    #: Set by the janitor when no automatic step can resolve the payout.
    needs_attention = sa.Column(sa.Boolean, nullable=False, default=False)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, index=True)
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    finished_at = sa.Column(UtcDateTime, nullable=True)

    customer = relationship("Customer")
    details = relationship("PayoutDetails")
    approvals = relationship("PayoutApproval", back_populates="payout", order_by="PayoutApproval.id")
    attempts = relationship("PayoutAttempt", back_populates="payout", order_by="PayoutAttempt.number")

    def __repr__(self) -> str:
        return f"payout {self.id} ({self.state})"


class PayoutApproval(Model):
    """One Finance decision on a payout in review (maker-checker)."""

    __tablename__ = "payout_approval"
    __table_args__ = (
        sa.UniqueConstraint("payout_id", "user_id", name="uq_payout_approval_user"),
        {"extend_existing": True},
    )

    id = sa.Column(sa.Integer, primary_key=True)
    payout_id = sa.Column(sa.Integer, sa.ForeignKey("payout.id"), nullable=False, index=True)
    user_id = sa.Column(sa.Integer, sa.ForeignKey("ab_user.id"), nullable=False)
    #: approve or reject
    decision = sa.Column(sa.String(10), nullable=False)
    reason = sa.Column(sa.String(500), nullable=False)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)

    payout = relationship("Payout", back_populates="approvals")


class PayoutAttempt(Model):
    """One call (and its follow-up status checks) to a provider, under one idempotency key.

    Written and committed before the provider is called, so a crash leaves a row that
    the janitor can resolve by asking about the same key.
    """

    __tablename__ = "payout_attempt"
    __table_args__ = (
        sa.UniqueConstraint("payout_id", "number", name="uq_payout_attempt_number"),
        {"extend_existing": True},
    )

    id = sa.Column(BigId, primary_key=True)
    payout_id = sa.Column(sa.Integer, sa.ForeignKey("payout.id"), nullable=False, index=True)
    number = sa.Column(sa.SmallInteger, nullable=False)
    idempotency_key = sa.Column(sa.String(64), nullable=False, unique=True)
    #: submitting, accepted, pending, succeeded, failed_retryable, failed_final, unknown, reversed
    status = sa.Column(sa.String(20), nullable=False, index=True)
    error_code = sa.Column(sa.String(40), nullable=True)
    provider_reference = sa.Column(sa.String(120), nullable=True)
    #: For staff only: the provider's own words.
    raw_message = sa.Column(sa.String(1000), nullable=True)
    checks = sa.Column(sa.Integer, nullable=False, default=0)
    next_check_at = sa.Column(UtcDateTime, nullable=True, index=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    payout = relationship("Payout", back_populates="attempts")


class ProviderState(Model):
    """The switchboard of one provider: kill switch, circuit breaker, last balance."""

    __tablename__ = "provider_state"

    code = sa.Column(sa.String(30), primary_key=True)
    #: The kill switch (Finance/Admin): off = no new withdrawals, queued ones held.
    enabled = sa.Column(sa.Boolean, nullable=False, default=True)
    disabled_reason = sa.Column(sa.String(400), nullable=True)
    #: closed (normal), open (paused until ``paused_until`` or by hand)
    breaker = sa.Column(sa.String(10), nullable=False, default="closed")
    paused_until = sa.Column(UtcDateTime, nullable=True)
    pause_reason = sa.Column(sa.String(400), nullable=True)
    consecutive_failures = sa.Column(sa.Integer, nullable=False, default=0)
    balance = sa.Column(Money, nullable=True)
    balance_checked_at = sa.Column(UtcDateTime, nullable=True)
    updated_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class ProviderHandle(Model):
    """A provider's numeric handle for one of our idempotency keys (QIWI id, WebMoney tranid)."""

    __tablename__ = "provider_handle"
    __table_args__ = (
        sa.UniqueConstraint("provider_code", "idempotency_key", name="uq_provider_handle_key"),
        {"extend_existing": True},
    )

    #: The number handed to the provider: allocated by the database, so unique and increasing.
    id = sa.Column(BigId, primary_key=True)
    provider_code = sa.Column(sa.String(30), nullable=False)
    idempotency_key = sa.Column(sa.String(64), nullable=False)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)


class ProviderCounter(Model):
    """A strictly increasing counter of a provider's protocol (WebMoney's ``reqn``)."""

    __tablename__ = "provider_counter"

    provider_code = sa.Column(sa.String(30), primary_key=True)
    name = sa.Column(sa.String(30), primary_key=True)
    value = sa.Column(sa.BigInteger, nullable=False, default=0)
