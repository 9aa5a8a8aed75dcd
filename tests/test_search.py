"""The search library on a small real index: tiers, syntax, synonyms, ranking, snippets, facets,
filters, sorts, pagination, did-you-mean, suggest, and no input that raises."""

from __future__ import annotations

import threading
import unicodedata
from datetime import date, datetime

import pytest
from cluster_helpers import ENGINES, build_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import article, build, open_files_under

from index.api import (
    TIER_ADJACENT,
    TIER_ALL,
    TIER_FUZZY,
    TIER_NONE,
    TIER_PARTIAL,
    TIER_SYLLABLES,
    SearchError,
    SearchRequest,
)
from index.article import VN_TZ

DOCS = [
    article(1, "Đắk Nông tổ chức hội nghị sơ kết công tác ngoại vụ",
            ["Chiều 26/6/2014, Sở Ngoại vụ tỉnh Đắk Nông tổ chức hội nghị sơ kết 6 tháng đầu năm.",
             "UBND tỉnh chỉ đạo triển khai công tác đối ngoại."],
            "Thông tin KT-VH-XH", published=datetime(2014, 6, 27, tzinfo=VN_TZ), views=1021, source="Sở Ngoại vụ"),
    article(2, "Đoàn cán bộ tỉnh Đắk Lắk tham quan mô hình nông nghiệp",
            "Đoàn cán bộ tỉnh Đắk Lắk tham quan mô hình nông nghiệp công nghệ cao.",
            "Kinh tế", published=datetime(2015, 3, 2, tzinfo=VN_TZ), views=50, source="Báo Đắk Lắk"),
    article(3, "Hội nuôi chó cảnh tổ chức triển lãm", "Hội nuôi chó cảnh tổ chức triển lãm tại công viên.",
            "Đời sống", published=datetime(2016, 5, 1, tzinfo=VN_TZ), views=300),
    article(4, "Chợ đầu mối nông sản hoạt động trở lại", "Chợ đầu mối nông sản hoạt động trở lại sau dịch.",
            "Kinh tế", published=datetime(2016, 6, 1, tzinfo=VN_TZ), views=5000),
    article(5, "Ủy ban nhân dân tỉnh ban hành kế hoạch phòng chống thiên tai",
            "Ủy ban nhân dân tỉnh Lâm Đồng ban hành kế hoạch phòng chống thiên tai năm 2016.",
            "Chính trị Xã hội", published=datetime(2016, 7, 1, tzinfo=VN_TZ)),
    article(6, "UBND thành phố họp báo về giao thông", "UBND thành phố họp báo về tình hình giao thông dịp Tết.",
            "Chính trị Xã hội", published=datetime(2016, 8, 1, tzinfo=VN_TZ)),
    article(7, "Thành phố Hồ Chí Minh mở tuyến xe buýt điện",
            "Thành phố Hồ Chí Minh triển khai 5 tuyến xe buýt điện mới.", "Xã hội",
            published=datetime(2017, 1, 5, tzinfo=VN_TZ)),
    article(8, "Giá vàng hôm nay tăng mạnh", "Giá vàng hôm nay tiếp tục tăng mạnh theo đà thế giới.", "Kinh tế",
            published=datetime(2017, 2, 1, tzinfo=VN_TZ), views=9000),
    article(9, "Bóng đá: U.23 Việt Nam thắng đậm", "U.23 Việt Nam thắng 3-0 trên sân nhà, công tác chuẩn bị tốt.",
            "Thể thao", published=datetime(2017, 3, 1, tzinfo=VN_TZ), source="Tuổi Trẻ"),
    article(10, "Công tác sơ kết được tổ chức muộn", "Công tác sơ kết được tổ chức muộn hơn dự kiến.", "Thời sự",
            published=datetime(2017, 4, 1, tzinfo=VN_TZ)),
    article(11, "Dương Văn Minh và đường phố", "Ông Dương kể chuyện về con đường làng.", "Văn hóa",
            published=datetime(2017, 5, 1, tzinfo=VN_TZ)),
    article(12, "Đường phố sạch đẹp", "Con đường mới được trồng thêm cây xanh, đường phố sạch đẹp.", "Văn hóa",
            published=datetime(2017, 6, 1, tzinfo=VN_TZ)),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, tmp_path_factory):
    with build_engine(request.param, request, tmp_path_factory.mktemp("search"), DOCS) as engine:
        yield engine


