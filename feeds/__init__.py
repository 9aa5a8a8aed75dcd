"""Syndication feeds for the archive: Article lists + feed metadata -> document bytes.

No HTTP and no index here: the service builds a :class:`FeedInfo`, picks the articles, calls a
renderer and caches the bytes (output is deterministic for a given input).  The Atom RELAX NG
schema ships as package data: :data:`ATOM_RNG_PATH` (and the sitemaps' own, :data:`SITEMAP_RNG_PATH`).
Sitemaps (``feeds.sitemap``) and OpenSearch descriptions (``feeds.opensearch``) are rendered here
too: documents for crawlers and browsers.
"""

from __future__ import annotations

from pathlib import Path

from .atom import ATOM_TYPE, render_atom
from .jsonfeed import build_json, render_json
from .model import FeedInfo, feed_updated, item_guid, item_link, vn_time
from .opml import render_opml
from .rss import RSS_TYPE, render_rss
from .text import body_html, summary, xml_safe

_HERE = Path(__file__).resolve().parent
ATOM_RNG_PATH = _HERE / "schemas" / "atom.rng"
SITEMAP_RNG_PATH = _HERE / "schemas" / "sitemap.rng"

JSON_FEED_TYPE = "application/feed+json"
OPML_TYPE = "text/x-opml"

__all__ = [
    "ATOM_RNG_PATH",
    "ATOM_TYPE",
    "JSON_FEED_TYPE",
    "OPML_TYPE",
    "RSS_TYPE",
    "SITEMAP_RNG_PATH",
    "FeedInfo",
    "body_html",
    "build_json",
    "feed_updated",
    "item_guid",
    "item_link",
    "render_atom",
    "render_json",
    "render_opml",
    "render_rss",
    "summary",
    "vn_time",
    "xml_safe",
]
