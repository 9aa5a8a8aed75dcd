"""index.readers: portal text exports and JSON Lines, good and bad, from real files on disk."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index import limits
from index.article import VN_TZ, Article
from index.readers import ReadError, read_sources
from index.readers.jsonl import read_jsonl_lines

SHARED = Path(__file__).resolve().parents[2] / "shared"
PORTAL_DIR = SHARED / "samples" / "portal"
ORIGINAL = PORTAL_DIR / "000_78598a99919a94f2.txt"
CORPUS = SHARED / "corpus" / "vntc.jsonl.gz"
REPO = Path(__file__).resolve().parents[1]

PORTAL_TEXT = """Tin tức > Thể thao
Việt Nam thắng đậm trận mở màn
Ngày đăng: 05/03/2015 - Số lần xem: 321

Đội tuyển Việt Nam thắng 3-0 trong trận mở màn vòng loại.

Huấn luyện viên hài lòng với tinh thần của các cầu thủ.

  • Nguồn: Thanh Hà
Phản hồi
"""


T = TypeVar("T")


def read(*sources: Path | str) -> list[Article | ReadError]:
    return list(read_sources([str(s) for s in sources]))


def only_article(items: list[Article | ReadError]) -> Article:
    assert len(items) == 1, items
    assert isinstance(items[0], Article), str(items[0])
    return items[0]


def only_error(items: list[Article | ReadError]) -> ReadError:
    assert len(items) == 1, items
    assert isinstance(items[0], ReadError), items[0]
    return items[0]


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared beside the checkout is not available)")


# --- the shared samples ---------------------------------------------------------------------


def test_all_portal_samples_read_without_errors() -> None:
    need(PORTAL_DIR)
    items = read(PORTAL_DIR)
    errors = [str(i) for i in items if isinstance(i, ReadError)]
    assert errors == []
    assert len(items) == 241
    assert len({a.id for a in items}) == 241


def test_original_portal_export() -> None:
    need(ORIGINAL)
    a = only_article(read(ORIGINAL))
    assert a.id == "portal-000_78598a99919a94f2"
    assert a.title == (
        "Sở Ngoại vụ tỉnh Đăk Nông tổ chức hội nghị sơ kết công tác ngoại vụ 6 tháng đầu năm"
        " và triển khai công tác 6 tháng cuối năm 2014"
    )
    assert a.published == datetime(2014, 6, 27, tzinfo=VN_TZ)
    assert a.published.utcoffset() == timedelta(hours=7)
    assert a.views == 1021
    assert a.category == "Thông tin KT-VH-XH"
    assert a.category_path == ["Thông tin KT-VH-XH"]
    assert a.category_slug == "thong-tin-kt-vh-xh"
    assert a.source == "Võ Thái Lâm - Sở Ngoại vụ tỉnh Đăk Nông"
    assert a.captions == ["Đồng chí Phạm Thanh Khiết - Giám đốc Sở, Chủ trì Hội nghị"]
    assert all("Đồng chí Phạm Thanh Khiết" not in p for p in a.body)
    assert len(a.body) == 4
    assert a.body[0].startswith("Chiều ngày 26/6/2014")
    assert "đánh giá kết quả" in a.body[0]  # the export has a double space here
    everything = [a.title, a.source, *a.body, *a.captions]
    assert not any("Phản hồi" in t or "  " in t or "Nguồn" in t for t in everything)


def test_no_captions_taken_from_corpus_rendered_samples() -> None:
    # Subheadings, table cells and bylines in the 240 rendered articles must stay in the body.
    need(PORTAL_DIR)
    with_captions = [a.id for a in read(PORTAL_DIR) if isinstance(a, Article) and a.captions]
    assert with_captions == ["portal-000_78598a99919a94f2"]


def test_corpus_head_reads_without_errors() -> None:
    need(CORPUS)
    with gzip.open(CORPUS, "rb") as f:
        items = list(read_jsonl_lines(itertools.islice(f, 2000), str(CORPUS)))
    errors = [str(i) for i in items if isinstance(i, ReadError)]
    assert errors == []
    assert len(items) == 2000
    for a in items:
        assert a.published.utcoffset() == timedelta(hours=7)
        text = "\n".join([a.title, *a.body])
        assert unicodedata.is_normalized("NFC", text)
        assert "\u200e" not in text and "\u00a0" not in text and "&amp;" not in text


def test_corpus_control_character_is_removed() -> None:
    need(CORPUS)
    wanted = b'"id": "vntc-test-sk-vne-5416"'
    with gzip.open(CORPUS, "rb") as f:
        line = next((ln for ln in f if wanted in ln), None)
    assert line is not None, "vntc-test-sk-vne-5416 not found in the corpus"
    assert b"\\u0014" in line  # the raw record really has the character
    a = only_article(list(read_jsonl_lines([line], str(CORPUS))))
    assert a.id == "vntc-test-sk-vne-5416"
    assert not any("\x14" in t for t in [a.title, *a.body])


# --- portal variants ------------------------------------------------------------------------


def test_portal_basic(tmp_path: Path) -> None:
    a = only_article(read(write(tmp_path / "bai-1.txt", PORTAL_TEXT)))
    assert a.id == "portal-bai-1"
    assert a.title == "Việt Nam thắng đậm trận mở màn"
    assert a.category == "Thể thao" and a.category_path == ["Thể thao"]
    assert a.published == datetime(2015, 3, 5, tzinfo=VN_TZ)
    assert a.views == 321
    assert a.source == "Thanh Hà"
    assert a.body == [
        "Đội tuyển Việt Nam thắng 3-0 trong trận mở màn vòng loại.",
        "Huấn luyện viên hài lòng với tinh thần của các cầu thủ.",
    ]
    assert a.captions == []


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"), id="utf8-bom"),
        pytest.param(lambda t: t.encode("utf-16"), id="utf16-native-bom"),
        pytest.param(lambda t: b"\xff\xfe" + t.encode("utf-16-le"), id="utf16-le-bom"),
        pytest.param(lambda t: b"\xfe\xff" + t.encode("utf-16-be"), id="utf16-be-bom"),
        pytest.param(lambda t: t.replace("\n", "\r\n").encode("utf-8"), id="crlf"),
        pytest.param(lambda t: t.replace("\n", "\r").encode("utf-8"), id="cr"),
        pytest.param(lambda t: unicodedata.normalize("NFD", t).encode("utf-8"), id="nfd"),
        pytest.param(lambda t: ("\n\n  \n" + t).encode("utf-8"), id="leading-blank-lines"),
    ],
)
def test_portal_encodings_and_line_endings(tmp_path: Path, encode) -> None:
    expected = only_article(read(write(tmp_path / "plain.txt", PORTAL_TEXT)))
    got = only_article(read(write(tmp_path / "variant.txt", encode(PORTAL_TEXT))))
    assert got.to_dict() | {"id": None} == expected.to_dict() | {"id": None}


def test_portal_missing_view_count_and_time_of_day(tmp_path: Path) -> None:
    no_views = PORTAL_TEXT.replace("05/03/2015 - Số lần xem: 321", "27/06/2014")
    a = only_article(read(write(tmp_path / "a.txt", no_views)))
    assert a.views is None
    assert a.published == datetime(2014, 6, 27, tzinfo=VN_TZ)
    with_time = PORTAL_TEXT.replace("05/03/2015", "05/03/2015 14:35")
    b = only_article(read(write(tmp_path / "b.txt", with_time)))
    assert b.published == datetime(2015, 3, 5, 14, 35, tzinfo=VN_TZ)
    assert b.views == 321


def test_portal_one_and_three_level_breadcrumbs(tmp_path: Path) -> None:
    one = only_article(read(write(tmp_path / "one.txt", PORTAL_TEXT.replace("Tin tức > ", ""))))
    assert one.category == "Thể thao" and one.category_path == ["Thể thao"]
    assert one.category_slug == "the-thao"
    three_text = PORTAL_TEXT.replace("Tin tức > Thể thao", "Tin tức > Kinh tế > Nông nghiệp")
    three = only_article(read(write(tmp_path / "three.txt", three_text)))
    assert three.category == "Nông nghiệp"
    assert three.category_path == ["Kinh tế", "Nông nghiệp"]
    other_root = PORTAL_TEXT.replace("Tin tức > Thể thao", "Thời sự > Trong nước")
    other = only_article(read(write(tmp_path / "other.txt", other_root)))
    assert other.category_path == ["Thời sự", "Trong nước"]


def test_portal_caption_needs_image_gap_and_no_final_punctuation(tmp_path: Path) -> None:
    body = (
        "Đoạn mở đầu của bài viết, đủ dài để là một đoạn văn bình thường.\n\n\n"
        "Toàn cảnh hội nghị tại hội trường tỉnh\n\n"
        "Kết quả nổi bật\n\n"  # a subheading: no image gap, stays in the body
        "Hội nghị kết thúc lúc 17 giờ.\n\n\n"
        "Đại biểu phát biểu.\n\n\n"  # ends with a full stop: body
        "Việt Anh\n"  # last paragraph (a byline): body even after a gap
    )
    text = PORTAL_TEXT.split("\n\n", 1)[0] + "\n\n" + body
    a = only_article(read(write(tmp_path / "cap.txt", text)))
    assert a.captions == ["Toàn cảnh hội nghị tại hội trường tỉnh"]
    assert a.body == [
        "Đoạn mở đầu của bài viết, đủ dài để là một đoạn văn bình thường.",
        "Kết quả nổi bật",
        "Hội nghị kết thúc lúc 17 giờ.",
        "Đại biểu phát biểu.",
        "Việt Anh",
    ]
    assert a.source is None


# --- bad portal files -------------------------------------------------------------------------

BAD_PORTAL = {
    "binary.txt": (bytes(range(256)) * 3, None, "binary"),
    "empty.txt": (b"", None, "empty"),
    "blank.txt": (b"\n  \r\n\xc2\xa0\n", None, "empty"),
    "truncated.txt": ("Tin tức > Thể thao\nViệt Nam thắng đậm\n".encode(), 3, "Ngày đăng"),
    "latin1.txt": (
        "Tin tÙc > Thê thao\nCà phê\nNgày ðång: 01/02/2014\n\nTàu à Sài Gòn.\n".encode("latin-1"),
        1,
        "not UTF-8/UTF-16 text",
    ),
    "baddate.txt": (PORTAL_TEXT.replace("05/03/2015", "31/02/2014").encode(), 3, "bad date"),
    "nodate.txt": (
        PORTAL_TEXT.replace("Ngày đăng: 05/03/2015 - Số lần xem: 321\n", "").encode(),
        4,
        "Ngày đăng",
    ),
    "malformed.txt": (
        PORTAL_TEXT.replace("05/03/2015", "hôm qua").encode(),
        3,
        "malformed date line",
    ),
    "notitle.txt": (
        PORTAL_TEXT.replace("Việt Nam thắng đậm trận mở màn\n", "").encode(),
        2,
        "no title",
    ),
    "nobreadcrumb.txt": (
        PORTAL_TEXT.replace("Tin tức > Thể thao\n", "").encode(),
        1,
        "no breadcrumb",
    ),
    "nobody.txt": (PORTAL_TEXT.split("\n\n", 1)[0] + "\n\n  • Nguồn: X\nPhản hồi\n", 3, "no body"),
}


@pytest.mark.parametrize("name", sorted(BAD_PORTAL))
def test_bad_portal_file(tmp_path: Path, name: str) -> None:
    data, line, why = BAD_PORTAL[name]
    path = write(tmp_path / name, data)
    err = only_error(read(path))
    assert err.path == str(path)
    assert err.line == line
    assert str(err).startswith(f"{path}:" if line is None else f"{path}:{line}: ")
    assert why in err.reason


def test_nonexistent_path(tmp_path: Path) -> None:
    err = only_error(read(tmp_path / "missing.txt"))
    assert str(err) == f"{tmp_path / 'missing.txt'}: no such file or directory"


def test_directory_mixing_good_and_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    write(root / "a-good.txt", PORTAL_TEXT)
    write(root / "b-binary.txt", b"\x00\x01\x02GIF89a\x00\xff")
    write(root / "sub" / "c-good.txt", PORTAL_TEXT.replace("Thể thao", "Pháp luật"))
    write(root / "sub" / "d-baddate.txt", PORTAL_TEXT.replace("05/03/2015", "32/13/2015"))
    write(root / "e-corpus.jsonl", jsonl_record("j1") + "\n")
    write(root / ".hidden.txt", b"\x00 not read")
    write(root / ".git" / "x.txt", b"\x00 not read")
    items = read(root)
    assert [type(i).__name__ for i in items] == [
        "Article",
        "ReadError",
        "Article",
        "Article",
        "ReadError",
    ]
    assert [i.id for i in items if isinstance(i, Article)] == [
        "portal-a-good",
        "j1",
        "portal-c-good",
    ]
    errors = [i for i in items if isinstance(i, ReadError)]
    assert str(errors[0]).startswith(f"{root / 'b-binary.txt'}: binary")
    assert str(errors[1]).startswith(f"{root / 'sub' / 'd-baddate.txt'}:3: bad date")


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    portal = only_article(read(write(tmp_path / "export.dat", PORTAL_TEXT)))
    assert portal.id == "portal-export"
    jsonl = read(write(tmp_path / "dump", "\n  " + jsonl_record("x1") + "\n"))
    assert only_article(jsonl).id == "x1"
    gz = read(write(tmp_path / "dump.bin", gzip.compress(jsonl_record("x2").encode())))
    assert only_article(gz).id == "x2"


def test_stdin_is_sniffed() -> None:
    code = (
        "from index.readers import read_sources\n"
        "for item in read_sources(['-']): print(type(item).__name__, getattr(item, 'id', item))\n"
    )
    run = lambda data: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, cwd=REPO
    ).stdout.decode()
    assert run(PORTAL_TEXT.encode()) == "Article portal-stdin\n"
    lines = (jsonl_record("s1") + "\n" + jsonl_record("s2") + "\n").encode()
    assert run(lines) == "Article s1\nArticle s2\n"
    assert run(gzip.compress(lines)) == "Article s1\nArticle s2\n"


# --- JSON Lines -------------------------------------------------------------------------------


def jsonl_record(id: str, **fields: object) -> str:
    record = {
        "id": id,
        "title": "Giá vàng tăng",
        "body": "Đoạn một.\n\nĐoạn hai.",
        "category": "Kinh doanh",
        "published": "2005-03-01T08:00:00+07:00",
        "source": "VnExpress",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...}, ensure_ascii=False)


def test_jsonl_fields(tmp_path: Path) -> None:
    line = jsonl_record(
        "k1",
        title=" Giá&nbsp;vàng &amp; đô la ",
        body=["Đoạn\u00a0một.", "Đoạn hai.\n\nĐoạn ba.", "  "],
        published="2005-03-01T08:00:00",
        views=12,
        url="https://example.vn/a?b=1&amp;c=2",
        category_path=["Kinh tế", "Kinh doanh"],
        captions=["Ảnh minh hoạ"],
        origin="ignored",
    )
    a = only_article(read(write(tmp_path / "a.jsonl", line + "\n")))
    assert a.title == "Giá vàng & đô la"
    assert a.body == ["Đoạn một.", "Đoạn hai.", "Đoạn ba."]
    assert a.published == datetime(2005, 3, 1, 8, 0, tzinfo=VN_TZ)
    assert a.views == 12 and a.url == "https://example.vn/a?b=1&c=2"
    assert a.category_path == ["Kinh tế", "Kinh doanh"] and a.captions == ["Ảnh minh hoạ"]
    assert a.category_slug == "kinh-doanh"


def test_jsonl_defaults_and_date_only(tmp_path: Path) -> None:
    line = jsonl_record("k2", category=..., source=..., published="2006-12-31")
    a = only_article(read(write(tmp_path / "a.json", line)))
    assert a.category == "Khác" and a.category_slug == "khac"
    assert a.source is None
    assert a.published == datetime(2006, 12, 31, tzinfo=VN_TZ)
    utc_line = jsonl_record("k3", published="2005-01-01T00:00:00Z")
    utc = only_article(read(write(tmp_path / "b.jsonl", utc_line)))
    assert utc.published.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "x", "title": ', "invalid JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ("[" * 100_000, "invalid JSON"),
        (jsonl_record(""), "no id"),
        (jsonl_record(..., title="t"), "no id"),
        (jsonl_record("x", title="  &nbsp; "), "no title"),
        (jsonl_record("x", body="\n\n \u200b "), "no body"),
        (jsonl_record("x", body=...), "no body"),
        (jsonl_record("x", published="yesterday"), "bad date 'yesterday'"),
        (jsonl_record("x", published=20050301), "bad date 20050301"),
        (jsonl_record("x", published=...), "no date"),
        (jsonl_record("x", title=42), "title is int, not a string"),
        (jsonl_record("x", body={"a": 1}), "body is neither"),
        (jsonl_record("x", views="many"), "bad views 'many'"),
        (jsonl_record("x", views=-1), "bad views -1"),
        (jsonl_record("x", views=True), "bad views True"),
        (jsonl_record("x", captions="one"), "captions is not a list of strings"),
        (jsonl_record("x", category_path=[1]), "category_path is not a list of strings"),
    ],
)
def test_jsonl_bad_line_in_the_middle(tmp_path: Path, line: str, reason: str) -> None:
    text = "\n".join([jsonl_record("first"), "", line, jsonl_record("last")]) + "\n"
    path = write(tmp_path / "corpus.jsonl", text)
    items = read(path)
    assert [type(i).__name__ for i in items] == ["Article", "ReadError", "Article"]
    assert [items[0].id, items[2].id] == ["first", "last"]
    err = items[1]
    assert (err.path, err.line) == (str(path), 3)
    assert str(err).startswith(f"{path}:3: {reason}")


def test_jsonl_not_utf8_line(tmp_path: Path) -> None:
    data = (jsonl_record("a") + "\n").encode() + b'{"id": "\xe0"}\n' + (jsonl_record("b")).encode()
    items = read(write(tmp_path / "c.jsonl", data))
    assert [getattr(i, "id", None) for i in items] == ["a", None, "b"]
    assert str(items[1]) == f"{tmp_path / 'c.jsonl'}:2: not UTF-8 (byte 0xe0)"


def test_jsonl_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    lines = "".join(jsonl_record(f"g{i}", body=f"Đoạn số {i}. " * 200) + "\n" for i in range(200))
    packed = gzip.compress(lines.encode())
    whole = read(write(tmp_path / "all.jsonl.gz", packed))
    assert [a.id for a in whole] == [f"g{i}" for i in range(200)]
    # A ".jsonl" name does not hide gzip content: the magic bytes decide.
    assert len(read(write(tmp_path / "misnamed.jsonl", packed))) == 200

    path = write(tmp_path / "cut.jsonl.gz", packed[: len(packed) // 2])
    items = read(path)
    articles = [i for i in items if isinstance(i, Article)]
    assert articles and articles == whole[: len(articles)]
    assert isinstance(items[-1], ReadError)
    assert str(items[-1]).startswith(f"{path}:")
    assert "truncated or corrupt" in items[-1].reason
    assert all(isinstance(i, Article) for i in items[:-2])  # at most the cut line besides


def test_jsonl_gz_name_with_plain_content(tmp_path: Path) -> None:
    assert only_article(read(write(tmp_path / "plain.gz", jsonl_record("p1")))).id == "p1"
    err = only_error(read(write(tmp_path / "garbage.jsonl.gz", b"\x1f\x8bnot really gzip")))
    assert "truncated or corrupt" in err.reason


# --- size limits, empty and special files ---------------------------------------------------


def peak_bytes_while(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()``'s result and the peak of Python allocations while it ran (bytes objects included)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


FIELD_CAPS = {  # field -> (the record's value at a size, the cap)
    "title": (lambda n: "t" * n, limits.MAX_TITLE_CHARS),
    "body": (lambda n: "b" * n, limits.MAX_BODY_CHARS),
    "paragraphs": (lambda n: ["p"] * n, limits.MAX_PARAGRAPHS),
    "caption": (lambda n: ["c" * n], limits.MAX_CAPTION_CHARS),
    "captions": (lambda n: ["c"] * n, limits.MAX_CAPTIONS),
    "source": (lambda n: "s" * n, limits.MAX_SOURCE_CHARS),
    "url": (lambda n: "https://x.vn/" + "u" * (n - 13), limits.MAX_URL_CHARS),
    "id": (lambda n: "i" * n, limits.MAX_ID_CHARS),
    "category": (lambda n: "k" * n, limits.MAX_CATEGORY_CHARS),
    "category_path": (lambda n: ["k"] * n, limits.MAX_CATEGORY_LEVELS),
}
_RECORD_KEY = {"paragraphs": "body", "caption": "captions"}


@pytest.mark.parametrize("field", sorted(FIELD_CAPS))
def test_jsonl_article_over_a_size_cap_is_skipped(tmp_path: Path, field: str) -> None:
    value, cap = FIELD_CAPS[field]
    key = _RECORD_KEY.get(field, field)
    if key == "id":
        lines = [jsonl_record(value(cap)), jsonl_record(value(cap + 1))]
    else:
        lines = [jsonl_record("at-cap", **{key: value(cap)}), jsonl_record("over", **{key: value(cap + 1)})]
    path = write(tmp_path / "big.jsonl", "\n".join(lines) + "\n")
    at_cap, over = read(path)
    assert isinstance(at_cap, Article), str(at_cap)  # the cap itself is allowed
    assert isinstance(over, ReadError)
    assert str(over) == f"{path}:2: too large ({field}: {cap + 1} > {cap})"


def test_portal_article_over_a_size_cap_is_skipped(tmp_path: Path) -> None:
    long_title = PORTAL_TEXT.replace("Việt Nam thắng đậm trận mở màn", "T" * (limits.MAX_TITLE_CHARS + 1))
    err = only_error(read(write(tmp_path / "title.txt", long_title)))
    cap = limits.MAX_TITLE_CHARS
    assert str(err) == f"{tmp_path / 'title.txt'}:2: too large (title: {cap + 1} > {cap})"
    many = PORTAL_TEXT.replace("Huấn luyện viên", "Đoạn.\n\n" * limits.MAX_PARAGRAPHS + "Huấn luyện viên")
    err = only_error(read(write(tmp_path / "paragraphs.txt", many)))
    assert err.reason == f"too large (paragraphs: {limits.MAX_PARAGRAPHS + 2} > {limits.MAX_PARAGRAPHS})"
    long_source = PORTAL_TEXT.replace("Thanh Hà", "S" * (limits.MAX_SOURCE_CHARS + 1))
    assert only_error(read(write(tmp_path / "source.txt", long_source))).reason.startswith("too large (source: ")
    at_cap = PORTAL_TEXT.replace("Thanh Hà", "S" * limits.MAX_SOURCE_CHARS)
    assert only_article(read(write(tmp_path / "ok.txt", at_cap))).source == "S" * limits.MAX_SOURCE_CHARS


def test_jsonl_line_too_long_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    """A 40 MB line (and the same inside gzip) is reported and skipped; the lines around it are
    read, numbered right, and no more than about one line cap is ever held."""
    good = jsonl_record("before") + "\n"
    huge = b'{"id": "x", "body": "' + b"x" * (40 * 1024 * 1024) + b'"}\n'
    data = good.encode() + huge + (jsonl_record("after") + "\n").encode()
    for name, payload in (("long.jsonl", data), ("long.jsonl.gz", gzip.compress(data, 1))):
        path = write(tmp_path / name, payload)
        items, peak = peak_bytes_while(lambda: read(path))  # noqa: B023
        assert [str(i) if isinstance(i, ReadError) else i.id for i in items] == [
            "before", f"{path}:2: line too long", "after"]
        assert peak < 3 * limits.MAX_LINE_BYTES, (name, peak)
        del payload


def test_line_exactly_at_the_cap_is_read() -> None:
    from index.readers.jsonl import bounded_lines

    record = jsonl_record("edge").encode()
    padded = record[:-1] + b" " * (limits.MAX_LINE_BYTES - len(record)) + b"}"
    assert len(padded) == limits.MAX_LINE_BYTES
    for ending in (b"\n", b"\r\n", b""):
        stream = io.BytesIO(padded + ending + padded + b" " + ending + record)
        items = list(read_jsonl_lines(bounded_lines(stream), "mem"))
        assert [str(i) if isinstance(i, ReadError) else i.id for i in items] == [
            "edge", "mem:2: line too long", "edge"] if ending else ["mem:1: line too long"]


def test_gzip_bomb_without_newline(tmp_path: Path) -> None:
    """~50 KB of gzip that inflates to 50 MB with no newline: one error, memory bounded."""
    bomb = write(tmp_path / "bomb.jsonl.gz", gzip.compress(b"{" + b" " * 50_000_000, 9))
    assert bomb.stat().st_size < 200_000
    sniffed = write(tmp_path / "bomb", bomb.read_bytes())  # recognised by content, not by name
    for path in (bomb, sniffed):
        started = time.monotonic()
        items, peak = peak_bytes_while(lambda: read(path))  # noqa: B023
        assert [str(i) for i in items] == [f"{path}:1: line too long"]
        assert peak < 3 * limits.MAX_LINE_BYTES
        assert time.monotonic() - started < 10


def test_portal_line_too_long_and_file_too_large(tmp_path: Path) -> None:
    long_line = PORTAL_TEXT.replace("Huấn luyện viên", "x" * (limits.MAX_LINE_BYTES + 1))
    err = only_error(read(write(tmp_path / "line.txt", long_line)))
    assert str(err) == f"{tmp_path / 'line.txt'}:7: line too long"
    # Counted in UTF-8 even when the file is UTF-16: "đ" is 2 bytes.
    utf16 = PORTAL_TEXT.replace("Huấn luyện viên", "đ" * (limits.MAX_LINE_BYTES // 2 + 1))
    err = only_error(read(write(tmp_path / "line16.txt", b"\xff\xfe" + utf16.encode("utf-16-le"))))
    assert (err.line, err.reason) == (7, "line too long")
    big = PORTAL_TEXT + ("Đoạn văn.\n\n" * (3 * limits.MAX_PORTAL_FILE_BYTES // 10))  # 3 times the cap
    for name in ("big.txt", "big-sniffed"):
        path = write(tmp_path / name, big)
        items, peak = peak_bytes_while(lambda: read(path))  # noqa: B023
        assert [str(i) for i in items] == [f"{path}: too large (file: more than {limits.MAX_PORTAL_FILE_BYTES} bytes)"]
        assert peak < 2.5 * limits.MAX_PORTAL_FILE_BYTES  # at most the cap read (and joined to the head once)


@pytest.mark.parametrize(("name", "data"), [
    ("empty.jsonl", b""),
    ("empty", b""),
    ("empty.txt", b""),
    ("empty.json", b""),
    ("blank.jsonl", b"\n \r\n\t\n"),
    ("bom.jsonl", b"\xef\xbb\xbf\n"),
    ("empty.jsonl.gz", gzip.compress(b"")),
    ("blank.gz", gzip.compress(b"\n\n")),
])
def test_empty_files_are_reported_alike(tmp_path: Path, name: str, data: bytes) -> None:
    path = write(tmp_path / name, data)
    assert str(only_error(read(path))) == f"{path}: empty file"


SPECIAL_FILES_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # old code read /dev/zero whole
from index.readers import read_sources
for item in read_sources(sys.argv[1:]):
    print(getattr(item, "id", None) or item, flush=True)
"""


