"""The ``searchsvc`` command line: index, delete, search, stats, serve, apply, keys.

argparse rather than a framework: a few subcommands with plain flags need nothing more, and every
flag falls back to a ``SEARCHSVC_*`` environment variable documented in the README.

Failures are answered in one place, ``main``: every expected exception (a bad argument or setting,
a missing or unusable index directory, a busy writer lock, a refused search, an OS error) becomes
one ``error: …`` line on stderr and an exit status from the table below, documented in the README.
Commands raise instead of printing; only a bug still shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from index import store
from index.api import (
    MAX_DATE,
    MIN_DATE,
    SORTS,
    EngineUnavailable,
    SearchEngine,
    SearchError,
    SearchRequest,
    SettingError,
    Span,
    check_date,
)
from searchsvc.config import ENGINES, HTTP_PROTOCOLS

if TYPE_CHECKING:
    from index.builder import IndexReport
    from index.typesense.writer import ClusterWriter

T = TypeVar("T")

# Exit statuses (README, "Command line").
EXIT_OK = 0
EXIT_INCOMPLETE = 1  # done, but not everything: index --strict skipped input, delete missed an id
EXIT_FAILED = 2  # bad arguments, no usable index directory, a refused search, an OS error
EXIT_BUSY = 3  # the writer lock is held by another run; serve could not start (port in use...)
EXIT_CONFIG = 4  # a SEARCHSVC_* setting (or the option standing for it) that cannot be used
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (searchsvc search … | head), as for SIGPIPE


class CliError(Exception):
    """A failure a command explains in one line; ``main`` prints it and exits with ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one ``error:`` line like every other failure."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message} (see '{self.prog} --help')", EXIT_FAILED)


