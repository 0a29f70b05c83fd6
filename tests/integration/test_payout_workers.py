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

    def start(self, n: int = 1, queues: str | None = None) -> None:
        for i in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-c", "from portal.cli import main; main()", "worker", "--name",
                 f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}", *(("--queues", queues) if queues else ())],
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
    """Eighteen approved payouts through two real worker processes, each with several calls in
    flight: the sandbox answers "pending" and settles at the first status read, so every payout
    is a submit and a check; eighteen transfers, each once, each under its attempt's key."""
    testbank.inject(latency=0.05)
    workers.start(2)
    ids = [request(rq_app, cid, key=f"k{n}") for cid in range(1, 7) for n in range(3)]
    states = wait_for(rq_app, ids)
    assert set(states.values()) == {"succeeded"}, states
    transfers = testbank.ledger.transfers()
    assert len(transfers) == 18 and len({t.handle for t in transfers}) == 18
    with rq_app.app_context():
        attempts = db.session.execute(sa.select(PayoutAttempt)).scalars().all()
        assert len(attempts) == 18 and {a.status for a in attempts} == {"succeeded"}
        assert {t.handle for t in transfers} == {a.idempotency_key for a in attempts}
        assert ledger.verify(db.session).ok
        db.session.remove()


class Gate:
    """Wrap a sandbox's request handling: count the provider calls in flight; the first calls
    wait (up to 30 s) until ``hold`` calls are in flight together, later ones pass (held, the
    run's last calls would each wait out the 30 s for company that never comes); and each
    call's idempotency key must already be committed in the database when the call arrives."""

    def __init__(self, sandbox, monkeypatch, pg_url, hold: int) -> None:
        self.in_flight = self.most = 0
        self.uncommitted: list[str] = []
        self.cond = threading.Condition()
        self.hold = hold
        self.engine = sa.create_engine(pg_url)
        serve = sandbox._serve

        def gated(request):
            key = request.headers.get("idempotency-key")
            if key and request.method == "POST":
                with self.engine.connect() as c:  # another connection: sees committed rows only
                    if not c.execute(sa.select(PayoutAttempt.id).where(PayoutAttempt.idempotency_key == key)).first():
                        self.uncommitted.append(key)
            with self.cond:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                self.cond.notify_all()
                self.cond.wait_for(lambda: self.most >= self.hold, timeout=30)
            try:
                return serve(request)
            finally:
                with self.cond:
                    self.in_flight -= 1
                    self.cond.notify_all()

        monkeypatch.setattr(sandbox, "_serve", gated)

    def close(self) -> None:
        self.engine.dispose()


def long_timeouts(workers, testbank) -> None:
    """A provider read timeout well above what a gated call can wait."""
    workers.env["CASHBACK_PROVIDER_SETTINGS"] = json.dumps(
        {"test": {"base_url": testbank.url, "read_timeout": 60, "connect_timeout": 5}})


def test_a_worker_keeps_several_calls_in_flight_each_key_committed_first(rq_app, funded, workers, testbank,
                                                                         monkeypatch, pg_url):
    """Six submits waiting in the queue, a worker with three call slots: three provider calls
    are in flight at once (the sandbox holds each call until three are there), never more, and
    every call arrives with its attempt (its key) already committed; each payout paid once."""
    gate = Gate(testbank, monkeypatch, pg_url, hold=3)
    monkeypatch.setattr(testbank, "settle_at_once", True)  # the submit's answer is final: no status check
    long_timeouts(workers, testbank)
    workers.env["CASHBACK_WORKER_CALLS"] = "3"
    try:
        ids = [request(rq_app, cid) for cid in range(1, 7)]  # all queued before the worker starts
        workers.start(1)
        states = wait_for(rq_app, ids, timeout=90)
    finally:
        gate.close()
    assert set(states.values()) == {"succeeded"}, states
    assert gate.most == 3  # three calls in flight together, never a fourth
    assert gate.uncommitted == []  # the key was durable before the provider heard of it
    with rq_app.app_context():
        attempts = db.session.execute(sa.select(PayoutAttempt)).scalars().all()
        assert [a.number for a in attempts] == [1] * 6
        assert sorted(t.handle for t in testbank.ledger.transfers()) == sorted(a.idempotency_key for a in attempts)
        assert ledger.verify(db.session).ok
        db.session.remove()


def test_a_pending_payout_is_checked_by_its_own_worker_without_rq(rq_app, funded, workers, testbank):
    """The sandbox answers "pending" (settled at the first status read).  The worker serves the
    submit queue only and no janitor runs: the status check one second later can only come
    from the worker that submitted it, claimed from the database, not from RQ's scheduler."""
    workers.start(1, queues="payouts")
    payout_id = request(rq_app, 1)
    states = wait_for(rq_app, [payout_id])
    assert states[payout_id] == "succeeded"
    assert len(testbank.ledger.transfers()) == 1
    with rq_app.app_context():
        attempt = db.session.execute(sa.select(PayoutAttempt).where(PayoutAttempt.payout_id == payout_id)).scalar_one()
        assert attempt.status == "succeeded" and attempt.checks == 1 and attempt.next_check_at is None
        db.session.remove()
    from rq import Queue

    status_queue = Queue(f"{PREFIX}payouts-status", connection=redis.Redis.from_url(REDIS_URL))
    assert status_queue.count == 0 and status_queue.scheduled_job_registry.count == 0  # nothing went through RQ


def test_sigterm_with_calls_in_flight_applies_every_answer_and_starts_nothing_new(rq_app, funded, workers, testbank,
                                                                                  monkeypatch, pg_url):
    """SIGTERM while three calls are in flight: the worker stops taking jobs, lets the three
    calls end, applies their answers and exits; nothing is left `submitting`, the payouts it
    did not start are still approved without an attempt, and each transfer is one payout."""
    gate = Gate(testbank, monkeypatch, pg_url, hold=3)
    monkeypatch.setattr(testbank, "settle_at_once", True)
    testbank.inject(latency=1.0)
    long_timeouts(workers, testbank)
    workers.env["CASHBACK_WORKER_CALLS"] = "3"
    try:
        ids = [request(rq_app, cid) for cid in range(1, 7)]
        workers.start(1)
        with gate.cond:
            assert gate.cond.wait_for(lambda: gate.in_flight == 3, timeout=60)
        proc = workers.procs[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        gate.close()
    workers.procs.clear()
    with rq_app.app_context():
        rows = db.session.execute(sa.select(Payout.state, sa.func.count(PayoutAttempt.id)).outerjoin(
            PayoutAttempt, PayoutAttempt.payout_id == Payout.id).where(Payout.id.in_(ids)).group_by(Payout.id)).all()
        assert all((state, n) in (("succeeded", 1), ("approved", 0)) for state, n in rows), rows
        paid = sum(1 for state, _ in rows if state == "succeeded")
        assert paid >= 3  # the three in flight were answered and applied
        assert db.session.execute(sa.select(sa.func.count()).select_from(PayoutAttempt)
                                  .where(PayoutAttempt.status == "submitting")).scalar_one() == 0
        assert len(testbank.ledger.transfers()) == paid
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
