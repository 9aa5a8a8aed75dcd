"""Rendered feeds and embeds, cached per index generation, served with conditional GET and gzip.

A feed document is a pure function of (index generation, path, normalised query): the renderers
in ``feeds`` are deterministic (no "now" anywhere) and the configuration is fixed for the life of
the process. So each worker keeps the finished bytes, plain *and* gzip-compressed, under that key
in a bounded LRU, and a busy feed costs one render and one compression per index change and per
worker; every other request is a dictionary lookup.

Validators come from the bytes themselves, not from the request:

* ``ETag``: a hash of the plain document, strong (``"…"``) for the identity encoding, with a
  ``-gz`` suffix for the gzip one (RFC 9110 8.8.3: different content codings, different tags)
  and a ``-view`` suffix for the browser-tab variant (same bytes, ``application/xml``: see
  ``respond``). ``If-None-Match`` is compared weakly on the hash alone (suffixes, and the
  ``-gzip`` some proxies add, are ignored), since every variant carries the same document.
* ``Last-Modified``: the newest item's date (what the feed's own ``updated`` says).  Coarser than
  the ETag (an article added with an older date, or corrected in place, does not move it), so
  ``If-Modified-Since`` is only looked at when the request has no ``If-None-Match`` (RFC 9110
  13.2.2) and readers that send both get the exact answer.

These routes are deliberately *not* handled by ``caching.ConditionalGetMiddleware`` (``/feeds``
and ``/embed`` are in neither ``CACHEABLE_PATHS`` nor ``CACHEABLE_PREFIXES``): its tag is a hash of
the request and would be a second, different ETag for the same bytes.

The gzip bytes are sent with ``Content-Encoding: gzip`` already set, which Starlette's
``GZipMiddleware`` passes through untouched (it never compresses a response that has a
``Content-Encoding``). The choice between the two encodings uses the same rule as the rest of the
app (``caching.encoding_class``).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

import anyio
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from .caching import encoding_class

CACHE_CONTROL = "public, max-age=300"
GZIP_LEVEL = 9  # paid once per document and generation, so the smallest output wins
# For documents that are mostly rendered for one request (a saved search nobody else polls):
# measured on a 250 KB feed, level 4 takes 7 ms for 77 KB where level 9 takes 21 ms for 72 KB.
GZIP_LEVEL_FAST = 4
DEFAULT_MAX_ENTRIES = 512
DEFAULT_MAX_BYTES = 96 * 1024 * 1024  # plain + gzip bytes of every entry, per worker

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Last-Modified",
}


@dataclass(frozen=True, slots=True)
class Document:
    """A finished response body with its validators; immutable, shared by every request."""

    body: bytes
    gzip_body: bytes
    media_type: str  # full Content-Type value, charset included
    etag: str
    gzip_etag: str
    last_modified: datetime | None  # whole seconds, aware; None: no Last-Modified header

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzip_body)


def make_document(body: bytes, media_type: str, last_modified: datetime | None = None,
                  compresslevel: int = GZIP_LEVEL) -> Document:
    """Hash and compress ``body`` once (``mtime=0`` so the gzip bytes are deterministic too)."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    if last_modified is not None:
        last_modified = last_modified.astimezone(timezone.utc).replace(microsecond=0)
    return Document(
        body=body,
        gzip_body=gzip.compress(body, compresslevel=compresslevel, mtime=0),
        media_type=media_type,
        etag=f'"{digest}"',
        gzip_etag=f'"{digest}-gz"',
        last_modified=last_modified,
    )


