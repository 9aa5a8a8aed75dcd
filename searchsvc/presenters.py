"""Turning engine objects into what clients see: JSON dicts, highlighted HTML and links.

Highlighting is built from ``Span`` lists here and nowhere else: every span's text is escaped and
only the matched ones are wrapped in ``<mark>``, so the same markup reaches the JSON API and the
pages, and nothing an article or a query contains can become live HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup, escape

from index.api import FacetValue, Hit, SearchResult, Span
from index.article import VN_TZ, Article
from index.urls import web_url


def highlight(spans: Iterable[Span]) -> Markup:
    """HTML for a span list: escaped text, ``<mark>`` around hits, adjacent hits merged."""
    parts: list[str] = []
    open_mark = False
    for span in spans:
        if not span.text:
            continue
        if span.hit and not open_mark:
            parts.append("<mark>")
            open_mark = True
        elif not span.hit and open_mark:
            parts.append("</mark>")
            open_mark = False
        parts.append(str(escape(span.text)))
    if open_mark:
        parts.append("</mark>")
    return Markup("".join(parts))


def article_path(article_id: str) -> str:
    """Site-relative URL of an article page; the id is percent-encoded as one path segment."""
    return "/articles/" + quote(article_id, safe="")


def article_view(article: Article) -> dict[str, Any]:
    """An article in a list of the pages (``_article_item.html``): home, category, a feed's page."""
    excerpt = article.body[0] if article.body else ""
    if len(excerpt) > 240:
        excerpt = excerpt[:240].rsplit(" ", 1)[0] + "…"
    return {
        "title": article.title,
        "url": article_path(article.id),
        "date": format_date(article.published),
        "datetime": article.published.isoformat(),
        "category": article.category,
        "category_url": f"/c/{article.category_slug}",
        "source": article.source,
        "excerpt": excerpt,
    }


def absolute(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def format_date(value: datetime) -> str:
    """dd/mm/yyyy in Vietnam time, the way the archive's readers write dates."""
    return value.astimezone(VN_TZ).strftime("%d/%m/%Y")


def format_calendar_date(value: date | None) -> str | None:
    """dd/mm/yyyy of a calendar date (a ``from``/``to`` filter: no time, no zone), or None."""
    return value.strftime("%d/%m/%Y") if value else None


def format_count(value: int) -> str:
    """Vietnamese digit grouping: 12.345."""
    return f"{value:,}".replace(",", ".")


def hit_json(hit: Hit, base_url: str) -> dict[str, Any]:
    article = hit.article
    return {
        **article_link_json(article, base_url),
        "views": article.views,
        "snippet": str(highlight(hit.snippet)),
        "title_highlighted": str(highlight(hit.title_spans)) if hit.title_spans else str(escape(article.title)),
        "score": _finite(hit.score),
    }


def facet_json(values: Sequence[FacetValue]) -> list[dict[str, Any]]:
    return [{"value": v.value, "slug": v.slug, "count": v.count} for v in values]


def result_json(result: SearchResult, base_url: str) -> dict[str, Any]:
    return {
        "query": result.query,
        "total": result.total,
        "page": result.request.page,
        "per_page": result.request.per_page,
        "tier": result.tier,
        "partial": result.partial,
        "hits": [hit_json(h, base_url) for h in result.hits],
        "facets": {name: facet_json(values) for name, values in result.facets.items()},
        "suggestion": result.suggestion,
        "notes": list(result.notes),
    }


def article_json(article: Article, base_url: str) -> dict[str, Any]:
    """``Article.to_dict()`` with the body once, as ``paragraphs`` (a list keeps single line breaks
    inside a paragraph unambiguous); the joined ``body`` string would double the answer."""
    data = article.to_dict()
    del data["body"]
    # The original page, under a name that cannot clash; only a safe http(s) URI (index.urls):
    # clients make it a link.
    data["source_url"] = web_url(data.get("url"))
    data["url"] = absolute(base_url, article_path(article.id))
    data["paragraphs"] = list(article.body)
    return data


def article_link_json(article: Article, base_url: str) -> dict[str, Any]:
    """An article in a list (a related article, the start of a search hit): what a link to it
    needs, never its body."""
    return {
        "id": article.id,
        "title": article.title,
        "url": absolute(base_url, article_path(article.id)),
        "category": article.category,
        "category_slug": article.category_slug,
        "published": article.published.isoformat(),
        "source": article.source,
    }


def query_string(**params: object) -> str:
    """``?a=1&b=x`` from keyword arguments; None/empty values dropped, lists repeated."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        key = {"date_from": "from", "date_to": "to"}.get(name, name)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, (list, tuple)):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else ""


def _finite(value: float) -> float | None:
    """JSON has no NaN/Infinity; a score that is not finite is reported as null."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 6) if number == number and abs(number) != float("inf") else None