def test_special_files_are_skipped_without_being_opened(tmp_path: Path) -> None:
    """A FIFO blocked the reader forever (opening it waits for a writer), /dev/zero behind a
    symlink never ends, a socket cannot be read: each is reported and skipped, within seconds."""
    root = tmp_path / "exports"
    write(root / "a.jsonl", jsonl_record("a") + "\n")
    os.mkfifo(root / "b-fifo.jsonl")
    (root / "c-zero.jsonl").symlink_to("/dev/zero")
    (root / "d-null").symlink_to("/dev/null")
    os.mkfifo(tmp_path / "fifo-outside")
    (root / "e-link-to-fifo.txt").symlink_to(tmp_path / "fifo-outside")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "f.sock"))
    write(root / "g.jsonl", jsonl_record("g") + "\n")
    try:
        run = subprocess.run([sys.executable, "-c", SPECIAL_FILES_SCRIPT, str(root), str(tmp_path / "fifo-outside")],
                             capture_output=True, cwd=REPO, timeout=30, check=False)
    finally:
        sock.close()
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode().splitlines() == [
        "a",
        f"{root / 'b-fifo.jsonl'}: not a regular file (FIFO)",
        f"{root / 'c-zero.jsonl'}: not a regular file (character device)",
        f"{root / 'd-null'}: not a regular file (character device)",
        f"{root / 'e-link-to-fifo.txt'}: not a regular file (FIFO)",
        f"{root / 'f.sock'}: not a regular file (socket)",
        "g",
        f"{tmp_path / 'fifo-outside'}: not a regular file (FIFO)",
    ]


