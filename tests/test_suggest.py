"""index.suggest: as-you-type completions from title n-grams and whole titles."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.analysis import analyze, fold, nfc
from index.suggest import (
    NGRAM_MAX,
    Suggester,
    _choose_display,
    _FormCodec,
    _Level,
    _longer_ngrams,
    _ngram_forms,
    _ngram_index,
    _read_titles,
    _title_index,
    _unigrams,
)

TITLES = [
    "Mưa lớn gây ngập nặng ở Đắk Nông",
    "Đắk Nông phát triển cà phê bền vững",
    "Cháy rừng ở Đắk Nông được khống chế",
    "Giá cà phê tại Đắk Nông tăng mạnh",
    "Lũ quét ở Đắk Nông, 3 người chết",
    "Đắk Lắk mở rộng diện tích cao su",
    "Hội nghị thượng đỉnh APEC khai mạc tại Hà Nội",
    "Thủ tướng dự hội nghị thượng đỉnh ASEAN",
    "Hà Nội tổ chức hội nghị xúc tiến đầu tư",
    "Bộ Y tế triệu tập hội nghị khẩn về dịch cúm",
    "Hội nghị Trung ương bàn về nhân sự",
    "Khai mạc hội nghị thượng đỉnh Á - Âu",
    "Thủ tướng Phan Văn Khải thăm Mỹ",
    "Thủ tướng Phan Văn Khải tiếp đoàn doanh nghiệp Nhật Bản",
    "Thủ tướng Phan Văn Khải thăm Canada",
    "Giá vàng tăng mạnh trong tuần",
    "Giá vàng giảm nhẹ sau kỳ nghỉ",
    "Người dân lo lắng vì giá vàng tăng",
    "Giá vàng tăng",
    "TP HCM khởi công tuyến metro đầu tiên",
    "TP HCM tăng cường chống ngập",
    "Hà Nội, TP HCM chuẩn bị đón Tết",
    "Hà Nội: khan hiếm tiền lẻ dịp Tết",
    "Hy Lạp vô địch EURO 2004",
    "Đội tuyển Hy Lạp trở về trong vòng tay người hâm mộ",
    "Hy vọng mới cho bệnh nhân ung thư",
    "Phát hiện mỏ vàng mới ở Quảng Nam",
    "Phát hiện loài cá lạ",
    "Việt Nam đoạt huy chương vàng SEA Games",
    "Việt Nam gia nhập WTO",
    "Bão số 5 đổ bộ vào miền Trung",
    "World Cup 2006: Brazil thắng đậm",
]


@pytest.fixture(scope="module")
def suggester() -> Suggester:
    return Suggester.build(TITLES)


def folded(text: str) -> str:
    """The dedup key of a suggestion: folded syllables joined by spaces."""
    return " ".join(t.folded for t in analyze(nfc(text)) if t.end_pos == t.pos)


def test_len_counts_ngrams_and_titles(suggester: Suggester) -> None:
    assert suggester.title_count == len(set(TITLES))
    assert suggester.ngram_count > 0
    assert len(suggester) == suggester.ngram_count + suggester.title_count


def test_dak_n_completes_to_dak_nong(suggester: Suggester) -> None:
    assert suggester.complete("dak n")[0] == "Đắk Nông"


@pytest.mark.parametrize(
    "prefix",
    [
        "dak n",
        "Đắk N",
        "ĐẮK N",
        "đắk n",
        "  dak   n",
        unicodedata.normalize("NFD", "Đắk N"),
        unicodedata.normalize("NFD", "đắk n"),
        "Ðắk N",  # U+00D0, the Icelandic look-alike of Đ
    ],
)
def test_diacritics_case_and_normalisation_do_not_matter(suggester: Suggester, prefix: str) -> None:
    assert suggester.complete(prefix) == suggester.complete("dak n")


def test_title_start_capital_is_not_kept_when_written_lowercase_elsewhere(suggester: Suggester) -> None:
    results = suggester.complete("hoi ngh")
    assert results[0] == "hội nghị"  # "Hội nghị" starts two titles, "hội nghị" is inside four
    assert "hội nghị thượng" in results
    assert all(fold(r).lower().startswith("hoi ngh") for r in results)
    # Names keep their capitals, at a title start or not.
    assert suggester.complete("hy l")[0] == "Hy Lạp"
    assert suggester.complete("dak")[0] == "Đắk"


def test_trailing_space_means_the_word_is_complete(suggester: Suggester) -> None:
    results = suggester.complete("dak ")
    assert results[0] == "Đắk Nông"
    assert "Đắk" not in results
    assert all(folded(r).startswith("dak ") for r in results)


def test_respelt_partial_syllable_only_matches_as_a_whole_syllable(suggester: Suggester) -> None:
    # Analysis spells a lone y after a consonant as i ("hy" -> "hi"); "hy" must not offer "hiện".
    results = suggester.complete("hy")
    assert results
    assert all(fold(r).lower().startswith("hy") for r in results)
    assert any(r.startswith("hiện") or " hiện" in r for r in suggester.complete("hi"))


def test_multi_word_prefix_keeps_earlier_words_as_typed(suggester: Suggester) -> None:
    results = suggester.complete("thu tuong phan van kh")  # five words, the last one partial
    assert results[0] == "thu tuong Phan Văn Khải"
    assert "Thủ tướng Phan Văn Khải thăm Mỹ" in results  # the titles follow the n-gram
    results = suggester.complete("khai   mac hoi nghi th")
    assert results[0] == "khai mac hội nghị thượng"
    assert "Khai mạc hội nghị thượng đỉnh Á - Âu" in results


def test_prefix_across_punctuation_completes_the_last_clause(suggester: Suggester) -> None:
    results = suggester.complete("Hà Nội, tp h")
    assert results[0] == "Hà Nội, TP HCM"
    assert "Hà Nội, TP HCM chuẩn bị đón Tết" in results
    results = suggester.complete("ha noi: kh")
    assert results[0].startswith("ha noi: ")
    assert "Hà Nội: khan hiếm tiền lẻ dịp Tết" in results
    # Punctuation after the last word leaves no clause to complete by n-grams: titles only.
    results = suggester.complete("Hà Nội: ")
    assert results and all(r in TITLES and folded(r).startswith("ha noi ") for r in results)


def test_title_prefix_gives_the_title(suggester: Suggester) -> None:
    assert suggester.complete("bao so 5 do b") == ["Bão số 5 đổ bộ vào miền Trung"]
    assert "Việt Nam gia nhập WTO" in suggester.complete("Viet Nam gia nh")
    assert suggester.complete("world cup 2006 br") == ["World Cup 2006: Brazil thắng đậm"]


def test_ngrams_come_before_titles_ranked_by_count(suggester: Suggester) -> None:
    # "giá vàng" occurs 4 times (once inside a title), "giá vàng tăng" 3 times; the title
    # "Giá vàng tăng" duplicates the trigram; equally long titles are in alphabetical order.
    assert suggester.complete("gia v") == [
        "giá vàng",
        "giá vàng tăng",
        "Giá vàng giảm nhẹ sau kỳ nghỉ",
        "Giá vàng tăng mạnh trong tuần",
    ]


def test_limit_is_respected(suggester: Suggester) -> None:
    assert len(suggester.complete("t", limit=3)) == 3
    assert len(suggester.complete("t", limit=1)) == 1
    assert suggester.complete("t", limit=0) == []
    assert suggester.complete("t", limit=-5) == []
    many = suggester.complete("t", limit=1000)
    assert 10 < len(many) <= 1000
    assert suggester.complete("t", limit=4) == many[:4]


def test_results_are_deduplicated_by_folded_form(suggester: Suggester) -> None:
    # "Giá vàng tăng" is both a frequent trigram and a whole title.
    results = suggester.complete("gia vang tang", limit=20)
    assert [folded(r) for r in results].count("gia vang tang") == 1
    for prefix in ["t", "h", "gia", "dak n", "hoi nghi", "thu tuong", "ha noi "]:
        keys = [folded(r) for r in suggester.complete(prefix, limit=50)]
        assert len(keys) == len(set(keys)), prefix


@pytest.mark.parametrize(
    "prefix", ["", "   ", "\t\n", "!!!", "...", ", - ;", "😀😀", "\x00\x14", "x" * 101, "dak n " * 20]
)
def test_empty_punctuation_or_too_long_prefix_gives_nothing(suggester: Suggester, prefix: str) -> None:
    assert suggester.complete(prefix) == []


def test_prefix_of_exactly_100_characters_is_accepted(suggester: Suggester) -> None:
    assert suggester.complete(" " * 95 + "dak n") == suggester.complete("dak n")


def test_empty_suggester() -> None:
    empty = Suggester.build([])
    assert len(empty) == 0
    assert empty.complete("dak n") == []
    assert Suggester.build(["", "  ", "!!"]).complete("a") == []


def test_min_count() -> None:
    once = Suggester.build(["Mưa lớn ở Đắk Nông"], min_count=1)
    assert once.complete("dak n")[0] == "Đắk Nông"
    assert Suggester.build(["Mưa lớn ở Đắk Nông"]).complete("dak n") == []  # no frequent n-gram
    assert Suggester.build(["Đắk Nông mưa lớn"]).complete("dak n") == ["Đắk Nông mưa lớn"]  # title


def test_joiners_are_kept_in_the_display() -> None:
    s = Suggester.build(
        ["Tin từ TP.HCM hôm nay", "TP.HCM mưa lớn", "Giá xăng ở TP.HCM", "TP HCM đón Tết"]
    )
    assert s.complete("tp.h")[0] == "TP.HCM"
    assert s.complete("TP.")[0] == "TP.HCM"  # a trailing joiner completes the word before it
    assert s.complete("tp h")[0] == "TP.HCM"


# --- the optimised build against a plain reference implementation --------------------------------


def reference_ngrams(titles: list[str], min_count: int = 2) -> dict[str, tuple[int, str]]:
    """folded n-gram -> (count, display), computed the obvious way (see the module docstring)."""
    counts: Counter[str] = Counter()
    inside: dict[str, Counter[str]] = {}
    at_start: dict[str, Counter[str]] = {}
    for title in titles:
        text = " ".join(nfc(title).split())
        toks = [t for t in analyze(text) if t.end_pos == t.pos]
        for i in range(len(toks)):
            for n in range(1, NGRAM_MAX + 1):
                run = toks[i : i + n]
                if len(run) < n or any(b.pos != a.pos + 1 for a, b in zip(run, run[1:])):
                    break
                key = " ".join(t.folded for t in run)
                surface = text[run[0].start : run[0].end]
                for a, b in zip(run, run[1:]):
                    between = text[a.end : b.start]
                    joiner = between and not any(c.isspace() for c in between)
                    surface += (between if joiner else " ") + text[b.start : b.end]
                counts[key] += 1
                (at_start if i == 0 else inside).setdefault(key, Counter())[surface] += 1
    out = {}
    for key, count in counts.items():
        if count < min_count:
            continue
        ins, sta = inside.get(key, Counter()), at_start.get(key, Counter())
        forms = set(ins) | set(sta)
        display = max(forms, key=lambda f: (ins[f] + sta[f[:1].upper() + f[1:]], ins[f], f))
        out[key] = (count, display)
    return out


def table(s: Suggester) -> list[tuple[str, str]]:
    """The n-gram entries of ``s`` in rank order, as (key, display)."""
    return [s._ngrams.entry(rank) for rank in range(s.ngram_count)]


def expected_table(titles: list[str], min_count: int = 2) -> list[tuple[str, str]]:
    ref = reference_ngrams(titles, min_count)
    order = sorted(ref, key=lambda k: (-ref[k][0], len(ref[k][1]), k, ref[k][1]))
    return [(k, ref[k][1]) for k in order]


def test_build_matches_reference_on_fixture_titles(suggester: Suggester) -> None:
    assert table(suggester) == expected_table(TITLES)
    assert table(Suggester.build(TITLES, min_count=1)) == expected_table(TITLES, 1)


_WORDS = ["Đắk", "đắk", "Nông", "nông", "hội", "Hội", "nghị", "TP", "HCM", "Hà", "Nội"]
_WORDS += ["hy", "Hy", "kỹ", "1.500", "06", "U.23", "Covid-19"]
_SEPS = [" ", " ", " ", ", ", ". ", " - ", "-", ".", "/", " & ", ": ", "  "]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_SEPS)), min_size=1, max_size=8).map(
            lambda parts: "".join(w + s for w, s in parts).strip()
        ),
        max_size=25,
    ),
    st.integers(min_value=1, max_value=3),
)
def test_build_matches_reference_on_random_titles(titles: list[str], min_count: int) -> None:
    assert table(Suggester.build(titles, min_count)) == expected_table(titles, min_count)


# --- robustness --------------------------------------------------------------------------------

_VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyĐĂÂÊÔƠƯ"
    "àáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
)
_ODD = " .,;:-/'\"!?()…–\t\n\u00a0\u0301\u0300\u0323\u200e\x00\x14😀中д"


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(), st.text(alphabet=_VIETNAMESE + _ODD + "0123456789", max_size=120)),
    st.integers(min_value=-2, max_value=40),
)
def test_any_text_never_raises_and_respects_limit(suggester: Suggester, prefix: str, limit: int) -> None:
    results = suggester.complete(prefix, limit)
    assert isinstance(results, list)
    assert len(results) <= max(limit, 0)
    assert all(isinstance(r, str) and r for r in results)
    keys = [folded(r) for r in results]
    assert len(keys) == len(set(keys))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TITLES), st.integers(min_value=1, max_value=60), st.booleans())
def test_every_prefix_of_a_title_finds_that_title(title: str, cut: int, strip: bool) -> None:
    prefix = title[:cut]
    if strip:
        prefix = fold(prefix)
    if not folded(title).startswith(folded(prefix)):
        return  # cut inside a compound ("TP.H" of "TP.HCM" is fine, "1.5" of "1.500" is not)
    results = _FIXTURE.complete(prefix, limit=200)
    # The title itself, or an n-gram equal to it after folding (the same suggestion).
    assert title in results or folded(title) in [folded(r) for r in results]


_FIXTURE = Suggester.build(TITLES)


# --- the build's steps, one by one -------------------------------------------------------------------

def test_read_titles_flattens_syllables_into_parallel_arrays() -> None:
    corpus, rows = _read_titles(["Hà Nội, TP.HCM mưa", 5, "", "!!", "Đắk  Nông", "Dak Nong"])
    words = corpus.syllable_words
    assert [words[i] for i in corpus.syllables] == ["ha", "noi", "tp", "hcm", "mua", "dak", "nong", "dak", "nong"]
    spelt = [corpus.spelling_words[i] for i in corpus.spellings]
    assert spelt == ["Hà", "Nội", "TP", "HCM", "mưa", "Đắk", "Nông", "Dak", "Nong"]
    # What a display puts before each syllable: a joiner written without spaces, else a space.
    assert [corpus.separator_words[i] for i in corpus.separators] == [" ", " ", " ", ".", " ", " ", " ", " ", " "]
    assert corpus.starts == bytes([1, 0, 0, 0, 0, 1, 0, 1, 0])
    # Consecutive in one clause: not across the comma, not from one title to the next.
    assert corpus.adjacent == bytes([1, 0, 1, 1, 0, 1, 0, 1])
    # Distinct titles by folded form, the shortest kept; the joined "tphcm" token is no syllable.
    assert rows == {"ha noi tp hcm mua": "Hà Nội, TP.HCM mưa", "dak nong": "Dak Nong"}


def _level_table(level: _Level) -> dict[str, int]:
    return {level.keys[i]: c for i, c in level.counts.items()}


def test_ngram_levels_count_frequent_ngrams_apriori_style() -> None:
    titles = ["Giá vàng tăng mạnh", "Giá vàng giảm", "giá vàng tăng", "Vàng tăng, giá giảm"]
    corpus, _ = _read_titles(titles)
    ref = reference_ngrams(titles, min_count=2)
    level = _unigrams(corpus, 2)
    assert _level_table(level) == {"gia": 4, "vang": 4, "tang": 3, "giam": 2}
    for n in (2, 3):
        level = _longer_ngrams(corpus, level, 2)
        assert level.n == n
        expected = {k: c for k, (c, _) in ref.items() if len(k.split()) == n}
        assert _level_table(level) == expected
        # kept_at marks exactly the syllables where a frequent n-gram starts, with its id.
        words = corpus.syllable_words
        for i, kept in enumerate(level.kept_at):
            run = " ".join(words[s] for s in corpus.syllables[i : i + n])
            adjacent = all(corpus.adjacent[i : i + n - 1])
            assert kept == (adjacent and run in expected), (n, i, run)
            if kept:
                assert level.keys[level.ids[i]] == run
    assert _level_table(level) == {"gia vang tang": 2}  # "giá vàng giảm" is no trigram of it


def test_form_codec_round_trips_and_sorts_by_ngram() -> None:
    spellings, separators = ["Đắk", "Nông", "đắk", "nông", "TP", "HCM"], [" ", ".", "-"]
    rows = [  # (n-gram id, at title start, spellings, separators before the 2nd..nth)
        (0, 1, [0, 1, 4], [0, 2]),
        (0, 0, [2, 3, 5], [0, 0]),
        (7, 0, [4, 5, 0], [1, 0]),
        (3, 1, [5, 5, 5], [2, 2]),
    ]
    codec = _FormCodec(3, spellings, separators)
    codes = list(codec.pack(
        [r[0] for r in rows], [r[1] for r in rows],
        [[r[2][j] for r in rows] for j in range(3)], [[r[3][j] for r in rows] for j in range(2)],
    ))
    for code, (ngram_id, start, spelt, seps) in zip(codes, rows):
        assert codec.ngram_id(code) == ngram_id
        words = [spellings[s] for s in spelt]
        assert codec.form(code) == (words[0] + separators[seps[0]] + words[1] + separators[seps[1]] + words[2], start)
    assert [codec.ngram_id(c) for c in sorted(codes)] == [0, 0, 3, 7]


def test_ngram_forms_counts_each_written_form_per_ngram() -> None:
    titles = ["Đắk Nông mưa lớn", "Mưa ở Đắk Nông", "Đắk Nông", "đắk nông nắng", "Mưa lớn"]
    corpus, _ = _read_titles(titles)
    level = _longer_ngrams(corpus, _unigrams(corpus, 2), 2)
    forms = {level.keys[i]: sorted(f) for i, f in _ngram_forms(corpus, level)}
    assert forms == {
        "dak nong": [("Đắk Nông", 0, 1), ("Đắk Nông", 1, 2), ("đắk nông", 1, 1)],
        "mua lon": [("Mưa lớn", 1, 1), ("mưa lớn", 0, 1)],
    }
    ids = [i for i, _ in _ngram_forms(corpus, level)]
    assert ids == sorted(ids) == sorted(level.counts)


def test_choose_display_counts_title_starts_for_their_lowercase_form() -> None:
    # Two inside, two at a title start: the title starts support "hội nghị" too.
    assert _choose_display([("hội nghị", 0, 2), ("Hội nghị", 1, 2)]) == "hội nghị"
    # A capital written inside titles is a name: it stays.
    assert _choose_display([("Đắk Nông", 0, 3), ("đắk nông", 0, 1), ("Đắk Nông", 1, 5)]) == "Đắk Nông"
    # Only ever at title starts: shown as written.
    assert _choose_display([("Giá vàng", 1, 4)]) == "Giá vàng"


def test_ngram_and_title_indexes_rank_entries() -> None:
    keys = ["gia vang", "gia", "vang tang", "gia vang tang"]
    ngrams = _ngram_index(keys, ["giá vàng", "giá", "Vàng tăng", "giá vàng tăng"], [4, 4, 2, 4])
    # Count descending, then shorter display, then key.
    assert [ngrams.entry(r)[0] for r in range(len(keys))] == ["gia", "gia vang", "gia vang tang", "vang tang"]
    titles = _title_index(["b a", "a b", "c"], ["B a", "A b", "C"])
    # Shorter first, then key.
    assert [titles.entry(r) for r in range(3)] == [("c", "C"), ("a b", "A b"), ("b a", "B a")]
