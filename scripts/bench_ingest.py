#!/usr/bin/env python3
"""Publishing benchmark: the admin API under sustained publishing while readers search, and bulk
NDJSON publishing against ``searchsvc index`` on the same articles.

Everything runs in a temporary directory, on loopback, in one run:

1. A base index of ``--base`` corpus articles (default: as many as ``--articles``), built with
   ``searchsvc index`` (or a copy of ``--index-dir``), and an ``ingest`` key (``searchsvc keys create``).
2. Bulk, the CLI: ``searchsvc index`` of the next ``--articles`` corpus articles into a copy of the
   base index, timed as a process (start to exit).
3. Bulk, the API: ``searchsvc serve`` on the base index; the same articles as NDJSON batches of
   ``--batch`` (1,000) POSTed one after another to ``/api/admin/articles``; timed from the first
   POST until ``GET /api/admin/status`` reports the last batch's sequence number applied.
4. Readers alone: wrk with ``--connections`` (16) connections on ``/api/search`` for ``--duration``
   seconds, every query a distinct one (two words of a title), so the response caches answer none.
5. Readers while publishing: the same, with ``--publishers`` (4) clients POSTing one article at a
   time (as fast as they are answered: the capacity) for the whole run. Per article: the ``202`` latency, and
   commit-to-visible, from its ``202`` to the first ``200`` of ``/api/articles/{id}``: a checker
   follows every ``--sample``-th acknowledged article, oldest first (the oldest alone every 50 ms
   until it shows, then the next eight at once), until each shows or ``DRAIN_TIMEOUT`` after the run.
   Each reader run has its own queries (and its own warm-up queries), so neither finds the other's
   answers cached.
6. Readers while publishing at a steady rate: the same, with the publishers together held to
   ``--rate`` articles a second (default 50, the target rate; 0 skips this run), once everything
   the previous run acknowledged is applied. When publishers outpace what the applier can apply
   (run 5 on 2 cores with readers), the backlog, and so the delay to visible, grows for as long as
   the run lasts, whatever a commit costs: the delay target is judged at the target rate.

The figures are printed beside the targets of issue 12 (on this 2-core machine: ≥ 50 articles/s
acknowledged, commit-to-visible p99 ≤ 5 s, reader p95 at most doubled, bulk ≥ 80 % of the CLI),
with the load average, since the machine is shared (``benchkit.report``).

    .venv/bin/python scripts/bench_ingest.py                           # 5,000 + 5,000 articles, 20 s runs
    .venv/bin/python scripts/bench_ingest.py --duration 5 --articles 1000   # a smoke check (about a minute)

wrk comes from Debian's package; the script installs it with apt-get when missing (as root).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from benchkit.corpus import CORPUS, REPO_ROOT, corpus_articles, write_jsonl
from benchkit.procinfo import children, cmdline, cpu_seconds
from benchkit.report import banner, load_note, percentile
from benchkit.wrk import Result, ensure_wrk, run_wrk, start_service

TARGET_ACK_RATE = 50.0  # articles/s acknowledged by 4 publishers
TARGET_VISIBLE_P99 = 5.0  # seconds from 202 to visible
TARGET_READER_RATIO = 2.0  # reader p95 while publishing / alone, at most
TARGET_BULK_SHARE = 0.80  # API bulk articles/s / ``searchsvc index`` articles/s, at least
CHECK_EVERY = 0.05  # seconds between the visibility checker's rounds
CHECK_AT_ONCE = 8  # articles the checker asks about concurrently
DRAIN_TIMEOUT = 300.0  # seconds to wait after publishing for the last sampled article to show
APPLY_TIMEOUT = 1800.0  # seconds for the bulk batches to be applied
INGEST = "/api/admin/articles"


# -- helpers -------------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_")}


def searchsvc(*args: str, timeout: float = 3600) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python -m searchsvc ARGS`` with no SEARCHSVC_* settings; (result, wall seconds). Exits on failure."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "searchsvc", *args], cwd=REPO_ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"searchsvc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc, elapsed


def reader_queries(records: list[dict[str, Any]], rng: random.Random) -> list[str]:
    """Distinct two-word queries from the titles, shuffled: each one a fresh search for the caches."""
    queries: dict[str, None] = {}
    for record in records:
        words = re.findall(r"\w+", str(record["title"]).lower())
        for a, b in itertools.pairwise(words):
            queries[f"{a} {b}"] = None
    found = list(queries)
    rng.shuffle(found)
    return found


def search_paths(queries: list[str]) -> list[str]:
    return [f"/api/search?{urlencode({'q': q})}" for q in queries]


def wrk_args(args: argparse.Namespace, duration: int) -> argparse.Namespace:
    """What ``benchkit.wrk.run_wrk`` reads; its warm-up is ours (with other queries): 0 here."""
    return argparse.Namespace(threads=args.threads, connections=args.connections, duration=duration, warmup=0)


def server_cpu(master: int) -> dict[str, float]:
    """CPU seconds used so far by the server's processes, by role: its workers (uvicorn spawns
    them: ``spawn_main``), the applier (``searchsvc apply``) and the supervising process itself."""
    used = {"workers": 0.0, "applier": 0.0, "supervisor": cpu_seconds(master)}
    for pid in children(master):
        line = cmdline(pid)
        role = "workers" if "spawn_main" in line else "applier" if "searchsvc apply" in line else "supervisor"
        used[role] += cpu_seconds(pid)
    return used


@dataclass
class CpuSplit:
    """Where the machine's CPU went during one reader run: what tells a search made dearer by
    publishing (workers' CPU per search up) from searches given less of the machine (applier's
    share up) or from nobody using it (idle: waiting on a lock, a commit, the disk)."""

    seconds: float
    used: dict[str, float]

    def note(self, searches: int) -> str:
        cores = os.cpu_count() or 1
        total = cores * self.seconds
        parts = "  ".join(f"{role} {cpu:.1f} s ({cpu / total:.0%})" for role, cpu in self.used.items())
        idle = max(0.0, total - sum(self.used.values()))
        per_search = self.used["workers"] / searches * 1000 if searches else 0.0
        return (f"{parts}  else/idle {idle:.1f} s ({idle / total:.0%}) of {cores} x {self.seconds:.1f} s;  "
                f"workers {per_search:.1f} ms CPU per search")


def readers(wrk: str, url: str, args: argparse.Namespace, tmp: Path, name: str, warm: list[str],
            measured: list[str], master: int) -> tuple[Result, CpuSplit]:  # fmt: skip
    """A reader run, and the server's CPU during its measured part (``master``: the server's pid)."""
    if args.warmup > 0:
        run_wrk(wrk, url, warm, 200, wrk_args(args, args.warmup), tmp, f"{name}-warmup")
    before, started = server_cpu(master), time.monotonic()
    result = run_wrk(wrk, url, measured, 200, wrk_args(args, args.duration), tmp, name)
    after, seconds = server_cpu(master), time.monotonic() - started
    return result, CpuSplit(seconds, {role: after[role] - before[role] for role in after})


# -- sustained publishing ---------------------------------------------------------------------------------


@dataclass
class Sustained:
    """What the publishers and the visibility checker measured."""

    acked: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    ack_latencies: list[float] = field(default_factory=list)  # seconds per 202
    visible_delays: list[float] = field(default_factory=list)  # seconds from 202 to visible
    sampled: int = 0
    never_visible: int = 0


class Publishing:
    """``publishers`` threads POSTing one article each at a time, and a checker timing visibility."""

    def __init__(self, url: str, key: str, articles: list[dict[str, Any]], publishers: int, sample: int,
                 rate: float | None = None, serial: itertools.count[int] | None = None) -> None:
        """``rate``: articles a second all publishers together are held to (None: as fast as answered).
        ``serial``: the article counter, shared between runs so that every run publishes new articles."""
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.articles = articles
        self.publishers = publishers
        self.sample = max(1, sample)
        self.result = Sustained()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.serial = serial if serial is not None else itertools.count()
        self.rate = rate
        self.slots = itertools.count()  # the paced runs' schedule: slot k is due k / rate s after the start
        self.pending: deque[tuple[str, float]] = deque()  # (id, time of its 202), sampled, in ack order
        self.threads: list[threading.Thread] = []
        self.started = 0.0

    def next_article(self) -> dict[str, Any]:
        n = next(self.serial)  # itertools.count is atomic under the GIL
        record = self.articles[n % len(self.articles)]
        rounds = n // len(self.articles)
        return record if rounds == 0 else {**record, "id": f"{record['id']}~{rounds}"}  # past the pool: new ids

    def publish(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers=self.headers) as http:
            while not self.stop.is_set():
                if self.rate:
                    due = self.started + next(self.slots) / self.rate
                    if self.stop.wait(max(0.0, due - time.monotonic())):
                        break
                article = self.next_article()
                body = json.dumps(article, ensure_ascii=False).encode("utf-8")
                sent = time.monotonic()
                try:
                    response = http.post(INGEST, content=body)
                    status = str(response.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                acked = time.monotonic()
                with self.lock:
                    if status != "202":
                        self.result.errors[status] = self.result.errors.get(status, 0) + 1
                        continue
                    self.result.acked += 1
                    self.result.ack_latencies.append(acked - sent)
                    if self.result.acked % self.sample == 0:
                        self.pending.append((str(article["id"]), acked))
                        self.result.sampled += 1

    def check(self) -> None:
        """Oldest sampled article first. While it is not visible, only it is asked about (every
        ``CHECK_EVERY`` s, so that waiting costs the server little); once it is, the next
        ``CHECK_AT_ONCE`` are asked about at once, and those visible up to the first that is not are done."""
        with httpx.Client(base_url=self.url, timeout=30) as http, ThreadPoolExecutor(CHECK_AT_ONCE) as pool:

            def visible_at(item: tuple[str, float]) -> float | None:
                try:
                    response = http.get(f"/api/articles/{quote(item[0], safe='')}")
                except httpx.HTTPError:
                    return None  # asked again next round
                return time.monotonic() if response.status_code == 200 else None

            deadline: float | None = None
            width = 1
            while True:
                with self.lock:
                    batch = list(itertools.islice(self.pending, width))
                if not batch:
                    if self.stop.is_set():
                        return
                    time.sleep(CHECK_EVERY)
                    continue
                seen = list(pool.map(visible_at, batch))
                done = 0
                with self.lock:
                    for (_, acked), when in zip(batch, seen, strict=True):
                        if when is None:
                            break
                        self.result.visible_delays.append(when - acked)
                        done += 1
                    for _ in range(done):
                        self.pending.popleft()
                width = CHECK_AT_ONCE if done == len(batch) else 1
                if done < len(batch):
                    if self.stop.is_set():
                        deadline = deadline or time.monotonic() + DRAIN_TIMEOUT
                        if time.monotonic() > deadline:
                            with self.lock:
                                self.result.never_visible = len(self.pending)
                            return
                    time.sleep(CHECK_EVERY)

    def __enter__(self) -> Publishing:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self.publish, name=f"publisher-{i}") for i in range(self.publishers)]
        self.checker = threading.Thread(target=self.check, name="visibility")
        for thread in [*self.threads, self.checker]:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.result.seconds = time.monotonic() - self.started
        self.checker.join()


# -- bulk ------------------------------------------------------------------------------------------------


@dataclass
class Bulk:
    articles: int
    batches: int
    acked_seconds: float  # first POST to the last 202
    applied_seconds: float  # first POST to the last batch applied
    rejected: int


def bulk_api(url: str, key: str, lines: list[str], batch: int) -> Bulk:
    headers = {"Authorization": f"Bearer {key}"}
    rejected, last_seq = 0, 0
    with httpx.Client(base_url=url, timeout=300, headers=headers) as http:
        started = time.monotonic()
        chunks = [lines[i:i + batch] for i in range(0, len(lines), batch)]
        for chunk in chunks:
            body = ("\n".join(chunk) + "\n").encode("utf-8")
            response = http.post(INGEST, content=body, headers={"Content-Type": "application/x-ndjson"})
            if response.status_code != 202:
                sys.exit(f"bulk batch answered {response.status_code}: {response.text[:500]}")
            answer = response.json()
            rejected += int(answer.get("rejected_total", len(answer["rejected"])))
            last_seq = int(answer["seq"])
        acked = time.monotonic() - started
        while True:
            status = http.get("/api/admin/status").json()
            if int(status["last_applied_seq"]) >= last_seq:
                break
            if time.monotonic() - started > APPLY_TIMEOUT:
                sys.exit(f"bulk: not applied within {APPLY_TIMEOUT:.0f} s: {status}")
            time.sleep(0.05)
        applied = time.monotonic() - started
    return Bulk(len(lines) - rejected, len(chunks), acked, applied, rejected)


def wait_applied(url: str, key: str) -> None:
    """Until the applier has applied everything acknowledged so far (a run's backlog)."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            status = http.get("/api/admin/status").json()
            if int(status["last_applied_seq"]) >= int(status["last_accepted_seq"]):
                return
            if time.monotonic() - started > APPLY_TIMEOUT:
                sys.exit(f"the backlog was not applied within {APPLY_TIMEOUT:.0f} s: {status}")
            time.sleep(0.1)


# -- what the applier logged -----------------------------------------------------------------------------

COMMIT_LINE = re.compile(r"applied journal entries (\d+)-(\d+): (\d+) upserted, (\d+) deleted in ([\d.]+) s")


def applier_commits(log: Path) -> list[tuple[int, float]]:
    """(entries, seconds) of every commit the applier logged in the server's log, in order."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [(int(m[2]) - int(m[1]) + 1, float(m[5])) for m in COMMIT_LINE.finditer(text)]


def commits_note(commits: list[tuple[int, float]]) -> str:
    if not commits:
        return "no commit logged"
    sizes = [float(n) for n, _ in commits]
    seconds = [s for _, s in commits]
    return (f"{len(commits)} commits of {percentile(sizes, 50):.0f} entries (median), each "
            f"p50 {percentile(seconds, 50):.2f} s, max {max(seconds):.2f} s")


# -- the run ---------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report_publishing(run: Sustained, loaded: Result, quiet: Result, commits: list[tuple[int, float]],
                      rate_limit: float | None) -> dict[str, Any]:  # fmt: skip
    """Print one publishing run's figures beside the targets it is judged by; return them for the
    JSON. Unpaced (``rate_limit`` None), the run measures how many articles/s are acknowledged;
    paced, the delay to visible and the readers' p95 at that rate (and whether the pace was kept)."""
    judge = rate_limit is not None
    rate = run.acked / run.seconds if run.seconds else 0.0
    lat, vis = run.ack_latencies, run.visible_delays
    vis_p99 = percentile(vis, 99) if not run.never_visible else float("inf")
    ratio = loaded.p95_ms / quiet.p95_ms if quiet.p95_ms else float("inf")

    def target(text: str, ok: bool) -> str:
        return f"   target {text}: {verdict(ok)}" if judge else ""

    if rate_limit is None:
        ack_note = f"   target >= {TARGET_ACK_RATE:.0f}/s: {verdict(rate >= TARGET_ACK_RATE)}"
    else:  # the schedule's slots fell due every 1/rate s from the start; ends are cut mid-slot
        kept = run.acked >= 0.98 * rate_limit * run.seconds
        ack_note = f"   kept the pace of {rate_limit:g}/s: {'yes' if kept else 'NO'}"
    print(f"  acknowledged       {run.acked} articles in {run.seconds:.1f} s, {rate:.1f}/s" + ack_note
          + (f"   (failed requests: {run.errors})" if run.errors else ""))
    print(f"  202 latency        p50 {ms(percentile(lat, 50))}  p95 {ms(percentile(lat, 95))}  "
          f"p99 {ms(percentile(lat, 99))}")
    print(f"  commit-to-visible  p50 {percentile(vis, 50):.2f} s  p99 {vis_p99:.2f} s  "
          f"({len(vis)} of {run.sampled} sampled articles, 202 to first 200 of /api/articles/{{id}})"
          + target(f"p99 <= {TARGET_VISIBLE_P99:.0f} s", vis_p99 <= TARGET_VISIBLE_P99)
          + (f"   ({run.never_visible} not visible within {DRAIN_TIMEOUT:.0f} s)" if run.never_visible else ""))
    print(f"  applier            {commits_note(commits)}")
    print(f"  readers /api/search while publishing {loaded.rps:6.1f} req/s  p50 {loaded.p50_ms:.0f} ms  "
          f"p95 {loaded.p95_ms:.0f} ms  p99 {loaded.p99_ms:.0f} ms  errors {loaded.errors}")
    print(f"  reader p95 ratio   x{ratio:.2f}" + target(f"<= x{TARGET_READER_RATIO:.0f}", ratio <= TARGET_READER_RATIO))
    return {"acked": run.acked, "seconds": round(run.seconds, 3), "rate": round(rate, 2), "errors": run.errors,
            "ack_ms": {f"p{p}": round(percentile(lat, p) * 1000, 1) for p in (50, 95, 99)},
            "visible_s": {"p50": round(percentile(vis, 50), 3), "p99": round(vis_p99, 3), "measured": len(vis),
                          "sampled": run.sampled, "never_visible": run.never_visible},
            "p95_ratio": round(ratio, 3), "applier_commits": commits}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000, help="articles of the bulk runs (default 5000)")
    parser.add_argument("--base", type=int, help="articles of the base index (default: --articles)")
    parser.add_argument("--index-dir", type=Path, help="copy this index as the base instead of building one")
    parser.add_argument("--duration", type=int, default=20, help="seconds of each reader run (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each (default 2)")
    parser.add_argument("--publishers", type=int, default=4, help="publishing clients (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections searching (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--rate", type=float, default=TARGET_ACK_RATE,
                        help=f"articles/s of the steady publishing run (default {TARGET_ACK_RATE:.0f}; 0 skips it)")
    parser.add_argument("--batch", type=int, default=1000, help="articles per NDJSON batch (default 1000)")
    parser.add_argument("--sample", type=int, default=4,
                        help="time the visibility of every N-th acknowledged article (default 4)")
    parser.add_argument("--no-access-log", action="store_true", help="run the service without its access log")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a SEARCHSVC_* setting for the server (repeatable), e.g. SEARCHSVC_WORKER_NICE=0")
    parser.add_argument("--synthetic", action="store_true", help="generated articles instead of the corpus")
    parser.add_argument("--seed", type=int, default=20140627)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.articles, args.duration, args.publishers, args.connections, args.batch) < 1:
        parser.error("--articles, --duration, --publishers, --connections and --batch must be at least 1")
    if any("=" not in item or not item.startswith("SEARCHSVC_") for item in args.setting):
        parser.error("--setting takes SEARCHSVC_NAME=VALUE")
    base_count = args.base if args.base is not None else args.articles
    wrk = ensure_wrk()
    print(banner("bench_ingest"), flush=True)
    rng = random.Random(args.seed)
    # Enough fresh articles for the sustained run at a few hundred a second; past them, ids repeat with a suffix.
    pool_size = max(4000, 150 * (args.duration + args.warmup))
    records = corpus_articles(args.synthetic, base_count + args.articles + pool_size, args.seed)
    if len(records) < base_count + args.articles + 1:
        sys.exit(f"only {len(records)} articles in {CORPUS}: ask for fewer (--base, --articles)")
    base, bulk_records, pool = (records[:base_count], records[base_count:base_count + args.articles],
                                records[base_count + args.articles:])
    queries = reader_queries(base, rng)
    sixth = len(queries) // 6
    warm_alone, alone, warm_busy, busy, warm_paced, paced_queries = (
        search_paths(queries[i * sixth:(i + 1) * sixth]) for i in range(6))
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "base_articles": base_count}

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        index_dir = tmp / "index"
        if args.index_dir is not None:
            shutil.copytree(args.index_dir, index_dir, ignore=shutil.ignore_patterns("journal.sqlite3*", "keys.json",
                                                                                     "applier*"))
            print(f"base index: a copy of {args.index_dir}", flush=True)
        else:
            _, seconds = searchsvc("index", str(write_jsonl(tmp / "base.jsonl", base)), "--index-dir", str(index_dir),
                                   "--quiet")
            print(f"base index: {base_count} articles built in {seconds:.1f} s", flush=True)
        cli_dir = tmp / "cli-index"
        shutil.copytree(index_dir, cli_dir)
        bulk_file = write_jsonl(tmp / "bulk.jsonl", bulk_records)
        bulk_lines = bulk_file.read_text(encoding="utf-8").splitlines()

        # Bulk, the CLI: the same articles into a copy of the same base index.
        print(f"bulk, searchsvc index: {len(bulk_lines)} articles ({load_note()})...", file=sys.stderr, flush=True)
        _, cli_seconds = searchsvc("index", str(bulk_file), "--index-dir", str(cli_dir), "--quiet")
        shutil.rmtree(cli_dir)

        key_proc, _ = searchsvc("keys", "create", "bench", "--scope", "ingest", "--index-dir", str(index_dir))
        key = key_proc.stdout.strip().splitlines()[-1]
        serve_args = argparse.Namespace(index_dir=index_dir, workers=args.workers, engine_threads=None,
                                        no_access_log=args.no_access_log)
        settings = dict(item.split("=", 1) for item in args.setting)
        with start_service(serve_args, tmp, settings) as server:
            print(f"bulk, the API: {len(bulk_lines)} articles in batches of {args.batch} ({load_note()})...",
                  file=sys.stderr, flush=True)
            bulk = bulk_api(server.url, key, bulk_lines, args.batch)
            bulk_commits = applier_commits(tmp / "server.log")

            print(f"readers alone: {args.duration} s ({load_note()})...", file=sys.stderr, flush=True)
            quiet, quiet_cpu = readers(wrk, server.url, args, tmp, "alone", warm_alone, alone, server.proc.pid)
            print(f"readers while {args.publishers} clients publish: {args.duration} s ({load_note()})...",
                  file=sys.stderr, flush=True)
            serial = itertools.count()
            with Publishing(server.url, key, pool, args.publishers, args.sample, serial=serial) as publishing:
                loaded, loaded_cpu = readers(wrk, server.url, args, tmp, "publishing", warm_busy, busy,
                                             server.proc.pid)
            sustained = publishing.result
            sustained_commits = applier_commits(tmp / "server.log")[len(bulk_commits):]
            steady: tuple[Sustained, Result, list[tuple[int, float]], CpuSplit] | None = None
            if args.rate > 0:
                wait_applied(server.url, key)
                print(f"readers while {args.publishers} clients publish {args.rate:g} articles/s: {args.duration} s "
                      f"({load_note()})...", file=sys.stderr, flush=True)
                done = len(bulk_commits) + len(sustained_commits)
                with Publishing(server.url, key, pool, args.publishers, args.sample, args.rate, serial) as publishing:
                    at_rate, paced_cpu = readers(wrk, server.url, args, tmp, "paced", warm_paced, paced_queries,
                                                 server.proc.pid)
                steady = (publishing.result, at_rate, applier_commits(tmp / "server.log")[done:], paced_cpu)
    load_end = load_note()

    # -- report ----------------------------------------------------------------------------------------
    cli_rate = bulk.articles / cli_seconds
    api_rate = bulk.articles / bulk.applied_seconds
    share = api_rate / cli_rate
    conditions = (f"while wrk -t{args.threads} -c{args.connections} searches ({len(alone)} distinct queries a run), "
                  f"{args.workers} workers, base index {base_count} + bulk {bulk.articles} articles")
    print(f"\nreaders /api/search alone            {quiet.rps:6.1f} req/s  p50 {quiet.p50_ms:.0f} ms  "
          f"p95 {quiet.p95_ms:.0f} ms  p99 {quiet.p99_ms:.0f} ms  errors {quiet.errors}")
    print(f"  server CPU         {quiet_cpu.note(quiet.requests)}")
    print(f"\nas fast as answered: {args.publishers} publishers (one article a request) {conditions}")
    results["sustained"] = report_publishing(sustained, loaded, quiet, sustained_commits, None)
    print(f"  server CPU         {loaded_cpu.note(loaded.requests)}")
    results["sustained"]["cpu"] = asdict(loaded_cpu)
    results["sustained"]["readers"] = asdict(loaded)
    if steady is not None:
        paced, at_rate, paced_commits, paced_cpu = steady
        print(f"\nat {args.rate:g} articles/s: the same publishers held to that rate together, {conditions}")
        results["paced"] = report_publishing(paced, at_rate, quiet, paced_commits, args.rate)
        print(f"  server CPU         {paced_cpu.note(at_rate.requests)}")
        results["paced"]["cpu"] = asdict(paced_cpu)
        results["paced"]["readers"] = asdict(at_rate)
        results["paced"]["rate"] = args.rate
    print(f"\nbulk: {bulk.articles} articles, NDJSON batches of {args.batch}, one client"
          + (f" ({bulk.rejected} rejected)" if bulk.rejected else ""))
    print(f"  searchsvc index    {cli_seconds:6.1f} s   {cli_rate:6.1f} articles/s (process start to exit)")
    print(f"  the API            {bulk.applied_seconds:6.1f} s   {api_rate:6.1f} articles/s (first POST to applied; "
          f"all acknowledged after {bulk.acked_seconds:.1f} s)")
    print(f"  applier            {commits_note(bulk_commits)}")
    print(f"  API / CLI          {share:.0%}   target >= {TARGET_BULK_SHARE:.0%}: "
          f"{verdict(share >= TARGET_BULK_SHARE)}")
    print(f"\nmachine: {load_end} (end)")

    results.update({
        "readers_alone": {**asdict(quiet), "cpu": asdict(quiet_cpu)},
        "bulk": {**asdict(bulk), "cli_seconds": round(cli_seconds, 3), "cli_rate": round(cli_rate, 2),
                 "api_rate": round(api_rate, 2), "share": round(share, 3)},
        "applier_commits": {"bulk": bulk_commits},
        "load_end": load_end,
    })  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
