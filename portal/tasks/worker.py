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
"""
from __future__ import annotations

import sys
import time
import traceback

from rq import SimpleWorker
from rq.timeouts import JobTimeoutException
from rq.job import Job, _job_stack  # get_current_job(): log lines carry the job's id
from rq.queue import Queue
from rq.worker import WorkerStatus

#: A killed worker's orphaned job hash expires after this long (seconds).
ORPHAN_TTL = 86400


class PayoutWorker(SimpleWorker):
    HEARTBEAT_SECONDS = 10.0
    #: An idle worker's blocking pop returns this often (RQ's default: worker_ttl - 15 = 405 s).
    #: A SIGTERM that lands on RQ's pub/sub thread is acted on only when the main thread next
    #: runs Python: a short pop makes a stop take seconds, not minutes.
    DEQUEUE_SECONDS = 5

    #: How long RQ's command-channel thread blocks in one read (RQ: 60 s). Stopping the worker
    #: joins that thread, so a long read made every shutdown (and every burst) last up to a minute.
    COMMAND_POLL_SECONDS = 1

    _heartbeat_sent = 0.0

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

    def execute_job(self, job: Job, queue: Queue) -> None:
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
            self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
