"""Real `cashback worker` processes on real Redis, real PostgreSQL and the HTTP sandbox."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa

from portal import providers
from portal.extensions import db
from portal.models import Customer, Payout, PayoutAttempt, PayoutDetails
from portal.services import fx, ledger, payouts
from portal.services.audit import Actor
from portal.services.ledger import customer_account, system_account, transfer
from portal.tasks import payouts as jobs
from tests.conftest import TEST_SETTINGS, build_app, provider_settings

SYSTEM = Actor.system("test")


def wallet(n: int) -> str:
    """A valid Test Bank wallet of one's own per customer (shared wallets go to review)."""
    from payment_providers.testbank.provider import luhn_check_digit

    body = f"{1234500 + n:07d}"
    return f"TEST-{body}{luhn_check_digit(body)}"

REDIS_BASE = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
#: this module's own Redis database, flushed around every test
REDIS_URL = REDIS_BASE
#: this run's queues and job ids: other runs sharing the Redis never see them
PREFIX = f"test{os.getpid()}-{uuid.uuid4().hex[:6]}-"
WORKER_ENV = {
    "CASHBACK_QUEUE_PREFIX": PREFIX,
    "CASHBACK_ENV": "testing", "SECRET_KEY": TEST_SETTINGS["SECRET_KEY"], "REDIS_URL": REDIS_URL,
    "CASHBACK_PAYOUT_CHECK_SECONDS": "1", "CASHBACK_PAYOUT_RETRY_SECONDS": "1",
    "CASHBACK_PAYOUT_STALE_SUBMIT_SECONDS": "2",
}


@pytest.fixture(scope="module")
def rq_app(pg_url, testbank):
    return build_app(pg_url, REDIS_URL=REDIS_URL, JOBS_MODE="rq", QUEUE_PREFIX=PREFIX, PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank),
                     PAYOUT_CHECK_SECONDS=[1], PAYOUT_RETRY_SECONDS=[1], PAYOUT_STALE_SUBMIT_SECONDS=2)


def _forget_this_runs_keys(conn) -> None:
    for key in conn.scan_iter(match=f"*{PREFIX}*", count=1000):
        conn.delete(key)


@pytest.fixture
def flushed_redis():
    """Only this run's RQ keys (queues, jobs, registries) are removed, before and after."""
    conn = redis.Redis.from_url(REDIS_URL)
    _forget_this_runs_keys(conn)
    yield conn
    _forget_this_runs_keys(conn)


class Workers:
    """`cashback worker` processes for one test; all killed at the end, with anything they
    started (each runs in a process group of its own: a forked work horse of a worker killed
    with -9 used to outlive the test run)."""

    def __init__(self, pg_url: str, testbank) -> None:
        self.env = {**os.environ, **WORKER_ENV, "DATABASE_URL": pg_url,
                    "CASHBACK_PROVIDER_SETTINGS": json.dumps(provider_settings(testbank))}
        self.procs: list[subprocess.Popen] = []
        self.groups: list[int] = []
        self.log = open(os.environ.get("CASHBACK_WORKER_LOG", os.devnull), "ab")

    def start(self, n: int = 1) -> None:
        for i in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-c", "from portal.cli import main; main()", "worker", "--name",
                 f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"],
                env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(proc)
            self.groups.append(proc.pid)

    def kill9(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.procs.clear()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for group in self.groups:  # whatever is left of each worker's group
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.procs.clear()
        self.groups.clear()
        self.log.close()


@pytest.fixture
def workers(pg_url, testbank, flushed_redis):
    w = Workers(pg_url, testbank)
    yield w
    w.stop()


@pytest.fixture
def funded(rq_app, customers, testbank):
    """Customers 1..6 with $5.00 available and old payout details; rate 80 RUB/USD."""
    testbank.reset()
    with rq_app.app_context():
        session = db.session
        fx.correct_rate(session, dt.date.today(), Decimal("80"), SYSTEM, "test rate")
        for cid in range(1, 7):
            ledger.post(session, kind="test.fund", reference=f"fund:{cid}", actor=SYSTEM,
                        legs=transfer(system_account("network_receivable"), customer_account(cid, "available"),
                                      Decimal("5.00")))
            session.add(PayoutDetails(customer_id=cid, provider_code="test", account=wallet(cid),
                                      created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)))
        session.commit()
        session.remove()


