"""The repeat lane: a repeated request that is answered from memory (a 304 for a tag that still
holds, a response-cache hit, a document the feed cache holds) is answered here, with the headers
the whole stack sent the last time it gave that answer, without running the layers again.

Why: a 304 or a cached page costs the service little besides passing through its layers (security
headers, CORS, body limit, response cache, gzip, validators; for feeds also the router and the
route): each wraps ``send`` and looks at the request, and together they were the larger part of a
worker's own CPU per 304 in a profile (docs/benchmarks.md). Their answer to a repeat is fixed by
what the lane checks:

- the decision is theirs: ``ConditionalGetMiddleware.known_tag`` (the 304's tag),
  ``ResponseCacheMiddleware.lookup`` (the cached answer), ``feed_cache.DocumentRepeat.holds`` (the
  same document still held for the current generation, and for a 304 the request names one of
  its tags), the calls they make themselves;
- the headers are the ones the whole stack sent for the same request (key, status, and for feeds
  whether it is a browser tab's, which chooses a feed or its page) when it last gave the same
  answer, recorded here when the layer or route marks the scope (``REPEAT_SLOT``); the layers
  around add nothing that depends on anything else once the request carries no ``Origin`` (CORS
  answers by it) and no body (the body limit reads it).

Anything else passes through the full stack. The lane sits inside the observability layer, so
every answer still gets its request id, access-log line and metrics. Recordings are bounded by
the bytes of their headers (``MAX_RECORDED_BYTES``), least recently used first out, and hold
headers and tags, never bodies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from cachetools import LRUCache
from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .caching import (
    REPEAT_SLOT,
    CachedResponse,
    RepeatSources,
    not_modified,
    request_key,
)
from .feed_cache import DocumentRepeat, is_browser_navigation
from .middleware import REPEATED_KEY, matched_route

# Request headers that send a request through the full stack: CORS answers by Origin, the body
# limit by the body's framing.
_FULL_STACK_HEADERS = frozenset((b"origin", b"content-length", b"transfer-encoding"))
RawHeaders = list[tuple[bytes, bytes]]
# A recording's key: the request key, the status answered, and whether a feed route gives the
# request a browser tab's page rather than the feed (``feed_cache.is_browser_navigation``).
LaneKey = tuple[str, int, bool]
# What the recordings of one worker may hold: their headers' bytes (a recording is ~1 KB).
MAX_RECORDED_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class _Recorded:
    made_of: object  # the 304's tag, the cached entry's headers, or a DocumentRepeat
    headers: RawHeaders  # what the whole stack sent with it, before the request id
    route: BaseRoute | None  # the route the request matches, for the metrics' label

    @property
    def size(self) -> int:
        """What it counts against the recordings' bound: its headers, plus a little for the objects."""
        return sum(len(k) + len(v) for k, v in self.headers) + 256


def _recorded_size(recorded: _Recorded) -> int:
    return recorded.size


def _same(answered: object, made_of: object) -> bool:
    """Whether two answers from memory are the same one: equal tags, or the same entry's headers
    (by identity, or equal after the entry was reloaded from the shared store)."""
    return answered is made_of or answered == made_of


class RepeatLane:
    """What the lane middleware needs besides its recordings: the two layers it answers for
    (``sources``, filled in as they are built: ``ConditionalGetMiddleware(sources=...)``,
    ``ResponseCacheMiddleware(sources=...)``), the app's routes, and the path prefixes under which
    routes answer from the feed cache (``feed_cache.serve_cached``)."""

    def __init__(self, fingerprint: str, routes: Callable[[], Sequence[BaseRoute]],
                 document_prefixes: tuple[str, ...] = (), max_bytes: int = MAX_RECORDED_BYTES) -> None:  # fmt: skip
        self.fingerprint = fingerprint
        self.routes = routes
        self.document_prefixes = document_prefixes
        self.sources = RepeatSources()
        self.recorded: LRUCache[LaneKey, _Recorded] = LRUCache(max(1, max_bytes), getsizeof=_recorded_size)


