"""The benchmarks' one percentile rule (``benchkit.report.percentile``) is the rule wrk applies to its
own latencies, so p95s from the Python benchmarks and from the wrk ones are the same statistic."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

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
