"""``apply_order_event()`` (migrations 0017, 0018) against the Python path, on random event sequences.

On PostgreSQL ``orders.receive_event`` applies an event server-side in one call; SQLite (and
whatever the function hands back) runs ``orders._receive_python``.  Here both run on the same
PostgreSQL database, side by side, on twin customers (1 ↔ 11, 2 ↔ 12, 3 ↔ 13: same clicks, rates
and promos, same history): every event goes once through each path, and each answer, each
order's state, each posting and each balance must come out the same.  Customer 3 (and its
twin 13) has a referrer, so the function hands its cashback to the Python path; a day without
an RUB rate makes both refuse.
"""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from portal.models import Click, Customer, FxRate, NetworkEvent, Order, Promo
from portal.services import fx, ledger, orders
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer

D = Decimal
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
#: (function path customer, Python path customer); customer 3 / 13 was referred (by 5 / 15).
TWINS = ((1, 11), (2, 12), (3, 13))
RATE = D("7.000000")
COUNTER = itertools.count()

amounts = st.decimals(min_value=D("0"), max_value=D("500"), places=2)
events = st.lists(
    st.fixed_dictionaries({
        "order": st.integers(0, 3),  # 3: an orphan (unknown sub-id)
        "status": st.sampled_from(orders.STATUSES),
        "amount": amounts,
        "commission_share": st.sampled_from([D("0"), D("0.03"), D("0.08"), D("0.2")]),
        "refunded_share": st.sampled_from([D("0"), D("0.25"), D("0.5"), D("1")]),
        "currency": st.sampled_from(["USD", "USD", "RUB"]),
        "hours": st.integers(0, 72),  # RUB has no rate before 2026-11-21 (the first 12 hours)
        "coupon": st.booleans(),
        "in_cart": st.booleans(),
        "channel": st.sampled_from([None, "web", "app"]),
        "replay": st.sampled_from([None, None, None, "same", "other"]),
        "withdraw": st.sampled_from([None, None, D("0.5"), D("1")]),  # share of available moved on hold first
    }),
    min_size=1, max_size=14,
)
setups = st.tuples(st.sampled_from(TWINS), st.sampled_from([None, "cap", "pays", "both"]), st.sampled_from([RATE, D("12.5")]))


@pytest.fixture
def twins(session, customers):
    session.execute(sa.update(Customer).where(Customer.id == 3).values(referred_by_id=5))
    session.execute(sa.update(Customer).where(Customer.id == 13).values(referred_by_id=15))
    for day, rate in ((dt.date(2026, 11, 21), D("92.4512")), (dt.date(2026, 11, 22), D("91.3333"))):
        session.add(FxRate(day=day, base="USD", quote="RUB", rate=rate, source="cbr"))
    session.commit()
    return session


def _click(session, customer_id: int, sub_id: str, rate: Decimal, promo: Promo | None) -> None:
    session.add(Click(sub_id=sub_id, customer_id=customer_id, rate=rate, promo_id=promo.id if promo else None,
                      product_id="1005001234567890", canonical_url="https://aliexpress.com/item/1005001234567890.html",
                      channel="web", created_at=T0 - dt.timedelta(hours=1)))


def _body(ev: dict, prefix: str, n: int, sub_ids: list[str]) -> dict:
    amount = ev["amount"]
    at = T0 + dt.timedelta(hours=ev["hours"])
    body = {"event_id": f"{prefix}e{n}", "order_id": f"{prefix}o{ev['order']}",
            "sub_id": sub_ids[ev["order"]] if ev["order"] < 3 else f"{prefix}unknown",
            "status": ev["status"], "order_amount": str(amount), "currency": ev["currency"],
            "commission": str((amount * ev["commission_share"]).quantize(D("0.01"))),
            "event_time": at.isoformat(), "coupon_used": ev["coupon"], "items_in_cart_before_click": ev["in_cart"]}
    if ev["status"] == "refunded":
        body["refunded_amount"] = str((amount * ev["refunded_share"]).quantize(D("0.01")))
    if ev["channel"]:
        body["channel"] = ev["channel"]
    return body


def _apply(session, body: dict, python: bool):
    event = orders.parse_event(body, "epn")
    try:
        if python:
            out = orders._receive_python(session, event, default_rate=RATE, actor=Actor.system("network"))
        else:
            out = orders.receive_event(session, event, default_rate=RATE)
        session.commit()
        return out.outcome, out.duplicate
    except (orders.EventConflict, fx.NoRate) as err:
        session.rollback()
        return type(err).__name__


