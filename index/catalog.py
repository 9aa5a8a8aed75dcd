"""The catalog: every live article's id, category, date and content version, per index generation,
kept current from each commit's changes instead of being recomputed.

Why it exists: the newest-articles lists (the home page, category pages and feeds), the category
counts and "what did this commit change" are asked for far more often than the index changes, and
answering them with a sorted Whoosh search costs a full pass over the category's postings and a
sort, queued behind reader searches, again after every commit. Here a commit costs work in
proportion to what it changed, and a newest-first list is a slice.

How it is kept current (Whoosh-specific, which is why it lives beside ``index.engine``): an index
generation is a list of immutable segments, each with a set of deleted document numbers. A
segment's documents are read once, when a generation that holds it is first seen; a new generation
is then the old catalog minus the documents of segments that went away and of newly deleted
documents, plus the live documents of new segments. An article whose id comes back with the same
content version, category and date (a merge of segments, an identical re-index) is no change;
everything else is, and ``Changes`` records its id and both its categories and months of publication.

Snapshots are immutable once built: threads still answering from an older generation keep reading
theirs. A snapshot shares the unchanged per-category lists of the one it was built from.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from index.api import EVERYTHING, Changes, month_of

# The ``published`` column's unit: microseconds since 0001-01-01 UTC (whoosh.util.times).
ORIGIN = datetime(1, 1, 1, tzinfo=UTC)

# (negated publication time, id): ascending order is newest first, ties by id, the same on every
# worker and after every commit (a sorted Whoosh search broke ties by internal document number).
SortKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One live article: where it is (segment, document number in it) and what identifies its
    content (category, publication time, a hash of its stored JSON)."""

    segment: str
    docnum: int
    category: str
    published: int
    version: int

    @property
    def sort_key(self) -> int:
        return -self.published

    @property
    def month(self) -> str:
        """Its month of publication (``index.api.month_of``)."""
        return month_of(moment(self.published))

    def same_content(self, other: Entry) -> bool:
        return (self.version, self.category, self.published) == (other.version, other.category, other.published)


@dataclass(frozen=True, slots=True)
class SegmentDocs:
    """What the catalog knows of one segment: per document number, the article's id, category,
    publication time and content version (segments never change; their deletions do)."""

    ids: list[str]
    categories: list[str]
    published: list[int]
    versions: list[int]


@dataclass(slots=True)
class Snapshot:
    """The catalog of one generation (read-only once built)."""

    token: str
    segments: dict[str, SegmentDocs]
    deleted: dict[str, frozenset[int]]
    offsets: dict[str, int]  # segment id -> its first document number in this generation's reader
    live: dict[str, Entry]
    by_category: dict[str, list[SortKey]]
    newest: list[SortKey]
    counts: dict[str, int] = field(default_factory=dict)

    def docnum(self, article_id: str) -> int | None:
        """The document number of ``article_id`` in a reader of this generation."""
        entry = self.live.get(article_id)
        return None if entry is None else self.offsets[entry.segment] + entry.docnum

    def latest_ids(self, category: str | None, limit: int, offset: int) -> list[str]:
        keys = self.newest if category is None else self.by_category.get(category, [])
        return [article_id for _, article_id in keys[offset: offset + limit]]

    def between(self, start: int, end: int) -> list[SortKey]:
        """The keys of the articles published in [start, end) (the column's unit), oldest first,
        ties by id: two bisections of the newest-first list and a sort of what lies between them
        (already in reverse order but for ties, so the sort is linear)."""
        lo = bisect.bisect_left(self.newest, (1 - end,))  # published < end: key > -end
        hi = bisect.bisect_left(self.newest, (1 - start,))  # published >= start: key <= -start
        return sorted(self.newest[lo:hi], key=lambda key: (-key[0], key[1]))

    def __len__(self) -> int:
        return len(self.live)


def moment(published: int) -> datetime:
    """The aware datetime of a ``published`` value (the column's unit, ``ORIGIN``)."""
    return ORIGIN + timedelta(microseconds=published)


def published_value(when: datetime) -> int:
    """The ``published`` value of an aware datetime (the inverse of ``moment``)."""
    return (when - ORIGIN) // timedelta(microseconds=1)


def _leaves(reader: Any) -> list[tuple[Any, int]]:
    """(segment reader, its first document number) of a Whoosh reader, one segment or many."""
    return list(reader.leaf_readers())


def _read_segment(reader: Any) -> SegmentDocs:
    """Every document of one segment reader, deleted or not (deletions are tracked apart)."""
    count = reader.doc_count_all()
    published: list[int] | None = None
    if reader.has_column("published"):
        column = reader.column_reader("published", translate=False)  # raw longs, not datetimes
        published = [int(column[n] or 0) for n in range(count)]
    ids, categories, dates, versions = [], [], [], []
    for docnum in range(count):
        fields = reader.stored_fields(docnum)
        doc = fields.get("doc") or ""
        ids.append(str(fields.get("id", "")))
        categories.append(str(fields.get("category_slug", "")))
        versions.append(hash(doc))  # per process: versions are only compared within one
        if published is None:
            dates.append(_published_from_json(doc))
    return SegmentDocs(ids, categories, published if published is not None else dates, versions)


def _published_from_json(doc: str) -> int:
    try:
        return published_value(datetime.fromisoformat(json.loads(doc)["published"]))
    except (ValueError, KeyError, TypeError):
        return 0


