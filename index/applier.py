"""The one applier per index: journal entries, in sequence order, into the index, in batches.

Loop: read the entries after the sequence number the index has applied (``IndexWriter.applied_seq``,
recorded in the index commit itself), apply them in one commit, compact the journal up to what
was applied, report (a status file, the ``on_commit`` hook). Nothing is remembered between steps
but the time of the last commit: after a crash at any point the next step starts again from what
the index says, and re-applying an entry (upserts and deletes, in order) gives the same index.

Batching: a commit at most every ``interval`` seconds (``SEARCHSVC_COMMIT_INTERVAL``), or at once
when ``max_batch`` entries are waiting. A single article published after a quiet spell is
committed as soon as the applier sees it (it polls the journal every ``POLL`` seconds).

Merging: a commit never merges segments (that would delay what it publishes); after a commit with
entries waiting, the applier asks the writer to merge small segments as "busy"
(``IndexWriter.merge_small_segments``: only past a hard bound, and a bounded merge), and once the
journal has been empty for ``MERGE_AFTER_IDLE`` seconds it goes on asking until there is nothing
to merge. Publishing has priority: the journal is read again between two merges, and a merge
started in a lull gives way when entries arrive. Why wait for a lull: at a steady 50 articles a
second the journal is empty for a few milliseconds after most commits, and a merge started then
would give way at once, its work lost, commit after commit. A failed merge (or one the writer
lock refuses) is logged and left to the next commit.

Failures never stop the loop: a busy writer lock (a ``searchsvc index`` run) is waited out, any
other error (a full disk, an unreadable journal) is retried with exponential backoff while the
journal keeps every entry. Exceptions in ``on_commit`` are logged and ignored: the index and the
journal are already consistent when it runs.

Only ``index.publishing`` types are used here (the journal is SQLite, the writer any engine's:
``run_applier`` picks the Whoosh writer or the cluster's, ``index_writer``). With the cluster
engine the index directory is the service's local state directory: the applier lock and the
status file stay there, the commits (and the applied number) go to the cluster.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.api import SettingError
from index.journal import Journal
from index.publishing import AppliedBatch, ApplierStatus, IndexWriter, JournalError

logger = logging.getLogger("searchsvc.applier")

INTERVAL_ENV = "SEARCHSVC_COMMIT_INTERVAL"
DEFAULT_INTERVAL = 1.0  # seconds between commits at most
MAX_INTERVAL = 3600.0
DEFAULT_MAX_BATCH = 1000  # entries per commit at most
POLL = 0.05  # seconds between looks at the journal while idle (a read of an indexed table)
MERGE_AFTER_IDLE = 1.0  # seconds of an empty journal before a merge that is not forced
# Seconds the applier trusts the applied number it last read or committed before asking the index
# again (a directory listing): the writer drops entries already applied anyway, so a stale number
# costs at most a commit that applies nothing.
APPLIED_REREAD = 1.0
HEARTBEAT = 5.0  # seconds between status writes while nothing else changes
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
STATUS_FILE = "applier-status.json"
LOCK_FILE = "applier.lock"
JOURNAL_WAIT = 1.0  # seconds between looks for a journal that does not exist yet

CommitHook = Callable[[AppliedBatch], None]
HookStats = Callable[[], dict[str, int]]


def commit_interval_from_env(environ: dict[str, str] | None = None) -> float:
    """``SEARCHSVC_COMMIT_INTERVAL`` in seconds (0 to MAX_INTERVAL; default DEFAULT_INTERVAL)."""
    raw = (os.environ if environ is None else environ).get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_INTERVAL:  # also refuses nan
        raise SettingError(f"{INTERVAL_ENV} must be a number of seconds from 0 to {MAX_INTERVAL:.0f}, not {raw!r}")
    return value


def default_status_path(index_dir: Path) -> Path:
    return Path(index_dir) / STATUS_FILE


# -- the status file ---------------------------------------------------------------------------------


def _status_json(status: ApplierStatus) -> dict[str, Any]:
    data = asdict(status)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def write_status(path: Path, status: ApplierStatus) -> None:
    """Replace the status file atomically (a reader sees the old status or the new, never half)."""
    tmp = path.with_name(f"{path.name}.tmp")  # one applier per index (the applier lock) writes it
    tmp.write_text(json.dumps(_status_json(status), ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> ApplierStatus:
    """The status the applier last wrote; ``ApplierStatus()`` (state "stopped") when there is none
    or it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ApplierStatus()
    if not isinstance(data, dict):
        return ApplierStatus()
    status = ApplierStatus()
    try:
        status.state = str(data.get("state") or status.state)
        status.applied_seq = int(data.get("applied_seq") or 0)
        for key in ("last_commit_at", "updated_at"):
            if data.get(key):
                setattr(status, key, datetime.fromisoformat(str(data[key])))
        if data.get("last_commit_seconds") is not None:
            status.last_commit_seconds = float(data["last_commit_seconds"])
        status.generation = str(data.get("generation") or "")
        status.last_error = str(data["last_error"]) if data.get("last_error") else None
        status.pid = int(data["pid"]) if data.get("pid") is not None else None
        status.websub = _counts(data.get("websub"))
    except (TypeError, ValueError):
        return ApplierStatus()
    return status


