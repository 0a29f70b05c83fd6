"""The fault soak: real PostgreSQL, a private Redis, gunicorn, 2+ `cashback worker` processes,
a janitor and every provider sandbox, with traffic arriving concurrently while faults are
injected.  Used by ``tests/soak/test_soak_short.py`` (CI, ~2 minutes) and ``bench/soak.py``
(``--minutes N``).

One run (:func:`run`) owns everything it starts and stops it at the end:

* a fresh PostgreSQL database (created, migrated with Alembic, dropped);
* its own ``redis-server`` on a free port (no persistence), so a Redis restart disturbs
  nobody else on the machine;
* the provider sandboxes (Test Bank, YooMoney, QIWI — enabled —, WebMoney, and the phone
  sandbox for MTS/MegaFon/Beeline) as threads of this process on free ports;
* the portal under gunicorn (postbacks and the customer API), K ``cashback worker``
  processes and ``cashback janitor --every 1``;
* load threads: signed network postbacks (paid/confirmed/refunded/cancelled, exact
  replays, out of order, forged ones), customers withdrawing through the API (double
  clicks with one Idempotency-Key, racing requests), Finance approving in review (two
  approvers above the second-approval threshold), and claims when the API has them;
* a fault injector: kill -9 of a worker mid-job, a sandbox dropping the connection after
  it committed, 5xx (before or after commit), slow answers, a provider down for a while,
  Redis SHUTDOWN NOSAVE and restart, ``pg_terminate_backend`` on the soak database.

At the end: load stops, faults are cleared, workers and janitor drain (bounded), then the
four checks (:class:`SoakResult`): verify-ledger clean; every sandbox payout matches
exactly one succeeded payout of ours and vice versa; nothing stuck outside a state the
janitor or Finance owns; every postback answered is stored (applied) or logged (rejected).
Everything listens on 127.0.0.1 only.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config import normalize_database_url  # noqa: E402

REDIS_SERVER = "/usr/bin/redis-server"
NETWORK = "epn"
POSTBACK_SECRET = "soak-postback-secret"
FORGED_SECRET = b"not-the-network-secret"
PASSWORD = "soak-password-1"
RUB_PER_USD = Decimal("80")
#: Payout providers, in the order customers are given them.
PROVIDERS = ("test", "yoomoney", "qiwi", "webmoney", "mts", "megafon", "beeline")
#: Sandbox name -> provider codes it serves.
SANDBOXES = {"test": ("test",), "yoomoney": ("yoomoney",), "qiwi": ("qiwi",), "webmoney": ("webmoney",),
             "phones": ("mts", "megafon", "beeline")}
FAULT_KINDS = ("kill_worker", "drop_after_commit", "http_5xx", "slow", "down_for", "redis_restart",
               "pg_terminate")
#: Payout states: final ones, and those in which a job, the janitor or Finance must still act.
FINAL = ("succeeded", "failed", "rejected", "cancelled", "reversed")


# --- pieces shared with bench/payouts.py ---------------------------------------------------------

def wallet(n: int, code: str = "test") -> str:
    """A valid, distinct account of provider ``code`` for customer ``n`` (shared ones go to review)."""
    if code == "yoomoney":
        from payment_providers.yoomoney.client import make_wallet

        return make_wallet("1001", f"{n:07d}")
    if code in ("mts", "megafon", "beeline", "qiwi"):
        return f"+7915{n:07d}"
    if code == "webmoney":
        return f"P{300000000000 + n}"  # never our own purse (P100000000001: "same purse", retval 26)
    from payment_providers.testbank.provider import luhn_check_digit

    body = f"{2000000 + n:07d}"
    return f"TEST-{body}{luhn_check_digit(body)}"


#: QIWI allows 100 history calls a minute per wallet, then blocks it for five minutes [doc].
#: The soak compresses the status-check ladder from minutes–days to 1–3 s (and pushes more
#: QIWI payouts a minute than a real wallet would carry), so it scales that budget with it;
#: riding out a real block (checks wait for it, never hammer) is tested in
#: tests/integration/test_soak_regressions.py.
SOAK_QIWI_HISTORY_LIMIT = 2000


def sandbox_for(code: str, settle_after: float = 0.0, *, qiwi_history_limit: int = 100):
    """The provider's sandbox, answering at once where its protocol allows, with a deep float;
    and the suffix of its ``base_url``."""
    balance = Decimal("100000000.00")
    if code == "test":
        from payment_providers.testbank.sandbox import TestBankSandbox

        return TestBankSandbox(settle_at_once=True, balance=balance), ""
    if code == "yoomoney":
        from payment_providers.yoomoney.sandbox import YooMoneySandbox

        return YooMoneySandbox(settle_after=settle_after, balance=balance), "/v3"
    if code in ("mts", "megafon", "beeline", "phones"):
        from payment_providers.phones.sandbox import PhoneSandbox

        return PhoneSandbox(settle_after=settle_after, balance=balance), ""
    if code == "qiwi":
        from payment_providers.qiwi.sandbox import QiwiSandbox

        return QiwiSandbox(settle_after=settle_after, balance=balance, history_limit=qiwi_history_limit), ""
    if code == "webmoney":
        from payment_providers.webmoney.sandbox import WebMoneySandbox

        return WebMoneySandbox(balance=balance), ""
    raise SystemExit(f"no sandbox for {code!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_database(base_url: str, prefix: str = "cashback_soak", template: str | None = None) -> str:
    """A new database on ``base_url``'s server (a clone of ``template`` when given); its URL."""
    base = normalize_database_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, url: str) -> None:
    with psycopg.connect(_conninfo(normalize_database_url(base_url)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')


# --- configuration and result ------------------------------------------------------------------

@dataclass
class SoakConfig:
    #: Seconds of load (with faults, unless ``faults`` is False).
    seconds: float = 70.0
    #: Keep the load and the faults going past ``seconds`` until every kind of fault was injected
    #: at least once (at most ``seconds_max`` in all): a short run still proves every kind, also on a
    #: slow machine where faults come later than planned.
    until_every_fault: bool = False
    seconds_max: float = 180.0
    workers: int = 2
    customers: int = 21
    faults: bool = True
    #: Seconds between two injected faults, and the most faults of one run.
    fault_every: float = 7.0
    max_faults: int = 10_000
    #: Most seconds to wait for workers and the janitor to settle what is in flight.
    drain_seconds: float = 60.0
    postback_threads: int = 2
    withdraw_threads: int = 2
    #: Pause between two actions of one load thread (seconds), to stay within 2 cores.
    pace: float = 0.15
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL")
                              or "postgresql://postgres@127.0.0.1:5432/test")
    seed: int = 20261125
    #: Where process logs go (a temporary directory when None).
    log_dir: str | None = None
    #: Print progress lines.
    verbose: bool = False
    #: Leave the database behind (its URL is in the log) to look at it afterwards.
    keep_database: bool = False
    #: A database already migrated with the roles synced, cloned (``CREATE DATABASE … TEMPLATE``)
    #: instead of migrating a new one (the test suite's template).
    template: str | None = None


@dataclass
class SoakResult:
    seconds: float
    figures: dict[str, object]
    faults: Counter
    ledger_ok: bool
    ledger_summary: str
    #: Per sandbox: (succeeded transfers, matching succeeded payouts of ours).
    per_provider: dict[str, tuple[int, int]]
    payout_problems: list[str]
    stuck: list[str]
    postback_problems: list[str]
    log_dir: str
    #: Worker/janitor processes that exited by themselves (restarted by the harness): a crash.
    crashes: dict[str, int] = field(default_factory=dict)

    @property
    def payouts_match(self) -> bool:
        return not self.payout_problems

    @property
    def ok(self) -> bool:
        return self.ledger_ok and self.payouts_match and not self.stuck and not self.postback_problems

    def table(self) -> str:
        rows = [(name, str(value)) for name, value in self.figures.items()]
        rows += [(f"sandbox {name}: transfers paid / our succeeded payouts", f"{paid} / {ours}")
                 for name, (paid, ours) in sorted(self.per_provider.items())]
        rows += [(f"faults: {kind}", str(self.faults.get(kind, 0)))
                 for kind in FAULT_KINDS + ("kill_worker (mid-job)", "injector errors")]
        checks = [
            ("check: verify-ledger clean", self.ledger_ok),
            ("check: sandbox payouts = our succeeded payouts, each once", self.payouts_match),
            ("check: nothing stuck outside janitor/Finance states", not self.stuck),
            ("check: every postback applied or recorded as rejected", not self.postback_problems),
        ]
        width = max(len(name) for name, _ in rows + [(c, 0) for c, _ in checks])
        lines = [f"soak: {self.seconds:.0f} s of load; logs in {self.log_dir}"]
        lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
        lines += [f"  {name.ljust(width)}  {'ok' if good else 'FAILED'}" for name, good in checks]
        lines.append(f"  {self.ledger_summary}")
        for problem in (self.payout_problems + self.stuck + self.postback_problems)[:30]:
            lines.append(f"  problem: {problem}")
        return "\n".join(lines)


# --- processes -----------------------------------------------------------------------------------

class RedisServer:
    """A private redis-server on a free port, restartable on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log_dir / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def shutdown(self) -> None:
        import redis

        try:
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=True)
        except redis.RedisError:
            pass  # it answers by closing the connection
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Procs:
    """The `cashback` subprocesses of one run (each in its own session; only ours are signalled)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.workers: list[subprocess.Popen] = []
        self.janitor: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self._n = 0
        self.lock = threading.Lock()
        self.restarts = Counter()

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            return subprocess.Popen(args, env=self.env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()

    def start_worker(self) -> None:
        with self.lock:
            self._n += 1
            self.workers.append(self._spawn(
                [sys.executable, "-c", "from portal.cli import main; main()", "worker", "--name",
                 f"{self.env['CASHBACK_QUEUE_PREFIX']}w{self._n}"], f"worker-{self._n}"))

    def busy_pids(self) -> set[int]:
        """Pids of our workers that RQ says are running a job now."""
        import redis
        from rq import Worker

        try:
            conn = redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)
            return {w.pid for w in Worker.all(connection=conn) if w.get_state() == "busy"}
        except redis.RedisError:
            return set()

    def kill_worker(self, rng: random.Random) -> tuple[int, bool] | None:
        """kill -9 a worker, one in the middle of a job when there is one; start another."""
        for _ in range(50):
            busy = self.busy_pids()
            if busy:
                break
            time.sleep(0.1)
        with self.lock:
            alive = [p for p in self.workers if p.poll() is None]
            if not alive:
                return None
            mid_job = [p for p in alive if p.pid in busy]
            victim = rng.choice(mid_job or alive)
            os.killpg(victim.pid, signal.SIGKILL)  # the worker and its scheduler process
            victim.wait()
            self.workers.remove(victim)
        self.start_worker()
        return victim.pid, bool(mid_job)

    def start_janitor(self) -> None:
        self.janitor = self._spawn([sys.executable, "-c", "from portal.cli import main; main()", "janitor",
                                    "--every", "1"], "janitor")

    def start_server(self, port: int, threads: int = 4) -> None:
        self.server = self._spawn(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--worker-class", "gthread", "--threads", str(threads), "--timeout", "60",
             "--log-level", "warning", "portal.app:create_app()"], "gunicorn")

    def keep_alive(self) -> None:
        """Restart what died without being killed by the injector (counted: a crash)."""
        with self.lock:
            dead = [p for p in self.workers if p.poll() is not None]
            for p in dead:
                self.workers.remove(p)
        for _ in dead:
            self.restarts["worker"] += 1
            self.start_worker()
        if self.janitor is not None and self.janitor.poll() is not None:
            self.restarts["janitor"] += 1
            self.start_janitor()

    def stop(self) -> None:
        procs = [p for p in self.workers + [self.janitor, self.server] if p is not None]
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


