"""The database-backed handle store bound to every provider at start-up.

Each call runs in its own short transaction on its own connection and commits before it
returns: a number is durable before the provider hears of it, whatever the caller's
transaction does later.  ``number_for`` is idempotent per (provider, key) through a unique
constraint; ``next_counter`` increments one row under its row lock (PostgreSQL) or the
database lock (SQLite), so values never repeat or go back across processes and hosts.
"""
from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models.payouts import ProviderCounter, ProviderHandle
from portal.models.types import utcnow
from portal.services.db import insert_or_ignore


class DbHandleStore:
    """Numbers from the app's database (call inside an app context)."""

    def _engine(self) -> sa.Engine:
        return db.engine

    def number_for(self, provider_code: str, idempotency_key: str) -> int:
        table = ProviderHandle.__table__
        with self._engine().begin() as conn:
            insert = insert_or_ignore(conn, table).values(provider_code=provider_code, idempotency_key=idempotency_key,
                                                 created_at=utcnow())
            conn.execute(insert.on_conflict_do_nothing(index_elements=["provider_code", "idempotency_key"]))
            return conn.execute(sa.select(table.c.id).where(
                table.c.provider_code == provider_code, table.c.idempotency_key == idempotency_key)).scalar_one()

    def next_counter(self, provider_code: str, name: str) -> int:
        table = ProviderCounter.__table__
        with self._engine().begin() as conn:
            conn.execute(insert_or_ignore(conn, table).values(provider_code=provider_code, name=name, value=0)
                         .on_conflict_do_nothing(index_elements=["provider_code", "name"]))
            return conn.execute(table.update().where(table.c.provider_code == provider_code, table.c.name == name)
                                .values(value=table.c.value + 1).returning(table.c.value)).scalar_one()
