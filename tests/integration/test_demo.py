"""seed-demo fills every desk: payouts in every state, a month of dated history, provider
balances, postback rejections — on the embedded SQLite default and on PostgreSQL."""
from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import (AuditRecord, Claim, Payout, PayoutApproval, PostbackRejection, Posting, ProviderState)
from portal.services import dashboard, demo, ledger
from tests.conftest import PREPARED, build_app, dispose_app, login

#: One xdist worker runs this module: each backend is seeded once (module fixtures), not once per xdist worker.
pytestmark = [pytest.mark.xdist_group("test_demo"), pytest.mark.slow]  # slow: the group starts first, not last

#: (role's demo login, page, text of a seeded row the page must show)
DESK_PAGES = [
    ("support", "/claims/desk/", "8100000000005"),
    ("support", "/support/customers/1/timeline", "DEMO-001-1"),
    ("finance", "/finance/dashboard/", "230"),
    ("finance", "/payouts/review/", "230"),
    ("finance", "/payouts/attention/", "unknown"),
    ("finance", "/payouts/providers/", "megafon"),
    ("finance", "/payouts/report/", "yoomoney"),
    ("developer", "/developers/", "bad_signature"),
]
#: pages of another desk each role is refused
REFUSED = {
    "support": ("/finance/dashboard/", "/payouts/review/", "/developers/"),
    "finance": ("/developers/",),
    "developer": ("/claims/desk/", "/support/customers/1/timeline", "/finance/dashboard/", "/payouts/review/"),
}
PASSWORDS = {username: password for username, _role, password in demo.STAFF}


def _seeded_app(url: str):
    app = build_app(url, JOBS_MODE="collect")
    with app.app_context():
        demo.seed(db.session, app.appbuilder.sm)
        db.session.remove()
    return app


@pytest.fixture(scope="module")
def seeded_sqlite(_sqlite_template, tmp_path_factory):
    """The demo seeded once for this module into a SQLite file (a copy of the migrated one)."""
    path = tmp_path_factory.mktemp("demo") / "cashback.db"
    shutil.copyfile(_sqlite_template, path)
    PREPARED.add(f"sqlite:///{path}")
    app = _seeded_app(f"sqlite:///{path}")
    yield app
    dispose_app(app)


@pytest.fixture(scope="module")
def seeded_postgresql(pg_database):
    """The demo seeded once for this module into a PostgreSQL database of its own (a clone)."""
    app = _seeded_app(pg_database())
    yield app
    dispose_app(app)


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request):
    """An app on a database seeded with the demo (SQLite file or PostgreSQL), once per module:
    the tests read it, and a second seed adds nothing."""
    return request.getfixturevalue(f"seeded_{request.param}")


def _counts() -> dict[str, int]:
    return {m.__name__: db.session.execute(sa.select(sa.func.count()).select_from(m)).scalar_one()
            for m in (Payout, PayoutApproval, Posting, AuditRecord, PostbackRejection, Claim)}


