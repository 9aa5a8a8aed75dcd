"""As-you-type completions ("dak n" -> "Đắk Nông") built from article titles.

Why this is hand-written instead of using Whoosh: Whoosh's completion helpers (``expand_prefix``,
``terms_within``, the spelling ``Corrector``) walk the terms of *one* field of the index. Our fields
hold analysed syllables (``analysis.analyze``): the folded field has lost the marks and capitals a
suggestion has to show ("dak nong", not "Đắk Nông"), the exact field cannot be matched by a prefix
typed without marks, and neither knows which syllables follow each other in a title. What readers
type has to be matched diacritic- and case-insensitively, whole phrases have to be shown the way the
newsroom writes them, and the answer has to come back within a keystroke. So this module keeps its
own small structure.

Two sources of completions
--------------------------
1. Frequent *syllable n-grams* (1 to ``NGRAM_MAX`` = 3 syllables) of the titles, never across a
   punctuation gap (consecutive tokens are those whose ``pos`` differs by 1; the joined compound
   tokens such as ``tphcm`` are skipped), kept when they occur at least ``min_count`` times. The
   key is the folded form ("dak nong"); the display form is the surface form most often written in
   the titles. Title-initial occurrences are case-neutral: "Hội nghị" at the start of a title
   supports "hội nghị" as much as "Hội nghị", so a lowercase-start variant seen mid-title wins over
   the capital forced by the title start, while "Đắk Nông" (capitalised wherever it occurs) stays
   capitalised. A form seen only at title starts is shown as written. Between the syllables the
   display keeps a joiner written without spaces ("TP.HCM", "Covid-19", "26/6") and otherwise uses
   one space.
2. Whole titles whose folded form starts with the folded prefix.

Data structure
--------------
Each source is a ``_PrefixIndex``: parallel lists sorted by folded key (``keys``, ``displays``) plus
the static rank of each entry (n-grams: count descending, then shorter, then alphabetical; titles:
shorter first, then alphabetical). A prefix selects the contiguous range ``[lo, hi)`` of keys with
two ``bisect`` calls; the best ``k`` entries of the range are the ``k`` smallest ranks. Ranges
larger than ``_BUCKET_MIN`` entries (short prefixes like "t", "ng") have their best
``_BUCKET_TOP`` ranks precomputed in a dict keyed by the prefix string, so no keystroke ever scans
more than ``_BUCKET_MIN`` ranks (unless ``limit`` exceeds ``_BUCKET_TOP``).

Matching a prefix
-----------------
The prefix is NFC-normalised and analysed like a document; every complete word matches by its
folded syllable, the last (partial) word matches either its folded canonical syllable or its plainly
folded letters ("hy" must reach "hyundai" although the syllable "hy" is canonically "hi"). A prefix
ending in a space (or a joiner such as "TP." / "Covid-") has a complete last word, so only entries
continuing with a further syllable match. N-gram completion uses the tail of the prefix: the last
two words plus the partial one, within one clause; the words typed before the tail are kept as the
user typed them (whitespace normalised) and prepended.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence

from index.analysis import Token, analyze, fold, nfc

__all__ = ["Suggester", "NGRAM_MAX"]

NGRAM_MAX = 3
_MAX_PREFIX_CHARS = 100
_BUCKET_MIN = 1024  # ranges with more keys than this get a precomputed best list
_BUCKET_TOP = 32  # length of a precomputed best list (limits above this scan the range)

# Markers inside the build-time counter entries "key \0 flag surface".
_SEP = "\x00"
_AT_START = "\x01"  # the n-gram starts its title
_INSIDE = "\x02"


def _successor(prefix: str) -> str | None:
    """Smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class _PrefixIndex:
    """Entries sorted by folded key, each with a static rank; best-k by prefix."""

    __slots__ = ("keys", "displays", "ranks", "by_rank", "buckets")

    def __init__(self, entries: list[tuple[str, str, tuple]]) -> None:
        """``entries``: (key, display, sort key) with unique keys; smaller sort key ranks first."""
        entries.sort(key=lambda e: e[0])
        self.keys: list[str] = [e[0] for e in entries]
        self.displays: list[str] = [e[1] for e in entries]
        order = sorted(range(len(entries)), key=lambda i: entries[i][2])
        self.by_rank: list[int] = order  # rank -> index in key order
        ranks = [0] * len(order)
        for rank, i in enumerate(order):
            ranks[i] = rank
        self.ranks: list[int] = ranks
        self.buckets: dict[str, list[int]] = self._build_buckets()

    def __len__(self) -> int:
        return len(self.keys)

    def _range(self, prefix: str, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        keys = self.keys
        hi = len(keys) if hi is None else hi
        start = bisect_left(keys, prefix, lo, hi)
        succ = _successor(prefix)
        end = hi if succ is None else bisect_left(keys, succ, start, hi)
        return start, end

    def _build_buckets(self) -> dict[str, list[int]]:
        keys, ranks = self.keys, self.ranks
        buckets: dict[str, list[int]] = {}
        stack = [("", 0, len(keys))]
        while stack:
            prefix, lo, hi = stack.pop()
            if hi - lo <= _BUCKET_MIN:
                continue
            buckets[prefix] = heapq.nsmallest(_BUCKET_TOP, ranks[lo:hi])
            depth = len(prefix)
            i = lo
            if len(keys[i]) == depth:  # the key equal to the prefix sorts first (keys are unique)
                i += 1
            while i < hi:
                child = prefix + keys[i][depth]
                _, j = self._range(child, i, hi)
                stack.append((child, i, j))
                i = j
        return buckets

    def best(self, prefix: str, k: int) -> list[int]:
        """Ranks (ascending) of the best ``k`` entries whose key starts with ``prefix``."""
        if k <= 0:
            return []
        cached = self.buckets.get(prefix)
        if cached is not None and k <= len(cached):
            return cached[:k]
        lo, hi = self._range(prefix)
        if hi - lo <= k:
            return sorted(self.ranks[lo:hi])
        return heapq.nsmallest(k, self.ranks[lo:hi])

    def key_of(self, rank: int) -> str:
        return self.keys[self.by_rank[rank]]

    def display_of(self, rank: int) -> str:
        return self.displays[self.by_rank[rank]]


def _separator(between: str) -> str:
    """What the display puts between two syllables: a joiner written without spaces, else a space."""
    if between and between.split() == [between]:
        return between
    return " "


def _word_tokens(text: str) -> list[Token]:
    """Syllable tokens of NFC ``text`` without the joined compound tokens ("tphcm")."""
    return [t for t in analyze(text) if t.end_pos == t.pos]


def _choose_display(forms: list[tuple[bool, str, int]]) -> str:
    """The surface form to show, from (at title start?, surface, count) observations.

    A title-initial occurrence supports any form whose first letter capitalised gives it, so a
    lowercase-start form seen inside titles beats a capital forced by the title start.
    """
    if len(forms) == 1:
        return forms[0][1]
    inside: Counter[str] = Counter()
    at_start: Counter[str] = Counter()
    for starts, surface, count in forms:
        (at_start if starts else inside)[surface] += count
    best: tuple[int, int, str] | None = None
    for form in set(inside) | set(at_start):
        capitalised = form[:1].upper() + form[1:]
        score = inside[form] + at_start[capitalised]
        cand = (score, inside[form], form)
        if best is None or cand > best:
            best = cand
    assert best is not None
    return best[2]


class Suggester:
    """Completions for a typed prefix from frequent title n-grams and whole titles. Immutable."""

    __slots__ = ("_ngrams", "_titles")

    def __init__(self, ngrams: _PrefixIndex, titles: _PrefixIndex) -> None:
        self._ngrams = ngrams
        self._titles = titles

    # ------------------------------------------------------------------ build

    @classmethod
    def build(cls, titles: Iterable[str], min_count: int = 2) -> Suggester:
        """Index ``titles`` (any order; duplicates are fine). N-grams need ``min_count`` occurrences."""
        counts: Counter[str] = Counter()
        title_entries: dict[str, tuple[int, str]] = {}  # folded key -> (length, display)
        batch: list[str] = []
        for raw in titles:
            if not isinstance(raw, str):
                continue
            text = " ".join(nfc(raw).split())
            toks = _word_tokens(text)
            if not toks:
                continue
            key = " ".join(t.folded for t in toks)
            entry = (len(text), text)
            old = title_entries.get(key)
            if old is None or entry < old:
                title_entries[key] = entry
            _ngram_entries(text, toks, batch)
            if len(batch) > 50_000:
                counts.update(batch)
                batch.clear()
        counts.update(batch)
        del batch

        totals: dict[str, int] = {}
        for entry, count in counts.items():
            key = entry[: entry.index(_SEP)]
            totals[key] = totals.get(key, 0) + count
        forms: dict[str, list[tuple[bool, str, int]]] = {}
        for entry, count in counts.items():
            key, _, rest = entry.partition(_SEP)
            if totals[key] >= min_count:
                forms.setdefault(key, []).append((rest[0] == _AT_START, rest[1:], count))
        del counts

        ngram_rows = []
        for key, observed in forms.items():
            display = _choose_display(observed)
            ngram_rows.append((key, display, (-totals[key], len(display), key, display)))
        del forms, totals
        title_rows = [(key, text, (length, key, text)) for key, (length, text) in title_entries.items()]
        return cls(_PrefixIndex(ngram_rows), _PrefixIndex(title_rows))

    # --------------------------------------------------------------- queries

    def __len__(self) -> int:
        """Number of entries: frequent n-grams plus distinct titles."""
        return len(self._ngrams) + len(self._titles)

    @property
    def ngram_count(self) -> int:
        return len(self._ngrams)

    @property
    def title_count(self) -> int:
        return len(self._titles)

    def complete(self, prefix: str, limit: int = 10) -> list[str]:
        """Up to ``limit`` completions of ``prefix``: n-grams by frequency, then titles, no duplicates.

        Diacritic- and case-insensitive, composed or decomposed input. Returns [] for an empty or
        punctuation-only prefix, or one longer than 100 characters; never raises on odd text.
        """
        if not isinstance(prefix, str) or not isinstance(limit, int) or limit <= 0:
            return []
        if len(prefix) > 4 * _MAX_PREFIX_CHARS:  # cheap guard before normalising
            return []
        text = nfc(prefix)
        if len(text) > _MAX_PREFIX_CHARS:
            return []
        toks = _word_tokens(text)
        if not toks:
            return []
        last = toks[-1]
        complete_last, gap_after = _last_word_state(text, last)

        # Variants of the whole folded prefix for the last word (see module docstring).
        if complete_last:
            last_variants = [last.folded]
        else:
            last_variants = [last.folded]
            plain = fold(text[last.start : last.end].lower())
            if plain != last.folded:
                last_variants.append(plain)
        suffix = " " if complete_last else ""

        results: list[str] = []
        seen: set[str] = set()

        # 1. n-grams: the tail of the prefix within one clause.
        if not gap_after:
            room = NGRAM_MAX - 1 if complete_last else NGRAM_MAX
            start = len(toks) - 1
            while start > 0 and len(toks) - start < room and toks[start - 1].pos == toks[start].pos - 1:
                start -= 1
            tail = toks[start:]
            head_tokens = toks[:start]
            if head_tokens:
                raw_head = text[head_tokens[0].start : tail[0].start]
                head = " ".join(raw_head.split())
                if raw_head[-1:].isspace():
                    head += " "
                head_key = " ".join(t.folded for t in head_tokens) + " "
            else:
                head, head_key = "", ""
            tail_stem = "".join(t.folded + " " for t in tail[:-1])
            ranks = _merge(
                [self._ngrams.best(tail_stem + v + suffix, limit) for v in last_variants], limit
            )
            for rank in ranks:
                key = head_key + self._ngrams.key_of(rank)
                if key not in seen:
                    seen.add(key)
                    results.append(head + self._ngrams.display_of(rank))

        # 2. whole titles starting with the whole folded prefix.
        if len(results) < limit:
            stem = "".join(t.folded + " " for t in toks[:-1])
            want = limit - len(results) + len(seen)
            if complete_last:
                ranks = _merge([self._titles.best(stem + last.folded + " ", want), self._exact_title(stem + last.folded)], want)
            else:
                ranks = _merge([self._titles.best(stem + v, want) for v in last_variants], want)
            for rank in ranks:
                key = self._titles.key_of(rank)
                if key not in seen:
                    seen.add(key)
                    results.append(self._titles.display_of(rank))
                    if len(results) >= limit:
                        break
        return results[:limit]

    def _exact_title(self, key: str) -> list[int]:
        index = self._titles
        i = bisect_left(index.keys, key)
        if i < len(index.keys) and index.keys[i] == key:
            return [index.ranks[i]]
        return []


def _merge(rank_lists: Sequence[list[int]], k: int) -> list[int]:
    if len(rank_lists) == 1:
        return rank_lists[0][:k]
    return sorted(set().union(*rank_lists))[:k]


def _last_word_state(text: str, last: Token) -> tuple[bool, bool]:
    """(is the last word complete?, does a punctuation gap follow it?).

    Nothing after the last word: it is partial. Whitespace or a joiner ("TP.", "Covid-") after
    it: complete, same clause. Other punctuation ("Hà Nội, "): complete, and a gap follows, which
    is decided the way ``analyze`` decides it, by analysing the text with a probe syllable added.
    """
    trailing = text[last.end :]
    if not trailing:
        return False, False
    if trailing.isspace():
        return True, False
    probe = _word_tokens(text + "0")
    if probe and probe[-1].start == len(text):
        return True, probe[-1].pos != last.pos + 1
    return True, False  # the probe merged into the last word ("1.50" + "0"): no gap


def _ngram_entries(text: str, toks: list[Token], out: list[str]) -> None:
    """Append one counter entry "key \\0 flag surface" per n-gram occurrence of one title."""
    folded = [t.folded for t in toks]
    surface = [text[t.start : t.end] for t in toks]
    seps = [""] + [_separator(text[a.end : b.start]) for a, b in zip(toks, toks[1:])]
    n = len(toks)
    for i in range(n):
        key = folded[i]
        surf = surface[i]
        out.append(key + _SEP + (_AT_START if i == 0 else _INSIDE) + surf)
        prev = toks[i]
        for j in range(i + 1, min(i + NGRAM_MAX, n)):
            tok = toks[j]
            if tok.pos != prev.pos + 1:
                break
            key = key + " " + folded[j]
            surf = surf + seps[j] + surface[j]
            out.append(key + _SEP + (_AT_START if i == 0 else _INSIDE) + surf)
            prev = tok
