"""Copied passages: the articles that hold a query's syllables as one contiguous run, whatever the
punctuation, sentence or paragraph breaks and number separators between them.

Why by hand: the index stores no positions (``index.schema``), and its pair fields never pair
across punctuation, so a passage pasted from "…của: người mua, doanh nghiệp và…" misses the
adjacent-pairs tier, while articles holding the same pairs scattered satisfy it. A passage query
(``MIN_SYLLABLES`` or more syllables, nothing quoted or excluded) therefore gets a second look:

1. candidates: the articles whose title or body holds all but at most ``MAX_BREAKS`` of the
   query's adjacent pairs, most pairs and rarest pairs first, at most ``MAX_CHECKED`` of them. A
   pair across a break is found in ``body_bridge`` (``index.analysis.bridges``), so an article
   holding the passage holds all its pairs; in an index built before that field, a break is a
   pair the index does not have;
2. each candidate's stored title and body, folded, is matched against the syllables in order with
   only non-letters between them (between two numbers, nothing at all: "12 500" finds "12.500").

The best-ranked articles of the answer are matched the same way (an article among thousands
holding the same pairs may not be among the candidates checked, a title match say), and the search
puts every article found to hold the run before the rest, and reports at least the syllables
tier (every syllable is present). A regular expression over folded text (``str`` methods and ``re``
in C) keeps this at a few milliseconds for the candidates checked.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from whoosh.searching import Searcher

from index.docsets import DocSets

MIN_SYLLABLES = 4
MAX_CHECKED = 24  # stored articles read and matched per query at most
MAX_BREAKS = 2  # punctuation or line breaks a passage may cross and still be found
_COMBINING = re.compile(r"[\u0300-\u036f]")
# A thousands separator ("12.500", "12,500", "12 500"): the analyzer writes such a number as one
# syllable ("12500"), so the text is matched with them removed, and a query's "12 500" is merged.
_GROUP_SEPARATOR = re.compile(r"(?<=\d)[., ](?=\d{3}(?!\d))")

DocSet = frozenset[int] | set[int]


def fold_text(text: str) -> str:
    """Lower case, marks stripped, đ -> d: ``index.analysis.fold`` done with C string methods
    (it runs on whole article bodies here)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    return _COMBINING.sub("", unicodedata.normalize("NFD", text)).lower()


@lru_cache(maxsize=256)
def pattern(syllables: tuple[str, ...]) -> re.Pattern[str]:
    """The syllables in order, separated by anything but letters and digits (by nothing at all
    between two numbers), not inside a longer word."""
    parts = [re.escape(syllables[0])]
    for before, after in zip(syllables, syllables[1:]):
        gap = r"[\W_]*" if before.isdigit() and after.isdigit() else r"[\W_]+"
        parts.append(gap + re.escape(after))
    return re.compile(r"(?<![^\W_])" + "".join(parts) + r"(?![^\W_])")


def merge_numbers(syllables: list[str]) -> list[str]:
    """A number typed with its thousands written apart ("12", "500") as the analyzer indexes it
    ("12500")."""
    out: list[str] = []
    for s in syllables:
        if out and out[-1].isdigit() and len(s) == 3 and s.isdigit():
            out[-1] += s
        else:
            out.append(s)
    return out


def _text(searcher: Searcher, docnum: int) -> str:
    doc = json.loads(searcher.stored_fields(docnum)["doc"])
    body = doc.get("body") or []
    paragraphs = body if isinstance(body, list) else [str(body)]
    return fold_text("\n".join([str(doc.get("title", "")), *map(str, paragraphs)]))


def contiguous_matches(searcher: Searcher, docsets: DocSets, syllables: list[str],
                       allowed: DocSet | None) -> set[int]:
    """Articles (within ``allowed``) whose body holds ``syllables`` as one run.

    Candidates are read from the pair postings of titles and bodies (short, and mostly read
    already by the adjacent tier): an article holding the passage across at most ``MAX_BREAKS``
    punctuation or line breaks holds all but that many of its adjacent pairs; those holding more
    pairs, then rarer ones, are checked first. The syllables' own postings, long for common words,
    are never read here."""
    if len(syllables) < MIN_SYLLABLES:
        return set()
    syllables = merge_numbers(syllables)
    pairs = list(dict.fromkeys(f"{a} {b}" for a, b in zip(syllables, syllables[1:])))
    bridged = "body_bridge" in searcher.schema  # an index built before the field: pairs only
    held: Counter[int] = Counter()
    sets = []
    for pair in pairs:
        having = docsets.term("body_pair", pair) | docsets.term("title_pair", pair)
        if bridged:
            having = having | docsets.term("body_bridge", pair)
        held.update(having)  # counted in C; the weights below are computed for candidates only
        sets.append(having)
    need = max(1, len(pairs) - MAX_BREAKS)
    candidates = [d for d, n in held.items() if n >= need and (allowed is None or d in allowed)]
    rarity = [1.0 / (len(having) or 1) for having in sets]  # a rare pair says more about which article

    def weight(d: int) -> float:
        return sum(r for r, having in zip(rarity, sets) if d in having)

    checked = sorted(candidates, key=lambda d: (-held[d], -weight(d), d))[:MAX_CHECKED]
    return holding(searcher, syllables, checked)


def holding(searcher: Searcher, syllables: list[str], docnums: Iterable[int]) -> set[int]:
    """Those of ``docnums`` whose title or body holds ``syllables`` as one run."""
    wanted = pattern(tuple(merge_numbers(syllables)))
    return {d for d in docnums if wanted.search(_GROUP_SEPARATOR.sub("", _text(searcher, d)))}
