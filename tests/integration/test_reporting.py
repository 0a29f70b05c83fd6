"""Reports read a replica when one is configured (``CASHBACK_REPORTS_DATABASE_URL``).

The "replica" here is a second database (a clone of the migrated template) holding different figures
than the primary: the dashboard and the payouts report must show the replica's, while the
login (and everything that acts) stays on the primary.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Customer
from portal.reporting import report_session, uses_replica
from portal.services import ledger
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import build_app, login


@pytest.fixture(scope="module")
def replica_url(pg_database):
    url = pg_database()  # a clone of the session's migrated template, dropped at the end
    replica = build_app(url)
    with replica.app_context():  # a pending balance that exists only on the "replica"
        db.session.add(Customer(id=1, email="only-on-replica@test.local", name="R"))
        db.session.flush()
        ledger.post(db.session, kind="test.seed", reference="replica-1",
                    legs=transfer(system_account("network_receivable"), customer_account(1, "pending"),
                                  Decimal("9.25")), actor=Actor.system("test"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return url


@pytest.fixture(scope="module")
def reporting_app(pg_url, replica_url, app):
    return build_app(pg_url, SQLALCHEMY_BINDS={"reports": replica_url})


def test_without_a_replica_reports_use_the_request_session(app):
    with app.test_request_context():
        assert not uses_replica()
        with report_session() as session:
            assert session is db.session


def test_report_session_reads_the_replica(reporting_app, replica_url):
    with reporting_app.test_request_context():
        assert uses_replica()
        with report_session() as session:
            assert session is not db.session
            assert session.execute(sa.select(sa.func.current_database())).scalar_one() == \
                sa.make_url(replica_url).database
            assert session.execute(sa.select(Customer.email)).scalars().all() == ["only-on-replica@test.local"]


def test_dashboard_figures_come_from_the_replica_login_from_the_primary(reporting_app, make_user, clean_db):
    make_user("fin", "Finance")  # on the primary: the replica has no such login
    client = reporting_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "fin")
    html = client.get("/finance/dashboard/").get_data(as_text=True)
    assert "$9.25" in html  # the replica's pending total; the primary holds no balance at all
    with reporting_app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one() == 0
    assert client.get("/payouts/report/export.csv").status_code == 200
