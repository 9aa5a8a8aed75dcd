"""The array paths of scoring, match sets and facets against Whoosh's own per-posting answers.

``index.scoring`` and ``index.docsets`` read postings into arrays and compute scores, match sets
and facet counts with numpy (issue 14): these tests compute the same things the slow, obvious way
through Whoosh's public API, on an index of several segments with deleted and replaced articles,
and require exactly the same numbers (floats compared with ``==``, not approximately).
"""

from __future__ import annotations

import heapq
from collections import Counter
from pathlib import Path

import pytest
from whoosh import query as Q

from index.builder import delete_articles, index_articles
from index.docsets import as_array
from index.engine import WhooshEngine
from index.ranking import _top
from index.scoring import K1, B, bm25_scores
from tests.index_helpers import article

WORDS = ["Đắk Nông", "cà phê", "hồ tiêu", "mưa lớn", "sạt lở", "học sinh", "tuyển sinh", "giá cả", "nông dân",
         "du lịch"]


def _articles(start: int, n: int) -> list:
    out = []
    for i in range(start, start + n):
        words = [WORDS[(i * k) % len(WORDS)] for k in (1, 3, 7)]
        body = [f"{words[0]} và {words[1]} năm {2000 + i % 7}.", " ".join(words * (1 + i % 4))]
        out.append(article(i, f"{words[2]} {words[0]} số {i}", body, category=["Kinh tế", "Xã hội", "Thể thao"][i % 3]))
    return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    index_dir: Path = tmp_path_factory.mktemp("scoring")
    index_articles(index_dir, _articles(0, 60), procs=1)
    index_articles(index_dir, _articles(60, 50), procs=1)  # a second segment
    delete_articles(index_dir, [str(i) for i in range(0, 110, 9)])
    index_articles(index_dir, _articles(5, 3), procs=1)  # replaced: old versions deleted in place
    engine = WhooshEngine.open(index_dir)
    yield engine
    engine.close()


def _terms(ctx) -> list[tuple[str, str, float]]:
    reader = ctx.searcher.reader()
    out = []
    for field in ("title_folded", "body_folded", "body_exact", "title_pairs", "body_pairs"):
        if field not in ctx.searcher.schema:
            continue
        for k, text in enumerate(reader.field_terms(field)):
            if k % 3 == 0:
                out.append((field, text, 1.0 + (k % 4) * 0.5))
    assert len(out) > 20
    return out


def _reference_scores(ctx, terms, candidates) -> dict[int, float]:
    """The per-posting loop, through Whoosh's public API (deleted postings filtered by Whoosh)."""
    searcher = ctx.searcher
    scores: dict[int, float] = {}
    for field, text, boost in terms:
        if not searcher.reader().doc_frequency(field, text):
            continue
        weight = boost * searcher.idf(field, text)
        avgdl = searcher.avg_field_length(field) or 1.0
        for leaf, offset in searcher.reader().leaf_readers():
            if (field, text) not in leaf:
                continue
            for local, tf in leaf.postings(field, text).items_as("weight"):
                d = local + offset
                if d not in candidates:
                    continue
                dl = leaf.doc_field_length(local, field, 0) or 1
                scores[d] = scores.get(d, 0.0) + weight * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))
    return scores


def test_scores_are_exactly_the_per_posting_sums(engine: WhooshEngine) -> None:
    ctx = engine._context()
    assert len(list(ctx.searcher.reader().leaf_readers())) >= 2
    live = set(ctx.searcher.reader().all_doc_ids())
    terms = _terms(ctx)
    for candidates in (live, {d for d in live if d % 2}, set(sorted(live)[:7])):
        scored = bm25_scores(ctx.searcher, terms, candidates, ctx.docsets, count_matched=True)
        got = dict(zip(scored.ids.tolist(), scored.values.tolist()))
        want = _reference_scores(ctx, terms, candidates)
        assert set(got) == candidates
        assert {d: s for d, s in got.items() if d in want} == want
        assert all(s == 0.0 for d, s in got.items() if d not in want)
        assert scored.matched is not None
        assert all(n > 0 for d, n in zip(scored.ids.tolist(), scored.matched.tolist()) if d in want)


def test_match_sets_leave_deleted_articles_out(engine: WhooshEngine) -> None:
    ctx = engine._context()
    checked = 0
    for field in ("body_folded", "title_folded"):
        for text in list(ctx.searcher.reader().field_terms(field))[:40]:
            want = set(ctx.searcher.docs_for_query(Q.Term(field, text)))
            assert ctx.docsets.term(field, text) == want, (field, text)
            checked += 1
    assert checked >= 40
    assert ctx.docsets._deleted, "the fixture must have deleted documents"


def test_facet_counts_are_per_value_intersections(engine: WhooshEngine) -> None:
    ctx = engine._context()
    docs = ctx.docsets.term("body_folded", "nong")
    assert docs
    for field in ("category_slug", "year", "month"):
        want = Counter()
        for value, ids in ctx.docsets.field_values(field).items():
            if docs & ids:
                want[value] = len(docs & ids)
        assert ctx.docsets.counts(field, docs) == dict(want)
        assert ctx.docsets.count_array(field, as_array(docs)) == dict(want)


def test_top_orders_by_rounded_score_then_newest_then_number(engine: WhooshEngine) -> None:
    ctx = engine._context()
    live = set(ctx.searcher.reader().all_doc_ids())
    scored = bm25_scores(ctx.searcher, _terms(ctx)[:6], live, ctx.docsets)
    keys = ctx.docsets.published_keys()
    rounded = {d: round(s, 6) for d, s in zip(scored.ids.tolist(), scored.values.tolist())}
    for limit in (1, 5, 17, len(live), len(live) + 3):
        top, scores = _top(ctx, scored, limit)
        want = heapq.nsmallest(limit, rounded, key=lambda d: (-rounded[d], -keys[d], d))
        assert top == want
        assert all(round(scores[d], 6) == rounded[d] for d in top)
