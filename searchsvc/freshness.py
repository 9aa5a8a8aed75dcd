"""Whether an answer computed on one index generation still holds on a newer one.

Why: with the publishing API the index commits every second or two all day. Caches keyed on the
generation alone would then hold nothing for long: every commit would throw away every cached
page, feed and validator, although a commit touches a handful of articles in one or two
categories. Each cached answer therefore remembers what it shows (``index.api.Shows``, declared by
its handler with ``shows``), and the engine says what changed between two generations
(``SearchEngine.changes_between``, from its catalog); an answer that shows nothing a commit changed
is carried over to the new generation instead of being recomputed.

The engine call may read the index, so it runs in the ordinary thread pool (never behind
searches), once per pair of generations per worker; the answers are kept in a small LRU.
"""

from __future__ import annotations

import anyio
from cachetools import LRUCache
from starlette.requests import Request

from index.api import EVERYTHING, Changes, Shows

from .engine_holder import EngineHolder
from .http.caching import SHOWS_KEY


def shows(request: Request, value: Shows) -> None:
    """Declare what the answer to ``request`` shows (undeclared: anything, the cautious default)."""
    setattr(request.state, SHOWS_KEY, value)


class Freshness:
    """``await changed(old, new, shows)``: whether an answer computed on generation ``old`` may read
    differently on ``new``. True whenever it cannot tell (no engine, an engine that does not say,
    an error): a cache then recomputes, which is never wrong."""

    MEMO_SIZE = 1024

    def __init__(self, engines: EngineHolder) -> None:
        self.engines = engines
        self._memo: LRUCache[tuple[str, str], Changes] = LRUCache(self.MEMO_SIZE)

    async def changes(self, old: str, new: str) -> Changes:
        if old == new:
            return Changes()
        known = self._memo.get((old, new))
        if known is not None:
            return known
        engine = self.engines.engine
        between = getattr(engine, "changes_between", None)
        if between is None:
            return EVERYTHING
        try:
            found: Changes = await anyio.to_thread.run_sync(between, old, new)
        except Exception:  # an index being replaced under us: treat as changed
            return EVERYTHING
        self._memo[(old, new)] = found
        return found

    async def changed(self, old: str, new: str, what: Shows) -> bool:
        if old == new:
            return False
        return (await self.changes(old, new)).touches(what)
