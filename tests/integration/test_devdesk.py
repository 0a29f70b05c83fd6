"""The Developer desk: plugins and their status, RQ queues and failed jobs (requeue, audited),
and test payouts at the Test Bank sandbox; on PostgreSQL, real Redis and the HTTP sandbox.

Redis hygiene as in ``test_payout_workers.py``: this run's queues live under a unique prefix
and only its keys are removed; the whole Redis is never flushed.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import uuid
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa
from rq import Queue

from payment_providers.testbank.provider import TestBankProvider
from plugins import ErrorCode, Result
from portal import providers
from portal.extensions import db
from portal.models import AuditRecord, Payout, Posting
from portal.services import devdesk, payouts
from portal.services.audit import Actor
from portal.tasks import QUEUE_DEFAULT, QUEUE_PAYOUTS, QUEUE_STATUS
from tests.conftest import build_app, login, provider_settings, run_burst

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
#: this run's queues and job ids: other runs sharing the Redis never see them
PREFIX = f"devdesk{os.getpid()}-{uuid.uuid4().hex[:6]}-"
WALLET = "TEST-12345674"
ALL_PROVIDERS = {"test", "mts", "megafon", "beeline", "qiwi", "webmoney", "yoomoney"}
DEV = Actor.system("test")


def boom(payout_id: int) -> None:
    """A job that fails (its message carries a wallet-like number, which must be masked)."""
    raise RuntimeError(f"boom for payout {payout_id} to 41001614575714")


def fine(payout_id: int) -> int:
    return payout_id


@pytest.fixture(scope="module")
def rq_app(pg_url, testbank):
    """The portal with Redis queues under this run's prefix (jobs are enqueued by the tests)."""
    return build_app(pg_url, REDIS_URL=REDIS_URL, JOBS_MODE="collect", QUEUE_PREFIX=PREFIX,
                     PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank))


def _forget_this_runs_keys(conn) -> None:
    for key in conn.scan_iter(match=f"*{PREFIX}*", count=1000):
        conn.delete(key)


@pytest.fixture
def conn():
    connection = redis.Redis.from_url(REDIS_URL)
    _forget_this_runs_keys(connection)
    yield connection
    _forget_this_runs_keys(connection)


def queue(conn, name: str) -> Queue:
    return Queue(f"{PREFIX}{name}", connection=conn)


def failed_job(conn, payout_id: int = 7) -> str:
    """Run ``boom`` in an in-process worker: it lands in the failed registry."""
    q = queue(conn, QUEUE_PAYOUTS)
    job = q.enqueue(f"{__name__}.boom", payout_id, failure_ttl=600)
    run_burst([q], conn)
    assert job.id in q.failed_job_registry
    return job.id


@pytest.fixture
def rq_client(rq_app, conn, clean_db, make_user):
    """A test client of ``rq_app`` logged in as a Developer (English pages)."""
    make_user("dev", "Developer")
    client = rq_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def audit_rows(app, action: str) -> list[AuditRecord]:
    with app.app_context():
        rows = db.session.execute(sa.select(AuditRecord).where(AuditRecord.action == action)).scalars().all()
        db.session.expunge_all()
        return rows


# --- failed jobs ----------------------------------------------------------------------------------

def test_failed_job_is_listed_and_requeued_with_audit(rq_app, rq_client, conn):
    """A job that raised is on the page (ids only, masked error); Requeue puts it back and audits it."""
    job_id = failed_job(conn)
    html = text(rq_client.get("/developers/failed-jobs"))
    assert job_id in html and f"{__name__}.boom" in html
    assert "RuntimeError: boom for payout 7 to 4100••••5714" in html
    assert "41001614575714" not in html
    assert f"/developers/failed-jobs/{job_id}/requeue" in html

    response = rq_client.post(f"/developers/failed-jobs/{job_id}/requeue")
    assert response.status_code == 302
    q = queue(conn, QUEUE_PAYOUTS)
    assert job_id in q.job_ids and job_id not in q.failed_job_registry
    [row] = audit_rows(rq_app, "job.requeued")
    assert (row.object_type, row.object_id, row.actor) == ("rq_job", job_id, "user:dev")
    assert row.after["queue"] == QUEUE_PAYOUTS and row.after["args"] == "7"
    after = text(rq_client.get("/developers/failed-jobs"))
    assert f"Job {job_id} is back on the payouts queue." in after and f'data-job="{job_id}"' not in after


