"""Small database helpers shared by the services."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session


def insert_or_ignore(bind: Session | sa.Connection, table):
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite)."""
    dialect = bind.dialect if isinstance(bind, sa.Connection) else bind.get_bind().dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
