#!/usr/bin/env python3
"""Dump what searches answer, to prove a change to the search path changes nothing.

For a deterministic set of queries (``profile_search.py``'s, i.e. ``bench_http.py``'s, plus the
same queries without tone marks, with a category filter and on page 2) under every sort, writes
one JSON line per request: total, tier, the ids and exact scores (``repr``) of the page, the
facets, the did-you-mean suggestion, the title highlights and the snippets. Run it with the old
code and the new (``PYTHONPATH=<worktree>``) on the same index and compare the files byte for
byte (``cmp``); ``--diff OLD NEW`` prints the first requests that differ.

    .venv/bin/python scripts/compare_rankings.py --index-dir /tmp/full/ix2 --out /tmp/new.jsonl
    .venv/bin/python scripts/compare_rankings.py --diff /tmp/old.jsonl /tmp/new.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path
from typing import Any

from benchkit.corpus import corpus_titles
from benchkit.queries import title_word_queries
from index.api import SORTS, SearchRequest
from index.engine import WhooshEngine


def unaccented(text: str) -> str:
    stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return stripped.replace("đ", "d").replace("Đ", "D")


def requests(n: int, categories: list[str]) -> list[SearchRequest]:
    queries = title_word_queries(corpus_titles(n), n, random.Random(7))
    out: list[SearchRequest] = []
    for i, q in enumerate(queries):
        variants = [q, unaccented(q)] if i % 3 == 0 else [q]
        for text in variants:
            for sort in SORTS:
                out.append(SearchRequest(q=text, sort=sort))
        out.append(SearchRequest(q=q, page=2))
        if categories:
            out.append(SearchRequest(q=q, categories=[categories[i % len(categories)]]))
    return out


def dump(result: Any) -> dict[str, Any]:
    return {
        "q": result.request.q,
        "sort": result.request.sort,
        "page": result.request.page,
        "categories": result.request.categories,
        "total": result.total,
        "tier": str(result.tier),
        "hits": [
            [
                h.article.id,
                repr(h.score),
                [[s.text, s.hit] for s in h.title_spans],
                [[s.text, s.hit] for s in h.snippet],
            ]
            for h in result.hits
        ],
        "facets": {k: [[v.value, v.slug, v.count] for v in vs] for k, vs in result.facets.items()},
        "suggestion": result.suggestion,
        "partial": result.partial,
    }


def diff(old: Path, new: Path, show: int = 5) -> int:
    a, b = old.read_text().splitlines(), new.read_text().splitlines()
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    print(f"{len(a):,} / {len(b):,} requests; {len(bad):,} differ")
    for i in bad[:show]:
        print("OLD", a[i][:600], "\nNEW", b[i][:600])
    return 1 if bad or len(a) != len(b) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--diff", type=Path, nargs=2)
    args = parser.parse_args(argv)
    if args.diff:
        return diff(*args.diff)
    if not args.index_dir or not args.out:
        parser.error("--index-dir and --out (or --diff OLD NEW)")
    with WhooshEngine.open(args.index_dir) as engine, args.out.open("w") as out:
        categories = [v.slug for v in engine.categories()]
        reqs = requests(args.queries, categories)
        for request in reqs:
            out.write(json.dumps(dump(engine.search(request)), ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{len(reqs):,} requests written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
