#!/usr/bin/env python
"""Index-build benchmark: the project's reader + builder on the shared corpus, then SQLite FTS5.

    .venv/bin/python scripts/bench_index.py                 # the full corpus (how long: docs/benchmarks.md)
    .venv/bin/python scripts/bench_index.py --limit 5000    # a quick run
    .venv/bin/python scripts/bench_index.py --skip-fts5 --procs 1 --limitmb 256

Whoosh: ``index.builder.index_articles`` with ``rebuild=True`` into ``--index-dir`` (default
``var/bench-index``): a new, empty generation is filled and then made live, so the build is from
scratch while whoever reads the old generation (the HTTP benchmark...) keeps working; ``--clean``
deletes the directory first instead. The result is the index the other benchmarks
(eval_relevance.py, bench_search.py) and the HTTP benchmark use: keep it there.

Memory: ``resource.getrusage`` gives the peak RSS of this process and of the largest waited-for
child; Whoosh's multi-process writer forks children that exit before we could look at them, so a
thread also samples the RSS (and PSS, which shares copy-on-write pages fairly) of the whole process
tree every 0.5 s from /proc and keeps the peak of the sum. The RSS sum counts pages shared between
the parent and its forked children once per process, so it is an upper bound; the PSS sum is the
better estimate of real memory use.

FTS5: the same articles into ``var/bench-fts5.sqlite`` (see ``benchkit.fts5``), timed the same way
(reading the corpus included in both).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from benchkit import fts5
from benchkit.corpus import BENCH_INDEX, CORPUS, CORPUS_ARTICLES, iter_articles, require_corpus
from benchkit.report import banner, load_note
from index import store
from index.builder import DEFAULT_LIMITMB, DEFAULT_PROCS, index_articles
from index.readers import ReadError

TARGET_SECONDS = 600.0
TARGET_RSS = 1.5 * 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def _tree(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the RSS and PSS sums of this process and all its descendants every ``interval`` s."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0

    def sample(self) -> None:
        pids = _tree(os.getpid())
        rss = sum(_rss(p) for p in pids)
        pss = sum(_pss(p) for p in pids)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_procs = max(self.peak_procs, len(pids))
        self.samples += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()
        self.sample()


def _maxrss() -> tuple[int, int]:
    """(self, largest child) peak RSS in bytes (ru_maxrss is in KiB on Linux)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)


