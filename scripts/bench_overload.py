#!/usr/bin/env python3
"""Step test of admission control: distinct searches at 16 -> 64 -> 256 connections, what is shed.

Starts ``searchsvc serve --workers 2`` on an index (default ``var/bench-index``; the full corpus
makes the figures mean something) and, from one asyncio process speaking HTTP/1.1 over raw streams
(light on CPU: the client shares the machine's 2 cores with the server), keeps N keep-alive
connections busy with ``/api/search`` for ``--step-seconds`` per step, N going through ``--steps``
(connections are added, never closed, between steps). Every query is new for the whole run (cut
from the index's and the corpus's titles, a counter word added once those run out), so no cache
helps. After a ``503`` a connection waits what ``Retry-After`` says, times a random 1-1.5 (a client
that honours it, spread out so the retries do not come back together), then sends its next search.

All along, a probe asks ``/healthz`` and a cached page (a search page answered once on every worker
first) every ~100 ms on connections of its own, and the RSS of every worker is sampled. Per step:
requests, accepted (200), shed (503) and their fraction, any other status or error (there must be
none), accepted p50/p95/p99 against the deadline, the probes' p50/p99/max, the client's own event
loop lag (the probes' figures include it), the largest RSS of each worker. When the load stops: the
time until a fresh distinct search is answered 200 again (recovery), the workers' RSS and the
service's own shed counters.

    .venv/bin/python scripts/bench_overload.py --index-dir /tmp/full/ix               # 3 x 30 s
    .venv/bin/python scripts/bench_overload.py --index-dir /tmp/ix --steps 4,16 --step-seconds 3   # smoke
    .venv/bin/python scripts/bench_overload.py --deadline 1 --queue 64 --json var/overload.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from benchkit.corpus import BENCH_INDEX, CORPUS, corpus_titles
from benchkit.procinfo import children, cmdline
from benchkit.report import banner, load_note, percentile
from benchkit.wrk import SEED_WORDS, require_index, start_service
from searchsvc.config import Config

PROBE_EVERY = 0.1  # seconds between two probes of the same path
RSS_EVERY = 0.25  # seconds between two RSS samples
LAG_EVERY = 0.01  # the client's loop-lag sampler sleeps this long and measures how late it wakes
BACKOFF = (1.0, 1.5)  # after a 503: Retry-After times a random factor in this range
RECOVERY_GIVE_UP = 60.0  # seconds
PROBE_TARGET_MS = 50.0  # what /healthz and cached pages should stay under, all along
SHED_LINE = re.compile(r'^searchsvc_admission_shed_total\{reason="(\w+)"\} ([\d.e+]+)$', re.M)


# --- a small HTTP/1.1 client ----------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: GET and read the whole answer (Content-Length or chunked).

    Far cheaper per request than a general client, which matters here: the load generator and the
    server share 2 cores, and every microsecond the client spends is taken from the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        for attempt in (1, 2):
            fresh = self._writer is None
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                                   "Accept: application/json\r\n\r\n".encode("ascii"))  # fmt: skip
                head = await self._reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt == 2:
                    raise
                continue  # a keep-alive connection the server had closed (idle): once more, on a new one
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            body = await self._body(headers)
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, body
        raise AssertionError("unreachable")

    async def _body(self, headers: dict[str, str]) -> bytes:
        assert self._reader is not None
        if "content-length" in headers:
            return await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self._reader.readexactly(size + 2))
                if size == 0:
                    return b"".join(parts)
        body = await self._reader.read()
        self.close()
        return body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# --- queries ----------------------------------------------------------------------------------------


class DistinctQueries:
    """Queries of 1-3 consecutive title words, none ever given twice; once the titles run out (a
    small index) a counter word keeps them distinct."""

    def __init__(self, titles: list[str], rng: random.Random, exclude: set[str]) -> None:
        self.words_of = [w for w in (re.findall(r"\w+", t.lower()) for t in titles) if w]
        if not self.words_of:
            sys.exit("no titles to build queries from: is the index empty?")
        self.rng = rng
        self.seen = set(exclude)
        self.counter = 0

    def next(self) -> str:
        for _ in range(20):
            words = self.rng.choice(self.words_of)
            start = self.rng.randrange(len(words))
            query = " ".join(words[start : start + self.rng.randint(1, 3)])
            if query not in self.seen:
                self.seen.add(query)
                return query
        self.counter += 1
        return f"{self.rng.choice(self.rng.choice(self.words_of))} {self.counter}"


def index_titles(base: str) -> list[str]:
    """Titles the index holds, found with the seed words (so that queries really match)."""
    titles: list[str] = []
    with httpx.Client(base_url=base, timeout=120) as http:
        for seed in ["", *SEED_WORDS]:
            body = http.get("/api/search", params={"q": seed, "per_page": 100}).json()
            titles += [hit["title"] for hit in body.get("hits", [])]
    return titles


# --- measurements -------------------------------------------------------------------------------------


@dataclass
class Step:
    connections: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    accepted_ms: list[float] = field(default_factory=list)
    shed_ms: list[float] = field(default_factory=list)
    probe_ms: dict[str, list[float]] = field(default_factory=lambda: {"healthz": [], "cached": []})
    probe_bad: Counter[str] = field(default_factory=Counter)
    lag_ms: list[float] = field(default_factory=list)
    rss_mb: dict[int, float] = field(default_factory=dict)  # worker pid -> largest sample

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def other(self) -> int:
        return sum(n for status, n in self.statuses.items() if status not in (200, 503)) + sum(self.errors.values())

    def summary(self, deadline: float) -> dict[str, Any]:
        def pcts(values: list[float]) -> dict[str, float]:
            return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
                    "max": max(values) if values else math.nan}  # fmt: skip

        shed = self.statuses[503]
        return {
            "connections": self.connections, "seconds": round(self.seconds, 2), "requests": self.requests,
            "accepted": self.statuses[200], "shed": shed, "shed_fraction": shed / self.requests if self.requests else 0,
            "other_statuses": {str(s): n for s, n in self.statuses.items() if s not in (200, 503)},
            "errors": dict(self.errors), "accepted_ms": pcts(self.accepted_ms), "deadline_ms": deadline * 1000,
            "shed_ms": pcts(self.shed_ms),
            "probe_ms": {name: pcts(values) for name, values in self.probe_ms.items()},
            "probe_failures": dict(self.probe_bad), "client_loop_lag_ms": pcts(self.lag_ms),
            "worker_rss_mb": {str(pid): round(mb, 1) for pid, mb in sorted(self.rss_mb.items())},
        }  # fmt: skip


def rss_mb(pid: int, field_name: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_pids(master: int) -> list[int]:
    """uvicorn's worker processes (spawned: ``spawn_main`` in their command line); the master
    itself when it serves alone (one worker)."""
    workers = sorted(c for c in children(master) if "spawn_main" in cmdline(c))
    return workers or [master]


# --- the run --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, url: str, queries: DistinctQueries, cached_path: str, workers: list[int], rng: random.Random):
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        self.host, self.port = parts.hostname, parts.port
        self.queries = queries
        self.cached_path = cached_path
        self.workers = workers
        self.rng = rng
        self.step: Step | None = None
        self.stopping = False
        self.stopped_at = math.nan
        self.in_flight = 0
        self.in_flight_at_stop = 0
        self.backoffs: list[float] = []
        self.recovery_shed = 0  # 503s the recovery measurement itself was answered
        self.tasks: list[asyncio.Task[None]] = []

    def search_path(self) -> str:
        return "/api/search?q=" + quote(self.queries.next(), safe="")

    async def client(self) -> None:
        """One connection: distinct searches back to back until the load stops; Retry-After after a 503."""
        conn = Connection(self.host, self.port)
        try:
            while not self.stopping:
                step = self.step
                assert step is not None
                path = self.search_path()
                self.in_flight += 1
                started = time.monotonic()
                try:
                    status, headers, _ = await conn.get(path)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    step.errors[type(exc).__name__] += 1
                    conn.close()
                    await asyncio.sleep(0.1)
                    continue
                finally:
                    self.in_flight -= 1
                ms = (time.monotonic() - started) * 1000
                step.statuses[status] += 1
                if status == 200:
                    step.accepted_ms.append(ms)
                elif status == 503:
                    step.shed_ms.append(ms)
                    retry = float(headers.get("retry-after", "1"))
                    pause = retry * self.rng.uniform(*BACKOFF)
                    self.backoffs.append(pause)
                    await asyncio.sleep(pause)
        finally:
            conn.close()

    async def probe(self, name: str, path: str) -> None:
        conn = Connection(self.host, self.port)
        try:
            while not self.stopping:
                step = self.step
                assert step is not None
                started = time.monotonic()
                try:
                    status, _, _ = await conn.get(path)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    step.probe_bad[f"{name}: {type(exc).__name__}"] += 1
                    conn.close()
                    status = 0
                elapsed = time.monotonic() - started
                if status == 200:
                    step.probe_ms[name].append(elapsed * 1000)
                elif status:
                    step.probe_bad[f"{name}: {status}"] += 1
                await asyncio.sleep(max(0.0, PROBE_EVERY - elapsed))
        finally:
            conn.close()

    async def sample(self) -> None:
        """The client's loop lag (how late a short sleep wakes) and the workers' RSS."""
        next_rss = 0.0
        while not self.stopping:
            before = time.monotonic()
            await asyncio.sleep(LAG_EVERY)
            now = time.monotonic()
            step = self.step
            assert step is not None
            step.lag_ms.append(max(0.0, (now - before - LAG_EVERY) * 1000))
            if now >= next_rss:
                next_rss = now + RSS_EVERY
                for pid in self.workers:
                    mb = rss_mb(pid)
                    if mb is not None:
                        step.rss_mb[pid] = max(step.rss_mb.get(pid, 0.0), mb)

    async def steps(self, plan: list[int], seconds: float, on_step: Any) -> list[Step]:
        done: list[Step] = []
        tasks = self.tasks
        for connections in plan:
            step = Step(connections)
            self.step = step
            if not tasks:
                tasks += [asyncio.ensure_future(self.sample()),
                          asyncio.ensure_future(self.probe("healthz", "/healthz")),
                          asyncio.ensure_future(self.probe("cached", self.cached_path))]  # fmt: skip
            clients = len(tasks) - 3
            tasks += [asyncio.ensure_future(self.client()) for _ in range(max(0, connections - clients))]
            started = time.monotonic()
            await asyncio.sleep(seconds)
            step.seconds = time.monotonic() - started
            done.append(step)
            on_step(step)
        self.stopping = True
        self.stopped_at = time.monotonic()
        self.in_flight_at_stop = self.in_flight
        return done

    async def finish(self) -> None:
        """End what is left of the load: connections still in a Retry-After pause (nothing more is
        measured once recovery is)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def recovery(self) -> tuple[float | None, int]:
        """Seconds from the load's end until a fresh distinct search is answered 200 (tried every
        50 ms on a new connection, Retry-After not honoured: this is the measurement), and tries."""
        tries = 0
        while time.monotonic() - self.stopped_at < RECOVERY_GIVE_UP:
            tries += 1
            conn = Connection(self.host, self.port)
            try:
                status, _, _ = await conn.get(self.search_path())
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
            finally:
                conn.close()
            if status == 200:
                return time.monotonic() - self.stopped_at, tries
            self.recovery_shed += status == 503
            await asyncio.sleep(0.05)
        return None, tries


