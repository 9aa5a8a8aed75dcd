"""Copied passages: the articles that hold a query's syllables as one contiguous run, whatever the
punctuation, sentence or paragraph breaks and number separators between them.

Why by hand: the index stores no positions (``index.schema``), and its pair fields never pair
across punctuation, so a passage pasted from "…của: người mua, doanh nghiệp và…" misses the
adjacent-pairs tier, while articles holding the same pairs scattered satisfy it. A passage query
(``MIN_SYLLABLES`` or more syllables, not quoted as a whole, nothing excluded) gets a second look:

1. candidates: a pair across a break is found in ``body_bridge`` (``index.analysis.bridges``),
   so an article holding the passage holds all its pairs: the candidates are the articles holding
   every pair, found by intersecting the pairs' articles from the rarest pair on, until few are
   left (all checked, up to ``SMALL_POOL``; more, and only the answer's best-ranked articles are
   checked, below). In an index built before that field a break is a pair
   the index does not have (and a number may be written with its groups apart): the articles
   holding all but at most ``MAX_BREAKS`` of the pairs, most pairs and rarest first,
   ``MAX_CHECKED`` of them;
2. each candidate's stored title and body, folded, is matched against the syllables in order with
   only non-letters between them (between two numbers, nothing at all: "12 500" finds "12.500").

Unless every article that may hold the run was checked, the best-ranked articles of the answer are matched the same way
(an article among thousands holding the same pairs may not be among those checked), and the search
puts every article found to hold the run before the rest, and reports at least the syllables
tier (every syllable is present). A regular expression over folded text (``str`` methods and ``re``
in C) keeps this at a few milliseconds for the candidates checked.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from whoosh.searching import Searcher

from index.docsets import DocSets
from index.snippets import fold_text

MIN_SYLLABLES = 4
MAX_CHECKED = 24  # stored articles read and matched per query, unless more hold every pair
MAX_FULL = 64  # articles holding every pair checked at most
SMALL_POOL = 32  # articles holding the rarest pair, all checked without reading the other pairs' postings
MAX_BREAKS = 2  # punctuation or line breaks a passage may cross and still be found
# A thousands separator ("12.500", "12,500", "12 500"): the analyzer writes such a number as one
# syllable ("12500"), so the text is matched with them removed, and a query's "12 500" is merged.
_GROUP_SEPARATOR = re.compile(r"(?<=\d)[., ](?=\d{3}(?!\d))")

DocSet = frozenset[int] | set[int]


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
                       allowed: DocSet | None) -> tuple[set[int], set[int], bool]:
    """Articles (within ``allowed``) whose body holds ``syllables`` as one run; the articles
    checked; and whether every article that can hold the run was among them (then the best-ranked
    articles of the answer need no look of their own).

    Candidates come from the pair postings of titles and bodies (short, and mostly read already by
    the adjacent tier); the syllables' own postings, long for common words, are never read here.
    In an index with ``body_bridge`` an article holding the run holds every one of its pairs,
    across breaks too (``_holding_every_pair``). Without that field, or when the query holds a
    number (which a text may write with its groups apart, or joined to another), it holds all but at most
    ``MAX_BREAKS`` of them (``_holding_most_pairs``)."""
    if len(syllables) < MIN_SYLLABLES:
        return set(), set(), True
    syllables = merge_numbers(syllables)
    pairs = list(dict.fromkeys(f"{a} {b}" for a, b in zip(syllables, syllables[1:])))
    # A number may be written with its groups apart ("12 500": the text then has pairs the merged
    # query syllable "12500" has not) or joined to another ("1-0", "U.23": the analyzer pairs the
    # joined token too): with a digit in the query, the looser count.
    if "body_bridge" in searcher.schema and not any(c.isdigit() for s in syllables for c in s):
        checked, complete = _holding_every_pair(docsets, pairs, allowed)
    else:
        checked, complete = _holding_most_pairs(searcher, docsets, pairs, allowed), False
    return holding(searcher, syllables, checked), checked, complete


def _pair_docs(docsets: DocSets, pair: str, fields: tuple[str, ...]) -> set[int]:
    return set().union(*(docsets.term(f, pair) for f in fields))


def _holding_every_pair(docsets: DocSets, pairs: list[str], allowed: DocSet | None) -> tuple[set[int], bool]:
    """The articles holding every pair: the pairs' articles intersected, rarest pair first
    (frequencies from the term table, no posting read), stopping as soon as ``SMALL_POOL`` or fewer
    remain (most passages: after one or two pairs), so that the common pairs' long postings are
    never read. All of them (complete) when that many at most, else none."""
    fields = ("body_pair", "title_pair", "body_bridge")
    pool: set[int] | None = None if allowed is None else set(allowed)
    for pair in sorted(pairs, key=lambda p: sum(docsets.df(f, p) for f in fields)):
        having = _pair_docs(docsets, pair, fields)
        pool = having if pool is None else pool & having
        if len(pool) <= SMALL_POOL:
            break
    pool = pool or set()
    if len(pool) <= SMALL_POOL:
        return pool, True
    # Many articles hold every pair (common words, "nói như thế không có"): many hold the run
    # too, and reading them all is the cost of the search; the search looks at its best-ranked
    # articles instead (not complete).
    return set(), False


def _holding_most_pairs(searcher: Searcher, docsets: DocSets, pairs: list[str], allowed: DocSet | None) -> set[int]:
    """Up to ``MAX_CHECKED`` articles holding all but at most ``MAX_BREAKS`` of the pairs, most
    pairs then rarest first (every one holding all of them, up to ``MAX_FULL``)."""
    fields = ("body_pair", "title_pair", "body_bridge") if "body_bridge" in searcher.schema else (
        "body_pair", "title_pair")
    sets = [_pair_docs(docsets, pair, fields) for pair in pairs]
    need = max(1, len(pairs) - MAX_BREAKS)
    # An article holding ``need`` of the pairs holds one of the ``len(pairs) - need + 1`` rarest
    # (it misses at most ``len(pairs) - need``): only those are candidates, and the common pairs'
    # long sets are only intersected with them (in C), never counted whole.
    by_size = sorted(sets, key=len)
    pool: set[int] = set().union(*by_size[: len(pairs) - need + 1])
    if allowed is not None:
        pool &= allowed
    held: Counter[int] = Counter()
    for having in sets:
        held.update(pool & having)
    rarity = [1.0 / (len(having) or 1) for having in sets]  # a rare pair says more about which article

    def key(d: int) -> tuple[int, float, int]:
        return -held[d], -sum(r for r, having in zip(rarity, sets) if d in having), d

    full = [d for d, n in held.items() if n == len(pairs)]
    if len(full) > MAX_FULL:
        return set(heapq.nsmallest(MAX_FULL, full, key=key))
    if len(full) >= MAX_CHECKED:
        return set(full)
    partial = [d for d, n in held.items() if need <= n < len(pairs)]
    return set(full + heapq.nsmallest(MAX_CHECKED - len(full), partial, key=key))


def holding(searcher: Searcher, syllables: list[str], docnums: Iterable[int]) -> set[int]:
    """Those of ``docnums`` whose title or body holds ``syllables`` as one run."""
    merged = tuple(merge_numbers(syllables))
    wanted = pattern(merged)
    if not any(s.isdigit() for s in merged):
        return {d for d in docnums if wanted.search(_text(searcher, d))}
    return {d for d in docnums if wanted.search(_GROUP_SEPARATOR.sub("", _text(searcher, d)))}
