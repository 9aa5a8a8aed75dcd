"""Server-rendered pages: home, search results, article, category listing.

Pages work without JavaScript: every control (facets, dates, sort, pages, the timeline bars) is a
plain link or GET form that keeps the rest of the query. Values reach templates as data and are
escaped by Jinja2's autoescape; the only markup passed through is the ``<mark>`` highlighting built
(and escaped) by ``presenters.highlight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from index.api import MAX_RESULT_DEPTH, SORTS, FacetValue, Hit, SearchEngine, SearchResult, Shows
from index.article import Article
from index.urls import web_url

from ..admission import Overloaded
from ..engine_calls import fetch_article, run_engine, run_search
from ..errors import ApiError, ErrorCode
from ..freshness import shows
from ..http.caching import NO_STORE
from ..params import SearchParams, parse_int, parse_q, parse_search
from ..presenters import (
    article_path,
    article_view,
    format_calendar_date,
    format_count,
    format_date,
    highlight,
    query_string,
)
from ..selection import search_feed_links
from ..share import article_share
from ..state import app_state
from ..timeline import Timeline, build_timeline

RESULTS_PER_PAGE = 10
CATEGORY_PAGE_SIZE = 20
HOME_LATEST = 8
RELATED_ON_PAGE = 5  # the "Bài liên quan" list of an article page

SORT_LABELS = {"relevance": "Liên quan nhất", "newest": "Mới nhất", "oldest": "Cũ nhất", "views": "Xem nhiều nhất"}
TIER_LABELS = {
    "adjacent": "Khớp chính xác cụm từ",
    "syllables": "Khớp đủ các âm tiết",
    "fuzzy": "Khớp gần đúng chính tả",
    "partial": "Không tìm thấy kết quả chính xác, hiển thị kết quả gần đúng",
}


def search_url(params: SearchParams, **changes: Any) -> str:
    """``/search?...`` for ``params`` with ``changes``; the page resets unless it is the change."""
    changes.setdefault("page", 1)
    p = replace(params, **changes)
    return "/search" + query_string(
        q=p.q,
        category=p.categories,
        source=p.sources,
        date_from=p.date_from.isoformat() if p.date_from else None,
        date_to=p.date_to.isoformat() if p.date_to else None,
        sort=None if p.sort == "relevance" else p.sort,
        page=None if p.page == 1 else p.page,
        per_page=None if p.per_page == RESULTS_PER_PAGE else p.per_page,
    )


@dataclass(slots=True)
class PageLink:
    label: str
    url: str | None  # None: the current page, or a gap ("…")
    current: bool = False


def pagination(page: int, per_page: int, total: int, url_for_page: Any) -> list[PageLink]:
    """First, last and the current page ±2, with gaps; capped at the engine's result depth."""
    last = max(1, min(math.ceil(total / per_page), MAX_RESULT_DEPTH // per_page))
    if last <= 1:
        return []
    shown = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
    links: list[PageLink] = []
    if page > 1:
        links.append(PageLink("‹ Trước", url_for_page(page - 1)))
    previous = 0
    for number in shown:
        if number - previous > 1:
            links.append(PageLink("…", None))
        links.append(PageLink(str(number), None if number == page else url_for_page(number), number == page))
        previous = number
    if page < last:
        links.append(PageLink("Sau ›", url_for_page(page + 1)))
    return links


def hit_view(hit: Hit, q: str) -> dict[str, Any]:
    article = hit.article
    return {
        "id": article.id,
        "url": article_path(article.id) + query_string(q=q),
        "title_html": highlight(hit.title_spans) if hit.title_spans else article.title,
        "snippet_html": highlight(hit.snippet),
        "date": format_date(article.published),
        "datetime": article.published.isoformat(),
        "category": article.category,
        "category_url": f"/c/{article.category_slug}",
        "source": article.source,
        "views": article.views,
    }


def category_facets(params: SearchParams, values: list[FacetValue]) -> list[dict[str, Any]]:
    """Each category as a toggle link: on adds it to the filter, off removes it."""
    chosen = set(params.categories)
    out = []
    for v in values:
        active = v.slug in chosen or v.value in chosen
        others = [c for c in params.categories if c not in (v.slug, v.value)]
        out.append(
            {
                "label": v.value,
                "count": format_count(v.count),
                "active": active,
                "url": search_url(params, categories=others if active else [*params.categories, v.slug]),
            }
        )
    return out


def timeline_summary(timeline: Timeline) -> str:
    """One sentence saying what the chart shows: the chart's text alternative (with the table of
    periods), read by screen readers and printed under the chart for everyone."""
    unit = "năm" if timeline.unit == "year" else "tháng"
    total = sum(b.count for b in timeline.bars)
    if len(timeline.bars) == 1:
        return f"Cả {format_count(total)} bài trong {unit} {timeline.first.label}."
    top = max(timeline.bars, key=lambda b: b.count)
    return (
        f"{format_count(total)} bài theo {unit}, từ {timeline.first.label} đến {timeline.last.label};"
        f" nhiều nhất {unit} {top.label} ({format_count(top.count)} bài)."
    )


def search_context(
    params: SearchParams, result: SearchResult, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything search.html shows; ``labels`` (slug -> label) names chosen categories that the
    facets do not list (a filter with no match still reads "Thể thao", not "the-thao")."""
    timeline = build_timeline(result.facets)
    bars = []
    if timeline is not None:
        for bar in timeline.bars:
            bars.append(
                {
                    "bar": bar,
                    "url": search_url(params, date_from=bar.date_from, date_to=bar.date_to) if bar.count else None,
                    "title": f"{bar.label}: {format_count(bar.count)} bài",
                    "count": format_count(bar.count),
                }
            )
    active_filters = []
    for c in params.categories:
        label = next((v.value for v in result.facets.get("category", []) if c in (v.slug, v.value)), None)
        label = label or (labels or {}).get(c, c)
        others = [x for x in params.categories if x != c]
        active_filters.append({"label": f"Chuyên mục: {label}", "url": search_url(params, categories=others)})
    for s in params.sources:
        others = [x for x in params.sources if x != s]
        active_filters.append({"label": f"Nguồn: {s}", "url": search_url(params, sources=others)})
    if params.date_from or params.date_to:
        span = f"{format_calendar_date(params.date_from) or '…'} – {format_calendar_date(params.date_to) or '…'}"
        active_filters.append(
            {"label": f"Thời gian: {span}", "url": search_url(params, date_from=None, date_to=None)}
        )
    first = (params.page - 1) * params.per_page + 1
    return {
        "params": params,
        "result": result,
        "total_text": format_count(result.total),
        "first": first,
        "hits": [hit_view(h, params.q) for h in result.hits],
        "tier_label": TIER_LABELS.get(result.tier),
        "suggestion_url": search_url(params, q=result.suggestion) if result.suggestion else None,
        "facets": category_facets(params, result.facets.get("category", [])),
        "timeline": timeline,
        "timeline_summary": timeline_summary(timeline) if timeline is not None else None,
        "bars": bars,
        "sorts": [
            {"label": SORT_LABELS[s], "url": search_url(params, sort=s), "current": s == params.sort} for s in SORTS
        ],
        "active_filters": active_filters,
        "feeds": search_feed_links(params),
        "clear_filters_url": search_url(params, categories=[], sources=[], date_from=None, date_to=None),
        "pages": pagination(params.page, params.per_page, result.total, lambda n: search_url(params, page=n)),
    }


async def home(request: Request) -> Response:
    params = parse_search(request.query_params, RESULTS_PER_PAGE)
    if not params.is_empty or params.page > 1:
        return await render_search(request, params)
    # The counts and the newest articles come from the engine's catalog: cheap, never behind
    # searches, and asked for in one call (each trip to a thread waits for the GIL under load).
    categories, latest = await run_engine(request, lambda e: (e.categories(), e.latest(None, HOME_LATEST, 0)),
                                          heavy=False, charged=True)
    return render(
        request,
        "home.html",
        {
            "params": params,
            "categories": [
                {"label": c.value, "url": f"/c/{c.slug}", "count": format_count(c.count)} for c in categories
            ],
            "latest": [article_view(a) for a in latest],
        },
    )


async def search(request: Request) -> Response:
    return await render_search(request, parse_search(request.query_params, RESULTS_PER_PAGE))


async def render_search(request: Request, params: SearchParams) -> Response:
    result = await run_search(request, params.to_request())
    faceted = {v for f in result.facets.get("category", []) for v in (f.slug, f.value)}
    labels = None
    if any(c not in faceted for c in params.categories):
        labels = {c.slug: c.value for c in await run_engine(request, lambda e: e.categories(), heavy=False)}
    return render(request, "search.html", search_context(params, result, labels))


async def article_page(request: Request) -> Response:
    article_id = request.path_params["article_id"]
    q = parse_q(request.query_params)
    shows(request, Shows.article(article_id))  # the article, and its category's label and feeds
    article = await fetch_article(request, article_id)
    slug = article.category_slug
    # The related list is a search's worth of CPU, admitted like one, but the article is what the
    # reader came for: when the engine threads are overloaded the page is answered without the list
    # (and kept out of every cache, so the next request gets it whole) instead of with a 503, and
    # pages are not charged to the client's rate (they never were; a crawler reads many).
    try:
        related = await run_engine(request, lambda e: e.related(article.id, RELATED_ON_PAGE), heavy=True,
                                   charged=False)
        whole = True
    except Overloaded:
        related, whole = [], False
    # The related list changes with any commit (``api_related``); the page is carried over a commit
    # that touches neither the article, nor a listed one, nor the article's category (where most
    # new related articles appear): it may miss a new one of another category until then
    # (docs/search.md, "Related articles").
    shows(request, Shows(ids=frozenset((article_id, *(a.id for a in related))), categories=frozenset((slug,)),
                         any_change=False))
    response = render(
        request,
        "article.html",
        {
            "article": article,
            "view": article_view(article),
            "views": format_count(article.views) if article.views is not None else None,
            "q": q,
            "back_url": "/search" + query_string(q=q) if q else f"/c/{slug}",
            "source_url": web_url(article.url),
            "share": article_share(article, app_state(request).config,
                                   app_state(request).config.base_url + article_path(article.id)),
            "feeds": category_feeds(slug, article.category),
            "related": [article_view(a) for a in related],
        },
    )
    if not whole:
        response.headers["Cache-Control"] = NO_STORE
    return response


def category_feeds(slug: str, label: str) -> list[dict[str, str]]:
    return [
        {"type": "application/rss+xml", "href": f"/feeds/{slug}.rss", "title": f"{label} – RSS"},
        {"type": "application/atom+xml", "href": f"/feeds/{slug}.atom", "title": f"{label} – Atom"},
    ]


async def category_page(request: Request) -> Response:
    slug = request.path_params["slug"]
    max_page = MAX_RESULT_DEPTH // CATEGORY_PAGE_SIZE
    page = parse_int(request.query_params, "page", 1, ErrorCode.BAD_PAGE, 1, max_page)
    shows(request, Shows.category(slug))  # its list and its count: nothing else
    offset = (page - 1) * CATEGORY_PAGE_SIZE

    def listing(engine: SearchEngine) -> tuple[FacetValue | None, list[Article]]:
        category = next((c for c in engine.categories() if c.slug == slug), None)
        return category, engine.latest(slug, CATEGORY_PAGE_SIZE, offset) if category is not None else []

    # One cheap call (the catalog's count and slice), never behind searches.
    category, articles = await run_engine(request, listing, heavy=False, charged=True)
    if category is None:
        raise ApiError(ErrorCode.CATEGORY_NOT_FOUND, "no such category")
    return render(
        request,
        "category.html",
        {
            "category": category,
            "count": format_count(category.count),
            "articles": [article_view(a) for a in articles],
            "first": offset + 1,
            "pages": pagination(
                page, CATEGORY_PAGE_SIZE, category.count,
                lambda n: f"/c/{slug}" + query_string(page=n if n > 1 else None),
            ),
            "feeds": category_feeds(slug, category.value),
        },
    )


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return app_state(request).templates.TemplateResponse(request, name, context, status_code=status_code)


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/search", search, methods=["GET"], name="search"),
    Route("/articles/{article_id:path}", article_page, methods=["GET"], name="article"),
    Route("/c/{slug}", category_page, methods=["GET"], name="category"),
]
