"""A worker process killed under load: uvicorn's supervisor replaces it and the service keeps answering.

``searchsvc serve --workers 2`` runs uvicorn's ``Multiprocess`` supervisor (``searchsvc.server``):
the master holds the listening socket and pings every worker each 0.5 s; a dead worker is reaped
and a new one started. These tests SIGKILL workers (found as the master's children in /proc) while
four client threads send requests, and check:

* the worker count is back to 2 within 10 s, with a new pid, and the new worker serves requests;
* the only failed requests are the ones in flight on the killed worker (at most the client
  concurrency), every other request succeeds, and requests keep being answered meanwhile;
* with every worker killed at once, requests sent during the gap wait in the master's listen
  backlog and are answered by the replacements (no "connection refused").
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from service_helpers import ServiceProcess, running_service

from benchkit.procinfo import children, cmdline

CONCURRENCY = 4
# Seconds for the worker count to be back to 2. uvicorn's supervisor checks its workers every 0.5 s;
# a kill that lands while it waits for a worker's health-check answer costs its 5 s timeout
# (timeout_worker_healthcheck), more likely on a busy machine. With every worker killed at once,
# two of those can add up.
RESTART_WITHIN = 10.0
ALL_RESTART_WITHIN = 15.0
PATHS = (
    "/api/search?q=b%C3%B3ng+%C4%91%C3%A1",
    "/search?q=dak+nong",
    "/api/suggest?q=dak",
    "/c/the-thao",
    "/feeds/all.rss",
    "/api/search?q=c%C3%A0+ph%C3%AA&sort=newest",
)


# --- processes, from /proc -------------------------------------------------------------------------


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def worker_pids(master: int) -> set[int]:
    """Live uvicorn workers: spawned children of the master (not multiprocessing's resource
    tracker, not a killed worker waiting to be reaped: a zombie has no command line)."""
    return {c for c in children(master) if "spawn_main" in cmdline(c) and state(c) not in ("Z", "X", "gone")}


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def started_workers(svc: ServiceProcess) -> int:
    return svc.log().count("Application startup complete")


# --- the client load -------------------------------------------------------------------------------


@dataclass
class Outcome:
    start: float
    end: float
    path: str
    status: int | None
    error: str | None = None
    client: int = 0


@dataclass
class Load:
    """``CONCURRENCY`` threads, each a keep-alive client sending requests back to back."""

    url: str
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, n: int) -> None:
        i = n
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stop.is_set():
                path = PATHS[i % len(PATHS)]
                i += 1
                start = time.monotonic()
                try:
                    status, error = client.get(path).status_code, None
                except httpx.HTTPError as exc:
                    status, error = None, f"{type(exc).__name__}: {exc}"
                with self.lock:
                    self.outcomes.append(Outcome(start, time.monotonic(), path, status, error, n))

    def between(self, t0: float, t1: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if t0 <= o.end < t1]

    def failures(self) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.status != 200]


@contextmanager
def load(url: str) -> Iterator[Load]:
    state_ = Load(url)
    threads = [threading.Thread(target=state_.run, args=(n,), daemon=True) for n in range(CONCURRENCY)]
    for t in threads:
        t.start()
    try:
        yield state_
    finally:
        state_.stop.set()
        for t in threads:
            t.join(timeout=40)


def wait_until_serving(svc: ServiceProcess, expected_starts: int) -> None:
    assert wait_for(lambda: started_workers(svc) >= expected_starts, RESTART_WITHIN), svc.log()[-3000:]


def assert_new_worker_serves(svc: ServiceProcess, pid: int) -> None:
    """Fresh connections are spread over the workers by the kernel: the new one must take some
    (its CPU time grows well beyond what the supervisor's 0.5 s health pings cost)."""
    before = cpu_ticks(pid)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for _ in range(20):
            with httpx.Client(base_url=svc.url, timeout=10) as fresh:
                assert fresh.get("/search", params={"q": "bóng đá"}).status_code == 200
        if cpu_ticks(pid) - before >= 10:  # 0.1 s of CPU
            return
    raise AssertionError(f"the replacement worker {pid} took no requests ({cpu_ticks(pid) - before} ticks)")


def assert_in_flight_only(failures: list[Outcome], killed_at: float) -> None:
    """Only requests in flight on the dying worker fail: one per client connection at most, and
    only around the kill (the kernel takes a few ms to reset a killed process's sockets)."""
    details = (f"killed at {killed_at:.3f}: "
               + "; ".join(f"client {f.client} {f.start:.3f}-{f.end:.3f} {f.path} {f.error}" for f in failures))
    assert len({f.client for f in failures}) == len(failures), details
    assert all(f.start <= killed_at + 0.5 for f in failures), details


# --- tests -----------------------------------------------------------------------------------------


def test_killed_worker_is_replaced_under_load(built_index: Path, tmp_path: Path) -> None:
    with running_service(built_index, tmp_path / "logs", workers=2) as svc:
        master = svc.proc.pid
        wait_until_serving(svc, 2)
        original = wait_for(lambda: (w := worker_pids(master)) and len(w) == 2 and w, 10)
        assert original and len(original) == 2, (children(master), svc.log()[-2000:])
        starts = 2
        with load(svc.url) as client:
            time.sleep(1.5)  # steady state: every client has a live keep-alive connection
            for round_ in range(2):  # kill each of the original workers in turn
                victim = sorted(original)[round_]
                before = worker_pids(master)
                assert victim in before
                failures_before = len(client.failures())
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)

                # wait_for polls now, within this round: the default binds this round's victim.
                replaced = wait_for(
                    lambda victim=victim: (w := worker_pids(master)) and len(w) == 2 and victim not in w and w,
                    RESTART_WITHIN,
                )
                spawned = time.monotonic() - killed_at
                assert replaced, f"round {round_}: workers {worker_pids(master)} {RESTART_WITHIN}s after the kill"
                starts += 1
                wait_until_serving(svc, starts)
                restart_time = time.monotonic() - killed_at
                time.sleep(1.0)
                new_pid = (replaced - before).pop()

                new_failures = client.failures()[failures_before:]
                assert len(new_failures) <= CONCURRENCY, [vars(f) for f in new_failures]
                assert_in_flight_only(new_failures, killed_at)
                answered = [o for o in client.between(killed_at, time.monotonic()) if o.status == 200]
                assert len(answered) >= 20, f"only {len(answered)} answers after the kill"
                # the surviving worker kept answering while the replacement started
                during = [o for o in answered if o.end < killed_at + restart_time]
                assert during, "no request was answered while the worker was being replaced"
                assert f"Child process [{victim}] died" in svc.log()
                assert_new_worker_serves(svc, new_pid)
                print(f"round {round_}: killed {victim}; new worker {new_pid} spawned after {spawned:.2f}s, serving "
                      f"after {restart_time:.2f}s; {len(new_failures)} requests failed (in flight), "
                      f"{len(during)} answered by the other worker meanwhile")
            time.sleep(0.5)
        total = len(client.outcomes)
        failed = client.failures()
        assert total > 200, total
        assert len(failed) <= 2 * CONCURRENCY, [vars(f) for f in failed]
        assert all(f.error for f in failed), "a failure was an HTTP error status, not a dropped connection"
        with httpx.Client(base_url=svc.url, timeout=10) as http:
            assert http.get("/readyz").status_code == 200
            assert "searchsvc_http_requests_total" in http.get("/metrics").text  # dead workers' files merge fine
        assert "unhandled error" not in svc.log()


