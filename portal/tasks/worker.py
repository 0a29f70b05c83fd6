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

Provider calls run on call threads, several at a time (``WORKER_CALLS``, 4 by default;
``cashback worker --calls N``).  A submit is three steps (``portal.tasks.payouts``): claim (a
new attempt and its key, committed), the provider call, the result (applied and committed).
The main thread pops the job and claims the payout (the key is durable before anything is
sent), then hands the call and the result to a free call thread and goes on with the next job;
so a worker has at most ``WORKER_CALLS`` provider calls in flight and every call's key was
committed before it.  A status check (an RQ job from the janitor, a callback, Finance's
"check now") runs the same way: ``claim_check`` (counted, leased) on the main thread, the call
and the result on a call thread.

Follow-ups stay in the worker that caused them.  A result that asks for a status check later
(``pending``/``accepted``/``unknown``) or a retry later is not sent through RQ's scheduler (a
run of the bench lost 4 scheduled checks there): the worker keeps it in memory
(``LOCAL_JOBS``) and, when it is due, claims it from the database like a submit: the check
with ``due_only`` (a conditional UPDATE, so that the janitor's job for the same attempt and
this worker ask the provider once between them), the retry with ``payout_claim()``.  The
database row stays the truth: what a worker keeps in memory is also due in the database, so
if the worker stops or dies the janitor finds it there.

A stop (SIGTERM) with calls in flight is a warm one even between jobs: no new job or
follow-up is started, every call in flight finishes and its result is applied, then the worker
exits; what it kept for later is left to the janitor.  The main thread never waits longer than
``POLL_SECONDS`` while calls are in flight, so the stop is prompt.  A failure applying a result
is logged and left to the janitor: the attempt stays ``submitting`` (or leased) and the janitor
asks the provider about the same key (as after a kill -9).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from rq import SimpleWorker
from rq.exceptions import DequeueTimeout, StopRequested
from rq.timeouts import JobTimeoutException
from rq.job import Job, _job_stack, get_current_job  # log lines carry the job's id
from rq.queue import Queue
from rq.worker import WorkerStatus

from portal.tasks import LOCAL_JOBS

