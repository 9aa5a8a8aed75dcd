"""How handlers run engine work: ``run_engine`` (and ``run_search``, the reader's search).

Handlers reach the engine only through here: it waits for the index if none is open (503
``not_ready``), charges the client where the work is costly (``charge``), runs the blocking Whoosh
call in a worker thread, and turns the engine's ``SearchError`` refusals into 400s with the
engine's own code. Work that already runs in a thread (a feed render in the feed cache) maps the
same errors with ``map_engine_errors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import anyio
from starlette.requests import Request

from index.api import EngineUnavailable, SearchEngine, SearchError, SearchRequest, SearchResult
from index.article import Article

from .engine_holder import EngineNotReady
from .errors import ApiError, ErrorCode, engine_error
from .http.caching import NOTE_KEY
from .http.ratelimit import client_key
from .state import app_state

T = TypeVar("T")

RETRY_AFTER_NOT_READY = "5"  # seconds: an index being opened or replaced is usually there by then


def not_ready(message: str) -> ApiError:
    return ApiError(ErrorCode.NOT_READY, message, {"Retry-After": RETRY_AFTER_NOT_READY})


async def current_engine(request: Request) -> SearchEngine:
    """The open engine, opening it if needed; 503 ``not_ready`` while there is none."""
    try:
        return await app_state(request).engines.aget()
    except EngineNotReady as exc:
        raise not_ready(str(exc)) from None


async def current_generation(request: Request) -> tuple[SearchEngine, str]:
    """The engine (503 while there is none) and its generation, read before any rendering."""
    engine = await current_engine(request)
    try:
        return engine, str(engine.generation)
    except Exception:  # the index is being replaced under us: like no index at all
        raise not_ready("the search index is being replaced") from None


CHARGED_KEY = "rate_limit_charged"


def charge(request: Request) -> None:
    """Count one costly request against its client; 429 ``rate_limited`` when its bucket is empty.

    Called where the work is about to start (a search, the newest articles, a suggestion, a feed
    render that no cache holds), so what is limited follows from what a request costs and no route
    can be forgotten. A request is charged once, however many engine calls it makes; answers
    replayed from a cache never get here and cost nothing.
    """
    state = app_state(request)
    if state.rate_limiter is None or getattr(request.state, CHARGED_KEY, False):
        return
    key = client_key(request.scope)
    if key is None:
        return
    setattr(request.state, CHARGED_KEY, True)
    wait = state.rate_limiter.acquire(key)
    if wait > 0:
        state.metrics.rate_limited.inc()
        raise ApiError(ErrorCode.RATE_LIMITED, "too many requests; retry later",
                       {"Retry-After": str(max(1, math.ceil(wait)))})


def map_engine_errors(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``, blocking engine work, with refusals and vanished files mapped.

    ``SearchError`` is a 400 with the engine's code (``errors.engine_error``). ``FileNotFoundError``
    is tried once more, then answered 503 ``not_ready``: the engine already retries a table of
    contents deleted by a concurrent commit (``WhooshEngine._open_searcher``), so what still
    reaches here is an index directory removed or replaced under the service.
    """
    for attempt in (1, 2):
        try:
            return fn(*args)
        except SearchError as exc:
            raise engine_error(exc) from None
        except EngineUnavailable as exc:
            raise not_ready(f"the search engine is unavailable: {exc}") from None
        except FileNotFoundError as exc:
            if attempt == 2:
                raise not_ready(f"the search index is unavailable: {exc}") from None
    raise AssertionError("unreachable")


async def run_engine(request: Request, fn: Callable[[SearchEngine], T], *, heavy: bool,
                     charged: bool | None = None) -> T:
    """``fn(engine)`` in a worker thread, with not-ready and refusals mapped.

    ``heavy``: work that can take a lot of CPU (a search, the newest articles) runs on the worker's
    few engine threads (``Config.engine_threads`` says why few), admitted by the worker's
    ``Admission`` (503 ``overloaded`` when it cannot be done within the queue and deadline bounds,
    ``searchsvc.admission``); cheap lookups (an article by id, suggestions, the category list) use
    the ordinary thread pool, so that they never wait in line behind searches and are never refused.
    ``charged``: the client pays a rate-limit token (``charge``); by default heavy work does, and so
    should suggestions, which a client can ask for on every keystroke.
    """
    if heavy if charged is None else charged:
        charge(request)
    engine = await current_engine(request)
    if heavy:
        return await app_state(request).admission.run_sync(lambda: map_engine_errors(fn, engine))
    return await anyio.to_thread.run_sync(map_engine_errors, fn, engine)


async def fetch_article(request: Request, article_id: str) -> Article:
    """The article with ``article_id`` (a cheap lookup); 404 ``article_not_found`` when the index
    does not hold it, 410 ``article_gone`` when the publishing journal says it was unpublished
    (searchsvc.tombstones). The page and the API answer from this one place."""
    article = await run_engine(request, lambda e: e.get_article(article_id), heavy=False)
    if article is not None:
        return article
    deleted = await anyio.to_thread.run_sync(app_state(request).tombstones.deleted_at, article_id)
    if deleted is not None:
        raise ApiError(ErrorCode.ARTICLE_GONE, f"the article {article_id!r} was unpublished on {deleted.isoformat()}")
    raise ApiError(ErrorCode.ARTICLE_NOT_FOUND, f"no article with id {article_id!r}")


async def run_search(request: Request, search: SearchRequest) -> SearchResult:
    """A reader's search (page or API): ``engine.search``, with its tier counted in the metrics and
    noted for the response cache, which counts it again each time it replays the answer."""
    charge(request)
    result = await _search(request, search)
    app_state(request).metrics.tiers.labels(result.tier).inc()
    setattr(request.state, NOTE_KEY, result.tier)
    return result


async def _search(request: Request, search: SearchRequest) -> SearchResult:
    """``engine.search`` with a fast path: a result the engine has cached for the current
    generation is answered on the event loop, without queueing behind searches being computed."""
    engine = await current_engine(request)
    cached = getattr(engine, "cached_search", None)
    if cached is not None:
        result: SearchResult | None
        try:
            result = cached(search)
        except Exception:  # the generation check touches the disk: let the engine thread sort it out
            result = None
        if result is not None:
            return result
    return await run_engine(request, lambda engine: engine.search(search), heavy=True)