def _cpu_parts() -> tuple[float, float]:
    """User + system CPU seconds so far of this process and of its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _cpu() -> float:
    """User + system CPU seconds of this process and its waited-for children so far."""
    return sum(_cpu_parts())


def mb(n: float) -> str:
    return f"{n / 1024**2:,.0f} MB"


def ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


T = TypeVar("T")


class Timed(Iterator[T]):
    """Wraps an iterator and adds up the time spent inside it (the reader's share of the build)."""

    def __init__(self, it: Iterable[T]) -> None:
        self.it = iter(it)
        self.seconds = 0.0

    def __iter__(self) -> Timed[T]:
        return self

    def __next__(self) -> T:
        t0 = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.seconds += time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help=f"first N articles (default: all {CORPUS_ARTICLES:,})")
    ap.add_argument("--index-dir", type=Path, default=BENCH_INDEX)
    ap.add_argument("--procs", type=int, default=DEFAULT_PROCS, help=f"writer processes (default {DEFAULT_PROCS})")
    ap.add_argument("--limitmb", type=int, default=DEFAULT_LIMITMB,
                    help=f"writer memory per process (default {DEFAULT_LIMITMB})")
    ap.add_argument("--fts5-db", type=Path, default=fts5.DEFAULT_DB)
    ap.add_argument("--skip-fts5", action="store_true", help="only the Whoosh build")
    ap.add_argument("--clean", action="store_true", help="delete --index-dir first (default: build a new generation)")
    args = ap.parse_args()
    require_corpus()

    print(banner("bench_index"))
    print(f"memory: {os.sysconf('SC_PHYS_PAGES') * PAGE / 1024**3:.0f} GB RAM")
    print(f"corpus: {CORPUS}  limit: {args.limit or 'all'}  procs={args.procs} limitmb={args.limitmb}")
    print(f"index dir: {args.index_dir} (rebuilt from scratch: "
          f"{'directory deleted first' if args.clean else 'a new generation, made live when complete'})")

    # ---- Whoosh -----------------------------------------------------------------------------------
    if args.clean and args.index_dir.exists():
        shutil.rmtree(args.index_dir)
    errors: list[ReadError] = []
    items = Timed(iter_articles(args.limit, errors))
    sampler = TreeSampler()
    sampler.start()
    self0, kids0 = _cpu_parts()
    cpu0 = self0 + kids0
    t0 = time.perf_counter()
    last = [t0]
    count = [0]

    def progress(n: int) -> None:
        count[0] += n
        now = time.perf_counter()
        if now - last[0] >= 30:
            last[0] = now
            print(f"  whoosh: {count[0]:,} articles read and queued to the writers, {now - t0:.0f} s, "
                  f"tree RSS peak {mb(sampler.peak_rss)}, {load_note()}", file=sys.stderr, flush=True)

    report = index_articles(args.index_dir, items, rebuild=True, procs=args.procs, limitmb=args.limitmb,
                            progress=progress)
    w_seconds = time.perf_counter() - t0
    self1, kids1 = _cpu_parts()
    w_cpu = self1 + kids1 - cpu0
    sampler.stop()
    self_rss, child_rss = _maxrss()
    gen = store.current_generation(args.index_dir)
    w_size = store.index_size_bytes(args.index_dir / gen)
    segments = len(store.storage(args.index_dir / gen).open_index()._segments())
    w_load = load_note()
    n = report.indexed + report.updated
    print()
    print("Whoosh (index.builder)")
    print(f"  articles          {n:,}  ({report.summary()}; reader errors {len(errors)})")
    print(f"  seconds           {w_seconds:,.1f}  (of which reading the corpus in the parent: {items.seconds:,.1f})"
          f"   target < {TARGET_SECONDS:.0f} s for the full corpus: {ok(w_seconds < TARGET_SECONDS)}")
    print(f"  articles/s        {n / w_seconds:,.0f}")
    print(f"  CPU seconds       {w_cpu:,.1f} (this process + writer processes; wall time under no other load would be "
          f"about CPU / {args.procs} at best)")
    print(f"                    this process {self1 - self0:,.1f} (reading the corpus, handing articles to the "
          f"writers, the memory sampler), writer processes {kids1 - kids0:,.1f}")
    print(f"  peak RSS          self {mb(self_rss)}, largest child {mb(child_rss)}; "
          f"process tree (0.5 s samples, {sampler.samples}, up to {sampler.peak_procs} processes): "
          f"RSS sum {mb(sampler.peak_rss)}, PSS sum {mb(sampler.peak_pss)}")
    peak = max(self_rss, child_rss, sampler.peak_rss)
    print(f"  peak memory       {mb(peak)} (max of the above RSS figures)   target < 1.5 GB: {ok(peak < TARGET_RSS)}")
    print(f"  index size        {mb(w_size)} ({w_size:,} bytes, {segments} segments, {args.index_dir / gen})")
    print(f"  {w_load} (end of Whoosh build)")

    if args.skip_fts5:
        return

    # ---- FTS5 -------------------------------------------------------------------------------------
    print(f"\nbuilding FTS5 baseline into {args.fts5_db} ...", file=sys.stderr, flush=True)
    sampler = TreeSampler()
    sampler.start()
    cpu0 = _cpu()
    fts = fts5.build(args.fts5_db, args.limit)
    f_cpu = _cpu() - cpu0
    sampler.stop()
    print()
    print(f"SQLite FTS5 {sqlite3.sqlite_version} (tokenize = '{fts5.TOKENIZE}', đ->d by hand)")
    print(f"  articles          {fts.articles:,}")
    print(f"  seconds           {fts.seconds:,.1f}  (of which reading the corpus: {fts.read_seconds:,.1f})")
    print(f"  articles/s        {fts.articles / fts.seconds:,.0f}")
    print(f"  CPU seconds       {f_cpu:,.1f}")
    print(f"  peak RSS          process tree during the FTS5 build (0.5 s samples): RSS {mb(sampler.peak_rss)}, "
          f"PSS {mb(sampler.peak_pss)}")
    print(f"  index size        {mb(fts.size_bytes)} ({fts.size_bytes:,} bytes, {args.fts5_db}; "
          "stores title and body text like the Whoosh 'doc' field)")
    print(f"  {load_note()} (end of FTS5 build)")
    print()
    print("Ratios Whoosh / FTS5")
    print(f"  build time        {w_seconds / fts.seconds:.2f}x  (both include reading the corpus)")
    print(f"  CPU time          {w_cpu / f_cpu:.2f}x")
    print(f"  size on disk      {w_size / fts.size_bytes:.2f}x")


if __name__ == "__main__":
    main()
