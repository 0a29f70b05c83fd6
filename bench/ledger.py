"""Ledger throughput on PostgreSQL with concurrent writers, against a raw-INSERT baseline.

Prints, from one run on one throw-away database:

  (a)  postings/s, customer → customer transfers spread over 1,000 accounts
  (b)  postings/s, every posting touching the one hot system account ``network_receivable``
  (b1) the same with that account kept on a single balance row (what sharding buys)
  (c)  transactions/s, the baseline: single-row INSERT transactions with plain psycopg

and the ratios (a)/(c), (b)/(c) and (b)/(a).  Goals (issue 13): (a)/(c) ≥ 0.5, (a) ≥ 1,000/s,
(b)/(a) ≥ 0.95.  Each writer is its own process (no shared GIL), with its own connection.
Then, per scenario, a posting's time per writer: the writer's CPU, its PostgreSQL
backend's CPU (read from /proc for that backend only: the server is shared) and the rest,
waiting (row locks, the WAL flush at commit, a free core).

    python bench/ledger.py [--writers 8] [--postings 4000] [--scenarios c,a,b,b1]
                           [--profile DIR] [--database-url URL]

``--profile DIR`` cProfiles every writer (its CPU time) and prints, per scenario, the own
time by package and the functions a posting's client time goes to.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench import profiling  # noqa: E402
from config import normalize_database_url  # noqa: E402

CUSTOMERS = 1000


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- reusable by other benches (bench/postbacks.py) -------------------------------------------

def create_database(base_url: str, prefix: str = "cashback_bench") -> str:
    """Create an empty throw-away database on the server of ``base_url``; return its URL."""
    base = normalize_database_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_conninfo(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return sa.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, url: str) -> None:
    """Drop a database made by :func:`create_database` (connected through ``base_url``'s database)."""
    with psycopg.connect(_conninfo(normalize_database_url(base_url)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')


def create_baseline_table(url: str) -> None:
    """The table scenario (c) inserts into."""
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, v text NOT NULL)")


def baseline_inserts_per_second(url: str, writers: int, total: int) -> float:
    """Scenario (c): single-row INSERT transactions/s with plain psycopg, ``writers`` processes."""
    create_baseline_table(url)
    return _run(url, "c", writers, total).rate


def _setup(url: str) -> None:
    """Schema by Alembic, 1,000 funded customers, a single-row hot account for (b1)."""
    from flask_migrate import upgrade

    from portal.app import create_app
    from portal.extensions import db
    from portal.models import Customer
    from portal.services import ledger
    from portal.services.audit import Actor
    from portal.services.ledger import customer_account, system_account, transfer

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "CASHBACK_ENV": "testing", "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        db.session.execute(sa.insert(Customer.__table__), [
            {"id": i, "email": f"bench{i}@bench.local", "name": f"Bench {i}", "locale": "ru",
             "is_blocked": False} for i in range(1, CUSTOMERS + 1)])
        db.session.commit()
        actor = Actor.system("bench")
        for i in range(1, CUSTOMERS + 1):
            ledger.open_customer_accounts(db.session, i)
            ledger.post(db.session, kind="bench.fund", reference=f"fund-{i}", actor=actor,
                        legs=transfer(system_account("network_receivable"), customer_account(i, "available"),
                                      Decimal("100.00")))
        app.config["LEDGER_HOT_SHARDS"] = 1
        ledger.ensure_accounts(db.session, [system_account("promo_expense")])
        db.session.commit()
        db.engine.dispose()
    create_baseline_table(url)


def _writer(url: str, scenario: str, worker: int, count: int, start, done, profile_dir: str | None) -> None:
    """One writer process: ``count`` postings (or baseline INSERTs), then its figures on ``done``."""
    from portal.services import ledger
    from portal.services.audit import Actor
    from portal.services.ledger import customer_account, system_account, transfer

    rng = random.Random(worker)
    actor = Actor.system("bench")
    cent = Decimal("0.01")
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # the writer's CPU: waiting shows in the line above
    if scenario == "c":
        with psycopg.connect(_conninfo(url)) as conn:
            backend = conn.info.backend_pid
            start.wait()
            t0, cpu0, pg0 = time.perf_counter(), time.process_time(), profiling.cpu_seconds(backend)
            if profiler:
                profiler.enable()
            for n in range(count):
                conn.execute("INSERT INTO bench_baseline (v) VALUES (%s)", (f"{worker}-{n}",))
                conn.commit()
            if profiler:
                profiler.disable()
            stats = (time.perf_counter() - t0, time.process_time() - cpu0, profiling.cpu_seconds(backend) - pg0)
    else:
        engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        hot = system_account("network_receivable" if scenario == "b" else "promo_expense")
        with Session(engine) as session:
            backend = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            session.commit()
            start.wait()
            t0, cpu0, pg0 = time.perf_counter(), time.process_time(), profiling.cpu_seconds(backend)
            if profiler:
                profiler.enable()
            for n in range(count):
                if scenario == "a":
                    a, b = rng.sample(range(1, CUSTOMERS + 1), 2)
                    legs = transfer(customer_account(a, "available"), customer_account(b, "available"), cent)
                else:
                    legs = transfer(hot, customer_account(rng.randint(1, CUSTOMERS), "pending"), cent)
                ledger.post(session, kind=f"bench.{scenario}", reference=f"{scenario}-{worker}-{n}",
                            legs=legs, actor=actor)
                session.commit()
            if profiler:
                profiler.disable()
            stats = (time.perf_counter() - t0, time.process_time() - cpu0, profiling.cpu_seconds(backend) - pg0)
        engine.dispose()
    if profiler:
        profiler.dump_stats(os.path.join(profile_dir, f"ledger-{scenario}-{worker}.prof"))
    done.put((worker, *stats))


