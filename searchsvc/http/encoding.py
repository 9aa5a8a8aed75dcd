"""Content coding: which encoding a response gets, and the ``Vary`` header that says so.

Every layer that depends on the encoding asks this module: the gzip layer (``GZipMiddleware``
below, for pages, the API and static files), the ETag and the response-cache key
(``caching.compute_etag``), and the feed and embed cache (``feed_cache.respond``), which keeps its
documents compressed already. They must agree: if the ETag and the cache key were computed from
one reading of ``Accept-Encoding`` and the bytes from another, a client could be sent gzip under
the tag of the plain document. ``negotiate`` is the one reading, by RFC 9110 12.5.3 (q-values,
``*``, ``identity;q=0``); ``add_vary`` is the one way a header is added to ``Vary``, merged into a
single field and never repeated, whichever layers add to it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware as StarletteGZipMiddleware
from starlette.middleware.gzip import GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

GZIP: Final = "gzip"
IDENTITY: Final = "identity"
ACCEPT_ENCODING: Final = "Accept-Encoding"
# Smaller responses go out plain: the gzip layer and the feed cache (``feed_cache.respond``)
# decide alike, so a feed is compressed exactly when a page of the same size would be.
GZIP_MINIMUM_SIZE: Final = 500
# The one compression level of the app: the gzip layer (pages, API, static files) and the feed and
# embed documents alike. Most compressed bytes are made for one or a few requests (a page or API
# answer, a saved search's feed), so the CPU counts as much as the size; a middle level gives
# nearly the smallest output of the highest levels for a fraction of their time (figures:
# docs/benchmarks.md, "Figures behind settings").
GZIP_LEVEL: Final = 5

_QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")  # RFC 9110 12.4.2
# An unlisted "identity" is acceptable (RFC 9110 12.5.3) but never preferred to a coding the
# client named: below every q-value a client can write (the smallest is 0.001).
_IMPLICIT_IDENTITY_Q = 0.0005
_CACHED_HEADER_CHARS = 200  # longer values are rare (and possibly hostile): parsed, not memoised


def accept_encoding_weights(value: str) -> dict[str, float]:
    """Coding name (lower case) -> q-value. An element with a malformed q-value is ignored, as
    if the client had not sent it; a name listed twice keeps its first q-value."""
    weights: dict[str, float] = {}
    for element in value.split(","):
        name, _, params = element.partition(";")
        name = name.strip().lower()
        if not name or name in weights:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                raw = raw.strip()
                q = float(raw) if _QVALUE.fullmatch(raw) else -1.0
        if q >= 0:
            weights["gzip" if name == "x-gzip" else name] = q
    return weights


@functools.lru_cache(maxsize=256)
def _negotiate(value: str) -> str:
    weights = accept_encoding_weights(value)
    star = weights.get("*")
    gzip_q = weights.get(GZIP, star if star is not None else 0.0)
    identity_q = weights.get(IDENTITY, star if star is not None else _IMPLICIT_IDENTITY_Q)
    if gzip_q > 0 and gzip_q >= identity_q:  # a tie goes to gzip: smaller for the same content
        return GZIP
    # Nothing acceptable at all ("identity;q=0" alone): RFC 9110 12.5.3 lets the server disregard
    # the header, and the plain bytes are what every client can read.
    return IDENTITY


def negotiate(accept_encoding: str | None) -> str:
    """``"gzip"`` or ``"identity"`` for an ``Accept-Encoding`` value (None: the header is absent).

    No header: identity (RFC 9110 allows any coding, but a client that names none may not decode
    one). Otherwise the acceptable coding with the highest q-value, gzip on a tie; ``*`` stands
    for every coding not named; ``identity`` is acceptable unless ``identity;q=0`` or ``*;q=0``
    excludes it, but only chosen over gzip when the client prefers it.
    """
    if accept_encoding is None:
        return IDENTITY
    if len(accept_encoding) > _CACHED_HEADER_CHARS:
        return _negotiate.__wrapped__(accept_encoding)
    return _negotiate(accept_encoding)


def request_encoding(headers: Headers) -> str:
    """``negotiate`` over the request's ``Accept-Encoding`` fields (several fields are one list)."""
    values = headers.getlist("accept-encoding")
    return negotiate(", ".join(values) if values else None)


def vary_names(values: Iterable[str]) -> list[str]:
    """The field names of ``Vary`` values, in order, each once (compared case-insensitively);
    ``["*"]`` if any is ``*`` (it already says "varies on everything")."""
    seen: dict[str, str] = {}
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name == "*":
                return ["*"]
            if name and name.lower() not in seen:
                seen[name.lower()] = name
    return list(seen.values())


def add_vary(headers: MutableHeaders, *names: str) -> None:
    """Merge ``names`` into the response's ``Vary``: one field, every name once."""
    existing = headers.getlist("vary")
    merged = ", ".join(vary_names([*existing, *names]))
    if merged and existing != [merged]:
        headers["Vary"] = merged  # replaces every earlier Vary field


def vary_message(message: Message, *names: str) -> None:
    """``add_vary`` on an ASGI ``http.response.start`` message."""
    message.setdefault("headers", [])
    add_vary(MutableHeaders(scope=message), *names)


class GZipMiddleware(StarletteGZipMiddleware):
    """Starlette's gzip layer, deciding by ``negotiate`` and writing ``Vary`` by ``add_vary``.

    Starlette's own looks for the substring "gzip" (so ``gzip;q=0`` got gzip) and appends
    ``Accept-Encoding`` to ``Vary`` even when an inner layer put it there. The compression itself
    (size threshold, excluded media types, streaming, responses that carry a
    ``Content-Encoding`` already) is Starlette's ``GZipResponder``, unchanged.

    Every response that passes through gets ``Vary: Accept-Encoding``, compressed or not: whether
    it *could* be compressed depends on its size, which a cache cannot know before asking, and a
    304 must carry the ``Vary`` of the 200 it stands for.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                vary_message(message, ACCEPT_ENCODING)
            await send(message)

        responder: ASGIApp = self.app
        if request_encoding(Headers(scope=scope)) == GZIP:
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
        await responder(scope, receive, send_with_vary)