def _check_index_dir(path: Path) -> Path:
    """The index directory, or the nearest part of its path that exists, must be a directory: a
    file there would otherwise surface as NotADirectoryError or FileExistsError deep in the store."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "" if part == path else f" ({part} is a file)"
                raise CliError(f"index directory {path} is not a directory{where}")
            break
    return path


def _index_dir(value: str | None) -> Path:
    return _check_index_dir(Path(value) if value else store.default_index_dir())


def _text(value: str) -> str:
    """An argument as text: bytes that were not UTF-8 (Python keeps them as lone surrogates, which
    the index cannot encode) become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _date(value: str) -> date:
    """A day the engine can filter on: the same range the HTTP parameters accept (index.api)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None
    try:
        check_date("date", day)
    except SearchError:
        raise argparse.ArgumentTypeError(f"not a day from {MIN_DATE} to {MAX_DATE}: {value!r}") from None
    return day




def _engine(value: str | None) -> str:
    """The engine to write to: the option, else ``SEARCHSVC_ENGINE``, else whoosh."""
    engine = (value or os.environ.get("SEARCHSVC_ENGINE", "").strip() or "whoosh").lower()
    if engine not in ENGINES:
        raise SettingError(f"SEARCHSVC_ENGINE must be one of {', '.join(ENGINES)}, not {engine!r}")
    return engine


def _cluster_writer() -> ClusterWriter:
    """The Typesense writer, from the ``SEARCHSVC_TYPESENSE_*`` settings (``SettingError`` names a
    bad one). No index directory: the cluster holds everything."""
    from index.typesense.connection import ClusterSettings
    from index.typesense.writer import ClusterWriter

    return ClusterWriter(ClusterSettings.from_env())


def _with_websub(engine: str | None, index_dir: Path | None, write: Callable[[], T], say: Callable[[str], None]) -> T:
    """``write``, then a WebSub ping for the feeds it changed when ``SEARCHSVC_WEBSUB_HUB`` is set
    (``searchsvc.websub.ping_after_write``): what the applier does for published articles, done
    for the command-line writes too, so a hub hears of every change whatever made it."""
    from searchsvc.engine_holder import opener_for
    from searchsvc.websub import ping_after_write

    opener = opener_for(_engine(engine))
    return ping_after_write(lambda: opener(index_dir or Path(".")), write, say=say)


def cmd_index(args: argparse.Namespace) -> int:
    from index.builder import index_articles
    from index.readers import read_sources

    cluster = _cluster_writer() if _engine(args.engine) == "typesense" else None
    index_dir = None if cluster is not None else _index_dir(args.index_dir)
    interactive = sys.stderr.isatty() and not args.quiet
    bar: Any = None  # a tqdm bar on a terminal
    count = 0

    def progress(n: int) -> None:
        nonlocal count
        count += n
        if bar is not None:
            bar.update(n)
        elif not args.quiet and count % 5000 == 0:
            print(f"indexed {count} articles...", file=sys.stderr, flush=True)

    def say(message: str) -> None:
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def on_error(error: object) -> None:
        say(f"skipped {error}")

    def on_warning(message: str) -> None:
        say(f"warning: {message}")  # indexed, with a change the operator should know of

    trace = os.environ.get("SEARCHSVC_TRACE_PHASES") == "1"

    def on_phase(name: str) -> None:
        if trace:
            print(f"phase {name}", file=sys.stderr, flush=True)

    if interactive:
        from tqdm import tqdm

        bar = tqdm(unit=" articles", file=sys.stderr)
    def write() -> IndexReport:
        if cluster is not None:
            with cluster:
                return cluster.index_articles(read_sources(args.sources), rebuild=args.rebuild, progress=progress,
                                              on_error=on_error, on_warning=on_warning)
        assert index_dir is not None
        return index_articles(
            index_dir, read_sources(args.sources), rebuild=args.rebuild, progress=progress,
            on_error=on_error, lock_wait=args.wait, procs=args.procs, on_phase=on_phase, on_warning=on_warning,
        )

    report: IndexReport
    try:
        report = _with_websub(args.engine, index_dir, write, say)
    except OSError as e:
        if cluster is not None:
            raise CliError(f"indexing failed: {e}. The cluster keeps every batch committed before the failure"
                           " (a --rebuild leaves the alias on the old collection).") from e
        raise CliError(f"indexing failed: {e}. The served index keeps what was committed before the failure"
                       " (a --rebuild leaves the live generation untouched).") from e
    finally:
        if bar is not None:
            bar.close()
    print(report.summary())
    if args.strict and report.skipped_total:
        return EXIT_INCOMPLETE
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from index.builder import delete_articles

    index_dir = None if _engine(args.engine) == "typesense" else _index_dir(args.index_dir)

    def write() -> int:
        if index_dir is None:
            with _cluster_writer() as cluster:
                return cluster.delete_articles(args.ids)
        return delete_articles(index_dir, args.ids)

    deleted = _with_websub(args.engine, index_dir, write, lambda message: print(message, file=sys.stderr))
    print(f"deleted {deleted} of {len(args.ids)}")
    return EXIT_OK if deleted == len(args.ids) else EXIT_INCOMPLETE


def _spans_text(spans: list[Span], color: bool) -> str:
    if not color:
        return "".join(f"[{s.text}]" if s.hit else s.text for s in spans)
    return "".join(f"\x1b[1;33m{s.text}\x1b[0m" if s.hit else s.text for s in spans)


def _open_engine(args: argparse.Namespace) -> SearchEngine:
    """The engine to read from: the Whoosh index of ``--index-dir``, or the Typesense cluster
    (``SEARCHSVC_TYPESENSE_*``; no local index needed)."""
    if _engine(args.engine) == "typesense":
        from index.typesense.engine import TypesenseEngine

        return TypesenseEngine.open()
    from index.engine import WhooshEngine

    return WhooshEngine.open(_index_dir(args.index_dir))


def cmd_search(args: argparse.Namespace) -> int:
    with contextlib.closing(_open_engine(args)) as engine:
        request = SearchRequest(
            q=_text(" ".join(args.query)), categories=[_text(c) for c in args.category or []],
            sources=[_text(s) for s in args.source or []],
            date_from=args.date_from, date_to=args.date_to, sort=args.sort, page=args.page, per_page=args.limit,
        )
        result = engine.search(request)
    if args.json:
        print(json.dumps({
            "query": result.query, "total": result.total, "tier": result.tier, "suggestion": result.suggestion,
            "notes": result.notes,
            "hits": [{"id": h.article.id, "title": h.article.title, "score": round(h.score, 4),
                      "published": h.article.published.isoformat(), "category": h.article.category,
                      "snippet": _spans_text(h.snippet, False)} for h in result.hits],
            "facets": {k: [{"value": f.value, "slug": f.slug, "count": f.count} for f in v]
                       for k, v in result.facets.items()},
        }, ensure_ascii=False, indent=2))
        return EXIT_OK
    color = sys.stdout.isatty()
    print(f"{result.total} results (tier: {result.tier})"
          + (f" — did you mean: {result.suggestion}" if result.suggestion else ""))
    for note in result.notes:
        print(f"note: {note}")
    first = (result.request.page - 1) * result.request.per_page
    for i, hit in enumerate(result.hits, start=first + 1):
        a = hit.article
        print(f"\n{i}. {_spans_text(hit.title_spans, color)}")
        print(f"   {a.published.strftime('%d/%m/%Y')} · {a.category} · {a.source or ''} · id {a.id} "
              f"· score {hit.score:.2f}")
        print(f"   {_spans_text(hit.snippet, color)}")
    return EXIT_OK


def _cluster_stats() -> dict[str, Any]:
    """What ``stats --engine typesense`` shows, read only: the alias target, the commit counter and
    the last applied journal entry (the ``state`` document), the articles and their categories."""
    from index.typesense.applier_writer import ClusterIndexWriter
    from index.typesense.connection import ClusterSettings
    from index.typesense.engine import TypesenseEngine

    settings = ClusterSettings.from_env()
    with ClusterIndexWriter(settings) as cluster:
        info = cluster.writer.stats()
        applied = cluster.applied_seq()
    categories: list[dict[str, Any]] = []
    if info["target"] is not None:  # else an empty cluster: nothing to read categories from
        with TypesenseEngine.open(settings) as engine:
            categories = [{"label": c.value, "slug": c.slug, "count": c.count} for c in engine.categories()]
    return {
        "engine": "typesense", "nodes": list(settings.nodes), "alias": info["alias"], "target": info["target"],
        "generation": info["generation"], "seq": info["seq"], "applied_seq": applied,
        "articles": info["num_documents"], "categories": categories,
    }


def cmd_stats(args: argparse.Namespace) -> int:
    from index.engine import WhooshEngine

    stats: dict[str, Any]
    if _engine(args.engine) == "typesense":
        stats = _cluster_stats()
        head = [f"cluster: {', '.join(stats['nodes'])} (alias {stats['alias']} -> {stats['target'] or 'none yet'})",
                f"generation: {stats['generation'] or '-'}", f"seq: {stats['seq']}",
                f"applied_seq: {stats['applied_seq']}", f"articles: {stats['articles']}"]
    else:
        index_dir = _index_dir(args.index_dir)
        with WhooshEngine.open(index_dir) as engine:
            live = store.current_generation(index_dir)
            stats = {
                "index_dir": str(index_dir),
                "generation": engine.generation,
                "articles": engine.doc_count,
                "size_bytes": store.index_size_bytes(index_dir / live) if live else 0,
                "categories": [{"label": c.value, "slug": c.slug, "count": c.count} for c in engine.categories()],
            }
        head = [f"index: {stats['index_dir']} (generation {stats['generation']})", f"articles: {stats['articles']}",
                f"size: {stats['size_bytes'] / 1e6:.1f} MB"]
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return EXIT_OK
    print("\n".join(head))
    for c in stats["categories"]:
        print(f"  {c['count']:>7}  {c['label']} ({c['slug']})")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from searchsvc.config import Config
    from searchsvc.server import serve

    overrides = {
        "index_dir": args.index_dir, "engine": args.engine, "host": args.host, "port": args.port,
        "workers": args.workers,
        "engine_threads": args.engine_threads,
        "base_url": args.base_url, "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
        "http": args.http,
    }
    config = Config.from_env({k: v for k, v in overrides.items() if v is not None})
    if config.engine == "typesense":
        from index.typesense.connection import ClusterSettings

        ClusterSettings.from_env()  # a setting that cannot work fails here, on one line, not in the workers
    else:
        _check_index_dir(config.index_dir)
    serve(config)
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from index.applier import DEFAULT_MAX_BATCH, commit_interval_from_env, run_applier
    from index.journal import default_journal_path
    from searchsvc.supervisor import PARENT_ENV

    # With typesense the index directory is the local state directory (journal, applier lock,
    # status file); the commits go to the cluster. ``searchsvc serve`` passes its engine through
    # the environment (Config.to_env, SEARCHSVC_ENGINE), which its applier child inherits.
    engine = _engine(args.engine)
    if engine == "typesense":
        from index.typesense.connection import ClusterSettings

        ClusterSettings.from_env()  # a setting that cannot work fails here, on one line
    index_dir = _index_dir(args.index_dir)
    journal = Path(args.journal).expanduser() if args.journal else default_journal_path(index_dir)
    interval = commit_interval_from_env()
    if args.max_batch is not None and args.max_batch < 1:
        raise CliError("apply: --max-batch must be at least 1")
    level = os.environ.get("SEARCHSVC_LOG_LEVEL", "").strip().upper() or "INFO"
    logging.basicConfig(level=level if level in logging.getLevelNamesMapping() else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def stop_requested(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stop_requested)
    parent = os.environ.get(PARENT_ENV, "").strip()
    if parent.isdigit():
        # Supervised by ``searchsvc serve``: Ctrl-C in a terminal reaches the whole process
        # group, and the server stops its applier itself (SIGTERM) once its requests are done; a
        # server that died without doing so (SIGKILL) is noticed here, so no orphan keeps running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        def watch_parent() -> None:
            while not stop.wait(0.5):
                if os.getppid() != int(parent):
                    stop.set()

        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    else:
        signal.signal(signal.SIGINT, stop_requested)
    # on_commit: what hears of each commit (the changed categories). With SEARCHSVC_WEBSUB_HUB set,
    # the WebSub notifier: it pings the hub from a thread of its own, never holding the applier up.
    from searchsvc.websub import notifier_from_env

    notifier = notifier_from_env()
    try:
        run_applier(index_dir, journal, engine=engine, interval=interval, max_batch=args.max_batch or DEFAULT_MAX_BATCH,
                    stop=stop, on_commit=notifier, hook_stats=notifier.stats if notifier is not None else None)
    finally:
        if notifier is not None:
            notifier.close()
    return EXIT_OK


def _keys_path(args: argparse.Namespace) -> Path:
    from searchsvc.keys import default_keys_path

    if args.keys_file:
        return Path(args.keys_file).expanduser()
    return default_keys_path(_index_dir(args.index_dir))


def cmd_keys(args: argparse.Namespace) -> int:
    """Create, list and revoke the admin API's keys. ``create`` prints the key once, alone on the
    last line of stdout (``KEY=$(searchsvc keys create cms --scope ingest | tail -n 1)``)."""
    from searchsvc.keys import KeyNameError, KeysFileError, Scope, create_key, read_keys, revoke_key

    path = _keys_path(args)
    try:
        if args.keys_command == "create":
            key, record = create_key(path, args.name, Scope(args.scope))
            print(f"created key {record.name!r} (scope {record.scope.value}) in {path}")
            print("it is shown only this once; send it as 'Authorization: Bearer KEY'")
            print(key)
        elif args.keys_command == "revoke":
            record = revoke_key(path, args.name)
            print(f"revoked key {record.name!r} at {record.revoked.isoformat() if record.revoked else '?'}"
                  " (a running server refuses it within a second)")
        else:
            records = read_keys(path)
            if args.json:
                print(json.dumps({"keys_file": str(path), "keys": [
                    {k: v for k, v in r.to_json().items() if k != "hash"} for r in records or []
                ]}, ensure_ascii=False, indent=2))
            elif records is None:
                print(f"no keys file at {path}: the admin API is off")
            else:
                print(f"{'NAME':<24} {'SCOPE':<7} {'CREATED':<26} REVOKED")
                for r in records:
                    revoked = r.revoked.isoformat() if r.revoked else "-"
                    print(f"{r.name:<24} {r.scope.value:<7} {r.created.isoformat():<26} {revoked}")
    except (KeyNameError, KeysFileError) as exc:
        raise CliError(f"keys {args.keys_command}: {exc}") from None
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="searchsvc", description="Vietnamese news search and feeds.")
    sub = parser.add_subparsers(dest="command", required=True)
    index_help = "index directory (default: $SEARCHSVC_INDEX_DIR or ./var/index)"
    engine_help = ("where to write: the local Whoosh index or the Typesense cluster of $SEARCHSVC_TYPESENSE_NODES"
                   " (default: $SEARCHSVC_ENGINE or whoosh)")

    p = sub.add_parser("index", help="add or update articles (upsert by id)")
    p.add_argument("sources", nargs="+", help="files, directories (recursive) or - for stdin")
    p.add_argument("--index-dir", help=index_help + "; not used with --engine typesense")
    p.add_argument("--engine", choices=ENGINES, help=engine_help)
    p.add_argument("--rebuild", action="store_true", help="build a new generation and switch when complete")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input was skipped")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for another indexing run (default 30)")
    p.add_argument("--procs", type=int, default=None, help="writer processes for a new generation (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("delete", help="delete articles by id")
    p.add_argument("ids", nargs="+")
    p.add_argument("--index-dir", help=index_help + "; not used with --engine typesense")
    p.add_argument("--engine", choices=ENGINES, help=engine_help)
    p.set_defaults(func=cmd_delete)

    read_help = ("where to read: the local Whoosh index or the Typesense cluster of $SEARCHSVC_TYPESENSE_NODES"
                 " (default: $SEARCHSVC_ENGINE or whoosh)")
    p = sub.add_parser("search", help="search from the terminal")
    p.add_argument("query", nargs="*")
    p.add_argument("--index-dir", help=index_help + "; not used with --engine typesense")
    p.add_argument("--engine", choices=ENGINES, help=read_help)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=10, help="results per page (default 10)")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--category", action="append", help="category slug or label (repeatable)")
    p.add_argument("--source", action="append", help="source (repeatable)")
    p.add_argument("--from", dest="date_from", type=_date, help="YYYY-MM-DD (inclusive)")
    p.add_argument("--to", dest="date_to", type=_date, help="YYYY-MM-DD (inclusive)")
    p.add_argument("--sort", choices=SORTS, default="relevance")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("stats", help="articles, per category, index size, generation")
    p.add_argument("--index-dir", help=index_help + "; not used with --engine typesense")
    p.add_argument("--engine", choices=ENGINES, help=read_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("apply", help="apply the publishing journal to the index (foreground; serve runs one)")
    p.add_argument("--index-dir", help=index_help)
    p.add_argument("--journal", help="journal file (default: $SEARCHSVC_JOURNAL or INDEX_DIR/journal.sqlite3)")
    p.add_argument("--engine", choices=ENGINES,
                   help=engine_help + "; INDEX_DIR keeps the journal, lock and status either way")
    p.add_argument("--max-batch", type=int, default=None, help="entries per commit at most (default 1000)")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("keys", help="create, list or revoke the admin API's keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    keys_file_help = "keys file (default: $SEARCHSVC_KEYS_FILE or INDEX_DIR/keys.json)"
    for name, help_text in (("create", "create a key and print it once, alone on the last line"),
                            ("list", "list the keys' names, scopes and dates (never the keys)"),
                            ("revoke", "revoke a key by name")):
        k = keys_sub.add_parser(name, help=help_text)
        if name != "list":
            k.add_argument("name", help="the key's name (letters, digits, '.', '_', '-')")
        if name == "create":
            k.add_argument("--scope", required=True, choices=["ingest", "admin"],
                           help="ingest: publish, correct, unpublish; admin: that and every admin route")
        if name == "list":
            k.add_argument("--json", action="store_true")
        k.add_argument("--index-dir", help=index_help)
        k.add_argument("--keys-file", help=keys_file_help)
        k.set_defaults(func=cmd_keys)

    p = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    p.add_argument("--index-dir", help=index_help)
    p.add_argument("--engine", choices=ENGINES,
                   help="whoosh (the local index, the default) or typesense (the cluster of"
                        " $SEARCHSVC_TYPESENSE_NODES) ($SEARCHSVC_ENGINE)")
    p.add_argument("--host", help="default 127.0.0.1 ($SEARCHSVC_HOST)")
    p.add_argument("--port", type=int, help="default 8000 ($SEARCHSVC_PORT)")
    p.add_argument("--workers", type=int, help="worker processes (default 1, $SEARCHSVC_WORKERS)")
    p.add_argument("--engine-threads", type=int,
                   help="threads per worker running index work (default 2, $SEARCHSVC_ENGINE_THREADS)")
    p.add_argument("--base-url", help="public base URL for absolute links ($SEARCHSVC_BASE_URL)")
    p.add_argument("--timeout-graceful-shutdown", type=float, help="seconds to finish requests on SIGTERM (default 10)")
    p.add_argument("--http", choices=HTTP_PROTOCOLS,
                   help="HTTP/1.1 parser: httptools (on uvloop, the default) or h11 (on asyncio) ($SEARCHSVC_HTTP)")
    p.set_defaults(func=cmd_serve)
    return parser


# The expected failures, first match wins: exception type, what the message starts with, exit status.
# Anything else is a bug and keeps its traceback.
_FAILURES: tuple[tuple[type[BaseException], str, int], ...] = (
    (SettingError, "configuration: ", EXIT_CONFIG),  # searchsvc.config.ConfigError, the index's settings
    (store.IndexBusy, "", EXIT_BUSY),
    (SearchError, "", EXIT_FAILED),
    (EngineUnavailable, "", EXIT_FAILED),  # the cluster does not answer, or holds no articles yet
    (OSError, "", EXIT_FAILED),  # IndexMissing; a bad path, a permission, a full disk
    (KeyboardInterrupt, "interrupted", EXIT_INTERRUPTED),
)


def _failure(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status for an expected failure; None for a bug."""
    if isinstance(exc, CliError):
        return str(exc), exc.status
    for kind, prefix, status in _FAILURES:
        if isinstance(exc, kind):
            if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
                detail = f"{exc.strerror}: {exc.filename}"  # not "[Errno 20] …"
            else:
                detail = str(exc)
            return prefix + detail, status
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "procs", 0) is None:
            from index.builder import DEFAULT_PROCS

            args.procs = DEFAULT_PROCS
        status: int = args.func(args)
        sys.stdout.flush()  # a closed pipe (searchsvc search | head) fails here, inside the handler
        return status
    except BrokenPipeError:
        # The reader went away: nothing to report. Point stdout at /dev/null so the interpreter's
        # final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt) as exc:
        failure = _failure(exc)
        if failure is None:
            raise
        message, code = failure
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
