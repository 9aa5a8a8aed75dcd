"""Pure ASGI middleware: request ids and access logs, security headers, body limits, path scoping.

These wrap every request, so they are plain ASGI callables (no ``BaseHTTPMiddleware``: it costs a
task and a memory stream per request) and only touch the ``http.response.start`` message.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import logging
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ErrorCode, error_response, json_error
from ..metrics import Metrics

error_logger = logging.getLogger("searchsvc.error")

REQUEST_ID_HEADER = "x-request-id"
LOGGED_METHOD_CHARS = 32  # a method is any token to uvicorn, thousands of characters if a client likes
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"
# scope["state"] key set when the repeat lane answered (searchsvc.http.repeats): the access log
# line then has ``"repeat": true``.
REPEATED_KEY = "repeated"


_ID_PREFIX = ""
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = uuid.uuid4().hex[:20], itertools.count()


_new_id_prefix()
# Re-drawn in a forked child (uvicorn's workers), so no two processes share a prefix. Not by
# comparing os.getpid() on every request: glibc no longer caches it, and the system call was 4 % of
# a 304 revalidation's CPU in a profile.
os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id() -> str:
    """32 hex digits, unique across processes and restarts: 20 random per process (re-drawn after a
    fork), then a 12-digit counter. ``uuid4()`` reads the OS random source for every request, a
    system call that showed in profiles of the cached-feed path."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def configure_json_log(logger: logging.Logger) -> None:
    """``logger`` writes its messages (one JSON object each) as lines on stderr, not through the
    root logger; idempotent so several ``create_app`` calls are fine."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class AccessLog:
    """The JSON access log: one line per request on stderr, written in batches.

    Why not the ``logging`` module, as before: a record, its handler's lock, a format and a flush
    per request, so a ``write(2)`` per request, were 11 % of a worker's CPU answering 304s
    (docs/benchmarks.md). Lines are kept here and written together ``FLUSH_SECONDS`` after the first
    one of a batch (or at once past ``FLUSH_BYTES``), by the event loop that served them; an app
    without a running loop (a test calling it directly) writes at once. A worker killed outright
    loses at most that fraction of a second of lines; a worker that stops normally writes them in
    its shutdown (``searchsvc.app.close_state``), and ``ACCESS_LOG`` again at the process's exit.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_BYTES = 64 * 1024

    def __init__(self, write: Callable[[str], object] | None = None) -> None:
        self._write = write
        self._lines: list[str] = []
        self._size = 0
        self._scheduled: asyncio.TimerHandle | None = None

    def line(self, entry: Mapping[str, object]) -> None:
        text = json.dumps(entry, ensure_ascii=False) + "\n"
        self._lines.append(text)
        self._size += len(text)
        if self._size >= self.FLUSH_BYTES:
            self.flush()
        elif self._scheduled is None:
            try:
                self._scheduled = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop running: nothing would flush later
                self.flush()

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not self._lines:
            return
        text, self._lines, self._size = "".join(self._lines), [], 0
        try:
            if self._write is not None:
                self._write(text)
            else:  # looked up at each write: a test's capture replaces sys.stderr
                sys.stderr.write(text)
                sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or gone: the lines are lost, the request is not
            pass


# One per process: every app of the process (tests build many) writes through it.
ACCESS_LOG = AccessLog()
atexit.register(ACCESS_LOG.flush)


def logged_method(method: str) -> str:
    """The method for the access log: cut to ``LOGGED_METHOD_CHARS`` (then ending in "…"), so a
    made-up one is still visible but cannot make a line of kilobytes."""
    if len(method) <= LOGGED_METHOD_CHARS:
        return method
    return method[: LOGGED_METHOD_CHARS - 1] + "…"


