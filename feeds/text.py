"""Text preparation shared by every feed format.

Every string that reaches a feed goes through :func:`clean` (or :func:`one_line`), because the
corpus holds control characters (U+0014 among them) that lxml/feedgen refuse with ``ValueError``
and Vietnamese in both NFC and NFD.  NFC is chosen so that the same title is byte-identical in
every format, is not split between a letter and its tone mark when truncated, and compares
equal to what readers and search engines display.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

from index.article import Article

# XML 1.0 §2.2 Char production, negated: C0 controls other than TAB/LF/CR, lone surrogates,
# U+FFFE/U+FFFF.  DEL and the C1 controls (U+007F–U+009F) are legal but "discouraged" by the
# same section and never meaningful in news text (they are mojibake), so they go as well.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\u007e\u00a0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SPACES = re.compile(r"\s+")
# Punctuation that looks wrong directly before the ellipsis of a truncated summary.
_TRAILING_PUNCT = " \t\n,;:-–—"

ELLIPSIS = "…"

# Characters of article text (paragraphs and captions, before escaping) in one item's full
# content. A feed lists up to a few hundred items and readers fetch it again and again: one
# outsized article must not make every feed that lists it outsized. Several times a long real
# article; what is left out is on the article's page, which the item links to.
MAX_CONTENT_CHARS = 20_000


def xml_safe(s: str) -> str:
    """Remove the characters XML 1.0 cannot carry (feedgen/lxml raise ValueError on them)."""
    return _NOT_XML_CHAR.sub("", s)


def clean(s: str | None) -> str:
    """XML-safe, NFC-normalised text; ``None`` becomes ``""``."""
    if not s:
        return ""
    return unicodedata.normalize("NFC", xml_safe(s))


def one_line(s: str | None) -> str:
    """:func:`clean` with all whitespace runs collapsed: for titles, names and summaries."""
    return _SPACES.sub(" ", clean(s)).strip()


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a word boundary, ending with "…".

    Text that already fits is returned unchanged (no ellipsis).  A single word longer than the
    limit is cut hard, but never between a base letter and its combining marks.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    cut = text[:room]
    if room < len(text) and not text[room].isspace():
        # We are inside a word: go back to the last space, if the cut keeps anything.
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    cut = cut.rstrip(_TRAILING_PUNCT)
    if not cut:
        cut = text[:room]
    end = len(cut)
    while 0 < end < len(text) and unicodedata.combining(text[end]):
        end -= 1
    return text[:end] + ELLIPSIS


def summary(article: Article, limit: int = 300) -> str:
    """Plain text of the first paragraphs, at most ``limit`` characters.

    Feeds show it as the item teaser (RSS description, Atom summary, JSON ``summary``); it is
    plain text, so each format escapes it as its own rules require.
    """
    parts: list[str] = []
    length = -1  # length of " ".join(parts)
    for paragraph in article.body:
        line = one_line(paragraph)
        if not line:
            continue
        parts.append(line)
        length += 1 + len(line)
        if length > limit:  # enough text to decide where to cut; skip the other paragraphs
            break
    return truncate(" ".join(parts), limit)


def _paragraph(text: str, em: bool = False) -> str:
    # " ".join(ln.split()) is _SPACES.sub(" ", ln).strip() (both use str.isspace), 1.7x faster
    # over the corpus: search feeds render up to 50 bodies a request.
    lines = [html.escape(" ".join(ln.split())) for ln in clean(text).splitlines()]
    inner = "<br>".join(ln for ln in lines if ln)
    if not inner:
        return ""
    return f"<p><em>{inner}</em></p>" if em else f"<p>{inner}</p>"


def body_html(article: Article) -> str:
    """The full article as an HTML fragment: one ``<p>`` per paragraph, captions last in ``<em>``.

    Everything from the corpus is HTML-escaped: the archive is plain text, and any markup in it
    (``<script>`` included) must reach readers as visible text, never as live HTML. At most
    ``MAX_CONTENT_CHARS`` of text, cut on a paragraph boundary (see :func:`capped`).
    """
    return _body_html(*capped(article.body, article.captions))


def capped(
    body: list[str], captions: list[str], limit: int = MAX_CONTENT_CHARS
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The paragraphs, then the captions, that fit in ``limit`` characters: whole ones only.

    When a paragraph is left out, a last paragraph "…" says so (captions that do not fit are
    simply left out: they are on the article's page). A first paragraph longer than the limit on
    its own is cut at a word (with :func:`truncate`, which ends it with "…"), so an item is never
    empty.
    """
    room = limit
    for i, text in enumerate(body):
        if len(text) > room:
            return ((*body[:i], ELLIPSIS) if i else (truncate(text, limit),)), ()
        room -= len(text)
    for i, text in enumerate(captions):
        if len(text) > room:
            return tuple(body), tuple(captions[:i])
        room -= len(text)
    return tuple(body), tuple(captions)


# Keyed by the text itself, so an edited article can never get its old rendering. Why a cache:
# search feeds sorted newest-first keep returning the same recent articles, and rendering their
# bodies (a quarter of a search feed's cost, measured) is the same work every time.
@functools.lru_cache(maxsize=2048)
def _body_html(body: tuple[str, ...], captions: tuple[str, ...]) -> str:
    blocks = [_paragraph(p) for p in body]
    blocks += [_paragraph(c, em=True) for c in captions]
    return "\n".join(b for b in blocks if b)
