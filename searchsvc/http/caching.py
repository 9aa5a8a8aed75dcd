"""HTTP caching: the app's one ETag format and conditional-GET rule, validators that survive
unrelated commits, ``304 Not Modified``, Cache-Control, and the per-worker and shared response caches.

Validators (used here and by ``feed_cache``): every ETag is built by ``make_etag`` from an opaque
hash (``etag_digest``) of the representation's bytes, and every ``If-None-Match`` is evaluated by
``not_modified`` / ``etag_matches`` (RFC 9110 weak comparison). A tag therefore changes exactly when
the answer does: after any number of commits an unchanged answer still revalidates as 304, and a
changed one never does.

What keeps revalidation cheap: each worker remembers the tag it last sent for each request (by
path, normalised query and encoding) with the generation it was computed on and what it shows
(``index.api.Shows``, declared by the handler). When the index has moved on, the engine says what
changed in between (``freshness``): if nothing the answer shows changed, the tag still holds and
the 304 is sent at once, with no search; otherwise the answer is computed again, and if its bytes
come out the same the client still gets a 304. The response cache carries its entries across
commits by the same rule.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from cachetools import LRUCache
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.api import ANY_CHANGE, Shows

from .encoding import ACCEPT_ENCODING, add_vary, request_encoding

GenerationSource = Callable[[], "str | None"]
# ``changed(old, new, shows)``: whether an answer computed on generation ``old`` that shows
# ``shows`` may read differently on ``new`` (searchsvc.freshness); None: always.
Changed = Callable[[str, str, Shows], Awaitable[bool]]

SHOWS_KEY = "shows"  # scope["state"] key where a handler leaves what its answer shows
# scope["state"] key of the bytes a weak tag is computed from when they are not the body's: an
# answer with parts that drift without changing what it means (a search's raw scores move with
# the collection's statistics at every commit; the hits and their order are what it says).
ETAG_BASIS_KEY = "etag_basis"


def shown(scope: Scope) -> Shows:
    """What the finished request ``scope`` declared its answer shows (``ANY_CHANGE`` if nothing)."""
    value = (scope.get("state") or {}).get(SHOWS_KEY)
    return value if isinstance(value, Shows) else ANY_CHANGE

# Never cached or shared, whatever paths and prefixes a cache is given: the admin API's answers
# depend on who asks (an API key), not only on the index generation.
PRIVATE_PREFIXES = ("/api/admin/",)


def fingerprint(paths: Iterable[Path], *salt: str) -> str:
    """A short hash of files' contents plus ``salt`` (config values shown in responses)."""
    digest = hashlib.sha1()
    for root in paths:
        files = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    for value in salt:
        digest.update(b"\0" + value.encode())
    return digest.hexdigest()[:16]


# --- validators: one ETag format, one If-None-Match rule --------------------------------------------


def etag_digest(*parts: str | bytes) -> str:
    """The opaque part of an ETag: a hash of ``parts`` (each one delimited, so no two different
    sequences of parts hash alike by concatenation)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def make_etag(validator: str, *variants: str, weak: bool) -> str:
    """Every ETag the app sends: ``W/"<validator>"`` or ``"<validator>"``, plus ``-<variant>`` for
    each way a representation differs from the plain one (``gz``, ``view``; RFC 9110 8.8.3: two
    content codings of one resource need two tags).

    ``weak``: the tag promises the same content but not the same bytes. Page and API tags are weak
    because their hash covers templates and configuration but not the Python code that renders
    them; a feed document's tag hashes its very bytes, so it can be strong."""
    opaque = "-".join((validator, *variants))
    return f'W/"{opaque}"' if weak else f'"{opaque}"'


