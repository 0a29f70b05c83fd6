"""What the benches share to say where time goes: CPU seconds from /proc, cProfile summaries.

* :func:`cpu_seconds` — user + system CPU of one process (a PostgreSQL backend too: the
  benches ask each connection for ``pg_backend_pid()`` and read that process, so the
  figure is our database's work only, not the other databases on a shared server);
* :func:`backend_pids` — the backends connected to one database now (the app's pool);
* :func:`profile_summary` — merged cProfile files: own time by package, then the top
  functions by cumulative time per unit of work (a posting, a request).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def processes():
    """(pid, ppid, comm) of every process; rows that vanish while read are skipped."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            yield int(entry), int(fields[1]), comm


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def backend_pids(conninfo: str, database: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``database`` (other than this query's)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,))]


def _bucket(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C calls: socket I/O, hashing, …)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].replace(".py", "")
    if "/portal/" in filename:
        return "portal/" + filename.split("/portal/", 1)[1]
    if "/bench/" in filename:
        return "bench"
    return "stdlib/" + Path(filename).name


def profile_summary(files: Iterable[Path], units: int, unit: str, what: str, top: int = 25) -> list[str]:
    """Merge cProfile files; own time by package, then the ``top`` functions by cumulative
    time in ms per ``unit`` (``units`` of them were done while profiled)."""
    import pstats

    files = [str(f) for f in files]
    if not files:
        return ["(no profiles were written)"]
    stats = pstats.Stats(files[0])
    for f in files[1:]:
        stats.add(f)
    per_bucket: Counter = Counter()
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        name = _bucket(filename)
        per_bucket["portal" if name.startswith("portal/") else name] += tottime
    total = sum(per_bucket.values()) or 1e-9
    lines = [f"profile: {len(files)} processes, {total:.1f} s ({1000 * total / max(units, 1):.2f} ms per {unit}; "
             f"{what})", "own time by package:"]
    for name, seconds in per_bucket.most_common(12):
        lines.append(f"  {seconds:8.1f} s  {100 * seconds / total:5.1f} %  {name}")
    lines.append(f"top {top} functions by cumulative time (ms per {unit}):")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)
    shown = 0
    for (filename, line, func), (_, ncalls, _, cumtime, _) in rows:
        if _bucket(filename).startswith(("bench", "stdlib/threading", "stdlib/socketserver", "stdlib/cProfile")):
            continue
        if filename == "~" and func in ("<method 'enable' of '_lsprof.Profiler' objects>",):
            continue
        short = _bucket(filename) if "site-packages" in filename else filename.replace(str(ROOT) + "/", "")
        lines.append(f"  {1000 * cumtime / max(units, 1):7.3f}  {ncalls:8d} calls  {short}:{line}({func})")
        shown += 1
        if shown >= top:
            break
    return lines
