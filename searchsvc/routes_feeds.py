"""Syndication feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 of every category, of the whole archive
and of any search, an OPML subscription list, the XSL that makes feeds readable in a browser, and
the ``/feeds`` page that explains all of it.

URLs (``{fmt}`` is ``rss``, ``atom`` or ``json``)::

    /feeds/all.{fmt}                 newest articles of the whole archive
    /feeds/{category_slug}.{fmt}     newest articles of one category (unknown slug: 404)
    /feeds/search.{fmt}?q=…          newest matches of a search ("saved search"); also
                                     category=, source= (repeatable), from=, to= (YYYY-MM-DD)
    /feeds.opml                      every category feed, RSS and Atom, in OPML 2.0
    /feeds/feed.xsl                  the stylesheet named by the feeds' xml-stylesheet PI
    /feeds                           the human page: every feed URL, how to subscribe, embeds

``?limit=`` (1–200, default 50) sets the number of items. Atom and JSON feeds are paged (RFC 5005
paged feeds; JSON Feed ``next_url``): ``?page=N`` with first/previous/next/last links, page size =
limit, and paging stops at the newest 10,000 items (``page × limit ≤ 10000``, like the search
API). RSS has no paging convention readers follow, so RSS feeds are the first page only and a
``page`` other than 1 is a 400 that points to Atom/JSON.

The slugs ``all`` and ``search`` are reserved: a category with either slug has no feed of its own.

Everything is rendered by the ``feeds`` library (deterministic bytes) and served through
``feed_cache`` (per-generation cache, ETag/Last-Modified, 304, gzip, CORS).
"""

from __future__ import annotations

import base64
import hashlib
import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import feeds
from feeds.model import TAG_DATE
from index.api import MAX_PER_PAGE, MAX_RESULT_DEPTH, SearchEngine, SearchError, SearchRequest
from index.article import VN_TZ, Article

from .config import Config
from .errors import ApiError, error_response
from .feed_cache import (
    CORS_HEADERS,
    GZIP_LEVEL,
    GZIP_LEVEL_FAST,
    Document,
    make_document,
    respond,
    serve_cached,
)
from .middleware import BASE_SECURITY_HEADERS, HeaderPolicy
from .params import bad, parse_date, parse_int, parse_list, parse_q
from .presenters import format_count, query_string
from .services import engine_call, get_engine, services

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ITEMS = MAX_RESULT_DEPTH  # paging stops here, as it does for search results
FEED_TTL_MINUTES = 30
FORMATS: dict[str, str] = {"rss": feeds.RSS_TYPE, "atom": feeds.ATOM_TYPE, "json": feeds.JSON_FEED_TYPE}
# What a browser tab gets instead (same bytes): see feed_cache.respond.
VIEW_TYPES: dict[str, str] = {
    "rss": "application/xml; charset=utf-8",
    "atom": "application/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
FORMAT_LABELS = {"rss": "RSS 2.0", "atom": "Atom 1.0", "json": "JSON Feed 1.1"}
RENDERERS: dict[str, Callable[..., bytes]] = {
    "rss": feeds.render_rss, "atom": feeds.render_atom, "json": feeds.render_json,
}  # fmt: skip
ALL = "all"
SEARCH = "search"
ALL_LABEL = "Tất cả bài viết"
# Every distinct query is a search plus a render: rate-limited like /search (see app.py).
SEARCH_PATHS = ("/feeds/search.rss", "/feeds/search.atom", "/feeds/search.json", "/embed/search")
STYLESHEET_URL = "/feeds/feed.xsl"  # relative on purpose: browsers only apply a same-origin XSL
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=VN_TZ)  # OPML dateCreated of an empty archive


def _stylesheet_style_hash() -> str:
    """CSP hash source for the one inline ``<style>`` the XSL writes into its HTML view."""
    tree = etree.parse(str(feeds.STYLESHEET_PATH), etree.XMLParser(resolve_entities=False, no_network=True))
    style = tree.find(".//style")
    text = style.text if style is not None and style.text else ""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# Feed documents opened in a browser become HTML through the XSL. CSP governs the XSL load with
# script-src (so 'self'), and the only style is the XSL's own <style>, allowed by its hash; feed
# content reaches that page as escaped text only. Nothing may frame a feed.
FEED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' " + _stylesheet_style_hash() + "; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADER_POLICIES: dict[str, HeaderPolicy] = {
    "/feeds/": HeaderPolicy(
        {**BASE_SECURITY_HEADERS, "Content-Security-Policy": FEED_CSP, "X-Frame-Options": "DENY"}
    ),
}


# --- what a feed selects ----------------------------------------------------------------------------


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

    def html_path(self) -> str:
        """The page of the site that shows the same articles."""
        if self.kind == ALL:
            return "/"
        if self.kind == "category":
            return f"/c/{self.slug}"
        return "/search" + query_string(**self.query(), sort="newest")