#: A killed worker's orphaned job hash expires after this long (seconds).
ORPHAN_TTL = 86400
SUBMIT = "portal.tasks.payouts.submit_payout"
CHECK = "portal.tasks.payouts.check_attempt"
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

    #: Provider calls in flight when neither ``calls=`` nor the app's ``WORKER_CALLS`` says.
    CALLS = 4
    #: The main thread's longest wait while calls are in flight or follow-ups are kept: a stop
    #: and a follow-up coming due are seen within it.
    POLL_SECONDS = 0.5
    #: The interpreter's thread switch interval once call threads run (Python's default 5 ms):
    #: every round trip of a thread (Redis, PostgreSQL, the provider) ends by taking the GIL
    #: back, and with 5 ms a thread answered from the network waited for another thread's
    #: Python work for up to 5 ms each time; the main thread's dozen round trips a payout made
    #: it the bound of a worker.
    SWITCH_SECONDS = 0.0005

    _heartbeat_sent = 0.0

    def __init__(self, *args, calls: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._calls = calls  # read from the app at the first call when None
        self._caller: ThreadPoolExecutor | None = None
        self._app_started = None  # the app whose LOCAL_JOBS this worker serves
        self._cond = threading.Condition()
        self._in_flight = 0  # provider calls started and not yet applied
        self._later: list[tuple[float, int, str, int]] = []  # (due, seq, "check"|"submit", id)
        self._seq = itertools.count()
        self._in_job = False  # the main thread is claiming or running a job: a stop waits for it

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

    def _shutdown(self) -> None:
        # RQ raises StopRequested right in the signal handler unless Redis says "busy": never
        # in the middle of a claim, nor with calls in flight (their results are still to apply)
        if self._in_job or self._in_flight:
            self._stop_requested = True
            self.set_shutdown_requested_date()
            if self.scheduler:
                self.stop_scheduler()
            return
        super()._shutdown()

    # --- calls in flight ------------------------------------------------------------------

    def _pooled(self, job: Job) -> str | None:
        if job.kwargs or not job.args:
            return None
        if job.func_name == SUBMIT and len(job.args) == 1:
            return "submit"
        if job.func_name == CHECK and len(job.args) <= 3:
            return "check"
        return None

    def _start(self, app) -> None:
        """The call threads and the follow-ups kept in memory, at the first call."""
        if self._caller is not None:
            return
        if self._calls is None:
            self._calls = max(1, int(app.config.get("WORKER_CALLS") or self.CALLS))
        self._caller = ThreadPoolExecutor(max_workers=self._calls, thread_name_prefix="provider-call")
        if self.SWITCH_SECONDS:
            sys.setswitchinterval(self.SWITCH_SECONDS)
        app.extensions[LOCAL_JOBS] = self._keep
        self._app_started = app

    def _keep(self, job) -> bool:
        """``LOCAL_JOBS``: keep a follow-up status check, or a retry later, to run it here when due."""
        if len(job.args) != 1 or job.run_at <= time.time() + 0.5:
            return False  # a check after a callback, the janitor's, anything to do now: through Redis
        if job.func == CHECK:
            kind = "check"  # asked when due (``due_only``): the janitor's job may have asked meanwhile
        elif job.func == SUBMIT:
            kind = "submit"  # a retry later: ``payout_claim()`` sends it only if still due and approved
        else:
            return False
        with self._cond:
            heapq.heappush(self._later, (job.run_at, next(self._seq), kind, job.args[0]))
            self._cond.notify_all()
        return True

    def _wait_for_slot(self, timeout: float | None = None) -> bool:
        """Until fewer than ``calls`` are in flight (True), or ``timeout`` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight < (self._calls or 1), timeout)

    def _launch(self, app, call, finish, claimed, what: str, claim=None) -> None:
        """``finish(claimed, call(claimed))`` on a call thread (a slot is free: the caller waited)."""
        with self._cond:
            self._in_flight += 1
        try:
            self._caller.submit(self._call_and_apply, app, call, finish, claimed, what, get_current_job(), claim)
        except BaseException:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
            log.exception("%s: claimed but not sent; the janitor will ask about the same key", what)
            raise

    def _call_and_apply(self, app, call, finish, claimed, what: str, job: Job | None, claim=None) -> None:
        """On a call thread: (``claim(*claimed)`` first, when given: a due follow-up check, which
        needs nothing of the main thread) the call, then its answer applied."""
        if job is not None:
            _job_stack.push(job)  # log lines name the job, as on the main thread
        try:
            if claim is not None:
                claimed = _in_app(app, claim, *claimed)
                if isinstance(claimed, str):
                    return  # not due any more, or asked by the janitor's job meanwhile
            answer = _in_app(app, call, claimed)
            try:
                _in_app(app, finish, claimed, answer)
            except Exception:  # the attempt stays `submitting`/leased with its key: the janitor asks
                log.exception("%s: the provider's answer (%s) was not saved; the janitor will ask about "
                              "the same key", what, answer.status.value)
        except Exception:
            log.exception("%s: the provider call failed outside the plugin; the janitor will ask about the "
                          "same key", what)
        finally:
            if job is not None:
                _job_stack.pop()
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _submit(self, app, payout_id: int) -> None:
        """Claim ``payout_id`` (its key committed) and start its call on a call thread."""
        from portal.tasks import payouts as jobs

        self._start(app)
        self._wait_for_slot()
        claimed = _in_app(app, jobs.claim_submit, payout_id)
        if not isinstance(claimed, str):
            self._launch(app, jobs.call_submit, jobs.finish_submit, claimed, f"Payout {payout_id}")

    def _check(self, app, attempt_id: int, after_callback: bool = False, due_only: bool = False) -> None:
        """Claim a status check of ``attempt_id`` (counted, leased) and start its call on a call thread."""
        from portal.tasks import payouts as jobs

        self._start(app)
        self._wait_for_slot()
        claimed = _in_app(app, jobs.claim_check, attempt_id, after_callback, due_only)
        if not isinstance(claimed, str):
            self._launch(app, jobs.call_check, jobs.finish_check, claimed,
                         f"Payout {claimed.facts.payout_id} (check of attempt {attempt_id})")

    def _run_due(self) -> None:
        """Start the kept follow-ups that are due, while a call slot is free."""
        app = self._app_started
        while app is not None and not self._stop_requested:
            with self._cond:
                if not self._later or self._later[0][0] > time.time() or self._in_flight >= self._calls:
                    return
                _, _, kind, ident = heapq.heappop(self._later)
            self.set_state(WorkerStatus.BUSY)
            self._in_job = True
            try:
                if kind == "check":  # claimed on the call thread: the main thread stays free for jobs
                    from portal.tasks import payouts as jobs

                    self._launch(app, jobs.call_check, jobs.finish_check, (ident, False, True),
                                 f"Check of attempt {ident}", claim=jobs.claim_check)
                else:
                    self._submit(app, ident)
            except Exception:  # still due in the database: the janitor finds it
                log.exception("The %s of %s due now was not started; the janitor will find it", kind, ident)
            finally:
                self._in_job = False

    def _pop(self, timeout: float | None):
        try:
            result = self.queue_class.dequeue_any(self._ordered_queues, timeout, connection=self.connection,
                                                  job_class=self.job_class, serializer=self.serializer,
                                                  death_penalty_class=self.death_penalty_class)
        except DequeueTimeout:
            return None
        if result is not None:
            self.reorder_queues(reference_queue=result[1])
            result[0].redis_server_version = self.get_redis_server_version()
        return result

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """RQ's pop while nothing is in flight or kept for later; else a pop that never waits
        longer than ``POLL_SECONDS``, taken only when a call slot is free, with the kept
        follow-ups started as they come due."""
        while True:
            self._run_due()
            with self._cond:
                in_flight, later = self._in_flight, (self._later[0][0] if self._later else None)
            if self._stop_requested:  # asked while a follow-up was being started
                raise StopRequested()
            if not in_flight and later is None:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            self.heartbeat()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            if not in_flight:
                self.set_state(WorkerStatus.IDLE)
            wait = self.POLL_SECONDS if later is None else min(self.POLL_SECONDS, max(later - time.time(), 0.05))
            if not self._wait_for_slot(wait):
                continue  # every slot taken: a call ends, a stop or a due follow-up comes first
            if self._stop_requested:
                raise StopRequested()
            if timeout is None:  # burst: take what is queued; stop once nothing is in flight
                result = self._pop(None)
                if result is None:
                    if not in_flight:
                        return None  # what is kept for later is left to the janitor
                    with self._cond:
                        self._cond.wait(wait)
                    continue
                return result
            result = self._pop(max(wait, 0.05))
            if result is not None:
                return result

    def teardown(self) -> None:
        try:
            if self._caller is not None:
                self._caller.shutdown(wait=True)  # every call in flight ends and its result is applied
                self._caller = None
            if self._app_started is not None:
                self._app_started.extensions.pop(LOCAL_JOBS, None)
            if self._later:
                log.info("%s follow-ups kept for later are left to the janitor (due in the database)",
                         len(self._later))
        finally:
            super().teardown()

    # --- one job ----------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        if job.result_ttl != 0:
            return super().execute_job(job, queue)  # RQ's full bookkeeping where it is wanted
        pooled = self._pooled(job)
        with self.connection.pipeline(transaction=False) as pipe:
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            pipe.expire(job.key, ORPHAN_TTL)
            pipe.execute()
        self._in_job = True
        try:
            with self.death_penalty_class(job.timeout or queue.DEFAULT_TIMEOUT, JobTimeoutException, job_id=job.id):
                _job_stack.push(job)
                try:
                    if pooled == "submit":
                        self._submit(_app(), *job.args)
                    elif pooled == "check":
                        self._check(_app(), *job.args)
                    else:
                        job.func(*job.args, **job.kwargs)
                finally:
                    _job_stack.pop()
        except Exception:  # RQ's own failure path: FailedJobRegistry, for the Developer desk's requeue
            exc_info = sys.exc_info()
            self.handle_exception(job, *exc_info)
            self.handle_job_failure(job=job, queue=queue, exc_string="".join(traceback.format_exception(*exc_info)))
            if not self._in_flight:
                self.set_state(WorkerStatus.IDLE)
            return
        finally:
            self._in_job = False
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.delete(job.key)
            if not self._in_flight:  # else busy until the answers in flight are applied
                self.set_state(WorkerStatus.IDLE, pipeline=pipe)
            pipe.execute()
