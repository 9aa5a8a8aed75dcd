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
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import Any

from whoosh.index import FileIndex

from index import store
from index.api import SettingError
from index.article import VN_TZ, Article
from index.build_writer import BuildSegmentWriter
from index.parallel import SegmentingMpWriter
from index.readers import ReadError
from index.schema import source_key

ProgressFn = Callable[[int], None]
PhaseFn = Callable[[str], None]
WarningFn = Callable[[str], None]


def _env_int(name: str, default: int) -> int:
    """A whole-number tuning setting from the environment; a bad value names its variable
    (the CLI prints it as a configuration error) instead of failing the import with ValueError."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise SettingError(f"{name} must be a whole number, not {raw!r}")
    return int(raw)


# Phases reported to ``on_phase`` (the CLI prints them with SEARCHSVC_TRACE_PHASES=1; the fault
# injection script kills the indexer in each of them).
PHASES = ("locking", "reading", "committing", "merging", "switching", "done")

# Measured on 2 cores (README, "Benchmarks"): two writer processes with one segment each.
DEFAULT_PROCS = min(2, os.cpu_count() or 1)
# Per writer process.
DEFAULT_LIMITMB = 256
# SEARCHSVC_SEGMENT_DOCS=3000 writes a segment every 3,000 articles: many segments, and queries slow
# down with every segment (docs/benchmarks.md). It was a way to keep Whoosh's posting pool from
# spilling to disk, which cost much CPU; the build writer's pool (index.build_writer) spills whole
# terms cheaply, so the default, one segment per writer process, is also the cheaper build.
SEGMENT_DOCS = _env_int("SEARCHSVC_SEGMENT_DOCS", 0) or 10**12
DEFAULT_LIMITMB = _env_int("SEARCHSVC_LIMITMB", DEFAULT_LIMITMB) or DEFAULT_LIMITMB
# The merge step after an update merges only segments below this size (the ones updates write),
# never the large segments of a build: Whoosh's default policy merged 20 build segments into one
# in one update (measured: longer than the build itself).
TINY_SEGMENT_DOCS = 2000
# Updates add one small segment each; past this many, the run merges the small ones.
MERGE_AT_SEGMENTS = _env_int("SEARCHSVC_MERGE_AT_SEGMENTS", 8)


@dataclass
class IndexReport:
    """What one run did. Every item the readers produce is counted once, in exactly one of
    indexed, updated, duplicates or skipped, so ``read`` is their sum."""

    read: int = 0  # items read: articles and the records or files reported as skipped
    indexed: int = 0  # articles with an id new to the index
    updated: int = 0  # articles replacing one already in the index before this run
    duplicates: int = 0  # articles whose id came earlier in this run: the last one is kept
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    errors: list[str] = field(default_factory=list)  # "path:line: reason", first 1,000
    warnings: list[str] = field(default_factory=list)  # indexed, but changed (a category label), first 1,000
    generation: str = ""
    kept: int = 0  # a rebuild: articles published through the API, not in its sources, kept

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        parts = [f"read {self.read}", f"indexed {self.indexed}", f"updated {self.updated}"]
        if self.duplicates:
            parts.append(f"duplicates {self.duplicates}")
        parts.append(f"skipped {self.skipped_total}")
        text = ", ".join(parts)
        if self.skipped:
            text += " (" + "; ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common()) + ")"
        if self.kept:
            text += f", kept {self.kept} published through the API"
        return text + (f"; generation {self.generation}" if self.generation else "")


# Where the details of a reason start: a colon, a parenthesis, or a value after a space (quoted,
# a number, a list, a dict, a bool). A digit inside a word ("UTF-8") is part of the label.
_REASON_DETAIL = re.compile(r"[:(]|\s(?=['\"\[{\d+-]|(?:True|False|None)\b)")


def reason_key(reason: str) -> str:
    """Group detailed reasons ("bad date '31/02/2014'") into summary buckets ("bad date")."""
    return _REASON_DETAIL.split(reason, maxsplit=1)[0].strip() or reason


def article_fields(article: Article, schema: Container[str] | None = None) -> dict[str, Any]:
    """The Whoosh document for an article. Captions are searchable as part of the body.

    ``schema``: the fields of the index written to; a field it lacks (an index built before the
    field existed, still updated in place) is left out."""
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
        "body_bridge": body,
        "category_slug": article.category_slug,
        "published": article.published.astimezone(UTC).replace(tzinfo=None),
        "year": f"{local.year:04d}",
        "month": f"{local.year:04d}-{local.month:02d}",
        "views": max(0, article.views or 0),
        "title_column": article.title.encode("utf-8"),
        "doc": json.dumps(article.to_dict(), ensure_ascii=False),
    }
    if article.source:
        fields["source_key"] = source_key(article.source)
    if schema is not None:
        fields = {name: value for name, value in fields.items() if name in schema}
    return fields


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
    on_warning: WarningFn | None = None,
) -> IndexReport:
    """Upsert articles into the index (or into a new generation with ``rebuild``).

    On any failure (a bad disk, ENOSPC, an interrupt) the live generation is untouched: a new
    generation being built is removed, an update's uncommitted segments are cancelled.
    ``on_warning`` hears of articles indexed with a change (their category's canonical label).
    """
    phase = on_phase or (lambda name: None)
    report = IndexReport()

    def warn(message: str) -> None:
        if len(report.warnings) < 1000:
            report.warnings.append(message)
        if on_warning:
            on_warning(message)
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
            if not fresh:
                store.remove_uncommitted_seq_files(index_dir / name)
            labels = CanonicalLabels.load(index_dir, name, ix, warn)
            _write(ix, items, report, fresh=fresh, procs=procs, limitmb=limitmb, progress=progress,
                   on_error=on_error, phase=phase, labels=labels)
            if fresh and live is not None:
                phase("keeping")
                report.kept = _keep_published(index_dir, live, ix, labels, limitmb)
                # The journal entries the live generation has applied are not applied again to
                # the new one: the publishing applier goes on after them (index.store, "Why
                # journal-<n>.seq"; docs/publishing.md says what a rebuild means for them).
                applied = store.read_applied_seq(index_dir / live)
                if applied:
                    store.write_applied_seq(index_dir / name, ix.latest_generation(), applied)
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


def _keep_published(index_dir: Path, live: str, ix: FileIndex, labels: CanonicalLabels, limitmb: int) -> int:
    """Copy into the new generation ``ix`` the articles published through the admin API (the
    journal's ``published`` ids) that the rebuild's sources did not hold, from the ``live``
    generation; returns how many.

    Why: a rebuild replaces the index with its sources, and a CMS export made before (or without)
    what the newsroom published since would otherwise drop acknowledged articles without a word.
    An id the sources hold is theirs (the rebuild's version wins); an id the live generation does
    not hold yet is still waiting in the journal, and the applier adds it after the switch; an
    unpublished id is not in ``published``."""
    from index.journal import Journal, default_journal_path

    try:
        journal = Journal(default_journal_path(index_dir), readonly=True)
    except FileNotFoundError:
        return 0  # nothing was ever published through the API
    kept = 0
    writer = None
    old_ix = store.storage(index_dir / live).open_index()
    try:
        with journal, old_ix.searcher() as old, ix.searcher() as new:
            for ids in journal.published_ids():
                for article_id in ids:
                    if new.document_number(id=article_id) is not None:
                        continue
                    fields = old.document(id=article_id)
                    if not fields:
                        continue
                    if writer is None:
                        writer = ix.writer(limitmb=limitmb)
                    article = labels.apply(Article.from_dict(json.loads(fields["doc"])))
                    writer.add_document(**article_fields(article, writer.schema))
                    kept += 1
        if writer is not None:
            labels.save()
            writer.commit(merge=False)
    except BaseException:
        if writer is not None:
            _abandon(writer)
        raise
    return kept


def canonical_label(labels: dict[str, str], article: Article, warn: WarningFn) -> tuple[Article, bool]:
    """``article`` under its slug's label in ``labels`` (the first label seen for a slug stays,
    with a warning for another one), and whether its slug was new (its label then recorded).
    Shared by both engines' writers (``index.typesense.writer``)."""
    slug = article.category_slug
    label = labels.get(slug)
    if label is None:
        labels[slug] = article.category
        return article, True
    if label == article.category:
        return article, False
    warn(f"{article.id}: category label {article.category!r} differs from {label!r}"
         f" for slug {slug!r}; kept {label!r}")
    return replace(article, category=label), False


class CanonicalLabels:
    """The label of each category slug in the generation a run writes (index.store, "Why
    canonical labels"): the first label ever seen for a slug stays; an article carrying another
    label for the same slug is indexed under the canonical one (its own stays in
    ``category_path``) and reported through ``warn``."""

    def __init__(self, directory: Path, labels: dict[str, str], warn: WarningFn, *, dirty: bool = False) -> None:
        self.directory = directory
        self.labels = labels
        self._warn = warn
        self._dirty = dirty  # the map differs from the generation's labels.json

    @classmethod
    def load(cls, index_dir: Path, name: str, ix: FileIndex, warn: WarningFn) -> CanonicalLabels:
        """The map ``name`` starts from: its own (an update), else the live generation's (a
        rebuild), else none (a first build). An index from before labels.json gets one from its
        stored articles, the labels it was showing."""
        live = store.current_generation(index_dir)
        source = name if store.read_labels(index_dir / name) is not None or live is None else live
        labels = store.read_labels(index_dir / source)
        if labels is not None:
            return cls(index_dir / name, labels, warn, dirty=source != name)
        if live is None:
            return cls(index_dir / name, {}, warn)
        try:
            live_ix: Any = ix if live == name else store.open_live(index_dir)[1]  # Whoosh is untyped
            with live_ix.reader() as reader:
                seed = store.labels_from_articles(reader)
        except Exception:
            seed = {}
        return cls(index_dir / name, seed, warn, dirty=True)

    def apply(self, article: Article) -> Article:
        """``article`` under its slug's canonical label (recording a new slug's label)."""
        article, added = canonical_label(self.labels, article, self._warn)
        self._dirty |= added
        return article

    def save(self) -> None:
        """Write the map before the commit that may add its new slugs: any commit a reader can
        open then has a label for every slug in it."""
        if self._dirty:
            store.write_labels(self.directory, self.labels)
            self._dirty = False


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
           on_error: Callable[[ReadError], None] | None, phase: PhaseFn, labels: CanonicalLabels) -> None:
    seen: set[str] = set()
    later: dict[str, Article] = {}  # ids repeated within this run: applied after the first commit
    searcher = None if fresh else ix.searcher()
    if fresh and procs > 1:
        writer = SegmentingMpWriter(ix, procs=procs, segment_docs=SEGMENT_DOCS, limitmb=limitmb)
    elif fresh:
        writer = BuildSegmentWriter(ix, limitmb=limitmb)  # the same segment as ix.writer's, cheaper
    else:
        writer = ix.writer(limitmb=limitmb)
    phase("reading")
    try:
        for item in items:
            report.read += 1
            if isinstance(item, ReadError):
                report.skipped[reason_key(item.reason)] += 1
                if len(report.errors) < 1000:
                    report.errors.append(str(item))
                if on_error:
                    on_error(item)
                continue
            if item.id in seen:
                later[item.id] = item
                report.duplicates += 1
                continue
            try:
                fields = article_fields(item, writer.schema)
            except (OverflowError, ValueError) as e:  # e.g. a date no index field can hold
                report.skipped[f"cannot index ({type(e).__name__})"] += 1
                if on_error:
                    on_error(ReadError(item.id, None, f"cannot index: {e}"))
                continue
            canonical = labels.apply(item)
            if canonical is not item:
                fields = article_fields(canonical, writer.schema)
            seen.add(item.id)
            if fresh:
                writer.add_document(**fields)
                report.indexed += 1
            else:
                assert searcher is not None  # opened whenever the run is not fresh
                exists = searcher.document_number(id=item.id) is not None
                writer.update_document(**fields)
                if exists:
                    report.updated += 1
                else:
                    report.indexed += 1
            if progress:
                progress(1)
        phase("committing")
        labels.save()
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
            for article in later.values():  # counted as duplicates when read
                writer.update_document(**article_fields(labels.apply(article), writer.schema))
                if progress:
                    progress(1)
            labels.save()
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


def merge_tiny_segments(writer: Any, segments: list[Any]) -> list[Any]:
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


def _abandon(writer: Any) -> None:
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
        name, ix = store.open_live(index_dir)
        store.remove_uncommitted_seq_files(index_dir / name)
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
