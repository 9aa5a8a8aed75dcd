"""Rendered feeds and embeds, cached per index generation, served with conditional GET and gzip.

A feed document is a pure function of (index generation, path, normalised query): the renderers
in ``feeds`` are deterministic (no "now" anywhere) and the configuration is fixed for the life of
the process. So each worker keeps the finished bytes, plain *and* gzip-compressed, under that key
in a bounded LRU, and a busy feed costs one render and one compression per index change and per
worker; every other request is a dictionary lookup.

Validators come from the bytes themselves, not from the request (the app's one ETag format and
If-None-Match rule are ``caching.make_etag`` and ``caching.not_modified``):

* ``ETag``: a hash of the plain document, strong (``"…"``: the bytes of each variant are fixed),
  with a ``-gz`` variant for the gzip encoding (RFC 9110 8.8.3: different content codings,
  different tags). Both carry the same document, so an ``If-None-Match`` naming either revalidates
  the other (``Document.tags``), as does the ``-gzip`` tag a proxy such as Apache's mod_deflate
  makes of a plain one when it compresses it. A feed's HTML page for browser tabs is a document of
  its own (other bytes, other tags), cached beside the feed under its own key: the route picks
  which one a request gets (``is_browser_navigation``) and both name the request headers that
  chose them in ``Vary`` (``respond``).
* ``Last-Modified``: the newest item's date (what the feed's own ``updated`` says).  Coarser than
  the ETag (an article added with an older date, or corrected in place, does not move it), so
  ``If-Modified-Since`` is only looked at when the request has no ``If-None-Match`` (RFC 9110
  13.2.2) and readers that send both get the exact answer.

These routes are deliberately *not* handled by ``caching.ConditionalGetMiddleware`` (``/feeds``
and ``/embed`` are in neither ``CACHEABLE_PATHS`` nor ``CACHEABLE_PREFIXES``): its tag is a hash of
the request and would be a second, different ETag for the same bytes.

The gzip bytes are sent with ``Content-Encoding: gzip`` already set, which the gzip layer passes
through untouched (it never compresses a response that has a ``Content-Encoding``). The choice
between the two encodings, the compression level and the ``Vary`` header come from ``encoding``
like everywhere else in the app, so a feed is encoded and varies exactly as a page would.

Nothing here knows the service's state: the cache is built with what it needs (threads, a render
counter, what a render costs the client) by ``searchsvc.app.build_state``.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime

import anyio
from cachetools import LRUCache
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from index.api import ANY_CHANGE, Shows

from ..admission import Admission
from .caching import REPEAT_SLOT, Changed, GenerationSource, etag_digest, make_etag, not_modified
from .cors import CORS_HEADERS
from .encoding import ACCEPT_ENCODING, GZIP, GZIP_LEVEL, GZIP_MINIMUM_SIZE, request_encoding, vary_names

CACHE_CONTROL = "public, max-age=300"
DEFAULT_MAX_ENTRIES = 512
DEFAULT_MAX_BYTES = 96 * 1024 * 1024  # plain + gzip bytes of every entry, per worker

FeedKey = tuple[Hashable, ...]  # (index generation, route, ...): see FeedCache


@dataclass(frozen=True, slots=True)
class Document:
    """A finished response body with its validators; immutable, shared by every request."""

    body: bytes
    gzip_body: bytes
    media_type: str  # full Content-Type value, charset included
    etag: str
    gzip_etag: str
    tags: tuple[str, ...]  # every tag that names this document: an If-None-Match of any is a match
    last_modified: datetime | None  # whole seconds, aware; None: no Last-Modified header

    @property
    def size(self) -> int:
        """What the document counts against the cache's byte bound."""
        return len(self.body) + len(self.gzip_body)

    def etag_for(self, gzip: bool) -> str:
        return self.gzip_etag if gzip else self.etag


def make_document(body: bytes, media_type: str, last_modified: datetime | None = None) -> Document:
    """Hash and compress ``body`` once (``mtime=0`` so the gzip bytes are deterministic too)."""
    validator = etag_digest(body)
    if last_modified is not None:
        last_modified = last_modified.astimezone(UTC).replace(microsecond=0)

    def tag(*variants: str) -> str:
        return make_etag(validator, *variants, weak=False)

    etag, gzip_etag = tag(), tag("gz")
    return Document(
        body=body,
        gzip_body=gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0),
        media_type=media_type,
        etag=etag,
        gzip_etag=gzip_etag,
        # ...and the tag a compressing proxy makes of the plain variant (mod_deflate's "-gzip")
        tags=(etag, gzip_etag, tag("gzip")),
        last_modified=last_modified,
    )


@dataclass(frozen=True, slots=True)
class _Held:
    """A cached document, the generation it was rendered on (or last found to hold on), and what
    it shows (``index.api.Shows``): whether a later commit can have changed it."""

    doc: Document
    generation: Hashable
    shows: Shows


