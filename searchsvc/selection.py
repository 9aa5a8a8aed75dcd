"""What a feed or an embed shows, and the URLs that name it: the one model behind the feed routes,
the embeds and the feed links on the pages.

A ``Selection`` is the whole archive (``all``), a category (its slug) or a search (``search`` with
its query parameters). ``fetch`` reads one page of its articles, newest first; ``feed_target`` and
``feed_url`` build a feed's canonical URL (parameters in a fixed order, defaults left out), so
every document names itself the way the routes would, and ``feed_info`` describes a feed document
(title, ids, paging links) for the ``feeds`` renderers.

Page sizes (``LIMITS``) are a handful on purpose: every distinct size is a render of up to
``MAX_LIMIT`` full articles, so a few sizes keep the renders few and each of them cached. Paging
stops at ``MAX_ITEMS``, like the search API.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import QueryParams

import feeds
from feeds.model import TAG_DATE
from index.api import ANY_CHANGE, MAX_PER_PAGE, MAX_RESULT_DEPTH, SearchEngine, SearchRequest, Shows
from index.article import Article

from .config import Config
from .errors import ApiError, ErrorCode
from .params import SearchParams, bad, parse_date, parse_int, parse_list, parse_q
from .presenters import format_calendar_date, query_string

LIMITS = (10, 20, 50, 100, 200)  # the page sizes rendered; each divides MAX_ITEMS
DEFAULT_LIMIT = 50
MAX_LIMIT = LIMITS[-1]
MAX_ITEMS = MAX_RESULT_DEPTH  # paging stops here, as it does for search results
FEED_TTL_MINUTES = 30
FORMATS: dict[str, str] = {"rss": feeds.RSS_TYPE, "atom": feeds.ATOM_TYPE, "json": feeds.JSON_FEED_TYPE}
FORMAT_LABELS = {"rss": "RSS 2.0", "atom": "Atom 1.0", "json": "JSON Feed 1.1"}
ALL = "all"
SEARCH = "search"
ALL_LABEL = "Tất cả bài viết"


# --- what a feed selects --------------------------------------------------------------------------


def normalise_query(q: str) -> str:
    """NFC and single spaces: "bóng  đá" typed in NFD and NFC is one feed (one cache entry, one URL)."""
    return " ".join(unicodedata.normalize("NFC", q).split())


@dataclass(frozen=True, slots=True)
class Selection:
    """Which articles a feed or embed shows: the whole archive, a category or a search."""

    kind: str  # ALL, "category" or SEARCH
    slug: str = ""
    q: str = ""
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    @property
    def name(self) -> str:
        """The path segment: ``all``, ``search`` or the category slug."""
        return self.slug if self.kind == "category" else self.kind

    def query(self) -> dict[str, Any]:
        """The search parameters in canonical order (for ``query_string``)."""
        if self.kind != SEARCH:
            return {}
        return {
            "q": self.q,
            "category": list(self.categories),
            "source": list(self.sources),
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }

    def shows(self) -> Shows:
        """What its documents show, for the caches (``searchsvc.freshness``): a category's feed
        changes only with that category; the whole archive and a search, with any change."""
        return Shows.category(self.slug) if self.kind == "category" else ANY_CHANGE

    def html_path(self) -> str:
        """The page of the site that shows the same articles."""
        if self.kind == ALL:
            return "/"
        if self.kind == "category":
            return f"/c/{self.slug}"
        return "/search" + query_string(**self.query(), sort="newest")


def parse_selection(name: str, params: QueryParams) -> Selection:
    """``all``, ``search`` (with its query parameters) or a category slug (checked later)."""
    if name == ALL:
        return Selection(ALL)
    if name == SEARCH:
        date_from = parse_date(params, "from")
        date_to = parse_date(params, "to")
        if date_from and date_to and date_from > date_to:
            raise bad(ErrorCode.BAD_DATE_RANGE, "'from' must not be after 'to'")
        return Selection(
            SEARCH,
            q=normalise_query(parse_q(params)),
            categories=tuple(parse_list(params, "category")),
            sources=tuple(parse_list(params, "source")),
            date_from=date_from,
            date_to=date_to,
        )
    return Selection("category", slug=name)


def parse_limit(params: QueryParams, default: int = DEFAULT_LIMIT, high: int = MAX_LIMIT) -> int:
    return parse_int(params, "limit", default, ErrorCode.BAD_LIMIT, 1, high)


def canonical_limit(limit: int) -> int:
    """The smallest rendered page size that holds ``limit`` items."""
    return next(size for size in LIMITS if size >= limit)


def parse_page(params: QueryParams, limit: int, paged: bool) -> int:
    page = parse_int(params, "page", 1, ErrorCode.BAD_PAGE, 1, MAX_ITEMS)
    if page > 1 and not paged:
        raise bad(ErrorCode.RSS_NOT_PAGED,
                  "RSS feeds are not paged: use the Atom or JSON feed (?page=N) for older items")
    if page * limit > MAX_ITEMS:
        raise bad(
            ErrorCode.PAGE_TOO_DEEP,
            f"feeds can be paged through their newest {MAX_ITEMS} items only (page × limit ≤ {MAX_ITEMS})",
        )
    return page


# --- fetching articles (blocking: runs in a worker thread, through map_engine_errors) -------------


@dataclass(slots=True)
class Batch:
    articles: list[Article]
    total: int  # articles in the whole selection (for the last page)
    label: str  # category label, or a description of the search


def _category_labels(engine: SearchEngine) -> dict[str, str]:
    return {c.slug: c.value for c in engine.categories()}


def _search_label(selection: Selection, labels: dict[str, str]) -> str:
    parts = [f"Tìm kiếm «{selection.q}»" if selection.q else "Tìm kiếm"]
    if selection.categories:
        parts.append(", ".join(labels.get(c, c) for c in selection.categories))
    if selection.sources:
        parts.append("nguồn " + ", ".join(selection.sources))
    if selection.date_from or selection.date_to:
        start = format_calendar_date(selection.date_from) or "…"
        end = format_calendar_date(selection.date_to) or "…"
        parts.append(f"{start} – {end}")
    return " – ".join(parts)


def _search(engine: SearchEngine, selection: Selection, limit: int, offset: int) -> tuple[list[Article], int]:
    """Newest matches ``offset … offset+limit``; limits over the engine's per_page take several pages."""
    per_page = limit if limit <= MAX_PER_PAGE and offset % limit == 0 else MAX_PER_PAGE
    first = offset // per_page + 1
    last = (offset + limit - 1) // per_page + 1
    articles: list[Article] = []
    total = 0
    for page in range(first, last + 1):
        request = SearchRequest(
            q=selection.q,
            categories=list(selection.categories),
            sources=list(selection.sources),
            date_from=selection.date_from,
            date_to=selection.date_to,
            sort="newest",
            page=page,
            per_page=per_page,
            snippets=False,
            facets=False,
            highlight_titles=False,
            spelling_suggestion=False,
        )
        result = engine.search(request)  # a SearchError is mapped by the caller (map_engine_errors)
        total = result.total
        articles.extend(hit.article for hit in result.hits)
        if len(result.hits) < per_page:
            break
    skip = offset - (first - 1) * per_page
    return articles[skip : skip + limit], total