def ids(result) -> list[str]:
    return [h.article.id for h in result.hits]


def run(engine, q: str = "", **kw):
    kw.setdefault("per_page", 50)
    return engine.search(SearchRequest(q=q, **kw))


# -- tiers -----------------------------------------------------------------------------------------

def test_adjacent_tier_requires_adjacency(engine):
    r = run(engine, "dak nong")
    assert r.tier == TIER_ADJACENT
    assert ids(r) == ["1"]  # "Đắk Lắk ... nông nghiệp" has both syllables apart


def test_syllables_tier_when_no_adjacent_match(engine):
    r = run(engine, "nong dak")  # reversed: no adjacent pair anywhere
    assert r.tier == TIER_SYLLABLES
    assert set(ids(r)) == {"1", "2"}


def test_fuzzy_tier_for_typos(engine):
    r = run(engine, "hoi ngih")
    assert r.tier == TIER_FUZZY
    assert ids(r)[0] == "1"
    r = run(engine, "giao thonh")
    assert r.tier == TIER_FUZZY and ids(r)[0] == "6"


def test_telex_keystrokes_are_decoded(engine):
    r = run(engine, "hooij nghij")
    assert r.tier == TIER_ADJACENT and ids(r) == ["1"]
    assert [s.text for s in r.hits[0].title_spans if s.hit] == ["hội nghị"]


def test_partial_tier_is_flagged(engine):
    r = run(engine, "triển lãm xyzzyq")
    assert r.tier == TIER_PARTIAL and r.partial
    assert ids(r)[0] == "3"


def test_nothing_matches(engine):
    r = run(engine, "qwxzv")
    assert r.total == 0 and r.hits == []


# -- syntax ----------------------------------------------------------------------------------------

def test_quoted_phrase_is_adjacent_and_never_relaxed(engine):
    assert ids(run(engine, '"sơ kết công tác"')) == ["1"]  # article 10 has "Công tác sơ kết"
    assert ids(run(engine, '"công tác sơ kết hội"')) == []  # never relaxed to scattered syllables
    assert ids(run(engine, '"hội nghị sơ kết"')) == ["1"]
    assert set(ids(run(engine, '"cong tac so ket"'))) == {"10"}


def test_exclusion(engine):
    assert set(ids(run(engine, "tổ chức"))) >= {"1", "3", "10"}
    assert "3" not in ids(run(engine, "tổ chức -chó"))
    assert "1" not in ids(run(engine, 'tổ chức -"hội nghị"'))


def test_or(engine):
    r = run(engine, "giá vàng OR chó cảnh")
    assert set(ids(r)) == {"8", "3"}
    assert set(ids(run(engine, "giá vàng | chó cảnh"))) == {"8", "3"}


def test_field_filters_in_query(engine):
    assert set(ids(run(engine, "category:kinh-te"))) == {"2", "4", "8"}
    assert set(ids(run(engine, "category:\"Kinh tế\" vàng"))) == {"8"}
    assert ids(run(engine, 'source:"tuổi trẻ"')) == ["9"]


def test_malformed_input_degrades(engine):
    newest_first = ids(run(engine, ""))
    # Operators and empty syntax with no word to search for make an empty query: everything, newest first.
    for q in ["OR", "-", "* * *", "||", "category:", '""', '-""']:
        r = run(engine, q)
        assert (r.tier, ids(r)) == (TIER_ALL, newest_first), q
    assert ids(run(engine, "🙂 hội nghị")) == ["1"]  # the emoji is no word; the rest is searched
    r = run(engine, "a" * 5000)  # cut to 256 characters: one unknown word
    assert r.tier == TIER_NONE and r.total == 0 and r.hits == [] and any("256" in n for n in r.notes)
    r = run(engine, '"hội nghị')  # unclosed quote runs to the end
    assert ids(r) == ["1"]
    r = run(engine, '"unbalanced hội nghị')  # ... so "unbalanced" is in the phrase, never relaxed away
    assert r.tier == TIER_NONE and r.total == 0


def test_long_query_is_cut_with_a_note(engine):
    r = run(engine, "hội nghị " * 100)
    assert len(r.query) <= 256
    assert any("256" in n for n in r.notes)


