"""The ledger on PostgreSQL: postings, refusals, idempotency, hot accounts, verify."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import current_app

from portal.models import Posting
from portal.services import ledger
from portal.services.audit import Actor
from portal.services.ledger import (InsufficientBalance, ReferenceConflict, UnbalancedPosting, Leg,
                                    customer_account, system_account, transfer)

ACTOR = Actor.system("test")
D = Decimal


def fund(session, customer_id: int, amount: str, ref: str = "fund") -> None:
    """Give a customer available cashback straight from the network receivable."""
    ledger.post(session, kind="test.fund", reference=f"{ref}:{customer_id}", actor=ACTOR,
                legs=transfer(system_account("network_receivable"), customer_account(customer_id, "available"), D(amount)))


def posting_count(session) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(Posting)).scalar_one()


def test_posting_moves_money_and_verifies(ledger_session):
    """A balanced posting updates both balances; verify finds nothing wrong."""
    session = ledger_session
    fund(session, 1, "0.035")
    session.commit()
    assert ledger.balance(session, customer_account(1, "available")) == D("0.035")
    assert ledger.balance(session, system_account("network_receivable")) == D("0.035")
    assert ledger.verify(session).ok


def test_refused_posting_writes_nothing(ledger_session):
    """Spending more than available raises and leaves no posting and no balance change."""
    session = ledger_session
    fund(session, 1, "1.00")
    session.commit()
    before = posting_count(session)
    with pytest.raises(InsufficientBalance) as info:
        ledger.post(session, kind="withdrawal.hold", reference="w1", actor=ACTOR,
                    legs=transfer(customer_account(1, "available"), customer_account(1, "on_hold"), D("1.01")))
    assert info.value.status == 409 and info.value.details["balance"] == "1.000000"
    session.commit()
    assert posting_count(session) == before
    assert ledger.customer_balances(session, 1)["available"] == D("1.00")
    assert ledger.verify(session).ok


def test_refusal_after_an_earlier_leg_and_a_replay_that_would_be_refused_move_nothing(ledger_session):
    """A leg refused after another leg of the posting was fine leaves both balances as they
    were; replaying a posting that the balance could no longer pay returns the first one."""
    session = ledger_session
    fund(session, 6, "1.00")
    hold = transfer(customer_account(6, "available"), customer_account(6, "on_hold"), D("1.00"))
    first = ledger.post(session, kind="withdrawal.hold", reference="hold-6", actor=ACTOR, legs=hold)
    session.commit()
    again = ledger.post(session, kind="withdrawal.hold", reference="hold-6", actor=ACTOR, legs=hold)
    assert (again.posting_id, again.created) == (first.posting_id, False)
    before = posting_count(session)
    with pytest.raises(InsufficientBalance) as info:  # available +2 is fine, on_hold -2 is not
        ledger.post(session, kind="test.release", reference="release-6", actor=ACTOR,
                    legs=transfer(customer_account(6, "on_hold"), customer_account(6, "available"), D("2.00")))
    assert info.value.details["account"] == "customer:6:on_hold" and info.value.details["balance"] == "1.000000"
    session.commit()
    assert posting_count(session) == before
    balances = ledger.customer_balances(session, 6)
    assert (balances["available"], balances["on_hold"]) == (D("0"), D("1.00"))
    assert ledger.verify(session).ok


def test_same_reference_is_a_noop(ledger_session):
    """Posting twice with one reference returns the first posting and moves money once."""
    session = ledger_session
    legs = transfer(system_account("network_receivable"), customer_account(2, "pending"), D("0.50"))
    first = ledger.post(session, kind="cashback.pending", reference="ev-1", legs=legs, actor=ACTOR)
    second = ledger.post(session, kind="cashback.pending", reference="ev-1", legs=legs, actor=ACTOR)
    session.commit()
    assert first.created and not second.created and first.posting_id == second.posting_id
    assert ledger.customer_balances(session, 2)["pending"] == D("0.50")


def test_same_reference_with_other_amount_conflicts(ledger_session):
    """A reference reused with different legs is refused, not silently ignored."""
    session = ledger_session
    ledger.post(session, kind="cashback.pending", reference="ev-2", actor=ACTOR,
                legs=transfer(system_account("network_receivable"), customer_account(3, "pending"), D("0.50")))
    with pytest.raises(ReferenceConflict):
        ledger.post(session, kind="cashback.pending", reference="ev-2", actor=ACTOR,
                    legs=transfer(system_account("network_receivable"), customer_account(3, "pending"), D("0.51")))


@pytest.mark.parametrize("legs", [
    [Leg(customer_account(1, "pending"), D("1"))],
    [Leg(customer_account(1, "pending"), D("1")), Leg(system_account("network_receivable"), D("-0.99"))],
    [Leg(customer_account(1, "pending"), D("0.0000001")), Leg(system_account("network_receivable"), D("-0.0000001"))],
    [Leg(customer_account(1, "pending"), D("0")), Leg(system_account("network_receivable"), D("0"))],
    [Leg(customer_account(1, "pending", "USD"), D("1")), Leg(system_account("network_receivable", "RUB"), D("-1"))],
])
def test_invalid_postings_are_refused(ledger_session, legs):
    """Unbalanced, single-leg, over-precise, zero and cross-currency postings are refused."""
    session = ledger_session
    with pytest.raises(UnbalancedPosting):
        ledger.post(session, kind="bad", reference="bad", legs=legs, actor=ACTOR)
    assert posting_count(session) == 0


def test_hot_account_spreads_over_shards(ledger_session):
    """Postings to a system account land on different balance rows that sum up right."""
    session = ledger_session
    for i in range(40):
        ledger.post(session, kind="cashback.pending", reference=f"hot-{i}", actor=ACTOR,
                    legs=transfer(system_account("network_receivable"), customer_account(i % 5 + 1, "pending"), D("0.01")))
    session.commit()
    shards = session.execute(sa.text(
        "SELECT count(*) FROM ledger_balance b JOIN ledger_account a ON a.id = b.account_id "
        "WHERE a.name = 'network_receivable' AND b.balance <> 0")).scalar_one()
    assert shards > 1
    assert ledger.balance(session, system_account("network_receivable")) == D("0.40")
    assert ledger.verify(session).ok


def test_accounts_are_opened_by_the_posting_with_their_names_exact(ledger_session):
    """A first posting opens its accounts (hot ones with LEDGER_HOT_SHARDS balance rows), even
    when a name holds characters an array literal would have to quote."""
    session = ledger_session
    shards = current_app.config["LEDGER_HOT_SHARDS"]
    odd = system_account("provider_float", sub='we"ird,{sub}\\ code')
    ledger.post(session, kind="test.odd", reference="odd-1", actor=ACTOR,
                legs=transfer(odd, customer_account(3, "available"), D("1.25")))
    session.commit()
    assert ledger.balance(session, odd) == D("1.25")
    assert session.execute(sa.text("SELECT name, shards FROM ledger_account WHERE kind = 'provider_float'")).one() \
        == (odd.name, shards)
    rows = session.execute(sa.text("SELECT count(*) FROM ledger_balance b JOIN ledger_account a "
                                   "ON a.id = b.account_id WHERE a.kind = 'provider_float'")).scalar_one()
    assert rows == shards > 1
    assert ledger.customer_balances(session, 3)["available"] == D("1.25")
    assert ledger.verify(session).ok


def test_receivable_nets_against_cashback(ledger_session):
    """A clawback beyond available is booked as a customer receivable (shown positive)."""
    session = ledger_session
    fund(session, 4, "0.10")
    ledger.post(session, kind="cashback.clawback", reference="claw-1", actor=ACTOR, legs=[
        Leg(customer_account(4, "available"), D("-0.10")),
        Leg(customer_account(4, "receivable"), D("-0.05")),
        Leg(system_account("network_receivable"), D("0.15")),
    ])
    session.commit()
    balances = ledger.customer_balances(session, 4)
    assert balances["available"] == 0 and balances["receivable"] == D("0.05")
    assert ledger.verify(session).ok


def test_verify_detects_tampering(app, session, customers):
    """A balance changed behind the ledger's back is reported, and the CLI exits 1."""
    fund(session, 5, "2.00")
    session.commit()
    session.execute(sa.text("UPDATE ledger_balance SET balance = balance + 1 WHERE account_id = "
                            "(SELECT id FROM ledger_account WHERE name = 'customer:5:available')"))
    session.commit()
    report = ledger.verify(session)
    assert not report.ok and "balance mismatch: customer:5:available" in report.summary()
    result = app.test_cli_runner().invoke(args=["verify-ledger"])
    assert result.exit_code == 1 and "PROBLEM" in result.output
