"""Atom 1.0 (RFC 4287) rendering with feedgen 1.0.0; validates against ``schemas/atom.rng``.

feedgen 1.0.0 writes entry ``<link>`` elements with ``href`` only (a variable-shadowing bug
drops rel/type), so each entry gets exactly one link (implicitly ``rel="alternate"``) and the
attributes are put back on the lxml tree afterwards.  Content is ``type="html"`` (feedgen's
default would be plain text, and its ``"CDATA"`` type is not valid Atom); the summary is plain
text.  The article source is the entry ``<author><name>``; entries without one inherit the feed
author, which RFC 4287 allows because the feed always has one.
"""

from __future__ import annotations

from index.article import Article

from ._feedgen import ATOM_NS, atom_tree, fill_entry, new_generator, serialize
from .model import FeedInfo, item_guid, item_link
from .text import body_html, clean, one_line, summary

ATOM_TYPE = "application/atom+xml"


def render_atom(info: FeedInfo, articles: list[Article], base_url: str) -> bytes:
    """Atom 1.0 document for ``articles`` (kept in the given order) as UTF-8 bytes.

    Deterministic: the same arguments always give the same bytes (no "now" anywhere).
    """
    fg = new_generator(info, articles, ATOM_TYPE)
    if one_line(info.description):
        fg.subtitle(one_line(info.description))
    if info.icon_url:
        fg.icon(clean(info.icon_url))
    if one_line(info.site_title):
        # Atom has no publisher element; Dublin Core is a valid extension element.
        fg.load_extension("dc", atom=True, rss=False)
        fg.dc.dc_publisher(one_line(info.site_title))

    for article in articles:
        fe = fill_entry(fg, article, item_link(article, base_url), item_guid(article, base_url))
        fe.content(body_html(article), type="html")
        fe.summary(summary(article))
        source = one_line(article.source)
        if source:
            fe.author(name=source)

    tree = atom_tree(fg)
    root = tree.getroot()
    # feedgen builds entries as unqualified elements under the Atom default namespace (they are
    # Atom elements once serialized); both spellings are matched so either tree works.
    for path in ("entry/link", f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}link"):
        for link in root.iterfind(path):
            link.set("rel", "alternate")
            link.set("type", "text/html")
    return serialize(tree)
