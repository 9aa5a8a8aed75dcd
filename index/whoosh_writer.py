"""``WhooshIndexWriter``: the publishing path's ``IndexWriter`` for the embedded Whoosh index.

One ``apply`` is one Whoosh commit in the live generation, under the same writer lock as
``searchsvc index`` (``index.store.writer_lock``), so the two never write at once. The commit
records the last journal sequence number it applies (``index.store``, "Why journal-<n>.seq"):
the seq file of the generation the commit will write is fsynced before ``writer.commit()``
renames the table of contents, so the number belongs to that commit and to no other.

Why the batch is collapsed to the last entry per id: Whoosh deletes by searching the segments
already on disk, so a document added earlier in the same writer cannot be deleted or replaced by
a later entry of the batch; applying only each id's last entry gives the outcome of applying
them all in order.

Why the new files are fsynced after the commit: the applier compacts the journal once ``apply``
returns, and Whoosh itself fsyncs nothing, so without it a power cut could lose both the journal
entries and the commit that applied them.

Why an apply never merges: merging re-adds every document of the merged segments, about as costly
as indexing them, and nothing published meanwhile is visible. So ``apply`` costs only its own
documents and merging is its own commit, ``merge_small_segments``, which the applier runs when
the journal has nothing waiting (or, past ``MERGE_CAP`` small segments, even when busy, so the
count stays bounded). A merge takes the smallest ``MERGE_AT_SEGMENTS`` segments, segments of
similar size, so a merged segment is merged again only with others as large (size tiers), and
each merge re-adds a bounded number of documents.

Why a merge re-adds the stored articles through the build's writer instead of Whoosh's
``add_reader``: the segment is the same, and Whoosh's posting pool was most of a merge's cost
(docs/benchmarks.md, "Publishing"). And since a merge holds the writer while it runs, nothing
published meanwhile becomes visible: a merge while entries wait takes at most
``BUSY_MERGE_DOCS`` documents, and one started while the journal was empty gives way
(``interrupt``) as soon as entries arrive; its work is lost, but publishing is not held back by
minutes (a merge of 8 segments of 1,000 articles held it for 2.5 minutes under search load).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from index import store
from index.article import Article
from index.build_writer import BuildSegmentWriter
from index.builder import DEFAULT_LIMITMB, MERGE_AT_SEGMENTS, TINY_SEGMENT_DOCS, CanonicalLabels, article_fields
from index.publishing import AppliedBatch, Entry, Op

logger = logging.getLogger("searchsvc.applier")

# The builder's pool size: a smaller pool spills a batch's postings to disk and applies it slower
# (docs/benchmarks.md, "Publishing"); the applier is one process, so this is paid once.
WRITER_LIMITMB = DEFAULT_LIMITMB
# Past this many small segments a merge runs even while entries are waiting: searching slows with
# every segment, and a merge of the smallest MERGE_AT_SEGMENTS is short.
MERGE_CAP = 4 * MERGE_AT_SEGMENTS
# At most this many documents in a merge made while entries wait (a few seconds of work).
BUSY_MERGE_DOCS = 1000
INTERRUPT_EVERY = 20  # documents re-added between two checks of ``interrupt``


class MergeInterrupted(Exception):
    """A merge gave way to waiting entries (``merge_small_segments``' ``interrupt``)."""


def collapse(entries: list[Entry]) -> list[Entry]:
    """Each id's last entry, in the order of those last entries."""
    last: dict[str, Entry] = {}
    for entry in entries:
        last.pop(entry.article_id, None)
        last[entry.article_id] = entry
    return list(last.values())


def segments_to_merge(segments: list[Any], *, busy: bool = False, max_docs: int = TINY_SEGMENT_DOCS,
                      at: int = MERGE_AT_SEGMENTS, cap: int = MERGE_CAP,
                      busy_docs: int = BUSY_MERGE_DOCS) -> list[Any]:  # fmt: skip
    """The segments one merge takes: none while at most ``at`` segments are below ``max_docs``
    documents (or, when ``busy``, at most ``cap``); else the ``at`` smallest of them (ties by id,
    so the choice is stable), when ``busy`` only as many of those as hold ``busy_docs`` documents
    together (at least two). Large segments (a build's) are never taken."""
    small = sorted((seg for seg in segments if seg.doc_count_all() < max_docs),
                   key=lambda seg: (seg.doc_count_all(), seg.segment_id()))
    if len(small) <= (cap if busy else at):
        return []
    chosen = small[:max(at, 2)]
    if busy:
        total = 0
        for n, seg in enumerate(chosen):
            total += seg.doc_count_all()
            if total > busy_docs and n >= 2:
                return chosen[:n]
    return chosen


def _fsync_commit(generation_dir: Path, toc_gen: int, new_segments: set[str]) -> None:
    """Make the commit ``toc_gen`` durable: its table of contents, its new segments' files and
    the directory that names them."""
    toc = f"_MAIN_{toc_gen}.toc"
    prefixes = tuple(f"{segment_id}." for segment_id in new_segments)  # MAIN_<id>.seg, or its parts
    for child in generation_dir.iterdir():
        if child.name == toc or (prefixes and child.name.startswith(prefixes)):
            fd = os.open(child, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(generation_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readd(writer: Any, segments: list[Any], chosen: set[str], interrupt: Callable[[], bool] | None) -> None:
    """Add the live documents of the ``chosen`` segments to ``writer`` again, in index order, from
    their stored articles (what ``apply`` indexed: ``article_fields`` of the stored article)."""
    from whoosh.reading import SegmentReader

    added = 0
    for seg in segments:
        if seg.segment_id() not in chosen:
            continue
        reader = SegmentReader(writer.storage, writer.schema, seg)
        try:
            for docnum in reader.all_doc_ids():
                article = Article.from_dict(json.loads(reader.stored_fields(docnum)["doc"]))
                writer.add_document(**article_fields(article, writer.schema))
                added += 1
                if interrupt is not None and added % INTERRUPT_EVERY == 0 and interrupt():
                    raise MergeInterrupted
        finally:
            reader.close()


class WhooshIndexWriter:
    """Applies journal entries to the Whoosh index in ``index_dir`` (``index.publishing.IndexWriter``).

    ``lock_wait``: seconds to wait for the writer lock before ``IndexBusy`` (the applier retries;
    a ``searchsvc index`` run can hold the lock for minutes).
    """

    def __init__(self, index_dir: Path, *, lock_wait: float = 0.0, limitmb: int = WRITER_LIMITMB,
                 segment_writer: Callable[..., Any] = BuildSegmentWriter) -> None:
        self.index_dir = Path(index_dir)
        self.lock_wait = lock_wait
        self.limitmb = limitmb
        # An apply's segment: the build's writer, the same files as Whoosh's ``SegmentWriter`` for
        # a fraction of the CPU (2.6 against 6.5-8.1 CPU-s for 330 entries on a 5,000-article
        # index, docs/benchmarks.md): most of a commit is writing its new segment's postings.
        # Whoosh's own writer is the reference tests/test_build_writer.py compares it with.
        self.segment_writer = segment_writer

    def applied_seq(self) -> int:
        live = store.current_generation(self.index_dir)
        if live is None:
            return 0
        return store.read_applied_seq(self.index_dir / live)

    def apply(self, entries: list[Entry]) -> AppliedBatch:
        """Apply ``entries`` (sequence order) in one commit recording ``entries[-1].seq``.

        Entries at or below the sequence number the index has already applied are dropped (read
        under the lock): a second applier, or one that read its batch before another commit,
        never rolls an article back to older content. Creates the index (a first generation)
        when there is none, so that publishing works on an empty install.
        """
        if not entries:
            raise ValueError("apply needs at least one entry")
        with store.writer_lock(self.index_dir, wait=self.lock_wait):
            live = store.current_generation(self.index_dir)
            if live is None:
                return self._apply_to_new_index(entries)
            generation_dir = self.index_dir / live
            store.remove_uncommitted_seq_files(generation_dir)
            applied = store.read_applied_seq(generation_dir)
            pending = [e for e in entries if e.seq > applied]
            if not pending:
                return AppliedBatch(first_seq=applied, last_seq=applied, committed=False,
                                    generation=f"{live}.{store.toc_generation(generation_dir)}")
            ix = store.storage(generation_dir).open_index()
            return self._commit(live, ix, pending)

    def merge_small_segments(self, *, busy: bool = False, max_docs: int = TINY_SEGMENT_DOCS,
                             interrupt: Callable[[], bool] | None = None) -> int:
        """Merge the segments ``segments_to_merge`` picks into one, in a commit of its own; returns
        how many were merged (0: nothing to do, no commit). ``interrupt``: asked every few
        documents; when it answers True the merge is given up (nothing committed) and 0 returned.

        The commit writes no seq file, so it inherits the applied number of the commit before it
        (``index.store``, "Why journal-<n>.seq"); a seq file left above the live table of contents
        by a killed writer is removed first, as it would otherwise be read as this commit's.
        """
        with store.writer_lock(self.index_dir, wait=self.lock_wait):
            live = store.current_generation(self.index_dir)
            if live is None:
                return 0
            generation_dir = self.index_dir / live
            ix = store.storage(generation_dir).open_index()
            chosen = {seg.segment_id() for seg in segments_to_merge(ix._segments(), busy=busy, max_docs=max_docs)}
            if not chosen:
                return 0
            store.remove_uncommitted_seq_files(generation_dir)
            started = time.monotonic()
            writer = self.segment_writer(ix, limitmb=self.limitmb)
            try:
                toc_gen = int(writer.generation)
                known = {seg.segment_id() for seg in writer.segments}
                _readd(writer, list(writer.segments), chosen, interrupt)
                writer.commit(mergetype=lambda w, segments: [s for s in segments if s.segment_id() not in chosen])
            except MergeInterrupted:
                writer.cancel()
                logger.info("a merge of %d small segments gave way to waiting entries after %.3f s", len(chosen),
                            time.monotonic() - started)
                return 0
            except BaseException:
                try:
                    writer.cancel()
                except Exception:
                    pass
                raise
            _fsync_commit(generation_dir, toc_gen, {seg.segment_id() for seg in ix._segments()} - known)
            logger.info("merged %d small segments in %.3f s (%s.%d)", len(chosen), time.monotonic() - started,
                        live, toc_gen)
            return len(chosen)

    def _apply_to_new_index(self, entries: list[Entry]) -> AppliedBatch:
        for n in store.generation_numbers(self.index_dir):  # half-built ones (no live index)
            shutil.rmtree(self.index_dir / f"gen-{n:06d}", ignore_errors=True)
        name, ix = store.new_generation(self.index_dir)
        try:
            batch = self._commit(name, ix, entries)
            store.switch_to(self.index_dir, name)
        except BaseException:
            shutil.rmtree(self.index_dir / name, ignore_errors=True)
            raise
        logger.info("created the index %s for the first published articles", name)
        return batch

    def _commit(self, name: str, ix: Any, entries: list[Entry]) -> AppliedBatch:
        generation_dir = self.index_dir / name
        started = time.monotonic()
        batch = AppliedBatch(first_seq=entries[0].seq, last_seq=entries[-1].seq)
        labels = CanonicalLabels.load(self.index_dir, name, ix, lambda message: logger.warning("%s", message))
        writer = self.segment_writer(ix, limitmb=self.limitmb)
        try:
            toc_gen = int(writer.generation)
            known = {seg.segment_id() for seg in writer.segments}
            searcher = writer.searcher()
            for entry in collapse(entries):
                old = searcher.document(id=entry.article_id)
                if entry.op is Op.UPSERT:
                    assert entry.article is not None  # the journal stores an article with every upsert
                    article = labels.apply(entry.article)
                    try:
                        fields = article_fields(article, writer.schema)
                    except (OverflowError, ValueError) as exc:  # e.g. a date no index field can hold
                        logger.error("journal entry %d: cannot index %r: %s; skipped", entry.seq,
                                     entry.article_id, exc)
                        batch.skipped += 1
                        continue
                    writer.update_document(**fields)
                    batch.upserted += 1
                    batch.categories.add(article.category_slug)
                else:
                    batch.deleted += int(writer.delete_by_term("id", entry.article_id))
                if old:
                    batch.categories.add(str(old["category_slug"]))
            labels.save()
            store.write_applied_seq(generation_dir, toc_gen, entries[-1].seq)
            writer.commit(merge=False)  # merging is merge_small_segments' (see the module docstring)
        except BaseException:
            try:
                writer.cancel()
                store.remove_uncommitted_seq_files(generation_dir)
            except Exception:
                pass
            raise
        _fsync_commit(generation_dir, toc_gen, {seg.segment_id() for seg in ix._segments()} - known)
        store.prune_seq_files(generation_dir, toc_gen)
        batch.generation = f"{name}.{toc_gen}"
        batch.commit_seconds = time.monotonic() - started
        return batch
