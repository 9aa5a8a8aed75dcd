"""The ``searchsvc`` command line: index, delete, search, stats, serve.

argparse rather than a framework: five subcommands with plain flags need nothing more, and every
flag falls back to a ``SEARCHSVC_*`` environment variable documented in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Sequence

from index import store
from index.api import SORTS, SearchError, SearchRequest, Span


def _index_dir(value: str | None) -> Path:
    return Path(value) if value else store.default_index_dir()


def _text(value: str) -> str:
    """An argument as text: bytes that were not UTF-8 (Python keeps them as lone surrogates, which
    the index cannot encode) become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def cmd_index(args: argparse.Namespace) -> int:
    from index.builder import index_articles
    from index.readers import read_sources

    index_dir = _index_dir(args.index_dir)
    interactive = sys.stderr.isatty() and not args.quiet
    bar = None
    count = 0

    def progress(n: int) -> None:
        nonlocal count
        count += n
        if bar is not None:
            bar.update(n)
        elif not args.quiet and count % 5000 == 0:
            print(f"indexed {count} articles...", file=sys.stderr, flush=True)

    def on_error(error: object) -> None:
        message = f"skipped {error}"
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    trace = os.environ.get("SEARCHSVC_TRACE_PHASES") == "1"

    def on_phase(name: str) -> None:
        if trace:
            print(f"phase {name}", file=sys.stderr, flush=True)

    if interactive:
        from tqdm import tqdm

        bar = tqdm(unit=" articles", file=sys.stderr)
    try:
        report = index_articles(
            index_dir, read_sources(args.sources), rebuild=args.rebuild, progress=progress,
            on_error=on_error, lock_wait=args.wait, procs=args.procs, on_phase=on_phase,
        )
    except store.IndexBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except OSError as e:
        print(f"error: indexing failed: {e}. The served index keeps what was committed before the failure"
              " (a --rebuild leaves the live generation untouched).", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(report.summary())
    if args.strict and report.skipped_total:
        return 1
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from index.builder import delete_articles

    try:
        deleted = delete_articles(_index_dir(args.index_dir), args.ids)
    except store.IndexMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"deleted {deleted} of {len(args.ids)}")
    return 0 if deleted == len(args.ids) else 1


def _spans_text(spans: list[Span], color: bool) -> str:
    if not color:
        return "".join(f"[{s.text}]" if s.hit else s.text for s in spans)
    return "".join(f"\x1b[1;33m{s.text}\x1b[0m" if s.hit else s.text for s in spans)


def cmd_search(args: argparse.Namespace) -> int:
    from index.engine import WhooshEngine

    try:
        engine = WhooshEngine.open(_index_dir(args.index_dir))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    request = SearchRequest(
        q=_text(" ".join(args.query)), categories=[_text(c) for c in args.category or []],
        sources=[_text(s) for s in args.source or []],
        date_from=args.date_from, date_to=args.date_to, sort=args.sort, page=args.page, per_page=args.limit,
    )
    try:
        result = engine.search(request)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
        return 0
    color = sys.stdout.isatty()
    print(f"{result.total} results (tier: {result.tier})" + (f" — did you mean: {result.suggestion}" if result.suggestion else ""))
    for note in result.notes:
        print(f"note: {note}")
    first = (result.request.page - 1) * result.request.per_page
    for i, hit in enumerate(result.hits, start=first + 1):
        a = hit.article
        print(f"\n{i}. {_spans_text(hit.title_spans, color)}")
        print(f"   {a.published.strftime('%d/%m/%Y')} · {a.category} · {a.source or ''} · id {a.id} · score {hit.score:.2f}")
        print(f"   {_spans_text(hit.snippet, color)}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from index.engine import WhooshEngine

    index_dir = _index_dir(args.index_dir)
    try:
        engine = WhooshEngine.open(index_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    live = store.current_generation(index_dir)
    stats = {
        "index_dir": str(index_dir),
        "generation": engine.generation,
        "articles": engine.doc_count,
        "size_bytes": store.index_size_bytes(index_dir / live) if live else 0,
        "categories": [{"label": c.value, "slug": c.slug, "count": c.count} for c in engine.categories()],
    }
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        print(f"index: {stats['index_dir']} (generation {stats['generation']})")
        print(f"articles: {stats['articles']}")
        print(f"size: {stats['size_bytes'] / 1e6:.1f} MB")
        for c in stats["categories"]:
            print(f"  {c['count']:>7}  {c['label']} ({c['slug']})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from searchsvc.config import Config
    from searchsvc.server import serve

    overrides = {
        "index_dir": args.index_dir, "host": args.host, "port": args.port, "workers": args.workers,
        "engine_threads": args.engine_threads,
        "base_url": args.base_url, "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
    }
    config = Config.from_env({k: v for k, v in overrides.items() if v is not None})
    serve(config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="searchsvc", description="Vietnamese news search and feeds.")
    sub = parser.add_subparsers(dest="command", required=True)
    index_help = "index directory (default: $SEARCHSVC_INDEX_DIR or ./var/index)"

    p = sub.add_parser("index", help="add or update articles (upsert by id)")
    p.add_argument("sources", nargs="+", help="files, directories (recursive) or - for stdin")
    p.add_argument("--index-dir", help=index_help)
    p.add_argument("--rebuild", action="store_true", help="build a new generation and switch when complete")
    p.add_argument("--strict", action="store_true", help="exit 1 when any input was skipped")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for another indexing run (default 30)")
    p.add_argument("--procs", type=int, default=None, help="writer processes for a new generation (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("delete", help="delete articles by id")
    p.add_argument("ids", nargs="+")
    p.add_argument("--index-dir", help=index_help)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("search", help="search from the terminal")
    p.add_argument("query", nargs="*")
    p.add_argument("--index-dir", help=index_help)
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
    p.add_argument("--index-dir", help=index_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    p.add_argument("--index-dir", help=index_help)
    p.add_argument("--host", help="default 127.0.0.1 ($SEARCHSVC_HOST)")
    p.add_argument("--port", type=int, help="default 8000 ($SEARCHSVC_PORT)")
    p.add_argument("--workers", type=int, help="worker processes (default 1, $SEARCHSVC_WORKERS)")
    p.add_argument("--engine-threads", type=int,
                   help="threads per worker running index work (default 2, $SEARCHSVC_ENGINE_THREADS)")
    p.add_argument("--base-url", help="public base URL for absolute links ($SEARCHSVC_BASE_URL)")
    p.add_argument("--timeout-graceful-shutdown", type=float, help="seconds to finish requests on SIGTERM (default 10)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "procs", 0) is None:
        from index.builder import DEFAULT_PROCS

        args.procs = DEFAULT_PROCS
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
