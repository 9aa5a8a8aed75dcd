#!/usr/bin/env python3
"""Feed benchmark: ``searchsvc serve`` feeds under wrk, against bare Starlette ceilings.

Scenarios (each ``--duration`` seconds, loopback only, same wrk settings):

    feed_gzip       a cached category feed, Accept-Encoding: gzip (the usual feed reader)
    feed_identity   the same feed without gzip
    feed_304        revalidation of that feed with If-None-Match (answers 304)
    search_feed     saved-search feeds, a different query on every request (so every one is a
                    search, a render and a compression), at --search-connections (default 2:
                    one request in flight per worker, the service's own latency)
    search_busy     the same at --connections (16): more work offered than the CPUs can do, so
                    the latency measured is mostly time spent queueing
    page_gzip       the same category feed's URL opened in a browser tab (Sec-Fetch-Dest:
                    document): its cached HTML page, gzip (searchsvc.feed_page)
    page_304        revalidation of that page with its own ETag (answers 304)

Ceilings, measured in the same run:

    stock hello     a bare Starlette "hello" app on stock uvicorn[standard] (``python -m uvicorn
                    ... --http httptools --loop uvloop``, not our runner), as in bench_http.py: the
                    most this machine serves a Starlette app at
    hello           the same app through our runner (``searchsvc.server.run_uvicorn``, with the
                    service's HTTP protocol): what our server settings alone leave of it
    same bytes      a bare Starlette app on stock uvicorn[standard] returning the very bytes of the
                    cached feed (plain, gzip) or an empty 304: what sending this much data costs
                    with no work at all

The four servers run side by side and the runs are interleaved in ``--rounds`` rounds (stock hello,
then each scenario followed by its same-bytes ceiling, then hello, then stock hello again), so that
a machine shared with other work slows a scenario and its ceiling alike; shares are medians of
per-round ratios (of stock: to the mean of the round's two stock hello runs).

Targets, printed MET or MISSED: issue #14, of stock hello: cached feed (gzip) >= 30 %, 304 >= 40 %;
the feeds issue, of hello through our runner: cached feed >= 25 %, 304 >= 40 %, search feed
p95 <= 250 ms. ``--http h11`` runs the service (and our hello) with the h11 protocol instead.

    .venv/bin/python scripts/bench_feeds.py                          # var/bench-index, 20 s each
    .venv/bin/python scripts/bench_feeds.py --index-dir /tmp/idx --duration 8 --rounds 2

The category is the largest one unless ``--category`` is given; the feed format is RSS unless
``--format``. wrk install, server start/stop, the wrk runner and the ceiling apps are ``benchkit``'s,
shared with scripts/bench_http.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import random
import re
import statistics
import sys
import tempfile
from argparse import Namespace
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from benchkit import apps
from benchkit.corpus import CORPUS, corpus_titles
from benchkit.report import banner, load_note
from benchkit.wrk import (
    SEED_WORDS,
    Result,
    Server,
    add_arguments,
    ensure_wrk,
    parse_subset,
    require_index,
    run_wrk,
    start_hello,
    start_service,
    start_stock_ceiling,
    start_stock_hello,
)
from searchsvc.config import HTTP_PROTOCOLS

SCENARIOS = ("feed_gzip", "feed_identity", "feed_304", "search_feed", "search_busy", "page_gzip", "page_304")
TARGET_CACHED = 0.25  # the feeds issue: of hello through our runner
TARGET_304 = 0.40
TARGET_SEARCH_P95_MS = 250.0
TARGET_STOCK_CACHED_GZIP = 0.30  # issue #14: of hello on stock uvicorn[standard]
TARGET_STOCK_304 = 0.40


@contextlib.contextmanager
def start_blob(args: argparse.Namespace, tmp: Path, plain: bytes, packed: bytes, media: str) -> Iterator[Server]:
    """The same-bytes ceiling (``benchkit.apps.blob_app``) serving ``plain`` and ``packed``, on
    stock uvicorn[standard]."""
    (tmp / "blob.plain").write_bytes(plain)
    (tmp / "blob.gz").write_bytes(packed)
    env = {apps.BLOB_PLAIN: str(tmp / "blob.plain"), apps.BLOB_GZIP: str(tmp / "blob.gz"), apps.BLOB_TYPE: media}
    with start_stock_ceiling("benchkit.apps:blob_app", args.workers, tmp, ready_path="/plain", env=env) as server:
        yield server


def pick_category(base: str, wanted: str | None) -> tuple[str, int]:
    categories = httpx.get(base + "/api/categories", timeout=60).json()["categories"]
    if not categories:
        sys.exit("the index has no categories: is it empty?")
    if wanted:
        match = next((c for c in categories if c["slug"] == wanted), None)
        if match is None:
            sys.exit(f"no category {wanted!r}; have: {', '.join(c['slug'] for c in categories)}")
        return match["slug"], match["count"]
    biggest = max(categories, key=lambda c: c["count"])
    return biggest["slug"], biggest["count"]


def search_queries(base: str, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct 1-3 word queries cut from real titles (the index's, then the corpus file's)."""
    titles: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for seed in ["", *SEED_WORDS]:
            body = http.get("/api/search", params={"q": seed, "per_page": 100}).json()
            titles += [hit["title"] for hit in body.get("hits", [])]
    titles += corpus_titles(max(n, 5000)) if CORPUS.is_file() else []
    words_of = [w for w in (re.findall(r"\w+", t.lower()) for t in titles) if w]
    if not words_of:
        sys.exit("no titles to build queries from")
    queries: dict[str, None] = {}
    attempts = 0
    while len(queries) < n and attempts < n * 50:
        attempts += 1
        words = rng.choice(words_of)
        start = rng.randrange(len(words))
        queries[" ".join(words[start : start + rng.randint(1, 3)])] = None
    return list(queries)


