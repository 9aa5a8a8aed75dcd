"""What a scaling benchmark reads about other processes, and the straight line it extrapolates with.

Why by hand from ``/proc``: the Typesense nodes of ``searchsvc.devcluster`` are children that are
never waited for while measured, so ``resource.getrusage(RUSAGE_CHILDREN)`` sees none of their CPU
time or memory. ``/proc/PID/stat`` has a running process's CPU time (every thread included);
``/proc/PID/status`` its resident set now (``VmRSS``) and its peak since it started (``VmHWM``),
which for a server started just before a build is the peak of that build. Linux only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far; NaN once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return math.nan
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; utime and stime are the
    # 14th and 15th fields, the 12th and 13th after the closing parenthesis.
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Memory:
    rss: int  # bytes resident now
    peak: int  # bytes: the highest resident set since the process started


def memory(pid: int) -> Memory:
    """``VmRSS`` and ``VmHWM`` of process ``pid`` in bytes (0 when it is gone)."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in values:
                    values[parts[0]] = int(parts[1]) * 1024  # kB
    except OSError:
        pass
    return Memory(values["VmRSS:"], values["VmHWM:"])


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (symlinks not followed); 0 when there is no such folder."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # removed meanwhile (RocksDB compacts while we walk)
            total += st.st_size
    return total


@dataclass(frozen=True, slots=True)
class Line:
    """``y = intercept + slope * x``, fitted by least squares over ``points`` (x, y) pairs."""

    slope: float
    intercept: float
    r2: float  # 1.0 with two points (a line through both): says nothing then
    points: int

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Line | None:
    """The least-squares line through the points; None for fewer than two distinct x."""
    n = len(xs)
    if n != len(ys) or n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return Line(slope, intercept, r2, n)
