"""Background jobs: queue names, enqueue-after-commit, and where jobs run.

Queues: ``payouts`` (submit), ``payouts-status`` (status checks, janitor), ``default``
(imports, reports).  Jobs carry only ids, re-read the database and are safe to run twice.

``enqueue_after_commit(session, …)`` remembers a job on the session; it is sent only when
that session commits (and forgotten on rollback), so a worker never looks for a row that
is not committed yet.  With ``REDIS_URL`` set, jobs go to RQ (run ``cashback worker``);
without it they run in-process on a background thread of the web process (the embedded
demo), in their own app context and session.
"""
from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

QUEUE_PAYOUTS = "payouts"
QUEUE_STATUS = "payouts-status"
QUEUE_DEFAULT = "default"
QUEUES = (QUEUE_PAYOUTS, QUEUE_STATUS, QUEUE_DEFAULT)
_PENDING = "cashback_pending_jobs"
#: ``app.extensions[LOCAL_JOBS]``: set by a payout worker (``portal.tasks.worker``) in its own
#: process, ``fn(job) -> bool``: True when the worker keeps the job (a follow-up status check,
#: a retry later) and runs it itself instead of sending it through Redis.
LOCAL_JOBS = "cashback_local_jobs"


@dataclass(order=True)
class _Job:
    run_at: float
    seq: int
    queue: str = field(compare=False)
    func: str = field(compare=False)
    args: tuple = field(compare=False)
    job_id: str | None = field(compare=False, default=None)


_seq = itertools.count()


def enqueue_after_commit(session: Session, queue: str, func: str, *args: Any,
                         delay: dt.timedelta | None = None, job_id: str | None = None) -> None:
    """Send ``func(*args)`` to ``queue`` once ``session`` commits (``func`` is a dotted path)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    seconds = max(delay.total_seconds(), 0.0) if delay else 0.0
    session.info.setdefault(_PENDING, []).append(
        (current_app._get_current_object(), _Job(time.time() + seconds, next(_seq), queue, func, args, job_id)))


@sa.event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for app, job in session.info.pop(_PENDING, []):
        try:
            dispatch(app, job)
        except Exception:  # the DB row is the truth: the janitor finds what was not sent
            log.exception("could not enqueue %s%s; the janitor will pick it up", job.func, job.args)


@sa.event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def redis_connection(app: Flask):
    from redis import Redis

    conn = app.extensions.get("cashback_redis")
    if conn is None:
        conn = app.extensions["cashback_redis"] = Redis.from_url(app.config["REDIS_URL"])
    return conn


def queue_name(app: Flask, name: str) -> str:
    """``QUEUE_PREFIX`` + name: several deployments (or test runs) can share one Redis."""
    return f"{app.config.get('QUEUE_PREFIX', '')}{name}"


def rq_queue(app: Flask, name: str):
    from rq import Queue

    return Queue(queue_name(app, name), connection=redis_connection(app))


def dispatch(app: Flask, job: _Job) -> None:
    mode = app.config.get("JOBS_MODE") or ("rq" if app.config.get("REDIS_URL") else "thread")
    if mode == "collect":  # tests that drive jobs by hand look at what would have been sent
        app.extensions.setdefault("cashback_collected_jobs", []).append(job)
    elif mode == "rq":
        local = app.extensions.get(LOCAL_JOBS)
        if local is not None and local(job):
            return  # a payout worker's own follow-up: it runs it itself, claimed from the database when due
        queue = rq_queue(app, job.queue)
        job_id = queue_name(app, job.job_id) if job.job_id else None
        # the database row is the truth: RQ keeps no result, only failures (for requeue)
        options = {"job_id": job_id, "result_ttl": 0, "failure_ttl": 7 * 86400}
        delay = job.run_at - time.time()
        if delay > 0.5:
            queue.enqueue_in(dt.timedelta(seconds=delay), job.func, *job.args, **options)
        else:
            queue.enqueue(job.func, *job.args, **options)
    else:
        in_process(app).put(job)


# --- the in-process queue (no Redis) -----------------------------------------------------

class InProcessQueue:
    """A single background thread running due jobs in order (embedded mode and the demo)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._heap: list[_Job] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cashback-jobs", daemon=True)
        self._thread.start()

    def put(self, job: _Job) -> None:
        with self._cond:
            heapq.heappush(self._heap, job)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].run_at > time.time():
                    timeout = (self._heap[0].run_at - time.time()) if self._heap else None
                    self._cond.wait(timeout)
                job = heapq.heappop(self._heap)
            try:
                from portal.extensions import db

                with self.app.app_context():
                    try:
                        resolve(job.func)(*job.args)
                    finally:
                        db.session.remove()
            except Exception:
                log.exception("in-process job %s%s failed", job.func, job.args)


_in_process_lock = threading.Lock()


def in_process(app: Flask) -> InProcessQueue:
    with _in_process_lock:
        queue = app.extensions.get("cashback_in_process_queue")
        if queue is None:
            queue = app.extensions["cashback_in_process_queue"] = InProcessQueue(app)
        return queue


def resolve(path: str) -> Callable:
    module, _, name = path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


# --- jobs ------------------------------------------------------------------------------------

#: The app a worker process built (``cashback worker`` sets it); jobs run in its context.
WORKER_APP: Flask | None = None


def job(fn: Callable) -> Callable:
    """Run a job function in an app context with a fresh session (unless one is active)."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        global WORKER_APP
        if WORKER_APP is None:
            if has_app_context():  # called directly (tests, the CLI, the in-process queue)
                return fn(*args)
            from portal.app import create_app

            WORKER_APP = create_app()
        from portal.extensions import db

        with WORKER_APP.app_context():
            try:
                return fn(*args)
            finally:
                db.session.remove()

    return wrapper