# -- synonyms --------------------------------------------------------------------------------------

def test_abbreviation_finds_full_form_and_back(engine):
    assert {"5", "6"} <= set(ids(run(engine, "UBND")))
    assert {"5", "6"} <= set(ids(run(engine, "ủy ban nhân dân")))


def test_city_abbreviations(engine):
    for q in ("TP.HCM", "tphcm", "tp hcm", "TP. HCM"):
        assert "7" in ids(run(engine, q)), q


def test_place_variants(engine):
    assert ids(run(engine, "Đăk Nông")) == ["1"]
    assert ids(run(engine, "Daknong")) == ["1"]


def test_compound_u23(engine):
    assert ids(run(engine, "U23")) == ["9"]
    assert ids(run(engine, "u.23")) == ["9"]


# -- ranking ---------------------------------------------------------------------------------------

def test_exact_diacritics_rank_first(engine):
    r = run(engine, "chó")
    assert ids(r)[0] == "3"
    assert "4" in ids(r)  # "chợ" still matches (folded), lower
    r = run(engine, "chợ")
    assert ids(r)[0] == "4"


def test_exact_above_folded_duong(engine):
    r = run(engine, "đường phố")
    assert ids(r)[0] == "12"
    r = run(engine, "dương")
    assert ids(r)[0] == "11"


def test_title_weighs_more_than_body(engine):
    r = run(engine, "giao thông")  # title and body of 6; nothing else
    assert ids(r)[0] == "6"


@pytest.mark.parametrize("kind", ENGINES)
def test_ties_broken_by_newest(kind, request, tmp_path):
    same = [article(i, "Tin tức", "Cùng một nội dung.", published=datetime(2010 + i, 1, 1, tzinfo=VN_TZ))
            for i in range(1, 4)]
    with build_engine(kind, request, tmp_path, same) as engine:
        assert ids(run(engine, "nội dung")) == ["3", "2", "1"]


@pytest.mark.parametrize("kind", ENGINES)
def test_recency_boost_prefers_recent(kind, request, tmp_path):
    docs = [article(1, "Bão số 1", "Tin bão khẩn cấp bão bão.", published=datetime(2005, 1, 1, tzinfo=VN_TZ)),
            article(2, "Bão", "Tin bão.", published=datetime(2024, 1, 1, tzinfo=VN_TZ))]
    with build_engine(kind, request, tmp_path, docs) as engine:
        assert ids(run(engine, "bão", recency_boost=True))[0] == "2"


# -- results ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ENGINES)
def test_snippet_marks_matches_on_nfc_text(kind, request, tmp_path):
    body = unicodedata.normalize("NFD", "Mở đầu không liên quan. " * 20 + "Tỉnh Đắk Nông đón khách du lịch. Kết thúc.")
    title = unicodedata.normalize("NFD", "Du lịch Đắk Nông")
    with build_engine(kind, request, tmp_path, [article(1, title, body)]) as engine:
        hit = run(engine, "dak nong").hits[0]
        marked = [s.text for s in hit.snippet if s.hit]
        assert marked == ["Đắk Nông"]
        assert unicodedata.is_normalized("NFC", "".join(s.text for s in hit.snippet))
        # The best passage, not the first sentence.
        assert "Mở đầu" not in "".join(s.text for s in hit.snippet)[:20]
        assert [s.text for s in hit.title_spans if s.hit] == ["Đắk Nông"]


def test_facets_cover_the_whole_match_set(engine):
    r = run(engine, "tỉnh", per_page=1)
    assert len(r.hits) == 1
    total_by_category = sum(f.count for f in r.facets["category"])
    assert total_by_category == r.total > 1
    assert sum(f.count for f in r.facets["year"]) == r.total
    assert all(len(f.value) == 7 for f in r.facets["month"])
    labels = {f.slug: f.value for f in r.facets["category"]}
    assert labels.get("thong-tin-kt-vh-xh") == "Thông tin KT-VH-XH"


