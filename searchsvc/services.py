"""What every handler needs (config, engine, metrics, templates), hung on ``app.state.services``.

Handlers reach the engine only through ``call_engine``: it waits for the index if none is open
(503 ``not_ready``), runs the blocking Whoosh call in the thread pool, and turns the engine's
``SearchError`` refusals into 400s with the engine's own code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from index.api import SearchEngine, SearchError, SearchRequest, SearchResult

from .caching import NOTE_KEY
from .config import Config
from .engine_pool import EngineHolder, EngineNotReady
from .errors import ApiError
from .metrics import Metrics

T = TypeVar("T")

RETRY_AFTER_NOT_READY = "5"


@dataclass(slots=True)
class Services:
    config: Config
    engines: EngineHolder
    metrics: Metrics
    templates: Jinja2Templates
    fingerprint: str  # hash of templates, static files and config shown in responses
    engine_limiter: anyio.CapacityLimiter  # Config.engine_threads tokens: who may run engine work

    def generation(self) -> str | None:
        """Current index generation without blocking, or None while no index is open."""
        engine = self.engines.engine
        if engine is None:
            return None
        try:
            return str(engine.generation)
        except Exception:  # an index being replaced: treat as uncacheable, the search will tell
            return None


def services(request: Request) -> Services:
    return request.app.state.services


async def get_engine(request: Request) -> SearchEngine:
    try:
        return await services(request).engines.aget()
    except EngineNotReady as exc:
        raise ApiError(503, "not_ready", str(exc), {"Retry-After": RETRY_AFTER_NOT_READY}) from None


def engine_call(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, blocking engine work, with refusals and vanished files mapped.

    ``SearchError`` is a 400 with the engine's code. ``FileNotFoundError`` is tried once more, then
    answered 503 ``not_ready``: the engine already retries a table of contents deleted by a
    concurrent commit (``WhooshEngine._open_searcher``), so what still reaches here is an index
    directory removed or replaced under the service.
    """
    for attempt in (1, 2):
        try:
            return fn(*args)
        except SearchError as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        except FileNotFoundError as exc:
            if attempt == 2:
                raise ApiError(503, "not_ready", f"the search index is unavailable: {exc}",
                               {"Retry-After": "5"}) from None
    raise AssertionError("unreachable")



# Engine calls that can take tens or hundreds of milliseconds of CPU. They run on the worker's few
# engine threads (``Config.engine_threads`` says why few); the cheap ones (an article by id,
# suggestions, the category list) use the ordinary thread pool, so that they never wait in line
# behind searches (measured in the soak: suggestions at p50 150 ms when they shared the line).
HEAVY_METHODS = frozenset({"search", "latest"})


async def call_engine(request: Request, method: str, *args: Any) -> Any:
    """``engine.<method>(*args)`` in a worker thread, with not-ready and refusals mapped."""
    engine = await get_engine(request)
    limiter = services(request).engine_limiter if method in HEAVY_METHODS else None
    return await anyio.to_thread.run_sync(engine_call, getattr(engine, method), *args, limiter=limiter)


async def call_search(request: Request, search: SearchRequest) -> SearchResult:
    """A reader's search (page or API): ``engine.search``, with its tier counted in the metrics and
    noted for the response cache, which counts it again each time it replays the answer."""
    result = await _search(request, search)
    services(request).metrics.tiers.labels(result.tier).inc()
    setattr(request.state, NOTE_KEY, result.tier)
    return result


async def _search(request: Request, search: SearchRequest) -> SearchResult:
    """``engine.search`` with a fast path: a result the engine has cached for the current
    generation is answered on the event loop, without queueing behind searches being computed."""
    engine = await get_engine(request)
    cached = getattr(engine, "cached_search", None)
    if cached is not None:
        try:
            result = cached(search)
        except Exception:  # the generation check touches the disk: let the engine thread sort it out
            result = None
        if result is not None:
            return result
    return await call_engine(request, "search", search)
