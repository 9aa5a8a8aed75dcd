"""What RSS and Atom share: filling a feedgen ``FeedGenerator`` and fixing its output.

feedgen 1.0.0 quirks handled here (all measured):

* ``FeedGenerator()`` and ``FeedEntry()`` stamp ``datetime.now()`` into feed ``updated`` /
  RSS ``lastBuildDate`` / entry ``updated``; every one is overwritten with article dates.
* The default ``<generator>`` carries feedgen's version; it is replaced by a fixed name so
  output depends only on the input.
* ``add_entry()`` *prepends* by default; entries are appended to keep the caller's order.
* The RSS channel ``<link>`` is the href of the LAST ``link()`` call, so the alternate (HTML)
  link is always added last.
* RSS output only carries the ``rel="self"`` ``atom:link``; hub and paging links are added to
  the lxml tree afterwards (:func:`add_atom_links`).
* Strings with XML-illegal characters raise ``ValueError``; callers pass only
  :func:`feeds.text.clean` / :func:`feeds.text.one_line` output.
"""

from __future__ import annotations

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from lxml import etree

from index.article import Article

from .model import FeedInfo, feed_updated, vn_time
from .text import clean, one_line

ATOM_NS = "http://www.w3.org/2005/Atom"
GENERATOR = "searchsvc"

def new_generator(info: FeedInfo, articles: list[Article], self_type: str) -> FeedGenerator:
    """A FeedGenerator with the feed-level fields common to RSS and Atom."""
    fg = FeedGenerator()
    fg.id(clean(info.feed_id))
    fg.title(one_line(info.title))
    fg.language(clean(info.language))
    fg.author(name=one_line(info.author_name))
    fg.updated(feed_updated(info, articles))
    fg.generator(GENERATOR)
    fg.ttl(info.ttl)
    # Order matters: the RSS channel <link> is the last link added, so alternate goes last.
    fg.link(href=clean(info.self_url), rel="self", type=self_type)
    if info.hub_url:
        fg.link(href=clean(info.hub_url), rel="hub")
    for rel, href in paging_links(info):
        fg.link(href=href, rel=rel, type=self_type)
    fg.link(href=clean(info.html_url), rel="alternate", type="text/html")
    return fg


def paging_links(info: FeedInfo) -> list[tuple[str, str]]:
    """RFC 5005 §3 paged-feed links that are set, as (rel, href)."""
    pairs = [
        ("first", info.first_url),
        ("previous", info.prev_url),
        ("next", info.next_url),
        ("last", info.last_url),
    ]
    return [(rel, clean(href)) for rel, href in pairs if href]


def fill_entry(fg: FeedGenerator, article: Article, link: str, guid: str) -> FeedEntry:
    """Append an entry with the fields RSS and Atom express the same way; returns it."""
    fe = fg.add_entry(order="append")
    fe.guid(guid, permalink=False)
    fe.title(one_line(article.title))
    fe.link(href=link, rel="alternate")  # one link only: feedgen drops entry link attributes
    when = vn_time(article.published)
    fe.published(when)
    fe.updated(when)
    fe.category(term=clean(article.category_slug), label=one_line(article.category))
    return fe


def rss_tree(fg: FeedGenerator) -> etree._ElementTree:
    """feedgen's RSS document as the lxml tree it builds, for us to amend before serializing.

    ``rss_str()`` is feedgen's public way to get it, but only as bytes: parsing them back cost a
    tenth of a 50-item search feed's render (measured). ``_create_rss`` is what ``rss_str``
    serializes; feedgen is pinned (1.0.0) and a test compares the output with the public path's.
    """
    tree: etree._ElementTree = fg._create_rss()[1]
    return tree


def atom_tree(fg: FeedGenerator) -> etree._ElementTree:
    """The Atom counterpart of :func:`rss_tree`."""
    tree: etree._ElementTree = fg._create_atom()[1]
    return tree


def add_atom_links(parent: etree._Element, after: etree._Element | None,
                   links: list[tuple[str, str, str | None]]) -> None:
    """Insert ``<atom:link rel href type?>`` elements, in order, after ``after`` (or at the end)."""
    anchor = after
    for rel, href, mime in links:
        el = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
        if mime:
            el.set("type", mime)
        if anchor is None:
            parent.append(el)
        else:
            anchor.addnext(el)
        anchor = el


def serialize(tree: etree._ElementTree) -> bytes:
    """UTF-8 bytes with an XML declaration, pretty-printed."""
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