class FeedCache:
    """Bounded LRU of ``Document``s keyed by ``(generation, …)``, with single-flight rendering.

    Keys must start with the index generation. When a request shows a new generation, every
    entry of the old one is dropped at once (they can never be served again), and a render that
    finishes for a generation that is no longer current is returned but not stored.
    Concurrent requests for a key that is being rendered wait for that one render.
    Not thread-safe: used from the event loop only (renders run in the thread pool).
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES,
                 limiter: anyio.CapacityLimiter | None = None) -> None:
        """``limiter``: the threads renders may use (the service's engine threads); anyio's default
        pool when omitted."""
        self.limiter = limiter
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, Document] = OrderedDict()
        self._pending: dict[tuple, asyncio.Future[Document]] = {}  # renders in progress
        self._bytes = 0
        self._generation: str | None = None
        self.hits = 0
        self.renders = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def observe(self, generation: str) -> None:
        """Note the current generation; entries of any other generation are dropped."""
        if generation != self._generation:
            self._generation = generation
            self._entries.clear()
            self._bytes = 0

    def get(self, key: tuple) -> Document | None:
        doc = self._entries.get(key)
        if doc is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return doc

    def put(self, key: tuple, doc: Document) -> None:
        if key[0] != self._generation or doc.size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = doc
        self._bytes += doc.size
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    async def get_or_render(self, key: tuple, render: Callable[[], Document]) -> Document:
        """The cached document, or ``render()`` run once in the thread pool for all waiters.

        The render is a task of its own that every requester awaits through ``asyncio.shield``:
        a client that disconnects cancels only its own wait, never the render the others need.
        ``render`` may raise (an ``ApiError`` for an unknown category, say): every waiter gets the
        same exception and nothing is cached.
        """
        self.observe(key[0])
        doc = self.get(key)
        if doc is not None:
            return doc
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._render_and_store(key, render))
            task.add_done_callback(_retrieve_exception)
            self._pending[key] = task
        return await asyncio.shield(task)

    async def _render_and_store(self, key: tuple, render: Callable[[], Document]) -> Document:
        try:
            doc = await anyio.to_thread.run_sync(render, limiter=self.limiter)
        finally:
            self._pending.pop(key, None)
        self.renders += 1
        self.put(key, doc)
        return doc


def _retrieve_exception(task: asyncio.Future) -> None:
    """Mark a failed render's exception as seen (asyncio logs it when every waiter has left)."""
    if not task.cancelled():
        task.exception()


def cache_for(request: Request) -> FeedCache:
    """The worker's cache, created on first use and kept on ``app.state``."""
    state = request.app.state
    cache = getattr(state, "feed_cache", None)
    if cache is None:
        services = getattr(state, "services", None)
        cache = FeedCache(limiter=getattr(services, "engine_limiter", None))
        state.feed_cache = cache
    return cache


@functools.cache
def gzip_minimum_size() -> int:
    """The app's GZipMiddleware threshold (imported late: the app imports this module)."""
    from .app import GZIP_MINIMUM_SIZE

    return GZIP_MINIMUM_SIZE


@functools.lru_cache(maxsize=1024)
def http_date(value: datetime) -> str:
    """RFC 9110 date; cached because every response of a cached document sends the same one."""
    return format_datetime(value.astimezone(timezone.utc), usegmt=True)


def _tag_hash(tag: str) -> str:
    """The content hash inside a tag, without ``W/``, quotes and variant suffixes (``-gz``,
    ``-view``, or the ``-gzip`` some proxies append)."""
    return tag.strip().removeprefix("W/").strip('"').split("-", 1)[0]


def etag_matches(if_none_match: str, doc: Document) -> bool:
    """Weak comparison (RFC 9110 13.1.2) against the document, whatever its variant."""
    wanted = _tag_hash(doc.etag)
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or _tag_hash(candidate) == wanted:
            return True
    return False


FEED_MEDIA_HINTS = ("rss+xml", "atom+xml", "feed+json", "opml", "rdf+xml")


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


def not_modified(headers: Headers, doc: Document) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, doc)
    since = headers.get("if-modified-since")
    if since and doc.last_modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=timezone.utc)
        return doc.last_modified <= when
    return False


def respond(
    request: Request,
    doc: Document,
    extra_headers: Mapping[str, str] | None = None,
    view_type: str | None = None,
) -> Response:
    """200 with the right variant of ``doc``, or 304; validators and CORS on both.

    ``view_type``: the Content-Type for a browser navigation (``is_browser_navigation``), same
    bytes. Chromium shows ``application/rss+xml`` and ``application/atom+xml`` as plain text and
    never applies their xml-stylesheet; as ``application/xml`` it renders the XSL view. Feed
    readers keep getting ``doc.media_type``. The variant has its own ETag (``-view``).
    """
    # The same decision GZipMiddleware would take, so it never has anything left to do.
    big = len(doc.body) >= gzip_minimum_size()
    use_gzip = big and encoding_class(request.headers) == "gzip"
    view = view_type is not None and is_browser_navigation(request.headers)
    tag = doc.gzip_etag if use_gzip else doc.etag
    if view:
        tag = tag[:-1] + '-view"'
    headers = {
        "ETag": tag,
        "Cache-Control": CACHE_CONTROL,
        **CORS_HEADERS,
        **(extra_headers or {}),
    }
    vary = ["Accept", "Sec-Fetch-Dest"] if view_type is not None else []
    if use_gzip or not big:
        # GZipMiddleware adds "Vary: Accept-Encoding" itself to the identity responses it could
        # have compressed (and appends a duplicate if one is there already); the others need ours.
        vary.insert(0, "Accept-Encoding")
    if vary:
        headers["Vary"] = ", ".join(vary)
    if doc.last_modified is not None:
        headers["Last-Modified"] = http_date(doc.last_modified)
    if not_modified(request.headers, doc):
        if "Accept-Encoding" not in vary:
            headers["Vary"] = ", ".join(["Accept-Encoding", *vary])
        return Response(status_code=304, headers=headers)
    headers["Content-Type"] = view_type if view else doc.media_type
    if use_gzip:
        headers["Content-Encoding"] = "gzip"
    return Response(doc.gzip_body if use_gzip else doc.body, headers=headers)


async def serve_cached(
    request: Request,
    key: tuple[Hashable, ...],
    render: Callable[[], Document],
    extra_headers: Mapping[str, str] | None = None,
    view_type: str | None = None,
) -> Response:
    """``respond`` with the cached (or freshly rendered) document for ``key``."""
    doc = await cache_for(request).get_or_render(key, render)
    return respond(request, doc, extra_headers, view_type)
