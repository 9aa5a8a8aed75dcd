"""Every case of ../shared/eval/analysis-cases.json through the real index and the real search,
and the project's own cases (tests/data/phrase-cases.json: quoted phrases, issue #15) through
both engines.

Every case must pass, the ones marked "difficulty" included, except the hard cases listed in
KNOWN_HARD_FAILURES: those are strict xfails, so a change in any case's outcome fails the run
(a regression fails; a fixed hard case passes unexpectedly and asks for its entry to go).
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from cluster_helpers import ENGINES, build_engine
from index_helpers import SHARED, article, build

from index.api import SearchRequest

CASES_FILE = SHARED / "eval" / "analysis-cases.json"
# The project's own cases, in the same format (the shared file is read-only data): "nfd_query"
# asks for the query in decomposed Unicode.
PROJECT_CASES_FILE = Path(__file__).parent / "data" / "phrase-cases.json"
shared_missing = pytest.mark.skipif(not CASES_FILE.exists(), reason=f"{CASES_FILE} not found (../shared is absent)")


def _cases() -> list[dict]:
    if not CASES_FILE.exists():
        return []
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


CASES = _cases()


def _case_id(case: dict) -> str:
    return f"{case['category']}:{case['query']}"


# Hard cases this engine does not answer yet, by case id, with why. Only cases the data marks with a
# "difficulty" may be listed (checked below); the others, hard or not, are required to pass.
KNOWN_HARD_FAILURES = {
    "phrase:sinh học": "syllable pairs cannot tell 'sinh học' from 'học sinh | học tập' without segmentation",
}


def _param(case: dict) -> object:
    marks = []
    if _case_id(case) in KNOWN_HARD_FAILURES:
        # raises=AssertionError: a known-hard case that crashes is a failure, not an expected miss.
        marks.append(pytest.mark.xfail(strict=True, raises=AssertionError,
                                       reason=f"known hard case: {KNOWN_HARD_FAILURES[_case_id(case)]}"))
    return pytest.param(case, id=_case_id(case), marks=marks)


def _texts(cases: list[dict]) -> dict[str, str]:
    """Every text of ``cases`` -> its article id."""
    texts: dict[str, str] = {}
    for case in cases:
        for key in ("should_match_text", "should_not_match_text", "should_rank_below_text"):
            if case.get(key):
                texts.setdefault(case[key], f"case-{len(texts)}")
    return texts


def _articles(texts: dict[str, str]) -> list:
    # Titles carry no words, so ranking comes from the texts alone (indexed as the body).
    return [article(doc_id, f"T{n}", text) for n, (text, doc_id) in enumerate(texts.items())]


@pytest.fixture(scope="module")
def engine_and_ids(tmp_path_factory):
    """One index with every text of every case, so texts compete with each other as in real life."""
    texts = _texts(CASES)
    with build(tmp_path_factory.mktemp("cases"), _articles(texts)) as engine:
        yield engine, texts


PROJECT_CASES = json.loads(PROJECT_CASES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=ENGINES)
def project_engine_and_ids(request, tmp_path_factory):
    texts = _texts(PROJECT_CASES)
    with build_engine(request.param, request, tmp_path_factory.mktemp("phrase-cases"), _articles(texts)) as engine:
        yield engine, texts


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{n}:{_case_id(c)}") for n, c in enumerate(PROJECT_CASES)])
def test_project_case(case, project_engine_and_ids):
    engine, texts = project_engine_and_ids
    if case.get("nfd_query"):
        case = {**case, "query": unicodedata.normalize("NFD", case["query"])}
        assert case["query"] != unicodedata.normalize("NFC", case["query"])
    _check(case, engine, texts)


def _ranked_ids(engine, query: str) -> list[str]:
    result = engine.search(SearchRequest(q=query, per_page=100, facets=False, snippets=False))
    return [h.article.id for h in result.hits]


@shared_missing
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case, engine_and_ids):
    engine, texts = engine_and_ids
    _check(case, engine, texts)


@shared_missing
def test_known_failures_are_hard_cases_of_the_data():
    """An entry whose case was renamed, dropped or no longer marked hard must not linger unseen."""
    hard = {_case_id(c) for c in CASES if c.get("difficulty")}
    stale = set(KNOWN_HARD_FAILURES) - hard
    assert not stale, f"not hard cases of {CASES_FILE.name}: {stale}"


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
