#!/usr/bin/env python
"""Search latency benchmark: p50/p95/p99 per query kind, Whoosh (the engine) and SQLite FTS5.

    .venv/bin/python scripts/bench_index.py      # first: builds var/bench-index and var/bench-fts5.sqlite
    .venv/bin/python scripts/bench_search.py     # ~300 queries per kind after a 50-query warm-up
    .venv/bin/python scripts/bench_search.py --n 100 --skip-fts5

One ``WhooshEngine`` used from one thread (the service keeps one searcher per thread: the same).
Kinds, generated deterministically (``--seed``) from corpus titles:

* ``plain``: 2-4 consecutive syllables of a title, marks removed, lowercase;
* ``phrase``: 2-3 consecutive syllables of a title as written, in double quotes;
* ``phrase3``: 3-5 consecutive syllables of a title as written, in double quotes: every one is
  checked on the stored text (``index.phrases``), the cost that check adds;
* ``typo``: a plain query with one edit in one syllable of 4+ letters;
* ``faceted``: a plain query + the article's category + a one-year date range around it,
  sort=newest;
* ``suggest``: ``engine.suggest()`` on the first 1-3 words of a title run, the last word cut
  (half typed with marks, half without). The suggester is built on the first call: that build is
  timed on its own and excluded from the latencies.

Search kinds run with snippets and facets on (what the service asks for); ``plain`` also runs with
both off to show their cost. FTS5 runs the same search kinds with the equivalent work: bm25 order
(or newest first), ``snippet()`` on the body for the 10 hits and category/year/month counts over
every match.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from benchkit import fts5
from benchkit import queries as eq
from benchkit.corpus import BENCH_INDEX, iter_articles, require_corpus
from benchkit.engine import open_measured_engine
from benchkit.report import banner, load_note, percentile
from index.analysis import fold
from index.api import SearchEngine, SearchRequest
from index.article import VN_TZ

TARGET_SEARCH_P95 = 150.0
TARGET_SUGGEST_P95 = 20.0
WARMUP = 50
SEARCH_KINDS = ("plain", "phrase", "phrase3", "typo", "faceted", "passage")


@dataclass
class Query:
    kind: str
    q: str
    category: str = ""
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class Timing:
    label: str
    ms: list[float] = field(default_factory=list)
    tiers: Counter[str] = field(default_factory=Counter)
    empty: int = 0
    slowest: list[tuple[float, str, str]] = field(default_factory=list)  # (ms, query, tier)


# -- query generation ---------------------------------------------------------------------------------


@dataclass
class Source:
    title: str
    category_slug: str
    day: date
    id: str = ""
    body: str = ""


def make_queries(sources: list[Source], n: int, seed: int) -> dict[str, list[Query]]:
    out: dict[str, list[Query]] = {}
    total = n + WARMUP

    def runs_of(rng: random.Random, lo: int, hi: int) -> Iterator[tuple[Source, list[str]]]:
        while True:
            src = sources[rng.randrange(len(sources))]
            runs = [r for r in eq.title_runs(src.title) if len(r) >= lo]
            if not runs:
                continue
            run = rng.choice(runs)
            k = rng.randint(lo, min(hi, len(run)))
            i = rng.randrange(len(run) - k + 1)
            yield src, run[i : i + k]

    rng = random.Random(f"{seed}:plain")
    gen = runs_of(rng, 2, 4)
    out["plain"] = [Query("plain", fold(" ".join(words)).lower()) for _, words in (next(gen) for _ in range(total))]

    rng = random.Random(f"{seed}:phrase")
    gen = runs_of(rng, 2, 3)
    out["phrase"] = [
        Query("phrase", '"' + " ".join(words).lower() + '"') for _, words in (next(gen) for _ in range(total))
    ]

    rng = random.Random(f"{seed}:phrase3")
    gen = runs_of(rng, 3, 5)
    out["phrase3"] = [
        Query("phrase3", '"' + " ".join(words).lower() + '"') for _, words in (next(gen) for _ in range(total))
    ]

    rng = random.Random(f"{seed}:typo")
    gen = runs_of(rng, 2, 4)
    typos = []
    while len(typos) < total:
        _, words = next(gen)
        words = [fold(w).lower() for w in words]
        long = [i for i, w in enumerate(words) if len(w) >= eq.TYPO_MIN_LETTERS and w.isascii()]
        if not long:
            continue
        i = rng.choice(long)
        words[i] = eq.typo(words[i], rng)[0]
        typos.append(Query("typo", " ".join(words)))
    out["typo"] = typos

    # Copied passages (benchkit.queries.body_passage: 4-8 syllables of a body, most across a break):
    # the queries that take index.passages' second look.
    rng = random.Random(f"{seed}:passage")
    passages: list[Query] = []
    while len(passages) < total:
        src = sources[rng.randrange(len(sources))]
        item = eq.body_passage(eq.Doc(src.id, src.title, src.body), rng)
        if item is not None:
            passages.append(Query("passage", item.query))
    out["passage"] = passages

    rng = random.Random(f"{seed}:faceted")
    gen = runs_of(rng, 2, 4)
    faceted = []
    for src, words in (next(gen) for _ in range(total)):
        start = src.day - timedelta(days=rng.randint(0, 365))
        faceted.append(Query("faceted", fold(" ".join(words)).lower(), category=src.category_slug,
                             date_from=start, date_to=start + timedelta(days=365)))
    out["faceted"] = faceted

    rng = random.Random(f"{seed}:suggest")
    gen = runs_of(rng, 1, 3)
    prefixes = []
    for _, words in (next(gen) for _ in range(total)):
        if rng.random() < 0.5:
            words = [fold(w) for w in words]
        last = words[-1]
        cut = rng.randint(1, max(1, len(last) - 1)) if len(last) > 1 else 1
        prefixes.append(Query("suggest", " ".join(words[:-1] + [last[:cut]]).lower()))
    out["suggest"] = prefixes
    return out


# -- runners --------------------------------------------------------------------------------------------


def run_whoosh(engine: SearchEngine, queries: list[Query], label: str, snippets: bool = True,
               facets: bool = True) -> Timing:
    timing = Timing(label)
    for i, q in enumerate(queries):
        if q.kind == "suggest":
            t = time.perf_counter()
            got = engine.suggest(q.q)
            ms = (time.perf_counter() - t) * 1000
            tier = ""
            empty = not got
        else:
            req = SearchRequest(q=q.q, per_page=10, snippets=snippets, facets=facets,
                                categories=[q.category] if q.category else [],
                                date_from=q.date_from, date_to=q.date_to,
                                sort="newest" if q.kind == "faceted" else "relevance")
            t = time.perf_counter()
            res = engine.search(req)
            ms = (time.perf_counter() - t) * 1000
            tier = res.tier
            empty = res.total == 0
        if i < WARMUP:
            continue
        timing.ms.append(ms)
        timing.tiers[tier] += 1
        timing.empty += empty
        timing.slowest.append((ms, q.q, tier))
    timing.slowest = sorted(timing.slowest, reverse=True)[:5]
    return timing


def _day_start(d: date) -> int:
    return int(datetime.combine(d, dtime(0, 0), tzinfo=VN_TZ).timestamp())


def fts5_search(conn: sqlite3.Connection, q: Query, snippets: bool = True, facets: bool = True) -> int:
    """One FTS5 request doing the work the service asks of the engine; returns the number of matches."""
    expr = fts5.fts_query(q.q)
    if expr is None:
        return 0
    where = ["t MATCH ?"]
    params: list[str | int] = [expr]
    if q.category:
        where.append("d.category_slug = ?")
        params.append(q.category)
    if q.date_from:
        where.append("d.published >= ?")
        params.append(_day_start(q.date_from))
    if q.date_to:
        where.append("d.published < ?")
        params.append(_day_start(q.date_to + timedelta(days=1)))
    cond = " AND ".join(where)
    order = "d.published DESC" if q.kind == "faceted" else fts5.BM25
    cols = "d.id, d.title" + (", snippet(t, 1, '<b>', '</b>', '…', 24)" if snippets else "")
    rows = conn.execute(f"SELECT {cols} FROM t JOIN docs d ON d.rowid = t.rowid WHERE {cond} ORDER BY {order} LIMIT 10",
                        params).fetchall()
    if not facets:
        return len(rows)
    counts = conn.execute(f"SELECT d.category_slug, d.month, count(*) FROM t JOIN docs d ON d.rowid = t.rowid "
                          f"WHERE {cond} GROUP BY d.category_slug, d.month", params).fetchall()
    cats: Counter[str] = Counter()
    years: Counter[str] = Counter()
    months: Counter[str] = Counter()
    for cat, month, c in counts:
        cats[cat] += c
        years[month[:4]] += c
        months[month] += c
    return sum(cats.values())


def run_fts5(fts: fts5.Fts5, queries: list[Query], label: str, snippets: bool = True, facets: bool = True) -> Timing:
    timing = Timing(label)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        found = fts5_search(fts.conn, q, snippets, facets)
        ms = (time.perf_counter() - t) * 1000
        if i < WARMUP:
            continue
        timing.ms.append(ms)
        timing.empty += not found
        timing.slowest.append((ms, q.q, ""))
    timing.slowest = sorted(timing.slowest, reverse=True)[:5]
    return timing


def row(t: Timing, target: float | None) -> str:
    p50, p95, p99 = percentile(t.ms, 50), percentile(t.ms, 95), percentile(t.ms, 99)
    verdict = "" if target is None else f"p95 <= {target:.0f} ms: {'OK' if p95 <= target else 'MISSED'}"
    return (f"{t.label:<34}{len(t.ms):>5}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}{statistics.fmean(t.ms):>9.1f}"
            f"{max(t.ms):>9.1f}{t.empty:>7}   {verdict}")


HEADER = f"{'kind':<34}{'n':>5}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}{'max':>9}{'empty':>7}   (ms)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=BENCH_INDEX)
    ap.add_argument("--fts5-db", type=Path, default=fts5.DEFAULT_DB)
    ap.add_argument("--n", type=int, default=300, help="measured queries per kind (after a 50-query warm-up)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--skip-fts5", action="store_true")
    ap.add_argument("--kinds", default=",".join(SEARCH_KINDS),
                    help=f"search kinds to time, comma-separated (default: {','.join(SEARCH_KINDS)})")
    ap.add_argument("--typesense", action="store_true",
                    help="also time the cluster engine (SEARCHSVC_TYPESENSE_*, the same articles) on the same queries")
    args = ap.parse_args()
    require_corpus()
    engine, cache_note = open_measured_engine(args.index_dir)
    n_docs = engine.doc_count
    print(banner("bench_search"))
    print(cache_note)
    print(f"index: {args.index_dir} ({n_docs:,} articles); {args.n} measured queries per kind after {WARMUP} "
          f"warm-up queries of the same kind; one engine, one thread; seed {args.seed}")

    sources = [Source(a.title, a.category_slug, a.published.astimezone(VN_TZ).date(), a.id, a.body_text)
               for a in iter_articles(n_docs)]
    queries = make_queries(sources, args.n, args.seed)
    for kind, qs in queries.items():
        print(f"  e.g. {kind:<8} " + " | ".join(
            (q.q + (f" [category={q.category} {q.date_from}..{q.date_to} sort=newest]" if q.category else ""))
            for q in qs[WARMUP : WARMUP + 3]))

    kinds = [k for k in args.kinds.split(",") if k in SEARCH_KINDS]
    if "plain" in kinds:
        t = time.perf_counter()
        engine.suggest("a")
        suggester_build = time.perf_counter() - t
        print(f"\nsuggester build (first suggest() call, excluded below): {suggester_build:.2f} s")
    results: list[tuple[Timing, float | None]] = []
    for kind in kinds:
        results.append((run_whoosh(engine, queries[kind], f"whoosh {kind}"), TARGET_SEARCH_P95))
        print(f"  done whoosh {kind}; {load_note()}", file=sys.stderr, flush=True)
    if "plain" in kinds:  # the plain kind's variants: without snippets and facets, and suggestions
        results.append((run_whoosh(engine, queries["plain"], "whoosh plain (snippets+facets off)", False, False),
                        None))
        results.append((run_whoosh(engine, queries["suggest"], "whoosh suggest"), TARGET_SUGGEST_P95))
    w_load = load_note()

    if args.typesense:
        from index.typesense.engine import TypesenseEngine

        with TypesenseEngine.open() as cluster:
            cluster.warm_up()
            print(f"cluster engine: {', '.join(cluster.settings.nodes)} ({cluster.doc_count:,} articles)")
            for kind in kinds:
                results.append((run_whoosh(cluster, queries[kind], f"typesense {kind}"), TARGET_SEARCH_P95))
                print(f"  done typesense {kind}; {load_note()}", file=sys.stderr, flush=True)
            if "plain" in kinds:
                results.append((run_whoosh(cluster, queries["plain"], "typesense plain (snippets+facets off)",
                                           False, False), None))
                results.append((run_whoosh(cluster, queries["suggest"], "typesense suggest"), TARGET_SUGGEST_P95))

    f_results: list[Timing] = []
    if not args.skip_fts5:
        fts5.ensure(args.fts5_db, n_docs)
        fts = fts5.Fts5(args.fts5_db)
        for kind in kinds:
            f_results.append(run_fts5(fts, queries[kind], f"fts5 {kind}"))
        if "plain" in kinds:
            f_results.append(run_fts5(fts, queries["plain"], "fts5 plain (snippets+facets off)", False, False))

    print()
    print(HEADER)
    print("-" * len(HEADER))
    for timing, target in results:
        print(row(timing, target))
    for timing in f_results:
        print(row(timing, None))
    print(f"\n{w_load} (end of the Whoosh runs); {load_note()} (end)")

    print("\nWhoosh tiers per kind ('empty' = no result)")
    for timing, _ in results:
        if timing.tiers and "" not in timing.tiers:
            print(f"  {timing.label:<34} " + ", ".join(f"{k} {v}" for k, v in timing.tiers.most_common()))
    print("\nslowest Whoosh queries per kind")
    for timing, _ in results:
        print(f"  {timing.label}: " + "; ".join(f"{ms:.0f} ms {q!r}" + (f" ({tier})" if tier else "")
                                                for ms, q, tier in timing.slowest[:3]))


if __name__ == "__main__":
    main()
