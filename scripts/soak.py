#!/usr/bin/env python3
"""Soak test: the service under steady mixed load for minutes while the index is updated every few seconds.

What it does (everything on 127.0.0.1):

1. Copies the live generation of ``--index-dir`` (default ``var/bench-index``, the full corpus built
   by ``scripts/bench_index.py``) into a temporary directory, so the original is never touched; if
   there is no index there, builds one from the first ``--build-articles`` corpus articles.
2. Starts ``searchsvc serve --workers 2`` on it.
3. Runs ``--concurrency`` asyncio clients (httpx) for ``--duration`` seconds: searches (API and
   page; queries cut from real titles, with and without tone marks, some with filters, sorts and
   pages), suggestions, category and search feeds (RSS, Atom, JSON), article, category and home
   pages, and revalidations with ``If-None-Match`` (304 expected unless the answer changed; each is
   classified by comparing the answer with the copy being revalidated, and some 304s are checked).
4. Meanwhile runs ``searchsvc index`` every ``--index-every`` seconds with new articles (each with
   a unique marker word) and updates of existing ones, and measures the time from the indexer's
   exit (its commit) until the new article is found by ``/api/search?q=<marker>`` and listed in
   its category feed ``/feeds/{slug}.json`` (target: 5 s), and until an update is visible.
5. Samples RSS and open file descriptors of the master and of every worker each second (a
   searcher or file-handle leak shows as growth), and the peak RSS of every indexer run.

Every 30 s and at the end it prints: requests, errors (each one listed), 304s, p50/p95 per route
for the window, RSS and fds per process, commit-to-visible p50/max. Exits 1 if any request failed
(status other than 200/304, or an exception), if an article never became visible (60 s), if a
500 was logged, or if the server did not stop cleanly.

    .venv/bin/python scripts/soak.py                        # 10 minutes on a copy of var/bench-index
    .venv/bin/python scripts/soak.py --duration 60          # a short run
    .venv/bin/python scripts/soak.py --json var/soak.json   # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from benchkit.corpus import BENCH_INDEX, CORPUS, REPO_ROOT, corpus_records, write_jsonl
from benchkit.procinfo import children, cmdline, free_port, stop
from benchkit.report import banner, load_note, percentile
from index.analysis import fold

VISIBLE_TARGET = 5.0  # seconds from commit to visible
VISIBLE_GIVE_UP = 60.0
POLL_EVERY = 0.2
POLL_INFLIGHT = 4
REPORT_EVERY = 30.0
WEIGHTS = {  # route -> share of the client's requests
    "api_search": 24, "search_page": 10, "suggest": 14, "feed_category": 8, "feed_search": 5,
    "article": 10, "category": 7, "home": 3, "revalidate": 15, "api_article": 4,
}


# --- processes -------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def deleted_fds(pid: int) -> int:
    """Descriptors still open on files removed from disk (old segments): a searcher leak's mark."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(" (deleted)"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def worker_pids(master: int) -> list[int]:
    return sorted(c for c in children(master) if "spawn_main" in cmdline(c))


# --- the index ---------------------------------------------------------------------------------------


def copy_index(source: Path, target: Path) -> str:
    """Copy CURRENT and the live generation only (the kept previous one is not needed)."""
    live = (source / "CURRENT").read_text(encoding="ascii").strip()
    target.mkdir(parents=True)
    shutil.copytree(source / live, target / live)
    (target / "CURRENT").write_text(live + "\n", encoding="ascii")
    return live


def build_index(target: Path, articles: int, work: Path) -> str:
    if CORPUS.is_file():
        src = write_jsonl(work / "build.jsonl", corpus_records(articles))
        what = f"the first {articles} corpus articles"
    else:
        src = REPO_ROOT / "index" / "demo"
        what = "the demo articles (no corpus)"
    subprocess.run([sys.executable, "-m", "searchsvc", "index", str(src), "--index-dir", str(target), "--quiet"],
                   cwd=REPO_ROOT, check=True, env=child_env())
    return what


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


# --- measurements ----------------------------------------------------------------------------------