def test_payouts_in_every_state_and_dated_history(seeded):
    with seeded.app_context():
        session = db.session
        states = dict(session.execute(sa.select(Payout.state, sa.func.count()).group_by(Payout.state)).all())
        for state in ("succeeded", "in_review", "unknown", "failed", "cancelled"):
            assert states.get(state, 0) >= 1, states
        assert states["succeeded"] >= 8
        assert not set(states) & {"approved", "submitting"}  # nothing is sent when the portal starts
        providers = set(session.execute(sa.select(Payout.provider_code)).scalars())
        assert {"test", "yoomoney", "webmoney", "mts", "megafon", "beeline"} <= providers
        # one above the second-approval threshold, one approval of two given
        big = session.execute(sa.select(Payout).where(Payout.approvals_needed == 2)).scalar_one()
        assert big.state == "in_review" and len(big.approvals) == 1
        assert big.amount_usd > seeded.config["SECOND_APPROVAL_USD"]
        failed = session.execute(sa.select(Payout).where(Payout.state == "failed")).scalar_one()
        assert session.execute(sa.select(Posting).where(Posting.reference == f"payout:{failed.id}:release")).scalar_one()
        succeeded = session.execute(sa.select(Payout).where(Payout.state == "succeeded")).scalars().all()
        # fees as each provider quotes them (Test Bank and WebMoney charge; the others' defaults are 0)
        assert all(p.fee is not None for p in succeeded)
        assert {p.provider_code for p in succeeded if p.fee > 0} >= {"test", "webmoney"}
        assert all(a.status == "succeeded" and a.idempotency_key.startswith(f"cb-{p.id}-1-")
                   for p in succeeded for a in p.attempts)
        now = dt.datetime.now(dt.timezone.utc)
        assert all(p.finished_at <= now for p in succeeded)
        # the history spreads over the month: the dashboard's series
        period = dashboard.Period.default()
        cashback_days = [d for d in dashboard.cashback_series(session, period) if d.pending or d.available or d.paid]
        assert len(cashback_days) >= 10, cashback_days
        payouts = dashboard.payouts_series(session, period)
        assert len({r.day for r in payouts}) >= 5
        assert sum(r.amount_usd for r in payouts) == sum(p.amount_usd for p in succeeded)
        paid = sum(d.paid for d in dashboard.cashback_series(session, period))
        assert paid == sum(p.amount_usd for p in succeeded)
        # the payout's audit trail and ledger postings carry the time they happened
        posting_days = set(session.execute(sa.select(Posting.created_at)).scalars())
        assert len({d.date() for d in posting_days}) >= 10
        audit = session.execute(sa.select(AuditRecord.created_at).where(
            AuditRecord.object_type == "payout", AuditRecord.object_id == str(succeeded[0].id))).scalars().all()
        assert audit and max(audit) <= succeeded[0].finished_at
        # provider balances as polled, one low
        balances = {s.code: s.balance for s in session.execute(sa.select(ProviderState)).scalars()}
        assert balances["test"] > Decimal("100000") and balances["megafon"] < Decimal("5000")
        # postback rejections of three kinds on different days
        rejections = session.execute(sa.select(PostbackRejection)).scalars().all()
        assert {r.reason for r in rejections} == {"bad_signature", "stale_timestamp", "malformed_body"}
        assert len({r.received_at.date() for r in rejections}) == 3
        assert ledger.verify(session).ok


def test_second_seed_adds_nothing(seeded):
    with seeded.app_context():
        before = _counts()
        report = demo.seed(db.session, seeded.appbuilder.sm)
        assert report.postings_created == 0 and report.postback_rejections == 0
        assert _counts() == before
        assert ledger.verify(db.session).ok


def test_each_desk_shows_seeded_rows_to_its_role(seeded):
    client = seeded.test_client()
    for _owner, url, _text in DESK_PAGES:  # anonymous: to the login form
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.headers["Location"], url
    for username in ("support", "finance", "developer"):
        login(client, username, PASSWORDS[username])
        for owner, url, text in DESK_PAGES:
            if owner == username:
                response = client.get(url)
                assert response.status_code == 200, (username, url)
                assert text in response.get_data(as_text=True), (username, url, text)
        for url in REFUSED[username]:
            response = client.get(url)
            assert response.status_code in (302, 403), (username, url, response.status_code)
            assert response.status_code == 403 or "/login/" not in response.headers.get("Location", "/login/x")
        client.get("/logout/")


def test_low_balance_warning_when_configured(seeded_sqlite):
    """With a ``low_balance`` setting MegaFon's seeded balance shows the warning on the providers page."""
    app = build_app(seeded_sqlite.config["SQLALCHEMY_DATABASE_URI"], JOBS_MODE="collect",
                    PAYOUT_PROVIDER_SETTINGS={"megafon": {"low_balance": "20000"}})
    client = app.test_client()
    login(client, "finance", PASSWORDS["finance"])
    html = client.get("/payouts/providers/").get_data(as_text=True)
    assert html.count("low-balance") == 1
