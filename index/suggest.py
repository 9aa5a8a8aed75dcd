"""As-you-type completions ("dak n" -> "Đắk Nông") built from article titles.

Why this is hand-written instead of using Whoosh: Whoosh's completion helpers (``expand_prefix``,
``terms_within``, the spelling ``Corrector``) walk the terms of *one* field of the index. Our fields
hold analysed syllables (``analysis.analyze``): the folded field has lost the marks and capitals a
suggestion has to show ("dak nong", not "Đắk Nông"), the exact field cannot be matched by a prefix
typed without marks, and neither knows which syllables follow each other in a title. Readers type
without marks, in any case, composed or decomposed; suggestions must show phrases the way the
newsroom writes them, and must come back within a keystroke. So this module keeps its own small
structure, fed by the same ``analyze`` as the index so that both sides fold text identically.

Two sources of completions
--------------------------
1. Frequent *syllable n-grams* (1 to ``NGRAM_MAX`` = 3 syllables) of the titles, never across a
   punctuation gap (consecutive tokens are those whose ``pos`` differs by 1; joined compound tokens
   such as ``tphcm`` are skipped), kept when they occur at least ``min_count`` times. The key is
   the folded form ("dak nong"); the display is the surface form most often written in the titles.
   Capitalisation rule: an occurrence at the start of a title is case-neutral, i.e. "Hội nghị" as a
   title's first words counts for both "Hội nghị" and "hội nghị". So a lowercase-start form seen
   inside titles wins over a capital forced by the title start, while "Đắk Nông" (capitalised
   wherever it occurs) stays capitalised, and a form only ever seen at title starts is shown as
   written. Between syllables the display keeps a joiner written without spaces ("TP.HCM",
   "Covid-19", "26/6"); anything else between them (spaces, " & ") becomes one space.
2. Whole titles whose folded form starts with the folded prefix.

Data structure
--------------
Each source is a ``_PrefixIndex``: parallel lists sorted by folded key (``keys``, ``displays``) and
an array with each entry's static rank (n-grams: count descending, then shorter display, then
alphabetical; titles: shorter first, then alphabetical). A prefix selects the contiguous range of
keys that start with it by two ``bisect`` calls, and the best ``k`` entries of the range are its
``k`` smallest ranks. For every prefix whose range holds more than ``_BUCKET_MIN`` keys ("t",
"ng", "hoi "...) the best ``_BUCKET_TOP`` ranks are precomputed in a dict keyed by the prefix, so
a keystroke never looks at more than ``_BUCKET_MIN`` ranks (unless ``limit`` > ``_BUCKET_TOP``).

Build: each title is analysed once (``analyze`` is most of the build time); its syllables go
into flat integer arrays (folded-syllable id, spelling id, separator id, position). N-grams are
then counted level by level with C-level iterators (``map``/``compress``/``Counter`` over integer
codes, no per-occurrence strings), Apriori style: a bigram or trigram is only counted where both
n-grams one syllable shorter that it contains are frequent, and spellings are only counted for the
frequent n-grams: building strings per occurrence would cost far more time and memory. The steps
are functions of their own (``_read_titles``, ``_unigrams``, ``_longer_ngrams``, ``_ngram_forms``
with ``_FormCodec``, ``_choose_display``, ``_ngram_index``, ``_title_index``); the build time and
memory, and the completion latency, are measured by ``scripts/bench_suggest.py`` (figures in
docs/benchmarks.md).

Matching a prefix
-----------------
The prefix is NFC-normalised and analysed like a title. Complete words match their folded syllable.
The last, possibly partial, word matches as a prefix of its plainly folded letters; when analysis
respells it ("hy" -> "hi", "quy" -> "qui": a lone y after a consonant) the canonical spelling only
matches as a whole syllable, so "hy" reaches "Hy Lạp" and "hy vọng" but not "hiện". A prefix that
ends in a space, or in a joiner such as "TP." or "Covid-", has a complete last word, and only
entries continuing with a further syllable match. N-gram completion uses the tail of the prefix
(the last two complete words plus the partial one, within one clause); the words typed before the
tail are kept as typed (whitespace normalised) and prepended. Titles match the whole prefix.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import compress, groupby, islice, repeat
from operator import add, and_, mul, sub

from index.analysis import Token, analyze, fold, nfc

__all__ = ["Suggester", "NGRAM_MAX"]

NGRAM_MAX = 3
_MAX_PREFIX_CHARS = 100
_BUCKET_MIN = 1024  # ranges with more keys than this get a precomputed best list
_BUCKET_TOP = 32  # length of a precomputed best list (a larger limit scans the range)

# Lookup modes of _PrefixIndex.best.
_PREFIX = 0  # key starts with the string
_NEXT = 1  # key continues the string with a further syllable
_WORD = 2  # key is the string, or continues it with a further syllable


def _successor(prefix: str) -> str | None:
    """Smallest string greater than every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class _PrefixIndex:
    """Entries sorted by folded key, each with a static rank; the best k for a prefix."""

    __slots__ = ("keys", "displays", "ranks", "by_rank", "buckets")

    def __init__(self, keys: list[str], displays: list[str], order: list[int]) -> None:
        """Unique ``keys`` with their ``displays``; ``order`` lists their indices best first."""
        by_key = sorted(range(len(keys)), key=keys.__getitem__)
        # Tuples, not lists: CPython stops tracking a tuple of strings in the cycle collector, which
        # otherwise walks every entry on every full collection (index.untracked).
        self.keys: tuple[str, ...] = tuple([keys[i] for i in by_key])
        self.displays: tuple[str, ...] = tuple([displays[i] for i in by_key])
        position = array("l", [0]) * len(keys)  # input index -> position in key order
        for pos, i in enumerate(by_key):
            position[i] = pos
        del by_key
        self.by_rank = array("l", [position[i] for i in order])  # rank -> position
        ranks = array("l", [0]) * len(keys)  # position -> rank
        for rank, pos in enumerate(self.by_rank):
            ranks[pos] = rank
        self.ranks = ranks
        self.buckets: dict[str, tuple[int, ...]] = self._build_buckets()

    def __len__(self) -> int:
        return len(self.keys)

    def _range(self, prefix: str, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        keys = self.keys
        hi = len(keys) if hi is None else hi
        start = bisect_left(keys, prefix, lo, hi)
        succ = _successor(prefix)
        return start, (hi if succ is None else bisect_left(keys, succ, start, hi))

    def _build_buckets(self) -> dict[str, tuple[int, ...]]:
        keys, ranks = self.keys, self.ranks
        buckets: dict[str, tuple[int, ...]] = {}
        stack = [("", 0, len(keys))]
        while stack:
            prefix, lo, hi = stack.pop()
            if hi - lo <= _BUCKET_MIN:
                continue
            buckets[prefix] = tuple(heapq.nsmallest(_BUCKET_TOP, ranks[lo:hi]))
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

    def _prefix_best(self, prefix: str, k: int) -> list[int]:
        cached = self.buckets.get(prefix)
        if cached is not None and k <= len(cached):
            return list(cached[:k])
        lo, hi = self._range(prefix)
        if hi - lo <= k:
            return sorted(self.ranks[lo:hi])
        return heapq.nsmallest(k, self.ranks[lo:hi])

    def best(self, text: str, mode: int, k: int) -> list[int]:
        """Ranks (ascending) of the best ``k`` entries matching ``text`` in ``mode``."""
        if k <= 0:
            return []
        if mode == _PREFIX:
            return self._prefix_best(text, k)
        found = self._prefix_best(text + " ", k)
        if mode == _WORD:
            i = bisect_left(self.keys, text)
            if i < len(self.keys) and self.keys[i] == text:
                found = sorted([self.ranks[i], *found])[:k]
        return found

    def entry(self, rank: int) -> tuple[str, str]:
        """(key, display) of the entry with ``rank``."""
        i = self.by_rank[rank]
        return self.keys[i], self.displays[i]


def _separator(between: str) -> str:
    """What a display puts between two syllables: a joiner written without spaces, else a space."""
    if between == " " or not between or between.split() != [between]:
        return " "
    return between


def _word_tokens(text: str) -> list[Token]:
    """Syllable tokens of NFC ``text`` without the joined compound tokens ("tphcm")."""
    return [t for t in analyze(text) if t.end_pos == t.pos]


def _choose_display(forms: list[tuple[str, int, int]]) -> str:
    """The surface form to show, from (surface, at title start 0/1, count) observations.

    A title-initial occurrence supports every form whose first letter capitalised gives it, so a
    lowercase-start form seen inside titles beats a capital forced by the title start.
    """
    if len(forms) == 1:
        return forms[0][0]
    inside: dict[str, int] = {}
    at_start: dict[str, int] = {}
    for surface, starts, count in forms:
        counter = at_start if starts else inside
        counter[surface] = counter.get(surface, 0) + count
    best: tuple[int, int, str] = (-1, -1, "")
    for form in {*inside, *at_start}:
        seen_inside = inside.get(form, 0)
        cand = (seen_inside + at_start.get(form[:1].upper() + form[1:], 0), seen_inside, form)
        if cand > best:
            best = cand
    return best[2]


class Suggester:
    """Completions for a typed prefix from frequent title n-grams and whole titles. Immutable."""

    __slots__ = ("_ngrams", "_titles")

    def __init__(self, ngrams: _PrefixIndex, titles: _PrefixIndex) -> None:
        self._ngrams = ngrams
        self._titles = titles

    # ------------------------------------------------------------------ build

    @classmethod
    def build(cls, titles: Iterable[object], min_count: int = 2) -> Suggester:
        """Index ``titles`` (any order; repeats are fine). N-grams need ``min_count`` occurrences."""
        min_count = max(1, min_count)
        corpus, title_rows = _read_titles(titles)
        keys: list[str] = []
        displays: list[str] = []
        counts: list[int] = []
        level = _unigrams(corpus, min_count)
        for n in range(1, NGRAM_MAX + 1):
            if n > 1:
                level = _longer_ngrams(corpus, level, min_count)
            for ngram_id, forms in _ngram_forms(corpus, level):
                keys.append(level.keys[ngram_id])
                displays.append(_choose_display(forms))
                counts.append(level.counts[ngram_id])
        del corpus, level  # the per-syllable arrays are the build's largest structures
        ngrams = _ngram_index(keys, displays, counts)
        del keys, displays, counts
        title_keys, title_texts = list(title_rows), list(title_rows.values())
        del title_rows
        return cls(ngrams, _title_index(title_keys, title_texts))

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
        last_complete, gap_after = _last_word_state(text, last)
        # How the last word may match: (folded form, mode).
        if last_complete:
            last_forms = [(last.folded, _NEXT)]
        else:
            plain = fold(text[last.start : last.end].lower())
            if plain == last.folded:
                last_forms = [(plain, _PREFIX)]
            else:  # respelt by analysis ("hy" -> "hi"): the canonical form is a whole syllable
                last_forms = [(plain, _PREFIX), (last.folded, _WORD)]

        results: list[str] = []
        seen: set[str] = set()

        # 1. n-grams completing the tail of the prefix (one clause, at most NGRAM_MAX syllables).
        if not gap_after:
            room = NGRAM_MAX - 1 if last_complete else NGRAM_MAX
            first = len(toks) - 1
            while first > 0 and len(toks) - first < room and toks[first - 1].pos == toks[first].pos - 1:
                first -= 1
            head, head_key = "", ""
            if first > 0:
                typed = text[toks[0].start : toks[first].start]
                head = " ".join(typed.split()) + (" " if typed[-1:].isspace() else "")
                head_key = "".join(t.folded + " " for t in toks[:first])
            stem = "".join(t.folded + " " for t in toks[first:-1])
            found = [self._ngrams.best(stem + form, mode, limit) for form, mode in last_forms]
            ranks = _merge(found, limit)
            for rank in ranks:
                key, display = self._ngrams.entry(rank)
                if head_key + key not in seen:
                    seen.add(head_key + key)
                    results.append(head + display)

        # 2. whole titles starting with the whole prefix.
        if len(results) < limit:
            stem = "".join(t.folded + " " for t in toks[:-1])
            want = limit - len(results) + len(seen)
            title_forms = [(last.folded, _WORD)] if last_complete else last_forms
            found = [self._titles.best(stem + form, mode, want) for form, mode in title_forms]
            ranks = _merge(found, want)
            for rank in ranks:
                key, display = self._titles.entry(rank)
                if key not in seen:
                    seen.add(key)
                    results.append(display)
                    if len(results) >= limit:
                        break
        return results[:limit]


# ------------------------------------------------------------------------------ build steps
#
# Suggester.build in named steps: _read_titles turns the titles into integer arrays, _unigrams and
# _longer_ngrams find the frequent n-grams level by level, _ngram_forms counts how each one is
# written (packed by _FormCodec), _choose_display picks the form to show, and _ngram_index and
# _title_index rank the entries into _PrefixIndex structures.


@dataclass(slots=True)
class _TitleSyllables:
    """Every syllable of every title, in order, as small integers (one entry per syllable)."""

    syllables: array[int]  # folded-syllable id
    spellings: array[int]  # id of the syllable as written
    separators: array[int]  # id of what a display puts before it (see _separator); 0 is a space
    starts: bytes  # 1 for a title's first syllable
    adjacent: bytes  # adjacent[i] is 1 when syllables i and i + 1 follow each other in one clause
    syllable_words: list[str]  # id -> folded syllable
    spelling_words: list[str]  # id -> spelling
    separator_words: list[str]  # id -> separator


def _read_titles(titles: Iterable[object]) -> tuple[_TitleSyllables, dict[str, str]]:
    """The syllables of the titles as integer arrays, and each distinct title by its folded form
    (the shortest title if several fold alike). Non-strings and titles without a syllable are
    skipped. Each title is analysed once: analysis is most of the build's time."""
    syllable_ids: dict[str, int] = {}
    spelling_ids: dict[str, int] = {}
    separator_ids: dict[str, int] = {" ": 0}
    syllable_id, spelling_id, separator_id = (
        syllable_ids.setdefault,
        spelling_ids.setdefault,
        separator_ids.setdefault,
    )
    syllables, spellings, separators, positions = array("i"), array("i"), array("i"), array("i")
    starts = bytearray()
    # Positions jump by 2 between titles, so syllables i and i + 1 are consecutive exactly when
    # their positions differ by 1 (analysis also leaves a gap at punctuation).
    base = 0
    title_rows: dict[str, str] = {}
    for raw in titles:
        if not isinstance(raw, str):
            continue
        text = " ".join(nfc(raw).split())
        if text == raw:
            text = raw  # share the caller's string
        toks = _word_tokens(text)
        if not toks:
            continue
        folded = [t.folded for t in toks]
        key = " ".join(folded)
        old = title_rows.get(key)
        if old is None or (len(text), text) < (len(old), old):
            title_rows[key] = text
        syllables.extend([syllable_id(f, len(syllable_ids)) for f in folded])
        written = [text[t.start : t.end] for t in toks]
        spellings.extend([spelling_id(w, len(spelling_ids)) for w in written])
        separators.append(0)
        separators.extend(
            [
                0 if b == " " else separator_id(_separator(b), len(separator_ids))
                for b in [text[t.end : u.start] for t, u in zip(toks, toks[1:])]
            ]
        )
        positions.extend([t.pos + base for t in toks])
        base += toks[-1].pos + 2
        starts.append(1)
        starts += bytes(len(toks) - 1)
    adjacent = bytes(map((1).__eq__, map(sub, islice(positions, 1, None), positions)))
    corpus = _TitleSyllables(syllables, spellings, separators, bytes(starts), adjacent,
                             list(syllable_ids), list(spelling_ids), list(separator_ids))
    return corpus, title_rows


@dataclass(slots=True)
class _Level:
    """The frequent n-grams of one length ``n``, each with a dense id."""

    n: int
    keys: list[str]  # id -> folded n-gram ("dak nong")
    counts: dict[int, int]  # id -> occurrences
    ids: array[int]  # ids[i]: the id of the n-gram starting at syllable i, where kept_at[i]
    kept_at: bytes  # kept_at[i] is 1 when the n-gram starting at syllable i is frequent


def _unigrams(corpus: _TitleSyllables, min_count: int) -> _Level:
    """The syllables seen at least ``min_count`` times (their id is their syllable id)."""
    counts = {k: c for k, c in Counter(corpus.syllables).items() if c >= min_count}
    kept_at = bytes(map(counts.__contains__, corpus.syllables))
    return _Level(1, corpus.syllable_words, counts, corpus.syllables, kept_at)


def _longer_ngrams(corpus: _TitleSyllables, shorter: _Level, min_count: int) -> _Level:
    """The frequent n-grams one syllable longer than ``shorter``'s, Apriori style: an n-gram is
    only counted where both (n-1)-grams it contains are frequent (and, for bigrams, adjacent).

    Counted with C-level iterators over integer codes, no per-occurrence strings: the n-gram at i
    is the (n-1)-gram at i followed by syllable i + n - 1, coded ``id * n_syllables + syllable``."""
    n = shorter.n + 1
    n_syllables = len(corpus.syllable_words)
    syllables = corpus.syllables
    mask = bytes(map(and_, shorter.kept_at, islice(shorter.kept_at, 1, None)))
    if n == 2:
        mask = bytes(map(and_, mask, corpus.adjacent))

    def codes() -> Iterator[int]:
        return map(add, map(mul, shorter.ids, repeat(n_syllables)), islice(syllables, n - 1, None))

    seen = Counter(compress(codes(), mask))
    frequent = [code for code, c in seen.items() if c >= min_count]
    dense = {code: i for i, code in enumerate(frequent)}
    counts = {i: seen[code] for i, code in enumerate(frequent)}
    del seen
    words = corpus.syllable_words
    keys = [f"{shorter.keys[c // n_syllables]} {words[c % n_syllables]}" for c in frequent]
    ids = array("q", map(dense.get, codes(), repeat(-1)))
    kept_at = bytes(map(and_, mask, map((-1).__ne__, ids)))
    return _Level(n, keys, counts, ids, kept_at)


class _FormCodec:
    """How one occurrence of an n-gram is written, as one integer: (n-gram id, at title start,
    spelling 1, separator 2, spelling 2, ..., separator n, spelling n) in mixed radix, the id most
    significant, so that sorting the codes groups them by n-gram. Integers rather than tuples:
    counting them is C-level work over millions of occurrences."""

    __slots__ = ("n", "spelling_words", "separator_words", "spelt_span", "id_span")
    n: int
    spelling_words: list[str]
    separator_words: list[str]
    spelt_span: int  # codes per (n-gram id, at title start): every combination of spellings and separators
    id_span: int  # codes per n-gram id

    def __init__(self, n: int, spelling_words: list[str], separator_words: list[str]) -> None:
        self.n = n
        self.spelling_words = spelling_words
        self.separator_words = separator_words
        self.spelt_span = len(spelling_words) * (len(separator_words) * len(spelling_words)) ** (n - 1)
        self.id_span = 2 * self.spelt_span

    def pack(self, ids: Iterable[int], starts: Iterable[int], spellings: list[Iterable[int]],
             separators: list[Iterable[int]]) -> Iterator[int]:
        """The codes of parallel streams: ``spellings`` holds n streams (the n-gram's syllables in
        order), ``separators`` n - 1 (what precedes its 2nd..nth syllable)."""
        n_spellings, n_separators = len(self.spelling_words), len(self.separator_words)
        packed: Iterator[int] = map(add, map(mul, ids, repeat(2)), starts)
        packed = map(add, map(mul, packed, repeat(n_spellings)), spellings[0])
        for j in range(1, self.n):
            packed = map(add, map(mul, packed, repeat(n_separators)), separators[j - 1])
            packed = map(add, map(mul, packed, repeat(n_spellings)), spellings[j])
        return packed

    def ngram_id(self, code: int) -> int:
        return code // self.id_span

    def form(self, code: int) -> tuple[str, int]:
        """(the written form, 1 if at a title start else 0) of a code."""
        first, spelt = divmod(code % self.id_span, self.spelt_span)
        n_spellings, n_separators = len(self.spelling_words), len(self.separator_words)
        pieces = []
        for _ in range(self.n - 1):
            spelt, spelling = divmod(spelt, n_spellings)
            spelt, separator = divmod(spelt, n_separators)
            pieces += [self.spelling_words[spelling], self.separator_words[separator]]
        pieces.append(self.spelling_words[spelt])
        return "".join(reversed(pieces)), first


def _ngram_forms(corpus: _TitleSyllables, level: _Level) -> Iterator[tuple[int, list[tuple[str, int, int]]]]:
    """(n-gram id, its written forms as (form, at title start 0/1, count)) for every frequent
    n-gram of ``level``, by id; spellings are counted only for the frequent n-grams."""
    codec = _FormCodec(level.n, corpus.spelling_words, corpus.separator_words)
    kept_at = level.kept_at

    def at_kept(seq: Iterable[int], shift: int = 0) -> Iterator[int]:
        return compress(islice(seq, shift, None), kept_at)

    packed = codec.pack(
        at_kept(level.ids), at_kept(corpus.starts),
        [at_kept(corpus.spellings, j) for j in range(level.n)],
        [at_kept(corpus.separators, j) for j in range(1, level.n)],
    )
    observed = sorted(Counter(packed).items())
    for ngram_id, group in groupby(observed, key=lambda item: codec.ngram_id(item[0])):
        yield ngram_id, [(*codec.form(code), count) for code, count in group]


def _ngram_index(keys: list[str], displays: list[str], counts: list[int]) -> _PrefixIndex:
    """The n-grams ranked: count descending, then shorter display, then alphabetical by key and
    display (stable sorts, last criterion first)."""
    order = sorted(range(len(keys)), key=displays.__getitem__)
    order.sort(key=keys.__getitem__)
    order.sort(key=lambda i: len(displays[i]))
    order.sort(key=counts.__getitem__, reverse=True)
    return _PrefixIndex(keys, displays, order)


def _title_index(keys: list[str], texts: list[str]) -> _PrefixIndex:
    """The titles ranked: shorter first, then alphabetical by folded key and text."""
    order = sorted(range(len(keys)), key=texts.__getitem__)
    order.sort(key=keys.__getitem__)
    order.sort(key=lambda i: len(texts[i]))
    return _PrefixIndex(keys, texts, order)

def _merge(rank_lists: list[list[int]], k: int) -> list[int]:
    if len(rank_lists) == 1:
        return rank_lists[0][:k]
    return sorted(set().union(*rank_lists))[:k]


def _last_word_state(text: str, last: Token) -> tuple[bool, bool]:
    """(is the last word complete?, does a punctuation gap follow it?).

    Nothing after the last word: it is partial. Whitespace or a joiner ("TP.", "Covid-") after
    it: complete, same clause. Other punctuation ("Hà Nội, "): complete, followed by a gap, which
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
    return True, False  # the probe merged into a word ("1.50" + "0" is "1.500"): no gap
