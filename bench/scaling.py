"""Scaling: payouts/s and postbacks/s with 1, 2 and 4 worker processes on this machine.

Runs the two benches as they are (``bench/payouts.py --workers N`` through real
``cashback worker`` processes to a sandbox; ``bench/postbacks.py --workers N`` through
gunicorn), parses the figure each prints, and reports every run against the 1-process run
of the same invocation (the baseline: this machine is shared, only same-run ratios mean
something).  Usage::

    python bench/scaling.py [--counts 1,2,4] [--payouts 400] [--events 3000] [--provider test] [--payouts-only]

The last line is the ratio of the largest worker count to the first (4 workers / 1 worker);
with a 50 ms sandbox the ideal is the ratio of the counts (4.0), reached only while the
workers' own CPU and PostgreSQL's fit on the machine's cores.

What bounds it at 10× and 100× the volume, and the design answer for each, is in
``docs/deploy.md`` ("Scaling").
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAYOUT_RE = re.compile(r"through the workers\s*:\s*([\d.]+) payouts/s")
POSTBACK_RE = re.compile(r"\(p\) signed postbacks through the app\s*:\s*([\d.]+) events/s")


def run(args: list[str], pattern: re.Pattern) -> tuple[float | None, str]:
    try:  # a bench that hangs is counted as "no figure", never the end of this one
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "CASHBACK_ENV": "development"})
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = f"timed out after {exc.timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    match = pattern.search(out)
    return (float(match.group(1)) if match else None), out


def _figure(value: float | None, width: int, places: int) -> str:
    """A measured figure, or "-" for one not measured (skipped, or the bench printed none)."""
    return f"{value:>{width}.{places}f}" if value is not None else f"{'-':>{width}}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2,4", help="worker process counts; the first is the baseline")
    parser.add_argument("--payouts", type=int, default=400)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--provider", default="test")
    parser.add_argument("--latency", default="0.05", help="sandbox latency per call, seconds")
    parser.add_argument("--payouts-only", action="store_true", help="skip the postbacks bench")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    failed = False
    for n in counts:
        payouts, out_p = run(["bench/payouts.py", "--workers", str(n), "--payouts", str(args.payouts),
                              "--provider", args.provider, "--latency", args.latency], PAYOUT_RE)
        postbacks, out_b = (None, "") if args.payouts_only else run(
            ["bench/postbacks.py", "--no-floor", "--no-direct", "--workers", str(n), "--events", str(args.events), "--clients", str(max(4, 2 * n))],
            POSTBACK_RE)
        for figure, out, name in ((payouts, out_p, "payouts"), (postbacks, out_b, "postbacks")):
            if figure is None and not (name == "postbacks" and args.payouts_only):
                failed = True
                print(f"--- {name} bench with {n} workers printed no figure:\n{out[-3000:]}")
        rows.append((n, payouts, postbacks))
        print(f"{n} worker process(es): {_figure(payouts, 8, 1)} payouts/s   {_figure(postbacks, 8, 0)} postbacks/s",
              flush=True)
    base_n, base_p, base_b = rows[0]
    print(f"\nscaling against {base_n} worker process(es) in this run (cores here: {os.cpu_count()}):")
    print(f"{'workers':>8} {'payouts/s':>10} {'ratio':>6} {'postbacks/s':>12} {'ratio':>6}")
    for n, p, b in rows:
        rp = f"{p / base_p:6.2f}" if p and base_p else "     -"
        rb = f"{b / base_b:6.2f}" if b and base_b else "     -"
        print(f"{n:>8} {_figure(p, 10, 1)} {rp} {_figure(b, 12, 0)} {rb}")
    last_n, last_p, _ = rows[-1]
    if last_n != base_n:
        ratio = f"{last_p / base_p:.2f}" if last_p and base_p else "-"
        print(f"payouts: {last_n} workers / {base_n} worker(s) = {ratio} (ideal {last_n / base_n:.1f})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
