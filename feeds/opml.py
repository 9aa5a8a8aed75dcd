"""OPML 2.0 subscription list (http://opml.org/spec2.opml) of the per-category feeds.

Layout (a deliberate choice): two top-level folders, "RSS 2.0" then "Atom 1.0", each holding one
``type="rss"`` outline per category.  Feed readers import outlines with children as folders,
so a user importing the file gets the same categories twice but clearly separated by format
and can drop a whole folder; mixing both formats under one category folder would instead make
every category look duplicated.  OPML 2.0's ``type="rss"`` means "a feed", whatever its
format; ``version="RSS2"`` is only set on the RSS outlines (the spec has no Atom value).
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from lxml import etree

from .model import vn_time
from .text import clean, one_line

FeedRow = tuple[str, str, str, str]  # (label, rss_url, atom_url, html_url)


def _outline(parent: etree._Element, label: str, xml_url: str, html_url: str,
             version: str | None) -> None:
    attrs = {"type": "rss", "text": label, "title": label, "xmlUrl": clean(xml_url),
             "htmlUrl": clean(html_url), "language": "vi"}
    if version:
        attrs["version"] = version
    etree.SubElement(parent, "outline", attrs)


def render_opml(title: str, owner: str, feeds: list[FeedRow], date_created: datetime) -> bytes:
    """OPML 2.0 document listing every feed in RSS and Atom, as UTF-8 bytes.

    ``date_created`` is written (RFC 822, +0700) instead of "now" so output is deterministic;
    a naive value is read as Vietnam time, like ``Article.published``.
    """
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = one_line(title)
    etree.SubElement(head, "dateCreated").text = format_datetime(vn_time(date_created))
    etree.SubElement(head, "ownerName").text = one_line(owner)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    rss = etree.SubElement(body, "outline", text="RSS 2.0", title="RSS 2.0")
    atom = etree.SubElement(body, "outline", text="Atom 1.0", title="Atom 1.0")
    for label, rss_url, atom_url, html_url in feeds:
        name = one_line(label)
        _outline(rss, name, rss_url, html_url, "RSS2")
        _outline(atom, name, atom_url, html_url, None)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
