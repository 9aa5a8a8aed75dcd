#!/usr/bin/env python
"""One publishing commit, in process: Whoosh's own segment writer beside the build's, same run.

    .venv/bin/python scripts/bench_apply.py                        # 5,000-article index, 300 new + 30 changes
    .venv/bin/python scripts/bench_apply.py --base 20000 --new 1000 --rounds 3

Builds a base index of the first ``--base`` corpus articles (once, in a temporary directory),
then, per round and per writer, copies it and applies one batch with
``index.whoosh_writer.WhooshIndexWriter.apply``: the next ``--new`` corpus articles, corrections of
20 base articles and 10 deletions, as the applier does with a batch of journal entries. Prints the
wall and CPU seconds of each apply (the process's own CPU: an apply is one thread), the writers
alternating so that a change in the machine's load hits both, and the load average.

Why this and not only ``bench_ingest.py``: a commit's cost decides how far the applier falls
behind the publishers (docs/benchmarks.md, "Publishing"), and here it is measured alone.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whoosh.writing import SegmentWriter

from benchkit.corpus import iter_articles, require_corpus
from benchkit.report import banner, load_note
from index.build_writer import BuildSegmentWriter
from index.builder import index_articles
from index.publishing import Entry, Op
from index.whoosh_writer import WhooshIndexWriter

WRITERS: dict[str, Any] = {"whoosh": SegmentWriter, "build": BuildSegmentWriter}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=5000, help="articles in the base index")
    parser.add_argument("--new", type=int, default=300, help="new articles in the applied batch")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    require_corpus()
    print(banner("bench_apply"))
    articles = list(itertools.islice(iter_articles(), args.base + args.new))
    base, added = articles[: args.base], articles[args.base :]
    now = datetime.now(UTC)
    entries = [Entry(i + 1, Op.UPSERT, a.id, a, now) for i, a in enumerate(added)]
    entries += [
        Entry(len(entries) + i + 1, Op.UPSERT, a.id, replace(a, title=a.title + " (cập nhật)"), now)
        for i, a in enumerate(base[:20])
    ]
    entries += [Entry(len(entries) + i + 1, Op.DELETE, a.id, None, now) for i, a in enumerate(base[20:30])]
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        base_dir = Path(tmp) / "base"
        started = time.monotonic()
        index_articles(base_dir, iter(base))
        took = time.monotonic() - started
        print(f"base index: {len(base):,} articles in {took:.1f} s; batch: {len(entries)} entries")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in WRITERS}
        for round_no in range(args.rounds):
            for name, writer_class in WRITERS.items():
                index_dir = Path(tmp) / name
                shutil.rmtree(index_dir, ignore_errors=True)
                shutil.copytree(base_dir, index_dir)
                writer = WhooshIndexWriter(index_dir, segment_writer=writer_class)
                wall, cpu = time.monotonic(), time.process_time()
                batch = writer.apply(entries)
                wall, cpu = time.monotonic() - wall, time.process_time() - cpu
                times[name].append((wall, cpu))
                print(f"round {round_no + 1} {name:>6}: {wall:6.2f} s wall, {cpu:6.2f} CPU-s "
                      f"({batch.upserted} upserted, {batch.deleted} deleted); {load_note()}")
        print("median CPU-s per apply:", ", ".join(
            f"{name} {statistics.median(c for _, c in runs):.2f}" for name, runs in times.items()))
        whoosh, build = (statistics.median(c for _, c in times[n]) for n in ("whoosh", "build"))
        print(f"build writer / Whoosh's writer: {build / whoosh:.0%} of the CPU; {load_note()} (end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
