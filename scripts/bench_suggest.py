#!/usr/bin/env python3
"""Benchmark ``index.suggest.Suggester`` on the titles of the shared corpus.

Prints the build time (wall and CPU), the memory the build needed, the entry count, then times
``complete()`` for prefixes cut from random titles (1-5 words, the last one cut to a random
length, half of them with the marks stripped) and prints p50/p95/p99 in milliseconds.

    .venv/bin/python scripts/bench_suggest.py [--queries 2000] [--seed 7] [--titles N] [--tracemalloc]

Memory: by default the growth of the process's peak RSS (``ru_maxrss``) during the build, which
includes allocator slack; ``--tracemalloc`` also rebuilds under ``tracemalloc`` to report the peak
of Python allocations (tracing slows the build down, so that build is not used for the timing).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
import tracemalloc

from benchkit.corpus import CORPUS, corpus_titles, require_corpus
from benchkit.report import banner, load_note, percentile
from index.analysis import fold
from index.suggest import Suggester


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
            prefix = fold(prefix)
        prefixes.append(prefix)
    return prefixes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=10, help="completions asked for per prefix (default 10)")
    parser.add_argument("--titles", type=int, help="build from the first N corpus titles (default: all)")
    parser.add_argument("--tracemalloc", action="store_true", help="also report the tracemalloc peak")
    args = parser.parse_args()

    require_corpus()
    print(banner("bench_suggest"))
    titles = corpus_titles(args.titles)
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
    timings: list[float] = []
    empty = 0
    for prefix in prefixes:
        start = time.perf_counter()
        result = suggester.complete(prefix, args.limit)
        timings.append((time.perf_counter() - start) * 1000)
        empty += not result
    print(
        f"complete() x {len(timings):,}: p50 {percentile(timings, 50):.3f} ms, "
        f"p95 {percentile(timings, 95):.3f} ms, p99 {percentile(timings, 99):.3f} ms, "
        f"max {max(timings):.3f} ms, mean {statistics.fmean(timings):.3f} ms; "
        f"{empty} prefixes without a completion"
    )
    for prefix in ["dak n", "hoi ngh", "thu tuong phan van kh", "gia vang t"]:
        print(f"  {prefix!r} -> {suggester.complete(prefix, 5)}")
    print(f"{load_note()} (end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
