"""The one percentile rule, and what every benchmark prints about the conditions it measured in.

Percentiles: every benchmark states p50/p95/p99 by the rule below. The HTTP benchmarks cannot choose
theirs: wrk computes them itself (``stats_percentile`` in wrk's ``src/stats.c``: the first latency
whose running count reaches ``round(p / 100 * n + 0.5)``). That rank is ``floor(p * n / 100) + 1``,
so the rule here is wrk's, and a p95 from ``bench_search.py`` and one from ``bench_http.py`` are the
same statistic. Like nearest rank, it returns a measured value (no interpolation between two).

The machine is shared (2 cores, other work often running), so a figure means little without the
load average next to it: every benchmark prints ``load_note()`` when it starts and when it ends.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Sequence
from datetime import datetime

from benchkit.corpus import REPO_ROOT

MEASURED_CODE = ("index", "feeds", "searchsvc")


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``: the value at 0-based position
    ``floor(p * n / 100)`` of the sorted values, the largest when that is past the end (wrk's rule,
    see the module docstring). NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.floor(p * len(ordered) / 100))]


def load_note() -> str:
    """The 1, 5 and 15 minute load averages and the number of cores they are shared by."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def code_version() -> str:
    """The commit and any uncommitted change to the measured packages (read-only git calls)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", *MEASURED_CODE).splitlines() if line.strip()]
    if not dirty:
        return f"code: commit {head} ({', '.join(f'{p}/' for p in MEASURED_CODE)} clean)"
    more = f" and {len(dirty) - 8} more files" if len(dirty) > 8 else ""
    return f"code: commit {head} + uncommitted changes in {', '.join(dirty[:8])}{more}"


def banner(name: str) -> str:
    """The first lines of every benchmark's output: what ran, when, on what load, on which code."""
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    return f"{name}  {now}\nmachine: {load_note()} (start)\n{code_version()}"