class RepeatLaneMiddleware:
    """Answers repeats for the layers and routes inside it (the module docstring says when)."""

    def __init__(self, app: ASGIApp, lane: RepeatLane) -> None:
        self.app = app
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        conditional = modified_since = False
        for name, _ in scope["headers"]:
            if name == b"if-none-match":
                conditional = True
            elif name == b"if-modified-since":
                modified_since = True
            elif name in _FULL_STACK_HEADERS:
                await self.app(scope, receive, send)
                return
        lane, path = self.lane, scope["path"]
        conditional_layer = lane.sources.conditional
        if conditional_layer is not None and conditional_layer.cacheable(path):
            await self._layers(scope, receive, send, conditional)
        elif path.startswith(lane.document_prefixes) and (conditional or not modified_since):
            navigation = is_browser_navigation(Headers(scope=scope))  # what the feed routes choose by
            key = (request_key(lane.fingerprint, scope), 304 if conditional else 200, navigation)
            await self._document(scope, receive, send, key)
        else:
            await self.app(scope, receive, send)

    async def _layers(self, scope: Scope, receive: Receive, send: Send, conditional: bool) -> None:
        """A page or API answer: a 304 of the validators, or a response-cache hit."""
        lane, layers = self.lane, self.lane.sources
        made_of: object | None = None
        entry: CachedResponse | None = None
        if conditional:
            if layers.conditional is not None:
                made_of = await layers.conditional.known_tag(scope)
        elif layers.cache is not None:
            entry = await layers.cache.lookup(scope, count=False)  # counted once answered, here or below
            made_of = entry.headers if entry is not None else None
        if made_of is None:
            await self.app(scope, receive, send)
            return
        status = 304 if conditional else 200
        key = (request_key(lane.fingerprint, scope), status, False)
        recorded = lane.recorded.get(key)
        if recorded is None or not _same(recorded.made_of, made_of):
            await self._record(scope, receive, send, key, lambda answered: _same(answered, made_of))
            return
        if entry is not None and layers.cache is not None:
            layers.cache.count_hit(entry)
        elif layers.conditional is not None and layers.conditional.on_not_modified is not None:
            layers.conditional.on_not_modified()
        await self._replay(scope, send, recorded, status, entry.body if entry is not None else b"")

    async def _document(self, scope: Scope, receive: Receive, send: Send, key: LaneKey) -> None:
        """A feed, its page, an embed: the feed cache's document, if it still holds the one the
        recording was made with (and, for a 304, the request names one of its tags)."""
        recorded = self.lane.recorded.get(key)
        made_of = recorded.made_of if recorded is not None else None
        doc = await made_of.holds() if isinstance(made_of, DocumentRepeat) else None
        status = key[1]
        if doc is not None and status == 304 and not not_modified(Headers(scope=scope), doc.tags, doc.last_modified):
            doc = None
        if recorded is None or doc is None or not isinstance(made_of, DocumentRepeat):
            await self._record(scope, receive, send, key, lambda answered: isinstance(answered, DocumentRepeat))
            return
        await self._replay(scope, send, recorded, status, b"" if status == 304 else made_of.body(doc))

    @staticmethod
    async def _replay(scope: Scope, send: Send, recorded: _Recorded, status: int, body: bytes) -> None:
        if recorded.route is not None:
            scope["route"] = recorded.route
        scope.setdefault("state", {})[REPEATED_KEY] = True  # the access log says so
        await send({"type": "http.response.start", "status": status, "headers": list(recorded.headers)})
        await send({"type": "http.response.body", "body": body})

    async def _record(self, scope: Scope, receive: Receive, send: Send, key: LaneKey,
                      answered_from_memory: Callable[[object], bool]) -> None:  # fmt: skip
        """Through the full stack, keeping what it sends if it is the status of ``key`` and the
        layer or route below says it answered from memory in the way the lane can repeat."""
        recorded: _Recorded | None = None

        async def recording(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and message["status"] == key[1]:
                answered = scope.get(REPEAT_SLOT)
                if answered is not None and answered_from_memory(answered):
                    recorded = _Recorded(answered, list(message.get("headers", [])), None)
            await send(message)

        await self.app(scope, receive, recording)
        if recorded is not None:
            route = scope.get("route") or matched_route(self.lane.routes(), scope)
            with contextlib.suppress(ValueError):  # larger than the whole bound: not kept
                self.lane.recorded[key] = replace(recorded, route=route)
