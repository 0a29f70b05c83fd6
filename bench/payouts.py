"""Payout throughput: approved payouts through real `cashback worker` processes to a sandbox.

One run on a throw-away PostgreSQL database and this run's own Redis queues:

  1. creates N approved payouts (customers with funds and payout details, rate 80 RUB/USD);
  2. baseline: the same number of payouts sent straight to the sandbox by W processes
     calling the provider client (no database, no queue) — the best the sandbox allows;
  3. starts W `cashback worker` processes, and once all are up and idle sends the submit jobs
     and times until every payout reached a final state (worker start-up is not timed).

The sandbox answers every call after ``--latency`` seconds (50 ms), settling at once, so
the ideal with one call in flight per worker (issue 13's yardstick) is W / latency payouts/s;
a worker keeps ``--calls`` (``CASHBACK_WORKER_CALLS``, 4) calls in flight and can exceed it.
Prints payouts/s, the ratio to that ideal and to the measured baseline, and checks: every
payout succeeded, the sandbox paid each exactly once, verify-ledger is clean.

    python bench/payouts.py [--payouts 2000] [--workers 2] [--calls 4] [--latency 0.05] [--provider test] [--profile]

``--profile`` samples each worker with py-spy (``pip install -e '.[bench]'``) and prints where
a payout's time goes on the main thread (waiting for a call slot or a job, the claims'
PostgreSQL round trips and app code, RQ bookkeeping) and on the call threads (idle, the handle
store, the provider call, applying answers); and the workers' CPU per payout.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import ledger as ledger_bench  # noqa: E402  (create/drop the throw-away database)
from config import normalize_database_url  # noqa: E402
from tests.soak.harness import sandbox_for, wallet  # noqa: E402,F401  (shared with the soak)


def _setup(url: str, settings: dict, count: int, prefix: str, redis_url: str, code: str = "test"):
    from flask_migrate import upgrade

    from portal import providers
    from portal.app import create_app
    from portal.extensions import db
    from portal.models import Customer, PayoutDetails
    from portal.services import fx, ledger, payouts
    from portal.services.audit import Actor
    from portal.services.ledger import customer_account, system_account, transfer
    from portal.security import sync_roles

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "CASHBACK_ENV": "testing", "SECRET_KEY": "bench",
                      "PAYOUT_PROVIDER_SETTINGS": settings, "REDIS_URL": redis_url, "JOBS_MODE": "collect",
                      "QUEUE_PREFIX": prefix, "MAX_WITHDRAWALS_PER_DAY": 1000})
    actor = Actor.system("bench")
    ids = []
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
        session = db.session
        fx.correct_rate(session, dt.date.today(), Decimal("80"), actor, "bench rate")
        payouts.set_provider_enabled(session, code, True, actor=actor, reason="bench")  # QIWI starts off
        customers = max(1, count // 2)
        old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
        for i in range(1, customers + 1):
            session.add(Customer(id=i, email=f"p{i}@bench.local", name=f"Bench {i}"))
        session.flush()
        for i in range(1, customers + 1):
            session.add(PayoutDetails(customer_id=i, provider_code=code, account=wallet(i, code), created_at=old))
            ledger.post(session, kind="bench.fund", reference=f"fund-{i}", actor=actor,
                        legs=transfer(system_account("network_receivable"), customer_account(i, "available"),
                                      Decimal("10.00")))
        session.commit()
        details = dict(session.execute(sa.select(PayoutDetails.customer_id, PayoutDetails.id)).all())
        provider = providers.provider(code, app)
        for n in range(count):
            cid = n % customers + 1
            result = payouts.request_withdrawal(session, session.get(Customer, cid), details_id=details[cid],
                                                amount_usd=Decimal("1.00"), request_key=f"bench-{n}",
                                                provider=provider, config=app.config, actor=actor)
            assert result.payout.state == "approved", result.payout.review_reasons
            ids.append(result.payout.id)
            session.commit()  # each submit job is collected; sent to Redis once the workers are up
        session.remove()
        db.engine.dispose()
    return ids, app


class _SharedHandles:
    """The baseline's handle store, shared by its processes (a real deployment shares the
    database's): WebMoney's ``reqn`` must grow across all of them and its ``tranid`` / QIWI's
    ``id`` must differ, else the sandbox answers 102/103 and the baseline measures retries."""

    def __init__(self, counter, lock) -> None:
        self.counter, self.lock = counter, lock

    def _next(self) -> int:
        with self.lock:
            self.counter.value += 1
            return self.counter.value

    def number_for(self, provider_code: str, idempotency_key: str) -> int:
        return self._next()  # every baseline key is used once

    def next_counter(self, provider_code: str, name: str) -> int:
        return self._next()

    def take(self, provider_code: str, bucket: str, window_seconds: int, limit: int, now: float) -> bool:
        return True  # the baseline only submits: no status checks, no QIWI history calls


def _direct(settings: dict, code: str, worker: int, count: int, start, done, counter, lock) -> None:
    from plugins import PayoutRequest
    from plugins.manager import collect_providers, get_plugin_manager

    provider = collect_providers(get_plugin_manager(), settings)[code]
    provider.bind_handles(_SharedHandles(counter, lock))
    start.wait()
    for n in range(count):
        key = f"direct-{worker}-{n}"
        provider.submit(PayoutRequest(idempotency_key=key, amount=Decimal("80.00"), currency="RUB",
                                      account=wallet(500_000 + worker * 10_000 + n, code)), key)
    done.put(worker)


def _baseline(settings: dict, code: str, workers: int, count: int) -> float:
    ctx = mp.get_context("spawn")
    start, done = ctx.Barrier(workers + 1, timeout=120), ctx.Queue()
    counter, lock = ctx.Value("q", 0, lock=False), ctx.Lock()
    share = count // workers
    procs = [ctx.Process(target=_direct, args=(settings, code, w, share, start, done, counter, lock))
             for w in range(workers)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    finished = 0
    for _ in procs:
        try:
            done.get(timeout=600)
            finished += 1
        except Exception:  # noqa: BLE001 — a stuck baseline process must not end the bench
            print("baseline: a direct-call process did not finish in 600 s; counted as not done")
            break
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    return max(finished, 1) * share / elapsed


# --profile: py-spy samples each worker process from outside (wall clock, idle included), so
# the profile needs nothing from the worker and survives however the worker ends.  Each sample
# is put in the first bucket of its thread's kind whose frame is on its stack: the main thread
# pops jobs and claims payouts and checks; the call threads (portal/tasks/worker.py, several
# per worker) make the provider calls and apply their answers.
_MAIN_BUCKETS = (
    ("waiting for a free call slot (all in flight)", ("_wait_for_slot",)),
    ("waiting for the calls in flight at the end", ("PayoutWorker.teardown",)),
    ("waiting for a job (pop, idle)", ("dequeue_job_and_maintain_ttl", "dequeue")),
    ("PostgreSQL round trips: claims (client + wait)", ("psycopg/",)),
    ("Redis inside the job (enqueue follow-ups)", ("redis/",)),
    ("app code in claims (ORM, audit, Python)", ("portal/tasks/payouts.py", "portal/tasks/__init__.py")),
    ("RQ bookkeeping around the job", ("redis/",)),
)
_CALL_BUCKETS = (
    ("idle (no call to make)", ()),
    ("handle store before a call (PostgreSQL)", ("services/handles.py",)),
    ("provider call (HTTP incl. sandbox latency)", ("_call",)),
    ("PostgreSQL round trips: answers (client + wait)", ("psycopg/",)),
    ("Redis (follow-ups sent)", ("redis/",)),
    ("app code applying answers (ORM, Python)", ("portal/",)),
)
_OTHER = "other worker code (loop, heartbeats, CPU)"


def _has(stack: str, mark: str) -> bool:
    return (f"{mark} (" in stack) if "/" not in mark else (mark in stack)


def _bucket(stack: str, call_thread: bool = False) -> str:
    if call_thread:
        if "_call_and_apply" not in stack:
            return _CALL_BUCKETS[0][0]
        for label, marks in _CALL_BUCKETS[1:]:
            if any(_has(stack, m) for m in marks):
                return label
        return _OTHER
    in_job = "portal/tasks/payouts.py" in stack or "portal/tasks/__init__.py" in stack  # a job function
    for label, marks in _MAIN_BUCKETS:
        if label.startswith("Redis inside") and not in_job:
            continue
        if label.startswith("RQ bookkeeping") and in_job:
            continue
        if any(_has(stack, m) for m in marks):
            return label
    return _OTHER


def _where(stack: str) -> str:
    """A sample's last frame in this project or in RQ, and the library frame it ended in."""
    parts = stack.split(";")
    mine = [i for i, f in enumerate(parts) if (str(ROOT) in f and "/.venv/" not in f) or "/site-packages/rq/" in f]
    i = mine[-1] if mine else len(parts) - 1

    def short(frame: str) -> str:
        return re.sub(r"\((?:[^()]*/)?((?:rq/)?[^/()]+/[^/()]+\.py:\d+)\)", r"(\1)", frame)

    return short(parts[i]) + (f" -> {short(parts[-1])}" if i < len(parts) - 1 else "")


