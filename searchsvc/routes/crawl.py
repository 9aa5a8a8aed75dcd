"""What browsers and crawlers read to find the archive: ``/robots.txt``, the sitemaps and the
OpenSearch description.

URLs::

    /robots.txt              where crawlers may go (not into searches, the API or the embeds),
                             and where the sitemap index is
    /sitemap.xml             the sitemap index: one sitemap per month of publication
    /sitemaps/YYYY-MM.xml    the articles published that month (Vietnamese time): each article
                             page's URL, with its publication time as lastmod
    /sitemaps/YYYY-MM-N.xml  part N (2, 3, ...) of a month that holds more articles than one file
                             may list (``Config.sitemap_urls``; feeds.sitemap says why that bound)
    /opensearch.xml          the OpenSearch description: the search page, the Atom and RSS search
                             feeds, and suggestions as ``application/x-suggestions+json``

Why one sitemap per month: an archive grows at its newest end, so a crawler re-reads only the
current month's file while the others stay byte-identical and revalidate as 304; and a month's
file costs what the month holds (``SearchEngine.published_between``: ids and dates of that range,
never the articles), however large the archive. The index's part counts come from the month
facet of one filter-only search.

Every document is served like a feed (``searchsvc.http.feed_cache``): rendered once per
generation, kept across commits that change nothing it shows (a month's file shows its month:
``Shows.month``), with a strong ETag, 304, gzip, and open CORS.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import feeds
from feeds import opensearch, sitemap
from index.api import MAX_DATE, MIN_DATE, SearchEngine, SearchRequest, Shows
from index.article import VN_TZ

from ..config import Config
from ..engine_calls import current_generation, map_engine_errors
from ..errors import ApiError, ErrorCode
from ..http.cors import with_cors
from ..http.feed_cache import Document, make_document, respond, serve_cached
from ..presenters import absolute, article_path
from ..state import app_state

logger = logging.getLogger("searchsvc")

SITEMAP_MEDIA_TYPE = sitemap.SITEMAP_TYPE + "; charset=utf-8"
# Served through feed_cache.respond, which picks the encoding itself: the app's gzip layer leaves
# these paths alone, as it does the feeds.
OWN_ENCODING_PREFIXES = ("/robots.txt", "/opensearch.xml", "/sitemap")
_MONTH_FILE = re.compile(r"(\d{4})-(\d{2})(?:-([1-9][0-9]{0,5}))?")


# --- robots.txt --------------------------------------------------------------------------------

# Search pages (/search and /?q=, and the search feeds) are an infinite space: every query,
# filter, sort and page is another URL of the same articles, so crawlers are kept off them and
# find every article through the sitemaps and the category pages instead. The API, the embeds
# (partner sites' copies of our lists) and the operations endpoints are not pages at all. ("/?q="
# rather than "/?": parsers such as Python's urllib.robotparser read "/?" as "/", the whole site.)
ROBOTS_DISALLOW = ("/search", "/?q=", "/feeds/search.", "/api/", "/embed", "/healthz", "/readyz", "/metrics")


@functools.lru_cache(maxsize=4)
def robots_document(base_url: str) -> Document:
    lines = [
        "User-agent: *",
        *(f"Disallow: {path}" for path in ROBOTS_DISALLOW),
        "",
        f"Sitemap: {base_url}/sitemap.xml",
        "",
    ]
    return make_document("\n".join(lines).encode("utf-8"), "text/plain; charset=utf-8")


async def robots(request: Request) -> Response:
    return respond(request, robots_document(app_state(request).config.base_url))


# --- OpenSearch ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def opensearch_document(base_url: str, site_title: str) -> Document:
    terms = "?q={searchTerms}"
    templates = [
        opensearch.Template("text/html", f"{base_url}/search{terms}"),
        opensearch.Template(feeds.ATOM_TYPE, f"{base_url}/feeds/search.atom{terms}"),
        opensearch.Template(feeds.RSS_TYPE, f"{base_url}/feeds/search.rss{terms}"),
        opensearch.Template(
            opensearch.SUGGESTIONS_TYPE, f"{base_url}/api/suggest{terms}&format=opensearch", rel="suggestions"
        ),
        opensearch.Template(opensearch.OPENSEARCH_TYPE, f"{base_url}/opensearch.xml", rel="self"),
    ]
    body = opensearch.render_description(
        site_title,
        f"Tìm kiếm trong {site_title}",
        templates,
        language="vi",
        image_url=f"{base_url}/static/favicon.svg",
        example="bóng đá",
    )
    return make_document(body, opensearch.OPENSEARCH_TYPE + "; charset=utf-8")


@with_cors
async def opensearch_description(request: Request) -> Response:
    config = app_state(request).config
    return respond(request, opensearch_document(config.base_url, config.site_title))


# --- sitemaps ------------------------------------------------------------------------------------


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" in Vietnamese time (the month facet's months)."""
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=VN_TZ)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=VN_TZ)
    return start, end


