"""``PayoutWorker`` (the class behind ``cashback worker``) on real Redis: what it keeps and
what it leaves out compared with RQ's ``SimpleWorker``.

A job that finishes leaves nothing in Redis (its outcome is in the database); a job that
raises, or runs past its timeout, lands in RQ's FailedJobRegistry as before (the Developer
desk requeues from there); the worker registers with RQ like any worker.
"""
from __future__ import annotations

import json
import os
import uuid

import pytest
import redis
from rq import Queue, Worker

from portal.tasks.worker import ORPHAN_TTL, PayoutWorker

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def stall(seconds: float) -> None:
    import time

    time.sleep(seconds)


def boom() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def queue():
    conn = redis.Redis.from_url(REDIS_URL)
    name = f"test-worker-{uuid.uuid4().hex[:8]}"
    yield Queue(name, connection=conn)
    for key in conn.scan_iter(match=f"*{name}*", count=1000):
        conn.delete(key)


def run(queue: Queue) -> PayoutWorker:
    worker = PayoutWorker([queue], connection=queue.connection, name=f"{queue.name}-w")
    worker.work(burst=True)
    return worker


def test_a_finished_job_leaves_nothing_in_redis(queue):
    job = queue.enqueue(stall, 0.01, result_ttl=0, failure_ttl=3600)
    seen = {}
    original = PayoutWorker.execute_job

    def spy(self, j, q):
        original(self, j, q)
        seen["state"] = self.get_state()

    PayoutWorker.execute_job = spy
    try:
        run(queue)
    finally:
        PayoutWorker.execute_job = original
    assert not queue.connection.exists(job.key)
    assert seen["state"] == "idle"
    assert queue.count == 0 and job.id not in queue.failed_job_registry
    assert queue.started_job_registry.get_job_count(cleanup=False) == 0
    assert queue.finished_job_registry.get_job_count(cleanup=False) == 0


def test_a_job_that_raises_lands_in_the_failed_registry(queue):
    job = queue.enqueue(boom, result_ttl=0, failure_ttl=3600)
    run(queue)
    assert job.id in queue.failed_job_registry
    job.refresh()
    assert job.get_status() == "failed" and "RuntimeError: boom" in job.latest_result().exc_string


def test_a_hung_job_is_stopped_at_its_timeout(queue):
    job = queue.enqueue(stall, 30, result_ttl=0, failure_ttl=3600, job_timeout=1)
    run(queue)
    assert job.id in queue.failed_job_registry
    job.refresh()
    assert "JobTimeoutException" in job.latest_result().exc_string


def test_a_job_keeping_its_result_gets_rqs_full_treatment(queue):
    job = queue.enqueue(stall, 0.01, result_ttl=600)
    run(queue)
    job.refresh()
    assert job.get_status() == "finished" and job.id in queue.finished_job_registry


def note_ttl(job_key: str, out_key: str) -> None:
    from portal.observability import current_request_id

    conn = redis.Redis.from_url(REDIS_URL)
    conn.set(out_key, json.dumps([conn.ttl(job_key), current_request_id()]), ex=600)


def note_workers(out_key: str) -> None:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.set(out_key, json.dumps({w.name: w.get_state() for w in Worker.all(connection=conn)}), ex=600)


def test_the_job_hash_expires_if_its_worker_is_killed_mid_job(queue):
    """kill -9 mid-job leaves the popped job's hash behind: it expires instead of staying for ever."""
    job_id, out = uuid.uuid4().hex, f"{queue.name}:ttl"
    queue.enqueue(note_ttl, f"rq:job:{job_id}", out, job_id=job_id, result_ttl=0)
    run(queue)
    ttl, request_id = json.loads(queue.connection.get(out))
    assert 0 < ttl <= ORPHAN_TTL
    assert request_id == f"job:{job_id}"  # log lines still name the job


def test_the_worker_registers_with_rq_and_is_busy_during_a_job(queue):
    """Monitoring (and the soak's kill -9 of a worker mid-job) find busy workers through RQ."""
    out = f"{queue.name}:workers"
    queue.enqueue(note_workers, out, result_ttl=0)
    worker = run(queue)
    assert json.loads(queue.connection.get(out))[worker.name] == "busy"


def test_an_idle_worker_stops_promptly_on_sigterm(queue):
    """A SIGTERM to an idle worker (blocked in its pop) ends it within seconds, not at the
    end of RQ's 405-second pop (the soak and the deploy's restarts rely on it)."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import redis, sys; from rq import Queue; from portal.tasks.worker import PayoutWorker; "
            "c = redis.Redis.from_url(sys.argv[1]); "
            "PayoutWorker([Queue(sys.argv[2], connection=c)], connection=c).work(with_scheduler=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, REDIS_URL, queue.name])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                w.pid == proc.pid for w in Worker.all(connection=queue.connection)):
            time.sleep(0.2)
        time.sleep(1)  # in its blocking pop now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0  # RQ's own pop would last up to 405 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
