"""How many statements a payout's submit job sends to PostgreSQL (the worker's hot path).

Not a timing: a count of the statements SQLAlchemy sends while ``submit_payout`` pays one
approved payout, so that a change which adds round trips to every payout shows up here.
"""
from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.tasks import payouts as jobs
from tests.integration.test_payouts import world, withdraw  # noqa: F401  (fixture)


def test_submit_sends_nine_statements(app, session, world, testbank):
    testbank.settle_at_once = True  # the bench's sandbox: one call, one outcome
    first, second = withdraw(session, app, key="k1").payout.id, withdraw(session, app, key="k2").payout.id
    assert jobs.submit_payout(first) == "succeeded"  # accounts created on first use exist now
    session.commit()
    session.expire_all()
    sent: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.split()))

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:  # (the ledger's own ledger_post() call runs on the raw connection: not counted)
        assert jobs.submit_payout(second) == "succeeded"
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
        testbank.settle_at_once = False
    print("\n".join(sent))
    # claim: lock (payout + provider state + newest attempt), audit, payout, attempt;
    # result: lock (payout + attempt + provider state), ledger accounts, audit, payout, attempt
    # (was 18 before the one-statement locks)
    assert len(sent) <= 9, sent
