"""How many statements a payout's submit job sends to PostgreSQL (the worker's hot path).

Not a timing: a count of the statements sent to PostgreSQL while ``submit_payout`` pays one
approved payout, so that a change which adds round trips to every payout shows up here.
"""
from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.tasks import payouts as jobs
from tests.integration.test_payouts import world, withdraw  # noqa: F401  (fixture)


def test_submit_sends_two_statements(app, session, world, testbank, monkeypatch):
    import psycopg

    testbank.settle_at_once = True  # the bench's sandbox: one call, one outcome
    first, second = withdraw(session, app, key="k1").payout.id, withdraw(session, app, key="k2").payout.id
    assert jobs.submit_payout(first) == "succeeded"  # accounts created on first use exist now
    session.commit()
    session.expire_all()
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def count(cursor, query, *args, **kwargs):  # every statement, the raw connection's included
        sent.append(" ".join(str(query).split()))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", count)
    try:
        assert jobs.submit_payout(second) == "succeeded"
    finally:
        monkeypatch.undo()
        testbank.settle_at_once = False
    print("\n".join(sent))
    sent = [q for q in sent if q != ";"]  # the pool's pre-ping as a transaction takes its connection
    # claim: payout_claim() (lock, attempt, payout, audit); result: payout_apply_success() (lock,
    # attempt, payout, audit, ledger_post_named()); each committed (was 9 + the ledger call with
    # the one-statement locks, 18 before them)
    assert len(sent) == 2 and "payout_claim" in sent[0] and "payout_apply_success" in sent[1], sent
