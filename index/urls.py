"""An article's own ``url`` as a link: one check for every place it is shown.

The ``url`` of an article comes from the corpus as it was written, and it becomes a link on the
article page, the API's ``source_url``, every feed's item link and the embeds. Each surface once
had its own check, and they disagreed: ``https:\\\\evil.example\\x`` and ``https:evil.example``
passed the page's (a browser reads both as ``https://evil.example/…``) while feeds refused them,
and feeds kept ``"``, ``<`` and ``>`` raw (escaped as XML, still not a valid URI). ``web_url`` is
the one check; it lives here because the URL is article data, and both ``feeds`` and
``searchsvc`` may import ``index``.

Refused, not repaired, whatever could be read two ways: a URL that is not ``http``/``https``
with ``//`` and a host, one with control characters, backslashes or line/other separators,
user-info (``https://good.example@evil.example``), or a host that is not a valid name or IP
literal. Repairing ``http:\\x14//x`` by dropping the control character would *make* a URL.
Everything else is kept and written as a strict URI: the host in IDNA (punycode) form, and the
path, query and fragment percent-encoded (UTF-8) where RFC 3986 does not allow the character
(spaces, ``"<>``, ``{}|^```, non-ASCII; a ``%`` that starts no escape).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import quote, urlsplit, urlunsplit

MAX_URL_CHARS = 2048  # longer is not a link anyone wrote by hand; nothing unbounded is repeated per item

_WEB_SCHEMES = ("http", "https")
_STARTS_WITH_AUTHORITY = re.compile(r"[A-Za-z]+://[^/]")
# C0 and C1 controls and DEL; browsers silently drop some of them (tab, newline) from URLs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986: pchar and "/" for the path, plus "?" for query and fragment; "%" for existing escapes.
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def _encode(part: str, safe: str) -> str:
    return quote(_LONE_PERCENT.sub("%25", part), safe=safe)


def _host(hostname: str) -> str | None:
    """The host as written in a URI: IDNA for names, brackets for IPv6, or None if invalid."""
    if ":" in hostname:
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]"
        except ValueError:
            return None
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return ascii_host if _HOST.fullmatch(ascii_host) else None


def web_url(url: str | None) -> str | None:
    """``url`` as an absolute http(s) URI safe to use as a link anywhere, or None."""
    url = (url or "").strip(" \t\n\r\f\v")  # ASCII whitespace around it only; controls are refused
    if not url or len(url) > MAX_URL_CHARS or "\\" in url or _CONTROL.search(url):
        return None
    url = unicodedata.normalize("NFC", url)
    if not _STARTS_WITH_AUTHORITY.match(url) or any(ch.isspace() and ch != " " for ch in url):
        return None
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:  # a malformed IPv6 literal or port
        return None
    if parts.scheme.lower() not in _WEB_SCHEMES or not hostname or "@" in parts.netloc:
        return None
    host = _host(hostname)
    if host is None:
        return None
    try:
        return urlunsplit((
            parts.scheme.lower(),
            host if port is None else f"{host}:{port}",
            _encode(parts.path, _PATH_SAFE),
            _encode(parts.query, _QUERY_SAFE),
            _encode(parts.fragment, _QUERY_SAFE),
        ))
    except UnicodeEncodeError:  # a lone surrogate
        return None