@dataclass
class Sample:
    end: float
    route: str
    latency: float
    status: int | None


@dataclass
class Visibility:
    marker: str
    committed: float
    search: float | None = None
    feed: float | None = None
    by_id: float | None = None


@dataclass
class State:
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_modified: int = 0
    # Revalidations by what happened: 304; 200 with the same answer as the copy being revalidated
    # (a validator that should have held); 200 with another answer (it had changed). A 304 is
    # checked now and then against a fresh copy: one that hid a change is counted as stale.
    revalidated: Counter = field(default_factory=Counter)
    visibility: list[Visibility] = field(default_factory=list)
    update_visible: list[float] = field(default_factory=list)
    index_runs: list[dict] = field(default_factory=list)
    procs: list[dict] = field(default_factory=list)  # samples of master/workers
    worker_changes: list[str] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, url), the 20 slowest
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def error(self, text: str) -> None:
        self.errors.append(f"{time.monotonic() - self.started:7.1f}s {text}")


# --- the corpus sample the clients draw from -----------------------------------------------------------


@dataclass
class Corpus:
    titles: list[str]
    ids: list[str]
    slugs: list[str]
    labels: dict[str, str]  # slug -> label
    articles: list[dict]  # full articles (for updates and bodies of new ones)


async def sample_corpus(client: httpx.AsyncClient, rng: random.Random, pages: int = 25) -> Corpus:
    categories = (await client.get("/api/categories")).json()["categories"]
    hits: dict[str, dict] = {}
    total = (await client.get("/api/search", params={"per_page": 1})).json()["total"]
    last_page = max(1, min(100, total // 100))
    for page in rng.sample(range(1, last_page + 1), min(pages, last_page)):
        data = (await client.get("/api/search", params={"per_page": 100, "page": page, "sort": "newest"})).json()
        hits.update({h["id"]: h for h in data["hits"]})
    ids = list(hits)
    articles = []
    for article_id in rng.sample(ids, min(60, len(ids))):
        response = await client.get("/api/articles/" + quote(article_id, safe=""))
        if response.status_code == 200:
            articles.append(response.json())
    return Corpus([h["title"] for h in hits.values()], ids, [c["slug"] for c in categories],
                  {c["slug"]: c["label"] for c in categories}, articles)


def make_query(rng: random.Random, corpus: Corpus) -> str:
    words = [w.strip(".,:;!?\"'()«»“”-") for w in rng.choice(corpus.titles).split()]
    words = [w for w in words if w]
    n = rng.choice((1, 2, 2, 3, 3, 4))
    start = rng.randrange(max(1, len(words) - n + 1))
    q = " ".join(words[start:start + n])
    return fold(q.lower()) if rng.random() < 0.5 else q  # half typed without tone marks


# --- clients ---------------------------------------------------------------------------------------


def answer_digest(response: httpx.Response) -> str:
    """What an answer says, for telling a changed answer from an unchanged one: its bytes, except
    a search's raw scores, which drift with the whole collection's statistics at every commit (the
    hits and their order are the answer; the service's validators are weak for that reason)."""
    body = response.content
    if response.headers.get("content-type", "").startswith("application/json") and b'"score"' in body:
        data = response.json()
        for hit in data.get("hits", []) if isinstance(data, dict) else []:
            hit.pop("score", None)
        body = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha1(body).hexdigest()


def next_request(rng: random.Random, corpus: Corpus, etags: OrderedDict) -> tuple[str, str, dict]:
    route = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    headers: dict[str, str] = {}
    if route == "revalidate" and etags:
        url = rng.choice(list(etags))
        headers["If-None-Match"] = etags[url][0]
        return route, url, headers
    if route == "revalidate":
        route = "api_search"
    q = make_query(rng, corpus)
    if route == "api_search":
        params = {"q": q}
        if rng.random() < 0.2:
            params["category"] = rng.choice(corpus.slugs)
        if rng.random() < 0.2:
            params["sort"] = rng.choice(["newest", "oldest", "views"])
        if rng.random() < 0.15:
            params["page"] = str(rng.randint(2, 5))
        url = "/api/search?" + str(httpx.QueryParams(params))
    elif route == "search_page":
        url = "/search?" + str(httpx.QueryParams({"q": q}))
    elif route == "suggest":
        title = fold(rng.choice(corpus.titles).lower()) if rng.random() < 0.5 else rng.choice(corpus.titles).lower()
        url = "/api/suggest?" + str(httpx.QueryParams({"q": title[: rng.randint(2, 12)]}))
    elif route == "feed_category":
        url = f"/feeds/{rng.choice(corpus.slugs)}.{rng.choice(['rss', 'atom', 'json'])}"
    elif route == "feed_search":
        url = f"/feeds/search.{rng.choice(['rss', 'atom', 'json'])}?" + str(httpx.QueryParams({"q": q}))
    elif route == "article":
        url = "/articles/" + quote(rng.choice(corpus.ids), safe="")
    elif route == "api_article":
        url = "/api/articles/" + quote(rng.choice(corpus.ids), safe="")
    elif route == "category":
        page = rng.choice([1, 1, 1, 2, 3, 10])
        url = f"/c/{rng.choice(corpus.slugs)}" + (f"?page={page}" if page > 1 else "")
    else:
        url = "/"
    return route, url, headers


async def classify_revalidation(client: httpx.AsyncClient, url: str, response: httpx.Response, held: str,
                                state: State, rng: random.Random) -> None:
    if response.status_code == 200:
        state.revalidated["200 unchanged" if answer_digest(response) == held else "200 changed"] += 1
        return
    state.revalidated["304"] += 1
    if rng.random() < 0.2:  # is the copy the client kept really current?
        fresh = await client.get(url)
        if fresh.status_code == 200 and answer_digest(fresh) != held:
            state.revalidated["304 stale"] += 1


async def client_loop(n: int, client: httpx.AsyncClient, corpus: Corpus, state: State, seed: int) -> None:
    rng = random.Random(seed * 1000 + n)
    etags: OrderedDict[str, tuple[str, str]] = OrderedDict()  # url -> (etag, answer digest)
    while not state.stop.is_set():
        route, url, headers = next_request(rng, corpus, etags)
        started = time.monotonic()
        status = None
        try:
            response = await client.get(url, headers=headers)
            status = response.status_code
            expected = (200, 304) if route == "revalidate" else (200,)
            if status not in expected:
                state.error(f"{route} {url[:120]} -> {status} {response.text[:160]!r}")
            elif status == 304:
                state.not_modified += 1
            etag = response.headers.get("etag")
            if route == "revalidate" and status in (200, 304) and url in etags:
                await classify_revalidation(client, url, response, etags[url][1], state, rng)
            if etag and status == 200:
                etags[url] = (etag, answer_digest(response))
                etags.move_to_end(url)
                while len(etags) > 300:
                    etags.popitem(last=False)
        except httpx.HTTPError as exc:
            state.error(f"{route} {url[:120]} -> {type(exc).__name__}: {exc}")
        latency = time.monotonic() - started
        state.samples.append(Sample(time.monotonic(), route, latency, status))
        if len(state.slowest) < 20 or latency > state.slowest[0][0]:
            heapq.heappush(state.slowest, (latency, url))
            if len(state.slowest) > 20:
                heapq.heappop(state.slowest)


# --- the indexer -------------------------------------------------------------------------------------


def new_article(rng: random.Random, corpus: Corpus, marker: str) -> dict:
    base = rng.choice(corpus.articles)
    slug = rng.choice(corpus.slugs)
    paragraphs = base.get("paragraphs") or base["body"].split("\n\n")
    return {
        "id": f"soak-{marker}",
        "title": f"Tin mới {marker}: {rng.choice(corpus.titles)}",
        "body": [f"Bài viết kiểm thử {marker} được thêm trong lúc chạy thử tải."] + paragraphs[:6],
        "category": corpus.labels[slug],
        "published": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": "Kiểm thử tải",
    }


async def sample_peak_rss(pid: int, done: asyncio.Event) -> float:
    peak = 0.0
    while not done.is_set():
        total = sum(r for p in [pid, *children(pid)] if (r := rss_mb(p)) is not None)
        peak = max(peak, total)
        await asyncio.sleep(0.05)
    return peak


async def first_success(check, committed: float) -> float | None:
    """Seconds from ``committed`` until ``check()`` (one request) first returns True.

    A new check starts every POLL_EVERY s (at most POLL_INFLIGHT at once) without waiting for the
    previous one: a search for a word the index does not know yet runs the typo tiers and can take
    seconds under load, and waiting for it would add its latency to the figure.
    """
    found: asyncio.Event = asyncio.Event()
    result: list[float] = []
    inflight: set[asyncio.Task] = set()

    async def one() -> None:
        try:
            if await check() and not found.is_set():
                result.append(time.monotonic() - committed)
                found.set()
        except (httpx.HTTPError, ValueError, KeyError):
            pass

    while not found.is_set() and time.monotonic() - committed < VISIBLE_GIVE_UP:
        if len(inflight) < POLL_INFLIGHT:
            task = asyncio.create_task(one())
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        try:
            await asyncio.wait_for(found.wait(), timeout=POLL_EVERY)
        except TimeoutError:
            pass
    for task in list(inflight):
        task.cancel()
    return result[0] if result else None


async def wait_visible(client: httpx.AsyncClient, vis: Visibility, slug: str, state: State) -> None:
    article_id = f"soak-{vis.marker}"

    async def by_search() -> bool:
        data = (await client.get("/api/search", params={"q": vis.marker})).json()
        return any(h["id"] == article_id for h in data.get("hits", []))

    async def in_feed() -> bool:
        items = (await client.get(f"/feeds/{slug}.json")).json().get("items", [])
        return any(vis.marker in item.get("title", "") for item in items)

    async def by_id() -> bool:
        return (await client.get("/api/articles/" + article_id)).status_code == 200

    vis.search, vis.feed, vis.by_id = await asyncio.gather(
        first_success(by_search, vis.committed), first_success(in_feed, vis.committed),
        first_success(by_id, vis.committed))
    if vis.search is None:
        state.error(f"article {vis.marker} not found by search {VISIBLE_GIVE_UP:.0f}s after its commit")
    if vis.feed is None:
        state.error(f"article {vis.marker} not in /feeds/{slug}.json {VISIBLE_GIVE_UP:.0f}s after its commit")


async def wait_updated(client: httpx.AsyncClient, article_id: str, title: str, committed: float,
                       state: State) -> None:
    while time.monotonic() - committed < VISIBLE_GIVE_UP:
        try:
            if (await client.get("/api/articles/" + quote(article_id, safe=""))).json().get("title") == title:
                state.update_visible.append(time.monotonic() - committed)
                return
        except (httpx.HTTPError, ValueError):
            pass
        await asyncio.sleep(0.1)
    state.error(f"update of {article_id} not visible {VISIBLE_GIVE_UP:.0f}s after its commit")


async def indexer_loop(args: argparse.Namespace, work: Path, index_dir: Path, client: httpx.AsyncClient,
                       corpus: Corpus, state: State) -> None:
    rng = random.Random(args.seed)
    pending: list[asyncio.Task] = []
    for run in itertools.count(1):
        tick = time.monotonic()
        if state.stop.is_set():
            break
        marker = f"soakmk{run}x{rng.randrange(10**6):06d}"
        article = new_article(rng, corpus, marker)
        slug = next(s for s, label in corpus.labels.items() if label == article["category"])
        updates = []
        for base in rng.sample(corpus.articles, min(args.updates, len(corpus.articles))):
            updated = {k: base[k] for k in ("id", "title", "category", "published", "source", "views",
                                            "category_path", "captions") if base.get(k) is not None}
            updated["body"] = base.get("paragraphs") or base["body"]
            if base.get("source_url"):
                updated["url"] = base["source_url"]
            updated["title"] = f"{base['title'].split(' [sửa ')[0]} [sửa {run}]"
            updates.append(updated)
        batch = work / f"batch-{run:04d}.jsonl"
        batch.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in [article, *updates]),
                         encoding="utf-8")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "searchsvc", "index", str(batch), "--index-dir", str(index_dir), "--quiet",
            "--wait", "120", cwd=REPO_ROOT, env=child_env(), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        done = asyncio.Event()
        peak_task = asyncio.create_task(sample_peak_rss(proc.pid, done))
        out, err = await proc.communicate()
        committed = time.monotonic()
        done.set()
        peak = await peak_task
        batch.unlink()
        record = {"run": run, "at": round(started - state.started, 1), "seconds": round(committed - started, 2),
                  "peak_rss_mb": round(peak, 1), "exit": proc.returncode,
                  "summary": out.decode(errors="replace").strip()[-200:]}
        state.index_runs.append(record)
        if proc.returncode != 0:
            state.error(f"searchsvc index run {run} exited {proc.returncode}: {err.decode(errors='replace')[-400:]}")
        else:
            vis = Visibility(marker, committed)
            state.visibility.append(vis)
            pending.append(asyncio.create_task(wait_visible(client, vis, slug, state)))
            if updates:
                pending.append(asyncio.create_task(
                    wait_updated(client, updates[0]["id"], updates[0]["title"], committed, state)))
            by_id = {u["id"]: u for u in updates}
            for a in corpus.articles:  # the next update of this article builds on the new title
                if a["id"] in by_id:
                    a["title"] = by_id[a["id"]]["title"]
        try:
            await asyncio.wait_for(state.stop.wait(), timeout=max(0.0, args.index_every - (time.monotonic() - tick)))
        except TimeoutError:
            pass
    if pending:
        await asyncio.wait(pending, timeout=VISIBLE_GIVE_UP + 5)