def matched_route(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The first of ``routes`` that matches ``scope`` (as the router would try them), or None."""
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return candidate
    return None


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template that serves ``scope`` ("/api/articles/{article_id}"), for metric labels.

    The router leaves the matched route in ``scope["route"]``; a request answered before routing
    (a 304, a 429) is matched here so it is still counted under its template.
    """
    route = scope.get("route")
    if route is None:
        route = matched_route(routes, scope)
    if isinstance(route, Route):
        return route.path
    if isinstance(route, Mount):
        return route.path + "/{path}"
    return UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Request id, JSON access log, request metrics and the last-resort 500, in one layer.

    It is the outermost layer so that its 500 (for a real bug) still carries ``X-Request-ID`` and is
    logged and counted like any other response; the traceback goes to the ``searchsvc.error``
    logger tagged with the same id, never to the client.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        routes: Callable[[], Sequence[BaseRoute]],
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.access_log = ACCESS_LOG if access_log else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_logger.error(
                "unhandled error in %s %s (request %s)\n%s",
                logged_method(scope["method"]),
                scope["path"],
                request_id,
                traceback.format_exc(),
            )
            status = 500
            if not started:
                try:
                    response = error_response(Request(scope), ErrorCode.INTERNAL_ERROR, "internal server error")
                except Exception:  # the error page itself failed: plain JSON cannot
                    response = json_error(ErrorCode.INTERNAL_ERROR, "internal server error")
                response.headers["X-Request-ID"] = request_id
                await response(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(self.routes(), scope)
            self.metrics.observe_request(route, scope["method"], status, elapsed)
            if self.access_log is not None:
                client = scope.get("client")
                entry: dict[str, object] = {
                    "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "request_id": request_id,
                    "method": logged_method(scope["method"]),
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                }
                if scope["state"].get(REPEATED_KEY):
                    entry["repeat"] = True
                self.access_log.line(entry)


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """Response headers for one part of the site (see ``DEFAULT_HEADER_POLICIES``)."""

    headers: Mapping[str, str] = field(default_factory=dict)


BASE_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"

DEFAULT_HEADER_POLICIES: dict[str, HeaderPolicy] = {
    "/": HeaderPolicy({**BASE_SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}),
    "/api/": HeaderPolicy({**BASE_SECURITY_HEADERS, "Content-Security-Policy": API_CSP}),
}


class SecurityHeadersMiddleware:
    """Adds the header policy of the longest matching path prefix; a handler's own value wins."""

    def __init__(self, app: ASGIApp, policies: Mapping[str, HeaderPolicy] = DEFAULT_HEADER_POLICIES) -> None:
        self.app = app
        self.policies = sorted(
            ((prefix, [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in policy.headers.items()])
             for prefix, policy in policies.items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )

    def headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        for prefix, headers in self.policies:
            if path.startswith(prefix):
                return headers
        return []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                raw.extend(h for h in extra if h[0] not in present)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 JSON for request bodies over ``max_bytes``, by Content-Length or as they stream in.

    Only the admin API reads a body (articles to publish), and it has a limit of its own: ``limits``
    maps path prefixes to their limit (the longest matching prefix wins). Everywhere else the limit
    keeps a client from making a worker buffer a body nothing reads.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = 64 * 1024, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = sorted((limits or {}).items(), key=lambda item: len(item[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.limits if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > max_bytes):
            code = ErrorCode.BODY_TOO_LARGE if length.strip().isdigit() else ErrorCode.BAD_REQUEST
            await json_error(code, f"request bodies are limited to {max_bytes} bytes")(
                scope, receive, send
            )
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await json_error(ErrorCode.BODY_TOO_LARGE, f"request bodies are limited to {max_bytes} bytes")(
                scope, receive, send
            )


class PathScopedMiddleware:
    """Runs ``middleware`` only for paths under ``prefixes`` and not under ``except_prefixes``
    (CORS for ``/api/`` only; gzip for everything but the routes that send their own)."""

    def __init__(self, app: ASGIApp, prefixes: Iterable[str], middleware: Callable[[ASGIApp], ASGIApp],
                 except_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)
        self.except_prefixes = tuple(except_prefixes)
        self.scoped = middleware(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"].startswith(self.prefixes)
                and not (self.except_prefixes and scope["path"].startswith(self.except_prefixes))):
            await self.scoped(scope, receive, send)
        else:
            await self.app(scope, receive, send)
