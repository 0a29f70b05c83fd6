"""The database-backed handle store bound to every provider at start-up.

Each call runs in its own short transaction on its own connection and commits before it
returns: a number is durable before the provider hears of it, whatever the caller's
transaction does later.  ``number_for`` is idempotent per (provider, key) through a unique
constraint; ``next_counter`` increments one row under its row lock (PostgreSQL) or the
database lock (SQLite), so values never repeat or go back across processes and hosts.

``take`` (a rate budget, e.g. QIWI's history calls a minute) keeps ONE ``provider_counter`` row
per bucket, so rows stay bounded whatever the number of windows: its ``value`` encodes
``window * WINDOW_FACTOR + granted``.  A single ``UPDATE … RETURNING`` (under the row lock on
PostgreSQL — a waiting updater re-checks the condition on the new row version — or the database
lock on SQLite) either starts a newer window at 1, or adds 1 while ``granted < limit``; no row
returned means the budget is spent.  A stored window ahead of the caller's (a host whose clock
is behind) is counted against, never moved back.  The row is no counter of ``next_counter``:
callers give budget buckets names of their own (QIWI: ``history:<wallet>``).
"""
from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models.payouts import ProviderCounter, ProviderHandle
from portal.models.types import utcnow
from plugins.handles import window_of
from portal.services.db import insert_or_ignore

#: ``provider_counter.value`` of a budget row = window number * WINDOW_FACTOR + units granted.
WINDOW_FACTOR = 1_000_000


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

    def take(self, provider_code: str, bucket: str, window_seconds: int, limit: int,
             now: float) -> bool:
        window = window_of(now, window_seconds)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit < WINDOW_FACTOR:
            raise ValueError(f"limit must be an integer in [0, {WINDOW_FACTOR})")
        if len(bucket) > ProviderCounter.__table__.c.name.type.length:
            raise ValueError(f"budget bucket name too long: {bucket!r}")
        if limit == 0:
            return False
        table = ProviderCounter.__table__
        stored_window, granted = table.c.value // WINDOW_FACTOR, table.c.value % WINDOW_FACTOR
        newer = stored_window < sa.literal(window, sa.BigInteger)  # a new window: start it at 1
        with self._engine().begin() as conn:
            conn.execute(insert_or_ignore(conn, table).values(provider_code=provider_code, name=bucket, value=0)
                         .on_conflict_do_nothing(index_elements=["provider_code", "name"]))
            row = conn.execute(
                table.update()
                .where(table.c.provider_code == provider_code, table.c.name == bucket,
                       sa.or_(newer, granted < limit))
                .values(value=sa.case((newer, sa.literal(window * WINDOW_FACTOR + 1, sa.BigInteger)),
                                      else_=table.c.value + 1))
                .returning(table.c.value)).first()
            return row is not None
