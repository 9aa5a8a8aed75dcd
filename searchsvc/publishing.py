"""The admin API's side of the publishing journal: one writable ``Journal`` per worker, opened on
first use, and its failures as the API's errors.

``append`` returns only once ``Journal.append`` has (the entries are on disk: index.journal), so
a ``202`` is never sent for a change that was not stored; a full disk is 507
``insufficient_storage``, any other failure to store 503 ``journal_unavailable``, and in both
cases the journal stored nothing of the request (its append is one transaction). A journal that
failed for any other reason than a full disk is closed and opened again by the next request, so
an operator who fixes a permission or a missing directory need not restart the service.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import anyio

from index.journal import Journal
from index.publishing import Change, JournalError, JournalStats

from .errors import ApiError, ErrorCode

logger = logging.getLogger("searchsvc")

RETRY_AFTER_JOURNAL = "5"  # seconds a client should wait after a 503/507 before sending again


def journal_error(exc: JournalError) -> ApiError:
    if exc.disk_full:
        return ApiError(ErrorCode.INSUFFICIENT_STORAGE,
                        "the publishing journal's disk is full: nothing of this request was stored",
                        {"Retry-After": RETRY_AFTER_JOURNAL})
    return ApiError(ErrorCode.JOURNAL_UNAVAILABLE,
                    "the publishing journal cannot be written: nothing of this request was stored",
                    {"Retry-After": RETRY_AFTER_JOURNAL})


class JournalWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._journal: Journal | None = None
        self._lock = threading.Lock()

    def _get(self) -> Journal:
        with self._lock:
            if self._journal is None:
                self._journal = Journal(self.path)  # JournalError when it cannot be created or opened
            return self._journal

    def _drop(self, journal: Journal) -> None:
        with self._lock:
            if self._journal is journal:
                self._journal = None
        try:
            journal.close()
        except Exception:  # closing a connection that already failed: nothing more to lose
            pass

    def _append(self, changes: Sequence[Change]) -> int:
        journal = self._get()
        try:
            return journal.append(changes)
        except JournalError as exc:
            if not exc.disk_full:
                self._drop(journal)
            raise

    async def append(self, changes: Sequence[Change]) -> int:
        """Store ``changes`` durably (in a worker thread: an fsync); the last sequence number."""
        try:
            return await anyio.to_thread.run_sync(self._append, list(changes))
        except OSError as exc:  # JournalError, or the OSError of creating its directory
            error = (exc if isinstance(exc, JournalError)
                     else JournalError(str(exc), disk_full=exc.errno == errno.ENOSPC))
            logger.error("publishing journal %s: %s", self.path, error)
            raise journal_error(error) from None

    def stats(self) -> JournalStats | None:
        """The journal's figures (blocking), read-only; None when nothing was ever published."""
        try:
            with Journal(self.path, readonly=True) as journal:
                return journal.stats()
        except FileNotFoundError:
            return None

    def close(self) -> None:
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