# --- monitoring and reports ---------------------------------------------------------------------------


async def monitor(master: int, state: State) -> None:
    known: list[int] | None = None
    while not state.stop.is_set():
        workers = worker_pids(master)
        if known is not None and workers != known:
            state.worker_changes.append(f"{time.monotonic() - state.started:.0f}s: workers {known} -> {workers}")
        known = workers
        row = {"t": round(time.monotonic() - state.started, 1), "load1": round(os.getloadavg()[0], 2)}
        for name, pid in [("master", master)] + [(f"worker{i + 1}", p) for i, p in enumerate(workers)]:
            row[name] = {"pid": pid, "rss_mb": round(rss_mb(pid) or 0, 1), "fds": fd_count(pid),
                         "deleted_fds": deleted_fds(pid)}
        state.procs.append(row)
        try:
            await asyncio.wait_for(state.stop.wait(), timeout=1.0)
        except TimeoutError:
            pass


def route_table(samples: list[Sample]) -> list[str]:
    by_route: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        by_route[s.route].append(s.latency * 1000)
    lines = [f"    {'route':14} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"]
    for route in WEIGHTS:
        values = by_route.get(route)
        if values:
            p50, p95 = percentile(values, 50), percentile(values, 95)
            lines.append(f"    {route:14} {len(values):7d} {p50:8.1f} {p95:8.1f} {max(values):8.1f}")
    return lines


