"""``ClusterIndexWriter``: the publishing path's ``IndexWriter`` (``index.publishing``) on a Typesense cluster.

The publishing applier (``index.applier``) hands it batches of journal entries; each ``apply`` is
one commit of ``index.typesense.writer`` (its module docstring says what a commit is), built from
that writer's own steps so that the order readers rely on stays the same: the labels of new
slugs, then the change document, then the import and the deletes, then ``state``. The ``state``
document carries ``applied_seq``, the last journal entry applied, written in the same request
that publishes the commit: that is where the applier reads back what it applied
(``IndexWriter.applied_seq``), so the number belongs to the commit and to no other, as the Whoosh
writer's seq file belongs to its table of contents.

Why a crash anywhere is harmless: until ``state`` is written, ``applied_seq`` still names the
earlier commit, so the applier applies the same entries again. Replaying is idempotent: an upsert
whose content hash (``version``) is already stored is no write and no change, a delete of an id
that is gone deletes nothing. What the killed commit did write is already listed in its change
document, whose seq is above ``state``'s; the replay therefore publishes a *new* seq even when it
has nothing left to write, so readers move past that change document and drop what it names.

Why the batch is collapsed to each id's last entry (as the Whoosh writer does): the outcome of
applying the entries in order is each id's last entry, and one import plus one delete per batch
is what keeps a commit cheap. Entries at or below ``state.applied_seq`` are dropped first: a
second applier that read its batch before another one's commit never rolls an article back.

No segments: Typesense indexes each document as it arrives and has nothing like Whoosh's small
segments to merge, so ``merge_small_segments`` is a no-op that answers 0.

One writer per prefix (``index.typesense.writer``): the applier lock keeps one applier per local
state directory; the operator runs one applier (one ``searchsvc serve`` with the applier on, or
``searchsvc apply``) per cluster prefix, and no ``searchsvc index --engine typesense`` run beside it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from index.publishing import AppliedBatch, Entry, Op
from index.typesense import documents
from index.typesense import writer as cluster
from index.typesense.connection import ClusterSettings
from index.typesense.writer import MAX_BATCH, ClusterWriter

logger = logging.getLogger("searchsvc.applier")


def collapse(entries: list[Entry]) -> list[Entry]:
    """Each id's last entry, in the order of those last entries (``index.whoosh_writer.collapse``,
    without importing Whoosh)."""
    last: dict[str, Entry] = {}
    for entry in entries:
        last.pop(entry.article_id, None)
        last[entry.article_id] = entry
    return list(last.values())


class ClusterIndexWriter:
    """Applies journal entries to the cluster of ``settings`` (``index.publishing.IndexWriter``).

    Holds one ``ClusterWriter`` (its client and connections) for the applier's life; ``close`` it.
    """

    def __init__(self, settings: ClusterSettings | None = None) -> None:
        self.writer = ClusterWriter(settings or ClusterSettings.from_env())

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> ClusterIndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def applied_seq(self) -> int:
        """``state.applied_seq``; 0 when the cluster holds no ``state`` yet (nothing is created)."""
        with cluster._cluster_errors("reading the applied journal entry"):
            state = self.writer._read_state()
        return state.applied_seq if state is not None else 0

    def merge_small_segments(self, *, busy: bool = False, interrupt: Callable[[], bool] | None = None) -> int:
        """Nothing to merge: Typesense has no segments (see the module docstring)."""
        return 0

    def apply(self, entries: list[Entry]) -> AppliedBatch:
        """Apply ``entries`` (sequence order) in one commit recording ``entries[-1].seq`` in ``state``.

        ``AppliedBatch.upserted`` counts the articles written: one already stored with the same
        content is no change (``index.typesense.writer``), so a replay notifies no feed (WebSub).

        Creates the collections and the alias when the cluster has none (publishing works on an
        empty cluster). ``ClusterWriteError`` (an OSError) when the cluster refuses or does not
        answer: the applier backs off and applies the same entries again.
        """
        if not entries:
            raise ValueError("apply needs at least one entry")
        started = time.monotonic()
        w = self.writer
        with cluster._cluster_errors("applying journal entries"):
            # Every apply starts from what the cluster says (a rebuild may have moved the alias,
            # another writer may have added labels), as every ClusterWriter run does.
            state = w.ensure()
            pending = [e for e in entries if e.seq > state.applied_seq]
            if not pending:
                return AppliedBatch(first_seq=state.applied_seq, last_seq=state.applied_seq, committed=False,
                                    generation=state.generation)
            target = state.target
            batch = AppliedBatch(first_seq=pending[0].seq, last_seq=pending[-1].seq)
            labels = cluster._Labels(dict(state.labels), lambda message: logger.warning("%s", message))
            upserts: dict[str, tuple[Entry, dict[str, Any], bytes, str]] = {}  # id -> entry, doc, line, slug
            deletes: list[str] = []
            for entry in collapse(pending):
                if entry.op is Op.DELETE:
                    deletes.append(entry.article_id)
                    continue
                assert entry.article is not None  # the journal stores an article with every upsert
                article = labels.apply(entry.article)
                try:
                    doc, line = cluster._document(article)
                except (OverflowError, ValueError) as exc:  # a value no field holds: skipped, as in Whoosh
                    logger.error("journal entry %d: cannot index %r: %s; skipped", entry.seq, entry.article_id, exc)
                    batch.skipped += 1
                    continue
                upserts[entry.article_id] = (entry, doc, line, article.category_slug)

            # What the target holds now: an upsert whose version is stored is no write (a replay);
            # a delete is of the ids found, each the way it was found.
            stored = w._stored(target, list(upserts)) if upserts else {}
            gone = w._stored(target, deletes, each=True) if deletes else {}
            writes: list[tuple[str, bytes]] = []
            months: set[str] = {s.month for s in gone.values()}  # of publication, before or now
            for article_id, (_entry, doc, line, slug) in upserts.items():
                before = stored.get(article_id)
                if before is not None and before.version == doc["version"]:
                    continue  # already there, same content: no write, no change, not counted
                writes.append((article_id, line))
                batch.upserted += 1
                batch.categories.add(slug)
                months.add(documents.untoken(str(doc["month"])))
                if before is not None:
                    batch.categories.add(before.slug)
                    months.add(before.month)
            batch.categories.update(s.slug for s in gone.values())

            # A change document exists above state's seq when an earlier commit was killed before
            # its state write: publish a new seq even if this replay writes nothing.
            orphaned = w._floor > state.seq
            if labels.dirty:  # the labels of new slugs before the articles that bring them
                w._publish_labels(target, labels)
            seq = state.seq
            if writes or gone or orphaned:
                seq = w._next_seq()
                if writes or gone:
                    w._record(seq, [article_id for article_id, _ in writes] + list(gone), batch.categories,
                              months)
            for start in range(0, len(writes), MAX_BATCH):
                failed = w._import(target, writes[start:start + MAX_BATCH])
                for article_id, reason in failed.items():
                    logger.error("journal entry %d: %r %s; skipped", upserts[article_id][0].seq, article_id, reason)
                    batch.skipped += 1
                    batch.upserted -= 1
            if gone:
                batch.deleted = w._delete(target, gone)
            w._publish(seq, target, labels.labels, applied_seq=batch.last_seq)
        batch.generation = f"{target}.{seq}"
        batch.commit_seconds = time.monotonic() - started
        return batch

