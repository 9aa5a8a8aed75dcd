"""Syndication feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 of every category, of the whole archive
and of any search, the page a browser tab gets at a feed's URL, an OPML subscription list, and the
``/feeds`` page that explains all of it.

URLs (``{fmt}`` is ``rss``, ``atom`` or ``json``)::

    /feeds/all.{fmt}                 newest articles of the whole archive
    /feeds/{category_slug}.{fmt}     newest articles of one category (unknown slug: 404)
    /feeds/search.{fmt}?q=…          newest matches of a search ("saved search"); also
                                     category=, source= (repeatable), from=, to= (YYYY-MM-DD)
    /feeds.opml                      every category feed, RSS and Atom, in OPML 2.0
    /feeds                           the human page: every feed URL, how to subscribe, embeds

A browser tab that opens a feed URL (``feed_cache.is_browser_navigation``: ``Sec-Fetch-Dest:
document``, or an Accept asking for HTML and naming no feed type) gets that feed's HTML page
(``searchsvc.feed_page``); feed readers, ``curl`` and ``fetch()`` get the feed document. Both are
cached documents with their own ETags, and both carry ``Vary: Accept-Encoding, Accept,
Sec-Fetch-Dest``.

``?limit=`` sets the number of items: 10, 20, 50 (the default), 100 or 200. Any other value from 1
to 200 is answered ``301`` to the same feed with the next size up (and the page holding the first
item asked for), because every distinct size is a render of up to 200 full articles: a handful of
sizes keeps the renders a handful, each cached, and every document served names its own URL.
Atom and JSON feeds are paged (RFC 5005 paged feeds; JSON Feed ``next_url``): ``?page=N`` with
first/previous/next/last links, page size = limit, and paging stops at the newest 10,000 items
(``page × limit ≤ 10000``, like the search API). RSS has no paging convention readers follow, so
RSS feeds are the first page only and a ``page`` other than 1 is a 400 that points to Atom/JSON.

The slugs ``all`` and ``search`` are reserved: a category with either slug has no feed of its own.

What a feed selects, its URLs and its paging are ``searchsvc.selection``; everything is rendered
by the ``feeds`` library (deterministic bytes) and served through ``searchsvc.http.feed_cache``
(per-generation cache, ETag/Last-Modified, 304, gzip) with open CORS (``searchsvc.http.cors``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import feeds
from index.api import SearchEngine
from index.article import VN_TZ

from ..config import Config
from ..engine_calls import current_generation, map_engine_errors
from ..errors import ApiError, ErrorCode
from ..feed_page import render_feed_page
from ..http.cors import CORS_HEADERS, with_cors
from ..http.feed_cache import (
    CACHE_CONTROL,
    NAVIGATION_VARY,
    Document,
    is_browser_navigation,
    make_document,
    serve_cached,
)
from ..presenters import format_count
from ..selection import (
    ALL,
    ALL_LABEL,
    DEFAULT_LIMIT,
    FORMAT_LABELS,
    FORMATS,
    LIMITS,
    MAX_ITEMS,
    SEARCH,
    Selection,
    canonical_limit,
    checked_last_page,
    feed_info,
    feed_target,
    feed_url,
    fetch,
    parse_limit,
    parse_page,
    parse_selection,
)
from ..state import app_state

RENDERERS: dict[str, Callable[..., bytes]] = {
    "rss": feeds.render_rss, "atom": feeds.render_atom, "json": feeds.render_json,
}  # fmt: skip
EMPTY_FEED_DATE = datetime(2000, 1, 1, tzinfo=VN_TZ)  # OPML dateCreated of an empty archive
URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # characters a URL may hold as they are (RFC 3986 reserved, and "%")


def render_feed(engine: SearchEngine, config: Config, selection: Selection, fmt: str, limit: int,
                page: int) -> Document:
    batch = fetch(engine, selection, limit, (page - 1) * limit)
    pages = checked_last_page(batch.total, limit, page)
    info = feed_info(config, selection, batch.label, fmt, limit, page, pages)
    body = RENDERERS[fmt](info, batch.articles, config.base_url)
    updated = feeds.feed_updated(info, batch.articles) if batch.articles else None
    return make_document(body, FORMATS[fmt] + "; charset=utf-8", updated)


# --- handlers --------------------------------------------------------------------------------------


@with_cors
async def feed(request: Request) -> Response:
    """One feed document: ``/feeds/{name}.{fmt}``; for a browser tab, the feed's page."""
    fmt = request.path_params["fmt"]
    if fmt not in FORMATS:
        raise ApiError(ErrorCode.NOT_FOUND, "feeds are .rss, .atom or .json")
    params = request.query_params
    selection = parse_selection(request.path_params["name"], params)
    limit = parse_limit(params)
    page = parse_page(params, limit, paged=fmt != "rss")
    size = canonical_limit(limit)
    if size != limit:
        # Relative, never built from the Host header; permanent, so readers store the new URL.
        target = feed_target(selection, fmt, size, (page - 1) * limit // size + 1)
        return Response(status_code=301, headers={"Location": target, "Cache-Control": CACHE_CONTROL,
                                                  **CORS_HEADERS})
    engine, generation = await current_generation(request)
    state = app_state(request)
    config = state.config
    if is_browser_navigation(request.headers):
        env = state.templates.env

        def render_page() -> Document:
            return map_engine_errors(render_feed_page, env, engine, config, selection, fmt, limit, page)

        return await serve_cached(request, state.feed_cache, (generation, "feed-page", fmt, selection, limit, page),
                                  render_page, vary=NAVIGATION_VARY, shows=selection.shows())

    def render() -> Document:
        return map_engine_errors(render_feed, engine, config, selection, fmt, limit, page)

    key = (generation, "feed", fmt, selection, limit, page)
    return await serve_cached(request, state.feed_cache, key, render, websub_links(config, selection, fmt, limit, page),
                              vary=NAVIGATION_VARY, shows=selection.shows())


def websub_links(config: Config, selection: Selection, fmt: str, limit: int, page: int) -> dict[str, str] | None:
    """WebSub discovery in HTTP headers (``Link: <hub>; rel="hub", <self>; rel="self"``), the
    way a subscriber of any format (JSON Feed has no link elements) finds the hub and the topic;
    the self URL is the one the document names. None when no hub is configured."""
    if not config.websub_hub:
        return None
    topic = quote(feed_url(config, selection, fmt, limit, page), safe=URL_SAFE)  # ASCII, as a header must be
    return {"Link": f'<{config.websub_hub}>; rel="hub", <{topic}>; rel="self"'}


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
    state = app_state(request)
    return await serve_cached(request, state.feed_cache, (generation, "opml"),
                              lambda: map_engine_errors(render_opml, engine, state.config))


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

    listed = [c for c in engine.categories() if c.slug not in (ALL, SEARCH)]
    categories = [
        {"label": c.value, "slug": c.slug, "count": format_count(c.count), "url": f"/c/{c.slug}",
         "feeds": formats(Selection("category", slug=c.slug))}
        for c in listed
    ]  # fmt: skip
    slugs = [c.slug for c in listed]
    example_slug = "the-thao" if "the-thao" in slugs or not slugs else slugs[0]
    example_search = Selection(SEARCH, q="bóng đá")
    context = {
        "all_feeds": formats(Selection(ALL)),
        "categories": categories,
        "opml_url": config.base_url + "/feeds.opml",
        "search_example": {fmt: feed_url(config, example_search, fmt) for fmt in FORMATS},
        "example_slug": example_slug,
        "snippets": embed_snippets(config, example_slug),
        "default_limit": DEFAULT_LIMIT,
        "limits": ", ".join(str(size) for size in LIMITS),
        "max_items": format_count(MAX_ITEMS),
        "hub": config.websub_hub,
    }
    html = app_state(request).templates.env.get_template("feeds.html").render(context)
    return make_document(html.encode("utf-8"), "text/html; charset=utf-8")


async def feeds_page(request: Request) -> Response:
    """``/feeds``: every feed URL (absolute, copyable), how to subscribe, the embed snippets."""
    engine, generation = await current_generation(request)
    state = app_state(request)
    return await serve_cached(request, state.feed_cache, (generation, "page"),
                              lambda: map_engine_errors(render_feeds_page, request, engine, state.config))


routes = [
    Route("/feeds", feeds_page, methods=["GET"], name="feeds_page"),
    Route("/feeds.opml", opml, methods=["GET"], name="feeds_opml"),
    Route("/feeds/{name}.{fmt}", feed, methods=["GET"], name="feed"),
]
