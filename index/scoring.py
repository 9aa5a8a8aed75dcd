"""BM25F-style scoring of a *known* set of matching documents, straight from posting lists.

Why not Whoosh's collector: it scores by walking a tree of Python matcher objects, calling
``skip_to``/``is_active`` on every clause for every match. With synonym alternatives and pair
boosters a query easily has 20-30 clauses, so a query matching a few thousand articles spent most
of its time there (figures in docs/benchmarks.md). We already know the match set (``index.docsets``), so each
scoring term's postings are read once — in full when they are short, by ``skip_to`` over the
candidates when they are long — and the scores summed in a dict.

The formula is Whoosh's BM25F per field (B = 0.75, K1 = 1.2, its idf), summed over the terms with
their boosts, so ranking stays what the query plan intends (title x3, exact diacritics, pairs).
"""

from __future__ import annotations

from collections import defaultdict

from whoosh import query as Q
from whoosh.searching import Searcher

from index.docsets import DocSets, skip_through
from index.postings import LENGTHS, items, raw_postings

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
                docsets: DocSets | None = None) -> tuple[dict[int, float], dict[int, int]]:
    """Scores of the candidates, and how many distinct scoring term texts each one matched.

    ``docsets``: where document frequencies and whole field-length columns are cached for the
    generation (``DocSets.df``, ``DocSets.field_lengths``); without it each candidate's length is a
    column read and each frequency a term-table lookup."""
    lengths = docsets.field_lengths if docsets is not None else None
    doc_frequency = docsets.df if docsets is not None else searcher.reader().doc_frequency
    reader = searcher.reader()
    scores: dict[int, float] = defaultdict(float)
    matched: dict[int, set[str]] = defaultdict(set)
    leaves = [(leaf, off, off + leaf.doc_count_all()) for leaf, off in reader.leaf_readers()]
    sorted_candidates = sorted(candidates)
    for field, text, boost in terms:
        df = doc_frequency(field, text)
        if not df:
            continue
        idf = searcher.idf(field, text)
        avgdl = searcher.avg_field_length(field) or 1.0
        weight = boost * idf
        sparse = df > 4 * len(candidates)
        for leaf, start, end in leaves:
            if (field, text) not in leaf:
                continue
            postings = raw_postings(leaf, field, text)  # candidates never include deleted documents
            if sparse:
                pairs = skip_through(postings, sorted_candidates, start, end)
            else:
                pairs = [(i, tf) for i, tf in items(postings) if i + start in candidates]
            raw = lengths(leaf, start, field) if lengths is not None else None
            for local, tf in pairs:
                d = local + start
                if raw is not None:
                    dl = (LENGTHS[raw[local]] if local < len(raw) else 0) or 1
                else:
                    dl = leaf.doc_field_length(local, field, 1) or 1
                scores[d] += weight * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))
                matched[d].add(text)
    return scores, {d: len(v) for d, v in matched.items()}