def test_filters(engine):
    assert set(ids(run(engine, "", categories=["kinh-te"]))) == {"2", "4", "8"}
    assert set(ids(run(engine, "", categories=["Kinh tế", "the-thao"]))) == {"2", "4", "8", "9"}
    assert ids(run(engine, "", sources=["Báo Đắk Lắk"])) == ["2"]
    r = run(engine, "", date_from=date(2016, 5, 1), date_to=date(2016, 6, 1))
    assert set(ids(r)) == {"3", "4"}  # inclusive on both ends, Asia/Ho_Chi_Minh days


def test_empty_query_lists_newest_first(engine):
    r = run(engine, "")
    assert r.tier == TIER_ALL and r.total == len(DOCS)
    dates = [h.article.published for h in r.hits]
    assert dates == sorted(dates, reverse=True)


def test_sorts(engine):
    r = run(engine, "", sort="oldest")
    assert ids(r)[0] == "1"
    r = run(engine, "", sort="views")
    assert ids(r)[:3] == ["8", "4", "1"]
    r = run(engine, "tỉnh", sort="newest")
    dates = [h.article.published for h in r.hits]
    assert dates == sorted(dates, reverse=True)


def test_pagination(engine):
    all_ids = ids(run(engine, "", per_page=100))
    pages = [ids(run(engine, "", page=p, per_page=5)) for p in (1, 2, 3)]
    assert [i for p in pages for i in p] == all_ids
    with pytest.raises(SearchError) as e:
        run(engine, "", page=101, per_page=100)
    assert e.value.code == "page_too_deep"
    for bad in ({"per_page": 0}, {"per_page": 101}, {"page": 0}, {"sort": "random"}):
        with pytest.raises(SearchError):
            run(engine, "", **bad)


@pytest.mark.parametrize("kind", ENGINES)
def test_did_you_mean_restores_marks(kind, request, tmp_path):
    docs = [article(i, f"Hội nghị số {i}", "Tỉnh tổ chức hội nghị xúc tiến thương mại.") for i in range(1, 6)]
    docs.append(article(9, "Tin khác", "Ngih là một từ lạ."))
    with build_engine(kind, request, tmp_path, docs) as engine:
        r = run(engine, "hoi ngih")
        assert r.suggestion == "hội nghị"
        assert run(engine, "hội nghị").suggestion is None
        # Feeds ask for neither the suggestion nor title highlights; the hits are the same.
        lean = run(engine, "hoi ngih", spelling_suggestion=False, highlight_titles=False)
        assert lean.suggestion is None
        assert ids(lean) == ids(r) and lean.total == r.total
        assert all(h.title_spans == [] for h in lean.hits)
        assert any(s.hit for h in r.hits for s in h.title_spans)


def test_searchers_of_ended_threads_are_closed(tmp_path):
    """Each thread searches with a searcher of its own, and the service's worker threads end when
    idle: the searchers of ended threads must not stay open (their segment files, and the disk
    space of a replaced generation) until the engine is closed, but close when a thread opens one."""
    from index import segment_arrays

    with build(tmp_path, [article(1, "Bão số 3", "Mưa lớn ở miền Trung.")]) as engine:
        # The segment's posting arrays are mapped once for the process (index.segment_arrays), not
        # per searcher: their file is counted apart.
        mapped = sum(1 for arrays in segment_arrays._OPENED.by_segment.values() if arrays is not None)
        assert mapped == 1
        per_searcher = open_files_under(tmp_path) - mapped  # the searcher of this thread, opened by build
        assert per_searcher > 0

        def get() -> None:
            assert engine.get_article("1") is not None

        for _ in range(3):
            thread = threading.Thread(target=get)
            thread.start()
            thread.join()
        counted = []
        thread = threading.Thread(target=lambda: (get(), counted.append(open_files_under(tmp_path))))
        thread.start()
        thread.join()
        assert counted == [2 * per_searcher + mapped], "this thread's and the new thread's searchers, no ended thread's"
    assert open_files_under(tmp_path) == 0, "close() closes the searchers of every thread"


def test_get_article_and_categories(engine):
    a = engine.get_article("1")
    assert a is not None and a.views == 1021 and a.category == "Thông tin KT-VH-XH"
    assert engine.get_article("nope") is None
    cats = {c.slug: c.count for c in engine.categories()}
    assert cats["kinh-te"] == 3 and sum(cats.values()) == len(DOCS)
    latest = engine.latest("kinh-te", limit=2)
    assert [a.id for a in latest] == ["8", "4"]


