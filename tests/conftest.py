"""Shared fixtures, flaskr style, against real services.

Databases (PostgreSQL on the server of ``DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``):

* ``pg_template`` — a database migrated with Alembic and with the roles synced, made once for
  the code at hand and kept on the server between sessions, never used directly: every
  PostgreSQL database of the run is cloned from it with ``CREATE DATABASE … TEMPLATE`` (a
  fraction of a second instead of Alembic plus FAB's permission sync, which take several
  seconds per app on a loaded machine).
* ``pg_url`` — the run's shared database (a clone), dropped at the end.
* ``pg_database()`` — a further clone for a test that needs a database of its own.
* ``sqlite_url`` — a fresh SQLite file copied from a migrated one made once for the code at hand
  (``_sqlite_template``, kept in the temp directory like ``pg_template``).
* ``build_app(url, **overrides)`` — the portal on ``url``; a database made by the fixtures
  above is used as it is, any other one is migrated and its roles synced first.

Apps and services:

* ``app`` — the portal on ``pg_url`` (jobs collected, the Test Bank sandbox ``testbank``).
* ``clean_db`` — after a test, empties the data tables it wrote to and restarts the identities
  it used (roles and permissions stay), puts the app's settings back as they were, forgets
  collected jobs and resets the Test Bank.
* ``make_user`` / ``login`` — staff and customer logins for the Flask test client.
* ``smtp_server`` — one local SMTP server (aiosmtpd) per session writing ``.eml`` files.
* ``wait_for_http(url)`` — readiness probe with a generous deadline for servers the tests start.

Hypothesis runs with no per-example deadline (profile ``suite``): a loaded machine makes
examples slow, and a timed assertion is not what the property tests check.
"""
from __future__ import annotations

import copy
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from config import normalize_database_url

BASE_URL = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
#: Tables whose rows are set up once per run (Alembic, permissions, roles).
KEEP_TABLES = {"alembic_version", "ab_permission", "ab_view_menu", "ab_permission_view",
               "ab_role", "ab_permission_view_role"}
#: Most seconds a fixture waits for a server it started to answer (cold start on a busy machine).
READY_SECONDS = 120.0

settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


# --- order --------------------------------------------------------------------------------------

#: Under pytest-xdist each worker writes the tests it ran, in its order, to ``<worker>.txt`` here.
TEST_ORDER_DIR = Path(os.environ.get("CASHBACK_ARTIFACTS")
                      or Path(__file__).resolve().parents[1] / "instance" / "artifacts") / "test-order"


def _xdist_worker() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


def pytest_collection_modifyitems(config, items):
    """Under xdist: the longest tests (marked ``slow``: the soak, the API fuzz, seed-demo…)
    first, the rest after them, each part in the order pytest-randomly shuffled it (this runs
    after its shuffle); ``--dist loadgroup`` hands them out one at a time, so each starts at once
    on a worker instead of ending the run alone.  A run in one process keeps the seed's order."""
    if _xdist_worker():
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionstart(session):
    if _xdist_worker():
        TEST_ORDER_DIR.mkdir(parents=True, exist_ok=True)
        (TEST_ORDER_DIR / f"{_xdist_worker()}.txt").write_text("")
    elif getattr(session.config.option, "numprocesses", None):  # the xdist controller: no stale
        for old in TEST_ORDER_DIR.glob("gw*.txt"):                # files of a run with more workers
            old.unlink(missing_ok=True)


def pytest_runtest_logstart(nodeid, location):
    """A worker's order, to replay a failure that depends on what ran before it in that process:
    ``mapfile -t ids < instance/artifacts/test-order/gw1.txt;
    bash scripts/test.sh -p no:randomly "${ids[@]}"`` (one process, that order).  The ``@group``
    that ``--dist loadgroup`` appends to an ``xdist_group`` test's id is left out (pytest would
    not find the test by it)."""
    if _xdist_worker():
        if nodeid.rfind("@") > nodeid.rfind("]"):
            nodeid = nodeid.rsplit("@", 1)[0]
        with open(TEST_ORDER_DIR / f"{_xdist_worker()}.txt", "a") as f:
            f.write(nodeid + "\n")


# --- readiness --------------------------------------------------------------------------------

def wait_for_http(url: str, *, timeout: float = READY_SECONDS, process=None, ok=(200,)) -> None:
    """Poll ``url`` until it answers with a status in ``ok`` (each try may take long: a cold
    app compiles templates and catalogs on its first request); fail after ``timeout`` seconds,
    or at once when ``process`` (a ``subprocess.Popen``) has exited."""
    import requests

    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{url}: the server exited with {process.returncode} before answering", pytrace=False)
        try:
            status = requests.get(url, timeout=(2, max(1.0, deadline - time.monotonic()))).status_code
            if status in ok:
                return
            last = status
        except requests.RequestException as exc:
            last = exc
        if time.monotonic() >= deadline:
            pytest.fail(f"{url} not ready after {timeout:.0f} s: {last}", pytrace=False)
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- databases --------------------------------------------------------------------------------

