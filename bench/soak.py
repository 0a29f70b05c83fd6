"""The long fault soak: the harness of ``tests/soak`` for N minutes, against a fault-free baseline.

One process, two runs of ``tests/soak/harness.py`` (each on its own throw-away PostgreSQL
database, its own redis-server, gunicorn, K `cashback worker` processes, the janitor and
every provider sandbox, all on 127.0.0.1):

  1. baseline: the same load with no faults for ``--baseline-seconds`` (60 s);
  2. the soak: ``--minutes N`` of load while faults are injected every ``--fault-every``
     seconds (kill -9 of a worker mid-job, sandbox drop-after-commit / 5xx / slow / down,
     Redis SHUTDOWN NOSAVE + restart, pg_terminate_backend).

Prints both tables of figures (postbacks sent/applied/rejected, withdrawals, payouts by
state, sandbox transfers vs our succeeded payouts per provider, faults by kind, stuck
payouts, verify-ledger) and the throughput under faults as a ratio to the baseline
(payouts/s, postbacks/s).  The load is paced (the harness's ``pace``, to stay within two
cores), so the ratio says how much of the same offered load still gets through while
faults are injected, not the system's peak (``bench/payouts.py`` and ``bench/postbacks.py``
measure that).  Exit 1 if any of the four checks fails in either run.

    python bench/soak.py --minutes 10 [--workers 2] [--fault-every 7] [--baseline-seconds 60]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.soak.harness import SoakConfig, SoakResult, run  # noqa: E402


def _rate(result: SoakResult, name: str) -> float:
    return float(result.figures[name])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-every", type=float, default=7.0, help="seconds between faults")
    parser.add_argument("--max-faults", type=int, default=10_000)
    parser.add_argument("--baseline-seconds", type=float, default=60.0, help="0: no baseline run")
    parser.add_argument("--customers", type=int, default=21)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--verbose", action="store_true", help="print each fault as it is injected")
    args = parser.parse_args()

    def config(seconds: float, faults: bool) -> SoakConfig:
        return SoakConfig(seconds=seconds, workers=args.workers, customers=args.customers, faults=faults,
                          fault_every=args.fault_every, max_faults=args.max_faults,
                          drain_seconds=args.drain_seconds, database_url=args.database_url, seed=args.seed,
                          verbose=args.verbose)

    baseline = None
    if args.baseline_seconds > 0:
        print(f"baseline: {args.baseline_seconds:.0f} s of the same load, no faults", flush=True)
        baseline = run(config(args.baseline_seconds, faults=False))
        print(baseline.table(), flush=True)
    print(f"soak: {args.minutes:g} min with faults every {args.fault_every:g} s, {args.workers} workers", flush=True)
    soak = run(config(args.minutes * 60, faults=True))
    print(soak.table())

    payouts, postbacks = _rate(soak, "payouts/s (succeeded)"), _rate(soak, "postbacks/s")
    print(f"throughput under faults: {payouts:.2f} payouts/s, {postbacks:.2f} postbacks/s")
    if baseline is not None:
        base_payouts, base_postbacks = _rate(baseline, "payouts/s (succeeded)"), _rate(baseline, "postbacks/s")
        print(f"baseline (no faults)   : {base_payouts:.2f} payouts/s, {base_postbacks:.2f} postbacks/s")
        print(f"ratio to baseline      : payouts {payouts / base_payouts if base_payouts else 0:.2f}, "
              f"postbacks {postbacks / base_postbacks if base_postbacks else 0:.2f}")
    ok = soak.ok and (baseline is None or baseline.ok)
    print("all four checks passed" if ok else "CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
