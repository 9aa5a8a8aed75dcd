"""Related articles ("Bài liên quan"): "more like this" over an article's distinctive terms.

What both engines share (``index.engine`` and ``index.typesense.engine`` only find candidates):

1. The source article's **profile**: its folded syllables and adjacent pairs (``index.analysis``,
   the terms the index holds) with their frequencies in the title and in the body.
2. The **query terms**: each term weighs ``(1 + ln tf) * idf``, ``tf`` counting a title occurrence
   ``TITLE_WEIGHT`` times, ``idf`` BM25's from the index's document frequencies. Terms held by the
   article alone (df <= 1: nothing else to find) and by more than ``MAX_DF_SHARE`` of the archive
   (they say little and their postings cost most) are left out; the best ``MAX_TERMS`` are kept.
   A pair's frequency is a look-up per pair in both engines (the pair vocabulary is millions of
   terms: too big to keep in memory), so only the ``MAX_PAIR_LOOKUPS`` most promising pairs are
   looked up, ranked by their frequency in the article and their syllables' idf (a pair is never
   more common than either of its syllables).
3. A candidate's **score**: the sum over the query terms of ``weight * sat(tf)``, its own ``tf``
   again counting the title ``TITLE_WEIGHT`` times, ``sat`` BM25's saturation (K1 = 1.2). No
   length normalisation: the saturation already caps what a long article gains by repeating a
   term, and ``tf`` is then all an engine has to know of a candidate, so both engines compute the
   same score (the Whoosh engine from its postings, the cluster engine from the candidate's text).
4. The **ranking** (``rank``): the score, times ``SAME_CATEGORY`` for an article of the source's
   category, then the newer article first (recency breaks ties), then the id. The source itself
   and its **near-duplicates** are left out: a re-post of the same text under another id is not
   "related". Two texts are near-duplicates when the Jaccard similarity of their word bigram sets
   (``shingles``: plain lower-cased words, no Vietnamese analysis needed to tell a copy) is at
   least ``NEAR_DUPLICATE``; a candidate is also dropped when it duplicates one already listed.

Everything is bounded: ``MAX_TERMS`` query terms, ``MAX_PAIR_LOOKUPS`` pair look-ups,
``MAX_CANDIDATES`` candidates ranked, at most ``MAX_CHECKED`` near-duplicate checks.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from index.analysis import PAIR_SEP, analyze, nfc, pairs
from index.api import SearchError
from index.article import Article

DEFAULT_LIMIT = 5
MAX_LIMIT = 20
MAX_TERMS = 20  # query terms
MAX_PAIR_LOOKUPS = 12  # pair document frequencies asked for per source article
MAX_DF_SHARE = 0.02  # terms held by more of the archive than this are left out...
MIN_MAX_DF = 50  # ...unless held by at most this many articles (a small archive keeps its terms)
MAX_CANDIDATES = 50  # best-scoring candidates ranked, at most (``candidate_count``)
MAX_CHECKED = 3 * MAX_LIMIT  # candidates checked for near-duplication, at most
TITLE_WEIGHT = 3.0  # an occurrence in the title counts this many times
SAME_CATEGORY = 1.25  # score factor of an article of the source's category
NEAR_DUPLICATE = 0.8  # Jaccard similarity of word bigram sets from which two texts are copies
K1 = 1.2

FOLDED = "folded"
PAIR = "pair"
KINDS = (FOLDED, PAIR)

Key = tuple[str, str]  # (kind, term)


def check_limit(limit: int) -> None:
    """Raise ``SearchError("bad_limit")`` unless 1 <= limit <= MAX_LIMIT."""
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchError("bad_limit", f"'limit' must be between 1 and {MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class QueryTerm:
    kind: str  # FOLDED or PAIR
    text: str
    weight: float


@dataclass(slots=True)
class Profile:
    """An article's terms: (kind, term) -> frequency in the title, and in the body (captions
    included, as the index holds them)."""

    title: Counter[Key]
    body: Counter[Key]

    def tf(self, key: Key) -> float:
        """The frequency that scores: a title occurrence counts ``TITLE_WEIGHT`` times."""
        return TITLE_WEIGHT * self.title.get(key, 0) + self.body.get(key, 0)

    def keys(self) -> set[Key]:
        return set(self.title) | set(self.body)


def _terms(text: str) -> Counter[Key]:
    tokens = analyze(nfc(text))
    counts: Counter[Key] = Counter((FOLDED, t.folded) for t in tokens)
    counts.update((PAIR, p) for p in pairs(tokens))
    return counts


def body_text(article: Article) -> str:
    """The body as the indexes hold it: paragraphs, then captions (``index.builder``)."""
    return "\n\n".join([*article.body, *article.captions])


def profile(article: Article) -> Profile:
    return Profile(_terms(article.title), _terms(body_text(article)))


def idf(df: int, n_docs: int) -> float:
    """BM25's idf (Whoosh's formula); a frequency counted over title and body may exceed the
    article count, so it is capped there."""
    df = min(df, n_docs)
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def max_df(n_docs: int) -> int:
    return max(MIN_MAX_DF, int(MAX_DF_SHARE * n_docs))


def choose_terms(
    source: Profile, syllable_df: Callable[[str], int], pair_df: Callable[[list[str]], Mapping[str, int]], n_docs: int
) -> list[QueryTerm]:
    """The source's ``MAX_TERMS`` most distinctive terms, heaviest first (ties by kind and text,
    so both engines choose alike). ``syllable_df`` answers from memory; ``pair_df`` is asked once,
    for at most ``MAX_PAIR_LOOKUPS`` pairs."""
    if n_docs <= 0:
        return []
    ceiling = max_df(n_docs)
    chosen: list[QueryTerm] = []
    syllable_idf: dict[str, float] = {}
    pair_keys: list[Key] = []
    for key in sorted(source.keys()):
        kind, text = key
        if kind == PAIR:
            pair_keys.append(key)
            continue
        df = syllable_df(text)
        syllable_idf[text] = idf(df, n_docs) if df > 1 else 0.0
        if 1 < df <= ceiling:
            chosen.append(QueryTerm(kind, text, (1.0 + math.log(source.tf(key))) * idf(df, n_docs)))

    def promise(key: Key) -> tuple[float, str]:
        a, _, b = key[1].partition(PAIR_SEP)
        return (-source.tf(key) * max(syllable_idf.get(a, 0.0), syllable_idf.get(b, 0.0)), key[1])

    def possible(key: Key) -> bool:
        # A pair is never more common than its syllables: one that only this article holds
        # (df <= 1, idf 0 above) makes a pair no other article holds.
        a, _, b = key[1].partition(PAIR_SEP)
        return syllable_idf.get(a, 0.0) > 0 and syllable_idf.get(b, 0.0) > 0

    promising = [k for k in pair_keys if possible(k)]
    wanted = sorted(promising, key=promise)[:MAX_PAIR_LOOKUPS]
    counts = pair_df([k[1] for k in wanted]) if wanted else {}
    for key in wanted:
        df = counts.get(key[1], 0)
        if 1 < df <= ceiling:
            chosen.append(QueryTerm(PAIR, key[1], (1.0 + math.log(source.tf(key))) * idf(df, n_docs)))
    chosen.sort(key=lambda t: (-t.weight, t.kind, t.text))
    return chosen[:MAX_TERMS]


def candidate_count(limit: int) -> int:
    """How many of the best-scoring articles are ranked for a list of ``limit``: room for the
    source, its near-duplicates and the category factor to reorder the head."""
    return min(MAX_CANDIDATES, 2 * limit + 10)


def saturate(tf: float) -> float:
    return tf * (K1 + 1) / (tf + K1)


def score(terms: Iterable[QueryTerm], candidate: Profile) -> float:
    """A candidate's score: the same arithmetic, in the same order, as the Whoosh engine's
    vectorised version (``index.related_whoosh``), so both engines agree to the last bit."""
    total = 0.0
    for term in terms:
        tf = candidate.tf((term.kind, term.text))
        if tf:
            total += term.weight * saturate(tf)
    return total


_WORD = re.compile(r"\w+")


def shingles(article: Article) -> frozenset[str]:
    """The article's word bigrams (lower-cased words of the title and body), for near-duplicates."""
    words = _WORD.findall(nfc(article.title + "\n" + body_text(article)).casefold())
    return frozenset(a + " " + b for a, b in zip(words, words[1:], strict=False)) or frozenset(words)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An article that matched the query terms, with its score before the category factor."""

    article: Article
    score: float


def rank(source: Article, candidates: Iterable[Candidate], limit: int) -> list[Article]:
    """The related articles: best adjusted score first, ties by recency then id, without the
    source, its near-duplicates or duplicates of an article already listed."""
    scored = []
    for c in candidates:
        if c.article.id == source.id or c.score <= 0:
            continue
        adjusted = c.score * SAME_CATEGORY if c.article.category_slug == source.category_slug else c.score
        # Rounded: both engines compute the same floats, but a tie must stay a tie whatever
        # summation order a future engine uses.
        scored.append((-round(adjusted, 9), -c.article.published.timestamp(), c.article.id, c.article))
    scored.sort(key=lambda s: s[:3])
    source_shingles = shingles(source)
    listed: list[tuple[Article, frozenset[str]]] = []
    for checked, (*_, article) in enumerate(scored):
        if len(listed) >= limit or checked >= MAX_CHECKED:
            break
        own = shingles(article)
        if jaccard(own, source_shingles) >= NEAR_DUPLICATE:
            continue
        if any(jaccard(own, other) >= NEAR_DUPLICATE for _, other in listed):
            continue
        listed.append((article, own))
    return [a for a, _ in listed]