# --- setup -----------------------------------------------------------------------------------

@dataclass
class World:
    """What setup made: customers (id, email, details id, provider), clicks, Finance users."""

    customers: list[tuple[int, str, int, str]]
    sub_ids: list[tuple[int, str]]
    finance: list[int]


def app_config(url: str, redis_url: str, prefix: str, settings: dict) -> dict:
    return {"SQLALCHEMY_DATABASE_URI": url, "CASHBACK_ENV": "testing", "SECRET_KEY": "soak-secret",
            "PAYOUT_PROVIDER_SETTINGS": settings, "REDIS_URL": redis_url, "JOBS_MODE": "rq",
            "QUEUE_PREFIX": prefix, "POSTBACK_SECRETS": {NETWORK: POSTBACK_SECRET},
            "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}}


def setup_world(app, customers: int, rng: random.Random, fund: Decimal = Decimal("25.00"),
                migrate: bool = True) -> World:
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.models import Click, PayoutDetails
    from portal.security import sync_roles
    from portal.services import customers as customer_service, fx, ledger, payouts
    from portal.services.audit import Actor
    from portal.services.ledger import customer_account, system_account, transfer

    actor = Actor.system("soak")
    now = dt.datetime.now(dt.timezone.utc)
    with app.app_context():
        if migrate:
            upgrade()
            sync_roles(app.appbuilder)
        session = db.session
        for days in range(0, 8):
            fx.correct_rate(session, (now - dt.timedelta(days=days)).date(), RUB_PER_USD, actor, "soak rate")
        payouts.set_provider_enabled(session, "qiwi", True, actor=actor, reason="soak: every sandbox")
        sm = app.appbuilder.sm
        finance = []
        for n in (1, 2):
            user = sm.add_user(username=f"finance{n}", first_name="Finance", last_name=str(n),
                               email=f"finance{n}@soak.local", role=sm.find_role("Finance"), password=PASSWORD)
            finance.append(user.id)
        made, sub_ids = [], []
        old = now - dt.timedelta(days=30)
        for i in range(customers):
            email = f"soak{i}@soak.local"
            customer = customer_service.create_customer(session, sm, email=email, name=f"Soak {i}",
                                                        password=PASSWORD, actor=actor)
            code = PROVIDERS[i % len(PROVIDERS)]
            details = PayoutDetails(customer_id=customer.id, provider_code=code, account=wallet(i + 1, code),
                                    created_at=old)
            session.add(details)
            session.flush()
            ledger.post(session, kind="soak.fund", reference=f"fund-{customer.id}", actor=actor,
                        legs=transfer(system_account("network_receivable"),
                                      customer_account(customer.id, "available"), fund))
            for k in range(3):
                sub_id = f"soak-{customer.id}-{k}-{rng.randrange(10**8):08d}"
                session.add(Click(sub_id=sub_id, customer_id=customer.id, product_id=str(1005000000000000 + k),
                                  canonical_url=f"https://aliexpress.com/item/{1005000000000000 + k}.html",
                                  channel="web", rate=Decimal("7.00"), repeat_count=1,
                                  created_at=now - dt.timedelta(days=3)))
                sub_ids.append((customer.id, sub_id))
            made.append((customer.id, email, details.id, code))
        session.commit()
        db.session.remove()
        db.engine.dispose()
    return World(made, sub_ids, finance)


# --- load ------------------------------------------------------------------------------------

class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.c: Counter = Counter()
        #: event_id -> body of events answered 200
        self.accepted: dict[str, bytes] = {}
        #: order_id -> statuses accepted (for the expected final status)
        self.order_statuses: dict[str, set[str]] = {}
        self.rejected_answers = 0
        self.payout_ids: set[int] = set()
        self.problems: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] += n

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)