async def warm(host: str, port: int, path: str, workers: int) -> None:
    """Answer ``path`` on every worker, with the very request the probe sends (the response cache's
    key includes the negotiated encoding): new connections spread over the workers, and the shared
    response store passes an answer on too. The probe's page is then a cache hit from the start."""
    for _ in range(max(4, 4 * workers)):
        conn = Connection(host, port)
        try:
            status, _, _ = await conn.get(path)
        finally:
            conn.close()
        if status != 200:
            sys.exit(f"{path}: {status} while warming up")


def prime(url: str, queries: DistinctQueries, workers: int) -> None:
    """A few distinct searches on every worker first (not measured): first-use costs are not load."""
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(4 * workers):
            http.get("/api/search", params={"q": queries.next()})


def print_step(step: Step, deadline: float) -> None:
    s = step.summary(deadline)
    acc, probes, lag = s["accepted_ms"], s["probe_ms"], s["client_loop_lag_ms"]
    other = ", ".join(f"{k}: {v}" for k, v in {**s["other_statuses"], **s["errors"]}.items()) or "0"
    print(f"\n{step.connections} connections, {s['seconds']:.1f} s: {s['requests']} requests, "
          f"{s['accepted']} accepted (200), {s['shed']} shed (503, {s['shed_fraction']:.1%}), other: {other}")
    if deadline <= 0:
        against = "no deadline"
    else:
        verdict = "under" if acc["p99"] <= deadline * 1000 else "OVER" if step.accepted_ms else "n/a"
        against = f"deadline {deadline * 1000:.0f} ms: p99 {verdict}"
    print(f"  accepted ms      p50 {acc['p50']:8.1f}  p95 {acc['p95']:8.1f}  p99 {acc['p99']:8.1f}  "
          f"max {acc['max']:8.1f}   ({against})")
    if step.shed_ms:
        shed = s["shed_ms"]
        print(f"  shed ms          p50 {shed['p50']:8.1f}  p95 {shed['p95']:8.1f}  p99 {shed['p99']:8.1f}  "
              f"max {shed['max']:8.1f}   (time to be refused)")
    for name, values in probes.items():
        verdict = "ok" if values["max"] <= PROBE_TARGET_MS else f"over {PROBE_TARGET_MS:.0f} ms"
        print(f"  probe {name:<9}  p50 {values['p50']:8.1f}  p99 {values['p99']:8.1f}  max {values['max']:8.1f}   "
              f"({len(step.probe_ms[name])} probes, max {verdict})")
    if step.probe_bad:
        print(f"  probe failures   {dict(step.probe_bad)}")
    print(f"  client loop lag  p50 {lag['p50']:8.1f}  p99 {lag['p99']:8.1f}  max {lag['max']:8.1f}   "
          "(included in the probes' figures)")
    print("  worker max RSS   " + ", ".join(f"pid {pid}: {mb:.0f} MB" for pid, mb in sorted(step.rss_mb.items())),
          flush=True)


