"""Write audit records in the same transaction as the change they describe.

``record`` only adds a row to the session: the caller's commit makes the change and
its audit record durable together, and a rollback drops both.
"""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from portal.models import AuditRecord


@dataclass(frozen=True)
class Actor:
    """Who acts: a login (``user_id`` set) or the system (``user_id`` None)."""

    label: str
    user_id: int | None = None

    @classmethod
    def user(cls, user) -> "Actor":
        return cls(label=f"user:{user.username}", user_id=user.id)

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=f"system:{what}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def record(session: Session, actor: Actor, action: str, object_type: str, object_id: Any,
           *, reason: str | None = None, before: dict | None = None,
           after: dict | None = None) -> AuditRecord:
    """Add one audit record to ``session`` (not committed here)."""
    if "." not in action:
        raise ValueError(f"audit action must be a dotted code, got {action!r}")
    row = AuditRecord(
        actor=actor.label, actor_id=actor.user_id, action=action,
        object_type=object_type, object_id=str(object_id), reason=reason,
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
    )
    session.add(row)
    return row