# --- never raises -----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "Tin tức > Thể thao",
        "Tin tức >",
        " > ",
        "Ngày đăng: 27/06/2014 - Số lần xem: 1021",
        "Ngày đăng: 31/02/2014",
        "Ngày đăng: 99/99/0000 - Số lần xem: x",
        "Ngày đăng: 01/01/2014 25:61",
        "  • Nguồn: ",
        "  • Nguồn: VnExpress",
        "Phản hồi",
        "Đoạn văn.",
        "Chú thích ảnh",
        "&amp;amp;&#0;&#x110000;&nbsp;",
        "\u200e\ufeff\x14\x00",
        "RTL \u202eexe.gpj\u202c \u2067x\u2069\u061c",  # bidi controls: removed everywhere
        "",
        '{"id": "a", "title": "t", "body": "b", "published": "2005-01-01"}',
        '{"id": 1, "body": [1]}',
        "{",
    ]
)
_PORTALISH = st.lists(_FRAGMENTS, max_size=12).map(lambda xs: "\n".join(xs).encode("utf-8"))
_ANY_BYTES = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    _PORTALISH,
    _PORTALISH.map(lambda b: b"\xff\xfe" + b.decode().encode("utf-16-le")),
    _PORTALISH.map(gzip.compress),
)


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_SPECIAL = {"fifo": lambda p: os.mkfifo(p), "zero": lambda p: p.symlink_to("/dev/zero")}


@settings(max_examples=100, deadline=None)
@given(data=_ANY_BYTES, special=st.sampled_from([None, *_SPECIAL]))
def test_read_sources_never_raises(data: bytes, special: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [write(Path(tmp) / name, data) for name in ("x.txt", "x.jsonl", "x.bin")]
        if special:  # beside the files, in the directory read: reported, never opened
            _SPECIAL[special](Path(tmp) / f"{special}.jsonl")
        items = read(*paths, tmp)
    assert items and all(isinstance(i, (Article, ReadError)) for i in items)
    for item in items:
        if isinstance(item, ReadError):
            assert str(item).startswith(tmp) and item.reason
        else:
            assert item.title and item.body and item.published.tzinfo is not None
            text = "".join([item.id, item.title, *item.body, *item.captions, item.category, item.source or ""])
            assert not _BIDI & set(text)
    if special:
        assert sum(f"{special}.jsonl: not a regular file" in str(i) for i in items) == 1
