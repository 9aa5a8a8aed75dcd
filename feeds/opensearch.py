"""OpenSearch 1.1 description documents: how a browser (or any client) searches the archive.

A browser that finds ``<link rel="search" type="application/opensearchdescription+xml">`` on a
page reads this document and offers the site as a search engine: its ``Url`` templates say where
the results are (the HTML page, the Atom and RSS search feeds) and where the as-you-type
suggestions are (``application/x-suggestions+json``, the OpenSearch suggestions format).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
OPENSEARCH_TYPE = "application/opensearchdescription+xml"
SUGGESTIONS_TYPE = "application/x-suggestions+json"
MAX_SHORT_NAME = 16  # characters (OpenSearch 1.1: "16 or fewer characters of plain text")
MAX_DESCRIPTION = 1024


@dataclass(frozen=True, slots=True)
class Template:
    """One ``<Url>``: the media type of what it answers, its template (``{searchTerms}`` and the
    other OpenSearch parameters), and its ``rel`` (results, suggestions, self)."""

    type: str
    template: str
    rel: str = "results"


def short_name(title: str) -> str:
    """``title`` within 16 characters: whole words, trailing dashes and punctuation dropped
    ("Tin tức – Lưu trữ" -> "Tin tức")."""
    title = " ".join(title.split())
    if len(title) <= MAX_SHORT_NAME:
        return title
    cut = title[: MAX_SHORT_NAME + 1].rsplit(" ", 1)[0] if " " in title[: MAX_SHORT_NAME + 1] else ""
    cut = cut.rstrip(" -–—:·|,;.")
    return cut or title[:MAX_SHORT_NAME]


def render_description(
    title: str,
    description: str,
    templates: Sequence[Template],
    *,
    language: str,
    image_url: str | None = None,
    image_type: str = "image/svg+xml",
    example: str | None = None,
) -> bytes:
    """The description document of a site named ``title`` (its ``ShortName`` cut to 16
    characters, ``LongName`` whole)."""
    ns = f"{{{OPENSEARCH_NS}}}"
    # (the cast: lxml-stubs have no default namespace, the None key, in nsmap's type)
    root = etree.Element(ns + "OpenSearchDescription", nsmap=cast(Any, {None: OPENSEARCH_NS}))
    etree.SubElement(root, ns + "ShortName").text = short_name(title)
    etree.SubElement(root, ns + "Description").text = description[:MAX_DESCRIPTION]
    etree.SubElement(root, ns + "LongName").text = title[:48]
    for template in templates:
        attributes = {"type": template.type, "template": template.template}
        if template.rel != "results":
            attributes["rel"] = template.rel
        etree.SubElement(root, ns + "Url", attributes)
    if image_url:
        etree.SubElement(root, ns + "Image", {"width": "16", "height": "16", "type": image_type}).text = image_url
    if example:
        etree.SubElement(root, ns + "Query", {"role": "example", "searchTerms": example})
    etree.SubElement(root, ns + "Language").text = language
    etree.SubElement(root, ns + "InputEncoding").text = "UTF-8"
    etree.SubElement(root, ns + "OutputEncoding").text = "UTF-8"
    etree.SubElement(root, ns + "SyndicationRight").text = "open"
    body: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body