def _held_size(held: _Held) -> int:
    return held.doc.size


class FeedCache:
    """Bounded LRU of ``Document``s keyed by ``(generation, …)``, with single-flight rendering.

    Keys start with the index generation the request saw; the entry is stored under the rest of
    the key, with that generation and what the document shows. A document survives commits that
    change nothing it shows (``changed``, ``searchsvc.freshness``): a commit that touches two
    categories re-renders their feeds, not every other category's. One that it does show is
    dropped when next asked for and rendered again. A render that finishes for a generation older
    than the newest seen is returned but not stored. Concurrent requests for a key that is being
    rendered wait for that one render.

    The entries are a ``cachetools.LRUCache`` sized in bytes (plain + gzip), with a bound on their
    number too; no lock: the cache is used from the event loop only (renders run in threads, but
    their results are stored back on the loop).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES,
                 admission: Admission | None = None,
                 on_render: Callable[[], None] | None = None,
                 charge: Callable[[Request], None] | None = None,
                 changed: Changed | None = None,
                 generation: GenerationSource | None = None) -> None:
        """``admission``: the threads renders run on (the service's engine threads, which may refuse
        a render with 503 ``overloaded``: every waiter for it gets that, nothing is cached); anyio's
        default pool when omitted. ``on_render``: called after each finished render (a metric).
        ``charge(request)``: what starting a render costs the client (the rate limit; it may
        raise); a hit, or joining a render in progress, costs nothing. ``changed``: whether a
        commit changed what a document shows (None: every commit changes everything).
        ``generation``: the index generation now, without blocking (None: none open); what lets
        the repeat lane ask whether a document still holds (``DocumentRepeat``)."""
        self.generation = generation
        self.admission = admission
        self.changed = changed
        self.on_render = on_render
        self.charge = charge
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: LRUCache[FeedKey, _Held] = LRUCache(max(0, max_bytes), getsizeof=_held_size)
        self._pending: dict[FeedKey, asyncio.Future[Document]] = {}  # renders in progress
        self._generation: Hashable | None = None
        self.hits = 0
        self.renders = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """What the entries count against ``max_bytes``."""
        return int(self._entries.currsize)

    def observe(self, generation: Hashable) -> None:
        """Note the newest generation seen: renders of older ones are no longer stored."""
        self._generation = generation

    async def get(self, key: FeedKey) -> Document | None:
        """The document for ``key`` if one is held that still holds on ``key[0]``'s generation."""
        generation, rest = key[0], key[1:]
        held = self._entries.get(rest)
        if held is None:
            return None
        if held.generation != generation:
            if self.changed is None or await self.changed(str(held.generation), str(generation), held.shows):
                self._entries.pop(rest, None)
                return None
            held = replace(held, generation=generation)
            self._entries[rest] = held
        self.hits += 1
        return held.doc

    def put(self, key: FeedKey, doc: Document, shows: Shows = ANY_CHANGE) -> None:
        if key[0] != self._generation:
            return
        try:
            self._entries[key[1:]] = _Held(doc, key[0], shows)
        except ValueError:  # larger than the whole cache: not kept, nothing evicted for it
            return
        while len(self._entries) > self.max_entries:
            self._entries.popitem()  # the least recently used

    async def get_or_render(self, key: FeedKey, render: Callable[[], Document],
                            charge: Callable[[], None] | None = None, shows: Shows = ANY_CHANGE) -> Document:
        """The cached document, or ``render()`` run once in the thread pool for all waiters.

        ``charge`` is called only by the request that starts a render (it may raise, a 429 say,
        and then nothing is rendered): a hit, or joining a render in progress, costs nothing.

        The render is a task of its own that every requester awaits through ``asyncio.shield``:
        a client that disconnects cancels only its own wait, never the render the others need.
        ``render`` may raise (an ``ApiError`` for an unknown category, say): every waiter gets the
        same exception and nothing is cached. ``shows``: what the document shows.
        """
        self.observe(key[0])
        doc = await self.get(key)
        if doc is not None:
            return doc
        task = self._pending.get(key)
        if task is None:
            if charge is not None:
                charge()
            task = asyncio.ensure_future(self._render_and_store(key, render, shows))
            task.add_done_callback(_retrieve_exception)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _render_and_store(self, key: FeedKey, render: Callable[[], Document], shows: Shows) -> Document:
        try:
            if self.admission is None:
                doc = await anyio.to_thread.run_sync(render)
            else:
                doc = await self.admission.run_sync(render)
        finally:
            self._pending.pop(key, None)
        self.renders += 1
        if self.on_render is not None:
            self.on_render()
        self.put(key, doc, shows)
        return doc