def test_requeue_of_an_unknown_id_is_refused(rq_app, rq_client, conn):
    """An id that is not a failed job of ours is refused with a clear message; nothing is audited."""
    queued = queue(conn, QUEUE_PAYOUTS).enqueue(f"{__name__}.fine", 1)  # queued, not failed
    with rq_app.app_context():
        for job_id in ("no-such-job", queued.id, "bad id/../x"):
            with pytest.raises(devdesk.UnknownJob):
                devdesk.requeue(db.session, conn, PREFIX, job_id, actor=DEV)
            db.session.rollback()
        other_prefix = failed_job(conn)  # failed, but the caller asks under another deployment's prefix
        with pytest.raises(devdesk.UnknownJob):
            devdesk.requeue(db.session, conn, "someone-else-", other_prefix, actor=DEV)
        db.session.rollback()
    response = rq_client.post("/developers/failed-jobs/no-such-job/requeue")
    assert response.status_code == 404 and "There is no failed job with this id." in text(response)
    assert audit_rows(rq_app, "job.requeued") == []


def test_queue_depths(rq_app, rq_client, conn):
    """Queued, scheduled, deferred and failed counts per queue, in the service and on the page."""
    payouts_q, status_q, default_q = (queue(conn, n) for n in (QUEUE_PAYOUTS, QUEUE_STATUS, QUEUE_DEFAULT))
    failed_job(conn)
    first = payouts_q.enqueue(f"{__name__}.fine", 1)
    payouts_q.enqueue(f"{__name__}.fine", 2)
    status_q.enqueue_in(dt.timedelta(hours=1), f"{__name__}.fine", 3)
    default_q.enqueue(f"{__name__}.fine", 4, depends_on=first)

    depths = {d.name: d for d in devdesk.queues(conn, PREFIX)}
    assert set(depths) == {QUEUE_PAYOUTS, QUEUE_STATUS, QUEUE_DEFAULT}
    assert (depths[QUEUE_PAYOUTS].queued, depths[QUEUE_PAYOUTS].failed) == (2, 1)
    assert (depths[QUEUE_STATUS].queued, depths[QUEUE_STATUS].scheduled) == (0, 1)
    assert (depths[QUEUE_DEFAULT].queued, depths[QUEUE_DEFAULT].deferred) == (0, 1)

    html = text(rq_client.get("/developers/"))
    row = re.search(r'data-queue="payouts">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="queued">2</td>' in row and "/developers/failed-jobs" in row
    assert "jobs run in-process" not in html


def test_without_redis_jobs_run_in_process(client, make_user):
    """With no REDIS_URL the desk says jobs run in-process and shows no queues."""
    make_user("dev", "Developer")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    for url in ("/developers/", "/developers/failed-jobs"):
        html = text(client.get(url))
        assert "jobs run in-process" in html and 'id="queues"' not in html


# --- plugins --------------------------------------------------------------------------------------

def test_plugins_show_every_provider_with_its_package_and_version(app, client, make_user):
    """Every registered provider is listed with the distribution and version it came from."""
    version = importlib.metadata.version("cashback-backoffice")
    with app.app_context():
        rows = {p.code: p for p in devdesk.plugins(app, db.session)}
        db.session.rollback()
    assert set(rows) == set(providers.all_providers(app)) and ALL_PROVIDERS <= set(rows)
    assert {(p.distribution, p.version) for p in rows.values()} == {("cashback-backoffice", version)}
    assert rows["mts"].plugin == "phones" and rows["test"].plugin == "test"
    assert rows["test"].supports_balance and rows["test"].is_sandbox and rows["test"].status == "enabled"
    # QIWI starts switched off, with the plugin's reason in the reader's language
    assert rows["qiwi"].status == "disabled" and rows["qiwi"].reason == providers.provider("qiwi", app).disabled_reason["en"]

    make_user("dev", "Developer")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    html = text(client.get("/developers/"))
    for code in ALL_PROVIDERS:
        row = re.search(rf'data-provider="{code}">(.*?)</tr>', html, re.S).group(1)
        assert f'<td class="version">{version}</td>' in row
    assert "/postbackrejectionview/list/" in html


def test_origin_falls_back_to_version_or_built_in():
    """A provider class outside the entry points: its package's __version__, else 'built-in'."""
    assert devdesk.origin(TestBankProvider)[1:] == ("cashback-backoffice",
                                                    importlib.metadata.version("cashback-backoffice"))
    assert devdesk.origin(type("Local", (), {"__module__": "tests.integration.test_devdesk"}))[2] == "built-in"
    assert devdesk.origin(type("Versioned", (), {"__module__": "pytest"}))[1:] == (
        "pytest", importlib.metadata.version("pytest"))


def test_provider_paused_by_the_breaker_shows_as_paused(app, client, make_user):
    """Transport failures up to the threshold open the breaker: the desk shows paused until when, and why."""
    now = dt.datetime.now(dt.timezone.utc)
    with app.app_context():
        for _ in range(int(app.config["BREAKER_THRESHOLD"])):
            payouts._breaker_after(db.session, "test", Result.unknown(ErrorCode.TIMEOUT, "read timeout"),
                                   app.config, now)
        db.session.commit()
        test = {p.code: p for p in devdesk.plugins(app, db.session)}["test"]
        db.session.rollback()
    assert test.status == "paused"
    assert test.paused_until == now + dt.timedelta(seconds=int(app.config["BREAKER_COOLDOWN_SECONDS"]))
    assert "failures in a row" in test.reason

    make_user("dev", "Developer")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    row = re.search(r'data-provider="test">(.*?)</tr>', text(client.get("/developers/")), re.S).group(1)
    assert 'data-status="paused"' in row and "paused by the circuit breaker" in row and "until" in row


# --- sandbox --------------------------------------------------------------------------------------

def _counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(sa.select(sa.func.count()).select_from(Posting)),
                db.session.scalar(sa.select(sa.func.count()).select_from(Payout)))


