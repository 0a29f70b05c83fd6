"""The `cashback` commands against PostgreSQL."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditRecord, Click, Customer, FxRate, NetworkEvent, Order, Promo
from portal.services import demo, ledger


def test_create_admin_with_flags(app, clean_db):
    """create-admin makes an Admin login and audits it; a second one with the same name is refused."""
    runner = app.test_cli_runner()
    args = ["create-admin", "--username", "boss", "--email", "boss@test.local", "--password", "s3cret-pass"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="boss")
        assert [r.name for r in user.roles] == ["Admin"]
        assert db.session.query(AuditRecord).filter_by(action="user.created").count() == 1
    again = runner.invoke(args=args)
    assert again.exit_code != 0 and "exists already" in again.output


def test_create_admin_interactive(app, clean_db):
    """Without flags it prompts, with a hidden, confirmed password."""
    result = app.test_cli_runner().invoke(args=["create-admin"], input="ida\nida@test.local\npw-12345\npw-12345\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert app.appbuilder.sm.find_user(username="ida") is not None


def test_seed_demo_then_verify_ledger(app, clean_db):
    """seed-demo fills believable data, is idempotent, and leaves verify-ledger clean."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        counts = {m.__name__: db.session.query(m).count() for m in (Click, NetworkEvent, Order, FxRate, Promo)}
    second = runner.invoke(args=["seed-demo"])
    assert "0 staff, 0 customers, 0 postings added" in second.output
    with app.app_context():
        assert {m.__name__: db.session.query(m).count() for m in (Click, NetworkEvent, Order, FxRate, Promo)} == counts
        assert db.session.query(Customer).count() == len(demo._NAMES)
        positive = [c for c in db.session.query(Customer) if ledger.customer_balances(db.session, c.id)["available"] > 0]
        assert len(positive) >= 5
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 0 and "OK" in result.output, result.output


def test_seed_demo_has_orders_in_every_state(app, clean_db):
    """Rates for 30 days, a running and a past promo, clicks with repeats, orders in every state."""
    assert app.test_cli_runner().invoke(args=["seed-demo"]).exit_code == 0
    with app.app_context():
        session = db.session
        states = demo.order_states(session)
        assert all(states[s] >= 1 for s in states), states
        rates = session.query(FxRate).filter_by(base="USD").all()
        assert len(rates) >= 20 and {r.source for r in rates} == {"cbr"}
        assert max(r.day for r in rates) - min(r.day for r in rates) >= dt.timedelta(days=27)
        assert all(r.rate == demo.usd_rub_on(r.day) for r in rates)
        now = dt.datetime.now(dt.timezone.utc)
        promos = session.query(Promo).all()
        assert sorted(p.starts_at <= now < p.ends_at for p in promos) == [False, True]
        assert session.query(sa.func.max(Click.repeat_count)).scalar() >= 4
        customers_with_clicks = session.query(sa.func.count(sa.distinct(Click.customer_id))).scalar()
        assert len(demo._NAMES) > customers_with_clicks >= len(demo._NAMES) * 3 // 4
        # deterministic event ids; the late "paid" of a confirmed-before-paid order changed nothing
        assert session.query(NetworkEvent).filter_by(event_id="demo-1-1:paid").one()
        assert session.query(NetworkEvent).filter_by(outcome="stale").count() >= 1
        assert session.query(NetworkEvent).filter(NetworkEvent.currency == "RUB").count() >= 1
        # the clawback: customer 2 withdrew, an order was cancelled, a later order paid part back
        clawback = session.query(Customer).filter_by(email="customer2@demo.cashback.local").one()
        balances = ledger.customer_balances(session, clawback.id)
        assert balances["receivable"] > 0 and balances["available"] == 0
        # cashback from the running promo is partly paid by us
        assert ledger.balance(session, ledger.system_account("promo_expense")) > 0
        assert ledger.verify(session).ok


def test_sandbox_command_serves_a_providers_sandbox(app, pg_url):
    """`cashback sandbox test --port P` serves Test Bank; an unknown code is a clear error."""
    import os
    import socket
    import subprocess
    import sys

    import requests

    from tests.conftest import wait_for_http

    assert "no provider 'nope'" in app.test_cli_runner().invoke(args=["sandbox", "nope"]).output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": pg_url, "CASHBACK_ENV": "testing"}
    proc = subprocess.Popen([sys.executable, "-c", "from portal.cli import main; main()", "sandbox", "test",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # readiness: the process imports the app first (many seconds on a busy machine)
        wait_for_http(f"http://127.0.0.1:{port}/balance", process=proc, ok=(200, 401))
        answer = requests.get(f"http://127.0.0.1:{port}/balance", auth=("merchant", "sandbox-secret"), timeout=30)
        assert answer.status_code == 200 and answer.json()["currency"] == "RUB"
        assert requests.get(f"http://127.0.0.1:{port}/balance", auth=("merchant", "wrong"), timeout=30).status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
