"""Running ``searchsvc serve`` and the bare ceilings (``benchkit.apps``) under wrk, on loopback only.

Two ceilings: the stock one (``start_stock_ceiling``: a bare app on stock uvicorn[standard], the
most this machine serves a Starlette app at) and ours (``start_ceiling``: the same app through
``searchsvc.server.run_uvicorn``, what our server settings alone leave of it).

Shared by ``scripts/bench_http.py`` and ``scripts/bench_feeds.py``. wrk reports its own latency
percentiles; they follow the same rule as ``benchkit.report.percentile`` (see there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchkit.corpus import BENCH_INDEX, REPO_ROOT
from benchkit.procinfo import free_port, stop

# Queries that find articles in any index of the corpus: the request mixes start from their hits.
SEED_WORDS = ["đắk nông", "bóng đá", "giá", "học sinh", "kinh tế", "hà nội", "du lịch", "sức khỏe", "công an",
              "thời tiết", "xuất khẩu", "giáo dục", "văn hóa", "tỉnh", "người dân"]  # fmt: skip

LUA = r"""
-- Request mix for searchsvc: cycles through BENCH_PATHS ("path" or "path<TAB>etag" per line),
-- sends Accept-Encoding: gzip unless BENCH_GZIP=0, counts responses whose status is not
-- BENCH_EXPECT, and prints one JSON line at the end.
local paths, etags = {}, {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  local path, etag = line:match("^([^\t]+)\t?(.*)$")
  if path then
    paths[#paths + 1] = path
    etags[#etags + 1] = etag or ""
  end
end

local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

local i, expect, gzip, tab = 0, 200, true, false
ok, bad = 0, 0
function init(args)
  i = ((id or 1) * 7919) % #paths
  expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
  gzip = os.getenv("BENCH_GZIP") ~= "0"
  tab = os.getenv("BENCH_TAB") == "1"
end

function request()
  i = i % #paths + 1
  local headers = {}
  if gzip then headers["Accept-Encoding"] = "gzip" end
  if tab then
    headers["Sec-Fetch-Dest"] = "document"
    headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
  end
  if etags[i] ~= "" then headers["If-None-Match"] = etags[i] end
  return wrk.format("GET", paths[i], headers)
end

function response(status, headers, body)
  if status == expect then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"ok":%d,"unexpected":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    ok_total, bad_total))
end
"""


def add_arguments(parser: argparse.ArgumentParser, duration_help: str, warmup_help: str) -> None:
    """The options ``start_service`` and ``run_wrk`` read, with the defaults both benchmarks use."""
    parser.add_argument("--index-dir", type=Path, default=BENCH_INDEX, help=f"default {BENCH_INDEX}")
    parser.add_argument("--duration", type=int, default=20, help=f"{duration_help} (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help=f"{warmup_help} (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--engine-threads", type=int, help="engine threads per worker (default: the service's)")
    parser.add_argument("--no-access-log", action="store_true", help="run the service without its JSON access log")
    parser.add_argument("--seed", type=int, default=20140627)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")


def parse_subset(parser: argparse.ArgumentParser, text: str, known: tuple[str, ...]) -> list[str]:
    """The names in comma-separated ``text``, each one of ``known`` (else a usage error naming it)."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(chosen) - set(known)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    return chosen


def require_index(index_dir: Path) -> None:
    """Exit with the way to build one when ``index_dir`` holds no index."""
    if not index_dir.exists():
        sys.exit(f"no index at {index_dir}: build it with scripts/bench_index.py, or pass --index-dir")


@dataclass
class Result:
    route: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str


def ensure_wrk() -> str:
    """wrk's path, installed from Debian's package with apt-get when missing (as root)."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk with apt-get...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, stdout=subprocess.DEVNULL, check=False)
        path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is not installed and could not be installed (need root and apt-get): apt-get install wrk")
    return path


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Until ``url`` answers 200; exits when the server dies or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode} while starting")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer 200 within {timeout:.0f}s")


def run_wrk(wrk: str, url: str, paths: list[str], expect: int, args: argparse.Namespace, tmp: Path, name: str,
            gzip: bool = True, tab: bool = False) -> Result:  # fmt: skip
    """One wrk run over ``paths`` (``args``: threads, connections, duration and warmup seconds);
    ``tab``: send what a browser tab sends (``Sec-Fetch-Dest: document``, an HTML Accept)."""
    paths_file = tmp / f"{name}.paths"
    paths_file.write_text("\n".join(paths) + "\n", encoding="utf-8")
    script = tmp / "mix.lua"
    if not script.exists():
        script.write_text(LUA, encoding="utf-8")
    env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_EXPECT": str(expect),
           "BENCH_GZIP": "1" if gzip else "0", "BENCH_TAB": "1" if tab else "0"}  # fmt: skip
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
           "-s", str(script), url]  # fmt: skip
    if args.warmup > 0:
        warmup = [*cmd[:3], f"-d{args.warmup}s", *cmd[4:]]
        subprocess.run(warmup, env=env, capture_output=True, timeout=args.warmup + 60)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        sys.exit(f"wrk failed for {name}:\n{proc.stdout}\n{proc.stderr}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["unexpected"]
    if data["requests"] == 0:
        errors = max(errors, 1)  # nothing answered within the run: a failure, whatever wrk counted
    return Result(
        route=name,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        errors=errors,
        requests=data["requests"],
    )


@contextlib.contextmanager
def start_service(args: argparse.Namespace, tmp: Path, settings: dict[str, str] | None = None) -> Iterator[Server]:
    """``searchsvc serve`` on ``args.index_dir`` with ``args.workers`` workers, until ready.
    ``settings``: ``SEARCHSVC_*`` variables for it (none is inherited from this environment)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_")}
    env.update(settings or {})
    if args.no_access_log:
        env["SEARCHSVC_ACCESS_LOG"] = "0"
    log = open(tmp / "server.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchsvc", "serve", "--index-dir", str(args.index_dir), "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(args.workers), "--base-url", url,
         *(["--engine-threads", str(args.engine_threads)] if getattr(args, "engine_threads", None) else [])],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(url + "/readyz", 120, proc)
        yield Server(proc, url)
    finally:
        stop(proc)
        log.close()


@contextlib.contextmanager
def _run_ceiling(cmd: list[str], name: str, tmp: Path, ready_path: str,
                 env: dict[str, str] | None) -> Iterator[Server]:  # fmt: skip
    """A ceiling server process (``cmd``, which listens on the port ``cmd`` names), until ready."""
    port = int(cmd[-1])
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / f"{name}.log", "ab")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(url + ready_path, 60, proc)
        yield Server(proc, url)
    finally:
        stop(proc)
        log.close()


