"""Property test: any sequence of postings, refusals and replays keeps the ledger sound."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from portal.services import ledger
from portal.services.audit import Actor
from portal.services.ledger import InsufficientBalance, customer_account, system_account, transfer

ACTOR = Actor.system("property")
CUSTOMERS = (1, 2, 3)
#: (operation, source, destination) — account kinds; None = a system account.
MOVES = {
    "paid": (None, "pending"),
    "confirm": ("pending", "available"),
    "cancel": ("pending", None),
    "hold": ("available", "on_hold"),
    "release": ("on_hold", "available"),
    "payout": ("on_hold", None),
}
amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("3"), places=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(sorted(MOVES)), st.sampled_from(CUSTOMERS), amounts),
        st.tuples(st.just("replay"), st.integers(min_value=0, max_value=50), st.just(Decimal(0))),
    ),
    min_size=1, max_size=25,
)


def _key(customer: int, kind: str | None, op: str):
    if kind is not None:
        return customer_account(customer, kind)
    return system_account("provider_float", "USD", "test") if op == "payout" else system_account("network_receivable")


def _fresh_ledger(session) -> None:
    for table in ("ledger_entry", "ledger_posting", "ledger_balance", "ledger_account"):
        session.execute(sa.text(f"DELETE FROM {table}"))
    session.commit()
    ledger.reset_account_cache()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_postings_keep_the_ledger_sound(ledger_session, ops):
    """Stored balances equal the sum of entries, every posting balances, nobody goes below zero."""
    session = ledger_session
    _fresh_ledger(session)
    model = {(c, k): Decimal(0) for c in CUSTOMERS for k in ledger.CUSTOMER_KINDS}
    done: list[tuple[str, list]] = []
    for n, (op, who, amount) in enumerate(ops):
        if op == "replay":
            if not done:
                continue
            reference, legs = done[who % len(done)]
            result = ledger.post(session, kind="prop", reference=reference, legs=legs, actor=ACTOR)
            session.commit()
            assert not result.created
            continue
        src, dst = MOVES[op]
        legs = transfer(_key(who, src, op), _key(who, dst, op), amount)
        overdraw = src is not None and model[(who, src)] < amount
        try:
            ledger.post(session, kind="prop", reference=f"op-{n}", legs=legs, actor=ACTOR)
            session.commit()
        except InsufficientBalance:
            session.rollback()
            assert overdraw
            continue
        assert not overdraw
        done.append((f"op-{n}", legs))
        if src:
            model[(who, src)] -= amount
        if dst:
            model[(who, dst)] += amount
    for c in CUSTOMERS:
        balances = ledger.customer_balances(session, c)
        for kind in ("pending", "available", "on_hold"):
            assert balances[kind] == model[(c, kind)] >= 0
    report = ledger.verify(session)
    assert report.ok, report.summary()
