"""Small database helpers shared by the services."""
from __future__ import annotations

from sqlalchemy.orm import Session


def insert_or_ignore(session: Session, table):
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
