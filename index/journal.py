"""The durable journal of publishing changes: SQLite (stdlib ``sqlite3``) in WAL mode.

Why SQLite: ``append`` must be durable when it returns (that is what makes the admin API's ``202``
honest) and must never leave half a batch behind. A WAL database with ``synchronous=FULL`` syncs
the write-ahead log at every commit, and a transaction is all or nothing, so both hold without a
hand-written log format, fsync dance or recovery code.

Sequence numbers: ``seq`` is an ``INTEGER PRIMARY KEY AUTOINCREMENT``. AUTOINCREMENT matters:
without it SQLite may hand out the number of a row deleted by compaction again, and an entry
numbered at or below what the index has already applied would be skipped for ever. Appends take
the write lock first (``BEGIN IMMEDIATE``), so numbers are handed out and become visible in the
same order, across threads and processes: a reader never sees seq n+1 committed before seq n.

Tombstones: a DELETE records the id and the time in ``tombstones`` (in the same transaction), a
later UPSERT of the id removes it. Compaction keeps them, so the service can answer ``410 Gone``
for an unpublished article long after its entry was applied; there is one row per id ever
unpublished and not republished (docs/publishing.md, "Unpublishing").

Published ids: an UPSERT records its id in ``published`` and a DELETE removes it (in the same
transaction), so the journal knows which articles the newsroom published through the API and has
not unpublished, long after their entries are compacted away. ``searchsvc index --rebuild`` reads
them (``index.builder``): a rebuild from a CMS export that lacks them keeps them instead of
silently dropping what was acknowledged. One short row per id; ids published before the table
existed (a journal older than it) are not in it.

Threads share one connection behind a lock (an append is one short transaction; SQLite would
serialise the writers anyway, and its busy handler sleeps far longer than a lock waits).
Processes each open their own ``Journal``; SQLite's file locks order them, and ``BUSY_TIMEOUT``
bounds how long one waits for another.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.article import Article
from index.publishing import Change, Entry, JournalError, JournalStats, Op

JOURNAL_FILE = "journal.sqlite3"
JOURNAL_ENV = "SEARCHSVC_JOURNAL"
BUSY_TIMEOUT = 10.0  # seconds one connection waits for another's write lock before failing
# The write-ahead log is truncated back to this size after a checkpoint (SQLite's
# journal_size_limit): a burst of appends must not leave a large log file behind for ever.
WAL_SIZE_LIMIT = 16 << 20

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
        article_id TEXT NOT NULL,
        article TEXT,
        accepted_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        article_id TEXT PRIMARY KEY,
        deleted_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS published (
        article_id TEXT PRIMARY KEY
    ) WITHOUT ROWID""",
)