@dataclass
class Figures:
    """One scenario: its rate and where the writers' time went (seconds, summed over writers)."""

    rate: float
    done: int
    wall: float
    client_cpu: float
    backend_cpu: float

    def per_unit(self) -> str:
        """Milliseconds per posting, per writer: client CPU, its backend's CPU, and the rest
        (waiting: for locks, the WAL flush at commit, a free core, the network)."""
        ms = 1000 / self.done
        wait = max(self.wall - self.client_cpu - self.backend_cpu, 0.0)
        return (f"{ms * self.wall:6.2f} ms = client CPU {ms * self.client_cpu:5.2f} + PostgreSQL backend CPU "
                f"{ms * self.backend_cpu:5.2f} + waiting {ms * wait:5.2f}")


def _run(url: str, scenario: str, writers: int, total: int, profile_dir: str | None = None) -> Figures:
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(writers + 1, timeout=120)
    done = ctx.Queue()
    share = total // writers
    procs = [ctx.Process(target=_writer, args=(url, scenario, w, share, start, done, profile_dir))
             for w in range(writers)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    results = [done.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"writer failed in scenario {scenario}")
    return Figures(share * writers / elapsed, share * writers, *(sum(r[i] for r in results) for i in (1, 2, 3)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--postings", type=int, default=4000, help="per scenario")
    parser.add_argument("--scenarios", default="c,a,b,b1", help="which to run, baseline (c) first")
    parser.add_argument("--profile", metavar="DIR", help="cProfile every writer, write DIR/ledger-*.prof "
                        "and print a summary per scenario")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if not set(scenarios) <= {"a", "b", "b1", "c"}:
        parser.error("--scenarios: a, b, b1, c")
    profile_dir = None
    if args.profile:
        profile_dir = str(Path(args.profile).resolve())
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        for old in Path(profile_dir).glob("ledger-*.prof"):
            old.unlink()

    url = create_database(args.database_url)
    baselines = None
    profiled = {}
    try:
        _setup(url)
        figures = {s: _run(url, s, args.writers, args.postings, profile_dir) for s in scenarios}
        profiled = {s: f.done for s, f in figures.items()}
        if "c" in figures and len(figures) > 1:  # the baseline again after the scenarios: the machine is shared
            again = _run(url, "c", args.writers, args.postings)
            first = figures["c"]
            baselines = (first.rate, again.rate)
            figures["c"] = Figures((first.rate * again.rate) ** 0.5, first.done + again.done,
                                   first.wall + again.wall, first.client_cpu + again.client_cpu,
                                   first.backend_cpu + again.backend_cpu)
        from portal.services.ledger import verify

        engine = sa.create_engine(url)
        with Session(engine) as session:
            report = verify(session)
        engine.dispose()
    finally:
        drop_database(args.database_url, url)

    rates = {s: f.rate for s, f in figures.items()}
    labels = {
        "a": f"(a)  customer->customer over {CUSTOMERS} accounts ",
        "b": "(b)  all touching network_receivable (sharded)  ",
        "b1": "(b1) all touching one unsharded system account  ",
        "c": "(c)  baseline: single-row INSERT transactions   ",
    }
    print(f"ledger bench: {args.writers} writer processes, {args.postings} postings per scenario, PostgreSQL; "
          f"{os.cpu_count()} cores")
    for s in ("a", "b", "b1", "c"):
        if s in rates:
            print(f"{labels[s]}: {rates[s]:8.0f} {'tx' if s == 'c' else 'postings'}/s"
                  + (f"   (before the scenarios {baselines[0]:.0f}, after {baselines[1]:.0f}: the geometric mean)"
                     if s == "c" and baselines else ""))
    if "c" in rates:
        print("ratios: " + "   ".join(f"({s})/(c) = {rates[s] / rates['c']:.2f}" for s in ("a", "b", "b1")
                                       if s in rates)
              + (f"; goal (a)/(c) >= 0.50: {'met' if rates['a'] / rates['c'] >= 0.5 else 'NOT met'}"
                 if "a" in rates else ""))
    if "a" in rates and "b" in rates:
        print(f"hot account: (b)/(a) = {rates['b'] / rates['a']:.2f} "
              f"(goal >= 0.95: {'met' if rates['b'] / rates['a'] >= 0.95 else 'NOT met'}); "
              f"(a) {'>=' if rates['a'] >= 1000 else '<'} 1000 postings/s")
    print("time per posting per writer (wall, summed over writers / postings):")
    for s in ("a", "b", "b1", "c"):
        if s in figures:
            print(f"  ({s}){' ' * (3 - len(s))}{figures[s].per_unit()}")
    print(report.summary())
    if profile_dir:
        for s in scenarios:
            print(f"--- profile of the writers, scenario ({s}) ---")
            for line in profiling.profile_summary(sorted(Path(profile_dir).glob(f"ledger-{s}-*.prof")),
                                                  profiled[s], "posting" if s != "c" else "INSERT",
                                                  "writer CPU time, profiler overhead included", top=20):
                print(line)
        print(f"(profiles kept in {profile_dir}: python -m pstats {profile_dir}/ledger-<scenario>-<n>.prof)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
