"""Copied passages (index.passages): a passage pasted or retyped from an article finds it first,
across punctuation, sentence and paragraph breaks and number separators, ahead of articles that
hold the same pairs scattered."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_helpers import ENGINES, build_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import article

from index import passages
from index.analysis import fold
from index.api import SearchRequest
from index.passages import fold_text, pattern

SOURCE = [
    "Giá lúa tăng mạnh trong tháng này ở đồng bằng.",
    "Theo báo cáo của: người mua, doanh nghiệp và thương lái, mỗi hộ được hỗ trợ 2 triệu đồng. "
    "Mỗi hộ dân còn được vay vốn ưu đãi để xuất khẩu 12.500 tấn gạo",
    "trong quý tới, theo UBND tỉnh. Theo đó các huyện phải báo cáo trước cuối tháng.",
]
# Every adjacent pair of the passages below, scattered over sentences: these articles satisfy the
# adjacent-pairs tier without holding any passage as one run.
SCATTERED = [
    "Tài sản của người già. Người mua nhà vui. Họ mua doanh nghiệp nhỏ. Doanh nghiệp và ngân hàng ký kết.",
    "Hoa màu của người dân. Người mua rau nhiều. Ai mua doanh nghiệp cũ? Doanh nghiệp và thương lái gặp nhau.",
    "Đồng bằng mới. Mỗi hộ gia đình. Ho dân sự. Đồng mỗi ngày. Hộ dân nghèo. Dân còn nghèo.",
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    articles = [article("nguon", "Vụ lúa đông xuân", SOURCE)]
    articles += [article(f"rai-{i}", f"Tin vắn số {i}", [body]) for i, body in enumerate(SCATTERED)]
    articles += [article(f"khac-{i}", f"Tin khác {i}", ["Thời tiết hôm nay nắng nhẹ ở miền Bắc."]) for i in range(5)]
    with build_engine(request.param, request, tmp_path_factory.mktemp("passages") / "ix", articles) as e:
        yield e


@pytest.mark.parametrize("q", [
    "cua nguoi mua doanh nghiep va",  # across a colon and a comma, retyped
    "của: người mua, doanh nghiệp và",  # pasted as it reads
    "2 trieu dong moi ho dan",  # across a sentence end
    "dong. Mỗi hộ dân còn",
    "xuat khau 12 500 tan gao",  # a number with its separator retyped as a space
    "xuất khẩu 12500 tấn gạo",  # ... or left out
    "xuat khau 12.500 tan",
    "tan gao trong quy toi",  # across a paragraph end
    "ubnd tinh theo do cac huyen",  # an abbreviation, then a sentence end
    'của: người mua, "doanh nghiệp',  # a quote mark copied with the passage opens an unclosed phrase
    'nguoi mua "doanh nghiep" va thuong',  # ... or a closed one inside a longer query
])  # fmt: skip
def test_a_copied_passage_finds_its_article_first(engine, q: str) -> None:
    result = engine.search(SearchRequest(q=q, per_page=5))
    assert result.hits and result.hits[0].article.id == "nguon", [h.article.id for h in result.hits]
    assert result.tier in ("adjacent", "syllables"), "every syllable is present: never a fuzzy answer"
    assert result.suggestion is None, "found as one run, as an article spells it: no 'did you mean'"


def test_the_whole_run_outranks_scattered_pairs_in_the_adjacent_tier(engine) -> None:
    result = engine.search(SearchRequest(q="nguoi mua doanh nghiep va", per_page=5))
    ids = [h.article.id for h in result.hits]
    assert ids[0] == "nguon" and {"rai-0", "rai-1"} <= set(ids), ids


def test_short_and_quoted_queries_are_left_to_the_tiers(engine) -> None:
    quoted = engine.search(SearchRequest(q='"cua nguoi mua doanh nghiep va"', per_page=5))
    assert "nguon" not in [h.article.id for h in quoted.hits]  # a quoted phrase stays a phrase of pairs
    short = engine.search(SearchRequest(q="doanh nghiep va", per_page=5))
    assert short.hits  # three syllables: the ordinary plan


def test_the_pattern_and_the_folding() -> None:
    assert fold_text("Đắk Nông, TP.HCM") == fold("Đắk Nông, TP.HCM").lower()
    p = pattern(("cua", "nguoi", "mua"))
    assert p.search("bao cao cua: nguoi mua, doanh") and p.search("cua\n\nnguoi mua")
    assert not p.search("cuanguoi mua") and not p.search("cua nguoi muas")  # not inside another word
    numbers = pattern(("12", "500", "tan"))
    assert numbers.search("12500 tan") and numbers.search("12 500 tan") and not numbers.search("12 5000 tan")


def test_a_passage_within_filters_only(engine, tmp_path: Path) -> None:
    result = engine.search(SearchRequest(q="cua nguoi mua doanh nghiep va", categories=["the-thao"]))
    assert result.total == 0


def test_bridges_are_the_syllables_on_either_side_of_a_break() -> None:
    from index.analysis import analyze, bridges, nfc, pairs

    tokens = analyze(nfc("thực hiện. Với\n\nMỗi hộ (dân) nói"))
    assert bridges(tokens) == ["hien voi", "voi moi", "ho dan", "dan noi"]
    assert not set(bridges(tokens)) & set(pairs(tokens))  # pairs never cross a break; bridges only do


def test_fields_an_older_index_lacks_are_left_out() -> None:
    from index.builder import article_fields

    a = article("x", "Tiêu đề", "Nội dung. Mới")
    assert "body_bridge" in article_fields(a)
    older = {"id", "title_exact", "body_pair", "doc"}
    assert set(article_fields(a, older)) == older


@pytest.mark.parametrize("kind", ENGINES)
def test_a_passage_of_common_pairs_across_a_break_is_found(kind: str, request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    """Thirty articles hold "địa phương thực hiện", the one that holds it followed by ". Với" is
    the thirty-first: without the pair across the full stop, it would not be among the candidates
    checked (24), all holding the same three pairs."""
    common = "Các địa phương thực hiện tốt chỉ thị số {} với sự hỗ trợ."
    articles = [article(f"a-{i:02d}", f"Tin {i}", [common.format(i)]) for i in range(30)]
    source = "Kế hoạch giao cho địa phương thực hiện. Với các xã khó khăn, tỉnh hỗ trợ."
    articles.append(article("z-nguon", "Nguồn", [source]))
    with build_engine(kind, request, tmp_path / "ix", articles) as engine:
        result = engine.search(SearchRequest(q="dia phuong thuc hien voi", per_page=3))
        assert result.hits[0].article.id == "z-nguon", [h.article.id for h in result.hits]


@pytest.mark.parametrize("kind", ENGINES)
def test_when_many_articles_hold_every_pair_the_best_ranked_holding_the_run_come_first(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """More articles hold every pair than are read one by one (``passages.SMALL_POOL``): the answer's
    best-ranked articles are checked instead, and those holding the run still come first, ahead of
    shorter articles, ranked higher, that hold the same pairs scattered over sentences."""
    run = "Báo cáo cho biết địa phương thực hiện tốt việc này trong năm qua, theo sở."
    scattered = "Địa phương nhỏ. Phương thực hiện xong. Thực hiện tốt. Tốt việc. Việc này."
    articles = [article(f"run-{i:02d}", f"Tin số {i}", [run, f"Thêm nội dung khác của bài viết số {i}."])
                for i in range(passages.SMALL_POOL + 8)]
    articles += [article(f"rai-{i}", f"Địa phương thực, thực hiện tốt, tốt việc này {i}", [scattered])
                 for i in range(4)]
    with build_engine(kind, request, tmp_path / "ix", articles) as engine:
        result = engine.search(SearchRequest(q="dia phuong thuc hien tot viec nay", per_page=5))
        ids = [h.article.id for h in result.hits]
        assert ids and all(i.startswith("run-") for i in ids), ids


_WORDS = ["của", "người", "mua", "12.500", "12", "500", "tấn", "UBND", "TP.HCM", "đồng.", "Mỗi", "hộ",
          "dân:", "(x)", "a" * 60, "\u0301", "\\", "*", "[", "(?", "$", "\x00", "🙂", "Đắk", "3,5"]


@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(min_size=1, max_size=12)), min_size=4, max_size=80))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_hostile_long_queries_never_break_the_passage_check(engine, words: list[str]) -> None:
    """Regex metacharacters, control characters, marks alone, emoji, numbers in every form, very
    long words, queries past the length cap: an answer or an empty answer, never an exception."""
    result = engine.search(SearchRequest(q=" ".join(words), per_page=5))
    assert result.total >= len(result.hits)
    assert pattern(tuple(w for w in (fold_text(x).strip() for x in words) if w) or ("x",)).pattern
