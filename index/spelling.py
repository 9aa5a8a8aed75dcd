"""Spelling: one-edit corrections of query syllables, checked against what the index holds.

The planner (``index.plan``) uses them to match through typos (the fuzzy tier's variants, the
syllables tier's pair corrections); the search (``index.search``) offers "did you mean" with them
when a query finds little. Every candidate is a folded syllable the index knows, so a correction
can only ever point at words that occur in some article.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from whoosh.reading import IndexReader

from index.analysis import PAIR_SEP, analyze, nfc
from index.query import Alternative

FUZZY_MIN_LEN = 4  # shorter syllables have too many one-edit neighbours to guess from
FUZZY_MAX_VARIANTS = 6
WEAK_PAIR_DF = 20  # an adjacent pair seen this rarely may be a typo (see Speller.pair_corrections)
MAX_SUGGESTION_SYLLABLES = 8  # longer queries get no "did you mean"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

DocSet = frozenset[int] | set[int]


def one_edit(s: str) -> set[str]:
    """Every string one insertion, deletion, substitution or transposition away from ``s``."""
    splits = [(s[:i], s[i:]) for i in range(len(s) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in _ALPHABET}
    out |= {a + c + b for a, b in splits for c in _ALPHABET}
    out.discard(s)
    return out


def _pair(a: str, b: str) -> str:
    return a + PAIR_SEP + b


def _plain(folded: list[str] | tuple[str, ...]) -> Alternative:
    """An alternative of folded syllables, as if typed without marks."""
    return Alternative(tuple(folded), tuple(folded), tuple(False for _ in folded))


class TermStats(Protocol):
    """What a speller needs to know of an index's terms (``Lexicon`` for Whoosh; the cluster
    engine has its own, ``index.typesense.lexicon``)."""

    def df(self, kind: str, term: str) -> int: ...

    def known(self, syllable: str) -> bool: ...


class Lexicon:
    """What the open index knows of terms, for one query: document frequencies over the title and
    body fields of a kind ("folded", "pair", "exact"), cached, and the folded vocabulary."""

    __slots__ = ("_field_df", "_vocabulary", "_df")

    def __init__(self, reader: IndexReader, vocabulary: Callable[[], frozenset[str]] | None = None,
                 field_df: Callable[[str, str], int] | None = None) -> None:
        """``field_df``: a field's document frequency of a term, when the engine caches them across
        queries (``DocSets.df``: a query's speller asks about hundreds of terms, each a look-up in
        every segment's term table otherwise); the reader's own by default."""
        self._field_df = field_df if field_df is not None else reader.doc_frequency
        self._vocabulary = vocabulary  # folded syllables of the index, when the engine keeps them
        self._df: dict[tuple[str, str], int] = {}

    def df(self, kind: str, term: str) -> int:
        key = (kind, term)
        if key not in self._df:
            self._df[key] = self._field_df(f"title_{kind}", term) + self._field_df(f"body_{kind}", term)
        return self._df[key]

    def known(self, syllable: str) -> bool:
        """Is this folded syllable in the index? (in-memory vocabulary when the engine has one:
        a term lookup in Whoosh's on-disk table is slow, and typo tolerance tries hundreds)"""
        if self._vocabulary is not None:
            return syllable in self._vocabulary()
        return self.df("folded", syllable) > 0


class Speller:
    """One-edit corrections for the syllables of one query (pair corrections cached)."""

    __slots__ = ("lexicon", "_corrections")

    def __init__(self, lexicon: TermStats) -> None:
        self.lexicon = lexicon
        self._corrections: dict[Alternative, list[Alternative]] = {}

    def variants(self, s: str) -> list[str]:
        """Folded syllables one edit away from ``s`` that the index knows, most frequent first."""
        if len(s) < FUZZY_MIN_LEN or not s.isalnum():
            return []
        df, known = self.lexicon.df, self.lexicon.known
        found = [(df("folded", v), v) for v in one_edit(s) if known(v)]
        found = [f for f in found if f[0] > 0]
        found.sort(key=lambda f: (-f[0], f[1]))
        return [v for _, v in found[:FUZZY_MAX_VARIANTS]]

    def pair_corrections(self, alt: Alternative) -> list[Alternative]:
        """The alternative with one edit on each syllable next to an adjacent pair the index does
        not know, chosen so that every pair becomes known (best by pair frequency)."""
        cached = self._corrections.get(alt)
        if cached is not None:
            return cached
        df, known = self.lexicon.df, self.lexicon.known
        folded = list(alt.folded)
        n = len(folded)
        pair_df = [df("pair", _pair(folded[i], folded[i + 1])) for i in range(n - 1)]
        # Pairs the index does not know, or knows only a few times (a typo can make a real but rare
        # pair: "không uoc" for "không được").
        missing = [i for i, count in enumerate(pair_df) if count <= WEAK_PAIR_DF]
        corrected = list(folded)
        for j in sorted({k for i in missing for k in (i, i + 1)}):
            s = folded[j]
            if len(s) < 2 or not s.isalnum() or (j > 0 and corrected[j - 1] != folded[j - 1]):
                continue
            best, best_gain = None, 0
            # Sorted: a set's order varies with the process's hash seed, and the first of two
            # candidates with the same gain wins, so unsorted the same query could be corrected
            # differently by two workers (and their caches disagree).
            for v in sorted(one_edit(s)):
                if not known(v):
                    continue
                gain = 0
                neighbours = ([(corrected[j - 1], v, pair_df[j - 1])] if j > 0 else []) + (
                    [(v, folded[j + 1], pair_df[j])] if j < n - 1 else [])
                for a, b, old in neighbours:
                    count = df("pair", _pair(a, b))
                    if count == 0 or (old and count < max(5, 10 * old)):
                        break
                    gain += count
                else:
                    if gain > best_gain:
                        best, best_gain = v, gain
            if best is not None:
                corrected[j] = best
        result = []
        if corrected != folded and all(df("pair", _pair(a, b)) > 0 for a, b in zip(corrected, corrected[1:])):
            result = [_plain(corrected)]
        self._corrections[alt] = result
        return result

    def did_you_mean(self, syllables: list[str], total: int,
                     matching: Callable[[Alternative], tuple[int, Callable[[], dict[str, Any]]]]) -> str | None:
        """A one-edit correction of the query's folded ``syllables`` that matches many more articles
        than the query's ``total`` full matches, spelt with the diacritics found in the best matching
        article ("hoi ngih" -> "hội nghị").

        ``matching(alt)``: how many articles (within the request's filters) match ``alt``, adjacent
        when it can be, and a function reading the stored JSON document of the first of them."""
        if not syllables or len(syllables) > MAX_SUGGESTION_SYLLABLES:
            return None
        enough = max(2, total * 3)
        for alt in self.pair_corrections(_plain(syllables)):
            count, first = matching(alt)
            if count > enough:
                return restore_marks(list(alt.folded), first())
        corrected = self.frequent_neighbours(syllables)
        if corrected == syllables:
            return None
        count, first = matching(_plain(corrected))
        if count <= enough:
            return None
        return restore_marks(corrected, first())

    def frequent_neighbours(self, syllables: list[str]) -> list[str]:
        """Each syllable replaced by a one-edit variant found in clearly more articles (3x and
        more), the one that best follows the syllable before it; kept when there is none."""
        df = self.lexicon.df
        corrected: list[str] = []
        for s in syllables:
            own = df("folded", s)
            options = [s] + [v for v in self.variants(s) if df("folded", v) >= max(2, 3 * own + 1)]
            if len(options) == 1:
                corrected.append(s)
                continue
            prev = corrected[-1] if corrected else None

            def fitness(v: str, prev: str | None = prev) -> tuple[int, int]:
                pair = df("pair", _pair(prev, v)) if prev else 0
                return (pair, df("folded", v))

            corrected.append(max(options, key=fitness))
        return corrected


def restore_marks(folded: list[str], doc: dict[str, Any]) -> str:
    """Spell the corrected syllables as they appear in an article that contains them."""
    for text in (doc.get("title", ""), doc.get("body", "")[:20000]):
        text = nfc(text)
        tokens = [t for t in analyze(text) if t.end_pos == t.pos]
        n = len(folded)
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            if [t.folded for t in window] == folded and all(
                window[k + 1].pos == window[k].pos + 1 for k in range(n - 1)
            ):
                return " ".join(t.exact for t in window)
    return " ".join(folded)