def test_sandbox_fires_a_test_payout_without_touching_the_ledger(app, client, make_user, testbank):
    """A test payout reaches the Test Bank sandbox under a fresh key; the answer and the status
    query are shown; no payout, no posting; audited."""
    testbank.reset()
    make_user("dev", "Developer")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    assert "Fire test payout" in text(client.get("/developers/sandbox"))
    response = client.post("/developers/sandbox/fire", data={"provider": "test", "amount": "12.50",
                                                              "account": "test 1234 5674"})
    html = text(response)
    assert response.status_code == 200, html
    [transfer] = testbank.transfers()
    assert transfer.handle.startswith("sandbox-") and transfer.account == WALLET
    assert transfer.amount == Decimal("12.50")
    assert transfer.handle in html and WALLET in html
    results = re.findall(r'<td class="result-status" data-status="(\w+)">', html)
    assert len(results) == 2 and results[1] == "succeeded"
    assert _counts(app) == (0, 0)
    [row] = audit_rows(app, "sandbox.payout_fired")
    assert (row.object_id, row.actor) == ("test", "user:dev")
    assert row.after["idempotency_key"] == transfer.handle and row.after["account"] == "TEST••••5674"
    assert row.after["status"]["status"] == "succeeded"

    again = client.post("/developers/sandbox/fire", data={"provider": "test", "amount": "12.50", "account": WALLET})
    assert again.status_code == 200 and len({t.handle for t in testbank.transfers()}) == 2  # a fresh key each time

    refused = client.post("/developers/sandbox/fire", data={"provider": "test", "amount": "12.50",
                                                            "account": "TEST-12345670"})
    assert refused.status_code == 422 and "typo" in text(refused)
    assert len(testbank.transfers()) == 2


