"""The contract of the publishing path: a durable journal of changes and the index writer that
applies them, independent of Whoosh so that a cluster engine can stand behind the same writer.

Flow: the admin API validates articles (the readers' own ``parse_record``), appends them to the
``Journal`` (acknowledged only once the entries are on disk), and one ``Applier`` per index reads
them in sequence order and hands batches to an ``IndexWriter``. The writer records the last
applied sequence number in the commit itself, so a crash between the commit and any bookkeeping
never applies an entry twice with a different outcome (and replaying upserts and deletes in order
is idempotent anyway). Applied entries are compacted away.

Only the types live here; ``index.journal`` implements the journal (SQLite), ``index.applier``
the applier loop, and each engine its ``IndexWriter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from index.article import Article


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry: publish (or correct) an article, or unpublish an id."""

    seq: int
    op: Op
    article_id: str
    article: Article | None  # set for UPSERT, None for DELETE
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """What one entry asks for, before it has a sequence number."""

    op: Op
    article_id: str
    article: Article | None = None


@dataclass(slots=True)
class AppliedBatch:
    """What one commit of the writer changed: the hook that notifies feed readers (WebSub) and
    the caches needs to know which categories moved."""

    first_seq: int
    last_seq: int
    upserted: int = 0
    deleted: int = 0
    categories: set[str] = field(default_factory=set)  # slugs whose lists changed
    generation: str = ""
    commit_seconds: float = 0.0
    skipped: int = 0  # upserts the index could not hold (logged by the writer)
    # False when every entry had already been applied (by another applier): nothing was committed.
    committed: bool = True


class JournalError(OSError):
    """The journal could not store an entry (disk full, unwritable): nothing was acknowledged."""

    def __init__(self, message: str, *, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class IndexWriter(Protocol):
    """What the applier needs of an engine's index."""

    def applied_seq(self) -> int:
        """The last journal sequence number recorded by a commit (0 when none)."""
        ...

    def apply(self, entries: list[Entry]) -> AppliedBatch:
        """Apply the entries (in sequence order; for one id the last entry wins) in one commit that
        also records ``entries[-1].seq``; returns what changed."""
        ...

    def merge_small_segments(self, *, busy: bool = False, interrupt: Callable[[], bool] | None = None) -> int:
        """Merge some of the small segments the commits left, in a commit of its own that keeps the
        applied number; returns how many were merged (0: none needed, or given up). ``busy``:
        entries are waiting, so merge only when the segment count is past its hard bound.
        ``interrupt``: asked now and then while merging; True gives the merge up."""
        ...


@dataclass(frozen=True, slots=True)
class JournalStats:
    length: int  # entries not yet compacted away
    last_seq: int  # last accepted sequence number (0 when none ever)
    bytes_on_disk: int


@dataclass(slots=True)
class ApplierStatus:
    """Written by the applier after each step (a small JSON file replaced atomically), read by
    ``GET /api/admin/status`` in any worker."""

    state: str = "stopped"  # "starting", "idle", "applying", "merging", "backing-off", "stopped"
    applied_seq: int = 0
    last_commit_at: datetime | None = None
    last_commit_seconds: float | None = None
    generation: str = ""
    last_error: str | None = None
    pid: int | None = None
    updated_at: datetime | None = None
    # The commit hook's own counts when it reports any (searchsvc.websub: pings sent, failed...).
    websub: dict[str, int] | None = None