def _count_calls(sandbox) -> list[int]:
    """Count the calls the sandbox answers from now on ([total, {method and path: n}], updated in place)."""
    import threading

    seen, lock, serve = [0, {}], threading.Lock(), sandbox._serve

    def counted(request):
        what = f"{request.method} {'/'.join(request.path.split('/')[:3])}"
        with lock:
            seen[0] += 1
            seen[1][what] = seen[1].get(what, 0) + 1
        return serve(request)

    sandbox._serve = counted
    return seen


def start_profilers(procs: list[subprocess.Popen], base: str) -> list[subprocess.Popen]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(spy):
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    return [subprocess.Popen([spy, "record", "--pid", str(p.pid), "--idle", "--threads", "--full-filenames",
                              "--nonblocking", "--rate", "100",
                              "--format", "raw", "--output", f"{base}{i}.txt"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, p in enumerate(procs)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def profile_summary(paths: list[str], payouts: int, elapsed: float, cpu: float) -> str:
    """Where the workers' threads spent the run, per payout, from py-spy's samples."""
    counts: dict[str, dict[str, int]] = {"main": {}, "call": {}}
    frames: dict[str, dict[str, int]] = {}  # bucket -> the frame under which the time went
    threads: dict[str, set] = {"main": set(), "call": set()}
    for i, path in enumerate(paths):
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            thread, _, stack = stack.partition(": ")
            kind = "main" if stack.startswith("MainThread;") else "call" if stack.startswith("provider-call") else None
            if kind is None or not n.isdigit():
                continue  # RQ's pub/sub listener thread only waits
            threads[kind].add((i, thread))
            label = _bucket(stack, call_thread=kind == "call")
            counts[kind][label] = counts[kind].get(label, 0) + int(n)
            where = _where(stack)
            frames.setdefault(label, {})[where] = frames.get(label, {}).get(where, 0) + int(n)
    lines = [f"profile (py-spy, {len(paths)} workers x {elapsed:.1f} s, {payouts} payouts), per payout:",
             f"  {'worker CPU (user+sys, /proc)':<48}: {cpu * 1000 / payouts:7.2f} ms"]
    for kind, title, buckets in (("main", "main thread (pops jobs, claims)", _MAIN_BUCKETS),
                                 ("call", "call threads (provider calls, answers applied)", _CALL_BUCKETS)):
        total = sum(counts[kind].values())
        if not total:
            continue
        wall = elapsed * len(threads[kind])  # thread-seconds of the run
        lines.append(f"  {title}: {len(threads[kind])} threads, {wall * 1000 / payouts:.2f} ms of thread time")
        for label in list(dict.fromkeys(b[0] for b in buckets)) + [_OTHER]:
            if label in counts[kind]:
                share = counts[kind][label] / total
                lines.append(f"    {label:<46}: {wall * share * 1000 / payouts:7.2f} ms  ({share:5.1%})")
                for where, n in sorted(frames[label].items(), key=lambda kv: -kv[1])[:3]:
                    lines.append(f"        {n / total:5.1%} {where}")
    return "\n".join(lines)


def stop_workers(procs: list[subprocess.Popen], conn, prefix: str) -> None:
    """SIGTERM (RQ's warm shutdown), then SIGKILL whatever still runs after 30 s."""
    for p in procs:
        p.terminate()
    for _ in procs:  # wake a worker blocked on an empty queue so that it sees the stop now
        conn.rpush(f"rq:queue:{prefix}payouts", "wake-up")
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payouts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--calls", type=int, default=None,
                        help="provider calls in flight per worker (CASHBACK_WORKER_CALLS; default the app's, 4)")
    parser.add_argument("--provider", default="test", help="test, yoomoney, mts, megafon, beeline, qiwi, webmoney")
    parser.add_argument("--timeout", type=float, default=1800, help="most seconds to wait for the workers")
    parser.add_argument("--qiwi-history-per-minute", type=int, default=100,
                        help="QIWI's history limit (sandbox) and our budget (plugin): 100 is QIWI's real one; "
                             "a larger value runs QIWI at another scale, as the fault soak does")
    parser.add_argument("--profile", action="store_true", help="sample the workers with py-spy; print where a payout's time goes")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    base = normalize_database_url(args.database_url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    profile_base = os.path.join(tempfile.gettempdir(), f"{prefix}spy-")
    url = ledger_bench.create_database(base)
    sandbox, suffix = sandbox_for(args.provider, qiwi_history_limit=args.qiwi_history_per_minute)
    sandbox.start()
    conn = redis.Redis.from_url(args.redis_url)
    procs: list[subprocess.Popen] = []
    procs_janitor: list[subprocess.Popen] = []
    try:
        settings = {args.provider: {"base_url": sandbox.url + suffix, "read_timeout": 10}}
        if args.provider == "qiwi":  # our budget follows the sandbox's limit
            # A check searches the history's newest pages (5 x 50 rows by default): the workers
            # submit every payout before the checks run (the submit queue comes first), so the
            # oldest are that many payments deep: search pages enough for the whole run.
            settings["qiwi"].update(history_limit_per_minute=args.qiwi_history_per_minute,
                                    history_budget_per_minute=args.qiwi_history_per_minute,
                                    history_pages=min(100, max(5, args.payouts // 50 + 2)))
        t_setup = time.perf_counter()
        ids, app = _setup(url, settings, args.payouts, prefix, args.redis_url, args.provider)
        setup_s = time.perf_counter() - t_setup
        sandbox.inject(latency=args.latency)
        baseline = _baseline(settings, args.provider, args.workers, args.payouts)
        # Forget the baseline: its transfers, and what the provider remembers of its calls
        # (WebMoney's last reqn, above the database counter the workers start from: every
        # X2 would answer 102 "reqn not greater" and the run stalled).  Latency back on.
        sandbox.reset()
        sandbox.inject(latency=args.latency)

        calls = _count_calls(sandbox)  # provider calls of the timed run (the baseline's are gone)
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": args.redis_url, "CASHBACK_ENV": "testing",
               "SECRET_KEY": "bench", "CASHBACK_QUEUE_PREFIX": prefix,
               "CASHBACK_PROVIDER_SETTINGS": json.dumps(settings)}
        # protocols that answer "pending"/"accepted" first need a status check: check after 1 s;
        # a QIWI check over its history budget is asked again in the next window and counts as a
        # check: enough of them that the budget, not Finance's hand-over, decides when it ends
        env["CASHBACK_PAYOUT_CHECK_SECONDS"] = "1"
        env["CASHBACK_PAYOUT_MAX_CHECKS"] = "100000"
        if args.calls:
            env["CASHBACK_WORKER_CALLS"] = str(args.calls)
        engine = sa.create_engine(url)
        for w in range(args.workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "from portal.cli import main; main()", "worker", "--name", f"{prefix}{w}"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        spies = start_profilers(procs, profile_base) if args.profile else []

        # time the workers, not their start-up: send the submit jobs once all are up and idle
        from rq import Worker

        from portal import tasks

        up_by = time.monotonic() + 300
        while time.monotonic() < up_by and not all(p.poll() is not None for p in procs):
            names = {w.name for w in Worker.all(connection=conn) if w.get_state() == "idle"}
            if all(f"{prefix}{w}" in names for w in range(args.workers)):
                break
            time.sleep(0.2)
        cpu_at_start = sum(cpu_seconds(p.pid) for p in procs)
        t0 = time.perf_counter()
        app.config["JOBS_MODE"] = "rq"
        for job in app.extensions.pop("cashback_collected_jobs", []):
            tasks.dispatch(app, job)
        final = "('succeeded', 'failed', 'rejected', 'cancelled', 'reversed')"
        # the workers' part ends when the provider has answered every payout's attempt (for
        # QIWI "accepted": its outcome comes from history checks, at most its budget a minute)
        with_worker = ("SELECT count(*) FROM payout p WHERE p.state = 'approved' OR EXISTS (SELECT 1 FROM "
                       "payout_attempt a WHERE a.payout_id = p.id AND a.status = 'submitting')")
        deadline = time.monotonic() + args.timeout
        open_, answered_s = len(ids), None
        while time.monotonic() < deadline:  # until every payout reached a final state
            with engine.connect() as c:
                open_ = c.execute(sa.text(f"SELECT count(*) FROM payout WHERE state NOT IN {final}")).scalar_one()
                if answered_s is None and (open_ == 0 or c.execute(sa.text(with_worker)).scalar_one() == 0):
                    answered_s = time.perf_counter() - t0
                    # then, as in production, a janitor adopts what fell between the cracks (a
                    # yoomoney run lost 4 of 2,000 scheduled status checks in RQ and waited minutes
                    # for them without one); not before: it would send every approved payout's
                    # submit again while the first jobs are still queued
                    procs_janitor.append(subprocess.Popen(
                        [sys.executable, "-c", "from portal.cli import main; main()", "janitor", "--every", "5"],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            if open_ == 0:
                break
            if all(p.poll() is not None for p in procs):
                print(f"every worker exited (status {[p.returncode for p in procs]}) with {open_} payouts open")
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        done = len(ids) - open_  # the figure counts what finished, even when the run was cut short
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_at_start  # the run's CPU, start-up left out
        stop_workers(procs, conn, prefix)
        for p in procs_janitor:
            p.terminate()
            p.wait(timeout=30)
        for spy in spies:  # py-spy writes its samples when its worker has gone
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()

        with engine.connect() as c:
            states = dict(c.execute(sa.text("SELECT state, count(*) FROM payout GROUP BY state")).all())
            failures = dict(c.execute(sa.text("SELECT failure_code, count(*) FROM payout WHERE state = 'failed' "
                                              "GROUP BY failure_code")).all())
            # what the open ones wait for: payout state / newest attempt's status and error
            waiting = c.execute(sa.text(
                "SELECT p.state || ' / ' || coalesce(a.status, 'no attempt') || coalesce(' ' || a.error_code, ''), "
                "count(*) FROM payout p LEFT JOIN LATERAL (SELECT status, error_code FROM payout_attempt "
                "WHERE payout_id = p.id ORDER BY number DESC LIMIT 1) a ON true WHERE p.state NOT IN "
                f"{final} GROUP BY 1 ORDER BY 2 DESC")).all()
        from sqlalchemy.orm import Session

        from portal.services.ledger import verify

        with Session(engine) as session:
            report = verify(session)
        engine.dispose()
    finally:
        for p in procs + procs_janitor:
            if p.poll() is None:
                p.kill()
        sandbox.stop()
        for key in conn.scan_iter(match=f"*{prefix}*", count=1000):
            conn.delete(key)
        ledger_bench.drop_database(base, url)

    transfers = sandbox.ledger.transfers()
    handles = [t.handle for t in transfers]
    duplicates = len(handles) - len(set(handles))
    paid_accounts = len(transfers)
    rate = done / elapsed
    ideal = args.workers / args.latency
    # QIWI: the workers' figure is the submits (every payout accepted); outcomes follow at the
    # history budget's pace (84 calls a minute steady at QIWI's 100), one call per check
    measured_s = answered_s if args.provider == "qiwi" and answered_s else elapsed
    measured = len(ids) / measured_s if measured_s == answered_s else rate
    slots = args.calls or int(os.environ.get("CASHBACK_WORKER_CALLS") or 4)
    print(f"payout bench [{args.provider}]: {len(ids)} approved payouts, {args.workers} worker processes "
          f"x {slots} calls in flight, "
          f"sandbox latency {args.latency * 1000:.0f} ms (setup {setup_s:.0f} s)")
    print(f"through the workers           : {measured:8.1f} payouts/s "
          f"({measured_s:.1f} s)")
    if args.provider == "qiwi":
        per_minute = args.qiwi_history_per_minute // 7 * 6  # 7 windows of budget // 7 overlap any minute
        print(f"  (QIWI: the figure is every payout accepted by the provider; outcomes come from history "
              f"checks, {args.qiwi_history_per_minute} calls a minute at most "
              f"({per_minute} steady): all final after {elapsed:.1f} s = {rate:.1f} payouts/s)")
    print(f"baseline: direct client calls : {baseline:8.1f} payouts/s")
    print(f"ideal: workers / latency      : {ideal:8.1f} payouts/s (issue 13's yardstick: one call in flight "
          f"per worker; {slots} in flight allow up to {ideal * slots:.0f}/s)")
    goal = 0.85 if args.provider == "test" else 0.7  # issue 13's floors
    print(f"ratio to ideal = {measured / ideal:.2f} (goal >= {goal:.2f}: "
          f"{'met' if measured / ideal >= goal else 'NOT met'}); ratio to baseline = {measured / baseline:.2f}")
    # A protocol that answers "pending"/"accepted" first needs a status call per payout: with one
    # call in flight per worker its ideal is workers / (calls per payout x latency)
    per_payout = calls[0] / max(done, 1)
    print(f"provider calls per payout: {per_payout:.2f} (all final: {rate:.1f} payouts/s = "
          f"{rate * per_payout / ideal:.2f} of workers / latency in calls): "
          + ", ".join(f"{what} {n}" for what, n in sorted(calls[1].items(), key=lambda kv: -kv[1])))
    print(f"states: {states}; sandbox transfers: {paid_accounts}; duplicates: {duplicates}"
          + (f"; failed: {failures}" if failures else ""))
    if waiting:
        print("open: " + ", ".join(f"{what}: {n}" for what, n in waiting))
    print(report.summary())
    if args.profile:
        paths = [f"{profile_base}{i}.txt" for i in range(args.workers)]
        print(profile_summary(paths, max(done, 1), elapsed, cpu))
        for path in paths:
            if os.path.exists(path):
                os.remove(path)
    ok = states == {"succeeded": len(ids)} and duplicates == 0 and paid_accounts == len(ids) and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
