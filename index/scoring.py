"""BM25F-style scoring of a *known* set of matching documents, straight from posting lists.

Why not Whoosh's collector: it scores by walking a tree of Python matcher objects, calling
``skip_to``/``is_active`` on every clause for every match. With synonym alternatives and pair
boosters a query easily has 20-30 clauses, so a query matching a few thousand articles spent most
of its time there (figures in docs/benchmarks.md). We already know the match set (``index.docsets``), so each
scoring term's postings are read once a generation into arrays (``DocSets.postings``), matched
against the candidates by binary search and scored with numpy: a per-posting Python loop here was
most of a distinct search's CPU (issue 14's profile, docs/benchmarks.md).

The formula is Whoosh's BM25F per field (B = 0.75, K1 = 1.2, its idf), summed over the terms with
their boosts, so ranking stays what the query plan intends (title x3, exact diacritics, pairs).
"""

from __future__ import annotations

from math import log

import numpy as np
import numpy.typing as npt
from whoosh import query as Q
from whoosh.searching import Searcher

from index.docsets import DocSets, FloatArray, IdArray, PostingIds, WeightArray

B = 0.75
K1 = 1.2


def scoring_terms(q: Q.Query | None) -> list[tuple[str, str, float]]:
    """(field, text, boost) of every term that scores in ``q`` (excluded clauses do not)."""
    out: list[tuple[str, str, float]] = []

    def walk(node: Q.Query, boost: float) -> None:
        if isinstance(node, Q.Term):
            out.append((node.fieldname, node.text, boost * node.boost))
        elif isinstance(node, Q.AndNot):
            walk(node.a, boost * node.boost)
        elif isinstance(node, (Q.AndMaybe, Q.And, Q.Or)):
            for sub in node.children():
                walk(sub, boost * node.boost)

    if q is not None:
        walk(q, 1.0)
    merged: dict[tuple[str, str], float] = {}
    for field, text, boost in out:
        merged[(field, text)] = max(boost, merged.get((field, text), 0.0))
    return [(f, t, b) for (f, t), b in merged.items()]


def bm25_scores(searcher: Searcher, terms: list[tuple[str, str, float]], candidates: set[int] | frozenset[int],
                docsets: DocSets, count_matched: bool = False) -> Scores:
    """The candidates' scores and, with ``count_matched``, how many distinct scoring term texts
    each one matched (what partial matches are ordered by).

    Each term's postings come whole from the generation's cache (``DocSets.postings``) and are
    matched against the sorted candidates by binary search, from whichever side is shorter; the
    BM25 terms are then computed over arrays. Every operation is the float64 arithmetic the
    per-posting loop did, in the same order (terms in order, the same expression), so the scores
    are bit for bit what they were."""
    cand = docsets.array_of(candidates)
    documents = searcher.doc_count_all()  # deleted ones included, as Whoosh's idf counts them
    scores = np.zeros(len(cand), dtype=np.float64)
    matched_texts: dict[str, npt.NDArray[np.bool_]] = {}
    for field, text, boost in terms:
        df = docsets.df(field, text)
        if not df:
            continue
        # Whoosh's ``WeightingModel.idf`` (BM25F keeps it), from the shared, carried frequencies
        # rather than ``Searcher.idf``, which asks every segment again for each new searcher.
        idf = log(documents / (df + 1)) + 1
        avgdl = searcher.avg_field_length(field) or 1.0
        weight = boost * idf
        ids, weights = docsets.postings(field, text)
        at, tf = _matching(cand, ids, weights)
        if not len(at):
            continue
        dl = docsets.length_array(field)[cand[at]]
        scores[at] += weight * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))
        if count_matched:
            seen = matched_texts.setdefault(text, np.zeros(len(cand), dtype=np.bool_))
            seen[at] = True
    matched = None
    if count_matched:
        matched = np.zeros(len(cand), dtype=np.int64)
        for seen in matched_texts.values():
            matched += seen
    return Scores(cand, scores, matched)


def _matching(cand: IdArray, ids: PostingIds, weights: WeightArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """Positions in ``cand`` of the candidates ``ids`` holds, and their weights (both ascending)."""
    if not len(ids) or not len(cand):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64)
    if len(ids) > len(cand):
        where = np.searchsorted(ids, cand)
        inside = where < len(ids)
        hit = np.zeros(len(cand), dtype=np.bool_)
        hit[inside] = ids[where[inside]] == cand[inside]
        at = np.flatnonzero(hit)
        return at, weights[where[at]].astype(np.float64)
    where = np.searchsorted(cand, ids)
    inside = where < len(cand)
    hit = np.zeros(len(ids), dtype=np.bool_)
    hit[inside] = cand[where[inside]] == ids[inside]
    return where[hit], weights[hit].astype(np.float64)


class Scores:
    """Scores of a set of candidates: ``ids`` ascending, ``values[i]`` the score of ``ids[i]``,
    ``matched[i]`` (when counted) how many distinct term texts it matched."""

    __slots__ = ("ids", "values", "matched")

    def __init__(self, ids: IdArray, values: FloatArray, matched: npt.NDArray[np.int64] | None) -> None:
        self.ids = ids
        self.values = values
        self.matched = matched
