"""HTTP caching: ETags that cost no search, ``304 Not Modified`` and Cache-Control.

Every cacheable response is a pure function of (index generation, deployed code and templates,
configuration, normalised request). So the ETag is a hash of exactly those, computed *before* the
handler runs, and a matching ``If-None-Match`` is answered 304 without touching the engine.

The generation is read before the search runs, so a tag can only ever be older than the content it
labels, never newer: after a re-index the next revalidation sees a new tag and gets fresh content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GenerationSource = Callable[[], "str | None"]


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


def encoding_class(headers: Headers) -> str:
    """What part of Accept-Encoding changes our bytes: GZipMiddleware only looks for "gzip"."""
    return "gzip" if "gzip" in headers.get("accept-encoding", "") else "identity"


def compute_etag(generation: str, app_fingerprint: str, scope: Scope) -> str:
    """Weak ETag for a GET/HEAD: equal tags promise the same representation, byte for byte or not."""
    headers = Headers(scope=scope)
    query = sorted(QueryParams(scope.get("query_string", b"")).multi_items())
    digest = hashlib.sha1()
    for part in (generation, app_fingerprint, "GET", scope["path"], repr(query), encoding_class(headers)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return f'W/"{digest.hexdigest()[:24]}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): ``W/`` prefixes are ignored; ``*`` matches anything."""
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def cache_control(max_age: int) -> str:
    return "public, no-cache" if max_age <= 0 else f"public, max-age={max_age}"


class _GenerationKeyed:
    """What both caching layers share: the app, where the generation comes from, the code
    fingerprint, and which paths they cover (exact ``paths`` or ``prefixes``)."""

    def __init__(self, app: ASGIApp, generation: GenerationSource, app_fingerprint: str,
                 paths: Iterable[str], prefixes: Iterable[str]) -> None:
        self.app = app
        self.generation = generation
        self.app_fingerprint = app_fingerprint
        self.paths = frozenset(paths)
        self.prefixes = tuple(prefixes)

    def cacheable(self, path: str) -> bool:
        return path in self.paths or path.startswith(self.prefixes)


class ConditionalGetMiddleware(_GenerationKeyed):
    """Adds ETag/Cache-Control/Vary to cacheable 200 responses and answers 304 early.

    ``paths`` are exact paths, ``prefixes`` path prefixes; anything else (health checks, metrics,
    static files with their own validators) passes through untouched. ``generation`` returns the
    current index generation, or None while no index is open (then nothing is cached).
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
    ) -> None:
        super().__init__(app, generation, app_fingerprint, paths, prefixes)
        self.cache_control = cache_control(max_age)
        self.on_not_modified = on_not_modified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not self.cacheable(scope["path"]):
            await self.app(scope, receive, send)
            return
        generation = self.generation()
        if generation is None:
            await self.app(scope, receive, send)
            return
        etag = compute_etag(generation, self.app_fingerprint, scope)
        validators = [("etag", etag), ("cache-control", self.cache_control), ("vary", "Accept-Encoding")]
        if_none_match = Headers(scope=scope).get("if-none-match")
        if if_none_match and etag_matches(if_none_match, etag):
            if self.on_not_modified is not None:
                self.on_not_modified()
            raw = [(k.encode(), v.encode()) for k, v in validators]
            await send({"type": "http.response.start", "status": 304, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_etag(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = MutableHeaders(scope=message)
                if "etag" not in headers:
                    headers["ETag"] = etag
                headers.setdefault("Cache-Control", self.cache_control)
                headers.add_vary_header("Accept-Encoding")
            await send(message)

        await self.app(scope, receive, send_with_etag)


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

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64


NOTE_KEY = "response_cache_note"


SHARED_CACHE_ENV = "SEARCHSVC_SHARED_CACHE_DIR"  # set by ``searchsvc serve`` for its workers


class SharedResponseStore:
    """Finished responses shared by the workers of one ``searchsvc serve``, as files.

    Why: each worker otherwise computes every distinct search itself, so with N workers the first
    requests after a start or a commit cost N times the engine work (measured with 2 workers and
    300 distinct queries: 600 searches, ~7 s of both cores, during which the p95 of every request
    is dominated by queueing). A file per response in a directory private to this run (``mkdtemp``,
    mode 0700, on ``/dev/shm`` where there is one) lets the second worker replay the first one's
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
            headers, body, note = pickle.loads(data)  # our own files, in a 0700 directory
            return CachedResponse([(bytes(k), bytes(v)) for k, v in headers], bytes(body), note)
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
            tmp.write_bytes(pickle.dumps((entry.headers, entry.body, entry.note), protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(tmp, target)  # readers see a whole file or none
            self._written += entry.size
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


class ResponseCacheMiddleware(_GenerationKeyed):
    """Answers a repeated GET from the bytes of its first answer, as long as the index generation
    is the same.

    Why: every cacheable response is a pure function of (generation, code and configuration,
    normalised request, gzip or not) — the same inputs as its ETag — so a worker can keep the final
    bytes, compressed if they were, and skip the handler, the engine, the templates and gzip for
    every repeat. Clients that revalidate already get a 304 for free (``ConditionalGetMiddleware``);
    this serves the many that do not (first visits, partner widgets, API clients without a cache).

    It sits outside gzip and inside rate limiting, CORS, security headers and the request id, so
    what it replays is exactly what the route and gzip produced, and everything per request is
    still added around it. Bounded by ``max_bytes`` (least recently used entries go first) and
    ``max_entry_bytes``; emptied when the generation changes. Requests carrying ``If-None-Match``
    and ``HEAD`` requests pass through (the conditional middleware answers those cheaply).
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
    ) -> None:
        """``on_hit(note)`` runs for every answer from the cache, with what the handler noted;
        ``shared``: the other workers' answers, looked up after this worker's own."""
        super().__init__(app, generation, app_fingerprint, paths, prefixes)
        self.shared = shared
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.on_hit = on_hit
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._bytes = 0
        self._generation: str | None = None
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _cacheable(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "GET" or not self.cacheable(scope["path"]):
            return False
        return not any(name == b"if-none-match" for name, _ in scope["headers"])

    def _store(self, key: str, entry: CachedResponse) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = entry
        self._bytes += entry.size
        while self._entries and self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.max_bytes <= 0 or not self._cacheable(scope):
            await self.app(scope, receive, send)
            return
        generation = self.generation()
        if generation is None:
            await self.app(scope, receive, send)
            return
        if generation != self._generation:
            self._entries.clear()
            self._bytes = 0
            self._generation = generation
            if self.shared is not None:
                self.shared.new_generation(generation)
        key = compute_etag(generation, self.app_fingerprint, scope)
        entry = self._entries.get(key)
        if entry is None and self.shared is not None:
            entry = self.shared.get(generation, key)
            if entry is not None:
                self._store(key, entry)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            if self.on_hit is not None:
                self.on_hit(entry.note)
            await send({"type": "http.response.start", "status": 200, "headers": list(entry.headers)})
            await send({"type": "http.response.body", "body": entry.body})
            return

        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start, size, keep
            if message["type"] == "http.response.start":
                start = message
                keep = message["status"] == 200
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                if size > self.max_entry_bytes:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(body)
                    if not message.get("more_body", False) and start is not None:
                        note = scope.get("state", {}).get(NOTE_KEY)
                        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
                        entry = CachedResponse(headers, b"".join(chunks), note)
                        self._store(key, entry)
                        if self.shared is not None:
                            self.shared.put(generation, key, entry)
            await send(message)

        await self.app(scope, receive, capture)