# One entity tag of an If-None-Match list (RFC 9110 8.8.3 and 13.1.2): "*", or an opaque tag in
# double quotes, optionally weak; a tag may hold commas, so the list is not simply split on them.
_IF_NONE_MATCH_MEMBER = re.compile(r'[ \t]*(?:(\*)|(?:W/)?"([^"\x00-\x20\x7f]*)")[ \t]*(?:,|\Z)')
_CACHED_FIELD_CHARS = 512  # longer fields are rare (and possibly hostile): parsed, not memoised


@functools.lru_cache(maxsize=256)
def _if_none_match(value: str) -> tuple[bool, frozenset[str]]:
    """(whether ``*`` is listed, the opaque tags listed). A malformed member (no quotes, a
    lower-case ``w/``, text after the closing quote) is skipped up to the next comma: it matches
    nothing, and the well-formed members around it still count."""
    star, tags = False, set()
    pos, end = 0, len(value)
    while pos < end:
        member = _IF_NONE_MATCH_MEMBER.match(value, pos)
        if member is None:
            comma = value.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        if member.group(1):
            star = True
        else:
            tags.add(member.group(2))
        pos = member.end()
    return star, frozenset(tags)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag``, by weak comparison (RFC 9110 8.8.3.2:
    ``W/`` is ignored, the opaque tags must be equal); ``*`` names any tag. None (no header) and
    an empty or wholly malformed value name nothing."""
    if not if_none_match:
        return False
    parse = _if_none_match if len(if_none_match) <= _CACHED_FIELD_CHARS else _if_none_match.__wrapped__
    star, tags = parse(if_none_match)
    return star or etag.removeprefix("W/").strip('"') in tags


def not_modified(headers: Headers, etags: Iterable[str], last_modified: datetime | None = None) -> bool:
    """Whether a GET/HEAD is answered 304 (RFC 9110 13.2.2): ``If-None-Match`` decides when the
    request has one (does it name any of ``etags``, the tags of the representation that would be
    sent?); without it, ``If-Modified-Since`` against ``last_modified`` (None: never)."""
    fields = headers.getlist("if-none-match")
    if fields:
        if_none_match = ", ".join(fields)  # several fields are one list (RFC 9110 5.3)
        return any(etag_matches(if_none_match, etag) for etag in etags)
    since = headers.get("if-modified-since")
    if since and last_modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        return last_modified <= when
    return False


def request_key(app_fingerprint: str, scope: Scope) -> str:
    """What a cacheable GET/HEAD's answer is a function of, besides the index: the deployed code
    and configuration, the path, the normalised query and the encoding the gzip layer will choose
    (``encoding.request_encoding``)."""
    # Computed once per request: the response cache and the validators both key on it (it was 9 %
    # of a 304 revalidation's CPU when each computed it).
    known = scope.get(_REQUEST_KEY_SLOT)
    if known is not None and known[0] == app_fingerprint:
        return str(known[1])
    headers = Headers(scope=scope)
    query = sorted(QueryParams(scope.get("query_string", b"")).multi_items())
    key = etag_digest(app_fingerprint, "GET", scope["path"], repr(query), request_encoding(headers))
    scope[_REQUEST_KEY_SLOT] = (app_fingerprint, key)
    return key


_REQUEST_KEY_SLOT = "searchsvc.request_key"  # in the ASGI scope: (fingerprint, key)
# In the ASGI scope of a request answered from memory: the tag of the validators' 304, the headers
# of the response cache's entry, or a feed_cache.DocumentRepeat (searchsvc.http.repeats records
# what went out, to answer the same request again the same way).
REPEAT_SLOT = "searchsvc.repeat"


def content_etag(body: bytes, encoding: str) -> str:
    """The weak ETag of a page or API answer: a hash of its bytes before compression (or of the
    basis its handler gave, ``ETAG_BASIS_KEY``) and of the encoding they will be sent in (two
    content codings of one answer need two tags, RFC 9110 8.8.3). Weak (RFC 9110 8.8.1: equivalent,
    not byte-identical): the gzip layer may compress the same bytes differently from one release
    of the library to the next, and a search whose hits are the same in the same order is the same
    answer when its raw scores drift."""
    return make_etag(etag_digest(body, encoding), weak=True)


# What a handler sets on an answer that must be kept by no cache (a page answered without a part
# it could not compute in time): neither the response caches nor the validators remember it, and
# browsers and proxies do not store it (RFC 9111 5.2.2.5).
NO_STORE = "no-store"


def _no_store(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"cache-control" and b"no-store" in v.lower() for k, v in headers)


def cache_control(max_age: int) -> str:
    return "public, no-cache" if max_age <= 0 else f"public, max-age={max_age}"


class _GenerationKeyed:
    """What both caching layers share: the app, where the generation comes from, the code
    fingerprint, and which paths they cover (exact ``paths`` or ``prefixes``)."""

    def __init__(self, app: ASGIApp, generation: GenerationSource, app_fingerprint: str,
                 paths: Iterable[str], prefixes: Iterable[str], changed: Changed | None = None) -> None:
        self.app = app
        self.generation = generation
        self.app_fingerprint = app_fingerprint
        self.paths = frozenset(paths)
        self.prefixes = tuple(prefixes)
        self.changed = changed

    async def still_holds(self, computed_on: str, generation: str, what: Shows) -> bool:
        """Whether an answer computed on ``computed_on`` that shows ``what`` holds on ``generation``."""
        if computed_on == generation:
            return True
        if self.changed is None:
            return False
        return not await self.changed(computed_on, generation, what)

    def cacheable(self, path: str) -> bool:
        return (path in self.paths or path.startswith(self.prefixes)) and not path.startswith(PRIVATE_PREFIXES)

    def handles(self, scope: Scope) -> bool:
        """Whether this layer acts on ``scope`` at all (the rest pass through untouched)."""
        raise NotImplementedError

    def keyed_generation(self, scope: Scope) -> str | None:
        """The generation ``scope``'s answer is keyed by; None: pass it through untouched (a request
        this layer does not handle, or no index open yet)."""
        return self.generation() if self.handles(scope) else None


@dataclass(frozen=True, slots=True)
class Validator:
    """The tag a worker last sent for a request, the generation it was computed on, and what the
    answer shows (to tell whether a later commit can have changed it)."""

    etag: str
    generation: str
    shows: Shows


class ConditionalGetMiddleware(_GenerationKeyed):
    """Adds ETag/Cache-Control/Vary to cacheable 200 responses and answers 304.

    ``paths`` are exact paths, ``prefixes`` path prefixes; anything else (health checks, metrics,
    static files with their own validators) passes through untouched. ``generation`` returns the
    current index generation, or None while no index is open (then nothing is cached).

    The tag is a hash of the answer's bytes (``content_etag``). A request naming the tag this
    worker last sent for it is answered 304 before the handler runs when that tag still holds: it
    was computed on the current generation, or nothing it shows changed since (``changed``).
    Otherwise the handler runs, and a 304 is still sent if the new bytes hash to a tag the client
    named. The generation is read before the handler runs, so a remembered tag is never newer than
    the content it labels.
    """

    def __init__(
        self,
        app: ASGIApp,
        generation: GenerationSource,
        app_fingerprint: str,
        paths: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        max_age: int = 0,
        on_not_modified: Callable[[], None] | None = None,
        changed: Changed | None = None,
        max_validators: int = 16_384,
        sources: RepeatSources | None = None,
    ) -> None:
        """``sources``: where the repeat lane finds this layer, to answer its 304s for it."""
        super().__init__(app, generation, app_fingerprint, paths, prefixes, changed)
        if sources is not None:
            sources.conditional = self
        self.cache_control = cache_control(max_age)
        self.on_not_modified = on_not_modified
        # Tags by request key: a count bound (an entry is ~200 bytes), least recently used first out.
        self._validators: LRUCache[str, Validator] = LRUCache(max(1, max_validators))

    def handles(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and self.cacheable(scope["path"])

    async def _not_modified(self, send: Send, etag: str) -> None:
        if self.on_not_modified is not None:
            self.on_not_modified()
        headers = [(b"etag", etag.encode()), (b"cache-control", self.cache_control.encode()),
                   (b"vary", ACCEPT_ENCODING.encode())]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def known_tag(self, scope: Scope) -> str | None:
        """The tag of the 304 this layer answers ``scope`` with before its handler runs: the
        request names the tag this worker last sent for it, and that tag still holds. None: the
        handler must run (or the layer does not handle the request)."""
        generation = self.keyed_generation(scope)
        if generation is None:
            return None
        request_headers = Headers(scope=scope)
        if not request_headers.getlist("if-none-match"):
            return None
        key = request_key(self.app_fingerprint, scope)
        known = self._validators.get(key)
        if known is None or not not_modified(request_headers, (known.etag,)):
            return None
        if not await self.still_holds(known.generation, generation, known.shows):
            return None
        if known.generation != generation:
            self._validators[key] = replace(known, generation=generation)
        return known.etag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self.keyed_generation(scope)
        if generation is None:
            await self.app(scope, receive, send)
            return
        known_tag = await self.known_tag(scope)
        if known_tag is not None:
            scope[REPEAT_SLOT] = known_tag  # the repeat lane may answer the next one (searchsvc.http.repeats)
            await self._not_modified(send, known_tag)
            return
        request_headers = Headers(scope=scope)
        key = request_key(self.app_fingerprint, scope)
        conditional = bool(request_headers.getlist("if-none-match"))

        start: Message | None = None
        chunks: list[bytes] = []

        async def buffer_ok(message: Message) -> None:
            # A 200 is held until its last byte (the tag hashes them all); anything else streams.
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 200:
                start = message
                return
            if start is None:
                await send(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await finish(start, b"".join(chunks))

        async def finish(message: Message, body: bytes) -> None:
            if _no_store(message.get("headers", [])):
                await send(message)
                await send({"type": "http.response.body", "body": body})
                return
            basis = (scope.get("state") or {}).get(ETAG_BASIS_KEY)
            etag = content_etag(basis if isinstance(basis, bytes) else body, request_encoding(request_headers))
            self._validators[key] = Validator(etag, generation, shown(scope))
            if conditional and not_modified(request_headers, (etag,)):
                await self._not_modified(send, etag)
                return
            headers = MutableHeaders(scope=message)
            if "etag" not in headers:
                headers["ETag"] = etag
            headers.setdefault("Cache-Control", self.cache_control)
            add_vary(headers, ACCEPT_ENCODING)
            await send(message)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffer_ok)


class StaticCacheControl:
    """Cache-Control for static assets; pages link them with ``?v=<fingerprint>`` to bust caches."""

    def __init__(self, app: ASGIApp, max_age: int = 86_400) -> None:
        self.app = app
        self.value = f"public, max-age={max_age}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                MutableHeaders(scope=message).setdefault("Cache-Control", self.value)
            await send(message)

        await self.app(scope, receive, send_wrapper)


@dataclass(frozen=True, slots=True)
class CachedResponse:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    note: object  # what the handler left in ``scope["state"][NOTE_KEY]`` (a search tier), replayed on hits
    generation: str = ""  # the generation it was computed on, or last found to hold on
    shows: Shows = ANY_CHANGE  # what it shows (``freshness``): whether a commit can have changed it

    @property
    def size(self) -> int:
        """What the entry counts against its cache's bound: its bytes, plus a little for the objects."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64