def fetch(engine: SearchEngine, selection: Selection, limit: int, offset: int) -> Batch:
    """The articles of one feed page, newest first; 404 for a category that does not exist."""
    if selection.kind == ALL:
        return Batch(engine.latest(None, limit, offset), int(engine.doc_count), ALL_LABEL)
    if selection.kind == "category":
        category = next((c for c in engine.categories() if c.slug == selection.slug), None)
        if category is None:
            raise ApiError(ErrorCode.CATEGORY_NOT_FOUND, f"no category {selection.slug!r}")
        return Batch(engine.latest(selection.slug, limit, offset), category.count, category.value)
    labels = _category_labels(engine) if selection.categories else {}
    articles, total = _search(engine, selection, limit, offset)
    return Batch(articles, total, _search_label(selection, labels))


# --- feed URLs and descriptions -------------------------------------------------------------------


def feed_path(selection: Selection, fmt: str) -> str:
    return f"/feeds/{selection.name}.{fmt}"


def feed_target(selection: Selection, fmt: str, limit: int = DEFAULT_LIMIT, page: int = 1) -> str:
    """Canonical path and query: parameters in a fixed order, defaults left out."""
    qs = query_string(
        **selection.query(),
        limit=None if limit == DEFAULT_LIMIT else limit,
        page=None if page == 1 else page,
    )
    return feed_path(selection, fmt) + qs