def month_file(month: str, part: int) -> str:
    """The path of part ``part`` of a month: ``/sitemaps/2005-03.xml``, ``/sitemaps/2005-03-2.xml``."""
    return f"/sitemaps/{month}.xml" if part == 1 else f"/sitemaps/{month}-{part}.xml"


def parse_month_file(name: str) -> tuple[str, int]:
    """(month, part) of a sitemap file name, 404 for anything no index names: a malformed name, a
    month outside the years an article may have, an explicit part 1 (its name has no part)."""
    match = _MONTH_FILE.fullmatch(name)
    if match is None or not 1 <= int(match.group(2)) <= 12 or not MIN_DATE.year <= int(match.group(1)) <= MAX_DATE.year:
        raise ApiError(ErrorCode.NOT_FOUND, "sitemaps are /sitemaps/YYYY-MM.xml (and -N.xml for more parts)")
    part = int(match.group(3) or 1)
    if match.group(3) == "1":
        raise ApiError(ErrorCode.NOT_FOUND, f"part 1 is {month_file(name[:7], 1)}")
    return name[:7], part


def month_counts(engine: SearchEngine) -> list[tuple[str, int]]:
    """Every month of publication with its article count, oldest first: the month facet of one
    filter-only search (both engines compute it for the search pages' timeline anyway)."""
    result = engine.search(
        SearchRequest(q="", per_page=1, snippets=False, facets=True, highlight_titles=False, spelling_suggestion=False)
    )
    return sorted((f.value, f.count) for f in result.facets.get("month", []) if f.count > 0)


def render_index(engine: SearchEngine, config: Config) -> Document:
    counts = month_counts(engine)
    if not counts:  # a sitemap index names one sitemap at least: an empty archive has none
        raise ApiError(ErrorCode.NOT_FOUND, "the archive holds no articles yet")
    entries: list[sitemap.Entry] = []
    for month, count in counts:
        for part in range(1, math.ceil(count / config.sitemap_urls) + 1):
            entries.append((config.base_url + month_file(month, part), None))
    return make_document(sitemap.render_index(entries[: sitemap.MAX_URLS]), SITEMAP_MEDIA_TYPE)


def render_month(engine: SearchEngine, config: Config, month: str, part: int) -> Document:
    start, end = month_bounds(month)
    per_file = config.sitemap_urls
    listed = engine.published_between(start, end, per_file, (part - 1) * per_file)
    if not listed:
        raise ApiError(ErrorCode.NOT_FOUND, f"no sitemap {month_file(month, part)}")
    entries: list[sitemap.Entry] = []
    for item in listed:
        loc = absolute(config.base_url, article_path(item.id))
        if sitemap.loc_fits(loc):
            entries.append((loc, item.published))
    if len(entries) < len(listed):  # an id so long that its URL is not one a sitemap may hold
        logger.warning(
            "sitemap %s: %d article URL(s) of 2,048 characters or more left out",
            month_file(month, part),
            len(listed) - len(entries),
        )
    if not entries:
        # Every URL of this part left out (only ever with ids hundreds of characters long): the
        # index names the file, and a sitemap lists one URL at least, so it lists the home page.
        entries.append((config.base_url + "/", None))
    newest = max(item.published for item in listed)
    return make_document(sitemap.render_urlset(entries), SITEMAP_MEDIA_TYPE, newest)


@with_cors
async def sitemap_index(request: Request) -> Response:
    engine, generation = await current_generation(request)
    config = app_state(request).config
    return await serve_cached(
        request,
        app_state(request).feed_cache,
        (generation, "sitemap-index"),
        lambda: map_engine_errors(render_index, engine, config),
    )


@with_cors
async def month_sitemap(request: Request) -> Response:
    month, part = parse_month_file(request.path_params["name"])
    engine, generation = await current_generation(request)
    config = app_state(request).config
    return await serve_cached(
        request,
        app_state(request).feed_cache,
        (generation, "sitemap", month, part),
        lambda: map_engine_errors(render_month, engine, config, month, part),
        shows=Shows.month(month),
    )


routes = [
    Route("/robots.txt", robots, methods=["GET"], name="robots"),
    Route("/opensearch.xml", opensearch_description, methods=["GET"], name="opensearch"),
    Route("/sitemap.xml", sitemap_index, methods=["GET"], name="sitemap_index"),
    Route("/sitemaps/{name}.xml", month_sitemap, methods=["GET"], name="sitemap"),
]