def test_sandbox_refuses_a_provider_that_is_not_local(app, testbank):
    """A base URL that is not localhost/127.0.0.1 is refused before anything is sent."""
    testbank.reset()
    credentials = dict(TestBankProvider.default_settings["credentials"])
    for url in ("https://bank.example.com", "http://127.0.0.1.example.com:8765", "http://localhost@evil.example",
                "http://evil.example\\@127.0.0.1:8765", "http://user@127.0.0.1:8765", "ftp://127.0.0.1/"):
        remote = TestBankProvider({"base_url": url, "credentials": credentials})
        assert not devdesk.is_sandbox(remote)
        with app.app_context():
            with pytest.raises(devdesk.NotASandbox):
                devdesk.fire_test_payout(db.session, remote, amount="10.00", account=WALLET, actor=DEV)
            db.session.rollback()
    assert devdesk.is_sandbox(TestBankProvider({"base_url": testbank.url, "credentials": credentials}))
    assert testbank.transfers() == []


def test_sandbox_page_refuses_a_remote_base_url(pg_url, testbank, clean_db, make_user):
    """Through the page: a provider configured with a remote URL is refused (409), nothing sent."""
    remote = build_app(pg_url, PAYOUT_PROVIDER_SETTINGS={
        **provider_settings(testbank), "yoomoney": {"base_url": "https://yoomoney.example"}})
    testbank.reset()
    make_user("dev", "Developer")
    client = remote.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "dev")
    assert "not a sandbox: refused" in text(client.get("/developers/sandbox"))
    response = client.post("/developers/sandbox/fire", data={"provider": "yoomoney", "amount": "10.00",
                                                              "account": "4100116075156746"})
    assert response.status_code == 409 and "not a local sandbox" in text(response)
    assert audit_rows(remote, "sandbox.payout_fired") == []


# --- roles ----------------------------------------------------------------------------------------

PAGES = ["/developers/", "/developers/failed-jobs", "/developers/sandbox"]
ACTIONS = ["/developers/failed-jobs/some-job/requeue", "/developers/sandbox/fire"]


@pytest.mark.parametrize("role", ["Support", "Finance", "Customer"])
def test_other_roles_are_refused(client, make_user, role):
    """Support, Finance and customers get 403 on every desk page and action."""
    make_user("other", role)
    login(client, "other")
    for url in PAGES:
        assert client.get(url).status_code == 403, url
    for url in ACTIONS:
        assert client.post(url).status_code == 403, url


@pytest.mark.parametrize("role", ["Developer", "Admin"])
def test_developers_and_admins_see_the_desk(client, make_user, role):
    """Developers and Admins open every desk page and see the sandbox form."""
    make_user("staff", role)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    login(client, "staff")
    for url in PAGES:
        assert client.get(url).status_code == 200, url
    assert "Fire test payout" in text(client.get("/developers/sandbox"))


def test_anonymous_is_sent_to_login(client):
    """Without a login the desk redirects to the login form."""
    response = client.get("/developers/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_scrub_masks_wallets_and_emails_but_keeps_the_typed_account():
    """Error texts and sandbox answers show no customer data, except the account the developer typed."""
    text_ = "paid 41001614575714 and 79161234567, ask anna.k+1@mail.example"
    assert devdesk.scrub(text_, keep=["79161234567"]) == "paid 4100••••5714 and 79161234567, ask •••@•••"
    assert devdesk.scrub("x" * 900, limit=10) == "x" * 10