def test_suggest(engine):
    assert any(s.startswith("Đắk Nông") for s in engine.suggest("dak n"))
    assert engine.suggest("")[:1] == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_no_query_raises(engine, q):
    """Any text gets a well-formed answer: hits from the index, paged, counted and faceted alike."""
    r = engine.search(SearchRequest(q=q, per_page=5))
    assert len(r.query) <= 256
    assert r.total <= len(DOCS) and len(r.hits) == min(r.total, 5)
    found = ids(r)
    assert len(set(found)) == len(found) and set(found) <= {d.id for d in DOCS}
    assert sum(f.count for f in r.facets["category"]) == r.total
    assert r.partial == (r.tier == TIER_PARTIAL)
    assert (r.total == 0) == (r.tier == TIER_NONE)
    if r.tier == TIER_ALL:  # no word to search for: every article
        assert r.total == len(DOCS)
    completions = engine.suggest(q)
    assert len(completions) <= 10 and all(c.strip() for c in completions)


def test_telex_decoder_leaves_ordinary_words_alone():
    from index.telex import decode

    assert decode("hooij") == "hội" and decode("nghij") == "nghị" and decode("dduwowngf") == "đường"
    assert decode("ddawks") == "đắk" and decode("ho6i5") == "hội"
    for word in ("news", "covid", "tuoi", "hoi", "ubnd", "2014"):
        assert decode(word) is None, word


def test_a_commit_while_a_searcher_opens_keys_its_data_by_what_it_reads(tmp_path):
    """A commit landing between opening a searcher and naming its generation must not file the
    searcher's per-generation data (publication keys, counts) under the newer generation: with
    commits every fraction of a second (the publishing applier) a date sort then read past the end
    of the keys of a generation with fewer documents (IndexError, a 500)."""
    from index.builder import index_articles
    from index.engine import WhooshEngine

    index_dir = tmp_path / "ix"
    index_articles(index_dir, [article(i, f"Bài {i} hội nghị", "Nội dung hội nghị") for i in range(3)], procs=1)
    with WhooshEngine(index_dir) as engine:
        original = engine._open_searcher
        committed = []

        def open_then_commit(token: str, previous=None):  # type: ignore[no-untyped-def]
            opened = original(token, previous)
            if not committed:  # a commit by another process, right after the searcher opened
                index_articles(index_dir, [article(9, "Bài mới hội nghị", "Nội dung hội nghị")], procs=1)
                committed.append(True)
            return opened

        engine._open_searcher = open_then_commit  # type: ignore[method-assign]
        searcher, _gen = engine._state()
        assert engine._local.token.endswith(f".{searcher.reader().generation()}")
        assert searcher.doc_count() == 3
        engine._open_searcher = original  # type: ignore[method-assign]
        engine._checked = 0.0  # see the new commit now
        result = engine.search(SearchRequest(q="hội nghị", sort="newest", per_page=10))
        assert result.total == 4
        assert [h.article.id for h in result.hits][0] == "9"


def test_best_paragraph_is_the_first_with_the_most_query_syllables():
    """``_best_paragraphs`` stops at a paragraph holding every syllable (none later can beat it,
    and the first of equals wins): the same choice as scoring every paragraph."""
    import random

    from index.snippets import _best_paragraphs, fold_text

    def reference(paragraphs: list[str], terms: set[str]) -> list[str]:
        scores = [sum(1 for t in terms if t and t in fold_text(p)) for p in paragraphs[:60]]
        best = scores.index(max(scores)) if len(paragraphs) > 2 else 0
        return paragraphs[best:best + 2] if len(paragraphs) > 2 else paragraphs

    rng = random.Random(5)
    words = ["Mưa", "lớn", "ở", "Đắk", "Nông", "cà", "phê", "giá", "tăng", "học", "sinh"]
    for _ in range(400):
        paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 8)))
                      for _ in range(rng.randrange(1, 9))]
        syllables = ["mua", "lon", "dak", "nong", "ca", "phe", "gia", "hoc", "xyz", ""]
        terms = set(rng.sample(syllables, rng.randrange(0, 4)))
        assert _best_paragraphs(paragraphs, terms) == reference(paragraphs, terms), (paragraphs, terms)