def _post(session: requests.Session, url: str, *, retries: int, stats: Stats, **kw) -> requests.Response | None:
    """POST, retrying connection errors and 5xx like a real client (bounded)."""
    for attempt in range(retries):
        try:
            response = session.post(url, timeout=15, **kw)
        except requests.RequestException:
            stats.add("http retries (connection)")
            time.sleep(min(0.2 * (attempt + 1), 1.0))
            continue
        if response.status_code >= 500:
            stats.add("http retries (5xx)")
            time.sleep(min(0.2 * (attempt + 1), 1.0))
            continue
        return response
    return None


def postback_body(event_id: str, order_id: str, sub_id: str, status: str, amount: Decimal, currency: str,
                  at: dt.datetime, refunded: Decimal | None = None) -> bytes:
    commission = (amount * Decimal("0.08")).quantize(Decimal("0.01"))
    body = {"event_id": event_id, "order_id": order_id, "sub_id": sub_id, "status": status,
            "order_amount": str(amount), "currency": currency, "commission": str(commission),
            "event_time": at.isoformat().replace("+00:00", "Z"), "channel": "web"}
    if refunded is not None:
        body["refunded_amount"] = str(refunded)
    return json.dumps(body, separators=(",", ":")).encode()


def postback_loop(base: str, world: World, stats: Stats, stop: threading.Event, rng: random.Random,
                  thread: int, pace: float) -> None:
    from portal.services.postback_signing import NETWORK_HEADER, sign

    http = requests.Session()
    url = base + "/api/v1/network/postback"

    def send(body: bytes, forged: bool = False) -> None:
        headers = {NETWORK_HEADER: NETWORK, "Content-Type": "application/json",
                   **sign(FORGED_SECRET if forged else POSTBACK_SECRET.encode(), body, int(time.time()))}
        stats.add("postbacks sent")
        response = _post(http, url, retries=12, stats=stats, data=body, headers=headers)
        if response is None:
            stats.add("postbacks unanswered")
            stats.problem(f"postback never answered after retries: {body[:80]!r}")
            return
        data = json.loads(body)
        if response.status_code == 200:
            stats.add("postbacks applied (200)")
            if response.json().get("duplicate"):
                stats.add("postbacks duplicate (200)")
            with stats.lock:
                stats.accepted[data["event_id"]] = body
                stats.order_statuses.setdefault(data["order_id"], set()).add(data["status"])
            if forged:
                stats.problem(f"forged postback accepted: {data['event_id']}")
        else:
            stats.add("postbacks rejected (4xx)")
            with stats.lock:
                stats.rejected_answers += 1
            if not forged:
                stats.problem(f"genuine postback refused {response.status_code}: {response.text[:200]}")

    n = 0
    while not stop.is_set():
        n += 1
        _, sub_id = rng.choice(world.sub_ids)
        order = f"S{thread}-{n:06d}"
        currency = "RUB" if rng.random() < 0.15 else "USD"
        amount = Decimal(rng.randrange(500, 20000)) / 100 * (RUB_PER_USD if currency == "RUB" else 1)
        at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2)
        scenario = rng.random()
        if scenario < 0.5:
            plan = ["paid", "confirmed"]
        elif scenario < 0.7:
            plan = ["confirmed", "paid"]  # out of order: the late paid is stale
        elif scenario < 0.85:
            plan = ["paid", "cancelled"]
        else:
            plan = ["paid", "refunded", "confirmed"]
        bodies = []
        for k, status in enumerate(plan):
            refunded = (amount / 4).quantize(Decimal("0.01")) if status == "refunded" else None
            bodies.append(postback_body(f"{order}:{status}", order, sub_id, status, amount, currency,
                                        at + dt.timedelta(minutes=k), refunded))
        for body in bodies:
            if stop.is_set():
                break
            send(body)
            if rng.random() < 0.2:
                send(body)  # an exact replay
            time.sleep(pace)
        if rng.random() < 0.1:
            send(postback_body(f"{order}:forged", order, sub_id, "confirmed", amount * 100, currency, at), forged=True)


