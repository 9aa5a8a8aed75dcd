"""Every case of ../shared/eval/analysis-cases.json through the real index and the real search.

Cases marked "difficulty" are run and reported (xfail when they fail) rather than required.
"""

from __future__ import annotations

import json

import pytest

from index.api import SearchRequest
from index_helpers import SHARED, article, build

CASES_FILE = SHARED / "eval" / "analysis-cases.json"
pytestmark = pytest.mark.skipif(not CASES_FILE.exists(), reason=f"{CASES_FILE} not found (../shared is absent)")


def _cases() -> list[dict]:
    if not CASES_FILE.exists():
        return []
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


CASES = _cases()


@pytest.fixture(scope="module")
def engine_and_ids(tmp_path_factory):
    """One index with every text of every case, so texts compete with each other as in real life."""
    texts: dict[str, str] = {}
    for case in CASES:
        for key in ("should_match_text", "should_not_match_text", "should_rank_below_text"):
            if case.get(key):
                texts.setdefault(case[key], f"case-{len(texts)}")
    # Titles carry no words, so ranking comes from the texts alone (indexed as the body).
    articles = [article(doc_id, f"T{n}", text) for n, (text, doc_id) in enumerate(texts.items())]
    engine = build(tmp_path_factory.mktemp("cases"), articles)
    return engine, texts


def _ranked_ids(engine, query: str) -> list[str]:
    result = engine.search(SearchRequest(q=query, per_page=100, facets=False, snippets=False))
    return [h.article.id for h in result.hits]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['category']}:{c['query']}" for c in CASES])
def test_case(case, engine_and_ids):
    engine, texts = engine_and_ids
    if case.get("difficulty"):
        try:
            _check(case, engine, texts)
        except AssertionError as e:
            pytest.xfail(f"known hard case ({case['difficulty']}): {e}")
    else:
        _check(case, engine, texts)


def _check(case, engine, texts):
    ids = _ranked_ids(engine, case["query"])
    want = texts[case["should_match_text"]]
    assert want in ids, f"{case['query']!r} did not find {case['should_match_text']!r} ({case['why']})"
    if case.get("should_not_match_text"):
        unwanted = texts[case["should_not_match_text"]]
        assert unwanted not in ids, f"{case['query']!r} wrongly matched {case['should_not_match_text']!r}"
    if case.get("should_rank_below_text"):
        below = texts[case["should_rank_below_text"]]
        if below in ids:
            assert ids.index(want) < ids.index(below), f"{case['query']!r}: ranking wrong ({case['why']})"
