"""Opens the search engine lazily and keeps retrying until an index exists.

The service must start (and answer ``/healthz``) before anything has been indexed, so opening the
engine is never a startup requirement: every request that needs the engine asks the holder, which
opens it on first success and otherwise raises ``EngineNotReady``. Failed attempts are throttled so
that a burst of requests against a missing index does not turn into a burst of directory scans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from index.api import EngineUnavailable, SearchEngine

logger = logging.getLogger("searchsvc.engine")

Opener = Callable[[Path], SearchEngine]


class EngineNotReady(RuntimeError):
    """No index can be opened yet; the caller answers 503 ``not_ready``."""


def open_whoosh(index_dir: Path) -> SearchEngine:
    """The production opener, imported late so the service starts even before an engine exists."""
    from index.engine import WhooshEngine

    return WhooshEngine.open(index_dir)


def open_typesense(index_dir: Path) -> SearchEngine:
    """The cluster engine (``index.typesense``): settings from ``SEARCHSVC_TYPESENSE_*``; the
    index directory holds no index then, only the service's local state."""
    from index.typesense.engine import TypesenseEngine

    return TypesenseEngine.open()


def opener_for(engine: str) -> Opener:
    """The opener of a ``Config.engine`` name."""
    return open_typesense if engine == "typesense" else open_whoosh


class EngineHolder:
    """Thread-safe, lazily opened engine; ``get`` is cheap once the engine is open."""

    def __init__(self, index_dir: Path, opener: Opener = open_whoosh, retry_interval: float = 0.5) -> None:
        self.index_dir = Path(index_dir)
        self._opener = opener
        self._retry_interval = retry_interval
        self._engine: SearchEngine | None = None
        self._lock = threading.Lock()
        self._next_attempt = 0.0
        self._last_error = "the index has not been opened yet"
        self._warming: threading.Thread | None = None

    @property
    def engine(self) -> SearchEngine | None:
        """The open engine, or None; never blocks and never tries to open."""
        return self._engine

    def generation(self) -> str | None:
        """The open engine's generation without blocking, or None while no index is open."""
        engine = self._engine
        if engine is None:
            return None
        try:
            return str(engine.generation)
        except Exception:  # an index being replaced: treat as uncacheable, the search will tell
            return None

    @property
    def last_error(self) -> str:
        return self._last_error

    def get(self) -> SearchEngine:
        """The engine, opening it if needed (blocking: call from a worker thread)."""
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is not None:
                return self._engine
            now = time.monotonic()
            if now < self._next_attempt:
                raise EngineNotReady(self._last_error)
            try:
                self._engine = self._opener(self.index_dir)
            except FileNotFoundError:
                self._fail(f"no search index in {self.index_dir} yet")
            except ImportError as exc:
                self._fail(f"the search engine is not available: {exc}")
            except EngineUnavailable as exc:  # the cluster is down, or holds no articles yet
                self._fail(str(exc))
            except Exception as exc:  # a damaged or half-written index: keep serving 503, keep retrying
                logger.exception("cannot open the search index in %s", self.index_dir)
                self._fail(f"cannot open the search index: {type(exc).__name__}")
            logger.info("search index opened: %s", self.index_dir)
            warm_up = getattr(self._engine, "warm_up", None)
            if callable(warm_up):
                # Build what first requests would wait for (suggestions) without delaying this one.
                self._warming = threading.Thread(target=self._warm_up, args=(warm_up,), daemon=True,
                                                 name="searchsvc-warmup")
                self._warming.start()
            return self._engine  # type: ignore[return-value]

    def wait_warm(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the warm-up started by the opening ``get``; True when
        it is over (or there was none)."""
        warming = self._warming
        if warming is None:
            return True
        warming.join(timeout)
        return not warming.is_alive()

    @staticmethod
    def _warm_up(warm_up: Callable[[], None]) -> None:
        try:
            warm_up()
        except Exception:  # warming up is an optimisation; requests will build what they need
            logger.exception("warming up the search engine failed")

    def _fail(self, message: str) -> None:
        self._last_error = message
        self._next_attempt = time.monotonic() + self._retry_interval
        raise EngineNotReady(message)

    def close(self, timeout: float) -> None:
        """Close the engine (on shutdown), after up to ``timeout`` seconds for a warm-up still
        running: it opens index files of its own, which closing first would leave open. A later
        ``get`` opens the engine again."""
        self.wait_warm(timeout)
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    async def aget(self) -> SearchEngine:
        """``get`` for async code: the fast path stays on the event loop, opening goes to a thread."""
        engine = self._engine
        if engine is not None:
            return engine
        return await run_in_threadpool(self.get)
