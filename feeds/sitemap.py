"""Sitemaps (the sitemaps.org protocol 0.9): a sitemap of URLs with their last modification, and
a sitemap index naming sitemaps. Deterministic bytes for a given input, like the feeds.

The protocol's bounds, and how a caller stays within them:

* a sitemap lists at most 50,000 URLs and is at most 50 MB (52,428,800 bytes) uncompressed, and
  every ``loc`` is shorter than 2,048 characters. ``URLS_PER_FILE`` is the number of entries
  that fits in 50 MB even when every ``loc`` is at its longest (``MAX_LOC_BYTES``): a caller that
  cuts its URLs into files of ``URLS_PER_FILE`` and leaves out the URLs ``loc_fits`` refuses
  never writes a file over either bound, whatever the URLs turn out to be. (Counting bytes
  instead would make the number of files depend on the ids in them, which a sitemap index
  listing the files from counts alone cannot know.)
* a sitemap index names at most 50,000 sitemaps, under the same 50 MB.

``render_urlset`` and ``render_index`` refuse input over those bounds (``ValueError``): past
them crawlers ignore the whole file, so that would be a bug of the caller's, not a shorter file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from lxml import etree

from index.article import VN_TZ

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
SITEMAP_TYPE = "application/xml"
MAX_URLS = 50_000
MAX_BYTES = 50 * 1024 * 1024
MAX_LOC_BYTES = 2_047  # "less than 2,048 characters"; counted in UTF-8 bytes, as written (escaped)
# One <url> entry at most, besides its loc: the tags, the indentation and a lastmod with seconds
# and offset (82 bytes as written; a margin on top). The file's own head and tail get 1 KiB.
_ENTRY_BYTES = MAX_LOC_BYTES + 128
URLS_PER_FILE = min(MAX_URLS, (MAX_BYTES - 1024) // _ENTRY_BYTES)

Entry = tuple[str, datetime | None]  # (absolute URL, last modification or None)


def loc_fits(loc: str) -> bool:
    """Whether ``loc`` may be written as a sitemap ``loc`` (shorter than 2,048 characters once
    XML-escaped, counted in bytes: the bound ``URLS_PER_FILE`` relies on)."""
    return len(_escaped(loc).encode("utf-8")) <= MAX_LOC_BYTES


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def w3c_datetime(moment: datetime) -> str:
    """W3C Datetime with seconds and the Vietnamese offset: ``2005-03-01T08:30:00+07:00``."""
    return moment.astimezone(VN_TZ).isoformat(timespec="seconds")


def _render(root_tag: str, item_tag: str, entries: Sequence[Entry]) -> bytes:
    # (the cast: lxml-stubs have no default namespace, the None key, in nsmap's type)
    root = etree.Element(f"{{{SITEMAP_NS}}}{root_tag}", nsmap=cast(Any, {None: SITEMAP_NS}))
    for loc, lastmod in entries:
        if not loc_fits(loc):
            raise ValueError(f"a sitemap loc must be shorter than 2,048 characters: {loc[:80]!r}…")
        item = etree.SubElement(root, f"{{{SITEMAP_NS}}}{item_tag}")
        etree.SubElement(item, f"{{{SITEMAP_NS}}}loc").text = loc
        if lastmod is not None:
            etree.SubElement(item, f"{{{SITEMAP_NS}}}lastmod").text = w3c_datetime(lastmod)
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    if len(body) > MAX_BYTES:  # unreachable within URLS_PER_FILE entries (see the module docstring)
        raise ValueError(f"a sitemap must not exceed {MAX_BYTES} bytes ({len(body)})")
    return body


def render_urlset(entries: Sequence[Entry]) -> bytes:
    """A sitemap: ``<urlset>`` with one ``<url>`` per entry (at most ``URLS_PER_FILE``)."""
    if len(entries) > URLS_PER_FILE:
        raise ValueError(f"a sitemap file holds at most {URLS_PER_FILE} URLs here ({len(entries)})")
    return _render("urlset", "url", entries)


def render_index(entries: Sequence[Entry]) -> bytes:
    """A sitemap index: ``<sitemapindex>`` with one ``<sitemap>`` per entry (at most 50,000)."""
    if len(entries) > MAX_URLS:
        raise ValueError(f"a sitemap index names at most {MAX_URLS} sitemaps ({len(entries)})")
    return _render("sitemapindex", "sitemap", entries)