def build(token: str, reader: Any, previous: Snapshot | None = None, *,
          changes: bool = True) -> tuple[Snapshot, Changes]:
    """The snapshot of the generation ``token`` that ``reader`` reads, and what changed since
    ``previous`` (``EVERYTHING`` when there is none or it belongs to another index directory).

    Changes are computed forward only: from an older generation to a newer one. ``changes=False``
    (``previous`` is newer) only reuses what ``previous`` read of the segments both hold and builds
    the rest from scratch, reporting ``EVERYTHING``: going back, deletions are undone, which the
    forward computation cannot see."""
    same_index = previous is not None and previous.token.split(".")[0] == token.split(".")[0]
    base = previous if same_index else None
    segments: dict[str, SegmentDocs] = {}
    deleted: dict[str, frozenset[int]] = {}
    offsets: dict[str, int] = {}
    for leaf, offset in _leaves(reader):
        segid = leaf.segment().segment_id()
        docs = base.segments.get(segid) if base is not None else None
        segments[segid] = docs if docs is not None else _read_segment(leaf)
        deleted[segid] = frozenset(leaf.segment().deleted_docs() or ()) if leaf.has_deletions() else frozenset()
        offsets[segid] = offset
    if base is None or not changes:
        snapshot = _from_scratch(token, segments, deleted, offsets)
        return snapshot, EVERYTHING
    return _from_previous(token, base, segments, deleted, offsets)


def _entries(segid: str, docs: SegmentDocs, numbers: Iterable[int]) -> Iterable[tuple[str, Entry]]:
    for n in numbers:
        yield docs.ids[n], Entry(segid, n, docs.categories[n], docs.published[n], docs.versions[n])


def _live_numbers(docs: SegmentDocs, deleted: frozenset[int]) -> Iterable[int]:
    return (n for n in range(len(docs.ids)) if n not in deleted)


def _from_scratch(token: str, segments: dict[str, SegmentDocs], deleted: dict[str, frozenset[int]],
                  offsets: dict[str, int]) -> Snapshot:
    live: dict[str, Entry] = {}
    for segid, docs in segments.items():
        live.update(_entries(segid, docs, _live_numbers(docs, deleted[segid])))
    by_category: dict[str, list[SortKey]] = {}
    for article_id, entry in live.items():
        by_category.setdefault(entry.category, []).append((entry.sort_key, article_id))
    for keys in by_category.values():
        keys.sort()
    newest = sorted(key for keys in by_category.values() for key in keys)
    counts = {slug: len(keys) for slug, keys in by_category.items()}
    return Snapshot(token, segments, deleted, offsets, live, by_category, newest, counts)


def _from_previous(token: str, base: Snapshot, segments: dict[str, SegmentDocs],
                   deleted: dict[str, frozenset[int]], offsets: dict[str, int]) -> tuple[Snapshot, Changes]:
    # Documents that left: every live one of a segment gone (merged away), and the newly deleted
    # ones of segments still there. Documents that came: the live ones of new segments.
    gone: dict[str, Entry] = {}
    for segid, docs in base.segments.items():
        if segid not in segments:
            gone.update(_entries(segid, docs, _live_numbers(docs, base.deleted[segid])))
        else:
            fresh = deleted[segid] - base.deleted[segid]
            gone.update(_entries(segid, docs, sorted(fresh)))
    came: dict[str, Entry] = {}
    for segid, docs in segments.items():
        if segid not in base.segments:
            came.update(_entries(segid, docs, _live_numbers(docs, deleted[segid])))

    live = dict(base.live)
    changed_ids: set[str] = set()
    touched: set[str] = set()
    months: set[str] = set()
    for article_id, entry in gone.items():
        if live.get(article_id) == entry:
            del live[article_id]
    for article_id, entry in came.items():
        live[article_id] = entry
    # Compare each id that moved with what the previous generation held: same content is no change.
    for article_id in gone.keys() | came.keys():
        before, after = base.live.get(article_id), live.get(article_id)
        if before is not None and after is not None and before.same_content(after):
            continue
        if before is None and after is None:
            continue
        changed_ids.add(article_id)
        touched.update(e.category for e in (before, after) if e is not None)
        months.update(e.month for e in (before, after) if e is not None)

    by_category = dict(base.by_category)
    newest = base.newest
    counts = dict(base.counts)
    if changed_ids or gone or came:
        lists: dict[str, list[SortKey]] = {}

        def own(slug: str) -> list[SortKey]:
            if slug not in lists:
                lists[slug] = list(by_category.get(slug, []))
            return lists[slug]

        newest = list(base.newest)
        for article_id in gone.keys() | came.keys():
            before, after = base.live.get(article_id), live.get(article_id)
            if before is not None and after is not None and before.sort_key == after.sort_key \
                    and before.category == after.category:
                continue  # same place in every list
            if before is not None:
                _remove(own(before.category), (before.sort_key, article_id))
                _remove(newest, (before.sort_key, article_id))
            if after is not None:
                bisect.insort(own(after.category), (after.sort_key, article_id))
                bisect.insort(newest, (after.sort_key, article_id))
        for slug, keys in lists.items():
            if keys:
                by_category[slug] = keys
            else:
                by_category.pop(slug, None)
            counts[slug] = len(keys)
            if not keys:
                counts.pop(slug, None)
    snapshot = Snapshot(token, segments, deleted, offsets, live, by_category, newest, counts)
    return snapshot, Changes(frozenset(changed_ids), frozenset(touched), months=frozenset(months))


def _remove(keys: list[SortKey], key: SortKey) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]
