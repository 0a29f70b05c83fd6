"""The `cashback` commands against PostgreSQL."""
from __future__ import annotations

from portal.extensions import db
from portal.models import AuditRecord, Customer
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
    second = runner.invoke(args=["seed-demo"])
    assert "0 staff, 0 customers, 0 postings added" in second.output
    with app.app_context():
        assert db.session.query(Customer).count() == len(demo._NAMES)
        positive = [c for c in db.session.query(Customer) if ledger.customer_balances(db.session, c.id)["available"] > 0]
        assert len(positive) >= 5
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 0 and "OK" in result.output, result.output