def request(rq_app, cid: int, key: str = "k") -> int:
    with rq_app.app_context():
        session = db.session
        details = session.execute(sa.select(PayoutDetails.id).where(PayoutDetails.customer_id == cid)).scalar_one()
        result = payouts.request_withdrawal(session, session.get(Customer, cid), details_id=details,
                                            amount_usd=Decimal("1.00"), request_key=key,
                                            provider=providers.provider("test", rq_app), config=rq_app.config,
                                            actor=SYSTEM)
        session.commit()  # the submit job is sent to Redis only now
        payout_id = result.payout.id
        session.remove()
        return payout_id


def wait_for(rq_app, payout_ids, states=("succeeded",), timeout=45.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        with rq_app.app_context():
            found = dict(db.session.execute(sa.select(Payout.id, Payout.state).where(Payout.id.in_(payout_ids))).all())
            db.session.remove()
        if all(found.get(i) in states for i in payout_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_two_workers_pay_every_payout_exactly_once(rq_app, funded, workers, testbank):
    """Six approved payouts through two real worker processes: six transfers, each once."""
    workers.start(2)
    ids = [request(rq_app, cid) for cid in range(1, 7)]
    states = wait_for(rq_app, ids)
    assert set(states.values()) == {"succeeded"}, states
    transfers = testbank.ledger.transfers()
    assert len(transfers) == 6 and len({t.handle for t in transfers}) == 6
    with rq_app.app_context():
        assert ledger.verify(db.session).ok
        db.session.remove()


def test_a_worker_claims_the_next_payout_while_one_call_is_in_flight(rq_app, funded, workers, testbank,
                                                                    monkeypatch):
    """Submits waiting in the queue: the worker claims payout N+1 (its key committed) and applies
    N's answer around N's provider call, yet never has two calls in flight; each paid once."""
    in_flight, most, lock = 0, 0, threading.Lock()
    serve = testbank._serve

    def counted(request):
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return serve(request)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(testbank, "_serve", counted)
    monkeypatch.setattr(testbank, "settle_at_once", True)  # the submit's answer is final: no status check
    testbank.inject(latency=0.3)
    ids = [request(rq_app, cid) for cid in range(1, 7)]  # all queued before the worker starts
    workers.start(1)
    states = wait_for(rq_app, ids)
    assert set(states.values()) == {"succeeded"}, states
    assert most == 1  # one provider call at a time per worker
    with rq_app.app_context():
        rows = db.session.execute(sa.select(PayoutAttempt, Payout.finished_at).join(
            Payout, Payout.id == PayoutAttempt.payout_id).order_by(PayoutAttempt.created_at)).all()
        assert [a.number for a, _ in rows] == [1] * 6
        assert {t.handle for t in testbank.ledger.transfers()} == {a.idempotency_key for a, _ in rows}
        # the next payout was claimed before the previous one's answer was applied
        assert all(nxt.created_at < finished for (_, finished), (nxt, _) in zip(rows, rows[1:]))
        assert ledger.verify(db.session).ok
        db.session.remove()


def test_worker_killed_mid_submit_no_double_payout(rq_app, funded, workers, testbank):
    """kill -9 while the provider is answering: the janitor asks about the same key; paid once."""
    testbank.inject(latency=3.0)
    workers.start(1)
    payout_id = request(rq_app, 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not testbank.ledger.transfers():
        time.sleep(0.05)
    assert testbank.ledger.transfers(), "the sandbox never received the payout"
    workers.kill9()  # the sandbox has committed; the worker dies waiting for the answer
    testbank.reset_faults()
    with rq_app.app_context():
        attempt = db.session.execute(sa.select(PayoutAttempt).where(PayoutAttempt.payout_id == payout_id)).scalar_one()
        assert attempt.status == "submitting"
        db.session.remove()
    time.sleep(2.2)  # older than the stale-submit threshold
    workers.start(1)
    with rq_app.app_context():
        assert jobs.janitor()["checks"] == 1
    states = wait_for(rq_app, [payout_id])
    assert states[payout_id] == "succeeded"
    assert len(testbank.ledger.transfers()) == 1
    with rq_app.app_context():
        attempts = db.session.execute(sa.select(PayoutAttempt).where(PayoutAttempt.payout_id == payout_id)).scalars().all()
        assert len(attempts) == 1  # resolved by status of the same key, never resubmitted under a new one
        assert ledger.verify(db.session).ok
        db.session.remove()
