"""JSON Feed 1.1 (https://jsonfeed.org/version/1.1), written with the standard library.

Item ``id``/``url``/dates are the same values the RSS and Atom renderings carry, so a reader
switching formats sees the same items.  ``content_html`` is the escaped body HTML (never raw
corpus markup); ``summary`` is plain text.  Items without a source omit ``authors`` and so
inherit the feed-level ``authors`` (spec §"authors").
"""

from __future__ import annotations

import json
from typing import Any

from index.article import Article

from .model import FeedInfo, item_guid, item_link, vn_time
from .text import body_html, clean, one_line, summary

VERSION = "https://jsonfeed.org/version/1.1"

# Same JSON value, but the bytes hold no "<", ">", "&" or JS line separators, so the document
# stays inert if it is ever sniffed as HTML or pasted into a <script> block.  Safe to apply to
# the whole text: these characters can only occur inside JSON strings.
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                            "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _item(article: Article, base_url: str) -> dict[str, Any]:
    when = vn_time(article.published).isoformat()
    item: dict[str, Any] = {
        "id": item_guid(article, base_url),
        "url": item_link(article, base_url),
        "title": one_line(article.title),
        "content_html": body_html(article),
        "summary": summary(article),
        "date_published": when,
        "date_modified": when,
    }
    source = one_line(article.source)
    if source:
        item["authors"] = [{"name": source}]
    item["tags"] = [one_line(article.category)]
    return item


def build_json(info: FeedInfo, articles: list[Article], base_url: str) -> dict[str, Any]:
    """The JSON Feed as a dict, keys in spec order (handy for tests and for embedding)."""
    doc: dict[str, Any] = {
        "version": VERSION,
        "title": one_line(info.title),
        "home_page_url": clean(info.html_url),
        "feed_url": clean(info.self_url),
        "description": one_line(info.description),
    }
    if info.next_url:
        doc["next_url"] = clean(info.next_url)
    if info.icon_url:
        doc["icon"] = clean(info.icon_url)
    doc["authors"] = [{"name": one_line(info.author_name)}]
    doc["language"] = clean(info.language)
    if info.hub_url:
        doc["hubs"] = [{"type": "WebSub", "url": clean(info.hub_url)}]
    doc["items"] = [_item(a, base_url) for a in articles]
    return doc


def render_json(info: FeedInfo, articles: list[Article], base_url: str) -> bytes:
    """JSON Feed 1.1 document as UTF-8 bytes; deterministic (insertion-ordered keys, no "now").

    Non-ASCII text is written as UTF-8 (``ensure_ascii=False``); only the HTML-significant
    characters are ``\\u``-escaped (see ``_HTML_SAFE``).
    """
    text = json.dumps(build_json(info, articles, base_url), ensure_ascii=False,
                      sort_keys=False, separators=(",", ":"))
    return text.translate(_HTML_SAFE).encode("utf-8")
