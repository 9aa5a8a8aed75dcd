"""Highlighted titles and best-passage snippets, as ``Span`` lists over the stored NFC text.

Why not Whoosh's highlighter: it needs character offsets stored in the index (costly on bodies)
and its analyzer view of the text; ours re-analyses the stored text with ``index.analysis`` so a
syllable matches in its exact or folded form exactly as it did in the search, and offsets point
into the NFC text the reader sees. Spans carry plain text; callers escape it.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Set as AbstractSet

from index.analysis import Token, analyze, nfc
from index.api import Span

SNIPPET_CHARS = 260
WINDOW_TOKENS = 40
MAX_ANALYSED_CHARS = 8_000  # long bodies: look for the best passage in the first 8k characters


def _spans(text: str, tokens: list[Token], hit: list[bool], start: int, end: int) -> list[Span]:
    spans: list[Span] = []
    cursor = start
    for tok, is_hit in zip(tokens, hit):
        if not is_hit or tok.start < start or tok.end > end or tok.end_pos != tok.pos:
            continue
        if tok.start < cursor:
            continue
        if tok.start > cursor:
            spans.append(Span(text[cursor : tok.start]))
        spans.append(Span(text[tok.start : tok.end], True))
        cursor = tok.end
    if cursor < end:
        spans.append(Span(text[cursor:end]))
    return _merge(spans)


def _merge(spans: list[Span]) -> list[Span]:
    """Join neighbouring spans of the same kind (adjacent hits read as one highlighted phrase)."""
    out: list[Span] = []
    for span in spans:
        if out and out[-1].hit == span.hit:
            out[-1] = Span(out[-1].text + span.text, span.hit)
        elif out and span.hit and out[-1].hit is False and out[-1].text == " " and len(out) > 1 and out[-2].hit:
            out[-2] = Span(out[-2].text + " " + span.text, True)
            out.pop()
        else:
            out.append(span)
    return out


def _hits(tokens: list[Token], terms: AbstractSet[str], pairs: AbstractSet[str]) -> list[bool]:
    """A syllable is marked when it matched alone (``terms``) or as part of a matched pair."""
    hit = [t.folded in terms or t.exact in terms for t in tokens]
    if pairs:
        for i in range(len(tokens) - 1):
            a, b = tokens[i], tokens[i + 1]
            if b.pos == a.pos + 1 and f"{a.folded} {b.folded}" in pairs:
                hit[i] = hit[i + 1] = True
    return hit


def highlight(text: str, terms: AbstractSet[str], pairs: AbstractSet[str] = frozenset()) -> list[Span]:
    """The whole text with every matched syllable marked (titles)."""
    text = nfc(text)
    tokens = [t for t in analyze(text) if t.end_pos == t.pos]
    return _spans(text, tokens, _hits(tokens, terms, pairs), 0, len(text))


def _best_paragraphs(paragraphs: list[str], terms: set[str], keep: int = 2) -> list[str]:
    """The paragraph with the most query syllables (by a cheap substring test on folded text)
    and the one after it: analysing only these instead of the whole body keeps snippets cheap."""
    if len(paragraphs) <= keep:
        return paragraphs
    folded_terms = [t for t in terms if t]
    best, best_score = 0, -1
    for i, paragraph in enumerate(paragraphs[:60]):
        text = fold_text(paragraph)
        score = sum(1 for t in folded_terms if t in text)
        if score > best_score:
            best, best_score = i, score
            if score == len(folded_terms):
                break  # no later paragraph can score more, and the first of equals wins
    return paragraphs[best : best + keep]


def _fold_table() -> dict[int, str | None]:
    """Latin letters with marks (composed, as in NFC text) -> their base letter, lowercase; the
    combining marks themselves (NFD text) -> deleted; đ -> d."""
    table: dict[int, str | None] = {c: None for c in range(0x300, 0x370)}
    for start, end in ((0xC0, 0x250), (0x1E00, 0x1F00)):
        for c in range(start, end):
            ch = chr(c).lower()
            base = "".join(x for x in unicodedata.normalize("NFD", ch) if not unicodedata.combining(x))
            if base != chr(c):
                table[c] = base
    table[ord("đ")] = table[ord("Đ")] = "d"
    return table


_FOLD = _fold_table()


def fold_text(text: str) -> str:
    """Lowercase, marks stripped, đ -> d, for a substring pre-test (not cached: paragraphs are unique).

    One ``str.translate`` (C) instead of NFD plus a per-character filter: this ran on up to 60
    paragraphs of each of ten hits per query, and was a fifth of the cost of a search."""
    return text.lower().translate(_FOLD)


def snippet(paragraphs: list[str], terms: set[str], pairs: set[str], max_chars: int = SNIPPET_CHARS) -> list[Span]:
    """The best passage of the body: the window with the most distinct matched syllables, with
    adjacent matched pairs counting extra, cut at word boundaries to about ``max_chars``."""
    chosen = _best_paragraphs(paragraphs, terms)
    later = bool(paragraphs) and chosen[:1] != paragraphs[:1]  # the passage is not at the start
    text = nfc("\n".join(chosen))[:MAX_ANALYSED_CHARS]
    tokens = [t for t in analyze(text) if t.end_pos == t.pos]
    if not tokens:
        return [Span(text[:max_chars])]
    hit = _hits(tokens, terms, pairs)
    best_start, best_score = 0, -1.0
    hits_at = [i for i, h in enumerate(hit) if h]
    for a, start in enumerate(hits_at):
        b = bisect.bisect_left(hits_at, start + WINDOW_TOKENS, a)
        window = hits_at[a:b]
        distinct = {tokens[i].folded for i in window}
        adjacent = sum(
            1 for i, j in zip(window, window[1:])
            if j == i + 1 and tokens[j].pos == tokens[i].pos + 1 and f"{tokens[i].folded} {tokens[j].folded}" in pairs
        )
        score = len(distinct) * 2 + adjacent * 1.5 - start * 1e-6
        if score > best_score:
            best_start, best_score = start, score
    # Start at the beginning of the clause holding the first hit, if it is near (8 tokens).
    first = best_start
    back = first
    while back > 0 and first - back < 8 and tokens[back - 1].pos == tokens[back].pos - 1:
        back -= 1
    if back > 0 and tokens[back - 1].pos == tokens[back].pos - 1:
        back = first  # the clause starts too far back: start at the hit itself
    char_start = 0 if back == 0 else tokens[back].start
    char_end = min(len(text), char_start + max_chars)
    if char_end < len(text):
        last = [t for t in tokens if t.end <= char_end]
        char_end = last[-1].end if last else char_end
    # A passage stays within one paragraph when that paragraph is long enough.
    newline = text.find("\n", tokens[first].start)
    if newline != -1 and newline < char_end and newline - char_start > max_chars // 2:
        char_end = newline
    spans = _spans(text, tokens, hit, char_start, char_end)
    spans = [Span(s.text.replace("\n", " "), s.hit) for s in spans]
    if char_start > 0 or later:
        spans.insert(0, Span("… "))
    if char_end < len(text):
        spans.append(Span(" …"))
    return _merge(spans)