def _withdraw(session, customer_id: int, share: Decimal) -> None:
    available = ledger.customer_balances(session, customer_id, lock=True)["available"]
    amount = (available * share).quantize(D("0.000001"))
    if amount > 0:
        ledger.post(session, kind="payout.hold", reference=f"hold:{next(COUNTER)}",
                    legs=transfer(customer_account(customer_id, "available"), customer_account(customer_id, "on_hold"),
                                  amount), actor=Actor.system("test"))
    session.commit()


def _orders(session, prefix: str) -> dict:
    skip = {"id", "network_order_id", "sub_id", "click_id", "customer_id", "created_at", "updated_at", "promo_id"}
    rows = session.execute(sa.select(Order).where(Order.network_order_id.like(prefix + "%"))).scalars()
    return {o.network_order_id[len(prefix):]: {c.name: getattr(o, c.name) for c in Order.__table__.columns
                                               if c.name not in skip} for o in rows}


def _events(session, prefix: str) -> dict:
    rows = session.execute(sa.select(NetworkEvent.event_id, NetworkEvent.outcome, NetworkEvent.order_id.is_(None))
                           .where(NetworkEvent.event_id.like(prefix + "%")))
    return {e[len(prefix):]: (outcome, no_order) for e, outcome, no_order in rows}


def _postings(session, prefix: str, customer_id: int) -> list:
    """Each posting of the sequence: kind, reference, memo and legs (customer accounts by kind)."""
    rows = session.execute(sa.text(
        "SELECT p.kind, p.reference, p.memo, a.kind, a.customer_id IS NOT NULL, e.amount FROM ledger_posting p "
        "JOIN ledger_entry e ON e.posting_id = p.id JOIN ledger_account a ON a.id = e.account_id "
        "WHERE p.reference LIKE :r ORDER BY p.id, a.kind"), {"r": f"event:epn:{prefix}%"}).all()
    return [(k, ref.replace(prefix, ""), memo.replace(prefix, ""), kind, is_customer, amount)
            for k, ref, memo, kind, is_customer, amount in rows]


def _run(session, sequence, prefixes, subs, py_customer, answers) -> None:
    for i, ev in enumerate(sequence):
        for c, prefix in prefixes.items():
            if ev["withdraw"]:
                _withdraw(session, c, ev["withdraw"])
            body = _body(ev, prefix, i, subs[c])
            answers[c].append(_apply(session, body, python=c == py_customer))
            if ev["replay"]:
                again = dict(body) if ev["replay"] == "same" else {**body, "order_amount": str(ev["amount"] + 1)}
                answers[c].append(_apply(session, again, python=c == py_customer))


@pytest.mark.slow  # under xdist the slow tests start first
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setup=setups, sequence=events)
def test_function_and_python_path_agree(twins, setup, sequence):
    session = twins
    (fn_customer, py_customer), promo_kind, rate = setup
    n = next(COUNTER)
    prefixes = {fn_customer: f"f{n}-", py_customer: f"p{n}-"}
    promo = None
    if promo_kind:
        promo = Promo(name=f"promo {n}", rate=rate, starts_at=T0 - dt.timedelta(days=1), ends_at=T0 + dt.timedelta(days=9),
                      cap_usd=D("3.5") if promo_kind in ("cap", "both") else None,
                      pays_difference=promo_kind in ("pays", "both"))
        session.add(promo)
        session.flush()
    subs = {c: [f"{prefixes[c]}s{i}" for i in range(3)] for c in prefixes}
    for c in prefixes:
        for sub in subs[c]:
            _click(session, c, sub, rate, promo)
    session.commit()

    handed_back = []
    real = orders._receive_python

    def python_path(session, event, **kwargs):
        handed_back.append(event)
        return real(session, event, **kwargs)

    answers = {c: [] for c in prefixes}
    orders._receive_python = python_path
    try:
        _run(session, sequence, prefixes, subs, py_customer, answers)
    finally:
        orders._receive_python = real
    # The function handed back only what it does not do: a referred customer, an RUB day without a rate.
    assert all(e.event_id.startswith(prefixes[py_customer]) or fn_customer == 3
               or (e.currency == "RUB" and e.event_time < dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc))
               for e in handed_back), handed_back

    session.expire_all()
    assert answers[fn_customer] == answers[py_customer]
    assert _orders(session, prefixes[fn_customer]) == _orders(session, prefixes[py_customer])
    assert _events(session, prefixes[fn_customer]) == _events(session, prefixes[py_customer])
    assert _postings(session, prefixes[fn_customer], fn_customer) == _postings(session, prefixes[py_customer], py_customer)
    assert ledger.customer_balances(session, fn_customer) == ledger.customer_balances(session, py_customer)
    referrer = {1: None, 2: None, 3: 5}[fn_customer]
    if referrer:
        assert ledger.customer_balances(session, referrer) == ledger.customer_balances(session, referrer + 10)