def shed_counters(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {reason: float(value) for reason, value in SHED_LINE.findall(text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, default=BENCH_INDEX, help=f"default {BENCH_INDEX}")
    parser.add_argument("--steps", default="16,64,256", help="connections of each step (default 16,64,256)")
    parser.add_argument("--step-seconds", type=float, default=30.0, help="seconds per step (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--engine-threads", type=int, help="engine threads per worker (default: the service's)")
    parser.add_argument("--queue", type=int, help="SEARCHSVC_ADMISSION_QUEUE (default: the service's)")
    parser.add_argument("--deadline", type=float, help="SEARCHSVC_ADMISSION_DEADLINE, seconds (default: the service's)")
    parser.add_argument("--no-access-log", action="store_true", help="run the service without its JSON access log")
    parser.add_argument("--titles", type=int, default=20000,
                        help="corpus titles to cut queries from besides the index's own (default 20000)")
    parser.add_argument("--seed", type=int, default=20140627)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        plan = [int(n) for n in args.steps.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--steps must be comma-separated numbers of connections, not {args.steps!r}")
    if not plan or min(plan) < 1:
        parser.error("--steps needs at least one step of at least 1 connection")
    require_index(args.index_dir)
    settings: dict[str, str] = {}
    if args.queue is not None:
        settings["SEARCHSVC_ADMISSION_QUEUE"] = str(args.queue)
    if args.deadline is not None:
        settings["SEARCHSVC_ADMISSION_DEADLINE"] = str(args.deadline)
    config = Config.from_env(
        {"workers": args.workers, "engine_threads": args.engine_threads}, environ=settings
    )  # what the workers will run with (the same validation, so a bad value stops here)
    print(banner("bench_overload"), flush=True)
    # Code from before admission control (a baseline run from an older commit) has no such settings.
    admission = {name: getattr(config, name, None)
                 for name in ("admission_queue", "admission_queue_per_worker", "admission_deadline")}
    deadline = float(admission["admission_deadline"] or 0)
    print(f"service: {args.workers} workers x {config.engine_threads} engine threads, "
          + (f"admission queue {admission['admission_queue']} on the machine "
             f"({admission['admission_queue_per_worker']} per worker), deadline {deadline:g} s"
             if admission["admission_queue"] is not None else "no admission control (older code)")
          + f"; index {args.index_dir}")
    print(f"load: steps {plan} connections x {args.step_seconds:g} s of distinct /api/search, one asyncio process "
          f"(raw HTTP/1.1 keep-alive); after a 503 a connection waits Retry-After x uniform{BACKOFF}; probes "
          f"/healthz and a cached search page every {PROBE_EVERY * 1000:.0f} ms each", flush=True)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp_name:
        tmp = Path(tmp_name)
        serve_args = argparse.Namespace(index_dir=args.index_dir, workers=args.workers,
                                        engine_threads=args.engine_threads, no_access_log=args.no_access_log)
        with start_service(serve_args, tmp, settings) as server:
            titles = index_titles(server.url)
            if CORPUS.is_file() and args.titles > 0:
                titles += corpus_titles(args.titles)
            warm_query = SEED_WORDS[0]
            cached_path = "/search?q=" + quote(warm_query, safe="")
            queries = DistinctQueries(titles, rng, exclude={warm_query})
            prime(server.url, queries, args.workers)
            workers = worker_pids(server.proc.pid)
            before = shed_counters(server.url)
            bench = Bench(server.url, queries, cached_path, workers, rng)

            async def run() -> tuple[list[Step], float | None, int]:
                await warm(bench.host, bench.port, cached_path, args.workers)
                steps = await bench.steps(plan, args.step_seconds, lambda step: print_step(step, deadline))
                recovered, tries = await bench.recovery()
                await bench.finish()
                return steps, recovered, tries

            steps, recovered, tries = asyncio.run(run())
            time.sleep(1.0)
            rss_after = {pid: rss_mb(pid) for pid in workers}
            peak = {pid: rss_mb(pid, "VmHWM") for pid in workers}
            after = shed_counters(server.url)
    shed_by_service = {reason: after.get(reason, 0) - before.get(reason, 0) for reason in after}
    shed_seen = sum(step.statuses[503] for step in steps)
    backoffs = bench.backoffs
    print(f"\nload stopped with {bench.in_flight_at_stop} requests in flight")
    if recovered is None:
        print(f"recovery: no fresh distinct search answered 200 within {RECOVERY_GIVE_UP:.0f} s ({tries} tries)")
    else:
        print(f"recovery: a fresh distinct search answered 200 {recovered:.2f} s after the load stopped "
              f"({tries} tries, every 50 ms)")
    print("worker RSS 1 s later: " + ", ".join(f"pid {pid}: {mb or 0:.0f} MB (peak {peak[pid] or 0:.0f} MB)"
                                               for pid, mb in rss_after.items()))  # fmt: skip
    print(f"shed counted by the service: {shed_by_service} (sum {sum(shed_by_service.values()):.0f}); "
          f"503s the client saw: {shed_seen} under load, {bench.recovery_shed} while measuring the recovery")
    if backoffs:
        print(f"back-off after a 503: {len(backoffs)} pauses, p50 {percentile(backoffs, 50):.2f} s, "
              f"max {max(backoffs):.2f} s")
    print(f"machine: {load_note()} (end)")
    other = sum(step.other for step in steps) + sum(sum(step.probe_bad.values()) for step in steps)
    if args.json:
        args.json.write_text(json.dumps({
            "settings": {k: str(v) for k, v in vars(args).items()},
            "service": {"workers": args.workers, "engine_threads": config.engine_threads, **admission},
            "backoff": {"rule": f"Retry-After x uniform{BACKOFF}", "pauses": len(backoffs),
                        "p50_s": percentile(backoffs, 50) if backoffs else None},
            "steps": [step.summary(deadline) for step in steps],
            "recovery_s": recovered, "in_flight_at_stop": bench.in_flight_at_stop,
            "worker_rss_mb_after": {str(p): mb for p, mb in rss_after.items()},
            "worker_peak_rss_mb": {str(p): mb for p, mb in peak.items()},
            "shed_by_service": shed_by_service, "shed_seen": shed_seen, "shed_during_recovery": bench.recovery_shed,
        }, indent=2), encoding="utf-8")  # fmt: skip
    return 1 if other or recovered is None else 0


if __name__ == "__main__":
    sys.exit(main())
