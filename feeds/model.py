"""Feed metadata and the per-article identifiers every format shares.

``feeds`` knows nothing of HTTP or of the index: the service fills a :class:`FeedInfo` with the
absolute URLs of *this* document (one ``FeedInfo`` per format and page, because ``self_url`` and
the paging URLs differ between RSS, Atom and JSON) and passes the articles in display order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlsplit

from index.article import VN_TZ, Article, as_vietnam_time
from index.urls import web_url

# Date part of the tag: URIs (RFC 4151) used as item ids.  It is part of every guid, so it must
# never change once feeds are public: changing it makes every reader re-show every article.
TAG_DATE = "2024"

_WEB_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """Everything about one feed document that is not an article.

    All URLs must be absolute.  ``feed_id`` must stay the same for the life of the feed (it is
    the Atom ``<id>`` and the JSON Feed identity); ``self_url`` is the URL of this very document.
    Paging URLs (RFC 5005 "paged feeds", JSON Feed ``next_url``) are for the same format as the
    document.  ``page`` is informational for the caller and is not written out.
    """

    feed_id: str
    title: str
    description: str
    self_url: str
    html_url: str
    site_title: str
    author_name: str
    language: str = "vi"
    ttl: int = 30
    hub_url: str | None = None
    icon_url: str | None = None
    page: int | None = None
    first_url: str | None = None
    next_url: str | None = None
    prev_url: str | None = None
    last_url: str | None = None
    # Atom requires a feed <updated>; with no article there is no "newest" date to use, and
    # "now" would break byte-identical output, so a fixed date is used instead.
    updated_fallback: datetime = field(
        default_factory=lambda: datetime(2000, 1, 1, 0, 0, tzinfo=VN_TZ)
    )


def vn_time(value: datetime) -> datetime:
    """``value`` in Asia/Ho_Chi_Minh (+07:00), whole seconds.

    Every format shows the same instant with the same offset; sub-second precision is dropped
    because RSS cannot carry it and the corpus has none.
    """
    return as_vietnam_time(value).astimezone(VN_TZ).replace(microsecond=0)


def feed_updated(info: FeedInfo, articles: list[Article]) -> datetime:
    """The newest article's date, or ``info.updated_fallback`` for an empty feed (never "now")."""
    if not articles:
        return vn_time(info.updated_fallback)
    return max(vn_time(a.published) for a in articles)


def _require_base(base_url: str) -> tuple[str, str]:
    parts = urlsplit(base_url)
    if parts.scheme not in _WEB_SCHEMES or not parts.hostname:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
    return base_url.rstrip("/"), parts.hostname


def item_link(article: Article, base_url: str) -> str:
    """The article's own http(s) ``url`` (``index.urls.web_url``, as on every other surface),
    else our page for it: ``{base}/articles/{id}``."""
    base, _ = _require_base(base_url)
    path = quote(article.id)
    if any(segment in (".", "..") for segment in article.id.split("/")):
        # Readers resolve dot segments: "a/../../x" would link outside /articles/ (or the base path).
        path = quote(article.id, safe="")
    return web_url(article.url) or f"{base}/articles/{path}"


def item_guid(article: Article, base_url: str) -> str:
    """A permanent, unique id for the article: ``tag:{host},{TAG_DATE}:articles/{id}``.

    Built from the article id rather than its link so it survives a corrected ``url`` in the
    corpus and stays unique when two articles share a source URL.  Used as RSS
    ``<guid isPermaLink="false">``, Atom ``<id>`` and JSON Feed ``id``.
    """
    _, host = _require_base(base_url)
    try:
        authority = host.encode("idna").decode("ascii")
    except UnicodeError:
        authority = quote(host, safe="")
    return f"tag:{authority},{TAG_DATE}:articles/{quote(article.id, safe='')}"
