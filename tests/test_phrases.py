"""Quoted phrases mean contiguous (issue #15, ``index.phrases``): the text check on its own, then
both engines on small real indexes, below and beyond the bound on the candidates checked."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta

import pytest
from cluster_helpers import ENGINES, build_engine
from index_helpers import article

from index.api import SearchRequest
from index.article import VN_TZ
from index.phrases import CHECK_ALL, Checks, StoredArticle, checks_of, holds
from index.query import parse
from index.tiers import Tier

# -- the check on a text ---------------------------------------------------------------------------


def _verdict(q: str, body: str, title: str = "") -> bool:
    return checks_of(parse(q)).verdict(StoredArticle.of_texts(title, body))


@pytest.mark.parametrize(
    ("q", "text", "held"),
    [
        ('"Trần Văn Nam"', "Ông Trần Văn Nam phát biểu.", True),
        ('"Trần Văn Nam"', "Trần Văn Hùng và Lê Văn Nam", False),  # every pair, in two places
        ('"tran van nam"', "ÔNG TRẦN VĂN NAM PHÁT BIỂU", True),  # folded, any case
        ('"Trần Văn Nam"', "Trần Văn, Nam Định", False),  # a comma is a gap
        ('"Trần Văn Nam"', "Trần Văn. Nam Định", False),  # a full stop too
        ('"Trần Văn Nam"', "Trần Văn\nNam", False),  # a line break too
        ('"Trần Văn Nam"', "Trần  Văn\tNam", True),  # spaces and a tab are not
        ('"Trần Văn Nam"', "ông Trần Văn Nam-Định", True),  # a hyphen inside a compound is not
        ('"hai mươi ba"', "hay mươi ba", False),  # "hay" is not "hai" (i/y only after a consonant)
        ('"kỹ thuật số"', "kĩ thuật số", True),  # ... where the analyzer spells them alike
        ('"ngày 6 tháng"', "ngày 06 tháng 7", True),  # leading zeros
        ('"mua 1500 tấn"', "mua 1.500 tấn", True),  # thousands separator
        ('"UBND TP.HCM"', "UBND TP.HCM họp", True),  # a quote split by a compound
        ('"UBND TP.HCM"', "UBND tỉnh, TP.HCM", False),
        ('"UBND TPHCM hôm"', "UBND TP.HCM hôm qua", True),  # the compound's joined token
        ('"trụ sở TP. HCM"', "trụ sở TP. HCM", True),  # a dot after an abbreviation is no sentence end
        ('"Covid 19 lan"', "Covid-19 lan rộng", True),
        ('"a a b"', "a a a b", True),  # a match overlapping a failed one
        ('"Trần Văn Nam"', unicodedata.normalize("NFD", "ông Trần Văn Nam"), True),  # NFD text
        (unicodedata.normalize("NFD", '"Trần Văn Nam"'), "ông Trần Văn Nam", True),  # NFD query
    ],
)
def test_contiguous_as_the_analyzer_reads_it(q: str, text: str, held: bool) -> None:
    assert _verdict(q, text) is held


def test_title_and_body_are_apart() -> None:
    q = '"Trần Văn Nam"'
    assert not _verdict(q, "Nam phát biểu.", title="Ông Trần Văn")
    assert _verdict(q, "Không có.", title="Ông Trần Văn Nam")


def test_which_quotes_are_checked() -> None:
    assert not checks_of(parse('"hội nghị"'))  # one pair: the index answers it
    assert not checks_of(parse("trần văn nam"))  # plain words are ranked, not checked
    checks = checks_of(parse('"Trần Văn Nam"'))
    assert [[q.runs for q in clause] for clause in checks.required] == [[(("tran", "van", "nam"),)]]
    # Split by a compound: one phrase, each alternative of the compound in turn.
    ((quote,),) = checks_of(parse('"UBND TP.HCM"')).required
    assert set(quote.runs) == {("ubnd", "tp", "hcm"), ("ubnd", "tphcm")}
    # Excluded phrases are checked, and left out of the plan's exclusion.
    checks = checks_of(parse('tổ chức -"hội nghị sơ kết"'))
    assert not checks.required and [q.runs for q in checks.excluded] == [(("hoi", "nghi", "so", "ket"),)]
    assert checks.excluded_quotes == {0}
    # OR between phrases: any of them; OR with plain words: the pairs' answer stands.
    (clause,) = checks_of(parse('"Trần Văn Nam" OR "Lê Văn"')).required
    assert len(clause) == 2
    assert checks_of(parse('"Trần Văn Nam" OR hà nội')) == Checks()


def test_holds_any_run_of_a_quote() -> None:
    ((quote,),) = checks_of(parse('"UBND TP.HCM"')).required
    assert holds(StoredArticle.of_texts("", "UBND TP-HCM"), quote)
    assert not holds(StoredArticle.of_texts("UBND", "TP.HCM"), quote)


# -- both engines ----------------------------------------------------------------------------------

DOCS = [
    article(1, "Ông Trần Văn Nam nhận giải", "Ông Trần Văn Nam, giám đốc sở, nhận giải thưởng.", "Thời sự"),
    article(2, "Hội nghị cán bộ", "Trần Văn Hùng và Lê Văn Nam cùng dự hội nghị.", "Thời sự"),
    article(3, "Lê Văn Nam nhận giải", "Ông Trần Văn Hùng trao giải.", "Thể thao"),  # pairs in title and body
    article(4, "Đoàn công tác", "Đoàn của ông Trần Văn, Nam Định, gặp Lê Văn Nam.", "Thể thao"),  # a comma
    article(5, "Tran Van Nam tro lai", "Bài viết không dấu về ông Tran Van Nam.", "Kinh tế"),
    article(6, "UBND TP.HCM ban hành quyết định", "UBND TP.HCM vừa ban hành quyết định về giá đất.", "Kinh tế"),
    article(7, "Làm việc với TP.HCM", "UBND tỉnh Bình Dương làm việc với lãnh đạo TP.HCM.", "Kinh tế"),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, tmp_path_factory):
    with build_engine(request.param, request, tmp_path_factory.mktemp("phrases"), DOCS) as engine:
        yield engine


def _search(engine, q: str, **kw):
    return engine.search(SearchRequest(q=q, per_page=50, **kw))


def _ids(result) -> set[str]:
    return {h.article.id for h in result.hits}


def test_a_quoted_phrase_matches_where_its_syllables_stand_together(engine) -> None:
    for q in ('"Trần Văn Nam"', '"tran van nam"', unicodedata.normalize("NFD", '"Trần Văn Nam"')):
        r = _search(engine, q)
        assert _ids(r) == {"1", "5"}, q
        assert (r.tier, r.total, r.notes) == (Tier.ADJACENT, 2, [])
        # Totals and facets count only the articles holding it.
        assert {(f.slug, f.count) for f in r.facets["category"]} == {("thoi-su", 1), ("kinh-te", 1)}
    assert _search(engine, '"trần văn nam" category:the-thao').total == 0  # 3 and 4 hold its pairs only


def test_unquoted_words_still_match_their_pairs_apart(engine) -> None:
    assert {"1", "2", "3", "4", "5"} <= _ids(_search(engine, "trần văn nam"))


def test_no_article_holds_it_contiguously(engine) -> None:
    r = _search(engine, '"Lê Văn Hùng"')  # "Lê Văn Nam" and "Trần Văn Hùng" hold both its pairs
    assert (r.total, r.hits, r.tier) == (0, [], Tier.NONE)


def test_an_excluded_phrase_excludes_only_where_it_stands_together(engine) -> None:
    assert _ids(_search(engine, '"văn nam" -"Trần Văn Nam"')) == {"2", "3", "4"}
    assert _ids(_search(engine, 'giải -"Trần Văn Nam"')) == {"3"}
    r = _search(engine, 'giải -"Trần Văn Nam"')
    assert r.total == 1 and {f.slug for f in r.facets["category"]} == {"the-thao"}


def test_a_quote_split_by_a_compound_is_one_phrase(engine) -> None:
    assert _ids(_search(engine, '"UBND TP.HCM"')) == {"6"}
    assert _ids(_search(engine, '"ủy ban nhân dân TP.HCM"')) == set()  # no synonyms inside quotes


def test_phrases_joined_by_or(engine) -> None:
    assert _ids(_search(engine, '"Trần Văn Nam" OR "Lê Văn Hùng"')) == {"1", "5"}
    assert _ids(_search(engine, '"Trần Văn Hùng" OR "Tran Van Nam"')) == {"1", "2", "3", "5"}


# -- beyond the bound ------------------------------------------------------------------------------

MANY = CHECK_ALL + 50  # articles holding the pairs: more than one search checks


def _many() -> list:
    start = datetime(2010, 1, 1, 8, 0, tzinfo=VN_TZ)
    docs = []
    for i in range(MANY):
        body = "Ông Trần Văn Nam phát biểu." if i % 2 == 0 else "Trần Văn Hùng và Lê Văn Nam dự họp."
        category = "Thời sự" if i % 4 < 2 else "Kinh tế"
        docs.append(article(f"m{i}", f"Tin số {i}", body, category, published=start + timedelta(days=i)))
    return docs


@pytest.mark.parametrize("kind", ENGINES)
def test_beyond_the_bound_the_total_is_estimated_from_the_newest(kind, request, tmp_path) -> None:
    """More candidates than one check takes, every other one holding the phrase: the newest
    CHECK_ALL are checked (half hold it), the 50 oldest counted at that share; exact here by
    construction, and the same in both engines. The page is checked article by article."""
    docs = _many()
    holding = [d for d in docs if "Trần Văn Nam" in d.body[0]]
    with build_engine(kind, request, tmp_path, docs) as engine:
        r = engine.search(SearchRequest(q='"Trần Văn Nam"', per_page=20))
        assert r.total == len(holding) == MANY // 2
        assert len(r.notes) == 1 and f"about {r.total}" in r.notes[0]
        assert f"newest {CHECK_ALL} of the {MANY}" in r.notes[0]
        expected = {}
        for d in holding:
            expected[d.category_slug] = expected.get(d.category_slug, 0) + 1
        assert {f.slug: f.count for f in r.facets["category"]} == expected
        assert sum(f.count for f in r.facets["year"]) == r.total
        assert len(r.hits) == 20 and all(int(h.article.id[1:]) % 2 == 0 for h in r.hits)
        # By date, the oldest are those the sample left out: checked on the page too.
        r = engine.search(SearchRequest(q='"Trần Văn Nam"', per_page=10, sort="oldest"))
        assert [h.article.id for h in r.hits] == [f"m{i}" for i in range(0, 20, 2)]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_rare_phrase_among_common_pairs_is_still_found(kind, request, tmp_path) -> None:
    """None of the newest candidates holds it: the next ones are checked, up to MAX_SAMPLES
    times as many, until one does (here the oldest article)."""
    start = datetime(2010, 1, 1, 8, 0, tzinfo=VN_TZ)
    docs = [
        article(
            f"r{i}",
            f"Tin số {i}",
            "Ông Trần Văn Nam phát biểu." if i == 0 else "Trần Văn Hùng và Lê Văn Nam dự họp.",
            published=start + timedelta(days=i),
        )
        for i in range(2 * CHECK_ALL + 10)
    ]
    with build_engine(kind, request, tmp_path, docs) as engine:
        r = engine.search(SearchRequest(q='"Trần Văn Nam"'))
        assert [h.article.id for h in r.hits] == ["r0"] and r.total == 1 and r.notes == []


def test_a_stored_article_with_escaped_letters_is_read_whole() -> None:
    """The quick look at the JSON reads letters as written; an article stored with them escaped
    ("\\u1ea7") is parsed instead of being passed over."""
    (quote,) = checks_of(parse('"Trần Văn Nam"')).required[0]
    escaped = StoredArticle(json.dumps({"title": "", "body": "Ông Trần Văn Nam nói."}, ensure_ascii=True))
    assert not escaped.quick and holds(escaped, quote)
    assert StoredArticle.of_texts("", "Ông Trần Văn Nam nói.").quick
