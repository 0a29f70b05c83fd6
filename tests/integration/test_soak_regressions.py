"""Regression tests of the bugs the fault soak (``tests/soak``) found, one focused test each.

Jobs are driven by hand on PostgreSQL and the Test Bank sandbox (``JOBS_MODE=collect``), like
``test_payouts.py``, whose fixtures and helpers they reuse; the worker test runs a real
``cashback worker`` against a private redis-server it restarts.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
import redis
import sqlalchemy as sa
from rq import Queue, Worker

from portal.models import Payout, PayoutAttempt, ProviderState
from portal.models.types import utcnow
from portal.tasks import payouts as jobs
from tests.integration.test_payouts import withdraw, world  # noqa: F401  (fixture)
from tests.soak.harness import REDIS_SERVER, RedisServer, _conninfo


def test_status_check_that_finds_the_payout_paid_closes_its_attempt(app, session, world, testbank):
    """Soak bug 1: a status check answering "succeeded" moved the payout to succeeded, but the
    attempt's own change (succeeded, no next check) was thrown away by a refresh before it was
    flushed.  The attempt stayed "pending" with a due check: the janitor re-checked it every
    tick until PAYOUT_MAX_CHECKS, then flagged the paid payout for Finance."""
    for key in ("k1", "k2"):  # the second one runs with the ledger's account cache warm (no query)
        payout_id = withdraw(session, app, key=key).payout.id
        jobs.submit_payout(payout_id)  # the sandbox takes it "processing": settles on the first read
        session.expire_all()
        attempt_id = session.get(Payout, payout_id).attempts[-1].id
        assert session.get(PayoutAttempt, attempt_id).status == "pending"

        assert jobs.check_attempt(attempt_id) == "succeeded"

        session.expire_all()
        payout, attempt = session.get(Payout, payout_id), session.get(PayoutAttempt, attempt_id)
        assert payout.state == "succeeded" and not payout.needs_attention
        assert (attempt.status, attempt.next_check_at) == ("succeeded", None)
    assert jobs.janitor()["checks"] == 0  # nothing left for the janitor to ask about
    assert [t.status for t in testbank.ledger.transfers()] == ["succeeded", "succeeded"]


def test_janitor_holds_no_transaction_between_runs_and_survives_a_killed_connection(app, session, world, pg_url):
    """Soak bug 2: ``cashback janitor --every N`` kept the read transaction of its balance poll
    open while it slept; when PostgreSQL dropped that connection (pg_terminate_backend, a
    failover) the next run raised and ended the loop: nothing adopted stuck payouts any more."""
    jobs.janitor()  # creates the providers' rows and polls their balances
    session.execute(sa.update(ProviderState).values(balance_checked_at=utcnow()))
    session.commit()
    jobs.janitor()  # every balance is fresh now: the poll only reads
    assert not session().in_transaction()

    with psycopg.connect(_conninfo(pg_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    counts = jobs.janitor()  # a fresh connection from the pool (pre-ping), not the dead one
    assert counts["checks"] == 0 and counts["submits"] == 0


@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server is not installed")
def test_worker_keeps_working_across_a_redis_restart(app, pg_url, tmp_path):
    """Soak bug 3: RQ's work loop quits on a Redis connection error, so a Redis restart ended
    every `cashback worker` (exit status 0: nothing restarted them).  Now the command starts a
    new worker until Redis is back, and jobs sent afterwards are run."""
    server = RedisServer(tmp_path)
    server.start()
    prefix = f"regr-{uuid.uuid4().hex[:6]}-"
    env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": server.url, "CASHBACK_QUEUE_PREFIX": prefix,
           "CASHBACK_ENV": "testing", "SECRET_KEY": "test-secret"}
    log = open(tmp_path / "worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-c", "from portal.cli import main; main()", "worker"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        conn = redis.Redis.from_url(server.url)
        assert _eventually(lambda: Worker.all(connection=conn)), "the worker never registered"
        busy = Queue(f"{prefix}default", connection=conn).enqueue("time.sleep", 2)
        assert _eventually(lambda: busy.get_status(refresh=True) == "started")
        server.shutdown()  # SHUTDOWN NOSAVE mid-job: every queue and registration is gone
        _eventually(lambda: worker.poll() is not None, attempts=40)  # Redis stays down past the job's end
        server.start()
        assert _eventually(lambda: Worker.all(connection=conn) or worker.poll() is not None)
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        job = Queue(f"{prefix}payouts-status", connection=conn).enqueue(
            "portal.tasks.payouts.check_attempt", 999_999, result_ttl=60)
        assert _eventually(lambda: job.get_status(refresh=True) in ("finished", "failed"))
        assert job.get_status() == "finished" and job.return_value() == "nothing to do"
        worker.terminate()  # and a SIGTERM still ends it (no new worker after a requested stop)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()
        server.stop()


def _eventually(predicate, attempts: int = 1200):
    """Poll ``predicate`` every 0.1 s, at most ``attempts`` times (a bound, not a timing claim:
    generous, as a worker process starting on a busy machine takes many seconds to register)."""
    for _ in range(attempts):
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_a_throttled_provider_is_asked_again_only_after_its_block(app, session, world):
    """Soak finding 4: QIWI answers 423 after more than 100 history calls a minute and blocks the
    wallet's history for five minutes [doc], with no Retry-After.  Status checks were scheduled
    by the check ladder alone (seconds apart in the soak), hammering the blocked history; now a
    423 means "ask again after the block", and every check honours a provider's Retry-After."""
    import datetime as dt

    from payment_providers.qiwi.client import HISTORY_BLOCK, QiwiClient
    from payment_providers.qiwi.sandbox import DEFAULT_TOKEN, DEFAULT_WALLET, QiwiSandbox
    from plugins import ErrorCode, PayoutStatus, Result
    from portal.services import payouts

    sandbox = QiwiSandbox(history_limit=0).start()  # the first history call already blocks
    try:
        client = QiwiClient(sandbox.url, DEFAULT_TOKEN, DEFAULT_WALLET, connect_timeout=2, read_timeout=5)
        answer = client.find(12345)
        assert (answer.status, answer.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)
        assert answer.retry_after == HISTORY_BLOCK
    finally:
        sandbox.stop()

    app.config["PAYOUT_CHECK_SECONDS"], ladder = [1, 2, 3], app.config["PAYOUT_CHECK_SECONDS"]
    try:
        payout_id = withdraw(session, app, key="throttled").payout.id
        jobs.submit_payout(payout_id)
        session.expire_all()
        attempt_id = session.get(Payout, payout_id).attempts[-1].id
        now = utcnow()
        payouts.apply_result(session, attempt_id, Result.unknown(ErrorCode.RATE_LIMITED, "423",
                                                                 retry_after=HISTORY_BLOCK),
                             config=app.config, now=now)
        session.commit()
        attempt = session.get(PayoutAttempt, attempt_id)
        assert attempt.status == "unknown"
        assert attempt.next_check_at >= now + HISTORY_BLOCK  # not the ladder's 1 s
        assert jobs.janitor()["checks"] == 0  # nothing due: the janitor does not hammer either
        # without a Retry-After the ladder rules as before
        payouts.apply_result(session, attempt_id, Result.unknown(ErrorCode.TIMEOUT, "timeout"),
                             config=app.config, now=now)
        session.commit()
        assert session.get(PayoutAttempt, attempt_id).next_check_at <= now + dt.timedelta(seconds=3)
    finally:
        app.config["PAYOUT_CHECK_SECONDS"] = ladder
