#!/usr/bin/env python3
"""Kill Typesense nodes under load: a 3-node cluster, ``searchsvc serve`` on it, readers and a writer.

Issue #13, "Faults": the cluster engine must keep answering readers while nodes die, resume writes
after a re-election, and lose nothing it acknowledged. Everything here is a real process on
127.0.0.1: a 3-node ``searchsvc.devcluster`` (Typesense 0.24.1) in a temporary folder, and
``searchsvc serve --workers 2`` with ``SEARCHSVC_ENGINE=typesense`` and no local index (its
folder holds only the journal, the keys and the applier's status; the applier runs beside the
workers and writes to the cluster).

1. Indexes ``--seed-articles`` articles (the shared corpus's first ones, generated ones without
   it) with ``searchsvc index --engine typesense``, waits until every node holds them, then starts
   the service and waits until it is ready (its workers open and warm the engine first).
2. Starts the load: ``--readers`` threads, each one request after the other: searches of queries
   no earlier request asked, article pages and the JSON API by id, the category feed, a category's
   newest articles. The response cache is off (``SEARCHSVC_RESPONSE_CACHE_MB=0``) and so is rate
   limiting (the readers share one address). Every search reaches the cluster; an article lookup
   and a feed render are kept per generation (the engine's article cache, the feed cache), so they
   reach it again after each commit: once a second while writes flow, not while writes pause. A
   writer POSTs one new article a second to ``/api/admin/articles`` and records each 202 (id,
   journal seq, time).
3. ``--rounds`` times: SIGKILL the leader; wait until another node leads and a write acknowledged
   after the kill is served; ``--follower-delay`` s later SIGKILL a follower (two of three nodes
   are down: no quorum); ``--down-hold`` s later start both again; wait until there is a leader
   and all 3 nodes are healthy; ``--steady`` s of undisturbed load.
4. Stops the load, waits until the applier applied every acknowledged entry, and asks every node
   directly (its own API port, not through the service) for its document count and ids.

Figures and their definitions:

* reader failures: any answer other than 2xx/304, or no answer (connection error, 30 s timeout);
  each one is listed with its status, body and request id (the server log has the same id).
* reader latency by phase (a request belongs to the phase in which it started): *steady* (no node
  down), *electing* (leader killed, no new leader yet), *one down* (new leader, old one dead),
  *two down* (a follower killed too), *rejoining* (both restarted, cluster not ready yet).
* write pause after a kill: from the kill until the first write acknowledged *after* the kill is
  (a) applied: ``GET /api/admin/status`` shows ``last_applied_seq`` at or past its seq (polled
  every 0.2 s), and (b) visible: ``GET /api/articles/{id}`` answers 200 (polled every 0.2 s). The
  same two delays measured from the 202 in steady state (writes acknowledged with no node down
  then nor in the next 5 s, and flowing again after the last restart) are the baseline; the
  pause is what a publisher sees.
* convergence: every node's ``num_documents`` equal, every acknowledged id on every node, no id
  that was never acknowledged.

Why ``--down-hold`` is short by default: with two of three nodes down the survivor has no quorum;
Typesense 0.24.1 keeps answering reads on it until it steps down (6.5 to 9 s after the second
kill, measured here) and then answers every read ``503 Not Ready or Lagging``, as do the restarted
nodes until a leader is elected again. No client can read through that (a 3-node cluster survives
one node down, not two); ``--down-hold 12`` shows it: every read failed for about 10 s.

Usage: scripts/fault_cluster.py [--rounds 10] [--readers 4] [--seed-articles 300] [--keep]
Prints one line per round and the figures; exits 1 if a reader request failed, an acknowledged
article is missing on a node, the nodes disagree, or a wait timed out. ``--json PATH`` also
writes the figures as JSON (the test reads them).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

import httpx

from benchkit.corpus import CORPUS, REPO_ROOT, corpus_articles, write_jsonl
from benchkit.procinfo import free_port
from benchkit.report import banner, load_note, percentile
from index.analysis import fold
from searchsvc.devcluster import ClusterError, DevCluster

PREFIX = "faults"  # collection prefix in the cluster
NODES = 3
SERVICE_START_TIMEOUT = 60.0
SEED_TIMEOUT = 180.0  # seconds for the seed articles to be indexed and on every node
ELECTION_TIMEOUT = 60.0  # for another node to lead after the leader is killed
RESUME_TIMEOUT = 60.0  # for a write acknowledged after the kill to be served
READY_TIMEOUT = 90.0  # for the restarted cluster: a leader, every node healthy
APPLY_TIMEOUT = 120.0  # at the end, for the applier to apply every acknowledged entry
CONVERGE_TIMEOUT = 60.0  # at the end, for every node to hold the same documents
READ_TIMEOUT = 30.0  # per reader request: longer is a failure
POLL = 0.2
SETTLED = 5.0  # seconds a written article has been served before readers ask for it (the 5 s promise)
WRITE_EVERY = 1.0
ROUTES = {  # route -> share of the readers' requests
    "api_search": 35, "search_page": 10, "api_article": 15, "article_page": 10, "feed_category": 15,
    "category_newest": 15,
}
_PR_SET_PDEATHSIG = 1


# --- what is recorded ------------------------------------------------------------------------------


@dataclass
class Sample:
    start: float
    latency: float
    route: str
    ok: bool


@dataclass
class Failure:
    at: float  # seconds since the load started
    phase: str
    route: str
    url: str
    status: int | None
    detail: str
    request_id: str | None


@dataclass
class Ack:
    article_id: str
    seq: int
    acked: float
    applied: float | None = None
    visible: float | None = None


@dataclass
class Round:
    number: int
    leader: int
    killed_leader: float
    elected: float | None = None
    new_leader: int | None = None
    follower: int | None = None
    killed_follower: float | None = None
    restarted: float | None = None
    ready: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Recorder:
    """Everything the threads observe, appended under one lock; times are ``time.monotonic()``."""

    samples: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    write_failures: list[str] = field(default_factory=list)
    applied: list[tuple[float, int]] = field(default_factory=list)  # (time, last_applied_seq) at each change
    poll_errors: int = 0
    # Written articles the readers may ask for: (id, when the service first served it).
    visible_ids: list[tuple[str, float]] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def phase(self, t: float) -> str:
        for r in self.rounds:
            if t < r.killed_leader:
                continue
            if r.elected is None or t < r.elected:
                return "electing"
            if r.killed_follower is None or t < r.killed_follower:
                return "one down"
            if r.restarted is None or t < r.restarted:
                return "two down"
            if r.ready is None or t < r.ready:
                return "rejoining"
        return "steady"

    def applied_seq(self) -> int:
        with self.lock:
            return self.applied[-1][1] if self.applied else 0


# --- processes -------------------------------------------------------------------------------------


def _term_with_parent() -> None:
    """In the service's child, before exec: SIGTERM (a graceful stop) when this script dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