def default_journal_path(index_dir: Path) -> Path:
    """``$SEARCHSVC_JOURNAL`` when set, else ``<index_dir>/journal.sqlite3``."""
    configured = os.environ.get(JOURNAL_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(index_dir) / JOURNAL_FILE


def _is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _journal_error(action: str, path: Path, exc: BaseException) -> JournalError:
    if _is_disk_full(exc):
        return JournalError(f"cannot {action} the journal {path}: the disk is full", disk_full=True)
    return JournalError(f"cannot {action} the journal {path}: {exc}")


def _article_json(article: Article) -> str:
    record = article.to_dict()
    # Paragraphs as a list: joined with blank lines (to_dict's "body") a paragraph holding a blank
    # line of its own would come back as two.
    record["body"] = list(article.body)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, op, article_id, article, accepted_at = row
    return Entry(
        seq=int(seq),
        op=Op(op),
        article_id=str(article_id),
        article=Article.from_dict(json.loads(article)) if article is not None else None,
        accepted_at=datetime.fromisoformat(accepted_at),
    )


class Journal:
    """Entries in sequence order, appended durably, read by the applier, compacted once applied.

    ``readonly``: open an existing journal without ever writing (the service's tombstone lookups);
    a missing file is then ``FileNotFoundError`` rather than a new journal.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            self._conn = self._connect()
        except (sqlite3.Error, OSError) as exc:  # unwritable, not a directory, a full disk...
            if readonly and (isinstance(exc, FileNotFoundError) or not self.path.exists()):
                raise FileNotFoundError(errno.ENOENT, "no journal", str(self.path)) from None
            raise _journal_error("open", self.path, exc) from exc

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.is_file():
                raise FileNotFoundError(errno.ENOENT, "no journal", str(self.path))
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), never implicit.
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch the journal to WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def append(self, changes: Sequence[Change]) -> int:
        """Store ``changes`` in one transaction; returns the last sequence number given.

        Durable when it returns (WAL, ``synchronous=FULL``). On any failure nothing of the batch
        is stored and ``JournalError`` says why (``disk_full`` for SQLITE_FULL/ENOSPC). An empty
        batch stores nothing and returns the last sequence number so far.
        """
        if self.readonly:
            raise JournalError(f"the journal {self.path} is open read-only")
        rows: list[tuple[str, str, str | None]] = []
        for change in changes:
            if change.op is Op.UPSERT:
                if change.article is None or change.article.id != change.article_id:
                    raise ValueError(f"an upsert of {change.article_id!r} needs that article")
                rows.append((Op.UPSERT.value, change.article_id, _article_json(change.article)))
            else:
                rows.append((Op(change.op).value, change.article_id, None))
        if not rows:
            return self.last_seq()
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    now = datetime.now(UTC).isoformat()
                    last = 0
                    for op, article_id, article in rows:
                        cursor = conn.execute(
                            "INSERT INTO entries (op, article_id, article, accepted_at) VALUES (?, ?, ?, ?)",
                            (op, article_id, article, now),
                        )
                        last = int(cursor.lastrowid or 0)
                        if op == Op.DELETE.value:
                            conn.execute("INSERT OR REPLACE INTO tombstones (article_id, deleted_at) VALUES (?, ?)",
                                         (article_id, now))
                            conn.execute("DELETE FROM published WHERE article_id = ?", (article_id,))
                        else:
                            conn.execute("DELETE FROM tombstones WHERE article_id = ?", (article_id,))
                            conn.execute("INSERT OR IGNORE INTO published (article_id) VALUES (?)", (article_id,))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _journal_error("append to", self.path, exc) from exc
            return last

    def compact(self, upto_seq: int) -> int:
        """Remove entries up to and including ``upto_seq`` (applied); returns how many.

        Sequence numbers are never reused (AUTOINCREMENT) and tombstones stay.
        """
        if self.readonly:
            raise JournalError(f"the journal {self.path} is open read-only")
        with self._lock:
            try:
                cursor = self._conn.execute("DELETE FROM entries WHERE seq <= ?", (upto_seq,))
            except sqlite3.Error as exc:
                raise _journal_error("compact", self.path, exc) from exc
            removed = int(cursor.rowcount)
            if removed:
                # Fold the log into the database (so that its pages are reused rather than the log
                # growing until SQLite's own checkpoint). It copies pages into the database file,
                # which a full disk can refuse: the entries are compacted all the same.
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass
            return removed

    # -- reading ---------------------------------------------------------------------------------

    def read_after(self, seq: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries numbered above ``seq``, in sequence order."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT seq, op, article_id, article, accepted_at FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, max(0, limit)),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _journal_error("read", self.path, exc) from exc
        return [_entry(row) for row in rows]

    def last_seq(self) -> int:
        """The last sequence number ever given (0 when none), compacted entries included."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
            except sqlite3.Error as exc:
                raise _journal_error("read", self.path, exc) from exc
        return int(row[0]) if row else 0

    def stats(self) -> JournalStats:
        with self._lock:
            try:
                length = int(self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
            except sqlite3.Error as exc:
                raise _journal_error("read", self.path, exc) from exc
        size = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                size += os.stat(f"{self.path}{suffix}").st_size
            except OSError:
                pass
        return JournalStats(length=length, last_seq=self.last_seq(), bytes_on_disk=size)

    def deleted_at(self, article_id: str) -> datetime | None:
        """When ``article_id`` was unpublished, if it is unpublished (its last entry a DELETE)."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT deleted_at FROM tombstones WHERE article_id = ?",
                                         (article_id,)).fetchone()
            except sqlite3.Error as exc:
                raise _journal_error("read", self.path, exc) from exc
        return datetime.fromisoformat(row[0]) if row else None

    def published_ids(self, batch: int = 10_000) -> Iterator[list[str]]:
        """The ids published through the journal and not unpublished since, in batches of at most
        ``batch`` (an archive fed by the API can hold millions); none from a journal older than
        the ``published`` table (opened read-only, it cannot have been given one)."""
        after = ""
        while True:
            with self._lock:
                try:
                    rows = self._conn.execute(
                        "SELECT article_id FROM published WHERE article_id > ? ORDER BY article_id LIMIT ?",
                        (after, batch),
                    ).fetchall()
                except sqlite3.OperationalError as exc:
                    if "no such table" in str(exc):
                        return
                    raise _journal_error("read", self.path, exc) from exc
                except sqlite3.Error as exc:
                    raise _journal_error("read", self.path, exc) from exc
            if not rows:
                return
            yield [str(row[0]) for row in rows]
            after = str(rows[-1][0])
