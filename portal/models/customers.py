"""Customers: people who earn cashback.  Their login is a Flask-AppBuilder user."""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy.orm import relationship

from .types import UtcDateTime, utcnow


class Customer(Model):
    __tablename__ = "customer"

    id = sa.Column(sa.Integer, primary_key=True)
    #: The login (ab_user); nullable for customers known only from the network (orphans).
    user_id = sa.Column(sa.Integer, sa.ForeignKey("ab_user.id"), unique=True, nullable=True)
    email = sa.Column(sa.String(254), nullable=False, unique=True)
    name = sa.Column(sa.String(120), nullable=False, default="")
    #: Preferred language for messages: ``ru`` or ``en``.
    locale = sa.Column(sa.String(8), nullable=False, default="ru")
    #: ISO 3166 alpha-2, informative only: customers come from every country.
    country = sa.Column(sa.String(2), nullable=True)
    is_blocked = sa.Column(sa.Boolean, nullable=False, default=False)
    block_reason = sa.Column(sa.String(500), nullable=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow)
    #: The code in the customer's referral link ``/r/<code>`` (random, unique; set on first use).
    referral_code = sa.Column(sa.String(16), nullable=True, unique=True, index=True)
    #: The referrer (first touch, kept on the account even when flagged).
    referred_by_id = sa.Column(sa.Integer, sa.ForeignKey("customer.id"), nullable=True, index=True)
    #: Why the referral attribution was refused or flagged for Support (NULL: clean).
    referral_flag = sa.Column(sa.String(200), nullable=True)
    #: When the customer confirmed the e-mail (self-registration); NULL: not (yet) confirmed.
    email_confirmed_at = sa.Column(UtcDateTime, nullable=True)
    #: HMAC of the registration device fingerprint (user agent, languages, client fingerprint).
    #: Set only for self-registered customers: they must confirm their e-mail before withdrawing.
    registration_fingerprint = sa.Column(sa.String(64), nullable=True, index=True)
    #: HMAC of the registration IP address under the app secret (like ``ClickVisit.ip_hash``).
    registration_ip_hash = sa.Column(sa.String(64), nullable=True, index=True)
    #: The CPA partner this account belongs to (``partner_id`` of the partner directory), or NULL.
    partner_id = sa.Column(sa.String(64), nullable=True, unique=True, index=True)
    #: Logged in with a CPA-partner account (``portal.services.partners``): its statistics and
    #: withdrawals live in the partner account, not in this cabinet.
    partner_linked = sa.Column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    #: Where the partner's statistics and withdrawals are (from the directory).
    partner_cabinet_url = sa.Column(sa.String(300), nullable=True)
    #: JWTs (access and refresh) issued before this moment are refused: set by a password reset
    #: or change and by linking the account to a partner (``CashbackSecurityManager``).
    tokens_valid_after = sa.Column(UtcDateTime, nullable=True)

    user = relationship(User)
    referred_by = relationship("Customer", remote_side=[id], foreign_keys=[referred_by_id])

    @property
    def awaiting_email_confirmation(self) -> bool:
        """Self-registered (has a registration fingerprint) and not confirmed yet.

        Customers created by staff, the demo or the network import are vouched for.
        """
        return self.registration_fingerprint is not None and self.email_confirmed_at is None

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.email}>"

    def __str__(self) -> str:  # as pages show it (FAB's related columns)
        return f"#{self.id} {self.name} <{self.email}>"