def _entry_size(entry: CachedResponse) -> int:
    return entry.size


NOTE_KEY = "response_cache_note"


SHARED_CACHE_ENV = "SEARCHSVC_SHARED_CACHE_DIR"  # set by ``searchsvc serve`` for its workers


class SharedResponseStore:
    """Finished responses shared by the workers of one ``searchsvc serve``, as files.

    Why: each worker otherwise computes every distinct search itself, so with N workers the first
    requests after a start or a commit cost N times the engine work, and while that work queues it
    dominates the latency of every request (docs/benchmarks.md). A file per response in a directory
    private to this run (``mkdtemp``, mode 0700, on ``/dev/shm`` where there is one) lets the second
    worker replay the first one's
    bytes. One sub-directory per index generation; a worker that sees a new generation removes the
    others. Best effort throughout: any ``OSError`` (disk full, a directory removed by another
    worker) means "not shared", never a failed request. Each worker writes at most ``max_bytes``
    per generation.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._generation: str | None = None
        self._written = 0

    @classmethod
    def from_env(cls, max_bytes: int) -> SharedResponseStore | None:
        root = os.environ.get(SHARED_CACHE_ENV)
        return cls(Path(root), max_bytes) if root and max_bytes > 0 else None

    def _dir(self, generation: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9._-]", "_", generation)

    @staticmethod
    def _name(key: str) -> str:
        return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()

    def new_generation(self, generation: str) -> None:
        """Forget the write budget and remove the directories of other generations."""
        self._generation, self._written = generation, 0
        keep = self._dir(generation).name
        try:
            for child in self.root.iterdir():
                if child.name != keep:
                    shutil.rmtree(child, ignore_errors=True)
        except OSError:
            pass

    def get(self, generation: str, key: str) -> CachedResponse | None:
        try:
            data = (self._dir(generation) / self._name(key)).read_bytes()
            headers, body, note, shows = pickle.loads(data)  # our own files, in a 0700 directory
            return CachedResponse([(bytes(k), bytes(v)) for k, v in headers], bytes(body), note, generation,
                                  shows if isinstance(shows, Shows) else ANY_CHANGE)
        except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError):
            return None

    def put(self, generation: str, key: str, entry: CachedResponse) -> None:
        if self._written + entry.size > self.max_bytes:
            return
        directory = self._dir(generation)
        target = directory / self._name(key)
        tmp = directory / f".{target.name}.{os.getpid()}.tmp"
        try:
            directory.mkdir(exist_ok=True)
            tmp.write_bytes(pickle.dumps((entry.headers, entry.body, entry.note, entry.shows),
                                         protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, target)  # readers see a whole file or none
            self._written += entry.size
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


class ResponseCacheMiddleware(_GenerationKeyed):
    """Answers a repeated GET from the bytes of its first answer, as long as that answer holds: on
    the generation it was computed on, and on later ones as long as no commit changed anything it
    shows (``changed``, as for validators).

    Why: every cacheable response is a pure function of (generation, code and configuration,
    normalised request, gzip or not), so a worker can keep the final
    bytes, compressed if they were, and skip the handler, the engine, the templates and gzip for
    every repeat. Clients that revalidate already get a 304 for free (``ConditionalGetMiddleware``);
    this serves the many that do not (first visits, partner widgets, API clients without a cache).

    It sits outside gzip and inside CORS, security headers and the request id, so what it replays
    is exactly what the route and gzip produced, and everything per request is still added around
    it. Bounded by ``max_bytes`` (least recently used entries go first) and
    ``max_entry_bytes``; an entry a commit changed is dropped when next asked for (and meanwhile
    ages out like any other). Requests carrying ``If-None-Match``
    and ``HEAD`` requests pass through (the conditional middleware answers those cheaply).

    The entries are a ``cachetools.LRUCache`` sized in bytes, without a lock: an ASGI middleware
    runs on its worker's event loop only, never in a thread.
    """

    def __init__(
        self,
        app: ASGIApp,
        generation: GenerationSource,
        app_fingerprint: str,
        paths: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        max_bytes: int = 64 << 20,
        max_entry_bytes: int = 1 << 20,
        on_hit: Callable[[object | None], None] | None = None,
        shared: SharedResponseStore | None = None,
        changed: Changed | None = None,
        sources: RepeatSources | None = None,
    ) -> None:
        """``on_hit(note)`` runs for every answer from the cache, with what the handler noted;
        ``shared``: the other workers' answers, looked up after this worker's own; ``sources``:
        where the repeat lane finds this layer, to answer its hits for it."""
        super().__init__(app, generation, app_fingerprint, paths, prefixes, changed)
        if sources is not None:
            sources.cache = self
        self.shared = shared
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.on_hit = on_hit
        self._entries: LRUCache[str, CachedResponse] = LRUCache(max(0, max_bytes), getsizeof=_entry_size)
        self._generation: str | None = None
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """What the entries count against ``max_bytes``."""
        return int(self._entries.currsize)

    def handles(self, scope: Scope) -> bool:
        if self.max_bytes <= 0 or scope["type"] != "http" or scope["method"] != "GET":
            return False
        return self.cacheable(scope["path"]) and not any(name == b"if-none-match" for name, _ in scope["headers"])

    def _store(self, key: str, entry: CachedResponse) -> None:
        # An entry larger than the whole cache is not kept (cachetools refuses it, evicting nothing).
        with contextlib.suppress(ValueError):
            self._entries[key] = entry

    async def lookup(self, scope: Scope, count: bool = True) -> CachedResponse | None:
        """The answer this layer replays for ``scope``, counted as a hit (``count_hit``) if
        ``count``; None: the request passes to the layers inside (a miss, or a request this layer
        does not handle)."""
        generation = self.keyed_generation(scope)
        if generation is None:
            return None
        if generation != self._generation:
            self._generation = generation
            if self.shared is not None:
                self.shared.new_generation(generation)
        key = request_key(self.app_fingerprint, scope)
        entry = self._entries.get(key)
        if entry is not None and entry.generation != generation:
            if await self.still_holds(entry.generation, generation, entry.shows):
                entry = replace(entry, generation=generation)
                self._store(key, entry)
            else:
                self._entries.pop(key, None)
                entry = None
        if entry is None and self.shared is not None:
            entry = self.shared.get(generation, key)
            if entry is not None:
                self._store(key, entry)
        if entry is not None and count:
            self.count_hit(entry)
        return entry

    def count_hit(self, entry: CachedResponse) -> None:
        self.hits += 1
        if self.on_hit is not None:
            self.on_hit(entry.note)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        generation = self.keyed_generation(scope)
        if generation is None:
            await self.app(scope, receive, send)
            return
        entry = await self.lookup(scope)
        if entry is not None:
            scope[REPEAT_SLOT] = entry.headers  # the repeat lane may answer the next one (searchsvc.http.repeats)
            await send({"type": "http.response.start", "status": 200, "headers": list(entry.headers)})
            await send({"type": "http.response.body", "body": entry.body})
            return
        key = request_key(self.app_fingerprint, scope)

        start_headers: list[tuple[bytes, bytes]] | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start_headers, size, keep
            if message["type"] == "http.response.start":
                # A copy, taken now: the layers outside add their per-request headers (request id,
                # CORS, Vary: Origin) to this same message once it is sent, and a replay gets them
                # added again (they were stored and doubled: "Vary: …, Origin, Origin").
                start_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                keep = message["status"] == 200 and not _no_store(start_headers)
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_entry_bytes:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(body)
                    if not message.get("more_body", False) and start_headers is not None:
                        note = scope.get("state", {}).get(NOTE_KEY)
                        entry = CachedResponse(start_headers, b"".join(chunks), note, generation, shown(scope))
                        self._store(key, entry)
                        if self.shared is not None:
                            self.shared.put(generation, key, entry)
            await send(message)

        await self.app(scope, receive, capture)


@dataclass(slots=True)
class RepeatSources:
    """The two layers the repeat lane (``searchsvc.http.repeats``) answers for; each puts itself
    here when Starlette builds it (the app's middleware list only names classes)."""

    conditional: ConditionalGetMiddleware | None = None
    cache: ResponseCacheMiddleware | None = None
