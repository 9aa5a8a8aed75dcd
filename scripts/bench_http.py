#!/usr/bin/env python3
"""HTTP benchmark of ``searchsvc serve`` with wrk, against bare Starlette "hello" ceilings.

Starts the service (2 workers by default) on an index, derives a request mix from the index
itself (queries from article titles, found through ``/api/search`` with a few seed words, or read
from the corpus file when it is there), and drives every route with wrk for a fixed time:

    search JSON, suggest JSON, article JSON, search page HTML, article page HTML, 304 revalidation,
    and the cached search and article pages: 8 paths each, repeated, so that the response cache
    answers every request (the other routes cycle through --queries distinct paths, which the
    cache holds too once wrk's warm-up has been through them)

Ceilings, with the same wrk settings: a bare Starlette app that answers "hello" on stock
uvicorn[standard] (``python -m uvicorn ... --http httptools --loop uvloop``, not our runner), the
most this machine serves a Starlette app at. It runs beside the service the whole time and is
measured (5 s at most, no warm-up) before the first route and after every route, so each route's
share of it ("of stock") is taken against the mean of the runs just before and just after it: a
machine shared with other work slows both alike. Then the same app through our runner
(``searchsvc.server.run_uvicorn``) with each HTTP protocol, measured the same way ("of ours": a
route's share of stock over that hello's share, what is left once our server settings are paid
for). Targets (issue #14), printed MET or MISSED: 304 revalidation >= 40 % of stock, cached search
and article pages >= 35 %.

``--http httptools,h11`` measures the service with each HTTP protocol (``SEARCHSVC_HTTP``) in turn,
in the same run, on the same request mix. Only loopback addresses are used; every run is bounded by
--duration.

    .venv/bin/python scripts/bench_http.py                       # var/bench-index, 20 s per route
    .venv/bin/python scripts/bench_http.py --index-dir /tmp/idx --duration 5 --routes search,suggest
    .venv/bin/python scripts/bench_http.py --index-dir /tmp/idx --duration 5 --http httptools,h11

wrk comes from Debian's package; the script installs it with apt-get when missing (as root).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

from benchkit.corpus import CORPUS, corpus_titles
from benchkit.queries import title_word_queries
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
    start_stock_hello,
)
from searchsvc.config import HTTP_PROTOCOLS

ROUTES = ("search", "suggest", "article_json", "search_page", "article_page", "revalidate_304",
          "search_page_cached", "article_page_cached")  # fmt: skip
CACHED_PATHS = 8  # paths of a "cached" route: few enough that every request is a response-cache hit
CEILING_SECONDS = 5  # of each run of the stock ceiling between two measurements (at most --duration)
# Issue #14: each route's share of the stock ceiling.
TARGETS = {"revalidate_304": 0.40, "search_page_cached": 0.35, "article_page_cached": 0.35}


@dataclass
class Measured:
    """One wrk run and the stock ceiling's rate around it (the mean of the runs just before and after)."""

    result: Result
    stock_rps: float
    name: str  # the route (ROUTES), or "" for a ceiling
    http: str  # the server's HTTP protocol

    @property
    def of_stock(self) -> float:
        return self.result.rps / self.stock_rps if self.stock_rps else 0.0


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
        queries = title_word_queries(titles, n, rng)
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
    mix["search_page_cached"] = mix["search_page"][:CACHED_PATHS]
    mix["article_page_cached"] = mix["article_page"][:CACHED_PATHS]
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
    parser.add_argument("--http", default="httptools",
                        help="comma-separated HTTP protocols of the service (SEARCHSVC_HTTP): httptools (the default), "
                             "h11; each is measured in turn, same run")
    args = parser.parse_args(argv)
    routes = parse_subset(parser, args.routes, ROUTES)
    engines = parse_subset(parser, args.engines, ("whoosh", "typesense"))
    protocols = parse_subset(parser, args.http, HTTP_PROTOCOLS)
    if "whoosh" in engines:
        require_index(args.index_dir)
    wrk = ensure_wrk()
    print(banner("bench_http"), flush=True)
    rng = random.Random(args.seed)
    measured: list[Measured] = []
    ours: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        stock_server = stack.enter_context(start_stock_hello(args, tmp))
        prime(stock_server.url, ["/"], 200)
        bracket_args = copy.copy(args)
        bracket_args.duration, bracket_args.warmup = min(args.duration, CEILING_SECONDS), 0
        stock: list[Result] = []

        def stock_ceiling() -> Result:
            """A run of the stock ceiling, kept running beside the service: one between every two
            measurements, so that each has one just before and one just after it."""
            stock.append(run_wrk(wrk, stock_server.url, ["/"], 200, bracket_args, tmp, "hello, stock uvicorn"))
            return stock[-1]

        def measure(label: str, url: str, paths: list[str], expect: int, name: str, http: str) -> Measured:
            before = stock[-1] if stock else stock_ceiling()
            result = run_wrk(wrk, url, paths, expect, args, tmp, label)
            return Measured(result, (before.rps + stock_ceiling().rps) / 2, name, http)

        mix: dict[str, list[str]] | None = None
        for engine in engines:
            for http in protocols:
                settings = {"SEARCHSVC_ENGINE": engine, "SEARCHSVC_HTTP": http}
                if engine == "typesense":  # the cluster's settings, passed on (start_service passes no other)
                    settings.update({k: v for k, v in os.environ.items() if k.startswith("SEARCHSVC_TYPESENSE_")})
                with start_service(args, tmp, settings) as server:
                    if mix is None:  # one request mix for every engine: the same queries, ids, prefixes
                        mix = build_mix(server.url, args.queries, rng)
                    elif "revalidate_304" in routes:
                        mix["revalidate_304"] = revalidations(server.url, mix["search"], args.queries)
                    for name in routes:
                        expect = 304 if name == "revalidate_304" else 200
                        label = " ".join([name, *([engine] if len(engines) > 1 else []),
                                          *([http] if len(protocols) > 1 else [])])  # fmt: skip
                        print(f"  {label}: {len(mix[name])} distinct requests, {args.duration}s "
                              f"(+ {bracket_args.duration}s of stock hello)...", file=sys.stderr)  # fmt: skip
                        prime(server.url, mix[name], expect)
                        measured.append(measure(label, server.url, mix[name], expect, name, http))
        for http in protocols:
            with start_hello(args, tmp, http) as server:
                print(f"  hello through run_uvicorn ({http}): {args.duration}s...", file=sys.stderr)
                prime(server.url, ["/"], 200)
                ours[http] = measure(f"hello, run_uvicorn ({http})", server.url, ["/"], 200, "", http)

    where = " and ".join(f"index {args.index_dir}" if e == "whoosh" else
                         f"the cluster {os.environ.get('SEARCHSVC_TYPESENSE_NODES', '?')}" for e in engines)
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, uvicorn workers={args.workers}, "
          f"{where}; wrk and the servers share the machine's cores; {load_note()} (end)")  # fmt: skip
    rates = sorted(r.rps for r in stock)
    print(f"of stock: share of hello on stock uvicorn[standard] (httptools, uvloop), kept running beside and "
          f"measured for {bracket_args.duration}s just before and just after each row (the mean of the two; "
          f"{len(stock)} runs, {rates[0]:.0f}-{rates[-1]:.0f} req/s); of ours: that share over the share of hello "
          f"through run_uvicorn with the row's HTTP protocol\n")  # fmt: skip
    header = (f"{'route':<34} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'of stock':>9} {'of ours':>8}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for m in [*measured, *ours.values()]:
        r = m.result
        print(f"{r.route:<34} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.errors:>7d} {m.of_stock:>8.1%} {m.of_stock / ours[m.http].of_stock:>7.1%}")  # fmt: skip
    checks: dict[str, bool] = {}
    for m in measured:
        if m.name in TARGETS:
            label = f"{m.result.route}: {m.of_stock:.1%} of stock >= {TARGETS[m.name]:.0%}"
            checks[label] = m.of_stock >= TARGETS[m.name]
    if checks:
        print()
    for label, ok in checks.items():
        print(f"{'MET' if ok else 'MISSED':<7} {label}")
    if args.json:
        args.json.write_text(
            json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                        "results": [{**vars(m.result), "route_name": m.name, "http": m.http, "of_stock": m.of_stock,
                                     "of_ours": m.of_stock / ours[m.http].of_stock} for m in measured],
                        "ceilings": {"stock_runs": [vars(r) for r in stock],
                                     "ours": {h: {**vars(m.result), "of_stock": m.of_stock} for h, m in ours.items()}},
                        "targets": checks}, indent=2),
            encoding="utf-8",
        )  # fmt: skip
    return 1 if any(m.result.errors for m in measured) else 0


if __name__ == "__main__":
    sys.exit(main())