def parse_selection(name: str, params: Any) -> Selection:
    """``all``, ``search`` (with its query parameters) or a category slug (checked later)."""
    if name == ALL:
        return Selection(ALL)
    if name == SEARCH:
        date_from = parse_date(params, "from")
        date_to = parse_date(params, "to")
        if date_from and date_to and date_from > date_to:
            raise bad("bad_date_range", "'from' must not be after 'to'")
        return Selection(
            SEARCH,
            q=normalise_query(parse_q(params)),
            categories=tuple(parse_list(params, "category")),
            sources=tuple(parse_list(params, "source")),
            date_from=date_from,
            date_to=date_to,
        )
    return Selection("category", slug=name)


def parse_limit(params: Any, default: int = DEFAULT_LIMIT, high: int = MAX_LIMIT) -> int:
    return parse_int(params, "limit", default, "bad_limit", 1, high)


def parse_page(params: Any, limit: int, paged: bool) -> int:
    page = parse_int(params, "page", 1, "bad_page", 1, MAX_ITEMS)
    if page > 1 and not paged:
        raise bad("rss_not_paged", "RSS feeds are not paged: use the Atom or JSON feed (?page=N) for older items")
    if page * limit > MAX_ITEMS:
        raise bad(
            "page_too_deep",
            f"feeds can be paged through their newest {MAX_ITEMS} items only (page × limit ≤ {MAX_ITEMS})",
        )
    return page


# --- fetching articles (blocking: runs in the thread pool) ----------------------------------------


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
        start = selection.date_from.strftime("%d/%m/%Y") if selection.date_from else "…"
        end = selection.date_to.strftime("%d/%m/%Y") if selection.date_to else "…"
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
        try:
            result = engine.search(request)
        except SearchError as exc:
            raise ApiError(400, exc.code, str(exc)) from None
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
            raise ApiError(404, "category_not_found", f"no category {selection.slug!r}")
        return Batch(engine.latest(selection.slug, limit, offset), category.count, category.value)
    labels = _category_labels(engine) if selection.categories else {}
    articles, total = _search(engine, selection, limit, offset)
    return Batch(articles, total, _search_label(selection, labels))


# --- feed documents --------------------------------------------------------------------------------


def feed_path(selection: Selection, fmt: str) -> str:
    return f"/feeds/{selection.name}.{fmt}"


def feed_url(config: Config, selection: Selection, fmt: str, limit: int = DEFAULT_LIMIT, page: int = 1) -> str:
    """Canonical absolute URL: parameters in a fixed order, defaults left out."""
    qs = query_string(
        **selection.query(),
        limit=None if limit == DEFAULT_LIMIT else limit,
        page=None if page == 1 else page,
    )
    return config.base_url + feed_path(selection, fmt) + qs


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
        stylesheet_url=STYLESHEET_URL if fmt != "json" else None,
        page=page,
        first_url=url(1) if paged else None,
        prev_url=url(page - 1) if paged and page > 1 else None,
        next_url=url(page + 1) if paged and page < pages else None,
        last_url=url(pages) if paged else None,
    )


def render_feed(engine: SearchEngine, config: Config, selection: Selection, fmt: str, limit: int,
                page: int) -> Document:
    batch = fetch(engine, selection, limit, (page - 1) * limit)
    pages = last_page(batch.total, limit)
    if page > pages:
        raise ApiError(404, "page_not_found", f"this feed has {pages} page(s) of {limit} items")
    info = feed_info(config, selection, batch.label, fmt, limit, page, pages)
    body = RENDERERS[fmt](info, batch.articles, config.base_url)
    updated = feeds.feed_updated(info, batch.articles) if batch.articles else None
    level = GZIP_LEVEL_FAST if selection.kind == SEARCH else GZIP_LEVEL
    return make_document(body, FORMATS[fmt] + "; charset=utf-8", updated, level)


# --- handlers --------------------------------------------------------------------------------------


async def current_generation(request: Request) -> tuple[SearchEngine, str]:
    """The engine (503 while there is none) and its generation, read before any rendering."""
    engine = await get_engine(request)
    try:
        return engine, str(engine.generation)
    except Exception:  # the index is being replaced under us: like no index at all
        raise ApiError(503, "not_ready", "the search index is being replaced", {"Retry-After": "5"}) from None


