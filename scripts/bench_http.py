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
import contextlib
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from procinfo import free_port, stop  # scripts/ is on sys.path: run as a script, or app_dir for uvicorn

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = Path(__file__).resolve().parent
DEFAULT_INDEX = REPO_ROOT / "var" / "bench-index"
CORPUS_FILE = REPO_ROOT.parent / "shared" / "corpus" / "vntc.jsonl.gz"
SEED_WORDS = ["đắk nông", "bóng đá", "giá", "học sinh", "kinh tế", "hà nội", "du lịch", "sức khỏe", "công an",
              "thời tiết", "xuất khẩu", "giáo dục", "văn hóa", "tỉnh", "người dân"]  # fmt: skip
ROUTES = ("search", "suggest", "article_json", "search_page", "article_page", "revalidate_304")

LUA = r"""
-- Request mix for searchsvc: cycles through BENCH_PATHS ("path" or "path<TAB>etag" per line),
-- counts responses whose status is not BENCH_EXPECT, and prints one JSON line at the end.
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

local i, expect = 0, 200
ok, bad = 0, 0
function init(args)
  i = ((id or 1) * 7919) % #paths
  expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
end

function request()
  i = i % #paths + 1
  local headers = { ["Accept-Encoding"] = "gzip" }
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


def hello_app():  # noqa: ANN201  (imported by uvicorn in the ceiling run: "bench_http:hello_app")
    """The ceiling: the smallest Starlette app, same server, same settings, no work at all."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request):  # noqa: ANN001, ANN202
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


@dataclass
class Result:
    route: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int


def ensure_wrk() -> str:
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


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    import httpx

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


def titles_from_corpus(limit: int) -> list[str]:
    titles: list[str] = []
    if not CORPUS_FILE.exists():
        return titles
    with gzip.open(CORPUS_FILE, "rt", encoding="utf-8") as handle:
        for line in handle:
            try:
                title = json.loads(line).get("title")
            except ValueError:
                continue
            if title:
                titles.append(title)
            if len(titles) >= limit:
                break
    return titles


def build_mix(base: str, n: int, rng: random.Random) -> dict[str, list[str]]:
    """Paths per route, drawn from the index's own titles so that queries really match."""
    import httpx

    titles: list[str] = []
    ids: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for seed in [""] + SEED_WORDS:
            body = http.get("/api/search", params={"q": seed, "per_page": 100, "sort": "relevance"}).json()
            for hit in body.get("hits", []):
                titles.append(hit["title"])
                ids.append(hit["id"])
        titles += titles_from_corpus(n)
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
        revalidate = []
        for path in search_paths[: max(1, n // 4)]:
            etag = http.get(path, headers={"Accept-Encoding": "gzip"}).headers.get("etag")
            if etag:
                revalidate.append(f"{path}\t{etag}")
        mix["revalidate_304"] = revalidate
    return mix


def prime(url: str, paths: list[str], expect: int) -> None:
    """Pay one-time costs (per-worker searchers, the suggester built on first use) before timing.

    A few concurrent requests so that every worker sees the route; a long timeout, because on the
    full corpus the first suggest call builds an index of prefixes for several seconds.
    """
    import concurrent.futures

    import httpx

    def one(line: str) -> int:
        path, _, etag = line.partition("\t")
        headers = {"Accept-Encoding": "gzip", **({"If-None-Match": etag} if etag else {})}
        return httpx.get(url + path, headers=headers, timeout=300).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, (paths * 8)[:16]))
    if any(status != expect for status in statuses):
        print(f"    warning: priming got statuses {sorted(set(statuses))}, expected {expect}", file=sys.stderr)


def run_wrk(
    wrk: str, url: str, paths: list[str], expect: int, args: argparse.Namespace, tmp: Path, name: str
) -> Result:
    paths_file = tmp / f"{name}.paths"
    paths_file.write_text("\n".join(paths) + "\n", encoding="utf-8")
    script = tmp / "mix.lua"
    env = {**os.environ, "BENCH_PATHS": str(paths_file), "BENCH_EXPECT": str(expect)}
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
           "-s", str(script), url]  # fmt: skip
    if args.warmup > 0:
        subprocess.run([*cmd[:3], f"-d{args.warmup}s", *cmd[4:]], env=env, capture_output=True, timeout=args.warmup + 60)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        sys.exit(f"wrk failed for {name}:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
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


@dataclass
class Server:
    proc: subprocess.Popen
    url: str


@contextlib.contextmanager
def start_service(args: argparse.Namespace, tmp: Path) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_")}
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
def start_hello(args: argparse.Namespace, tmp: Path) -> Iterator[Server]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The same runner as ``searchsvc serve`` (searchsvc.server.run_uvicorn), so same uvicorn settings.
    code = (
        "from searchsvc.config import Config; from searchsvc.server import run_uvicorn; "
        "run_uvicorn(Config(host='127.0.0.1', port=%d, workers=%d, log_level='warning'), "
        "app='bench_http:hello_app', app_dir=%r)" % (port, args.workers, str(SCRIPTS_DIR))
    )
    log = open(tmp / "hello.log", "ab")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(url + "/", 60, proc)
        yield Server(proc, url)
    finally:
        stop(proc)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", type=Path, default=DEFAULT_INDEX, help=f"default {DEFAULT_INDEX}")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per route (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load before each route")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--engine-threads", type=int, help="engine threads per worker (default: the service's)")
    parser.add_argument("--queries", type=int, default=300, help="distinct requests per route (default 300)")
    parser.add_argument("--routes", default=",".join(ROUTES), help="comma-separated subset of: " + ", ".join(ROUTES))
    parser.add_argument("--no-access-log", action="store_true", help="run without the JSON access log")
    parser.add_argument("--seed", type=int, default=20140627)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    unknown = set(routes) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes: {', '.join(sorted(unknown))}")
    if not args.index_dir.exists():
        sys.exit(f"no index at {args.index_dir}: build it with scripts/bench_index.py, or pass --index-dir")
    wrk = ensure_wrk()
    rng = random.Random(args.seed)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "mix.lua").write_text(LUA, encoding="utf-8")
        with start_service(args, tmp) as server:
            mix = build_mix(server.url, args.queries, rng)
            for name in routes:
                expect = 304 if name == "revalidate_304" else 200
                print(f"  {name}: {len(mix[name])} distinct requests, {args.duration}s...", file=sys.stderr)
                prime(server.url, mix[name], expect)
                results.append(run_wrk(wrk, server.url, mix[name], expect, args, tmp, name))
        with start_hello(args, tmp) as server:
            print(f"  hello (ceiling): {args.duration}s...", file=sys.stderr)
            prime(server.url, ["/"], 200)
            ceiling = run_wrk(wrk, server.url, ["/"], 200, args, tmp, "hello")

    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, uvicorn workers={args.workers}, "
          f"index {args.index_dir}, {os.cpu_count()} CPUs (load generator and server share them)\n")  # fmt: skip
    header = f"{'route':<16} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'of hello':>9}"
    print(header)
    print("-" * len(header))
    for r in [*results, ceiling]:
        share = r.rps / ceiling.rps if ceiling.rps else 0.0
        print(f"{r.route:<16} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7d} {share:>8.1%}")
    if args.json:
        args.json.write_text(
            json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                        "results": [vars(r) for r in results], "ceiling": vars(ceiling)}, indent=2),
            encoding="utf-8",
        )  # fmt: skip
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
