"""RSS 2.0 rendering (feedgen 1.0.0, with the Dublin Core and content modules).

Choices RSS forces:

* ``<author>`` must be an e-mail address, which we never have, so the article source is
  ``dc:creator`` and the feed author is the channel's ``dc:creator``; the site is
  ``dc:publisher``.
* ``<description>`` is HTML by RSS convention, so the plain-text summary is HTML-escaped
  before XML escaping (readers then show ``a < b`` rather than dropping a "tag").
  ``<title>`` stays plain text, which is how readers treat RSS titles.
* The full article goes in ``content:encoded`` (escaped HTML, not CDATA: same meaning, and no
  ``]]>`` edge case).
"""

from __future__ import annotations

import html

from index.article import Article

from ._feedgen import (
    ATOM_NS,
    add_atom_links,
    fill_entry,
    new_generator,
    paging_links,
    rss_tree,
    serialize,
)
from .model import FeedInfo, item_guid, item_link
from .text import body_html, clean, one_line, summary

RSS_TYPE = "application/rss+xml"


def render_rss(info: FeedInfo, articles: list[Article], base_url: str) -> bytes:
    """RSS 2.0 document for ``articles`` (kept in the given order) as UTF-8 bytes.

    Deterministic: the same arguments always give the same bytes (no "now" anywhere).
    """
    fg = new_generator(info, articles, RSS_TYPE)
    fg.description(one_line(info.description) or one_line(info.title))
    fg.load_extension("dc", atom=False, rss=True)
    fg.dc.dc_creator(one_line(info.author_name))
    if one_line(info.site_title):
        fg.dc.dc_publisher(one_line(info.site_title))
    if info.icon_url:
        fg.image(url=clean(info.icon_url), title=one_line(info.title), link=clean(info.html_url))

    for article in articles:
        fe = fill_entry(fg, article, item_link(article, base_url), item_guid(article, base_url))
        fe.content(body_html(article), type="html")
        fe.description(html.escape(summary(article), quote=False), isSummary=True)
        source = one_line(article.source)
        if source:
            fe.dc.dc_creator(source)

    tree = rss_tree(fg)
    channel = tree.getroot().find("channel")
    if channel is None:  # feedgen always writes one
        raise RuntimeError("feedgen wrote an RSS document without <channel>")
    self_link = channel.find(f"{{{ATOM_NS}}}link[@rel='self']")
    extra: list[tuple[str, str, str | None]] = []
    if info.hub_url:
        extra.append(("hub", clean(info.hub_url), None))
    extra += [(rel, href, RSS_TYPE) for rel, href in paging_links(info)]
    add_atom_links(channel, self_link, extra)
    return serialize(tree)