def feed_url(config: Config, selection: Selection, fmt: str, limit: int = DEFAULT_LIMIT, page: int = 1) -> str:
    """Canonical absolute URL (``feed_target`` on the configured base URL)."""
    return config.base_url + feed_target(selection, fmt, limit, page)


def feed_id(config: Config, selection: Selection) -> str:
    """Permanent id, the same for every format and page: ``tag:{host},{TAG_DATE}:feeds/{name}``."""
    host = urlsplit(config.base_url).hostname or "localhost"
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    return f"tag:{host},{TAG_DATE}:feeds/{selection.name}" + query_string(**selection.query())


def last_page(total: int, limit: int) -> int:
    return max(1, min(math.ceil(total / limit), MAX_ITEMS // limit))


def checked_last_page(total: int, limit: int, page: int) -> int:
    """``last_page``; 404 when ``page`` is past it (the feed and its browser page alike)."""
    pages = last_page(total, limit)
    if page > pages:
        raise ApiError(ErrorCode.PAGE_NOT_FOUND, f"this feed has {pages} page(s) of {limit} items")
    return pages


def feed_info(config: Config, selection: Selection, label: str, fmt: str, limit: int, page: int,
              pages: int) -> feeds.FeedInfo:
    site = config.site_title
    if selection.kind == ALL:
        description = f"Bài viết mới nhất của {site}"
    elif selection.kind == "category":
        description = f"Bài viết mới nhất chuyên mục {label} – {site}"
    else:
        description = f"Bài viết mới nhất khớp với: {label} – {site}"
    paged = fmt != "rss"

    def url(n: int) -> str:
        return feed_url(config, selection, fmt, limit, n)

    return feeds.FeedInfo(
        feed_id=feed_id(config, selection),
        title=f"{site} – {label}",
        description=description,
        self_url=url(page),
        html_url=config.base_url + selection.html_path(),
        site_title=site,
        author_name=site,
        language="vi",
        ttl=FEED_TTL_MINUTES,
        hub_url=config.websub_hub or None,
        page=page,
        first_url=url(1) if paged else None,
        prev_url=url(page - 1) if paged and page > 1 else None,
        next_url=url(page + 1) if paged and page < pages else None,
        last_url=url(pages) if paged else None,
    )


# --- links for the pages -------------------------------------------------------------------------


def search_feed_links(params: SearchParams) -> list[dict[str, str]]:
    """RSS and Atom of the search a results page shows (``SearchParams``), for autodiscovery and
    the "Theo dõi kết quả này" link. Sort and page are not part of a saved search."""
    selection = Selection(
        SEARCH,
        q=normalise_query(params.q),
        categories=tuple(params.categories),
        sources=tuple(params.sources),
        date_from=params.date_from,
        date_to=params.date_to,
    )
    qs = query_string(**selection.query())
    name = f"Tìm kiếm «{selection.q}»" if selection.q else "Tìm kiếm"
    return [
        {"type": FORMATS[fmt], "href": f"/feeds/search.{fmt}{qs}", "title": f"{name} – {label}", "label": label}
        for fmt, label in (("rss", "RSS"), ("atom", "Atom"))
    ]