def _admin_conninfo() -> str:
    return sa.make_url(normalize_database_url(BASE_URL)).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _database_url(name: str) -> str:
    return sa.make_url(normalize_database_url(BASE_URL)).set(database=name).render_as_string(hide_password=False)


#: URLs of databases built from the session's migrated templates (build_app uses them as they are).
PREPARED: set[str] = set()


def create_database(template: str | None = None, prefix: str = "cashback_t") -> str:
    """A new PostgreSQL database (``CREATE DATABASE … TEMPLATE template`` when given); its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        for attempt in range(50):
            try:
                conn.execute(f'CREATE DATABASE "{name}"{clause}')
                break
            except psycopg.errors.ObjectInUse:  # another run's clone of a template of its own: retry
                if attempt == 49:
                    raise
                time.sleep(0.2)
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: A template unused for this long is dropped by the next session that makes or uses one.
TEMPLATE_KEEP_SECONDS = 6 * 3600


def template_key() -> str:
    """What a migrated template depends on: the code of the migrations, models, views (the
    permissions the roles sync creates) and providers, the versions of the libraries that turn
    them into tables and permissions, the test settings and this file (how it is made)."""
    import hashlib
    import importlib.metadata

    repo = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(repr(sorted(TEST_SETTINGS.items())).encode())
    digest.update(os.environ.get("CASHBACK_PLUGINS", "").encode())
    for folder in ("migrations", "portal", "plugins", "payment_providers"):
        for path in sorted((repo / folder).rglob("*.py")):
            digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    digest.update((repo / "config.py").read_bytes())
    digest.update(Path(__file__).read_bytes())  # how the template is made
    for dist in ("Flask-AppBuilder", "Flask-SQLAlchemy", "SQLAlchemy", "alembic"):
        digest.update(f"{dist}={importlib.metadata.version(dist)}".encode())
    return digest.hexdigest()[:16]


#: Advisory lock held while stale templates are dropped (one session at a time does it).
_PRUNE_LOCK = 0x7E57_7E57


def _drop_stale_templates(conn, keep: str, now: int) -> None:
    """Drop the templates of other code last used more than ``TEMPLATE_KEEP_SECONDS`` ago; a
    template is stamped (``COMMENT``) before it gets its name, so one being made is never taken
    for stale, and a drop another session already started is left to it."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_PRUNE_LOCK,)).fetchone()[0]:
        return
    try:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname LIKE 'cashback\\_tpl\\_%%' AND datname <> %s", (keep,)).fetchall()
        for name, comment in rows:
            stamp = (comment or "").rsplit(" ", 1)[-1]
            if not stamp.isdigit() or now - int(stamp) <= TEMPLATE_KEEP_SECONDS:
                continue
            try:
                conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
            except psycopg.Error:  # left invalid by an interrupted drop: DROP is all it takes
                pass
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error:  # in use or being dropped elsewhere: the next session tries again
                pass
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_PRUNE_LOCK,))


@pytest.fixture(scope="session")
def pg_template():
    """The name of a database migrated with Alembic and with the roles synced.

    Made once for a given code (:func:`template_key`) and kept on the server between sessions:
    the next run, or the next file of ``scripts/test-each-file.sh``, clones it at once.  It takes
    no connections (``ALLOW_CONNECTIONS false``: a template must have none to be cloned);
    templates of other code unused for ``TEMPLATE_KEEP_SECONDS`` are dropped.  Concurrent
    sessions (several checkouts on one server) serialize its making on an advisory lock."""
    from portal.extensions import db

    key = template_key()
    name = f"cashback_tpl_{key}"
    now = int(time.time())
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (int(key[:15], 16),))
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                building = create_database(prefix="cashback_tplnew")
                try:
                    app = _migrated_app(_database_url(building))
                    with app.app_context():
                        db.session.remove()
                        db.engine.dispose()
                    _stamp(conn, building, now)
                    conn.execute(f'ALTER DATABASE "{building}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
                    conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                except BaseException:
                    drop_database(building)
                    raise
            else:
                _stamp(conn, name, now)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (int(key[:15], 16),))
        _drop_stale_templates(conn, name, now)
    return name


def _stamp(conn, name: str, now: int) -> None:
    conn.execute(f"COMMENT ON DATABASE \"{name}\" IS 'cashback test template, used {now}'")