def test_the_function_answers_in_one_round_trip(twins):
    """A new order's paid event: one statement on the wire (the click, the order, the posting inside)."""
    session = twins
    _click(session, 1, "one-trip", RATE, None)
    session.commit()
    statements = []

    def listener(conn, cursor, statement, *args):
        statements.append(statement)

    engine = session.get_bind()
    sa.event.listen(engine, "before_cursor_execute", listener)
    body = {"event_id": "one-trip:paid", "order_id": "one-trip", "sub_id": "one-trip", "status": "paid",
            "order_amount": "100.00", "currency": "USD", "commission": "8.00", "event_time": T0.isoformat()}
    try:
        out = orders.receive_event(session, orders.parse_event(body, "epn"), default_rate=RATE)
        session.commit()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert out.outcome == "applied" and out.duplicate is False
    assert ledger.customer_balances(session, 1)["pending"] == D("7.000000")
    raw = session.execute(sa.text("SELECT count(*) FROM network_event WHERE event_id = 'one-trip:paid'")).scalar_one()
    assert raw == 1
    # Everything went through the raw DBAPI cursor: SQLAlchemy executed no statement for it.
    assert statements == []


@pytest.mark.parametrize("copy", ["same", "other"])
def test_a_copy_sent_while_the_first_is_uncommitted_answers_the_first(twins, pg_url, copy):
    """Both copies pass the replay look-up; the second waits for the first's commit, meets its
    event row, undoes whatever it did and answers the stored one (migration 0018): a duplicate,
    or ``EventConflict`` when its data differ.  One event row, one posting."""
    import threading
    import time

    import psycopg
    from sqlalchemy.orm import Session

    from tests.soak.harness import _conninfo

    session = twins
    _click(session, 1, "race", RATE, None)
    session.commit()
    body = {"event_id": "race:paid", "order_id": "race", "sub_id": "race", "status": "paid",
            "order_amount": "100.00", "currency": "USD", "commission": "8.00", "event_time": T0.isoformat()}
    second = body if copy == "same" else {**body, "order_amount": "120.00"}
    conninfo = _conninfo(pg_url)
    actor = Actor.system("network")
    answers = {}
    with psycopg.connect(conninfo) as first, Session(session.get_bind()) as other:
        out = orders.apply_on_connection(first, orders.parse_event(body, "epn"), RATE, actor, 1)
        assert out.outcome == "applied" and out.duplicate is False
        blocked = other.connection().connection.driver_connection.info.backend_pid

        def run():  # as the postback endpoint does: the function, or the Python path it hands back to
            try:
                answers["second"] = orders.receive_event(other, orders.parse_event(second, "epn"), default_rate=RATE)
                other.commit()
            except orders.EventConflict as err:
                answers["second"] = err
                other.rollback()

        thread = threading.Thread(target=run)
        thread.start()
        with psycopg.connect(conninfo, autocommit=True) as watcher:  # the copy waits on the first's locks
            for _ in range(500):
                waiting = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                          (blocked,)).fetchone()
                if waiting and waiting[0] == "Lock":
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the copy did not wait for the first one")
        first.commit()
        thread.join(30)
    if copy == "same":
        assert answers["second"] == orders.EventOutcome(out.event_row_id, "applied", out.order_id, duplicate=True)
    else:
        assert isinstance(answers["second"], orders.EventConflict)
    session.expire_all()
    assert session.execute(sa.text("SELECT count(*) FROM network_event WHERE event_id = 'race:paid'")).scalar_one() == 1
    assert session.execute(sa.text("SELECT count(*) FROM ledger_posting WHERE reference = 'event:epn:race:paid'")
                           ).scalar_one() == 1
    assert ledger.customer_balances(session, 1)["pending"] == D("7.000000")
