#!/usr/bin/env python
"""Cluster scaling benchmark: build cost, RAM per node and search latency of the Typesense engine by corpus size.

    .venv/bin/python scripts/bench_cluster.py                               # 10k, 20k, 40k, 65,553 articles; 1 node
    .venv/bin/python scripts/bench_cluster.py --nodes 3
    .venv/bin/python scripts/bench_cluster.py --sizes 2000,4000 --queries 30   # a quick check (~2 min)

Issue #13 asks how the cluster's cost grows with the archive, to extrapolate to 1 M and 10 M
articles (docs/scale-out.md). For each size, the first N articles of the shared corpus go into a
**fresh** ``searchsvc.devcluster`` (new folder, new server processes; stopped, and its folder
deleted unless ``--keep-dir``, before the next size starts). Fresh, because a server that held a
bigger or an earlier collection keeps some of that memory (the allocator does not hand every freed
page back), and ``VmHWM`` counts from the start of the process: with a new server per size, its
peak is that size's build.

Build: the empty collections and the alias made first, untimed (``prepare``), then
``ClusterWriter.index_articles(rebuild=True)``, what ``searchsvc index --rebuild --engine
typesense`` does (a new target filled, the alias swapped; no per-batch version reads or commits),
reading the corpus through the project's reader as it goes. Measured: wall time until the writer
returns, then the wait until every node holds every document (0 s on one node); CPU seconds of this
process (reading, analysis, JSON, HTTP client; "read" is the reader's share, CPU of this thread
inside it) and of each typesense-server (``/proc/PID/stat``, all threads, up to the end of that
wait); each node's resident set after the build (``VmRSS``) and its peak (``VmHWM``); each node's
data on disk: RocksDB (``db/``, ``meta/``: the documents, kept), measured after a compaction
(``POST /operations/db/compact`` on each node, after the memory and CPU readings: without it the
size depends on where RocksDB's background compaction happens to be), apart from the Raft log
(``state/``: every import as sent, until a Raft snapshot truncates it).

Search: ``scripts/bench_search.py``'s query generator over the same first N articles (``plain``,
``passage``, ``typo``, ``faceted``; ``--queries`` measured per kind after its 50 warm-up queries)
through ``TypesenseEngine.search``, one engine, one thread, snippets and facets on, after
``warm_up()`` (timed: it reads the whole vocabulary and every title into this process, a cost that
grows with the archive). Client-side latency only: the engine does not expose Typesense's
``search_time_ms``, and one search may make several requests.

Then a least-squares line per measure against the number of articles, and its value at 1 M and
10 M articles; the output says what such a linear extrapolation assumes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from benchkit.corpus import CORPUS, CORPUS_ARTICLES, iter_articles, require_corpus
from benchkit.report import banner, load_note, percentile
from benchkit.scaling import Line, cpu_seconds, dir_bytes, fit_line, memory
from index.article import VN_TZ, Article
from index.readers import ReadError
from index.typesense.connection import ClusterSettings
from index.typesense.engine import TypesenseEngine
from index.typesense.writer import DEFAULT_BATCH, MAX_BATCH, ClusterWriteError, ClusterWriter
from searchsvc.devcluster import ClusterError, DevCluster

DEFAULT_SIZES = (10_000, 20_000, 40_000, CORPUS_ARTICLES)
KINDS = ("plain", "passage", "typo", "faceted")
EXTRAPOLATE_TO = (1_000_000, 10_000_000)
REPLICATION_TIMEOUT = 600.0  # seconds for the followers to hold every document after the build
COMPACT_TIMEOUT = 600.0  # seconds for one node's RocksDB compaction
PREPARE_TIMEOUT = 60.0  # seconds for the empty collections and the alias to reach every node
PREFIX = "bench"
MB = 1024**2


def _bench_search() -> ModuleType:
    """``scripts/bench_search.py`` as a module: its query generator (``make_queries``, ``Source``)
    and runner (``run_whoosh``), so that the latencies here and there are the same statistic on the
    same kinds of query. Loaded from its file: ``scripts/`` is no package."""
    path = Path(__file__).with_name("bench_search.py")
    spec = importlib.util.spec_from_file_location("bench_search", path)
    if spec is None or spec.loader is None:
        sys.exit(f"error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


bench_search = _bench_search()


@dataclass
class Result:
    size: int  # articles asked for
    articles: int = 0  # documents in the collection after the build
    build_s: float = 0.0
    replication_s: float = 0.0
    read_cpu_s: float = 0.0
    ours_cpu_s: float = 0.0
    ts_cpu_s: list[float] = field(default_factory=list)  # per node
    rss: list[int] = field(default_factory=list)  # per node, bytes, after the build
    peak: list[int] = field(default_factory=list)  # per node, bytes, VmHWM after the build
    rss_searched: list[int] = field(default_factory=list)  # per node, after the searches
    data: list[int] = field(default_factory=list)  # per node, bytes: RocksDB (db/, meta/), compacted
    compact_s: float = 0.0  # seconds the compaction before measuring ``data`` took (every node)
    raft: list[int] = field(default_factory=list)  # per node, bytes: the Raft log and snapshot (state/)
    warm_up_s: float = 0.0
    latency: dict[str, list[float]] = field(default_factory=dict)  # kind -> ms
    empty: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # articles the reader or Typesense refused


class Reader(Iterator[Article | ReadError]):
    """The build's input: the reader's items, with the CPU time spent producing them (this thread's
    CPU, so the waits of the import in between are not counted) and a ``Source`` of every article
    kept for the query generator (so the corpus is read once per size)."""

    def __init__(self, items: Iterable[Article | ReadError], sources: list[Any]) -> None:
        self.items = iter(items)
        self.sources = sources
        self.cpu = 0.0

    def __iter__(self) -> Reader:
        return self

    def __next__(self) -> Article | ReadError:
        t0 = time.thread_time()
        try:
            item = next(self.items)
            if isinstance(item, Article):
                self.sources.append(bench_search.Source(item.title, item.category_slug,
                                                        item.published.astimezone(VN_TZ).date(), item.id,
                                                        item.body_text))
            return item
        finally:
            self.cpu += time.thread_time() - t0


def corpus_items(limit: int, errors: list[ReadError]) -> Iterator[Article | ReadError]:
    """The first ``limit`` articles; the reader's errors go to ``errors`` (and not to the writer,
    which would count them again)."""
    yield from iter_articles(limit, errors)


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_replicated(cluster: DevCluster, target: str, timeout: float) -> tuple[int, float]:
    """Wait until every node holds as many documents of ``target`` as the leader; (that number,
    seconds waited). ``index_articles`` returns once a majority has the writes: a follower may
    still be applying them, and its RSS and CPU are only comparable once it has."""
    started = time.monotonic()
    while True:
        counts = [st.collections.get(target) for st in cluster.status()]
        leader = cluster.leader()
        expected = counts[leader] if leader is not None else None
        if expected is not None and all(c == expected for c in counts):
            return expected, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise ClusterError(f"nodes hold {counts} documents of {target} after {timeout:.0f} s (leader {leader})")
        time.sleep(0.5)


def prepare(cluster: DevCluster, settings: ClusterSettings, timeout: float = PREPARE_TIMEOUT) -> None:
    """Create the collections and the alias (``ClusterWriter.ensure``) before the clock starts, and
    wait until every node has them. Why: the writer's client sends each request to the next node in
    turn, so ``ensure`` reads back the ``state`` document it has just created from another node,
    which on a busy machine may not have applied it yet ("the state document vanished", seen on a
    3-node cluster at load 6); ``ensure`` is idempotent, so it is tried again. The alias is its last
    write: a node that has it has everything before it (Raft applies in order)."""
    deadline = time.monotonic() + timeout
    with ClusterWriter(settings) as writer:
        while True:
            try:
                writer.ensure()
                break
            except ClusterWriteError as exc:
                if time.monotonic() > deadline:
                    raise
                print(f"  ensure() failed, trying again: {exc}", file=sys.stderr, flush=True)
                time.sleep(0.5)
    for node in cluster.nodes:
        while cluster.request(node.index, "GET", f"/aliases/{settings.alias}")[0] != 200:
            if time.monotonic() > deadline:
                raise ClusterError(f"node {node.index} has no alias {settings.alias} after {timeout:.0f} s")
            time.sleep(0.2)


def node_pids(cluster: DevCluster) -> list[int]:
    pids = [node.pid for node in cluster.nodes]
    if any(pid is None for pid in pids):
        raise ClusterError(f"a node is not running: pids {pids}")
    return [pid for pid in pids if pid is not None]


def measure(size: int, args: argparse.Namespace, base: Path) -> Result:
    """One size on a fresh cluster in ``base`` (see the module docstring); the cluster is stopped
    before this returns, whatever happens."""
    result = Result(size)
    cluster = DevCluster(base)
    try:
        began = time.monotonic()
        cluster.start(nodes=args.nodes)
        pids = node_pids(cluster)
        version = cluster.request(0, "GET", "/debug")[1]
        print(f"[{size:,}] {args.nodes}-node cluster ready in {time.monotonic() - began:.1f} s "
              f"(typesense {version.get('version', '?') if isinstance(version, dict) else '?'}, pids "
              f"{', '.join(map(str, pids))}, {base}); {load_note()}", file=sys.stderr, flush=True)
        assert cluster.api_key is not None
        settings = ClusterSettings(tuple(cluster.urls), cluster.api_key, PREFIX)
        prepare(cluster, settings)

        # -- build ----------------------------------------------------------------------------------
        errors: list[ReadError] = []
        sources: list[Any] = []
        reader = Reader(corpus_items(size, errors), sources)
        ts0 = [cpu_seconds(pid) for pid in pids]
        ours0 = own_cpu()
        t0 = time.perf_counter()
        with ClusterWriter(settings) as writer:
            report = writer.index_articles(reader, rebuild=True, batch=args.batch)
        result.build_s = time.perf_counter() - t0
        result.ours_cpu_s = own_cpu() - ours0
        result.read_cpu_s = reader.cpu
        target = report.generation.rpartition(".")[0]
        result.articles, result.replication_s = wait_replicated(cluster, target, REPLICATION_TIMEOUT)
        result.ts_cpu_s = [cpu_seconds(pid) - before for pid, before in zip(pids, ts0)]
        mems = [memory(pid) for pid in pids]
        result.rss = [m.rss for m in mems]
        result.peak = [m.peak for m in mems]
        t0 = time.perf_counter()
        for node in cluster.nodes:
            status, body = cluster.request(node.index, "POST", "/operations/db/compact", timeout=COMPACT_TIMEOUT)
            if status != 200:
                print(f"warning: node {node.index} did not compact ({status}: {body})", file=sys.stderr)
        result.compact_s = time.perf_counter() - t0
        result.data = [dir_bytes(node.data_dir / "db") + dir_bytes(node.data_dir / "meta") for node in cluster.nodes]
        result.raft = [dir_bytes(node.data_dir / "state") for node in cluster.nodes]
        result.skipped = sum(report.skipped.values()) + len(errors)
        print(f"[{size:,}] built: {report.summary()}; reader errors {len(errors)}; {result.build_s:.1f} s "
              f"(+{result.replication_s:.1f} s until every node had them; compaction {result.compact_s:.1f} s); "
              f"{load_note()}",
              file=sys.stderr, flush=True)

        # -- search ---------------------------------------------------------------------------------
        queries = bench_search.make_queries(sources, args.queries, args.seed)
        del sources, reader
        with TypesenseEngine.open(settings) as engine:
            t0 = time.perf_counter()
            engine.warm_up()
            result.warm_up_s = time.perf_counter() - t0
            for kind in KINDS:
                timing = bench_search.run_whoosh(engine, queries[kind], kind)
                result.latency[kind] = list(timing.ms)
                result.empty[kind] = int(timing.empty)
        result.rss_searched = [memory(pid).rss for pid in pids]
        print(f"[{size:,}] searched ({args.queries} per kind); {load_note()}", file=sys.stderr, flush=True)
        return result
    finally:
        if not cluster.stop():
            print(f"warning: some typesense-server of {base} did not stop", file=sys.stderr)


# -- output -----------------------------------------------------------------------------------------


def per_node(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    return "/".join(fmt(v) for v in values)


def mb(n: float) -> str:
    return f"{n / MB:,.0f}"


def print_columns(heads: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table of right-aligned columns as wide as their widest cell (per-node cells grow with nodes)."""
    widths = [max(len(cell) for cell in column) for column in zip(heads, *rows)]
    line = " ".join(f"{h:>{w}}" for h, w in zip(heads, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print(" ".join(f"{c:>{w}}" for c, w in zip(row, widths)))


def print_table(results: Sequence[Result], nodes: int) -> None:
    several = " (per node)" if nodes > 1 else ""
    print(f"\nBuild and memory{several}: RSS after the build (after the searches), peak = VmHWM; "
          "CPU seconds: this process [of which reading the corpus] / every typesense-server;\n"
          "disk: RocksDB (documents, compacted) and the Raft log (imports as sent, until the next Raft snapshot)")
    heads = ["articles", "build s", "repl s", "CPU ours [read]", "CPU typesense", "RSS MB (searched)", "peak MB",
             "db MB", "raft MB", "warm-up s"]
    rows = [[f"{r.articles:,}", f"{r.build_s:.1f}", f"{r.replication_s:.1f}",
             f"{r.ours_cpu_s:.1f} [{r.read_cpu_s:.1f}]", per_node(r.ts_cpu_s, lambda v: f"{v:.1f}"),
             f"{per_node(r.rss, mb)} ({per_node(r.rss_searched, mb)})", per_node(r.peak, mb),
             per_node(r.data, mb), per_node(r.raft, mb), f"{r.warm_up_s:.1f}"] for r in results]
    print_columns(heads, rows)
    if any(r.skipped for r in results):
        print("skipped articles (reader errors + refused): " + ", ".join(f"{r.size:,}: {r.skipped}" for r in results))

    print("\nSearch latency, ms, client side (TypesenseEngine.search, one thread): p50 / p95 / p99 per kind")
    head = f"{'articles':>9} " + " ".join(f"{kind:>21}" for kind in KINDS) + f" {'empty (of each kind)':>24}"
    print(head)
    print("-" * len(head))
    for r in results:
        cells = []
        for kind in KINDS:
            ms = r.latency.get(kind, [])
            cells.append(f"{percentile(ms, 50):.1f} / {percentile(ms, 95):.1f} / {percentile(ms, 99):.1f}")
        empty = " ".join(str(r.empty.get(kind, 0)) for kind in KINDS)
        print(f"{r.articles:>9,} " + " ".join(f"{c:>21}" for c in cells) + f" {empty:>24}")


def print_fits(results: Sequence[Result], nodes: int, batch: int) -> None:
    xs = [float(r.articles) for r in results]
    measures: list[tuple[str, str, Callable[[Result], float], Callable[[float], str]]] = [
        ("RSS per node after build", "MB", lambda r: max(r.rss) / MB, _megabytes),
        ("peak RSS per node (VmHWM)", "MB", lambda r: max(r.peak) / MB, _megabytes),
        ("RocksDB data per node", "MB", lambda r: max(r.data) / MB, _megabytes),
        ("build wall time", "s", lambda r: r.build_s + r.replication_s, _duration),
        ("CPU, this process", "s", lambda r: r.ours_cpu_s, _duration),
        ("CPU, typesense (most busy node)", "s", lambda r: max(r.ts_cpu_s), _duration),
        ("warm-up (vocabulary, titles)", "s", lambda r: r.warm_up_s, _duration),
    ]
    lines: list[tuple[str, Line, Callable[[float], str]]] = []
    print(f"\nLinear fit against articles (least squares over {len(xs)} sizes; "
          f"{', '.join(f'{int(x):,}' for x in xs)}) and LINEAR EXTRAPOLATION")
    head = f"{'measure':<33} {'per 1k articles':>16} {'intercept':>10} {'R^2':>6} " + " ".join(
        f"{f'at {n / 1e6:g} M':>12}" for n in EXTRAPOLATE_TO)
    print(head)
    print("-" * len(head))
    for label, unit, value, show in measures:
        line = fit_line(xs, [value(r) for r in results])
        if line is None:
            print(f"{label:<33} (needs two sizes or more)")
            continue
        lines.append((label, line, show))
        r2 = f"{line.r2:.3f}" if line.points > 2 else "-"
        print(f"{label:<33} {f'{line.slope * 1000:,.2f} {unit}':>16} {f'{line.intercept:,.0f} {unit}':>10} {r2:>6} "
              + " ".join(f"{show(line.at(n)):>12}" for n in EXTRAPOLATE_TO))
    if not lines:
        return
    fits = {label: line for label, line, _ in lines}
    two = "\nR^2 is not shown for two sizes: any two points lie on a line." if len(xs) == 2 else ""
    lo, hi = int(min(xs)), int(max(xs))
    print(f"""
A LINEAR extrapolation: it assumes every measure grows in a straight line with the number of
articles, at the rate measured between {lo:,} and {hi:,} articles (1 M is {1e6 / hi:,.0f}x, 10 M is
{1e7 / hi:,.0f}x the largest size measured), with the same mix of articles (lengths, categories), the
same schema and analysis, batch {batch}, and this machine ({os.cpu_count()} cores shared by our analysis and
Typesense, under the load printed). What is not linear is not captured: the vocabulary grows more
slowly than the articles (its share of RAM is overstated), while inserts and searches in a bigger
index may each get slower (understated). The Raft log is left out: a snapshot truncates it.{two}
Typesense 0.24 replicates, it does not shard: every node holds the whole index, so more nodes add
availability (3 survive one down) and read throughput, not capacity: each node needs the RAM below.""")
    ram = [fits[label] for label in ("RSS per node after build", "peak RSS per node (VmHWM)")]
    for n in EXTRAPOLATE_TO:
        # The two memory lines are fitted apart and may cross when extrapolated: the larger one.
        needs = [f"RAM per node >= {max(line.at(n) for line in ram) / 1024:,.1f} GB (RSS, before headroom)",
                 f"disk per node {fits['RocksDB data per node'].at(n) / 1024:,.1f} GB (+ the Raft log)",
                 f"full build {_duration(fits['build wall time'].at(n))} on this machine"]
        print(f"  {n:>10,} articles, {nodes} node(s): " + "; ".join(needs))


def _megabytes(value: float) -> str:
    return f"{value:,.0f} MB" if abs(value) < 10_240 else f"{value / 1024:,.1f} GB"


def _duration(seconds: float) -> str:
    if abs(seconds) < 120:
        return f"{seconds:,.1f} s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


# -- main -------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive: {text!r}")
    return sorted(set(sizes))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP as Ctrl-C: the ``finally`` blocks stop the cluster."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES),
                    help=f"articles per run, comma-separated (default {','.join(map(str, DEFAULT_SIZES))})")
    ap.add_argument("--nodes", type=int, default=1, help="typesense-server processes per cluster (1; 3 for Raft)")
    ap.add_argument("--queries", type=int, default=200, help="measured queries per kind (after 50 warm-up ones)")
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"articles per import (1 to {MAX_BATCH})")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", type=Path, default=None, help="where the clusters' folders go (a new temp folder)")
    ap.add_argument("--keep-dir", action="store_true", help="keep each size's cluster folder (data and logs)")
    args = ap.parse_args()
    if not 1 <= args.batch <= MAX_BATCH:
        ap.error(f"--batch must be 1 to {MAX_BATCH}")
    if args.nodes < 1:
        ap.error("--nodes must be at least 1")
    require_corpus()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    print(banner("bench_cluster"))
    print(f"corpus: {CORPUS}; sizes {', '.join(f'{s:,}' for s in args.sizes)}; {args.nodes} node(s) per cluster, "
          f"a fresh cluster per size; batch {args.batch}; {args.queries} measured queries per kind after "
          f"{bench_search.WARMUP} warm-up ones; seed {args.seed}")
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-", dir=args.dir))
    results: list[Result] = []
    interrupted = False
    try:
        for size in args.sizes:
            base = root / f"size-{size}"
            try:
                results.append(measure(size, args, base))
            finally:
                if not args.keep_dir:
                    shutil.rmtree(base, ignore_errors=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the clusters are stopped; results of the sizes completed:", file=sys.stderr)
    finally:
        if not args.keep_dir:
            shutil.rmtree(root, ignore_errors=True)
    if results:
        print_table(results, args.nodes)
        print_fits(results, args.nodes, args.batch)
    if args.keep_dir:
        print(f"\ncluster folders kept in {root}")
    print(f"\n{load_note()} (end)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