@pytest.fixture(scope="session")
def pg_database(pg_template):
    """``pg_database()`` -> the URL of a new clone of the template, dropped at the end of the session."""
    made: list[str] = []

    def make() -> str:
        name = create_database(pg_template)
        made.append(name)
        url = _database_url(name)
        PREPARED.add(url)
        return url

    yield make
    # at once: each DROP DATABASE waits for a checkpoint, and concurrent ones share it
    threads = [threading.Thread(target=drop_database, args=(name,)) for name in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture(scope="session")
def pg_url(pg_database):
    """The run's shared PostgreSQL database (a clone of the template); dropped afterwards."""
    return pg_database()


#: Where migrated SQLite files are kept between sessions (one per code, like ``pg_template``).
SQLITE_TEMPLATES = Path(tempfile.gettempdir()) / "cashback-test-templates"


@pytest.fixture(scope="session")
def _sqlite_template() -> Path:
    """A SQLite file migrated and with roles synced (copied by ``sqlite_url``, never opened).

    Made once for a given code (:func:`template_key`) and kept in the temp directory, so the
    parallel workers of a run (pytest-xdist) and the runs after it copy it at once: it is made
    under a file lock and renamed into place; files unused for ``TEMPLATE_KEEP_SECONDS`` go."""
    import fcntl

    from portal.extensions import db

    SQLITE_TEMPLATES.mkdir(exist_ok=True)
    path = SQLITE_TEMPLATES / f"sqlite_{template_key()}.db"
    with open(SQLITE_TEMPLATES / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            building = SQLITE_TEMPLATES / f"building-{uuid.uuid4().hex[:10]}.db"
            try:
                app = _migrated_app(f"sqlite:///{building}")
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
                os.replace(building, path)
            finally:
                building.unlink(missing_ok=True)
        os.utime(path)
        for old in SQLITE_TEMPLATES.glob("sqlite_*.db"):
            if time.time() - old.stat().st_mtime > TEMPLATE_KEEP_SECONDS:
                old.unlink(missing_ok=True)
    return path


@pytest.fixture
def sqlite_url(_sqlite_template, tmp_path) -> str:
    """A fresh SQLite database of this test (a copy of the session's migrated one)."""
    path = tmp_path / "cashback.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    PREPARED.add(url)
    return url


TEST_SETTINGS = {
    "CASHBACK_ENV": "testing",
    "TESTING": True,
    "SECRET_KEY": "test-secret",
    "WTF_CSRF_ENABLED": False,
    "REDIS_URL": "",
    # fast hashing: the suite creates many logins
    "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    # 35 connections at once for the thread races, but 2 kept idle per app: 4 parallel workers,
    # each with a dozen apps, held ~100 idle ones (PostgreSQL's max_connections) with 25 kept
    "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 33},
}


def _migrated_app(database_url: str, **overrides):
    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.security import sync_roles

    app = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
    return app


def build_app(database_url: str, **overrides):
    """The portal on ``database_url`` with the test settings and ``overrides``.

    A database made by ``pg_database``/``pg_url``/``sqlite_url`` (a copy of the session's
    migrated template) is used as it is; any other one is migrated and its roles synced."""
    from portal.app import create_app

    if database_url in PREPARED:
        return create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    return _migrated_app(database_url, **overrides)


# --- emptying the data tables between tests ---------------------------------------------------

_DATA_QUERIES: dict[str, tuple[sa.TextClause, list[str]]] = {}


def _data_query(engine) -> tuple[sa.TextClause, list[str]]:
    """One query naming the data tables that have rows and the identities that were used."""
    key = str(engine.url)
    if key not in _DATA_QUERIES:
        from portal.extensions import db

        tables = [t.name for t in db.metadata.sorted_tables if t.name not in KEEP_TABLES]
        with engine.connect() as conn:
            owned = [row[0] for row in conn.execute(sa.text(
                "SELECT seq.relname FROM pg_class seq "
                "JOIN pg_depend dep ON dep.objid = seq.oid AND dep.classid = 'pg_class'::regclass "
                "  AND dep.refclassid = 'pg_class'::regclass "
                "JOIN pg_class tab ON tab.oid = dep.refobjid "
                "WHERE seq.relkind = 'S' AND tab.relname = ANY(:tables)"), {"tables": tables})]
        parts = [f"(SELECT 't', '{t}' FROM \"{t}\" LIMIT 1)" for t in tables]
        parts.append("SELECT 's', sequencename::text FROM pg_sequences "
                     "WHERE last_value IS NOT NULL AND schemaname = current_schema() AND sequencename = ANY(:owned)")
        _DATA_QUERIES[key] = (sa.text(" UNION ALL ".join(parts)).bindparams(owned=owned), tables)
    return _DATA_QUERIES[key]


def empty_data_tables(app) -> None:
    """Every data table empty and its identity restarted, as after ``TRUNCATE … RESTART IDENTITY``
    of them all, but touching only the tables and sequences a test used (a TRUNCATE of all 30-odd
    tables costs about half a second per test on a busy machine)."""
    from portal.extensions import db
    from portal.services.ledger import reset_account_cache

    with app.app_context():
        db.session.remove()
        engine = db.engine
        if engine.dialect.name != "postgresql":
            with engine.begin() as conn:
                for table in reversed(db.metadata.sorted_tables):
                    if table.name not in KEEP_TABLES:
                        conn.execute(table.delete())
        else:
            query, _tables = _data_query(engine)
            with engine.begin() as conn:
                used = conn.execute(query).all()
                tables = [name for kind, name in used if kind == "t"]
                if tables:
                    conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
                for kind, name in used:
                    if kind == "s":
                        conn.execute(sa.text(f'ALTER SEQUENCE "{name}" RESTART'))
        reset_account_cache()


# --- apps ---------------------------------------------------------------------------------------

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
    app = build_app(pg_url, PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank), JOBS_MODE="collect",
                    PAYOUT_RETRY_SECONDS=[1], PAYOUT_CHECK_SECONDS=[1])
    yield app
    dispose_app(app)


def dispose_app(app) -> None:
    """Close the app's idle database connections (the session's databases are dropped at the end)."""
    from portal.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def session(app_ctx, clean_db):
    from portal.extensions import db

    yield db.session
    db.session.rollback()


def config_snapshot(app) -> dict:
    """The app's settings as they are now (nested values copied), for :func:`restore_config`."""
    try:
        return copy.deepcopy(dict(app.config))
    except Exception:  # an uncopyable value: the top level still comes back
        return dict(app.config)


def restore_config(app, saved: dict) -> None:
    """Settings a test changed on a shared app come back (a forgotten restore would leak into
    whichever test runs next)."""
    app.config.clear()
    app.config.update(saved)


@pytest.fixture
def clean_db(app, testbank):
    """After the test: data tables empty, the app's settings as before, collected jobs
    forgotten, the Test Bank reset."""
    saved = config_snapshot(app)
    app.extensions.pop("cashback_collected_jobs", None)
    yield
    restore_config(app, saved)
    app.extensions.pop("cashback_collected_jobs", None)
    empty_data_tables(app)
    testbank.reset()


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
def sqlite_app(_sqlite_template, tmp_path_factory):
    """The portal on the embedded SQLite default (the Python posting path), customers 1..20."""
    from portal.extensions import db
    from portal.models import Customer

    path = tmp_path_factory.mktemp("sqlite") / "cashback.db"
    shutil.copyfile(_sqlite_template, path)
    PREPARED.add(f"sqlite:///{path}")
    app = build_app(f"sqlite:///{path}")
    with app.app_context():
        db.session.add_all([Customer(id=i, email=f"c{i}@test.local", name=f"Customer {i}") for i in range(1, 21)])
        db.session.commit()
    yield app
    dispose_app(app)


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


# --- RQ ---------------------------------------------------------------------------------------------

def run_burst(queues, connection) -> None:
    """Run the queued jobs in this process, as ``SimpleWorker(...).work(burst=True)``, without RQ's
    command channel: closing its pubsub thread (blocked in a 60 s read) sometimes took a full
    minute per call."""
    from rq import SimpleWorker

    class BurstWorker(SimpleWorker):
        def subscribe(self) -> None:  # no stop/kill commands to listen for in a burst
            pass

    BurstWorker(queues, connection=connection).work(burst=True)


# --- mail ---------------------------------------------------------------------------------------

class SmtpServer:
    """A local SMTP server (aiosmtpd, ``mail.OutboxHandler``) for the whole session;
    :meth:`use` points it at a test's own outbox directory."""

    def __init__(self, directory: Path) -> None:
        from aiosmtpd.controller import Controller

        from portal.services import mail

        self.handler = mail.OutboxHandler(directory)
        self.port = free_port()
        # a generous readiness deadline: aiosmtpd's default 5 s is too short on a loaded machine
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=READY_SECONDS)
        self.controller.start()
        self.lock = threading.Lock()

    def use(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.handler.directory = directory
        return directory

    @property
    def settings(self) -> dict:
        return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": self.port, "MAIL_USE_TLS": False, "MAIL_USE_SSL": False,
                "MAIL_USERNAME": ""}

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory):
    server = SmtpServer(tmp_path_factory.mktemp("outbox"))
    yield server
    server.stop()
