"""Which article ids were unpublished: the publishing journal's tombstones, read-only.

An id the index does not hold is either unknown (404 ``article_not_found``) or unpublished
(410 ``article_gone``); only the journal can tell (index.journal, "Tombstones"). Each worker opens
the journal read-only and lazily, on the first lookup: a service without a journal (nothing ever
published through the API) answers 404 as before, and one that cannot read it logs why and does
the same rather than fail the request.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from index.journal import Journal
from index.publishing import JournalError

logger = logging.getLogger("searchsvc")

RETRY_INTERVAL = 1.0  # seconds between attempts to open a journal that is missing or unreadable


class Tombstones:
    def __init__(self, journal_path: Path, retry_interval: float = RETRY_INTERVAL) -> None:
        self.journal_path = Path(journal_path)
        self._retry_interval = retry_interval
        self._journal: Journal | None = None
        self._next_attempt = 0.0
        self._lock = threading.Lock()

    def _open(self) -> Journal | None:
        if self._journal is not None:
            return self._journal
        with self._lock:
            if self._journal is None and time.monotonic() >= self._next_attempt:
                try:
                    self._journal = Journal(self.journal_path, readonly=True)
                except FileNotFoundError:
                    self._next_attempt = time.monotonic() + self._retry_interval
                except (JournalError, OSError) as exc:
                    logger.warning("cannot read the publishing journal %s: %s", self.journal_path, exc)
                    self._next_attempt = time.monotonic() + self._retry_interval
            return self._journal

    def deleted_at(self, article_id: str) -> datetime | None:
        """When ``article_id`` was unpublished; None when it was not (or nobody can tell).
        Blocking (a SQLite read): call from a worker thread."""
        journal = self._open()
        if journal is None:
            return None
        try:
            return journal.deleted_at(article_id)
        except (JournalError, OSError) as exc:
            logger.warning("cannot read the publishing journal %s: %s", self.journal_path, exc)
            return None

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