def _token(http: requests.Session, base: str, email: str, stats: Stats) -> dict[str, str] | None:
    response = _post(http, base + "/api/v1/security/login", retries=8, stats=stats,
                     json={"username": email, "password": PASSWORD, "provider": "db"})
    if response is None or response.status_code != 200:
        return None
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def withdraw_loop(base: str, world: World, stats: Stats, stop: threading.Event, rng: random.Random,
                  thread: int, pace: float, claims: bool) -> None:
    http = requests.Session()
    tokens: dict[str, dict[str, str]] = {}
    url = base + "/api/v1/me/withdrawals"
    amounts = ("0.50", "1.00", "1.50", "2.00", "3.00")
    n = 0

    def one(auth: dict, details_id: int, amount: str, key: str, out: list) -> None:
        response = _post(requests, url, retries=12, stats=stats,
                         json={"details_id": details_id, "amount_usd": amount},
                         headers={**auth, "Idempotency-Key": key})
        out.append(response)

    while not stop.is_set():
        n += 1
        customer_id, email, details_id, _code = rng.choice(world.customers)
        auth = tokens.get(email) or _token(http, base, email, stats)
        if auth is None:
            stats.add("logins failed")
            time.sleep(pace)
            continue
        tokens[email] = auth
        amount = rng.choice(amounts)
        key = f"soak-{thread}-{n}"
        roll = rng.random()
        results: list = []
        if roll < 0.2:  # a double click: one key, two requests at once
            stats.add("withdrawal double clicks")
            threads = [threading.Thread(target=one, args=(auth, details_id, amount, key, results)) for _ in range(2)]
        elif roll < 0.3:  # two withdrawals racing for one balance
            stats.add("withdrawal races")
            threads = [threading.Thread(target=one, args=(auth, details_id, amount, f"{key}-{k}", results))
                       for k in range(2)]
        else:
            threads = [threading.Thread(target=one, args=(auth, details_id, amount, key, results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = set()
        for response in results:
            if response is None:
                stats.add("withdrawals unanswered")
                continue
            if response.status_code in (200, 201):
                ids.add(response.json()["id"])
                stats.add("withdrawals answered 201" if response.status_code == 201 else "withdrawals answered 200")
            elif response.status_code == 401:
                tokens.pop(email, None)
                stats.add("withdrawals answered 401")
            else:
                stats.add(f"withdrawals answered {response.status_code}")
        if roll < 0.2 and len(ids) > 1:
            stats.problem(f"double click with one Idempotency-Key made payouts {sorted(ids)}")
        with stats.lock:
            stats.payout_ids |= ids
        if claims and rng.random() < 0.1:
            response = _post(http, base + "/api/v1/me/claims", retries=6, stats=stats, headers=auth,
                             json={"order_number": f"C{thread}-{n}", "order_date": dt.date.today().isoformat()})
            stats.add(f"claims answered {response.status_code if response is not None else '5xx/none'}")
        time.sleep(pace)


def finance_loop(app, world: World, stats: Stats, stop: threading.Event, rng: random.Random, pace: float) -> None:
    from sqlalchemy.exc import DBAPIError

    from portal.errors import DomainError
    from portal.extensions import db
    from portal.models import Payout
    from portal.services import payouts
    from portal.services.audit import Actor

    with app.app_context():
        while not stop.is_set():
            try:
                ids = db.session.execute(sa.select(Payout.id).where(Payout.state == "in_review")
                                         .order_by(Payout.id).limit(10)).scalars().all()
                db.session.rollback()
                for payout_id in ids:
                    approve = rng.random() < 0.85
                    for user_id in world.finance:
                        try:
                            payout = payouts.decide(db.session, payout_id, user_id=user_id,
                                                    actor=Actor.system(f"finance-{user_id}"), approve=approve,
                                                    reason="soak review")
                            state = payout.state
                            db.session.commit()
                            stats.add("finance approvals" if approve else "finance rejections")
                            if state != "in_review":
                                break
                        except DomainError:
                            db.session.rollback()
                            stats.add("finance refused (moved on)")
                            break
            except DBAPIError:
                db.session.rollback()
                stats.add("finance database errors (retried)")
            finally:
                db.session.remove()
            time.sleep(pace * 4)


# --- faults ------------------------------------------------------------------------------------

class Injector:
    def __init__(self, sandboxes: dict, procs: Procs, redis_server: RedisServer, url: str, rng: random.Random,
                 log) -> None:
        self.sandboxes, self.procs, self.redis, self.url, self.rng, self.log = \
            sandboxes, procs, redis_server, url, rng, log
        self.counts: Counter = Counter()
        self.lock = threading.Lock()

    def inject(self, kind: str) -> None:
        name = self.rng.choice(sorted(self.sandboxes))
        sandbox = self.sandboxes[name]
        if kind == "kill_worker":
            for box in self.sandboxes.values():  # keep the workers in the middle of a call
                box.inject(latency=1.5)  # still within the clients' 2 s read timeout
            time.sleep(0.3)
            killed = self.procs.kill_worker(self.rng)
            for box in self.sandboxes.values():
                box.inject(latency=0.0)
            if killed and killed[1]:
                with self.lock:
                    self.counts["kill_worker (mid-job)"] += 1
            self.log(f"fault: kill -9 worker {killed}")
        elif kind == "drop_after_commit":
            sandbox.inject(drop=3)
            self.log(f"fault: {name} drops the next 3 answers after committing")
        elif kind == "http_5xx":
            after = self.rng.random() < 0.5
            sandbox.inject(errors=3, errors_after_commit=after, error_status=self.rng.choice((500, 502, 503)))
            self.log(f"fault: {name} answers 5xx x3 ({'after' if after else 'before'} commit)")
        elif kind == "slow":
            sandbox.inject(latency=2.5)  # beyond the clients' 2 s read timeout
            time.sleep(3)
            sandbox.inject(latency=0.0)
            self.log(f"fault: {name} slow for 3 s")
        elif kind == "down_for":
            sandbox.inject(down_for=4)
            self.log(f"fault: {name} down for 4 s")
        elif kind == "redis_restart":
            self.redis.shutdown()
            time.sleep(1.0)
            self.redis.start()
            self.log("fault: redis SHUTDOWN NOSAVE and restarted")
        elif kind == "pg_terminate":
            with psycopg.connect(_conninfo(self.url), autocommit=True) as conn:
                killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                                      ).fetchone()[0]
            self.log(f"fault: pg_terminate_backend on {killed} connections")
        with self.lock:
            self.counts[kind] += 1

    def loop(self, stop: threading.Event, every: float, max_faults: int) -> None:
        kinds: list[str] = []
        stop.wait(min(5.0, every))
        while not stop.is_set() and sum(self.counts.values()) < max_faults:
            if not kinds:
                kinds = list(FAULT_KINDS)
                self.rng.shuffle(kinds)
            try:
                self.inject(kinds.pop())
            except Exception as exc:  # noqa: BLE001 — a fault that could not be made is reported
                self.log(f"fault failed: {exc!r}")
                self.counts["injector errors"] += 1
            stop.wait(every)


# --- the run -----------------------------------------------------------------------------------

def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Readiness probe: the first answer of a cold gunicorn may take long on a busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            requests.get(url, timeout=(2, max(1.0, deadline - time.monotonic())))
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in time")


def run(config: SoakConfig | None = None) -> SoakResult:
    """One soak run; everything started is stopped and the database dropped before it returns."""
    config = config or SoakConfig()
    rng = random.Random(config.seed)
    log_dir = Path(config.log_dir or tempfile.mkdtemp(prefix="cashback-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        with open(log_dir / "soak.log", "a") as f:
            f.write(line + "\n")
        if config.verbose:
            print(line, flush=True)

    base_db = normalize_database_url(config.database_url)
    url = create_database(base_db, template=config.template)
    redis_server = RedisServer(log_dir)
    sandboxes: dict = {}
    procs: Procs | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        redis_server.start()
        settings = {}
        for name, codes in SANDBOXES.items():
            sandbox, suffix = sandbox_for(name, qiwi_history_limit=SOAK_QIWI_HISTORY_LIMIT)
            sandboxes[name] = sandbox.start()
            for code in codes:
                settings[code] = {"base_url": sandbox.url + suffix, "read_timeout": 2, "connect_timeout": 1}
                if code == "qiwi":  # our history budget follows the scaled sandbox's limit
                    settings[code].update(history_limit_per_minute=SOAK_QIWI_HISTORY_LIMIT,
                                          history_budget_per_minute=SOAK_QIWI_HISTORY_LIMIT)
        prefix = f"soak-{uuid.uuid4().hex[:8]}-"
        from portal.app import create_app

        app = create_app(app_config(url, redis_server.url, prefix, settings))
        t0 = time.monotonic()
        # enough for the whole run: withdrawals take about $0.50/s per customer (postbacks add more)
        fund = Decimal(int(25 + config.seconds / 2))
        world = setup_world(app, config.customers, rng, fund, migrate=config.template is None)
        log(f"setup: {len(world.customers)} customers in {time.monotonic() - t0:.1f} s; database {url}")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_server.url, "CASHBACK_ENV": "testing",
               "SECRET_KEY": "soak-secret", "CASHBACK_QUEUE_PREFIX": prefix,
               "CASHBACK_PROVIDER_SETTINGS": json.dumps(settings),
               "CASHBACK_POSTBACK_SECRETS": f"{NETWORK}:{POSTBACK_SECRET}",
               "CASHBACK_PAYOUT_CHECK_SECONDS": "1,2,3", "CASHBACK_PAYOUT_RETRY_SECONDS": "1,2",
               "CASHBACK_PAYOUT_STALE_SUBMIT_SECONDS": "5", "CASHBACK_PAYOUT_MAX_CHECKS": "60",
               "CASHBACK_BREAKER_COOLDOWN_SECONDS": "2", "CASHBACK_MAX_WITHDRAWALS_PER_DAY": "100000",
               "CASHBACK_REVIEW_THRESHOLD_USD": "1.75", "CASHBACK_SECOND_APPROVAL_USD": "2.50",
               "CASHBACK_INSTANCE_DIR": str(log_dir), "CASHBACK_JOBS_MODE": "rq", "CASHBACK_RATE_LIMITS": "0"}
        env.pop("CASHBACK_PAYOUT_MAX_ATTEMPTS", None)
        procs = Procs(env, log_dir)
        procs.start_server(port)
        for _ in range(config.workers):
            procs.start_worker()
        procs.start_janitor()
        _wait_http(base + "/api/v1/network/postback", procs.server)
        claims = requests.post(base + "/api/v1/me/claims", json={}, timeout=10).status_code != 404
        log(f"portal on {base}; {config.workers} workers; claims API {'present' if claims else 'absent'}")

        stats = Stats()
        injector = Injector(sandboxes, procs, redis_server, url, rng, log)
        for k in range(config.postback_threads):
            threads.append(threading.Thread(target=postback_loop, name=f"postbacks-{k}", daemon=True, args=(
                base, world, stats, stop, random.Random(config.seed + 100 + k), k, config.pace)))
        for k in range(config.withdraw_threads):
            threads.append(threading.Thread(target=withdraw_loop, name=f"withdraw-{k}", daemon=True, args=(
                base, world, stats, stop, random.Random(config.seed + 200 + k), k, config.pace, claims)))
        threads.append(threading.Thread(target=finance_loop, name="finance", daemon=True, args=(
            app, world, stats, stop, random.Random(config.seed + 300), config.pace)))
        if config.faults:
            threads.append(threading.Thread(target=injector.loop, name="faults", daemon=True,
                                            args=(stop, config.fault_every, config.max_faults)))
        t_load = time.monotonic()
        for t in threads:
            t.start()
        while True:
            elapsed = time.monotonic() - t_load
            missing = [k for k in FAULT_KINDS if injector.counts[k] < 1] if config.faults else []
            if elapsed >= config.seconds and not (config.until_every_fault and missing
                                                  and elapsed < config.seconds_max):
                break
            time.sleep(0.5)
            procs.keep_alive()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        load_seconds = time.monotonic() - t_load
        log(f"load stopped after {load_seconds:.0f} s; draining")

        # --- drain: no faults, every process up; Finance's desk (in_review) stays as it is
        for sandbox in sandboxes.values():
            sandbox.reset_faults()
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            redis_server.start()
        engine = sa.create_engine(url, pool_pre_ping=True)
        open_states = ("requested", "approved", "submitting", "unknown")
        t_drain = time.monotonic()
        while True:
            procs.keep_alive()
            with engine.connect() as conn:
                open_ = conn.execute(sa.text(
                    "SELECT count(*) FROM payout WHERE state IN :states AND NOT needs_attention")
                    .bindparams(sa.bindparam("states", expanding=True)), {"states": open_states}).scalar_one()
            if open_ == 0 or time.monotonic() - t_drain > config.drain_seconds:
                break
            time.sleep(0.5)
        drain_seconds = time.monotonic() - t_drain
        log(f"drained in {drain_seconds:.1f} s ({open_} still open)")
        restarts = Counter(procs.restarts)
        procs.stop()
        result = _check(engine, sandboxes, stats, injector.counts, load_seconds, drain_seconds, restarts,
                        str(log_dir))
        engine.dispose()
        with app.app_context():
            from portal.extensions import db

            db.session.remove()
            db.engine.dispose()
        if result.ok and config.log_dir is None:  # logs are kept only when something is wrong
            shutil.rmtree(log_dir, ignore_errors=True)
            result.log_dir = "(removed: all checks passed)"
        return result
    finally:
        stop.set()
        if procs is not None:
            procs.stop()
        for sandbox in sandboxes.values():
            sandbox.stop()
        redis_server.stop()
        if not config.keep_database:
            drop_database(base_db, url)


def _check(engine, sandboxes: dict, stats: Stats, faults: Counter, load_seconds: float, drain_seconds: float,
           restarts: Counter, log_dir: str) -> SoakResult:
    from sqlalchemy.orm import Session

    from portal.models.types import from_micros
    from portal.services.ledger import verify

    with Session(engine) as session:
        report = verify(session)
        states = dict(session.execute(sa.text("SELECT state, count(*) FROM payout GROUP BY state")).all())
        payouts = {row.id: row for row in session.execute(sa.text(
            "SELECT id, state, provider_code, payout_amount, needs_attention FROM payout")).all()}
        attempts = session.execute(sa.text(
            "SELECT payout_id, idempotency_key FROM payout_attempt")).all()
        handles = session.execute(sa.text(
            "SELECT provider_code, idempotency_key, id FROM provider_handle")).all()
        went_unknown = session.execute(sa.text(
            "SELECT count(DISTINCT a.object_id) FROM audit_log a JOIN payout p ON p.id::text = a.object_id "
            "WHERE a.action = 'payout.unknown' AND p.state IN ('succeeded', 'failed')")).scalar_one()
        events = set(session.execute(sa.text("SELECT event_id FROM network_event")).scalars())
        rejections = session.execute(sa.text("SELECT count(*) FROM postback_rejection")).scalar_one()
        orders = dict(session.execute(sa.text("SELECT network_order_id, status FROM network_order")).all())

    # --- payouts: every succeeded sandbox transfer <-> exactly one succeeded payout of ours
    key_to_payout = {key: payout_id for payout_id, key in attempts}
    handle_to_key = {key: key for key in key_to_payout}
    for _code, key, number in handles:
        handle_to_key[str(number)] = key
    paid_per_payout: Counter = Counter()
    per_provider: dict[str, tuple[int, int]] = {}
    problems: list[str] = []
    for name, sandbox in sandboxes.items():
        paid = [t for t in sandbox.transfers() if t.status == "succeeded"]
        for t in paid:
            payout_id = key_to_payout.get(handle_to_key.get(str(t.handle), ""))
            if payout_id is None:
                problems.append(f"{name}: transfer {t.handle} matches no payout attempt of ours")
                continue
            paid_per_payout[payout_id] += 1
            payout = payouts[payout_id]
            if payout.state != "succeeded":
                problems.append(f"{name}: transfer {t.handle} paid, our payout {payout_id} is {payout.state}")
            if Decimal(t.amount) != from_micros(payout.payout_amount):
                problems.append(f"{name}: transfer {t.handle} paid {t.amount}, payout {payout_id} "
                                f"is {payout.payout_amount}")
        ours = sum(1 for p in payouts.values() if p.state == "succeeded" and p.provider_code in SANDBOXES[name])
        per_provider[name] = (len(paid), ours)
    for payout_id, n in paid_per_payout.items():
        if n > 1:
            problems.append(f"payout {payout_id} paid {n} times (double payment)")
    for payout_id, p in payouts.items():
        if p.state == "succeeded" and paid_per_payout[payout_id] == 0:
            problems.append(f"payout {payout_id} succeeded with us but no sandbox paid it")
    for payout_id in stats.payout_ids - payouts.keys():
        problems.append(f"payout {payout_id} answered to a customer is not in the database")

    # --- stuck: anything not final, not in Finance's review, not handed to Finance
    stuck = [f"payout {pid} is {p.state}" for pid, p in payouts.items()
             if p.state not in FINAL and p.state != "in_review" and not p.needs_attention]

    # --- postbacks: every 200 is stored, every refusal is logged, order status as sent
    postback_problems = list(stats.problems)
    missing = [e for e in stats.accepted if e not in events]
    if missing:
        postback_problems.append(f"{len(missing)} postbacks answered 200 are not stored, e.g. {missing[:3]}")
    if rejections != stats.rejected_answers:
        postback_problems.append(f"{stats.rejected_answers} postbacks refused, {rejections} refusals logged")
    rank = {"paid": 1, "confirmed": 2, "cancelled": 3}
    for order_id, statuses in stats.order_statuses.items():
        ranked = [s for s in statuses if s in rank]
        if ranked:
            expected = max(ranked, key=rank.get)
            if orders.get(order_id) != expected:
                postback_problems.append(f"order {order_id}: {orders.get(order_id)}, expected {expected}")

    c = stats.c
    succeeded = states.get("succeeded", 0)
    figures: dict[str, object] = {
        "postbacks sent (requests)": c["postbacks sent"],
        "postbacks applied (200, incl. duplicates)": c["postbacks applied (200)"],
        "postbacks duplicates (200)": c["postbacks duplicate (200)"],
        "postbacks rejected (4xx) / refusals logged": f"{stats.rejected_answers} / {rejections}",
        "network events stored": len(events),
        "withdrawal requests (HTTP)": sum(v for k, v in c.items() if k.startswith("withdrawals answered")),
        "withdrawal double clicks / races": f"{c['withdrawal double clicks']} / {c['withdrawal races']}",
        "payouts created": len(payouts),
        "payouts by state": dict(sorted(states.items())),
        "payouts through unknown, then resolved": went_unknown,
        "finance approvals / rejections": f"{c['finance approvals']} / {c['finance rejections']}",
        "http retries (connection / 5xx)": f"{c['http retries (connection)']} / {c['http retries (5xx)']}",
        "claims answered": {k: v for k, v in c.items() if k.startswith("claims")} or "-",
        "process crashes restarted": dict(restarts) or 0,
        "left to Finance (in review / needs attention)":
            f"{sum(1 for p in payouts.values() if p.state == 'in_review')} / "
            f"{sum(1 for p in payouts.values() if p.needs_attention)}",
        "stuck payouts": len(stuck),
        "load / drain seconds": f"{load_seconds:.0f} / {drain_seconds:.0f}",
        "payouts/s (succeeded)": f"{succeeded / load_seconds:.2f}",
        "postbacks/s": f"{c['postbacks sent'] / load_seconds:.2f}",
    }
    for key in sorted(c):
        if key.startswith("withdrawals answered"):
            figures[key] = c[key]
    return SoakResult(seconds=load_seconds, figures=figures, faults=Counter(faults), ledger_ok=report.ok,
                      ledger_summary=report.summary(), per_provider=per_provider, payout_problems=problems,
                      stuck=stuck, postback_problems=postback_problems, log_dir=log_dir,
                      crashes=dict(restarts))