def _counts(value: object) -> dict[str, int] | None:
    """The hook's counts as written, or None when there are none (or they are not counts)."""
    if not isinstance(value, dict):
        return None
    try:
        return {str(k): int(v) for k, v in value.items()}
    except (TypeError, ValueError):
        return None


# -- the loop ------------------------------------------------------------------------------------


class Applier:
    def __init__(
        self,
        journal: Journal,
        writer: IndexWriter,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_commit: CommitHook | None = None,
        status_path: Path | None = None,
        stop: threading.Event | None = None,
        hook_stats: HookStats | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.journal = journal
        self.writer = writer
        self.interval = interval
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.hook_stats = hook_stats  # written into the status as ``websub`` (the hook's own counts)
        self.status_path = status_path
        self.stop = stop or threading.Event()
        self.status = ApplierStatus(state="starting", pid=os.getpid())
        self._last_commit = -math.inf  # monotonic start of the last commit
        self._applied: tuple[int, float] | None = None  # (applied number, monotonic time learnt)
        self._status_written = -math.inf
        self._behind: str | None = None  # why the journal looks replaced (see _check_not_behind)
        self._merge_due = True  # a merge may be needed (the last commit, or an earlier run, left segments)
        self._idle_since: float | None = None  # monotonic time the journal was first seen empty

    # -- one step ---------------------------------------------------------------------------------

    def step(self) -> AppliedBatch | None:
        """Apply what is waiting (respecting the commit interval); None when nothing was."""
        applied = self._applied_seq()
        entries = self.journal.read_after(applied, self.max_batch)
        if not entries:
            self.status.applied_seq = applied
            now = time.monotonic()
            if self._idle_since is None:
                self._idle_since = now
            if self._merge_due and now - self._idle_since >= MERGE_AFTER_IDLE:
                self._merge(busy=False)
            return None
        self._idle_since = None
        wait = self._last_commit + self.interval - time.monotonic()
        if wait > 0 and len(entries) < self.max_batch:
            if self.stop.wait(wait):
                return None  # stopping: the entries stay in the journal for the next run
            entries = self.journal.read_after(applied, self.max_batch)
            if not entries:
                return None
        self._set_state("applying")
        self._last_commit = time.monotonic()
        self._applied = None  # until this apply returns, only the index knows
        batch = self.writer.apply(entries)
        self._applied = (batch.last_seq, time.monotonic())
        self.status.applied_seq = batch.last_seq
        if batch.committed:
            self.status.last_commit_at = datetime.now(UTC)
            self.status.last_commit_seconds = round(batch.commit_seconds, 4)
            self.status.generation = batch.generation
        try:
            self.journal.compact(batch.last_seq)
        except JournalError as exc:  # the index is right; compaction is retried after the next commit
            logger.warning("compacting the journal failed: %s", exc)
        if batch.committed and self.on_commit is not None:
            try:
                self.on_commit(batch)
            except Exception:
                logger.exception("the commit hook failed (entries %d-%d are applied)", batch.first_seq,
                                 batch.last_seq)
        if batch.committed:
            self._merge_due = True
            if self._waiting(batch.last_seq):  # else: in the next lull
                self._merge(busy=True)
        return batch

    def _waiting(self, after: int) -> bool:
        """Are entries numbered above ``after`` waiting in the journal?"""
        return bool(self.journal.read_after(after, 1))

    def _merge(self, *, busy: bool) -> None:
        """One merge step; keeps ``_merge_due`` while another may be needed. Never raises: the index
        is consistent whether or not a merge commits."""
        from index.store import IndexBusy  # here: the service reads this module's settings without Whoosh

        self._set_state("merging")
        try:
            # A merge started while nothing waited gives way to what arrives meanwhile (or a stop).
            applied = self.status.applied_seq
            merged = self.writer.merge_small_segments(
                busy=busy, interrupt=None if busy else lambda: self.stop.is_set() or self._waiting(applied))
        except IndexBusy:  # a ``searchsvc index`` run (which merges small segments itself)
            self._merge_due = False
            return
        except Exception:
            logger.exception("merging small segments failed (tried again after the next commit)")
            self._merge_due = False
            return
        finally:
            self._set_state("idle")
        if merged == 0 and not busy:
            self._merge_due = False

    def _applied_seq(self) -> int:
        now = time.monotonic()
        if self._applied is None or now - self._applied[1] >= APPLIED_REREAD:
            self._applied = (self.writer.applied_seq(), now)
        return self._applied[0]

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Apply until ``stop`` is set; never raises for a failed step."""
        from index.store import IndexBusy  # here: the service reads this module's settings without Whoosh

        failures = 0
        self._set_state("starting")
        while not self.stop.is_set():
            try:
                batch = self.step()
            except IndexBusy as exc:  # a ``searchsvc index`` run holds the writer lock: wait it out
                self._set_state("backing-off", f"waiting for the writer lock: {exc}")
                self.stop.wait(max(self.interval, BACKOFF_MIN))
                continue
            except Exception as exc:
                failures += 1
                delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (failures - 1))
                logger.error("applying the journal failed (attempt %d; retrying in %.1f s): %s", failures, delay,
                             exc, exc_info=not isinstance(exc, OSError))
                self._set_state("backing-off", f"{type(exc).__name__}: {exc}")
                self.stop.wait(delay)
                continue
            failures = 0
            if batch is not None:
                if batch.committed:
                    logger.info("applied journal entries %d-%d: %d upserted, %d deleted in %.3f s (%s)",
                                batch.first_seq, batch.last_seq, batch.upserted, batch.deleted,
                                batch.commit_seconds, batch.generation)
                self._set_state("idle", None, force=True)
                continue
            self._set_state("idle", None)
            if time.monotonic() - self._status_written >= HEARTBEAT:
                self._check_not_behind()
                self._write_status()
            self.stop.wait(POLL)
        self._set_state("stopped", force=True)

    def _check_not_behind(self) -> None:
        """A journal numbered below what the index has applied was replaced (deleted by hand):
        its entries would be skipped. Say so loudly; nothing can tell which of them are new."""
        try:
            last = self.journal.last_seq()
        except JournalError:
            return
        if last >= self.status.applied_seq:
            self._behind = None
            return
        message = (f"the journal's last sequence number ({last}) is below the index's applied one "
                   f"({self.status.applied_seq}): was {self.journal.path} replaced? Entries up to "
                   f"{self.status.applied_seq} are ignored")
        if self._behind is None:
            logger.error("%s", message)
        self._behind = self.status.last_error = message

    def _set_state(self, state: str, error: str | None = None, *, force: bool = False) -> None:
        if error is None and state in ("idle", "stopped"):
            error = self._behind
        changed = state != self.status.state or error != self.status.last_error
        self.status.state = state
        if error is not None or state in ("idle", "stopped"):
            self.status.last_error = error
        if changed or force:
            self._write_status()

    def _write_status(self) -> None:
        self._status_written = time.monotonic()
        if self.status_path is None:
            return
        self.status.updated_at = datetime.now(UTC)
        if self.hook_stats is not None:
            try:
                self.status.websub = self.hook_stats()
            except Exception:
                logger.exception("the commit hook's counts could not be read")
        try:
            write_status(self.status_path, self.status)
        except OSError as exc:  # a status the operator cannot read is no reason to stop applying
            logger.debug("cannot write %s: %s", self.status_path, exc)


# -- running one per index ---------------------------------------------------------------------------


@contextmanager
def applier_lock(index_dir: Path, stop: threading.Event) -> Iterator[bool]:
    """Hold ``<index_dir>/applier.lock`` (flock) while applying, so a second applier of the same
    index (one started by hand beside ``searchsvc serve``, one orphaned by a killed server) stands
    by instead of competing; yields False when ``stop`` was set before the lock was free."""
    from index.store import try_flock  # here: the service reads this module's settings without Whoosh

    fd = os.open(Path(index_dir) / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        announced = False
        while not try_flock(fd):
            if not announced:
                logger.info("another applier is running for %s; standing by", index_dir)
                announced = True
            if stop.wait(JOURNAL_WAIT):
                yield False
                return
        yield True
    finally:
        os.close(fd)


@contextmanager
def index_writer(index_dir: Path, engine: str = "whoosh") -> Iterator[IndexWriter]:
    """The ``IndexWriter`` of ``engine`` (``searchsvc.config.ENGINES``), closed on exit: the Whoosh
    index in ``index_dir``, or the Typesense cluster of the ``SEARCHSVC_TYPESENSE_*`` settings
    (``SettingError`` names a bad one)."""
    if engine == "typesense":
        from index.typesense.applier_writer import ClusterIndexWriter

        with ClusterIndexWriter() as cluster:
            yield cluster
    elif engine == "whoosh":
        from index.whoosh_writer import WhooshIndexWriter

        yield WhooshIndexWriter(index_dir)
    else:
        raise SettingError(f"no index writer for the engine {engine!r} (whoosh or typesense)")


def run_applier(
    index_dir: Path,
    journal_path: Path,
    *,
    engine: str = "whoosh",
    interval: float = DEFAULT_INTERVAL,
    max_batch: int = DEFAULT_MAX_BATCH,
    on_commit: CommitHook | None = None,
    stop: threading.Event | None = None,
    status_path: Path | None = None,
    hook_stats: HookStats | None = None,
) -> None:
    """Run the applier of ``index_dir`` until ``stop``: wait (quietly) for the journal to exist,
    take the applier lock, then apply with the writer of ``engine`` (``index_writer``)."""
    stop = stop or threading.Event()
    announced = False
    while not Path(journal_path).exists():
        if not announced:
            logger.info("no journal at %s yet; waiting for the first published article", journal_path)
            announced = True
        if stop.wait(JOURNAL_WAIT):
            return
    Path(index_dir).mkdir(parents=True, exist_ok=True)
    with applier_lock(index_dir, stop) as locked:
        if not locked:
            return
        journal = _open_journal(journal_path, stop)
        if journal is None:
            return
        try:
            with index_writer(index_dir, engine) as writer:
                Applier(journal, writer, interval=interval, max_batch=max_batch,
                        on_commit=on_commit, status_path=status_path or default_status_path(index_dir),
                        stop=stop, hook_stats=hook_stats).run()
        finally:
            journal.close()


def _open_journal(path: Path, stop: threading.Event) -> Journal | None:
    """The journal, retried with backoff while it cannot be opened (a full disk, a permission)."""
    failures = 0
    while not stop.is_set():
        try:
            return Journal(path)
        except JournalError as exc:
            failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (failures - 1))
            logger.error("cannot open the journal (retrying in %.1f s): %s", delay, exc)
            stop.wait(delay)
    return None
