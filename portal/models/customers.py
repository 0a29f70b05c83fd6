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

    user = relationship(User)

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.email}>"