class Service:
    """``searchsvc serve`` on the cluster, its output in ``log_path``."""

    def __init__(self, state_dir: Path, log_path: Path, workers: int, env: dict[str, str]) -> None:
        self.state_dir = state_dir
        self.log_path = log_path
        self.workers = workers
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "searchsvc", "serve", "--index-dir", str(self.state_dir),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                 "--base-url", self.url, "--timeout-graceful-shutdown", "10"],
                cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_term_with_parent)  # fmt: skip
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not answer /healthz in {SERVICE_START_TIMEOUT:.0f} s:\n"
                                   + self.log_tail())
            time.sleep(POLL)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status (None if it never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""


def create_ingest_key(state_dir: Path, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "searchsvc", "keys", "create", "faults", "--scope", "ingest",
                          "--index-dir", str(state_dir)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1].strip()


def wait_for(probe: Callable[[], bool], timeout: float, every: float = POLL) -> float | None:
    """Seconds until ``probe()`` is true, or None after ``timeout``."""
    started = time.monotonic()
    while True:
        if probe():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(every)


# --- load ------------------------------------------------------------------------------------------


class Queries:
    """Queries cut from the seed titles, each handed out once (with or without tone marks)."""

    def __init__(self, titles: list[str]) -> None:
        self.titles = [[w.strip(".,:;!?\"'()«»“”-") for w in t.split()] for t in titles]
        self.titles = [[w for w in words if w] for words in self.titles if words]
        self.used: set[str] = set()
        self.lock = threading.Lock()

    def next(self, rng: random.Random) -> str:
        q = ""
        for attempt in range(50):
            words = rng.choice(self.titles)
            n = rng.choice((1, 2, 2, 3, 3, 4)) + attempt // 10
            start = rng.randrange(max(1, len(words) - n + 1))
            q = " ".join(words[start:start + n]).lower()
            if rng.random() < 0.5:
                q = fold(q)
            with self.lock:
                if q not in self.used:
                    self.used.add(q)
                    return q
        with self.lock:  # 50 repeats: make it new with a word of another title
            q = f"{q} {rng.choice(rng.choice(self.titles)).lower()} {len(self.used)}"
            self.used.add(q)
        return q


def reader(n: int, url: str, rec: Recorder, queries: Queries, seed_ids: list[str], slugs: list[str],
           stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed * 1000 + n)
    routes, weights = list(ROUTES), list(ROUTES.values())
    with httpx.Client(base_url=url, timeout=READ_TIMEOUT, headers={"Cache-Control": "no-cache"}) as http:
        while not stop.is_set():
            route = rng.choices(routes, weights=weights)[0]
            with rec.lock:  # served for SETTLED s: every worker has moved to a generation that holds it
                written = [i for i, seen in rec.visible_ids[-200:] if seen < time.monotonic() - SETTLED]
            article_id = rng.choice(written) if written and rng.random() < 0.3 else rng.choice(seed_ids)
            slug = rng.choice(slugs)
            if route == "api_search":
                target = "/api/search?" + str(httpx.QueryParams({"q": queries.next(rng)}))
            elif route == "search_page":
                target = "/search?" + str(httpx.QueryParams({"q": queries.next(rng)}))
            elif route == "api_article":
                target = "/api/articles/" + quote(article_id, safe="")
            elif route == "article_page":
                target = "/articles/" + quote(article_id, safe="")
            elif route == "feed_category":
                target = f"/feeds/{slug}.json"
            else:
                target = "/api/search?" + str(httpx.QueryParams({"category": slug, "sort": "newest",
                                                                  "page": rng.randint(1, 3)}))
            started = time.monotonic()
            status: int | None = None
            detail = ""
            request_id = None
            try:
                response = http.get(target)
                status = response.status_code
                request_id = response.headers.get("x-request-id")
                ok = 200 <= status < 300 or status == 304
                if not ok:
                    detail = response.text[:400]
            except httpx.HTTPError as exc:
                ok = False
                detail = f"{type(exc).__name__}: {exc}"
            latency = time.monotonic() - started
            with rec.lock:
                rec.samples.append(Sample(started, latency, route, ok))
                if not ok:
                    rec.failures.append(Failure(started - rec.started, rec.phase(started), route, target, status,
                                                detail, request_id))


def writer(url: str, headers: dict[str, str], rec: Recorder, pool: list[dict[str, Any]], stop: threading.Event
           ) -> None:
    """One new article every WRITE_EVERY seconds (on a fixed schedule, whatever an answer takes)."""
    with httpx.Client(base_url=url, timeout=15, headers=headers) as http:
        tick = time.monotonic()
        for n, record in enumerate(pool, start=1):
            if stop.is_set():
                return
            article = {**record, "id": f"fault-w{n:05d}", "title": f"{record['title']} (bản tin {n})",
                       "published": datetime.now(UTC).isoformat(timespec="seconds")}
            try:
                response = http.post("/api/admin/articles", json=article)
                if response.status_code == 202:
                    with rec.lock:
                        rec.acks.append(Ack(article["id"], int(response.json()["seq"]), time.monotonic()))
                else:
                    rec.write_failures.append(f"{article['id']}: {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                rec.write_failures.append(f"{article['id']}: {type(exc).__name__}: {exc}")
            tick += WRITE_EVERY
            stop.wait(max(0.0, tick - time.monotonic()))


def applied_poller(url: str, headers: dict[str, str], rec: Recorder, stop: threading.Event) -> None:
    """``last_applied_seq`` every POLL seconds; marks each acknowledged write applied."""
    with httpx.Client(base_url=url, timeout=10, headers=headers) as http:
        while not stop.is_set():
            try:
                seq = int(http.get("/api/admin/status").json()["last_applied_seq"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                rec.poll_errors += 1
                seq = None
            now = time.monotonic()
            if seq is not None:
                with rec.lock:
                    if not rec.applied or rec.applied[-1][1] != seq:
                        rec.applied.append((now, seq))
                    for ack in rec.acks:
                        if ack.applied is None and ack.seq <= seq:
                            ack.applied = now
            stop.wait(POLL)


def visibility_poller(url: str, rec: Recorder, stop: threading.Event) -> None:
    """Asks the service for the oldest acknowledged article not yet seen, until it answers 200,
    then for the next (the applier applies in journal order)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            with rec.lock:
                pending = [a for a in rec.acks if a.visible is None]
            for ack in pending:
                try:
                    found = http.get("/api/articles/" + quote(ack.article_id, safe="")).status_code == 200
                except httpx.HTTPError:
                    found = False
                if not found:
                    break
                with rec.lock:
                    ack.visible = time.monotonic()
                    rec.visible_ids.append((ack.article_id, ack.visible))
            stop.wait(POLL)


# --- the cluster, seen from outside the service ----------------------------------------------------


def node_ids(cluster: DevCluster, node: int, alias: str) -> tuple[int | None, set[str] | None, str]:
    """(num_documents, ids, error) of the articles collection, asked of ``node`` alone."""
    try:
        status, body = cluster.request(node, "GET", f"/aliases/{alias}", timeout=10)
        if status != 200 or not isinstance(body, dict):
            return None, None, f"alias: {status} {str(body)[:120]}"
        name = str(body["collection_name"])
        status, body = cluster.request(node, "GET", f"/collections/{name}", timeout=10)
        if status != 200 or not isinstance(body, dict):
            return None, None, f"collection: {status} {str(body)[:120]}"
        count = int(body["num_documents"])
        status, body = cluster.request(node, "GET", f"/collections/{name}/documents/export?include_fields=id",
                                       timeout=30)
        if status != 200:
            return count, None, f"export: {status} {str(body)[:120]}"
        lines = [body] if isinstance(body, dict) else str(body).splitlines()
        ids = {str((line if isinstance(line, dict) else json.loads(line))["id"]) for line in lines if line}
        return count, ids, ""
    except (OSError, ValueError, KeyError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"


# --- figures ---------------------------------------------------------------------------------------


def ms(values: list[float]) -> dict[str, float | int]:
    return {"requests": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1) if values else 0.0,
            "p95_ms": round(percentile(values, 95) * 1000, 1) if values else 0.0,
            "max_ms": round(max(values) * 1000, 1) if values else 0.0}


def seconds(values: list[float]) -> str:
    if not values:
        return "none"
    return f"p50 {percentile(values, 50):.1f} s, max {max(values):.1f} s (n={len(values)})"


def first_after(rec: Recorder, t: float) -> Ack | None:
    """The first write acknowledged after ``t``."""
    return next((a for a in rec.acks if a.acked >= t), None)


def pause(rec: Recorder, t: float | None) -> tuple[float | None, float | None]:
    """(applied, visible) seconds from ``t`` for the first write acknowledged after ``t``."""
    if t is None:
        return None, None
    ack = first_after(rec, t)
    if ack is None:
        return None, None
    return (None if ack.applied is None else ack.applied - t), (None if ack.visible is None else ack.visible - t)


def steady_write(rec: Recorder, rounds: list[Round], ack: Ack) -> bool:
    """Whether ``ack`` was acknowledged in steady state: no node down then nor in the next
    ``SETTLED`` seconds, and writes flowing again after the last restart (the first write
    acknowledged after it was served before this one)."""
    if rec.phase(ack.acked) != "steady" or any(0 <= r.killed_leader - ack.acked < SETTLED for r in rounds):
        return False
    before = [r for r in rounds if r.restarted is not None and r.restarted <= ack.acked]
    if not before:
        return True
    first = first_after(rec, before[-1].restarted or 0.0)
    return first is not None and first.visible is not None and first.visible <= ack.acked


def fmt(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


# --- the run ---------------------------------------------------------------------------------------


class Interrupted(Exception):
    """SIGTERM: stop like Ctrl-C (everything started is stopped)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--readers", type=int, default=4, help="reader threads (default 4)")
    ap.add_argument("--seed-articles", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2, help="service workers (default 2)")
    ap.add_argument("--follower-delay", type=float, default=3.0,
                    help="seconds between writes resuming after the leader kill and the follower kill (3)")
    ap.add_argument("--down-hold", type=float, default=2.0,
                    help="seconds with two nodes down before both are restarted (2)")
    ap.add_argument("--steady", type=float, default=5.0, help="seconds of undisturbed load before each round (5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--synthetic", action="store_true", help="generated articles instead of the corpus")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (cluster data, logs)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.rounds < 0 or args.readers < 1 or args.seed_articles < 1 or args.workers < 1:
        ap.error("--rounds >= 0, --readers, --seed-articles and --workers >= 1")

    print(banner("fault_cluster"), flush=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C even when started with SIGINT ignored (&)
    work = Path(tempfile.mkdtemp(prefix="fault-cluster-"))
    state_dir = work / "state"
    cluster = DevCluster(work / "cluster")
    service: Service | None = None
    stop_load = threading.Event()
    stop_polls = threading.Event()
    threads: list[threading.Thread] = []
    rec = Recorder()
    problems: list[str] = []
    result: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    try:
        began = time.monotonic()
        cluster.start(nodes=NODES)
        print(f"work dir {work}\ncluster: {NODES} nodes ready in {time.monotonic() - began:.1f} s "
              f"(Typesense 0.24.1; {', '.join(cluster.urls)})", flush=True)
        env = child_env(SEARCHSVC_ENGINE="typesense", SEARCHSVC_TYPESENSE_NODES=",".join(cluster.urls),
                        SEARCHSVC_TYPESENSE_API_KEY_FILE=str(cluster.key_path), SEARCHSVC_TYPESENSE_PREFIX=PREFIX,
                        SEARCHSVC_RATE_LIMIT="0", SEARCHSVC_RESPONSE_CACHE_MB="0")
        state_dir.mkdir()
        key = create_ingest_key(state_dir, env)
        admin = {"Authorization": f"Bearer {key}"}

        # Seed with ``searchsvc index`` before the service starts, and wait until every node holds
        # the seeds: the service then opens and warms its engine before it accepts a connection,
        # as it does against any populated cluster. (Seeded through the admin API into an empty
        # cluster, each worker opened its engine at its first request and built the vocabulary
        # under the readers' load: searches answered 503 "overloaded" for seconds; and a follower
        # still importing the seeds answered reads with part of them.)
        pool = corpus_articles(args.synthetic, args.seed_articles + 3600, args.seed)
        seeds, later = pool[:args.seed_articles], pool[args.seed_articles:]
        source = "synthetic" if args.synthetic or not CORPUS.is_file() else str(CORPUS)
        began = time.monotonic()
        seeds_file = write_jsonl(work / "seeds.jsonl", seeds)
        refusals: list[str] = []
        for _attempt in range(3):
            # Run again when it fails: on an empty 3-node cluster the writer reads back the state
            # document and the alias it just created from a node that has not applied them yet
            # ("vanished while it was being created"); a second run finds them (it is idempotent).
            indexing = subprocess.run([sys.executable, "-m", "searchsvc", "index", "--engine", "typesense",
                                       "--quiet", str(seeds_file)], cwd=REPO_ROOT, env=env, capture_output=True,
                                      text=True, timeout=SEED_TIMEOUT)
            if indexing.returncode == 0:
                break
            refusals.append(indexing.stderr.strip()[-500:])
            time.sleep(1.0)
        else:
            raise RuntimeError("searchsvc index failed 3 times:\n" + "\n".join(refusals))
        seed_ids = [str(a["id"]) for a in seeds]
        alias = f"{PREFIX}_articles"

        def seeded() -> bool:
            return all(node_ids(cluster, i, alias)[1] == set(seed_ids) for i in range(NODES))

        if wait_for(seeded, SEED_TIMEOUT, every=1.0) is None:
            raise RuntimeError(f"the nodes did not all hold the {len(seeds)} seed articles in {SEED_TIMEOUT:.0f} s")
        indexed = time.monotonic() - began
        service = Service(state_dir, work / "server.log", args.workers, env)
        service.start()
        with httpx.Client(base_url=service.url, timeout=60) as http:
            if wait_for(lambda: http.get("/readyz").status_code == 200, SERVICE_START_TIMEOUT) is None:
                raise RuntimeError(f"the service was not ready in {SERVICE_START_TIMEOUT:.0f} s:\n{service.log_tail()}")
            categories = http.get("/api/categories").json()["categories"]
        seed_ids = [str(a["id"]) for a in seeds]
        slugs = [str(c["slug"]) for c in categories]
        for refusal in refusals:
            print(f"searchsvc index failed once (run again): {refusal}", flush=True)
        print(f"seeds: {len(seeds)} articles ({source}) indexed, on every node in {indexed:.1f} s; "
              f"{len(slugs)} categories\nservice: {args.workers} workers + applier on {service.url}, ready "
              f"{time.monotonic() - began - indexed:.1f} s after its start", flush=True)

        # The load.
        queries = Queries([str(a["title"]) for a in seeds])
        rec.started = time.monotonic()
        for n in range(args.readers):
            threads.append(threading.Thread(target=reader, name=f"reader-{n}", daemon=True,
                                            args=(n, service.url, rec, queries, seed_ids, slugs, stop_load, args.seed)))
        threads.append(threading.Thread(target=writer, name="writer", daemon=True,
                                        args=(service.url, admin, rec, later, stop_load)))
        pollers = [threading.Thread(target=applied_poller, name="applied", daemon=True,
                                    args=(service.url, admin, rec, stop_polls)),
                   threading.Thread(target=visibility_poller, name="visible", daemon=True,
                                    args=(service.url, rec, stop_polls))]
        for t in threads + pollers:
            t.start()
        print(f"load: {args.readers} reader threads, 1 write/s; {args.rounds} rounds "
              f"(follower {args.follower_delay:g} s after writes resume, both down {args.down_hold:g} s, "
              f"{args.steady:g} s steady before the first and after each)\n", flush=True)
        print(f"{'round':>5} {'leader':>6} {'elect':>6} {'applied':>7} {'visible':>7} {'follower':>8} "
              f"{'2 down':>6} {'ready':>6} {'reads':>6} {'failed':>6}  notes   (seconds from the kill)", flush=True)

        time.sleep(args.steady)  # the baseline: no node down yet
        with rec.lock:
            base = list(rec.samples)
        print(f"{0:>5} {'(baseline: no fault)':<52} {len(base):>6} {sum(not s.ok for s in base):>6}", flush=True)
        for number in range(1, args.rounds + 1):
            leader = cluster.leader()
            if leader is None:
                cluster.wait_ready(READY_TIMEOUT)
                leader = cluster.leader()
            assert leader is not None
            r = Round(number, leader, time.monotonic())
            rec.rounds.append(r)
            cluster.kill(leader, signal.SIGKILL)

            def elected(r: Round = r) -> bool:
                now_leader = cluster.leader()
                if now_leader is None or now_leader == r.leader:
                    return False
                r.new_leader = now_leader
                return True

            if wait_for(elected, ELECTION_TIMEOUT) is None:
                r.notes.append(f"no new leader within {ELECTION_TIMEOUT:.0f} s")
                problems.append(f"round {number}: no new leader within {ELECTION_TIMEOUT:.0f} s")
            r.elected = time.monotonic()

            def resumed(r: Round = r) -> bool:
                with rec.lock:
                    ack = first_after(rec, r.killed_leader)
                    return ack is not None and ack.visible is not None

            if wait_for(resumed, RESUME_TIMEOUT) is None:
                r.notes.append(f"writes did not resume within {RESUME_TIMEOUT:.0f} s of the election")
                problems.append(f"round {number}: writes did not resume after the leader kill")
            time.sleep(args.follower_delay)
            current = cluster.leader()
            followers = [i for i in range(NODES) if cluster.alive(i) and i != current]
            if not followers:
                problems.append(f"round {number}: no follower left to kill")
                break
            r.follower = followers[0]
            cluster.kill(r.follower, signal.SIGKILL)
            r.killed_follower = time.monotonic()
            time.sleep(args.down_hold)
            cluster.restart(r.leader, wait=False)
            cluster.restart(r.follower, wait=False)
            r.restarted = time.monotonic()
            try:
                cluster.wait_ready(READY_TIMEOUT)
            except ClusterError as exc:
                r.ready = time.monotonic()
                problems.append(f"round {number}: the cluster was not ready again: {str(exc)[:2000]}")
                print(problems[-1], flush=True)
                break
            r.ready = time.monotonic()
            end = r.ready + args.steady  # the round's reads: from its kill to the next round's kill
            time.sleep(args.steady)
            round_line(rec, r, end)

        # Stop the load; the applier must apply everything acknowledged.
        stop_load.set()
        for t in threads:
            t.join(timeout=READ_TIMEOUT + 5)
        load_seconds = time.monotonic() - rec.started
        last_acked = max((a.seq for a in rec.acks), default=0)
        took = wait_for(lambda: rec.applied_seq() >= last_acked, APPLY_TIMEOUT)
        if took is None:
            problems.append(f"the applier did not apply up to seq {last_acked} within {APPLY_TIMEOUT:.0f} s "
                            f"(applied {rec.applied_seq()})")
        wait_for(lambda: all(a.visible is not None for a in rec.acks), 15.0)
        stop_polls.set()
        for t in pollers:
            t.join(timeout=15)

        # Every node, asked directly.
        acked = set(seed_ids) | {a.article_id for a in rec.acks}
        views: dict[int, tuple[int | None, set[str] | None, str]] = {}

        def converged() -> bool:
            views.update({i: node_ids(cluster, i, alias) for i in range(NODES)})
            counts = {v[0] for v in views.values()}
            return len(counts) == 1 and None not in counts and all(v[1] is not None and acked <= v[1]
                                                                   for v in views.values())

        converge_took = wait_for(converged, CONVERGE_TIMEOUT, every=1.0)
        result.update(report(rec, args, load_seconds, acked, views, converge_took, problems))
        result["work_dir"] = str(work)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: stopping the service and the cluster", file=sys.stderr, flush=True)
        problems.append("interrupted")
    except (ClusterError, RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
        print(f"error: {exc}", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up below runs to its end
        stop_load.set()
        stop_polls.set()
        code = service.stop() if service is not None else None
        if code not in (None, 0):
            problems.append(f"the service exited with {code} after SIGTERM")
        stopped = cluster.stop()
        if not stopped:
            problems.append("some Typesense nodes did not stop")
        tracebacks = 0
        if service is not None:
            tracebacks = service.log_tail(1 << 30).count("Traceback")
            print(f"server log: {tracebacks} tracebacks ({service.log_path if args.keep else 'deleted'}); "
                  f"service exit status {code}")
        result["server_tracebacks"] = tracebacks
        result["problems"] = problems
        result["ok"] = not problems
        print(f"machine: {load_note()} (end)")
        print("result: " + ("PASS" if not problems else "FAIL\n  " + "\n  ".join(problems)), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if not problems else 1


def round_line(rec: Recorder, r: Round, end: float) -> None:
    with rec.lock:
        reads = [s for s in rec.samples if r.killed_leader <= s.start < end]
        applied, visible = pause(rec, r.killed_leader)
    failed = sum(not s.ok for s in reads)
    elect = None if r.elected is None else r.elected - r.killed_leader
    down = None if r.restarted is None or r.killed_follower is None else r.restarted - r.killed_follower
    ready = None if r.ready is None or r.restarted is None else r.ready - r.restarted
    notes = "; ".join(r.notes)
    print(f"{r.number:>5} {'n' + str(r.leader):>6} {fmt(elect)} {fmt(applied, 7)} {fmt(visible, 7)} "
          f"{'n' + str(r.follower):>8} {fmt(down)} {fmt(ready)} {len(reads):>6} {failed:>6}  {notes}", flush=True)


def report(rec: Recorder, args: argparse.Namespace, load_seconds: float, acked: set[str],
           views: dict[int, tuple[int | None, set[str] | None, str]], converge_took: float | None,
           problems: list[str]) -> dict[str, Any]:
    """Print the figures; return them for ``--json``; add what failed to ``problems``."""
    with rec.lock:
        samples = list(rec.samples)
        failures = list(rec.failures)
        acks = list(rec.acks)
        rounds = list(rec.rounds)
    out: dict[str, Any] = {}
    failed = [s for s in samples if not s.ok]
    rate = len(samples) / max(load_seconds, 1e-9)
    print(f"\nreaders: {len(samples)} requests in {load_seconds:.0f} s ({rate:.1f}/s), {len(failed)} failed")
    out["reads"] = {"requests": len(samples), "failed": len(failed), "seconds": round(load_seconds, 1)}
    if failed:
        problems.append(f"{len(failed)} reader requests failed")

    by_phase: dict[str, list[float]] = {}
    for s in samples:
        if s.ok:
            by_phase.setdefault(rec.phase(s.start), []).append(s.latency)
    faulted = [v for phase, values in by_phase.items() if phase != "steady" for v in values]
    print("reader latency (answered requests), by phase:")
    print(f"  {'phase':<10} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    out["latency"] = {}
    for phase, values in [(p, by_phase.get(p, [])) for p in ("steady", "electing", "one down", "two down",
                                                              "rejoining")] + [("any fault", faulted)]:
        stats = ms(values)
        out["latency"][phase] = stats
        print(f"  {phase:<10} {stats['requests']:>8} {stats['p50_ms']:>8.1f} {stats['p95_ms']:>8.1f} "
              f"{stats['max_ms']:>8.1f}")
    steady = out["latency"]["steady"]
    if faulted and steady["requests"]:
        print(f"  added by faults: p50 {out['latency']['any fault']['p50_ms'] - steady['p50_ms']:+.1f} ms, "
              f"p95 {out['latency']['any fault']['p95_ms'] - steady['p95_ms']:+.1f} ms")

    # Writes.
    flowing = [a for a in acks if steady_write(rec, rounds, a)]
    steady_applied = [a.applied - a.acked for a in flowing if a.applied is not None]
    steady_visible = [a.visible - a.acked for a in flowing if a.visible is not None]
    print(f"writes: {len(acks)} acknowledged (202), {len(rec.write_failures)} refused or unanswered; "
          f"status polls failed: {rec.poll_errors}")
    print(f"  steady state (writes flowing), from the 202: applied {seconds(steady_applied)}; "
          f"visible {seconds(steady_visible)}")
    leader_pauses = [pause(rec, r.killed_leader) for r in rounds]
    follower_pauses = [pause(rec, r.killed_follower) for r in rounds]
    restart_pauses = [pause(rec, r.restarted) for r in rounds]
    for label, pauses in (("leader kill", leader_pauses), ("follower kill (no quorum until restart)", follower_pauses),
                          ("restart of both", restart_pauses)):
        applied = [a for a, _ in pauses if a is not None]
        visible = [v for _, v in pauses if v is not None]
        print(f"  write pause after the {label}: applied {seconds(applied)}; visible {seconds(visible)}")
    elections = [r.elected - r.killed_leader for r in rounds if r.elected is not None]
    readies = [r.ready - r.restarted for r in rounds if r.ready is not None and r.restarted is not None]
    print(f"  election after the leader kill: {seconds(elections)}; restart to ready: {seconds(readies)}")
    out["writes"] = {"acknowledged": len(acks), "refused": len(rec.write_failures),
                     "refusals": rec.write_failures[:20],
                     "steady_applied_s": steady_applied, "steady_visible_s": steady_visible}
    out["rounds"] = [{**{k: v for k, v in asdict(r).items()},
                      "pause_leader_kill": leader_pauses[i], "pause_follower_kill": follower_pauses[i],
                      "pause_restart": restart_pauses[i]} for i, r in enumerate(rounds)]
    for row in out["rounds"]:  # times relative to the start of the load
        for k in ("killed_leader", "elected", "killed_follower", "restarted", "ready"):
            if row[k] is not None:
                row[k] = round(row[k] - rec.started, 2)
    if rec.write_failures:
        problems.append(f"{len(rec.write_failures)} writes were not acknowledged")
    not_visible = [a.article_id for a in acks if a.visible is None]
    if not_visible:
        problems.append(f"{len(not_visible)} acknowledged articles never served by the service, "
                        f"e.g. {not_visible[:3]}")

    # Nodes.
    print(f"nodes (each asked directly), {len(acked)} ids that must be there "
          f"({args.seed_articles} indexed before the load + {len(acks)} acknowledged by the admin API):")
    out["nodes"] = []
    for i, (count, ids, error) in sorted(views.items()):
        missing = sorted(acked - ids) if ids is not None else None
        extra = sorted(ids - acked) if ids is not None else None
        out["nodes"].append({"node": i, "documents": count, "missing": missing, "unacknowledged": extra,
                             "error": error or None})
        what = error or f"{len(missing or [])} acknowledged missing, {len(extra or [])} never acknowledged"
        print(f"  node {i}: {count} documents; {what}" + (f" e.g. {missing[:3]}" if missing else ""))
    counts = {v[0] for v in views.values()}
    if converge_took is None:
        problems.append(f"the nodes did not converge within {CONVERGE_TIMEOUT:.0f} s")
    else:
        print(f"  converged: every node {counts.pop()} documents (checked {converge_took:.1f} s after the last apply)")
    if any(n["missing"] or n["unacknowledged"] or n["error"] for n in out["nodes"]):
        problems.append("a node misses acknowledged articles, holds unacknowledged ones, or did not answer")
    out["converged_after_s"] = converge_took

    if failures:
        print(f"failed reader requests ({len(failures)}; first 30):")
        for f in failures[:30]:
            print(f"  {f.at:7.1f}s [{f.phase}] {f.route} {f.url[:100]} -> {f.status} {f.detail[:300]!r} "
                  f"(request id {f.request_id})")
    out["failures"] = [asdict(f) for f in failures[:200]]
    return out


if __name__ == "__main__":
    sys.exit(main())
