"""Shared fixtures, flaskr style, against real services.

* ``pg_url`` — a PostgreSQL database created for this test run on the server of
  ``DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and dropped
  at the end.
* ``app`` — the portal on that database, migrated with Alembic and with roles synced.
* ``clean_db`` — empties every data table after a test (roles and permissions stay).
* ``make_user`` / ``login`` — staff and customer logins for the Flask test client.
"""
from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from config import normalize_database_url

BASE_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
#: Tables whose rows are set up once per run (Alembic, permissions, roles).
KEEP_TABLES = {"alembic_version", "ab_permission", "ab_view_menu", "ab_permission_view",
               "ab_role", "ab_permission_view_role"}


def _admin_conninfo() -> str:
    return sa.make_url(normalize_database_url(BASE_URL)).set(drivername="postgresql").render_as_string(
        hide_password=False)


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this run; dropped afterwards."""
    name = f"cashback_t_{uuid.uuid4().hex[:10]}"
    admin = _admin_conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = sa.make_url(normalize_database_url(BASE_URL)).set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TEST_SETTINGS = {
    "CASHBACK_ENV": "testing",
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "WTF_CSRF_ENABLED": False,
    "REDIS_URL": "",
    # fast hashing: the suite creates many logins
    "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 25, "max_overflow": 10},
}


def build_app(database_url: str, **overrides):
    """A migrated app with synced roles on ``database_url``."""
    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.security import sync_roles

    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
    return app


@pytest.fixture(scope="session")
def testbank():
    """The built-in test provider's sandbox on a free port (settles payouts on the first read)."""
    from payment_providers.testbank.sandbox import TestBankSandbox

    sandbox = TestBankSandbox(settle_after=0.0).start()
    yield sandbox
    sandbox.stop()


def provider_settings(testbank) -> dict:
    return {"test": {"base_url": testbank.url, "read_timeout": 2, "connect_timeout": 1}}


@pytest.fixture(scope="session")
def app(pg_url, testbank):
    return build_app(pg_url, PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank), JOBS_MODE="collect",
                     PAYOUT_RETRY_SECONDS=[1], PAYOUT_CHECK_SECONDS=[1])


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def session(app_ctx, clean_db):
    from portal.extensions import db

    yield db.session
    db.session.rollback()


@pytest.fixture
def clean_db(app):
    """Empty every data table after the test."""
    yield
    from portal.extensions import db
    from portal.services.ledger import reset_account_cache

    with app.app_context():
        db.session.remove()
        tables = [t.name for t in db.metadata.sorted_tables if t.name not in KEEP_TABLES]
        with db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        reset_account_cache()


@pytest.fixture
def client(app, clean_db):
    return app.test_client()


@pytest.fixture
def make_user(app, clean_db):
    """Create a login with one role: ``make_user("support", "Support")``."""
    from portal.extensions import db

    def make(username: str, role: str, password: str = "pw-" + "x" * 8):
        with app.app_context():
            sm = app.appbuilder.sm
            user = sm.add_user(username=username, first_name=username, last_name="Test",
                               email=f"{username}@test.local", role=sm.find_role(role), password=password)
            assert user, f"could not create {username}"
            db.session.commit()
            return user.id

    return make


def login(client, username: str, password: str = "pw-" + "x" * 8):
    response = client.post("/login/", data={"username": username, "password": password})
    assert response.status_code == 302, f"login of {username} failed: {response.status_code}"
    return response


@pytest.fixture
def customers(app, clean_db):
    """Customers 1..20 without logins (enough for ledger tests)."""
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        db.session.add_all([Customer(id=i, email=f"c{i}@test.local", name=f"Customer {i}") for i in range(1, 21)])
        db.session.commit()
        db.session.execute(sa.text("SELECT setval('customer_id_seq', 20)"))
        db.session.commit()
    return list(range(1, 21))


@pytest.fixture(scope="session")
def sqlite_app(tmp_path_factory):
    """The portal on the embedded SQLite default (the Python posting path), customers 1..20."""
    from portal.extensions import db
    from portal.models import Customer

    app = build_app(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cashback.db'}")
    with app.app_context():
        db.session.add_all([Customer(id=i, email=f"c{i}@test.local", name=f"Customer {i}") for i in range(1, 21)])
        db.session.commit()
    return app


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger_session(request):
    """A session on either backend: PostgreSQL runs ledger_post(), SQLite the Python path."""
    from portal.extensions import db
    from portal.services.ledger import reset_account_cache

    if request.param == "postgresql":
        request.getfixturevalue("customers")
        yield request.getfixturevalue("session")
        return
    app = request.getfixturevalue("sqlite_app")
    with app.app_context():
        yield db.session
        db.session.rollback()
        for table in ("ledger_entry", "ledger_posting", "ledger_balance", "ledger_account"):
            db.session.execute(sa.text(f"DELETE FROM {table}"))
        db.session.commit()
        reset_account_cache()
