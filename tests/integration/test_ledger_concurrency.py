"""Real concurrency on PostgreSQL: row locks keep every cent spent once."""
from __future__ import annotations

import threading
from decimal import Decimal

from portal.extensions import db
from portal.services import ledger
from portal.services.audit import Actor
from portal.services.ledger import InsufficientBalance, customer_account, system_account, transfer

ACTOR = Actor.system("test")


def _run_threads(app, n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads released together; return their outcomes."""
    barrier = threading.Barrier(n)
    outcomes: list = [None] * n

    def target(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes[i] = work(i)
                db.session.commit()
            except Exception as exc:  # collected and asserted on by the caller
                db.session.rollback()
                outcomes[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_twenty_holds_on_one_dollar(app, session, customers):
    """20 threads hold $0.30 each from $1.00: exactly 3 succeed, 17 get the clear error."""
    ledger.post(session, kind="test.fund", reference="fund", actor=ACTOR,
                legs=transfer(system_account("network_receivable"), customer_account(7, "available"), Decimal("1.00")))
    session.commit()

    def hold(i: int):
        return ledger.post(db.session, kind="withdrawal.hold", reference=f"hold-{i}", actor=ACTOR,
                           legs=transfer(customer_account(7, "available"), customer_account(7, "on_hold"), Decimal("0.30")))

    outcomes = _run_threads(app, 20, hold)
    refused = [o for o in outcomes if isinstance(o, InsufficientBalance)]
    assert sum(1 for o in outcomes if isinstance(o, ledger.PostResult)) == 3
    assert len(refused) == 17, outcomes
    session.expire_all()
    balances = ledger.customer_balances(session, 7)
    assert balances["available"] == Decimal("0.10") and balances["on_hold"] == Decimal("0.90")
    assert ledger.verify(session).ok


def test_concurrent_replays_move_money_once(app, session, customers):
    """Ten threads posting one reference create one posting; the rest get it back."""
    legs = transfer(system_account("network_receivable"), customer_account(8, "pending"), Decimal("0.42"))

    outcomes = _run_threads(app, 10, lambda i: ledger.post(
        db.session, kind="cashback.pending", reference="event-42", legs=legs, actor=ACTOR))
    assert all(isinstance(o, ledger.PostResult) for o in outcomes), outcomes
    assert sum(o.created for o in outcomes) == 1 and len({o.posting_id for o in outcomes}) == 1
    session.expire_all()
    assert ledger.customer_balances(session, 8)["pending"] == Decimal("0.42")


def test_crossing_transfers_do_not_deadlock(app, session, customers):
    """A→B and B→A at once, with a hot system account in each posting: all commit."""
    for cid in (9, 10):
        ledger.post(session, kind="test.fund", reference=f"fund-{cid}", actor=ACTOR,
                    legs=transfer(system_account("network_receivable"), customer_account(cid, "available"), Decimal("5.00")))
    session.commit()
    net = system_account("network_receivable")

    def cross(i: int):
        a, b = (9, 10) if i % 2 else (10, 9)
        return ledger.post(db.session, kind="test.cross", reference=f"x-{i}", actor=ACTOR, legs=[
            ledger.Leg(customer_account(a, "available"), Decimal("-0.10")),
            ledger.Leg(customer_account(b, "available"), Decimal("0.09")),
            ledger.Leg(net, Decimal("0.01")),
        ])

    outcomes = _run_threads(app, 16, cross)
    assert all(isinstance(o, ledger.PostResult) for o in outcomes), outcomes
    session.expire_all()
    assert ledger.verify(session).ok
    total = sum(ledger.customer_balances(session, c)["available"] for c in (9, 10))
    assert total == Decimal("10.00") - 16 * Decimal("0.01")