def run(wrk: str, url: str, paths: list[str], expect: int, args: argparse.Namespace, tmp: Path, name: str,
        gzip: bool = True, warmup: bool = True, connections: int | None = None,
        tab: bool = False) -> Result:  # fmt: skip
    settings = copy.copy(args)
    if not warmup:
        settings.warmup = 0
    if connections is not None:
        settings.connections = connections
        settings.threads = min(args.threads, connections)
    return run_wrk(wrk, url, paths, expect, settings, tmp, name, gzip=gzip, tab=tab)


@dataclass
class Series:
    """One scenario's runs, one per round."""

    runs: list[Result] = field(default_factory=list)

    @property
    def rps(self) -> float:
        seconds = sum(r.requests / r.rps for r in self.runs if r.rps)
        return sum(r.requests for r in self.runs) / seconds if seconds else 0.0

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, "seconds of load per scenario and per ceiling, over all rounds",
                  "seconds of unmeasured load per scenario, once")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved rounds (default 4): scenarios and ceilings alternate, so a busy "
                             "machine slows both alike")
    parser.add_argument("--search-connections", type=int, default=2,
                        help="connections for search_feed (default 2: one per worker)")
    parser.add_argument("--category", help="category slug for the cached feed (default: the largest)")
    parser.add_argument("--format", choices=("rss", "atom", "json"), default="rss")
    parser.add_argument("--limit", type=int, default=50, help="items per feed (default 50, the feeds' default)")
    parser.add_argument("--queries", type=int, default=4000,
                        help="distinct search-feed queries per search scenario (default 4000: more than a run sends)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="subset of: " + ", ".join(SCENARIOS))
    parser.add_argument("--http", choices=HTTP_PROTOCOLS, default="httptools",
                        help="the service's HTTP protocol (SEARCHSVC_HTTP), also our hello's (default httptools)")
    args = parser.parse_args(argv)
    scenarios = parse_subset(parser, args.scenarios, SCENARIOS)
    require_index(args.index_dir)
    rounds = max(1, args.rounds)
    per_run = max(2, round(args.duration / rounds))
    wrk = ensure_wrk()
    print(banner("bench_feeds"), flush=True)
    rng = random.Random(args.seed)
    series: dict[str, Series] = {}
    hello_rounds: list[float] = []
    stock_rounds: list[float] = []
    info: dict[str, object] = {}
    same = {"feed_gzip": ("bytes_gzip", "/gzip", True, 200), "feed_identity": ("bytes_identity", "/plain", False, 200),
            "feed_304": ("bytes_304", "/304", True, 304)}  # fmt: skip
    timed = copy.copy(args)
    timed.duration, timed.warmup = per_run, 0
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        server = stack.enter_context(start_service(args, tmp, {"SEARCHSVC_HTTP": args.http}))
        slug, count = pick_category(server.url, args.category)
        qs = "" if args.limit == 50 else f"?limit={args.limit}"
        feed = f"/feeds/{slug}.{args.format}{qs}"
        plain = httpx.get(server.url + feed, headers={"Accept-Encoding": "identity"}, timeout=120)
        with httpx.stream("GET", server.url + feed, headers={"Accept-Encoding": "gzip"}, timeout=120) as r:
            packed_raw = b"".join(r.iter_raw())
            packed_headers = r.headers
        if plain.status_code != 200 or packed_headers.get("content-encoding") != "gzip":
            sys.exit(f"{feed}: unexpected answer {plain.status_code} / {packed_headers}")
        media = plain.headers["content-type"]
        etag = packed_headers["etag"]
        tab = {"Sec-Fetch-Dest": "document", "Accept": "text/html", "Accept-Encoding": "gzip"}
        with httpx.stream("GET", server.url + feed, headers=tab, timeout=120) as r:
            page_bytes = len(b"".join(r.iter_raw()))
            page_headers = r.headers
        if not page_headers.get("content-type", "").startswith("text/html"):
            sys.exit(f"{feed}: a browser tab did not get the page: {page_headers}")
        page_etag = page_headers["etag"]
        info = {"feed": feed, "category_articles": count, "plain_bytes": len(plain.content),
                "gzip_bytes": len(packed_raw), "page_gzip_bytes": page_bytes, "rounds": rounds,
                "seconds_per_run": per_run, "http": args.http}  # fmt: skip
        hello = stack.enter_context(start_hello(args, tmp, args.http))
        stock = stack.enter_context(start_stock_hello(args, tmp))
        blob = stack.enter_context(start_blob(args, tmp, plain.content, packed_raw, media))

        # disjoint query sets (warm-up, then each search scenario and round): every measured
        # request is a first render, never a cache hit left by an earlier run
        per_set = max(1, args.queries // rounds)
        queries = search_queries(server.url, 200 + 2 * rounds * per_set, rng)
        info["search_queries"] = 2 * rounds * per_set

        def paths(chunk: list[str]) -> list[str]:
            return [f"/feeds/search.{args.format}?{urlencode({'q': q})}" for q in chunk]

        def search_set(name: str, round_no: int) -> list[str]:
            start = 200 + (SCENARIOS.index(name) - 3) * rounds * per_set + round_no * per_set
            return paths(queries[start : start + per_set])

        def scenario(name: str, round_no: int, seconds: Namespace) -> Result:
            if name == "feed_gzip":
                return run(wrk, server.url, [feed], 200, seconds, tmp, name, warmup=False)
            if name == "feed_identity":
                return run(wrk, server.url, [feed], 200, seconds, tmp, name, gzip=False, warmup=False)
            if name == "feed_304":
                return run(wrk, server.url, [f"{feed}\t{etag}"], 304, seconds, tmp, name, warmup=False)
            if name == "page_gzip":
                return run(wrk, server.url, [feed], 200, seconds, tmp, name, warmup=False, tab=True)
            if name == "page_304":
                return run(wrk, server.url, [f"{feed}\t{page_etag}"], 304, seconds, tmp, name, warmup=False, tab=True)
            connections = args.search_connections if name == "search_feed" else args.connections
            chunk = paths(queries[:200]) if round_no < 0 else search_set(name, round_no)
            return run(wrk, server.url, chunk, 200, seconds, tmp, name, warmup=False, connections=connections)

        if args.warmup > 0:
            print(f"  warm-up: {args.warmup}s per scenario...", file=sys.stderr)
            warm = copy.copy(args)
            warm.duration, warm.warmup = args.warmup, 0
            for name in scenarios:
                scenario(name, -1, warm)
        for round_no in range(rounds):
            print(f"  round {round_no + 1}/{rounds}: stock hello, {', '.join(scenarios)} (+ same-bytes ceilings), "
                  f"hello, stock hello, {per_run}s each...", file=sys.stderr)  # fmt: skip
            before = run(wrk, stock.url, ["/"], 200, timed, tmp, "stock hello", warmup=False)
            series.setdefault("stock hello", Series()).runs.append(before)
            for name in scenarios:
                series.setdefault(name, Series()).runs.append(scenario(name, round_no, timed))
                if name in same:
                    ref, path, gz, status = same[name]
                    series.setdefault(ref, Series()).runs.append(
                        run(wrk, blob.url, [path], status, timed, tmp, ref, gzip=gz, warmup=False))
            ours = run(wrk, hello.url, ["/"], 200, timed, tmp, "hello", warmup=False)
            series.setdefault("hello", Series()).runs.append(ours)
            hello_rounds.append(ours.rps)
            after = run(wrk, stock.url, ["/"], 200, timed, tmp, "stock hello", warmup=False)
            series["stock hello"].runs.append(after)
            stock_rounds.append((before.rps + after.rps) / 2)

    def share(name: str, of: list[float]) -> float:
        """Median over rounds of (this round's req/s) / (the reference's req/s in the same round)."""
        mine = [r.rps for r in series[name].runs]
        return statistics.median(a / b for a, b in zip(mine, of) if b)

    print(f"\nwrk -t{args.threads} -c{args.connections} (search_feed: -c{args.search_connections}), "
          f"{rounds} rounds x {per_run}s per scenario, uvicorn workers={args.workers}, index {args.index_dir}, "
          f"service and hello on {args.http}, wrk and the servers share the machine's cores; {load_note()} (end)")
    print(f"feed {info['feed']}: {info['plain_bytes']:,} bytes, {info['gzip_bytes']:,} gzipped "
          f"(its browser page: {info['page_gzip_bytes']:,} gzipped); "
          f"search feeds: a new query on every request ({info['search_queries']} distinct)")
    print("of stock: share of hello on stock uvicorn[standard] (httptools, uvloop); of hello: share of the same "
          "app through our runner; of same bytes: share of the feed's own bytes served by a bare app on stock "
          "uvicorn[standard]\n")  # fmt: skip
    header = (f"{'scenario':<15} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'of stock':>9} {'of hello':>9} {'of same bytes':>14}")  # fmt: skip
    print(header)
    print("-" * len(header))
    table: dict[str, dict[str, float | None]] = {}
    for name, s in series.items():
        of_stock = share(name, stock_rounds) if name != "stock hello" else 1.0
        of_hello = share(name, hello_rounds) if name not in ("hello", "stock hello") else None
        ref = same.get(name, ("",))[0]
        of_bytes = share(name, [r.rps for r in series[ref].runs]) if ref in series else None
        table[name] = {"rps": s.rps, "p50_ms": s.median("p50_ms"), "p95_ms": s.median("p95_ms"),
                       "p99_ms": s.median("p99_ms"), "errors": s.errors, "requests": s.requests,
                       "of_stock": of_stock, "of_hello": of_hello, "of_same_bytes": of_bytes}  # fmt: skip
        share_hello = f"{of_hello:>8.1%}" if of_hello is not None else f"{'':>8}"
        share_bytes = f"{of_bytes:>13.1%}" if of_bytes is not None else f"{'':>13}"
        print(f"{name:<15} {s.rps:>9.1f} {s.median('p50_ms'):>8.2f} {s.median('p95_ms'):>8.2f} "
              f"{s.median('p99_ms'):>8.2f} {s.errors:>7d} {of_stock:>8.1%} {share_hello} {share_bytes}")  # fmt: skip
    print("(req/s: all rounds together; latencies: median of the rounds; shares: median of per-round ratios)")

    def at_least(name: str, column: str, target: float) -> bool:
        value = table[name][column]
        return value is not None and value >= target

    checks = []
    if "feed_gzip" in table:
        checks.append((f"feed_gzip >= {TARGET_STOCK_CACHED_GZIP:.0%} of stock hello (issue #14)",
                       at_least("feed_gzip", "of_stock", TARGET_STOCK_CACHED_GZIP)))  # fmt: skip
    if "feed_304" in table:
        checks.append((f"feed_304 >= {TARGET_STOCK_304:.0%} of stock hello (issue #14)",
                       at_least("feed_304", "of_stock", TARGET_STOCK_304)))  # fmt: skip
    for name in ("feed_gzip", "feed_identity"):
        if name in table:
            checks.append((f"{name} >= {TARGET_CACHED:.0%} of hello (feeds issue)",
                           at_least(name, "of_hello", TARGET_CACHED)))  # fmt: skip
    if "feed_304" in table:
        checks.append((f"feed_304 >= {TARGET_304:.0%} of hello (feeds issue)",
                       at_least("feed_304", "of_hello", TARGET_304)))  # fmt: skip
    for name in ("search_feed", "search_busy"):
        if name in table:
            connections = args.search_connections if name == "search_feed" else args.connections
            p95 = table[name]["p95_ms"]
            checks.append((f"{name} p95 <= {TARGET_SEARCH_P95_MS:.0f} ms ({connections} connections)",
                           p95 is not None and p95 <= TARGET_SEARCH_P95_MS))  # fmt: skip
    print()
    for label, ok in checks:
        print(f"{'MET' if ok else 'MISSED':<7} {label}")
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: str(v) for k, v in vars(args).items()}, "info": info, "results": table,
            "runs": {k: [vars(r) for r in v.runs] for k, v in series.items()},
            "checks": {label: ok for label, ok in checks},
        }, indent=2), encoding="utf-8")  # fmt: skip
    return 1 if any(series[n].errors for n in scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