def test_all_workers_killed_at_once(built_index: Path, tmp_path: Path) -> None:
    """Both workers die together: the master keeps the listening socket, so connections made
    during the gap wait in its backlog and are answered once the replacements are up."""
    with running_service(built_index, tmp_path / "logs", workers=2) as svc:
        master = svc.proc.pid
        wait_until_serving(svc, 2)
        original = wait_for(lambda: (w := worker_pids(master)) and len(w) == 2 and w, 10)
        assert original
        with load(svc.url) as client:
            time.sleep(1.0)
            killed_at = time.monotonic()
            for pid in original:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)  # the killed sockets are reset; no replacement has started its app yet
            none_alive = started_workers(svc) == 2
            probe_start = time.monotonic()
            with httpx.Client(base_url=svc.url, timeout=30) as fresh:
                probe = fresh.get("/search", params={"q": "bóng đá"})
            probe_wait = time.monotonic() - probe_start
            replaced = wait_for(lambda: (w := worker_pids(master)) and len(w) == 2 and not (w & original) and w,
                                ALL_RESTART_WITHIN)
            assert replaced, worker_pids(master)
            wait_until_serving(svc, 4)
            serving = time.monotonic() - killed_at
            time.sleep(1.5)
        failed = client.failures()
        assert len(failed) <= CONCURRENCY, [vars(f) for f in failed]
        assert_in_flight_only(failed, killed_at)
        # a request sent while no worker was alive waited in the backlog and was answered, not refused
        assert probe.status_code == 200, probe.text[:300]
        after = [o for o in client.outcomes if o.start > killed_at + 0.5]
        assert len(after) > 50 and all(o.status == 200 for o in after)
        print(f"all workers killed: {len(failed)} requests failed (in flight); a request sent 0.3 s later "
              f"{'(no worker alive) ' if none_alive else ''}was answered after {probe_wait:.2f}s; both "
              f"replacements serving after {serving:.2f}s")
