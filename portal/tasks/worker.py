"""``cashback worker``'s RQ worker: RQ's ``SimpleWorker`` (no fork per job) without the
per-job bookkeeping that the database already holds.

A job here carries only an id and re-reads its row; its outcome lives in the database and
its result is never kept (``result_ttl=0``).  RQ's default path still spends about ten Redis
round trips per job on that bookkeeping: an execution record, the started-job registry, job
status and heartbeat writes, the result, the worker's counters.  This worker runs a job with:

* the blocking pop and the job's hash (RQ's own ``dequeue_any``);
* one pipeline before it: worker state ``busy`` (monitoring and the soak see which worker is
  mid-job) and a one-day expiry on the job's hash, so a job whose worker was killed (-9)
  leaves nothing behind in Redis — the janitor finds its payout from the database;
* one pipeline after it: delete the job's hash, worker state ``idle``.

What stays RQ's: worker registration, ``rq info``, the scheduler (delayed jobs), queues,
the failure path (a failed job lands in the FailedJobRegistry for the Developer desk's
requeue, exactly as before), warm/cold shutdown, and the job timeout: a job runs under RQ's
death penalty (SIGALRM after the job's timeout, 180 s by default), so a hung job ends with
``JobTimeoutException`` while its payout's attempt stays ``submitting`` for the janitor.
Heartbeats are sent at most every ``HEARTBEAT_SECONDS`` instead of three times per job; an
idle worker's blocking pop returns every ``DEQUEUE_SECONDS`` so that a SIGTERM ends it promptly.
A job that keeps a result (``result_ttl`` other than 0) gets ``SimpleWorker``'s full treatment.

Submits overlap (``OVERLAP_SUBMITS``).  A submit is three steps (``portal.tasks.payouts``):
claim (a new attempt and its key, committed), the provider call, the result (applied and
committed).  The worker makes the call on its one call thread and goes on with the database
and Redis work around it: while payout N's call is in flight it applies payout N-1's result,
takes the next job from Redis and claims payout N+1 (committed), then waits for N's answer and
only then starts N+1's call.  So a worker still has at most ONE provider call in flight and
every call's key is committed before it; a payout's wall time is max(the provider's answer,
our own work) instead of their sum.  With no next job waiting, the worker finishes the call in
flight (applies its result) before it blocks on Redis; a stop (SIGTERM) finishes it too.
A failure applying a result is logged and left to the janitor: the attempt stays
``submitting`` and the janitor asks the provider about the same key (as after a kill -9).
"""
from __future__ import annotations

import logging
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor

from rq import SimpleWorker
from rq.timeouts import JobTimeoutException
from rq.job import Job, _job_stack  # get_current_job(): log lines carry the job's id
from rq.queue import Queue
from rq.worker import WorkerStatus

#: A killed worker's orphaned job hash expires after this long (seconds).
ORPHAN_TTL = 86400
SUBMIT = "portal.tasks.payouts.submit_payout"
log = logging.getLogger(__name__)


def _app():
    """The app the worker's jobs run in (``cashback worker`` sets it; else as ``tasks.job``)."""
    from flask import current_app, has_app_context

    from portal import tasks

    if tasks.WORKER_APP is None:
        if has_app_context():
            return current_app._get_current_object()
        from portal.app import create_app

        tasks.WORKER_APP = create_app()
    return tasks.WORKER_APP


def _in_app(app, fn, *args):
    """``fn(*args)`` in an app context of its own, with its own session (removed after)."""
    from portal.extensions import db

    with app.app_context():
        try:
            return fn(*args)
        finally:
            db.session.remove()