def vis_line(state: State) -> str:
    search = [v.search for v in state.visibility if v.search is not None]
    feed = [v.feed for v in state.visibility if v.feed is not None]
    by_id = [v.by_id for v in state.visibility if v.by_id is not None]
    upd = state.update_visible

    def fmt(values: list[float]) -> str:
        if not values:
            return "n=0"
        over = sum(v > VISIBLE_TARGET for v in values)
        p50 = percentile(values, 50)
        return f"p50 {p50:.2f}s max {max(values):.2f}s (n={len(values)}, over {VISIBLE_TARGET:.0f}s: {over})"

    return (f"commit->visible: search {fmt(search)}; category feed {fmt(feed)}; by id {fmt(by_id)}; "
            f"update {fmt(upd)}")


def proc_line(row: dict) -> str:
    parts = []
    for name, v in row.items():
        if name in ("t", "load1"):
            continue
        parts.append(f"{name}[{v['pid']}] {v['rss_mb']:.0f} MB {v['fds']} fds"
                     + (f" ({v['deleted_fds']} deleted)" if v["deleted_fds"] else ""))
    return ", ".join(parts)


def window_report(state: State, t0: float, t1: float) -> None:
    window = [s for s in state.samples if t0 <= s.end - state.started < t1]
    total = len(state.samples)
    runs = [r for r in state.index_runs if t0 <= r["at"] < t1]
    print(f"[{t1:6.0f}s] window: {len(window)} requests ({len(window) / max(t1 - t0, 1e-9):.0f}/s); total "
          f"{total}, errors {len(state.errors)}, 304s {state.not_modified}; index runs {len(state.index_runs)}"
          + (f" (this window {len(runs)}, {statistics.mean(r['seconds'] for r in runs):.1f}s avg, peak RSS "
             f"{max(r['peak_rss_mb'] for r in runs):.0f} MB)" if runs else ""), flush=True)
    for line in route_table(window):
        print(line)
    if state.procs:
        print("    processes: " + proc_line(state.procs[-1]) + f"; load average {state.procs[-1]['load1']}")
    print("    " + vis_line(state), flush=True)
    for e in state.errors[-5:]:
        print("    error: " + e)


