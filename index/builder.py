"""Building and updating the index: upsert by id, delete, and ``--rebuild`` into a new generation.

Every write happens under the writer lock (``index.store.writer_lock``), so two ``searchsvc index``
runs never interleave. A first build and ``--rebuild`` go into a new generation that becomes live
only after its commit; updates go into the live generation through Whoosh's atomic commit.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Callable, Iterable

from whoosh.index import FileIndex

from index import store
from index.analysis import fold
from index.article import VN_TZ, Article
from index.parallel import SegmentingMpWriter
from index.readers import ReadError

ProgressFn = Callable[[int], None]
PhaseFn = Callable[[str], None]

# Phases reported to ``on_phase`` (the CLI prints them with SEARCHSVC_TRACE_PHASES=1; the fault
# injection script kills the indexer in each of them).
PHASES = ("locking", "reading", "committing", "merging", "switching", "done")

# Measured on 2 cores (README, "Benchmarks"): two writer processes with one segment each.
DEFAULT_PROCS = min(2, os.cpu_count() or 1)
# Per writer process.
DEFAULT_LIMITMB = 256
# SEARCHSVC_SEGMENT_DOCS=3000 (with SEARCHSVC_LIMITMB=600) writes a segment every 3,000 articles so
# that no posting pool spills to disk: about 40 % less CPU to build (measured on 12,000 articles),
# but ~22 segments on the full corpus, which made queries ~30 % slower already at 4 segments. The
# default is one segment per writer process (2 on 2 cores), the faster index to search.
SEGMENT_DOCS = int(os.environ.get("SEARCHSVC_SEGMENT_DOCS", "0")) or 10**12
DEFAULT_LIMITMB = int(os.environ.get("SEARCHSVC_LIMITMB", str(DEFAULT_LIMITMB)))
# The merge step after an update merges only segments below this size (the ones updates write),
# never the large segments of a build: Whoosh's default policy merged 20 build segments into one
# in one update (measured: longer than the build itself).
TINY_SEGMENT_DOCS = 2000
# Updates add one small segment each; past this many, the run merges the small ones.
MERGE_AT_SEGMENTS = int(os.environ.get("SEARCHSVC_MERGE_AT_SEGMENTS", "8"))


@dataclass
class IndexReport:
    read: int = 0
    indexed: int = 0  # new ids
    updated: int = 0  # ids that were already in the index
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    errors: list[str] = field(default_factory=list)  # "path:line: reason", first 1,000
    generation: str = ""

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        parts = [f"read {self.read}", f"indexed {self.indexed}", f"updated {self.updated}",
                 f"skipped {self.skipped_total}"]
        text = ", ".join(parts)
        if self.skipped:
            text += " (" + "; ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common()) + ")"
        return text + (f"; generation {self.generation}" if self.generation else "")


def reason_key(reason: str) -> str:
    """Group detailed reasons ("bad date '31/02/2014'") into summary buckets ("bad date")."""
    return re.split(r"[:'\"(\d]", reason, maxsplit=1)[0].strip() or reason


def article_fields(article: Article) -> dict:
    """The Whoosh document for an article. Captions are searchable as part of the body."""
    body = "\n\n".join([*article.body, *article.captions])
    local = article.published.astimezone(VN_TZ)
    fields = {
        "id": article.id,
        "title_exact": article.title,
        "title_folded": article.title,
        "title_pair": article.title,
        "body_exact": body,
        "body_folded": body,
        "body_pair": body,
        "category_slug": article.category_slug,
        "published": article.published.astimezone(timezone.utc).replace(tzinfo=None),
        "year": f"{local.year:04d}",
        "month": f"{local.year:04d}-{local.month:02d}",
        "views": max(0, article.views or 0),
        "title_column": article.title.encode("utf-8"),
        "doc": json.dumps(article.to_dict(), ensure_ascii=False),
    }
    if article.source:
        fields["source_key"] = source_key(article.source)
    return fields


def source_key(source: str) -> str:
    """Sources are filtered case- and diacritic-insensitively."""
    return " ".join(fold(source.lower()).split())


def index_articles(
    index_dir: Path,
    items: Iterable[Article | ReadError],
    *,
    rebuild: bool = False,
    procs: int = DEFAULT_PROCS,
    limitmb: int = DEFAULT_LIMITMB,
    progress: ProgressFn | None = None,
    on_error: Callable[[ReadError], None] | None = None,
    lock_wait: float = 30.0,
    on_phase: PhaseFn | None = None,
) -> IndexReport:
    """Upsert articles into the index (or into a new generation with ``rebuild``).

    On any failure (a bad disk, ENOSPC, an interrupt) the live generation is untouched: a new
    generation being built is removed, an update's uncommitted segments are cancelled.
    """
    phase = on_phase or (lambda name: None)
    report = IndexReport()
    phase("locking")
    with store.writer_lock(index_dir, wait=lock_wait):
        _clean_abandoned(index_dir)
        live = store.current_generation(index_dir)
        fresh = rebuild or live is None
        if fresh:
            name, ix = store.new_generation(index_dir)
        else:
            name, ix = store.open_live(index_dir)
        report.generation = name
        try:
            _write(ix, items, report, fresh=fresh, procs=procs, limitmb=limitmb, progress=progress,
                   on_error=on_error, phase=phase)
        except BaseException:
            if fresh:
                import shutil

                shutil.rmtree(index_dir / name, ignore_errors=True)
            raise
        if fresh:
            phase("switching")
            store.switch_to(index_dir, name)
        report.generation = f"{name}.{ix.latest_generation()}"
    phase("done")
    return report


def _clean_abandoned(index_dir: Path) -> None:
    """Remove half-built generations left by a killed run (we hold the lock: nobody else writes)."""
    if store.current_generation(index_dir) is None:
        for n in store.generation_numbers(index_dir):
            import shutil

            shutil.rmtree(index_dir / f"gen-{n:06d}", ignore_errors=True)
    else:
        store.remove_stale_generations(index_dir)


def _write(ix: FileIndex, items: Iterable[Article | ReadError], report: IndexReport, *, fresh: bool,
           procs: int, limitmb: int, progress: ProgressFn | None,
           on_error: Callable[[ReadError], None] | None, phase: PhaseFn) -> None:
    seen: set[str] = set()
    later: dict[str, Article] = {}  # ids repeated within this run: applied after the first commit
    searcher = None if fresh else ix.searcher()
    if fresh and procs > 1:
        writer = SegmentingMpWriter(ix, procs=procs, segment_docs=SEGMENT_DOCS, limitmb=limitmb)
    else:
        writer = ix.writer(limitmb=limitmb)
    phase("reading")
    try:
        for item in items:
            if isinstance(item, ReadError):
                report.skipped[reason_key(item.reason)] += 1
                if len(report.errors) < 1000:
                    report.errors.append(str(item))
                if on_error:
                    on_error(item)
                continue
            report.read += 1
            if item.id in seen:
                later[item.id] = item
                continue
            try:
                fields = article_fields(item)
            except (OverflowError, ValueError) as e:  # e.g. a date no index field can hold
                report.read -= 1
                report.skipped[f"cannot index ({type(e).__name__})"] += 1
                if on_error:
                    on_error(ReadError(item.id, None, f"cannot index: {e}"))
                continue
            seen.add(item.id)
            if fresh:
                writer.add_document(**fields)
                report.indexed += 1
            else:
                exists = searcher.document_number(id=item.id) is not None
                writer.update_document(**fields)
                if exists:
                    report.updated += 1
                else:
                    report.indexed += 1
            if progress:
                progress(1)
        phase("committing")
        # Commit without merging so new articles become visible fast; merging is its own step below.
        writer.commit(merge=False)
    except BaseException:
        _abandon(writer)
        raise
    finally:
        if searcher is not None:
            searcher.close()
    if later:
        writer = ix.writer(limitmb=limitmb)
        try:
            for article in later.values():
                writer.update_document(**article_fields(article))
                report.updated += 1
                if progress:
                    progress(1)
            writer.commit(merge=False)
        except BaseException:
            _abandon(writer)
            raise
    if fresh:
        return
    tiny = [seg for seg in ix._segments() if seg.doc_count_all() < TINY_SEGMENT_DOCS]
    if len(tiny) > MERGE_AT_SEGMENTS:
        phase("merging")
        ix.writer(limitmb=limitmb).commit(mergetype=merge_tiny_segments)


def merge_tiny_segments(writer, segments):
    """A Whoosh merge policy: the segments smaller than TINY_SEGMENT_DOCS into one, others untouched."""
    from whoosh.reading import SegmentReader

    tiny = [seg for seg in segments if seg.doc_count_all() < TINY_SEGMENT_DOCS]
    if len(tiny) < 2:
        return segments
    for seg in tiny:
        reader = SegmentReader(writer.storage, writer.schema, seg)
        writer.add_reader(reader)
        reader.close()
    return [seg for seg in segments if seg.doc_count_all() >= TINY_SEGMENT_DOCS]


def _abandon(writer) -> None:
    """Cancel a writer after a failure; stop multiprocessing sub-writers too (Whoosh's cancel only
    flags them, and they would go on writing into a generation we are about to remove)."""
    try:
        writer.cancel()
    except Exception:
        pass
    for task in getattr(writer, "tasks", []):
        if hasattr(task, "terminate"):
            task.terminate()
            task.join(5)


def delete_articles(index_dir: Path, ids: Iterable[str], lock_wait: float = 30.0) -> int:
    """Delete articles by id; returns how many were in the index."""
    with store.writer_lock(index_dir, wait=lock_wait):
        _name, ix = store.open_live(index_dir)
        writer = ix.writer()
        deleted = 0
        try:
            for article_id in ids:
                deleted += writer.delete_by_term("id", article_id)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        return deleted
