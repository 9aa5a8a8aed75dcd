#!/usr/bin/env python
"""Run the same queries on two indexes of the same articles and compare what they answer.

    .venv/bin/python scripts/compare_search_results.py DIR_A DIR_B [--limit 5000] [--per-kind 60]

Written for issue #14 (a cheaper build that must index exactly what the old one did). The queries
are the known-item queries of ``benchkit.queries`` (every kind, ``--per-kind`` each) drawn from the
first ``--limit`` corpus articles (the ones the indexes hold), plus each query's first syllable
alone (short, common queries with many hits); each runs with every sort of ``index.api.SORTS``,
50 hits a page, on both indexes through this checkout's engine (result cache off). For each, the
total, the tier and the hits (id and score) must be the same.

Two indexes of the same articles built by two writer processes split the articles between their
segments as the processes happen to take them, and hits of equal score come in document number
order, so such ties may come in another order: those are counted apart (same hits and scores,
another order among equal scores) and do not count as a difference. Indexes built with
``--procs 1`` give the same order too.
"""

from __future__ import annotations

import argparse
import os
import sys
from itertools import groupby
from pathlib import Path

from benchkit.corpus import iter_articles
from benchkit.engine import open_measured_engine
from benchkit.queries import KINDS, Doc, generate, unique_title_docs
from index.api import SORTS, SearchError, SearchRequest

Answer = tuple[int, str, list[tuple[str, float]]]


def answer(engine: object, query: str, sort: str) -> Answer | str:
    try:
        result = engine.search(SearchRequest(q=query, sort=sort, per_page=50, snippets=False))  # type: ignore[attr-defined]
    except SearchError as e:
        return f"error {e.code}"
    return result.total, result.tier, [(hit.article.id, hit.score) for hit in result.hits]


def same_but_ties(a: Answer, b: Answer) -> bool:
    """The same total, tier and (id, score) hits, in the same order but among equal scores.
    A run of equal scores cut by the page's end may hold other ids: only the scores are compared
    for the last run."""
    if a[:2] != b[:2] or len(a[2]) != len(b[2]):
        return False
    runs_a = [list(g) for _, g in groupby(a[2], key=lambda hit: hit[1])]
    runs_b = [list(g) for _, g in groupby(b[2], key=lambda hit: hit[1])]
    if [len(r) for r in runs_a] != [len(r) for r in runs_b]:
        return False
    return all(
        sorted(ra) == sorted(rb) or (i == len(runs_a) - 1 and ra[0][1] == rb[0][1])
        for i, (ra, rb) in enumerate(zip(runs_a, runs_b, strict=True))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--limit", type=int, default=5000, help="the indexes hold the first N corpus articles")
    ap.add_argument("--per-kind", type=int, default=60)
    args = ap.parse_args()
    docs, _ = unique_title_docs(Doc(a.id, a.title, a.body_text) for a in iter_articles(args.limit))
    items = generate(docs, args.per_kind)
    queries = [item.query for item in items]
    queries += sorted({q.split()[0] for q in queries if q.split()})
    engine_a, note = open_measured_engine(args.a)
    engine_b, _ = open_measured_engine(args.b)
    print(
        f"{len(items)} known-item queries ({', '.join(KINDS)}) + {len(queries) - len(items)} one-syllable "
        f"queries, sorts {', '.join(SORTS)}; {note}; load average {os.getloadavg()[0]:.2f}"
    )
    compared = identical = ties = hits = 0
    differences: list[str] = []
    for query in queries:
        for sort in SORTS:
            ra, rb = answer(engine_a, query, sort), answer(engine_b, query, sort)
            compared += 1
            hits += len(ra[2]) if isinstance(ra, tuple) else 0
            if ra == rb:
                identical += 1
            elif isinstance(ra, tuple) and isinstance(rb, tuple) and same_but_ties(ra, rb):
                ties += 1
            else:
                differences.append(f"{query!r} sort={sort}: {str(ra)[:200]} vs {str(rb)[:200]}")
    engine_a.close()
    engine_b.close()
    print(
        f"{compared} searches ({hits:,} hits): {identical} identical, {ties} the same but for the order of "
        f"equal scores, {len(differences)} different"
    )
    for line in differences[:10]:
        print("  " + line)
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
