#!/usr/bin/env python3
"""HTTP benchmark of ``searchsvc serve`` with wrk, against a bare Starlette "hello" ceiling.

Starts the service (2 workers by default) on an index, derives a request mix from the index
itself (queries from article titles, found through ``/api/search`` with a few seed words, or read
from the corpus file when it is there), and drives every route with wrk for a fixed time:

    search JSON, suggest JSON, article JSON, search page HTML, article page HTML, 304 revalidation

Then the same wrk settings hit a bare Starlette app that answers "hello" under the same uvicorn
settings: that is the most this machine can serve, and each route is printed as a fraction of it.
Only loopback addresses are used; every run is bounded by --duration.

    .venv/bin/python scripts/bench_http.py                       # var/bench-index, 20 s per route
    .venv/bin/python scripts/bench_http.py --index-dir /tmp/idx --duration 5 --routes search,suggest

wrk comes from Debian's package; the script installs it with apt-get when missing (as root).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

from benchkit.corpus import CORPUS, corpus_titles
from benchkit.report import banner, load_note
from benchkit.wrk import (
    SEED_WORDS,
    Result,
    add_arguments,
    ensure_wrk,
    parse_subset,
    require_index,
    run_wrk,
    start_hello,
    start_service,
)

ROUTES = ("search", "suggest", "article_json", "search_page", "article_page", "revalidate_304")


def build_mix(base: str, n: int, rng: random.Random) -> dict[str, list[str]]:
    """Paths per route, drawn from the index's own titles so that queries really match."""
    titles: list[str] = []
    ids: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for seed in [""] + SEED_WORDS:
            body = http.get("/api/search", params={"q": seed, "per_page": 100, "sort": "relevance"}).json()
            for hit in body.get("hits", []):
                titles.append(hit["title"])
                ids.append(hit["id"])
        titles += corpus_titles(n) if CORPUS.is_file() else []
        if not titles:
            sys.exit("the index returned no articles: is it empty?")
        words_of = [re.findall(r"\w+", t) for t in titles]
        words_of = [w for w in words_of if w]
        queries = []
        for _ in range(n):
            words = rng.choice(words_of)
            start = rng.randrange(len(words))
            queries.append(" ".join(words[start : start + rng.randint(1, 3)]).lower())
        prefixes = []
        for _ in range(n):
            words = rng.choice(words_of)
            head = " ".join(words[: rng.randint(0, min(2, len(words) - 1))])
            tail = words[min(len(words) - 1, len(head.split()))][: rng.randint(1, 3)]
            prefixes.append((head + " " + tail).strip().lower())
        ids = list(dict.fromkeys(ids))
        rng.shuffle(ids)
        search_paths = [f"/api/search?{urlencode({'q': q})}" for q in queries]
        mix = {
            "search": search_paths,
            "suggest": [f"/api/suggest?{urlencode({'q': p})}" for p in prefixes],
            "article_json": [f"/api/articles/{quote(i, safe='')}" for i in ids[:n]],
            "search_page": [f"/search?{urlencode({'q': q})}" for q in queries],
            "article_page": [f"/articles/{quote(i, safe='')}" for i in ids[:n]],
        }
    mix["revalidate_304"] = revalidations(base, search_paths, n)
    return mix


def revalidations(base: str, search_paths: list[str], n: int) -> list[str]:
    """Search paths with the ETag this server gives them (``path\tetag``): the 304 route's mix."""
    revalidate = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for path in search_paths[: max(1, n // 4)]:
            etag = http.get(path, headers={"Accept-Encoding": "gzip"}).headers.get("etag")
            if etag:
                revalidate.append(f"{path}\t{etag}")
    return revalidate


def prime(url: str, paths: list[str], expect: int) -> None:
    """Pay one-time costs (per-worker searchers, the suggester built on first use) before timing.

    A few concurrent requests so that every worker sees the route; a long timeout, because on the
    full corpus the first suggest call builds an index of prefixes for several seconds.
    """

    def one(line: str) -> int:
        path, _, etag = line.partition("\t")
        headers = {"Accept-Encoding": "gzip", **({"If-None-Match": etag} if etag else {})}
        return httpx.get(url + path, headers=headers, timeout=300).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, (paths * 8)[:16]))
    if any(status != expect for status in statuses):
        print(f"    warning: priming got statuses {sorted(set(statuses))}, expected {expect}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, "seconds of load per route", "seconds of unmeasured load before each route")
    parser.add_argument("--queries", type=int, default=300, help="distinct requests per route (default 300)")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated subset of: " + ", ".join(ROUTES))
    parser.add_argument("--engines", default="whoosh",
                        help="comma-separated: whoosh (--index-dir), typesense (the cluster of this environment's "
                             "SEARCHSVC_TYPESENSE_*, holding the same articles); each is measured in turn, same run")
    args = parser.parse_args(argv)
    routes = parse_subset(parser, args.routes, ROUTES)
    engines = parse_subset(parser, args.engines, ("whoosh", "typesense"))
    if "whoosh" in engines:
        require_index(args.index_dir)
    wrk = ensure_wrk()
    print(banner("bench_http"), flush=True)
    rng = random.Random(args.seed)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        mix: dict[str, list[str]] | None = None
        for engine in engines:
            settings = {"SEARCHSVC_ENGINE": engine}
            if engine == "typesense":  # the cluster's settings, passed on (start_service passes no other)
                settings.update({k: v for k, v in os.environ.items() if k.startswith("SEARCHSVC_TYPESENSE_")})
            with start_service(args, tmp, settings) as server:
                if mix is None:  # one request mix for every engine: the same queries, ids, prefixes
                    mix = build_mix(server.url, args.queries, rng)
                elif "revalidate_304" in routes:
                    mix["revalidate_304"] = revalidations(server.url, mix["search"], args.queries)
                for name in routes:
                    expect = 304 if name == "revalidate_304" else 200
                    label = name if len(engines) == 1 else f"{name} ({engine})"
                    print(f"  {label}: {len(mix[name])} distinct requests, {args.duration}s...", file=sys.stderr)
                    prime(server.url, mix[name], expect)
                    results.append(run_wrk(wrk, server.url, mix[name], expect, args, tmp, label))
        with start_hello(args, tmp) as server:
            print(f"  hello (ceiling): {args.duration}s...", file=sys.stderr)
            prime(server.url, ["/"], 200)
            ceiling = run_wrk(wrk, server.url, ["/"], 200, args, tmp, "hello")

    where = " and ".join(f"index {args.index_dir}" if e == "whoosh" else
                         f"the cluster {os.environ.get('SEARCHSVC_TYPESENSE_NODES', '?')}" for e in engines)
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, uvicorn workers={args.workers}, "
          f"{where}; wrk and the servers share the machine's cores; {load_note()} (end)\n")  # fmt: skip
    header = f"{'route':<26} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'of hello':>9}"
    print(header)
    print("-" * len(header))
    for r in [*results, ceiling]:
        share = r.rps / ceiling.rps if ceiling.rps else 0.0
        print(f"{r.route:<26} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.errors:>7d} {share:>8.1%}")
    if args.json:
        args.json.write_text(
            json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                        "results": [vars(r) for r in results], "ceiling": vars(ceiling)}, indent=2),
            encoding="utf-8",
        )  # fmt: skip
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