def process_summary(state: State) -> list[str]:
    lines = []
    names = sorted({k for row in state.procs for k in row if k not in ("t", "load1")})
    for name in names:
        rows = [(row["t"], row[name]) for row in state.procs if name in row]
        pids = sorted({v["pid"] for _, v in rows})
        rss = [v["rss_mb"] for _, v in rows]
        fds = [v["fds"] for _, v in rows if v["fds"] is not None]
        deleted = [v["deleted_fds"] for _, v in rows]
        third = max(1, len(rows) // 3)
        lines.append(
            f"    {name} (pid {', '.join(map(str, pids))}): RSS start {rss[0]:.0f} MB, min {min(rss):.0f}, "
            f"max {max(rss):.0f}, end {rss[-1]:.0f}; mean of first/last third {statistics.mean(rss[:third]):.0f}"
            f"/{statistics.mean(rss[-third:]):.0f} MB; fds start {fds[0]}, max {max(fds)}, end {fds[-1]} "
            f"(first/last third max {max(fds[:third])}/{max(fds[-third:])}); deleted-file fds max {max(deleted)}")
        every = max(1, len(rows) // 10)
        lines.append("      over time (s: MB/fds): " + ", ".join(
            f"{t:.0f}: {v['rss_mb']:.0f}/{v['fds']}" for t, v in rows[::every]))
    return lines


def revalidation_line(state: State) -> str:
    r = state.revalidated
    unchanged = r["304"] + r["200 unchanged"]
    share = f"{r['304'] / unchanged:.1%}" if unchanged else "-"
    return (f"revalidations: {sum(r[k] for k in ('304', '200 unchanged', '200 changed'))}; answered 304 when the "
            f"answer had not changed: {share} ({r['304']} of {unchanged}); 200 with a changed answer "
            f"{r['200 changed']}; 304s checked and found stale: {r['304 stale']}")


def p50_max(seconds: list[float]) -> dict[str, float] | None:
    """A commit-to-visible series for the JSON figures (None when there is none)."""
    if not seconds:
        return None
    return {"p50": round(percentile(seconds, 50), 2), "max": round(max(seconds), 2), "n": len(seconds)}


def final_report(state: State, elapsed: float, args: argparse.Namespace, setup: dict) -> dict:
    print("\n=== soak summary ===")
    print(f"index: {setup['index']}; {setup['articles']} articles; server: 2 workers; clients: "
          f"{args.concurrency} concurrent; duration {elapsed:.0f}s; "
          + ("no indexing" if args.no_index else
             f"indexing every {args.index_every}s (1 new + {args.updates} updated articles a run)"))
    ok = [s for s in state.samples if s.status in (200, 304)]
    print(f"requests: {len(state.samples)} ({len(state.samples) / elapsed:.0f}/s), answered {len(ok)}, "
          f"errors {len(state.errors)}, 304s {state.not_modified}")
    for line in route_table(state.samples):
        print(line)
    print(revalidation_line(state))
    print("p95 per 30 s window (ms):")
    windows = int(elapsed // REPORT_EVERY) + 1
    routes = [r for r in WEIGHTS if any(s.route == r for s in state.samples)]
    print("    " + f"{'window':>8} " + " ".join(f"{r[:12]:>12}" for r in routes))
    for w in range(windows):
        t0, t1 = w * REPORT_EVERY, (w + 1) * REPORT_EVERY
        win = [s for s in state.samples if t0 <= s.end - state.started < t1]
        if not win:
            continue
        cells = []
        for r in routes:
            values = [s.latency * 1000 for s in win if s.route == r]
            cells.append(f"{percentile(values, 95):12.0f}" if values else f"{'-':>12}")
        print("    " + f"{t1:7.0f}s " + " ".join(cells))
    loads = [row["load1"] for row in state.procs]
    if loads:
        print(f"machine load average (1 min, {os.cpu_count()} cores): mean {statistics.mean(loads):.1f}, "
              f"max {max(loads):.1f} (the server, the clients, the indexer and anything else running); "
              f"{load_note()} (end)")
    print("processes (sampled every second):")
    for line in process_summary(state):
        print(line)
    if state.worker_changes:
        print("worker changes: " + "; ".join(state.worker_changes))
    runs = state.index_runs
    if runs:
        print(f"indexer: {len(runs)} runs, {statistics.mean(r['seconds'] for r in runs):.2f}s mean, "
              f"{max(r['seconds'] for r in runs):.2f}s max, "
              f"peak RSS {statistics.mean(r['peak_rss_mb'] for r in runs):.0f} MB mean / "
              f"{max(r['peak_rss_mb'] for r in runs):.0f} MB max, failed {sum(r['exit'] != 0 for r in runs)}")
    print(vis_line(state))
    print("slowest requests: " + "; ".join(f"{t:.1f}s {u[:90]}" for t, u in sorted(state.slowest, reverse=True)[:10]))
    if state.errors:
        kinds = Counter(e.split("->")[-1].strip()[:60] for e in state.errors)
        print(f"ERRORS ({len(state.errors)}): " + "; ".join(f"{k} x{n}" for k, n in kinds.most_common(10)))
        for e in state.errors[:50]:
            print("  " + e)
    else:
        print("errors: none")
    search = [v.search for v in state.visibility if v.search is not None]
    feed = [v.feed for v in state.visibility if v.feed is not None]
    ids = [v.by_id for v in state.visibility if v.by_id is not None]
    by_route: dict[str, list[float]] = defaultdict(list)
    for s in state.samples:
        by_route[s.route].append(s.latency * 1000)
    return {
        "setup": setup, "duration_s": round(elapsed, 1), "concurrency": args.concurrency,
        "index_every_s": args.index_every, "requests": len(state.samples), "errors": state.errors,
        "not_modified": state.not_modified, "revalidated": dict(state.revalidated),
        "routes": {r: {"n": len(v), "p50_ms": round(percentile(v, 50), 1), "p95_ms": round(percentile(v, 95), 1),
                       "p99_ms": round(percentile(v, 99), 1), "max_ms": round(max(v), 1)} for r, v in by_route.items()},
        "visible_search_s": p50_max(search),
        "visible_feed_s": p50_max(feed),
        "visible_by_id_s": p50_max(ids),
        "visible_update_s": p50_max(state.update_visible),
        "index_runs": runs, "processes": state.procs[:: max(1, len(state.procs) // 120)],
        "worker_changes": state.worker_changes,
        "slowest": [(round(t, 2), u) for t, u in sorted(state.slowest, reverse=True)],
    }


# --- main ------------------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace, work: Path, index_dir: Path, url: str, master: int,
               setup: dict) -> tuple[dict, State]:
    state = State()
    limits = httpx.Limits(max_connections=args.concurrency + 8, max_keepalive_connections=args.concurrency + 8)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client, \
            httpx.AsyncClient(base_url=url, timeout=30.0) as prober:
        corpus = await sample_corpus(client, random.Random(args.seed))
        setup["articles"] = (await client.get("/readyz")).json()["articles"]
        print(f"sampled {len(corpus.titles)} titles, {len(corpus.slugs)} categories, {len(corpus.articles)} full "
              f"articles; {setup['articles']} articles in the index", flush=True)
        state.started = time.monotonic()
        tasks = [asyncio.create_task(client_loop(n, client, corpus, state, args.seed)) for n in range(args.concurrency)]
        tasks.append(asyncio.create_task(monitor(master, state)))
        indexer = None if args.no_index else asyncio.create_task(
            indexer_loop(args, work, index_dir, prober, corpus, state))
        last = 0.0
        while (elapsed := time.monotonic() - state.started) < args.duration:
            await asyncio.sleep(min(1.0, args.duration - elapsed))
            now = time.monotonic() - state.started
            if now - last >= REPORT_EVERY or now >= args.duration:
                window_report(state, last, now)
                last = now
        state.stop.set()
        await asyncio.gather(*tasks)
        if indexer is not None:
            await indexer  # waits for the last visibility checks
        elapsed = time.monotonic() - state.started
        return final_report(state, elapsed, args, setup), state


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", type=Path, default=BENCH_INDEX,
                    help="index to copy (default var/bench-index); built when absent")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600, at most 3600)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--index-every", type=float, default=5.0, help="seconds between indexer runs (default 5)")
    ap.add_argument("--no-index", action="store_true", help="no indexer runs (a baseline for the same load)")
    ap.add_argument("--updates", type=int, default=3, help="existing articles updated by each indexer run")
    ap.add_argument("--build-articles", type=int, default=5000, help="corpus articles to index when building")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                    help="a SEARCHSVC_* setting for the server (repeatable), e.g. SEARCHSVC_ENGINE_THREADS=1")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (index copy, server log)")
    args = ap.parse_args(argv)
    args.duration = max(5.0, min(args.duration, 3600.0))
    print(banner("soak"), flush=True)

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    index_dir = work / "index"
    setup: dict = {}
    started = time.monotonic()
    if (args.index_dir / "CURRENT").exists():
        live = copy_index(args.index_dir, index_dir)
        setup["index"] = f"copy of {args.index_dir} ({live})"
    else:
        setup["index"] = "built from " + build_index(index_dir, args.build_articles, work)
    print(f"work dir {work}; index ready in {time.monotonic() - started:.0f}s: {setup['index']}", flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "searchsvc", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--base-url", url, "--timeout-graceful-shutdown", "10"],
        cwd=REPO_ROOT, env=child_env(**dict(kv.split("=", 1) for kv in args.server_env)), stdout=log,
        stderr=subprocess.STDOUT)
    failures: list[str] = []
    result: dict = {}
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=5).status_code == 200 and \
                        log_path.read_text(errors="replace").count("Application startup complete") >= args.workers:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server not ready within 180 s")
            time.sleep(0.5)
        print(f"server ready in {time.monotonic() - started:.0f}s at {url} (master pid {server.pid}, workers "
              f"{worker_pids(server.pid)})", flush=True)
        result, state = asyncio.run(soak(args, work, index_dir, url, server.pid, setup))
        if state.errors:
            failures.append(f"{len(state.errors)} errors")
    finally:
        if not stop(server):
            failures.append("the server did not stop within 30 s of SIGTERM")
        log.close()
    text = log_path.read_text(errors="replace")
    if server.returncode != 0:
        failures.append(f"the server exited with {server.returncode} after SIGTERM")
    if "unhandled error" in text or "Traceback" in text:
        failures.append("the server logged an unhandled error (see its log)")
        print(text[text.find("unhandled error") - 200:][:3000] if "unhandled error" in text else text[-3000:])
    result["server_exit"] = server.returncode
    result["failures"] = failures
    saved_log = REPO_ROOT / "var" / "soak-server.log"
    saved_log.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log_path, saved_log)
    print(f"server stopped: exit {server.returncode}; its log ({len(text.splitlines())} lines) copied to {saved_log}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"figures written to {args.json}")
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT: " + ("FAIL: " + "; ".join(failures) if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
