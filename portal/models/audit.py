"""The audit log: who did what to which object, why, when, with before/after."""
from __future__ import annotations

import sqlalchemy as sa
from flask_appbuilder.models.sqla import Model

from .types import BigId, UtcDateTime, utcnow


class AuditRecord(Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_object", "object_type", "object_id"),
        {"extend_existing": True},
    )

    id = sa.Column(BigId, primary_key=True)
    created_at = sa.Column(UtcDateTime, nullable=False, default=utcnow, index=True)
    #: The staff or customer login that acted; NULL for the system (workers, CLI).
    actor_id = sa.Column(sa.Integer, sa.ForeignKey("ab_user.id"), nullable=True)
    #: Human-readable actor: ``user:<username>``, ``system:janitor``, ``cli:seed-demo`` …
    actor = sa.Column(sa.String(120), nullable=False)
    #: Dotted action code, e.g. ``ledger.posting.created``, ``payout.approved``.
    action = sa.Column(sa.String(80), nullable=False, index=True)
    object_type = sa.Column(sa.String(60), nullable=False)
    object_id = sa.Column(sa.String(80), nullable=False)
    reason = sa.Column(sa.Text, nullable=True)
    before = sa.Column(sa.JSON, nullable=True)
    after = sa.Column(sa.JSON, nullable=True)

    def __repr__(self) -> str:
        return f"<Audit {self.action} {self.object_type}:{self.object_id} by {self.actor}>"
