"""The benchmarks' one percentile rule (``benchkit.report.percentile``) is the rule wrk applies to its
own latencies, so p95s from the Python benchmarks and from the wrk ones are the same statistic."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from benchkit.procinfo import cpu_seconds
from benchkit.report import percentile


def wrk_percentile(samples: list[int], p: float) -> int:
    """wrk's ``stats_percentile`` (src/stats.c) transcribed: a histogram of whole microseconds, and
    the first value whose running count reaches ``round(p / 100 * n + 0.5)``; C's ``round`` takes
    halves away from zero, which for these non-negative values is ``floor(x + 0.5)``."""
    rank = math.floor(p / 100 * len(samples) + 0.5 + 0.5)
    total = 0
    for value, count in sorted(Counter(samples).items()):
        total += count
        if total >= rank:
            return value
    return 0  # what wrk answers when the rank is past the end (p = 100)


def test_positions_in_the_sorted_samples() -> None:
    samples = list(range(300, 0, -1))  # 1..300, unsorted
    assert [percentile(samples, p) for p in (0, 50, 95, 99, 100)] == [1, 151, 286, 298, 300]
    # p·n/100 a whole number: the next sample (wrk's rule), where nearest rank would give the 19th
    assert percentile([float(v) for v in range(1, 21)], 95) == 20.0
    assert percentile([7.5], 99) == 7.5
    assert math.isnan(percentile([], 95))


@given(st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=400),
       st.sampled_from([50, 75, 90, 95, 99, 99.9]))
def test_same_as_wrk(samples: list[int], p: float) -> None:
    assert percentile(samples, p) == wrk_percentile(samples, p)


def test_cpu_seconds_counts_what_a_process_burns_and_nothing_for_one_gone() -> None:
    """``bench_ingest`` splits the server's CPU by role with it; a busy child must show its work."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ninput()"],
                             stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.25 <= cpu_seconds(child.pid) < 5
    finally:
        child.communicate(b"\n", timeout=30)
    assert cpu_seconds(child.pid) == 0.0  # reaped: no /proc entry
