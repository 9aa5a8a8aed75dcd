#!/usr/bin/env python3
"""Benchmark ``index.suggest.Suggester`` on the titles of the shared corpus.

Prints the build time (wall and CPU), the memory the build needed, the entry count, then times
``complete()`` for prefixes cut from random titles (1-5 words, the last one cut to a random
length, half of them with the marks stripped) and prints p50/p95/p99 in milliseconds.

    .venv/bin/python scripts/bench_suggest.py [--queries 2000] [--seed 7] [--tracemalloc]

Memory: by default the growth of the process's peak RSS (``ru_maxrss``) during the build, which
includes allocator slack; ``--tracemalloc`` also rebuilds under ``tracemalloc`` to report the peak
of Python allocations (that build is several times slower, so it is not used for the timing).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from index.analysis import fold  # noqa: E402
from index.suggest import Suggester  # noqa: E402

try:  # the readers clean every title this way before the engine sees it
    from index.cleanup import clean_line
except ImportError:  # pragma: no cover - keep the benchmark usable on its own

    def clean_line(s: str) -> str:
        return " ".join(s.split())


CORPUS = REPO.parent / "shared" / "corpus" / "vntc.jsonl.gz"


def load_titles(path: Path) -> list[str]:
    titles = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            title = clean_line(json.loads(line).get("title") or "")
            if title:
                titles.append(title)
    return titles


def strip_marks(text: str) -> str:
    return fold(text)


def make_prefixes(titles: list[str], n: int, rng: random.Random) -> list[str]:
    prefixes = []
    while len(prefixes) < n:
        words = rng.choice(titles).split()
        if not words:
            continue
        count = rng.randint(1, min(5, len(words)))
        # Half from the start of the title, half from anywhere in it (completion by n-grams).
        start = 0 if rng.random() < 0.5 else rng.randrange(len(words) - count + 1)
        chosen = words[start : start + count]
        last = chosen[-1]
        chosen[-1] = last[: rng.randint(1, len(last))]
        prefix = " ".join(chosen)
        if len(prefixes) % 2:
            prefix = strip_marks(prefix)
        prefixes.append(prefix)
    return prefixes


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--tracemalloc", action="store_true", help="also report the tracemalloc peak")
    args = parser.parse_args()

    if not CORPUS.is_file():
        print(f"corpus not found: {CORPUS} (this benchmark needs the shared corpus)", file=sys.stderr)
        return 1
    titles = load_titles(CORPUS)
    print(f"titles: {len(titles):,} from {CORPUS}")

    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = time.perf_counter(), time.process_time()
    suggester = Suggester.build(titles)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"build: {wall:.2f} s wall, {cpu:.2f} s CPU")
    growth = (rss_after - rss_before) / 1024
    print(f"peak RSS growth during build: {growth:.1f} MiB (ru_maxrss {rss_after / 1024:.1f} MiB)")
    print(
        f"entries: {len(suggester):,} ({suggester.ngram_count:,} n-grams with count >= 2, "
        f"{suggester.title_count:,} distinct titles)"
    )
    if args.tracemalloc:
        del suggester
        gc.collect()
        tracemalloc.start()
        suggester = Suggester.build(titles)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"tracemalloc: peak {peak / 2**20:.1f} MiB during build, {current / 2**20:.1f} MiB kept")

    rng = random.Random(args.seed)
    prefixes = make_prefixes(titles, args.queries, rng)
    for prefix in prefixes[:50]:  # warm-up (first calls fill analysis' caches)
        suggester.complete(prefix, args.limit)
    timings = []
    empty = 0
    for prefix in prefixes:
        start = time.perf_counter()
        result = suggester.complete(prefix, args.limit)
        timings.append((time.perf_counter() - start) * 1000)
        empty += not result
    timings.sort()
    print(
        f"complete() x {len(timings):,}: p50 {percentile(timings, 50):.3f} ms, "
        f"p95 {percentile(timings, 95):.3f} ms, p99 {percentile(timings, 99):.3f} ms, "
        f"max {timings[-1]:.3f} ms, mean {statistics.fmean(timings):.3f} ms; "
        f"{empty} prefixes without a completion"
    )
    for prefix in ["dak n", "hoi ngh", "thu tuong phan van kh", "gia vang t"]:
        print(f"  {prefix!r} -> {suggester.complete(prefix, 5)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
