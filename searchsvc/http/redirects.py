"""Trailing-slash redirects that never name a host.

Starlette's router answers ``/search/?q=a`` with ``307 Location: http://<Host header>/search?q=a``:
the absolute URL is built from the request's own ``Host``, so anyone can make the service (and
any cache in front of it) hand out redirects to another site. ``SlashRedirect`` replaces that
behaviour for every route at once: it is the router's ``default`` (what runs when no route
matches), and it answers a path that matches only without its trailing slashes with a *relative*
redirect, ``Location: /search?q=a`` (RFC 9110 10.2.2 allows a relative reference), which a client
resolves against the URL it asked for: the same host, whatever the headers said.
"""

from __future__ import annotations

from urllib.parse import quote, quote_from_bytes

from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

# What stays as is in the Location; everything else is percent-encoded. The path is the decoded
# one the routes matched, so "%" is encoded too; the query is passed on as the client sent it.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"


def slash_location(path: str, query: bytes) -> str | None:
    """The relative redirect target for ``path`` without its trailing slashes, or None.

    None when there is nothing to strip, and when the target would begin with ``//``: a
    reference that starts so is *network-path* relative, ``//evil.example/x`` is another host.
    """
    stripped = path.rstrip("/")
    if stripped == path or not stripped.startswith("/") or stripped.startswith("//"):
        return None
    try:
        location = quote(stripped, safe=_PATH_SAFE)
    except UnicodeEncodeError:  # a lone surrogate: not a path any route serves
        return None
    if query:
        location += "?" + quote_from_bytes(query, safe=_QUERY_SAFE)
    return location


class SlashRedirect:
    """Install as ``router.default`` with ``router.redirect_slashes = False`` (see ``app.py``).

    Only the trailing-slash direction is offered: no route of ours ends in a slash, so adding
    one never finds anything but the static mount's empty directory listing (a 404 anyway).
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.not_found = router.not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            location = slash_location(scope["path"], scope.get("query_string", b""))
            if location is not None:
                target = {**scope, "path": scope["path"].rstrip("/")}
                if any(route.matches(target)[0] is not Match.NONE for route in self.router.routes):
                    await Response(status_code=307, headers={"Location": location})(scope, receive, send)
                    return
        await self.not_found(scope, receive, send)


def install(router: Router) -> None:
    """Turn off Starlette's host-built slash redirects and answer them with ``SlashRedirect``."""
    router.redirect_slashes = False
    router.default = SlashRedirect(router)
