"""What an article page tells the sites it is shared on and the search engines that index it:
the canonical URL, Open Graph and Twitter card metadata, and a schema.org ``NewsArticle``.

Everything here is data; ``templates/_article_meta.html`` writes it out. Attribute values are
escaped by Jinja2's autoescape like every other value. The ``NewsArticle`` goes into a
``<script type="application/ld+json">`` through Jinja2's ``tojson`` filter, whose output is safe
inside a script element (it writes ``<``, ``>``, ``&`` and ``'`` as ``\\u003c`` … and, being
ASCII-only JSON, U+2028/U+2029 as ``\\u2028``/``\\u2029``): a title holding ``</script>`` or
``<!--`` can neither close the element nor change how an HTML parser reads it, and the JSON still
reads back as the title. HTML escaping would be wrong there (a script's text is not decoded, so
``&lt;`` would reach the JSON as four characters). A JSON-LD block is data: browsers never run it,
so the pages' CSP (no inline script) has nothing to allow.
"""

from __future__ import annotations

from typing import Any

from feeds.text import one_line, truncate
from index.article import Article
from index.urls import web_url

from .config import Config

DESCRIPTION_CHARS = 200  # Open Graph and search result descriptions are cut near here anyway


def description(article: Article) -> str:
    """The first paragraph as one line, cut at a word boundary."""
    return truncate(one_line(article.body[0]), DESCRIPTION_CHARS) if article.body else ""


def article_share(article: Article, config: Config, canonical: str) -> dict[str, Any]:
    """The share metadata of an article page whose canonical URL is ``canonical``.

    The model has no modification date: an article is corrected by publishing it again, so its
    publication time is also the last time it changed as far as the archive knows, and
    ``modified`` says so rather than being left out (search engines ask for both)."""
    published = article.published.isoformat(timespec="seconds")
    text = description(article)
    news: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.title,
        "description": text,
        "datePublished": published,
        "dateModified": published,
        "articleSection": article.category,
        "inLanguage": "vi",
        "url": canonical,
        "mainEntityOfPage": {"@type": "WebPage", "@id": canonical},
        "publisher": {"@type": "Organization", "name": config.site_title, "url": config.base_url + "/"},
    }
    if article.source:  # the newspaper the article came from (VnExpress, Tuổi Trẻ...)
        news["author"] = {"@type": "Organization", "name": article.source}
    original = web_url(article.url)
    if original:
        news["isBasedOn"] = original
    return {
        "canonical": canonical,
        "title": article.title,
        "description": text,
        "site_name": config.site_title,
        "published": published,
        "modified": published,
        "section": article.category,
        "json_ld": news,
    }
