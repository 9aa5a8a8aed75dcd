"""The HTML page a browser tab gets at a feed URL (``/feeds/{name}.{fmt}``), served by ``routes.feeds``.

A person who clicks an RSS link lands on the feed's URL. Browsers used to turn the XML into a page
with the XSL the document named; Chromium now warns that XSLT is going away and will show raw
XML, and it never applied it to ``application/rss+xml`` anyway. So the feed route answers browser
tabs (``feed_cache.is_browser_navigation``) with this server-rendered page instead, at the same
URL, and everything else (feed readers, ``curl``, ``fetch()``) with the feed document. The page
says what a feed is, gives the address to copy (``static/feed_page.js``) and one-click links for
web feed readers, lists the newest items (linking to our article pages) and the other formats.

It is a document like the feed it stands for: rendered once per index generation (what the
selection shows, ``Selection.shows``) into the feed cache under its own key, with its own ETag,
so a revalidation is a dictionary lookup. It lists at most ``PAGE_ITEMS`` items: a page for people
who decide whether to subscribe, not a copy of a 200-item document.
"""

from __future__ import annotations

from urllib.parse import quote

import jinja2

from index.api import SearchEngine

from .config import Config
from .http.feed_cache import Document, make_document
from .presenters import article_view, format_count
from .selection import ALL, FORMAT_LABELS, FORMATS, Selection, checked_last_page, feed_target, feed_url, fetch

PAGE_ITEMS = 20  # items the page lists (fewer if the feed's page size is smaller)
# Web feed readers that subscribe from a link; ``{}`` is the feed URL, percent-encoded whole
# (``quote(url, safe="")``), so that a search feed's own "?q=…&category=…" stays inside the value.
READERS: tuple[tuple[str, str], ...] = (
    ("Feedly", "https://feedly.com/i/subscription/feed%2F{}"),
    ("Inoreader", "https://www.inoreader.com/?add_feed={}"),
    ("NewsBlur", "https://www.newsblur.com/?url={}"),
    ("The Old Reader", "https://theoldreader.com/feeds/subscribe?url={}"),
)
# JSON Feed is not read by every web reader: from its page, they subscribe to the Atom document
# (same items, also paged).
READER_FORMAT = {"rss": "rss", "atom": "atom", "json": "atom"}


def reader_links(url: str) -> list[dict[str, str]]:
    encoded = quote(url, safe="")
    return [{"name": name, "url": template.format(encoded)} for name, template in READERS]


def render_feed_page(
    env: jinja2.Environment, engine: SearchEngine, config: Config, selection: Selection, fmt: str, limit: int, page: int
) -> Document:
    """The page for the feed document ``selection``/``fmt``/``limit``/``page``: its first
    ``PAGE_ITEMS`` items; the addresses to subscribe to are its first page. Blocking (the engine)."""
    shown = min(limit, PAGE_ITEMS)
    batch = fetch(engine, selection, shown, (page - 1) * limit)
    pages = checked_last_page(batch.total, limit, page)  # a page past the last: 404, as for the feed
    subscribe = feed_url(config, selection, fmt, limit)
    formats = [
        {"fmt": f, "label": FORMAT_LABELS[f], "type": FORMATS[f], "href": feed_target(selection, f, limit),
         "url": feed_url(config, selection, f, limit), "current": f == fmt}
        for f in FORMATS
    ]  # fmt: skip
    context = {
        "label": batch.label,
        "fmt": fmt,
        "format_label": FORMAT_LABELS[fmt],
        "subscribe_url": subscribe,
        "readers": reader_links(feed_url(config, selection, READER_FORMAT[fmt], limit)),
        "readers_use_atom": READER_FORMAT[fmt] != fmt,
        "formats": formats,
        "articles": [article_view(a) for a in batch.articles],
        "total": format_count(batch.total),
        "first": (page - 1) * limit + 1,
        "page": page,
        "pages": pages,
        "html_url": selection.html_path(),
        "kind": selection.kind,
        # autodiscovery of this feed's formats (base.html links the whole archive's already)
        "feeds": []
        if selection.kind == ALL
        else [{"type": f["type"], "href": f["href"], "title": f"{batch.label} – {f['label']}"} for f in formats],
    }
    html = env.get_template("feed_page.html").render(context)
    # No Last-Modified: the page also shows what the template makes of the items, so only its
    # ETag (a hash of these bytes) says exactly whether it changed.
    return make_document(html.encode("utf-8"), "text/html; charset=utf-8")