def with_cors(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Errors carry ``Access-Control-Allow-Origin`` too, so a cross-origin widget can read a 404."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            response = error_response(request, exc.status, exc.code, exc.message, exc.headers)
        except HTTPException as exc:
            if exc.status_code < 400:
                raise
            response = error_response(request, exc.status_code, "not_found" if exc.status_code == 404
                                      else "http_error", str(exc.detail), exc.headers)
        response.headers.update(CORS_HEADERS)
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@with_cors
async def feed(request: Request) -> Response:
    """One feed document: ``/feeds/{name}.{fmt}``."""
    fmt = request.path_params["fmt"]
    if fmt not in FORMATS:
        raise ApiError(404, "not_found", "feeds are .rss, .atom or .json")
    params = request.query_params
    selection = parse_selection(request.path_params["name"], params)
    limit = parse_limit(params)
    page = parse_page(params, limit, paged=fmt != "rss")
    engine, generation = await current_generation(request)
    config = services(request).config

    def render() -> Document:
        return engine_call(render_feed, engine, config, selection, fmt, limit, page)

    key = (generation, "feed", fmt, selection, limit, page)
    return await serve_cached(request, key, render, view_type=VIEW_TYPES[fmt])


def category_rows(config: Config, engine: SearchEngine) -> list[tuple[str, str, str, str]]:
    rows = []
    for c in engine.categories():
        if c.slug in (ALL, SEARCH):
            continue
        sel = Selection("category", slug=c.slug)
        rows.append((c.value, feed_url(config, sel, "rss"), feed_url(config, sel, "atom"),
                     config.base_url + sel.html_path()))
    return rows


def render_opml(engine: SearchEngine, config: Config) -> Document:
    newest = engine.latest(None, 1, 0)
    created = newest[0].published if newest else EMPTY_FEED_DATE
    everything = Selection(ALL)
    rows = [(ALL_LABEL, feed_url(config, everything, "rss"), feed_url(config, everything, "atom"),
             config.base_url + "/")]
    rows += category_rows(config, engine)
    body = feeds.render_opml(f"{config.site_title} – nguồn tin theo chuyên mục", config.site_title, rows, created)
    return make_document(body, feeds.OPML_TYPE + "; charset=utf-8", feeds.vn_time(created) if newest else None)


@with_cors
async def opml(request: Request) -> Response:
    engine, generation = await current_generation(request)
    config = services(request).config
    return await serve_cached(request, (generation, "opml"), lambda: engine_call(render_opml, engine, config))


_STYLESHEET: Document | None = None


@with_cors
async def stylesheet(request: Request) -> Response:
    """The XSL named by every RSS/Atom document (``text/xsl``), same origin as the feeds."""
    global _STYLESHEET
    if _STYLESHEET is None:
        _STYLESHEET = make_document(feeds.STYLESHEET_PATH.read_bytes(), "text/xsl; charset=utf-8")
    return respond(request, _STYLESHEET)


def embed_snippets(config: Config, slug: str) -> dict[str, str]:
    """Copy-paste HTML for both embeds of one category (shown on /feeds)."""
    base = config.base_url
    return {
        "iframe": (
            f'<iframe src="{base}/embed/{slug}?limit=5&amp;theme=light" title="Tin mới – {config.site_title}"'
            ' width="360" height="420" loading="lazy"></iframe>'
        ),
        "script": (
            f'<script src="{base}/embed.js" data-category="{slug}" data-limit="5" data-theme="light" async></script>'
        ),
    }


def render_feeds_page(request: Request, engine: SearchEngine, config: Config) -> Document:
    def formats(sel: Selection) -> list[dict[str, str]]:
        return [{"fmt": f, "label": FORMAT_LABELS[f], "url": feed_url(config, sel, f), "type": FORMATS[f]}
                for f in FORMATS]

    categories = [
        {"label": c.value, "slug": c.slug, "count": format_count(c.count), "url": f"/c/{c.slug}",
         "feeds": formats(Selection("category", slug=c.slug))}
        for c in engine.categories() if c.slug not in (ALL, SEARCH)
    ]  # fmt: skip
    example_slug = next((c["slug"] for c in categories if c["slug"] == "the-thao"),
                        categories[0]["slug"] if categories else "the-thao")
    example_search = Selection(SEARCH, q="bóng đá")
    context = {
        "all_feeds": formats(Selection(ALL)),
        "categories": categories,
        "opml_url": config.base_url + "/feeds.opml",
        "search_example": {fmt: feed_url(config, example_search, fmt) for fmt in FORMATS},
        "example_slug": example_slug,
        "snippets": embed_snippets(config, example_slug),
        "default_limit": DEFAULT_LIMIT,
        "max_limit": MAX_LIMIT,
        "max_items": format_count(MAX_ITEMS),
        "hub": config.websub_hub,
    }
    html = services(request).templates.env.get_template("feeds.html").render(context)
    return make_document(html.encode("utf-8"), "text/html; charset=utf-8")


async def feeds_page(request: Request) -> Response:
    """``/feeds``: every feed URL (absolute, copyable), how to subscribe, the embed snippets."""
    engine, generation = await current_generation(request)
    config = services(request).config
    return await serve_cached(request, (generation, "page"), lambda: engine_call(render_feeds_page, request, engine, config))


# --- links for the pages ---------------------------------------------------------------------------


def search_feed_links(params: Any) -> list[dict[str, str]]:
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


routes = [
    Route("/feeds", feeds_page, methods=["GET"], name="feeds_page"),
    Route("/feeds.opml", opml, methods=["GET"], name="feeds_opml"),
    Route("/feeds/feed.xsl", stylesheet, methods=["GET"], name="feeds_stylesheet"),
    Route("/feeds/{name}.{fmt}", feed, methods=["GET"], name="feed"),
]
