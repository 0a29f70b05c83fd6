"""Network postbacks over real HTTP, against the ledger bench's raw-INSERT baseline.

One run, one throw-away PostgreSQL database (migrated with Alembic; customers with
ledger accounts, one click per order so every sub-id resolves, a few days of USD/RUB
rates).  The app, ``portal.app:create_app()``, is served by gunicorn (gthread workers)
on 127.0.0.1; ``--clients`` processes each keep a keep-alive connection (a plain socket, renewed every
``--reconnect-every`` requests so the workers share them) and push their share of signed events.  Each order belongs to one client, so its expected outcome
is known in advance:

* every order gets ``paid`` and ``confirmed`` (about 1 in 4 sent confirmed-before-paid:
  the late ``paid`` is *stale*); about 1 in 10 orders is in RUB;
* about 20 % of all events are exact replays (*duplicate*), sent later by the same client;
* 1 % are forged (wrong key; *rejected* with 401 and logged).

Prints events/s through the app, (c) from ``bench/ledger.py`` measured in the same run
(single-row INSERT transactions/s, as many writer processes as clients), the ratio, the
outcome counts against the expected ones, CPU seconds by clients / app workers /
PostgreSQL, (h) the HTTP floor (the same push against a WSGI app that only answers: what
gunicorn and the clients cost per request by themselves; ``--no-floor`` skips it), (d) the
same events applied by ``postbacks.accept()`` in as many processes straight on a database of
their own (the app's work without HTTP; ``--no-direct`` skips it), and
``verify-ledger`` on the result.  Exit 1 if the ledger is not clean or
the outcomes differ from the expected ones.  Goals (issue 13): ≥ 1,000 events/s and
(p)/(c) ≥ 0.4.  A slow or broken answer never ends the run: the event is sent again and
counted as retried (its outcome stays exact).

    python bench/postbacks.py [--events 20000] [--clients 8] [--workers 4] [--threads 2] [--reconnect-every 200]
                              [--baseline 4000] [--no-floor] [--no-direct] [--profile DIR] [--timeout 900]

``--profile DIR`` wraps the app in cProfile (per worker, per request thread) and prints
where the time went: thread CPU time by default, ``--profile-clock wall`` for elapsed time
(then waiting on PostgreSQL, the GIL or a free core shows as time in psycopg).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import queue
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench import ledger as ledger_bench  # noqa: E402  (create/drop database, the baseline)
from bench import profiling  # noqa: E402
from portal.services.postback_signing import sign  # noqa: E402

NETWORK = "epn"
SECRET = "bench-postback-secret"
FORGED_SECRET = b"not-the-network-secret"
CUSTOMERS = 1000
RATE = Decimal("7.00")
RUB_PER_USD = Decimal("92.451200")
REPLAY_SHARE = 0.20
FORGED_SHARE = 0.01
OUT_OF_ORDER_SHARE = 0.25
RUB_SHARE = 0.10
SEED = 20261125


# --- the plan ----------------------------------------------------------------------------------

@dataclass
class Plan:
    """Who sends what, and what must come out of it."""

    per_client: list[list[tuple[bytes, bool]]]  # (body, forged) in sending order
    orders: int
    out_of_order: int
    rub_orders: int
    replays: int
    forged: int
    expected: Counter = field(default_factory=Counter)

    @property
    def events(self) -> int:
        return sum(len(items) for items in self.per_client)


def _body(order: int, status: str, sub_id: str, amount: Decimal, currency: str, at: dt.datetime) -> bytes:
    commission = (amount * Decimal("0.08")).quantize(Decimal("0.01"))
    return json.dumps({
        "event_id": f"B{order:07d}:{status}", "order_id": f"B{order:07d}", "sub_id": sub_id,
        "status": status, "order_amount": str(amount), "currency": currency, "commission": str(commission),
        "event_time": at.isoformat().replace("+00:00", "Z"), "channel": "web",
    }, separators=(",", ":")).encode()


def signed_headers(raw: bytes, forged: bool) -> dict[str, str]:
    """The headers a network sends with ``raw`` now (a forged event is signed with the wrong key)."""
    return {"Content-Type": "application/json", "X-Cashback-Network": NETWORK,
            **sign(FORGED_SECRET if forged else SECRET.encode(), raw, int(time.time()))}


def sub_id_for(order: int) -> str:
    return f"bench-sub-{order:07d}"


def make_plan(events: int, clients: int, now: dt.datetime) -> Plan:
    """``events`` events split into orders, replays and forgeries; orders dealt to clients."""
    rng = random.Random(SEED)
    forged = round(events * FORGED_SHARE)
    replays = round(events * REPLAY_SHARE)
    orders = (events - forged - replays) // 2
    replays = events - forged - 2 * orders  # the odd one out becomes a replay
    per_client: list[list[tuple[float, bytes, bool]]] = [[] for _ in range(clients)]
    out_of_order = rub_orders = 0
    for order in range(orders):
        amount = Decimal(rng.randint(300, 30000)) / 100
        currency = "USD"
        if rng.random() < RUB_SHARE:
            currency, amount = "RUB", (amount * 90).quantize(Decimal("0.01"))
            rub_orders += 1
        paid_at = now - dt.timedelta(days=rng.randint(0, 3), minutes=rng.randint(1, 600))
        confirmed_at = paid_at + dt.timedelta(minutes=rng.randint(1, 300))
        paid = _body(order, "paid", sub_id_for(order), amount, currency, paid_at)
        confirmed = _body(order, "confirmed", sub_id_for(order), amount, currency, confirmed_at)
        first, second = sorted(rng.random() for _ in range(2))
        if rng.random() < OUT_OF_ORDER_SHARE:
            first, second = second, first
            out_of_order += 1
        items = per_client[order % clients]
        items += [(first, paid, False), (second, confirmed, False)]
    originals = [list(items) for items in per_client]
    for n in range(replays):
        c = n % clients
        key, raw, _ = rng.choice(originals[c])
        per_client[c].append((rng.uniform(key, 1.0) + 1e-9, raw, False))
    for n in range(forged):
        c = rng.randrange(clients)
        raw = _body(orders + n, "paid", sub_id_for(0), Decimal("10.00"), "USD", now)
        per_client[c].append((rng.random(), raw, True))
    plan = Plan([[(raw, f) for _, raw, f in sorted(items, key=lambda i: i[0])] for items in per_client],
                orders, out_of_order, rub_orders, replays, forged)
    plan.expected.update(applied=2 * orders - out_of_order, stale=out_of_order, duplicate=replays,
                         rejected=forged)
    return plan


# --- the database ----------------------------------------------------------------------------------

def setup_database(url: str, orders: int, now: dt.datetime) -> None:
    """Schema by Alembic; customers with ledger accounts; one click per order; USD/RUB rates."""
    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.extensions import db
    from portal.models import Click, Customer, FxRate
    from portal.services import ledger

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "CASHBACK_ENV": "testing", "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        db.session.execute(sa.insert(Customer.__table__), [
            {"id": i, "email": f"bench{i}@bench.local", "name": f"Bench {i}", "locale": "ru",
             "is_blocked": False, "created_at": now} for i in range(1, CUSTOMERS + 1)])
        db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": CUSTOMERS})
        for i in range(1, CUSTOMERS + 1):
            ledger.open_customer_accounts(db.session, i)
        db.session.commit()
        rows = [{"sub_id": sub_id_for(o), "customer_id": 1 + o % CUSTOMERS, "product_id": str(1005000000000000 + o),
                 "canonical_url": f"https://aliexpress.com/item/{1005000000000000 + o}.html", "channel": "web",
                 "rate": RATE, "repeat_count": 1, "created_at": now - dt.timedelta(days=5)} for o in range(orders)]
        for start in range(0, len(rows), 5000):
            db.session.execute(sa.insert(Click.__table__), rows[start:start + 5000])
        db.session.execute(sa.insert(FxRate.__table__), [
            {"day": (now - dt.timedelta(days=d)).date(), "base": "USD", "quote": "RUB", "rate": RUB_PER_USD,
             "source": "cbr", "updated_at": now} for d in range(0, 10)])
        db.session.commit()
        db.engine.dispose()


def check_database(url: str, plan: Plan, rejections_logged: bool = True) -> tuple[bool, list[str]]:
    """verify-ledger, then what the events must have left behind (``rejections_logged=False``:
    the refusals were not the endpoint's, so none was logged)."""
    from portal.models import NetworkEvent, Order, PostbackRejection
    from portal.models.types import from_micros
    from portal.services import ledger
    from portal.services.ledger import system_account

    engine = sa.create_engine(url)
    lines, ok = [], True
    with Session(engine) as session:
        report = ledger.verify(session)
        lines.append(report.summary())
        ok &= report.ok

        def count(q):
            return session.execute(q).scalar_one()

        events = count(sa.select(sa.func.count()).select_from(NetworkEvent))
        rejected = count(sa.select(sa.func.count()).select_from(PostbackRejection))
        by_state = dict(session.execute(sa.select(Order.status, sa.func.count()).group_by(Order.status)).all())
        booked = count(sa.select(sa.func.coalesce(sa.func.sum(Order.booked_cashback), 0))
                       .where(Order.booked_in == "available"))
        available = from_micros(count(sa.text(  # balances are stored in integer micro-units
            "SELECT COALESCE(SUM(b.balance), 0) FROM ledger_balance b "
            "JOIN ledger_account a ON a.id = b.account_id WHERE a.kind = 'available'")))
        receivable = ledger.balance(session, system_account("network_receivable"))
        checks = [
            (f"network events stored: {events} (expected {2 * plan.orders})", events == 2 * plan.orders),
            (f"rejections logged: {rejected} (expected {plan.forged if rejections_logged else 0})",
             rejected == (plan.forged if rejections_logged else 0)),
            (f"orders: {by_state} (expected all {plan.orders} confirmed)", by_state == {"confirmed": plan.orders}),
            (f"cashback: booked on orders {booked} = customers' available {available} "
             f"= network receivable {receivable}", booked == available == receivable and booked > 0),
        ]
        for text, good in checks:
            lines.append(("  ok  " if good else "  BAD ") + text)
            ok &= good
    engine.dispose()
    return ok, lines


# --- the server -----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GUNICORN_CONFIG = '''
def worker_exit(server, worker):
    dump = getattr(worker.wsgi, "dump_profile", None)
    if dump is not None:
        dump()
'''


class _ProfiledApp:
    """WSGI middleware: cProfile around each request, one profile per request thread."""

    def __init__(self, app, out_dir: str, clock: str) -> None:
        self.app, self.out_dir = app, out_dir
        #: cpu: CPU time of the request's own thread; wall: elapsed time (includes waiting on
        #: PostgreSQL, on the GIL and for a CPU core)
        self.timer = time.thread_time if clock == "cpu" else time.perf_counter
        self.local, self.profiles, self.lock = threading.local(), [], threading.Lock()

    def __call__(self, environ, start_response):
        import cProfile

        prof = getattr(self.local, "prof", None)
        if prof is None:
            prof = self.local.prof = cProfile.Profile(self.timer)
            with self.lock:
                self.profiles.append(prof)
        prof.enable()
        try:
            return list(self.app(environ, start_response))
        finally:
            prof.disable()

    def dump_profile(self) -> None:
        import pstats

        if not self.profiles:
            return
        stats = pstats.Stats(self.profiles[0])
        for prof in self.profiles[1:]:
            stats.add(prof)
        stats.dump_stats(os.path.join(self.out_dir, f"worker-{os.getpid()}.prof"))


_FLOOR_ANSWER = b'{"duplicate":false,"ok":true,"order_id":1,"outcome":"applied"}\n'


def floor_app():
    """gunicorn entry for (h), the HTTP floor: ``bench.postbacks:floor_app()`` reads the body and
    answers what the app answers to an applied event, and does nothing else."""
    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            start_response("405 METHOD NOT ALLOWED", [("Content-Length", "0")])
            return [b""]
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_FLOOR_ANSWER))),
                                  ("X-Request-ID", "floor")])
        return [_FLOOR_ANSWER]

    return app


def profiled_app():
    """gunicorn entry for ``--profile``: ``bench.postbacks:profiled_app()``."""
    from portal.app import create_app

    return _ProfiledApp(create_app(), os.environ["BENCH_PROFILE_DIR"], os.environ.get("BENCH_PROFILE_CLOCK", "cpu"))


class Server:
    """gunicorn serving the portal on 127.0.0.1 (a process group of our own)."""

    def __init__(self, url: str, workers: int, threads: int, workdir: str, profile_dir: str | None,
                 profile_clock: str = "cpu", target: str | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = Path(workdir) / "gunicorn_conf.py"
        config.write_text(GUNICORN_CONFIG)
        self.log = Path(workdir) / "gunicorn.log"
        env = {**os.environ, "DATABASE_URL": url, "CASHBACK_ENV": "development", "SECRET_KEY": "bench-" + "k" * 32,
               "CASHBACK_PUBLIC_URL": "http://127.0.0.1",
               "CASHBACK_POSTBACK_SECRETS": f"{NETWORK}:{SECRET}", "REDIS_URL": "",
               "CASHBACK_INSTANCE_DIR": workdir,
               # every forged event logged, so the count is exact (the default keeps a sample of 60 a
               # minute per process: at today's rate a run's forged events exceed it)
               "CASHBACK_POSTBACK_REJECTION_SAMPLE": "0"}
        if profile_dir:
            env["BENCH_PROFILE_DIR"] = profile_dir
            env["BENCH_PROFILE_CLOCK"] = profile_clock
        target = target or ("bench.postbacks:profiled_app()" if profile_dir else "portal.app:create_app()")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(config), "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
             "--keep-alive", "30", "--timeout", "60", "--log-level", "warning", "--error-logfile", str(self.log),
             target],
            cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, workers: int, timeout: float = 120) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited ({self.proc.returncode}); see {self.log}:\n{self.log.read_text()}")
            try:
                if requests.get(self.base + "/api/v1/network/postback", timeout=10).status_code == 405 \
                        and len(self.worker_pids()) >= workers:
                    return
            except requests.RequestException:  # refused, reset or slow while the workers import: not ready yet
                pass
            time.sleep(0.3)
        raise SystemExit("gunicorn did not become ready in time")

    def worker_pids(self) -> list[int]:
        return [pid for pid, ppid, _ in profiling.processes() if ppid == self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers run worker_exit (profile dump)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the clients ------------------------------------------------------------------------------------

class _Http:
    """One keep-alive HTTP/1.1 connection on a plain socket: a network's sender is lean, and
    the bench measures the app (``requests`` cost more CPU per event than the app's own work;
    ``http.client`` parses every answer's headers with the e-mail parser, a third of this
    client's CPU).  It writes the request in one ``sendall`` and reads the answer by its
    ``Content-Length`` (the app always sends one); anything else is a broken answer."""

    def __init__(self, base: str, timeout: float, reconnect_every: int = 0) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.sock, self.buffer = None, b""
        #: requests per connection (0: keep it): gunicorn's workers share one listening socket and
        #: whichever is awake accepts, so 8 connections opened at once tend to land on one worker
        #: (one GIL for most of the load); renewing them now and then spreads them, as a proxy's
        #: recycled upstream connections do
        self.reconnect_every, self.used = reconnect_every, 0

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, content type, body bytes); raises OSError / HTTPException on a broken answer."""
        import http.client

        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        body = body or b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        try:
            self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            while b"\r\n\r\n" not in self.buffer:
                self._fill()
            raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = raw_head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if "content-length" not in fields:
                raise http.client.HTTPException(f"answer without Content-Length: {lines[0]}")
            length = int(fields["content-length"])
            while len(self.buffer) < length:
                self._fill()
            data, self.buffer = self.buffer[:length], self.buffer[length:]
        except (OSError, http.client.HTTPException):
            self.close()  # a timed-out or broken connection is never reused
            raise
        except (ValueError, IndexError) as err:
            self.close()
            raise http.client.HTTPException(f"unreadable answer: {err}") from err
        self.used += 1
        if fields.get("connection", "").lower() == "close" or \
                (self.reconnect_every and self.used >= self.reconnect_every):
            self.close()
            self.used = 0
        return status, fields.get("content-type", ""), data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _client(base: str, items: list[tuple[bytes, bool]], deadline: float, start, results,
            reconnect_every: int = 0, read_timeout: float = 30.0, attempts: int = 5) -> None:
    """Push ``items`` in order on one keep-alive connection; put the counts on ``results``.

    A slow or broken answer never ends the run: the same event is sent again (signed anew,
    on a new connection) up to ``attempts`` times, and each such retry is counted
    (``retried``).  An event whose first try got no answer may have been applied before the
    retry; the retry then answers ``duplicate: true`` with the stored outcome, which is
    counted as that outcome (the client knows which bodies it has had an answer for), so
    the counts stay exact.
    """
    import http.client

    path = "/api/v1/network/postback"
    counts: Counter = Counter()
    latencies: list[float] = []
    samples: list[str] = []
    answered: set[bytes] = set()
    http_ = _Http(base, read_timeout, reconnect_every)
    for _ in range(10):  # open the keep-alive connection before the clock starts
        try:
            http_.request("GET", path)
            break
        except (OSError, http.client.HTTPException):
            time.sleep(1)
    start.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    for raw, forged in items:
        if time.time() > deadline:
            counts["not_sent"] += 1
            continue
        answer, unanswered_try = None, False
        for attempt in range(attempts):
            headers = signed_headers(raw, forged)
            t0 = time.perf_counter()
            try:
                answer = http_.request("POST", path, raw, headers)
            except (OSError, http.client.HTTPException) as err:
                counts["retried"] += 1
                unanswered_try = True
                if len(samples) < 3:
                    samples.append(f"try {attempt + 1}: {type(err).__name__}: {err}")
                time.sleep(min(2 ** attempt, 10))
                continue
            latencies.append(time.perf_counter() - t0)
            if answer[0] in (502, 503, 504):  # a worker restarting: the event was not handled
                counts["retried"] += 1
                answer = None
                time.sleep(min(2 ** attempt, 10))
                continue
            break
        if answer is None:
            counts["errors"] += 1
            continue
        status, content_type, data = answer
        body = json.loads(data) if content_type.startswith("application/json") else {}
        if status == 200:
            replay = body.get("duplicate") and (raw in answered or not unanswered_try)
            counts["duplicate" if replay else body.get("outcome", "?")] += 1
            answered.add(raw)
        elif status == 401 and forged:
            counts["rejected"] += 1
        else:
            counts["errors"] += 1
            if len(samples) < 3:
                samples.append(f"{status} {data[:300].decode(errors='replace')}")
    http_.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime  # while pushing only
    results.put((dict(counts), latencies, samples, cpu))


def push(base: str, plan: Plan, timeout: float, on_start,
         reconnect_every: int = 0) -> tuple[float, Counter, list[float], list[str], float]:
    """Start the clients; ``on_start()`` runs as they all start sending (after their imports and connects)."""
    ctx = mp.get_context("spawn")
    clients = len(plan.per_client)
    start = ctx.Barrier(clients + 1, timeout=120)
    results = ctx.Queue()
    deadline = time.time() + timeout
    procs = [ctx.Process(target=_client, args=(base, items, deadline, start, results, reconnect_every))
             for items in plan.per_client]
    for p in procs:
        p.start()
    start.wait()
    on_start()
    t0 = time.perf_counter()
    counts, latencies, samples, cpu = Counter(), [], [], 0.0
    waiting, give_up = len(procs), time.monotonic() + timeout + 120
    while waiting and time.monotonic() < give_up:
        try:
            c, lat, smp, seconds = results.get(timeout=5)
        except queue.Empty:
            if all(p.exitcode is not None for p in procs) and results.empty():
                break  # a client died without reporting: its events are counted below
            continue
        waiting -= 1
        counts.update(c)
        latencies += lat
        samples += smp
        cpu += seconds
    elapsed = time.perf_counter() - t0
    if waiting:
        counts["lost_clients"] += waiting
        samples.append(f"{waiting} client process(es) died or hung without reporting")
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    return elapsed, counts, latencies, samples, cpu


# --- main -------------------------------------------------------------------------------------------

#: The outcomes a client counts for an answered event.
OUTCOMES = ("applied", "duplicate", "stale", "rejected")


def _answered(counts: Counter) -> int:
    """Events that got an answer, whatever it was."""
    return sum(counts[n] for n in (*OUTCOMES, "orphan"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _direct_client(url: str, items: list[tuple[bytes, bool]], start, results) -> None:
    """(d): one process applying its share of the events with ``postbacks.accept()`` straight on
    the database — the app's own work per event (signature, parsing, the one statement) without
    an HTTP server in front; the counts as the HTTP clients count them."""
    import config as settings
    from portal.services import postbacks

    config = {**settings.load(), "POSTBACK_SECRETS": {NETWORK: SECRET}}
    engine = sa.create_engine(url, pool_size=1, max_overflow=0)
    counts = Counter()
    with engine.connect() as conn:  # open the pooled connection before the clock starts
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    start.wait()
    cpu0, pg0 = time.process_time(), profiling.cpu_seconds(backend)
    for raw, forged in items:
        outcome, handed_back = postbacks.accept(engine, raw, signed_headers(raw, forged), config)
        if outcome is not None:
            counts["duplicate" if outcome.duplicate else outcome.outcome] += 1
        else:
            counts["rejected" if forged and not handed_back else "handed_back"] += 1
    results.put((dict(counts), time.process_time() - cpu0, profiling.cpu_seconds(backend) - pg0))
    engine.dispose()


def _direct(base_url: str, plan: Plan, now: dt.datetime) -> tuple[float, Counter, float, float]:
    """(d) on a database of its own: (events/s, counts, client CPU and backend CPU seconds)."""
    url = ledger_bench.create_database(base_url, prefix="cashback_bench_pbd")
    try:
        setup_database(url, plan.orders, now)
        ctx = mp.get_context("spawn")
        start = ctx.Barrier(len(plan.per_client) + 1, timeout=120)
        results = ctx.Queue()
        procs = [ctx.Process(target=_direct_client, args=(url, items, start, results)) for items in plan.per_client]
        for p in procs:
            p.start()
        start.wait()
        t0 = time.perf_counter()
        counts, client_cpu, pg_cpu = Counter(), 0.0, 0.0
        for _ in procs:
            c, cpu, pg = results.get(timeout=900)
            counts.update(c)
            client_cpu += cpu
            pg_cpu += pg
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join()
        if not check_database(url, plan, rejections_logged=False)[0]:  # logging refusals is the endpoint's
            counts["ledger_not_ok"] += 1
    finally:
        ledger_bench.drop_database(base_url, url)
    return sum(counts.values()) / elapsed, counts, client_cpu, pg_cpu


def _floor(url: str, args, workdir: str, plan: Plan) -> tuple[float, float, float]:
    """(h): the same clients and gunicorn settings against :func:`floor_app` — what the HTTP
    server and the clients cost per request when the app does nothing: (requests/s, client CPU
    and server CPU seconds per request)."""
    server = Server(url, args.workers, args.threads, workdir, None, target="bench.postbacks:floor_app()")
    try:
        server.wait_ready(args.workers)
        before = {}
        elapsed, counts, _, _, client_cpu = push(
            server.base, plan, args.timeout,
            lambda: before.update({p: profiling.cpu_seconds(p) for p in server.worker_pids()}), args.reconnect_every)
        server_cpu = sum(profiling.cpu_seconds(p) - before.get(p, 0.0) for p in server.worker_pids())
    finally:
        server.stop()
    answered = max(_answered(counts), 1)
    return answered / elapsed, client_cpu / answered, server_cpu / answered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--reconnect-every", type=int, default=200,
                        help="requests per client connection before it is renewed (0: one connection per client)")
    parser.add_argument("--baseline", type=int, default=4000, help="INSERT transactions for the baseline")
    parser.add_argument("--timeout", type=float, default=900, help="seconds; events not sent by then are counted")
    parser.add_argument("--no-direct", dest="direct", action="store_false",
                        help="skip (d): the same events applied by postbacks.accept() straight on the database")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip (h), the HTTP floor: the same push against a WSGI app that only answers")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the app workers, write and summarize")
    parser.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: thread CPU time (default); wall: elapsed, incl. waiting on PostgreSQL")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    if args.events < 10 or not 1 <= args.clients <= 64 or not 1 <= args.workers <= 32:
        parser.error("--events >= 10, --clients 1..64, --workers 1..32")

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    plan = make_plan(args.events, args.clients, now)
    url = ledger_bench.create_database(args.database_url, prefix="cashback_bench_pb")
    workdir = tempfile.mkdtemp(prefix="bench_postbacks_")
    profile_dir = None
    if args.profile:
        profile_dir = str(Path(args.profile).resolve())
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(profile_dir).glob("worker-*.prof"):
            old.unlink()
    server = None
    try:
        t_setup = time.perf_counter()
        setup_database(url, plan.orders, now)
        setup_seconds = time.perf_counter() - t_setup
        baseline = ledger_bench.baseline_inserts_per_second(url, args.clients, args.baseline)
        server = Server(url, args.workers, args.threads, workdir, profile_dir, args.profile_clock)
        server.wait_ready(args.workers)
        before = {}
        conninfo, dbname = ledger_bench._conninfo(args.database_url), sa.make_url(url).database

        def backends() -> dict[int, float]:  # our database's backends only (the server is shared)
            return {pid: profiling.cpu_seconds(pid) for pid in profiling.backend_pids(conninfo, dbname)}

        def sample_before() -> None:
            before.update(pg=backends(), app={p: profiling.cpu_seconds(p) for p in server.worker_pids()},
                          busy=profiling.machine_busy())

        elapsed, counts, latencies, samples, client_cpu = push(server.base, plan, args.timeout, sample_before, args.reconnect_every)
        pg_before, app_before, busy_before = before["pg"], before["app"], before["busy"]
        pg_after, busy_after = backends(), profiling.machine_busy()
        per_worker = sorted((profiling.cpu_seconds(p) - app_before.get(p, 0.0) for p in server.worker_pids()),
                            reverse=True)
        app_cpu = sum(per_worker)
        pg_cpu = sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items())
        server.stop()
        floor = _floor(url, args, workdir, plan) if args.floor else None
        direct = _direct(args.database_url, plan, now) if args.direct else None
        # the baseline again after the push (the machine is shared): the ratio uses the geometric mean
        baselines = (baseline, ledger_bench.baseline_inserts_per_second(url, args.clients, args.baseline))
        baseline = (baselines[0] * baselines[1]) ** 0.5
        ok, db_lines = check_database(url, plan)
    finally:
        if server is not None:
            server.stop()
        ledger_bench.drop_database(args.database_url, url)
        shutil.rmtree(workdir, ignore_errors=True)

    names = OUTCOMES
    sent = _answered(counts)
    rate = sent / elapsed
    busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
    cores = os.cpu_count() or 1
    print(f"postback bench: {plan.events} events over HTTP, {args.clients} client processes (keep-alive HTTP/1.1 on plain sockets), "
          f"gunicorn {args.workers} workers x {args.threads} threads (gthread), PostgreSQL; {cores} cores")
    print(f"mix: {plan.orders} orders (paid + confirmed; {plan.out_of_order} confirmed-before-paid, "
          f"{plan.rub_orders} in RUB), {plan.replays} exact replays, {plan.forged} forged; "
          f"setup {setup_seconds:.1f} s")
    print(f"(p) signed postbacks through the app       : {rate:8.0f} events/s   "
          f"({sent} in {elapsed:.1f} s; latency p50 {1000 * _percentile(latencies, 0.5):.1f} ms, "
          f"p95 {1000 * _percentile(latencies, 0.95):.1f} ms, p99 {1000 * _percentile(latencies, 0.99):.1f} ms)")
    print(f"(c) baseline: single-row INSERT transactions: {baseline:8.0f} tx/s       "
          f"(bench/ledger.py (c), {args.clients} writer processes, {args.baseline} transactions; "
          f"before the push {baselines[0]:.0f}, after {baselines[1]:.0f}: the geometric mean)")
    print(f"ratio (p)/(c) = {rate / baseline:.3f} (goal >= 0.40: {'met' if rate / baseline >= 0.4 else 'NOT met'}); "
          f"goal >= 1000 events/s: {'met' if rate >= 1000 else 'NOT met'}")
    per = 1000 / max(sent, 1)
    print(f"CPU seconds while pushing: clients {client_cpu:.1f}, app workers {app_cpu:.1f}, "
          f"postgres {pg_cpu:.1f} (this database's backends); machine busy {100 * busy:.0f} % of {cores} cores "
          f"-> per event: clients {per * client_cpu:.2f} ms, app {per * app_cpu:.2f} ms, "
          f"postgres {per * pg_cpu:.2f} ms; the machine's CPU per event at this rate "
          f"{1000 * busy * cores / max(rate, 1e-9):.2f} ms")
    if floor:
        floor_rate, floor_clients, floor_server = floor
        print(f"(h) HTTP floor: the same push against a WSGI app that only answers: {floor_rate:8.0f} requests/s; "
              f"per request: clients {1000 * floor_clients:.2f} ms, gunicorn {1000 * floor_server:.2f} ms "
              f"-> of the app's {per * app_cpu:.2f} ms per event, {per * app_cpu - 1000 * floor_server:.2f} ms "
              f"beyond the HTTP server's own floor (measured alone: under the push the processes share the cores)")
    d_exact = True
    if direct:
        d_rate, d_counts, d_client, d_pg = direct
        d_per = 1000 / max(sum(d_counts.values()), 1)
        d_exact = all(d_counts[n] == plan.expected[n] for n in names) and set(d_counts) <= set(names)
        print(f"(d) the same events without HTTP (postbacks.accept() in {args.clients} processes, a database of its own): "
              f"{d_rate:8.0f} events/s -> (d)/(c) = {d_rate / baseline:.3f}; per event: app code {d_per * d_client:.2f} ms, "
              f"postgres {d_per * d_pg:.2f} ms; outcomes {'exact' if d_exact else 'DIFFER: ' + str(dict(d_counts))}")
    print("app worker CPU seconds (keep-alive connections stay on the worker that accepted them): "
          + " / ".join(f"{seconds:.1f}" for seconds in per_worker))
    print("outcomes: " + " / ".join(f"{n} {counts[n]} (expected {plan.expected[n]})" for n in names)
          + f" / orphan {counts['orphan']} / errors {counts['errors']} / not sent {counts['not_sent']}"
          + f" / retried after no answer {counts['retried']} / clients lost {counts['lost_clients']}")
    for sample in samples[:5]:
        print("  error sample: " + sample)
    outcomes_ok = all(counts[n] == plan.expected[n] for n in names) and not (
        counts["errors"] or counts["not_sent"] or counts["orphan"] or counts["lost_clients"]) and d_exact
    for line in db_lines:
        print(line)
    if profile_dir:
        what = ("thread CPU time, profiler overhead included" if args.profile_clock == "cpu"
                else "wall clock, incl. waiting")
        for line in profiling.profile_summary(sorted(Path(profile_dir).glob("worker-*.prof")), sent, "request", what):
            print(line)
        print(f"(profiles kept in {profile_dir}: python -m pstats {profile_dir}/worker-<pid>.prof)")
    return 0 if ok and outcomes_ok else 1


if __name__ == "__main__":
    sys.exit(main())