def start_ceiling(app: str, workers: int, tmp: Path, ready_path: str = "/", env: dict[str, str] | None = None,
                  http: str = "httptools") -> contextlib.AbstractContextManager[Server]:  # fmt: skip
    """A bare app (``benchkit.apps:...``) through the runner of ``searchsvc serve``
    (``searchsvc.server.run_uvicorn``), so that it runs under exactly the service's uvicorn settings
    (``http``: the protocol, ``SEARCHSVC_HTTP``): what our server settings alone leave of the
    stock ceiling."""
    port = free_port()
    code = (
        "import sys; from searchsvc.config import Config; from searchsvc.server import run_uvicorn; "
        f"run_uvicorn(Config(host='127.0.0.1', port=int(sys.argv[1]), workers={workers}, log_level='warning', "
        f"http={http!r}), app={app!r})"
    )
    name = f"{app.rpartition(':')[2]}-{http}"
    return _run_ceiling([sys.executable, "-c", code, str(port)], name, tmp, ready_path, env)


# Stock uvicorn[standard] as its documentation runs it: httptools and uvloop, uvicorn's own
# multi-worker socket, no access log. ``benchkit.apps`` are factories.
STOCK_UVICORN = ("--factory", "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning")


def start_stock_ceiling(app: str, workers: int, tmp: Path, ready_path: str = "/",
                        env: dict[str, str] | None = None) -> contextlib.AbstractContextManager[Server]:  # fmt: skip
    """A bare app on stock ``uvicorn[standard]`` (``python -m uvicorn APP --workers N --http
    httptools --loop uvloop``), not through ``run_uvicorn``: none of our protocol classes, socket
    or worker settings. The honest ceiling: the most a Starlette app can be served at here."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, *STOCK_UVICORN, "--workers", str(workers), "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    return _run_ceiling(cmd, f"{app.rpartition(':')[2]}-stock", tmp, ready_path, env)


def start_hello(args: argparse.Namespace, tmp: Path,
                http: str = "httptools") -> contextlib.AbstractContextManager[Server]:  # fmt: skip
    """The "hello" ceiling under our settings (``run_uvicorn``), with as many workers as the service."""
    return start_ceiling("benchkit.apps:hello_app", args.workers, tmp, http=http)


def start_stock_hello(args: argparse.Namespace, tmp: Path) -> contextlib.AbstractContextManager[Server]:
    """The "hello" ceiling on stock uvicorn[standard], with as many workers as the service."""
    return start_stock_ceiling("benchkit.apps:hello_app", args.workers, tmp)