@dataclass(frozen=True, slots=True)
class DocumentRepeat:
    """What ``serve_cached`` leaves in the scope (``caching.REPEAT_SLOT``) for the repeat lane
    (``searchsvc.http.repeats``): the cache, the document's key without its generation, its tag
    and which of its bytes went out. Not the document itself: a recording kept by the lane must
    not keep alive a document the cache has let go."""

    cache: FeedCache
    rest: tuple[Hashable, ...]
    etag: str
    gzip: bool

    async def holds(self) -> Document | None:
        """The document, if the cache still holds the same one for the current generation."""
        if self.cache.generation is None:
            return None
        generation = self.cache.generation()
        if generation is None:
            return None
        doc = await self.cache.get((generation, *self.rest))
        return doc if doc is not None and doc.etag == self.etag else None

    def body(self, doc: Document) -> bytes:
        return doc.gzip_body if self.gzip else doc.body


def _retrieve_exception(task: asyncio.Future[Document]) -> None:
    """Mark a failed render's exception as seen (asyncio logs it when every waiter has left)."""
    if not task.cancelled():
        task.exception()


@functools.lru_cache(maxsize=1024)
def http_date(value: datetime) -> str:
    """RFC 9110 date; cached because every response of a cached document sends the same one."""
    return format_datetime(value.astimezone(UTC), usegmt=True)


FEED_MEDIA_HINTS = ("rss+xml", "atom+xml", "feed+json", "opml", "rdf+xml")
# What is_browser_navigation reads: the Vary of every response a route chooses with it.
NAVIGATION_VARY = ("Accept", "Sec-Fetch-Dest")


def is_browser_navigation(headers: Headers) -> bool:
    """A person opening the URL in a browser tab, rather than a feed reader or a script.

    ``Sec-Fetch-Dest: document`` says so in current browsers; without Fetch Metadata, an Accept
    header that asks for HTML and names no feed type does. Feed readers name feed types or send
    ``*/*``, and ``fetch()`` sends ``Sec-Fetch-Dest: empty``.
    """
    dest = headers.get("sec-fetch-dest")
    if dest is not None:
        return dest == "document"
    accept = headers.get("accept", "").lower()
    return "text/html" in accept and not any(hint in accept for hint in FEED_MEDIA_HINTS)


def respond(
    request: Request,
    doc: Document,
    extra_headers: Mapping[str, str] | None = None,
    vary: Sequence[str] = (),
) -> Response:
    """200 with the right encoding of ``doc``, or 304; validators and CORS on both.

    ``vary``: the request headers, besides ``Accept-Encoding``, that chose ``doc`` among others
    for the same URL (a feed and its browser-tab page: ``Accept``, ``Sec-Fetch-Dest``), so that a
    shared cache keeps them apart. ``extra_headers`` go on the 304 too: a cache updates the stored
    response's headers from a 304 (RFC 9111 4.3.4), so they must be the 200's.
    """
    # The same decision the gzip layer would take, so it never has anything left to do.
    big = len(doc.body) >= GZIP_MINIMUM_SIZE
    use_gzip = big and request_encoding(request.headers) == GZIP
    headers = {
        "ETag": doc.etag_for(use_gzip),
        "Cache-Control": CACHE_CONTROL,
        **CORS_HEADERS,
        **(extra_headers or {}),
    }
    # Every variant, compressed or not and 304 or not, names what chose it (these routes are
    # outside the gzip layer, which writes the same Vary for everything else).
    headers["Vary"] = ", ".join(vary_names([ACCEPT_ENCODING, *vary, (extra_headers or {}).get("Vary", "")]))
    if doc.last_modified is not None:
        headers["Last-Modified"] = http_date(doc.last_modified)
    if not_modified(request.headers, doc.tags, doc.last_modified):
        return Response(status_code=304, headers=headers)
    headers["Content-Type"] = doc.media_type
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(doc.gzip_body if use_gzip else doc.body, headers=headers)


async def serve_cached(
    request: Request,
    cache: FeedCache,
    key: FeedKey,
    render: Callable[[], Document],
    extra_headers: Mapping[str, str] | None = None,
    vary: Sequence[str] = (),
    shows: Shows = ANY_CHANGE,
) -> Response:
    """``respond`` with the document ``cache`` holds for ``key``, rendered first if it holds none;
    a render costs the client what ``cache.charge`` says (a rate-limit token), a cached document
    nothing. ``shows``: what the document shows (which commits change it)."""
    charge = cache.charge
    doc = await cache.get_or_render(key, render, None if charge is None else functools.partial(charge, request),
                                    shows)
    response = respond(request, doc, extra_headers, vary)
    request.scope[REPEAT_SLOT] = DocumentRepeat(cache, tuple(key[1:]), doc.etag,
                                                response.headers.get("content-encoding") == GZIP)
    return response
