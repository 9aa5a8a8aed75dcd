#!/usr/bin/env python3
"""Where a distinct search's CPU goes: the API search path in one process, phase by phase.

Runs the queries ``bench_http.py --routes search`` sends (1–3 consecutive words of a corpus or
index title, lower-cased, same generator and seed) through what ``/api/search`` does minus the
HTTP stack: the engine's search (uncached: every query is new), the JSON presenter and the two
JSON encodings the route makes (the ETag basis and the response body). Prints the CPU time per
query of each phase, measured by wrapping the functions ``index.search`` calls, and optionally a
cProfile listing.

    .venv/bin/python scripts/profile_search.py --index-dir /tmp/full/ix2 --queries 2000
    .venv/bin/python scripts/profile_search.py --index-dir /tmp/full/ix2 --cprofile 40
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit.corpus import CORPUS, corpus_titles
from benchkit.queries import title_word_queries
from benchkit.report import banner, load_note
from index import search as search_module
from index.api import SearchRequest
from index.engine import WhooshEngine
from searchsvc.presenters import result_json

PHASES: dict[str, tuple[Any, str]] = {
    "plan + match sets (first_match)": (search_module, "first_match"),
    "copied-passage check": (search_module, "_passage"),
    "ranking (rank)": (search_module, "rank"),
    "stored articles (_article)": (search_module, "_article"),
    "snippets": (search_module, "snippet"),
    "title highlights": (search_module, "highlight"),
    "facets": (search_module, "_facet_values"),
    "did you mean": (search_module, "_did_you_mean"),
    "build_filter": (search_module, "build_filter"),
}


def timed(store: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            store[name] += time.thread_time() - start

    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cprofile", type=int, default=0, help="also print the top N functions by own time")
    args = parser.parse_args(argv)
    if not CORPUS.is_file():
        sys.exit(f"the corpus is missing ({CORPUS})")
    print(banner("profile_search"), flush=True)
    queries = title_word_queries(corpus_titles(args.queries), args.queries, random.Random(args.seed))
    engine = WhooshEngine.open(args.index_dir)
    engine.warm_up()
    for q in queries[:50]:  # per-generation tables, the term cache's most common syllables
        engine.search(SearchRequest(q=q + " zzzwarm"))
    spent: dict[str, float] = defaultdict(float)
    originals = {name: getattr(mod, attr) for name, (mod, attr) in PHASES.items()}
    for name, (mod, attr) in PHASES.items():
        setattr(mod, attr, timed(spent, name, originals[name]))
    profiler = cProfile.Profile() if args.cprofile else None
    total = present = 0.0
    wall = time.perf_counter()
    try:
        if profiler:
            profiler.enable()
        for q in queries:
            start = time.thread_time()
            result = engine.search(SearchRequest(q=q))
            middle = time.thread_time()
            payload = result_json(result, "http://127.0.0.1:8000")
            steady = {**payload, "hits": [{k: v for k, v in h.items() if k != "score"} for h in payload["hits"]]}
            json.dumps(steady, ensure_ascii=False, sort_keys=True).encode()
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            end = time.thread_time()
            total += end - start
            present += end - middle
        if profiler:
            profiler.disable()
    finally:
        for name, (mod, attr) in PHASES.items():
            setattr(mod, attr, originals[name])
    wall = time.perf_counter() - wall
    n = len(queries)
    print(f"{n:,} distinct queries, {wall:.1f} s wall; CPU per query {1000 * total / n:.2f} ms")
    rows = sorted(spent.items(), key=lambda kv: -kv[1])
    accounted = sum(spent.values()) + present
    for name, seconds in rows:
        print(f"  {name:<34} {1000 * seconds / n:7.2f} ms  {100 * seconds / total:5.1f} %")
    print(f"  {'JSON presenter + 2 encodings':<34} {1000 * present / n:7.2f} ms  {100 * present / total:5.1f} %")
    rest = total - accounted
    print(f"  {'rest (parse, validate, caches)':<34} {1000 * rest / n:7.2f} ms  {100 * rest / total:5.1f} %")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.cprofile)
    print(load_note())
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