class PayoutWorker(SimpleWorker):
    HEARTBEAT_SECONDS = 10.0
    #: An idle worker's blocking pop returns this often (RQ's default: worker_ttl - 15 = 405 s).
    #: A SIGTERM that lands on RQ's pub/sub thread is acted on only when the main thread next
    #: runs Python: a short pop makes a stop take seconds, not minutes.
    DEQUEUE_SECONDS = 5

    #: How long RQ's command-channel thread blocks in one read (RQ: 60 s). Stopping the worker
    #: joins that thread, so a long read made every shutdown (and every burst) last up to a minute.
    COMMAND_POLL_SECONDS = 1

    #: Claim the next payout and apply the last result while a provider call is in flight.
    OVERLAP_SUBMITS = True

    _heartbeat_sent = 0.0
    #: (claimed attempt, its provider call) of the submit whose call is in flight
    _in_flight: tuple | None = None
    _caller: ThreadPoolExecutor | None = None

    def subscribe(self) -> None:
        """RQ's subscription to stop/kill commands, with a short read so a stop is prompt."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=self.COMMAND_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler)

    @property
    def dequeue_timeout(self) -> int:
        return self.DEQUEUE_SECONDS

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        # RQ calls this before and after every pop and after every job; the worker key's TTL
        # is minutes (worker_ttl + 60 s), so one heartbeat every few seconds keeps it alive.
        if pipeline is None and timeout is None and time.monotonic() - self._heartbeat_sent < self.HEARTBEAT_SECONDS:
            return
        self._heartbeat_sent = time.monotonic()
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline=pipeline)
        with self.connection.pipeline(transaction=False) as pipe:  # one round trip, not two
            super().heartbeat(timeout, pipeline=pipe)
            pipe.execute()

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return  # already said so (the job's closing pipeline set it)
        super().set_state(state, pipeline=pipeline)

    # --- overlapped submits -------------------------------------------------------------

    def _overlaps(self, job: Job) -> bool:
        return self.OVERLAP_SUBMITS and job.func_name == SUBMIT and len(job.args) == 1 and not job.kwargs

    def _submit(self, payout_id: int) -> None:
        """Claim ``payout_id`` (while the previous call is in flight), then start its call as
        soon as the previous one answered, then apply the previous result (while this call is
        in flight).  A claim that fails leaves the call in flight for the next step."""
        from portal.tasks import payouts as jobs

        app = _app()
        claimed = _in_app(app, jobs.claim_submit, payout_id)
        previous = self._in_flight
        answer = previous[1].result() if previous else None  # one call in flight per worker
        self._in_flight = None
        if not isinstance(claimed, str):
            if self._caller is None:
                self._caller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provider-call")
            self._in_flight = (claimed, self._caller.submit(_in_app, app, jobs.call_submit, claimed))
        if previous:
            self._apply(app, previous[0], answer)

    def _apply(self, app, claimed, result) -> None:
        from portal.tasks import payouts as jobs

        try:
            _in_app(app, jobs.finish_submit, claimed, result)
        except Exception:  # the attempt stays `submitting` with its key: the janitor asks the provider
            log.exception("Payout %s: the provider's answer (%s) was not saved; the janitor will ask about "
                          "the same key", claimed.payout_id, result.status.value)

    def finish_in_flight(self) -> None:
        """Wait for the call in flight (if any) and apply its result."""
        previous = self._in_flight
        if previous:
            answer = previous[1].result()
            self._in_flight = None
            self._apply(_app(), previous[0], answer)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        if self._in_flight is not None:  # a job already waiting: take it without blocking
            result = self.queue_class.dequeue_any(self._ordered_queues, None, connection=self.connection,
                                                  job_class=self.job_class, serializer=self.serializer,
                                                  death_penalty_class=self.death_penalty_class)
            if result is not None:
                self.reorder_queues(reference_queue=result[1])
                result[0].redis_server_version = self.get_redis_server_version()
                return result
            self.finish_in_flight()  # nothing waiting: no answer may wait for the next job
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def teardown(self) -> None:
        try:
            self.finish_in_flight()
        finally:
            if self._caller is not None:
                self._caller.shutdown(wait=True)
                self._caller = None
            super().teardown()

    # --- one job ----------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        overlapped = job.result_ttl == 0 and self._overlaps(job)
        if not overlapped:
            self.finish_in_flight()  # any other job runs after the submit in flight is done
        if job.result_ttl != 0:
            return super().execute_job(job, queue)  # RQ's full bookkeeping where it is wanted
        with self.connection.pipeline(transaction=False) as pipe:
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            pipe.expire(job.key, ORPHAN_TTL)
            pipe.execute()
        try:
            with self.death_penalty_class(job.timeout or queue.DEFAULT_TIMEOUT, JobTimeoutException, job_id=job.id):
                _job_stack.push(job)
                try:
                    if overlapped:
                        self._submit(*job.args)
                    else:
                        job.func(*job.args, **job.kwargs)
                finally:
                    _job_stack.pop()
        except Exception:  # RQ's own failure path: FailedJobRegistry, for the Developer desk's requeue
            exc_info = sys.exc_info()
            self.handle_exception(job, *exc_info)
            self.handle_job_failure(job=job, queue=queue, exc_string="".join(traceback.format_exception(*exc_info)))
            self.set_state(WorkerStatus.IDLE)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.delete(job.key)
            if self._in_flight is None:  # else busy until its answer is applied
                self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
