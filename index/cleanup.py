"""Text cleanup that every reader applies to every text field before building an ``Article``.

Why one function for everything: the index, the snippets and the XML feeds all assume the same
invariants (NFC, no entities, no invisible marks, no XML-illegal characters, single spaces). If
each reader cleaned a little differently, "lý thuyết" typed by a user would fail to match a body
where it is stored as "l\\u200eý thuyết" or with a combining tone mark, and one stray U+0014 would
make a whole RSS feed unparseable.
"""

from __future__ import annotations

import html
import re
import unicodedata

# Zero-width marks that real exports leave inside words (LRM/RLM from bidi-aware editors,
# ZWSP/ZWNJ/ZWJ/word joiner from web copy-paste, a BOM in the middle of concatenated files).
# They are invisible but split words for the tokenizer, so they go.
# The bidi embeddings, overrides and isolates (LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI) and the
# Arabic letter mark go too: Vietnamese text never needs them, and an override left in a title
# makes pages, feeds and widgets show text in an order other than the one stored and searched
# ("RTL \u202eexe.gpj" displays as "RTL jpg.exe").
_INVISIBLE = (
    "\u200b\u200c\u200d\u200e\u200f\ufeff\u2060"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
)

# No-break and figure spaces are layout hints from HTML; for search they are ordinary spaces.
_SPACE_LIKE = "\u00a0\u202f\u2007\t"

_TRANSLATE = {ord(ch): None for ch in _INVISIBLE} | {ord(ch): " " for ch in _SPACE_LIKE}
# ``translate`` with a mapping looks up every character: on Vietnamese text that was most of the
# time reading a corpus takes (measured: 1.3 of 2.2 CPU seconds for 5,000 articles), while few texts
# hold any of these characters. A regex scan finds out first.
_TRANSLATED = re.compile("[" + re.escape(_INVISIBLE + _SPACE_LIKE) + "]")

# Characters XML 1.0 forbids (a feed containing one is not well-formed): C0 controls other than
# tab/newline/carriage return, the non-characters U+FFFE/U+FFFF and surrogates. In a Python
# ``str`` any surrogate code point is a lone one (valid pairs are already single code points).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

_SPACE_RUN = re.compile(" {2,}")
_BLANK_LINES = re.compile(r"\n{2,}")

# ``&amp;amp;`` is an entity escaped twice by two careless export steps; decoding twice undoes
# that, decoding without limit could turn a literal "&amp;lt;" written about HTML into "<".
_MAX_UNESCAPE = 2


def _unescape(s: str) -> str:
    """``html.unescape`` at most ``_MAX_UNESCAPE`` times, stopping early once nothing changes."""
    for _ in range(_MAX_UNESCAPE):
        if "&" not in s:
            break
        decoded = html.unescape(s)
        if decoded == s:
            break
        s = decoded
    return s


def clean_text(s: str) -> str:
    """Normalise one text field; line structure (``\\n``) is kept, lines are stripped.

    Order matters: entities are decoded first because they can produce any of the characters
    handled below (``&#8206;``, ``&nbsp;``, ``&#769;``); invisible marks are removed *before* NFC
    so that a combining tone mark separated from its letter by U+200E still composes with it;
    spaces are collapsed last, after tabs and no-break spaces have become plain spaces.
    Carriage returns are line endings from Windows/old Mac files and become ``\\n``.
    """
    s = _unescape(s)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    if _TRANSLATED.search(s):
        s = s.translate(_TRANSLATE)
    s = _XML_ILLEGAL.sub("", s)
    s = unicodedata.normalize("NFC", s)
    s = _SPACE_RUN.sub(" ", s)
    return "\n".join(line.strip() for line in s.split("\n")).strip("\n")


def clean_line(s: str) -> str:
    """``clean_text`` for one-line fields (title, category, id...): line breaks become spaces.

    A decoded ``&#10;`` or a wrapped export line must not put a newline into a headline.
    """
    return " ".join(clean_text(s).split())


def clean_paragraphs(text: str) -> list[str]:
    """Clean ``text`` and split it into paragraphs on blank lines, dropping empty ones.

    Splitting after cleaning means a line holding only ``&nbsp;`` or a zero-width mark counts as
    blank, which is how such lines look to a reader. Single newlines inside a paragraph are kept.
    """
    return [p for p in _BLANK_LINES.split(clean_text(text)) if p.strip()]
