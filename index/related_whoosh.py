"""The Whoosh engine's candidates for related articles (``index.related`` holds the algorithm).

Every article holding a query term is scored at once from the generation's cached posting arrays
(``DocSets.postings``, shared with searches): for each term, the title's and the body's term
frequencies are added into one dense array (the title counted ``TITLE_WEIGHT`` times), saturated
and added to a dense score array, in the order and with the arithmetic of ``related.score``, so a
score is the one the cluster engine computes from the candidate's text. Only the best
``MAX_CANDIDATES`` (after the category factor) are read from the stored articles.

Document frequencies, a syllable's and a pair's, come from the index, cached per generation and
carried over commits by ``DocSets.df`` (an article has hundreds of syllables; the searches ask for
most of the common ones anyway). A table of the whole vocabulary's frequencies, read once and again
every few minutes, answered from memory before, but reading it again took minutes of a worker's CPU
once the index held a few dozen segments (the soak, docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from whoosh.searching import Searcher

from index import related
from index.article import Article
from index.docsets import DocSets

FIELDS = {related.FOLDED: ("title_folded", "body_folded"), related.PAIR: ("title_pair", "body_pair")}


def syllable_frequency(docsets: DocSets, syllable: str) -> int:
    """A folded syllable's document frequency, the title's plus the body's (as ``index.spelling``
    counts; deleted articles included until a merge, as Whoosh counts)."""
    title, body = FIELDS[related.FOLDED]
    return docsets.df(title, syllable) + docsets.df(body, syllable)


def pair_frequencies(docsets: DocSets, wanted: list[str]) -> Mapping[str, int]:
    title, body = FIELDS[related.PAIR]
    return {p: docsets.df(title, p) + docsets.df(body, p) for p in wanted}


def candidates(
    searcher: Searcher, docsets: DocSets, terms: list[related.QueryTerm], source: Article, limit: int
) -> list[related.Candidate]:
    """The best-scoring articles for ``terms`` (live ones, the source left in: ``rank`` drops it)."""
    if not terms:
        return []
    size = searcher.reader().doc_count_all()
    scores = np.zeros(size, dtype=np.float64)
    tf = np.zeros(size, dtype=np.float64)
    for term in terms:
        title_field, body_field = FIELDS[term.kind]
        title_ids, title_tf = docsets.postings(title_field, term.text)
        body_ids, body_tf = docsets.postings(body_field, term.text)
        tf[title_ids] += related.TITLE_WEIGHT * title_tf.astype(np.float64)
        tf[body_ids] += body_tf.astype(np.float64)
        ids = np.union1d(title_ids, body_ids)
        x = tf[ids]
        scores[ids] += term.weight * (x * (related.K1 + 1) / (x + related.K1))
        tf[ids] = 0.0
    adjusted = scores
    indexed = docsets._value_index("category_slug")
    if indexed is not None:
        values, index = indexed
        if source.category_slug in values:
            adjusted = scores.copy()
            adjusted[index[: len(adjusted)] == values.index(source.category_slug)] *= related.SAME_CATEGORY
    matched = int(np.count_nonzero(scores))
    want = min(matched, related.candidate_count(limit) + 1)  # the source is usually among them
    if want <= 0:
        return []
    top = np.argpartition(-adjusted, want - 1)[:want] if want < size else np.arange(size)
    reader = searcher.reader()
    out: list[related.Candidate] = []
    for docnum in top.tolist():
        if scores[docnum] <= 0 or reader.is_deleted(docnum):
            continue
        fields = searcher.stored_fields(docnum)
        if fields.get("id") == source.id:
            continue
        out.append(related.Candidate(Article.from_dict(json.loads(fields["doc"])), float(scores[docnum])))
    return out
