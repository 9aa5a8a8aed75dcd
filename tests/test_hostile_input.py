"""Hostile input at every entry point: no exception escapes, no 500, no hang, limits hold.

* Library: the analyzer (``analyze(nfc(text))``, ``pairs``), the query parser (``parse``) and the
  engine (``WhooshEngine.search``/``suggest``/``get_article``/``latest`` on a small index) with any
  Unicode, lone surrogates and surrogate-escaped bytes, combining-mark floods, 100 KB queries,
  NUL and control characters, RTL and emoji (hypothesis, bounded).
* Readers: deeply nested JSON, every field with every wrong JSON type, a 10 MB line, out-of-range
  dates and view counts, broken UTF-16, BOM-only files; and the real ``searchsvc index`` over a
  file that mixes all of them with good articles: it exits 0 and indexes exactly the good ones.
* HTTP, on a running server: every route with every parameter (types, ranges, repeats, junk
  names), hostile path segments, methods and headers, sent as raw requests; URLs near and over
  the 16 KiB head limit, huge headers, bodies. Never a 500, never a hang; API errors are JSON
  with a code, page errors are HTML.
* Resource limits: query length, per_page, page depth, feed and embed ``limit``, filter values,
  request body (413), request head size, the per-client rate limit (with the limit on) on every
  rate-limited route, and slow clients (slow loris: headers one byte a second) while normal
  requests are answered promptly.
* The HTTP layer's own protections (malformed HTTP, the head size limit, the head deadline, idle
  keep-alive connections, made-up methods) are tested against a server of each HTTP protocol
  (``SEARCHSVC_HTTP``: httptools, the default, and h11), with the same expectations wherever the
  two parsers agree and each one's answer spelled out where they do not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from service_helpers import ServiceProcess, build_index, running_service
from test_path_safety import _unchunk, raw_request

from index import limits
from index.analysis import PAIR_SEP, analyze, nfc, pairs
from index.api import MAX_QUERY_CHARS, SearchError, SearchRequest
from index.article import VN_TZ, Article
from index.engine import WhooshEngine
from index.query import parse
from index.readers import ReadError, read_sources
from index.readers.jsonl import parse_record
from searchsvc.config import HTTP_PROTOCOLS
from searchsvc.server import INVALID_REQUEST, KEEP_ALIVE_TIMEOUT, MAX_REQUEST_HEAD_BYTES, REQUEST_HEAD_TIMEOUT

BOUNDED = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- hostile text ------------------------------------------------------------------------------

any_char = st.characters(exclude_categories=())  # every code point, lone surrogates included
HOSTILE_STRINGS = [
    "a" + "\u0301" * 5000,  # a combining-mark flood
    ("\u0323\u0309" * 2000) + "bóng đá",
    "e" + "\u0302\u0303" * 3000 + " x",
    "bóng đá " * 12_500,  # 100 KB
    "x" * 100_000,
    "TP." * 30_000,
    "1.000." * 16_000,
    '"' * 50_000,
    "-" * 50_000,
    " OR " * 20_000,
    "category:" * 10_000,
    "\x00\x01\x02\x1b[31m\x7f\x85\u2028\u2029\ufeff\u200b",
    "\u202eabc\u202c \u05d0\u05d1\u05d2 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u200fxyz",
    "😀👍🏽👨‍👩‍👧‍👦🇻🇳 bóng 🏳️‍🌈",
    "abc\ud800\udc00\udfff\ud83d x",
    b"\xff\xfe\xc3\x28\xe2\x82\x28 h\xf4i ngh\xe1".decode("utf-8", "surrogateescape"),
    "Đ\u0110\u00d0\u0189\u0111\u00f0\u0256",
    "\uffff\ufffe\U0010ffff\U000e0001",
    "ǅǈǋ ﬁ ẞ İı",
    "q" * 257 + " " + "w" * 300,
]

hostile_text = st.one_of(
    st.text(any_char, max_size=300),
    st.text(st.sampled_from("aăâeêioôơuưyđ\u0300\u0301\u0303\u0309\u0323 .-\"'|:"), max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from(HOSTILE_STRINGS),
    st.tuples(st.sampled_from(HOSTILE_STRINGS), st.text(any_char, max_size=40)).map("".join),
)


@BOUNDED
@given(hostile_text)
def test_analyzer(text: str) -> None:
    normal = nfc(text)
    tokens = analyze(normal)
    last_pos = -1
    for tok in tokens:
        assert 0 <= tok.start < tok.end <= len(normal)
        assert tok.pos >= last_pos - 0 or tok.end_pos >= tok.pos  # compounds add a joined token
        assert tok.exact and tok.folded is not None
        last_pos = max(last_pos, tok.pos)
    for pair in pairs(tokens):
        assert isinstance(pair, str) and PAIR_SEP in pair


@BOUNDED
@given(hostile_text)
def test_query_parser(text: str) -> None:
    parsed = parse(text)
    assert len(parsed.text) <= MAX_QUERY_CHARS
    assert not any(unicodedata.category(c) == "Cc" for c in parsed.text)
    parsed.syllables()


@pytest.fixture(scope="module")
def engine(built_index: Path) -> Iterator[WhooshEngine]:
    with WhooshEngine.open(built_index) as engine:
        yield engine


@BOUNDED
@example(q="", filters=[], sort="views", page=3, per_page=5)  # a last page that is not full
@example(q="bóng đá", filters=[], sort="relevance", page=1, per_page=1)
@given(q=hostile_text, filters=st.lists(hostile_text, max_size=2), sort=st.sampled_from(
    ["relevance", "newest", "oldest", "views"]), page=st.integers(1, 50), per_page=st.integers(1, 100))
def test_engine(engine: WhooshEngine, q: str, filters: list[str], sort: str, page: int, per_page: int) -> None:
    try:
        result = engine.search(SearchRequest(q=q, categories=filters, sources=filters[::-1],
                                             sort=sort, page=page, per_page=per_page))
    except SearchError:  # a refusal with a code (page too deep...) is an answer, not a crash
        return
    # The answer is well formed: at most every article, this page's share of them, each once.
    assert result.total <= engine.doc_count
    assert len(result.hits) == max(0, min(per_page, result.total - (page - 1) * per_page))
    assert len({hit.article.id for hit in result.hits}) == len(result.hits)
    assert sum(f.count for f in result.facets["category"]) == result.total
    for hit in result.hits:
        assert "".join(s.text for s in hit.title_spans) in ("", hit.article.title)
    assert len(engine.suggest(q, 10)) <= 10
    engine.get_article(q)
    assert len(engine.latest(q, 5, 0)) <= 5


@pytest.mark.parametrize("call", ["get_article", "source_filter"])
def test_engine_lone_surrogates(engine: WhooshEngine, call: str) -> None:
    """Lone surrogates (no index term can hold one) match nothing; they used to raise
    UnicodeEncodeError in get_article and in the source filter."""
    if call == "get_article":
        assert engine.get_article("\ud800") is None
    else:
        assert engine.search(SearchRequest(q="x", sources=["a\udcff"])).total == 0


@BOUNDED
@example(day_from=dt.date(1, 1, 1), day_to=None)
@example(day_from=None, day_to=dt.date(9999, 12, 31))
@given(day_from=st.none() | st.dates(), day_to=st.none() | st.dates())
def test_engine_dates(engine: WhooshEngine, day_from: dt.date | None, day_to: dt.date | None) -> None:
    """Any calendar day: a request the engine can run, or a SearchError (bad_date / bad_date_range)
    from the request itself; days near years 1 and 9999 used to overflow the date filter."""
    try:
        request = SearchRequest(q="đắk nông", date_from=day_from, date_to=day_to)
        result = engine.search(request)
    except SearchError as exc:
        assert exc.code in ("bad_date", "bad_date_range")
        return
    days = [h.article.published.astimezone(VN_TZ).date() for h in result.hits]
    assert all((day_from is None or day >= day_from) and (day_to is None or day <= day_to) for day in days)


@pytest.mark.parametrize("text", HOSTILE_STRINGS, ids=range(len(HOSTILE_STRINGS)))
def test_engine_explicit_cases(engine: WhooshEngine, text: str) -> None:
    started = time.monotonic()
    result = engine.search(SearchRequest(q=text))
    if len(" ".join(nfc(text).split())) > MAX_QUERY_CHARS:
        assert any("cut" in note for note in result.notes)
    # No article has this category or source: the filter matches nothing (it is not dropped).
    filtered = engine.search(SearchRequest(q=text, categories=[text[:200]], sources=[text[:200]], sort="views"))
    assert filtered.total == 0
    engine.suggest(text, 20)
    assert engine.get_article(text) is None
    assert time.monotonic() - started < 30


# --- readers -----------------------------------------------------------------------------------

GOOD = {"id": "good-1", "title": "Tin tốt", "body": "Nội dung tốt.", "category": "Thời sự",
        "published": "2020-01-01T08:00:00+07:00"}
WRONG_VALUES = [1, -1, 1.5, True, False, None, [], {}, [1], ["x", 2], {"a": "b"}, "", "   ", "\x00", 10**30,
                [[[[["x"]]]]], {"id": "x"}]
FIELDS = ["id", "title", "body", "category", "published", "source", "url", "views", "category_path", "captions"]
TYPES = {"id": str, "title": str, "category": str, "source": (str, type(None)), "url": (str, type(None)),
         "views": (int, type(None)), "category_path": list, "captions": list, "body": list}


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_with_every_wrong_type(tmp_path: Path, field: str) -> None:
    path = tmp_path / "types.jsonl"
    path.write_text("".join(json.dumps({**GOOD, "id": f"r{i}", field: value}) + "\n"
                            for i, value in enumerate(WRONG_VALUES)), encoding="utf-8")
    items = list(read_sources([str(path)]))
    assert len(items) == len(WRONG_VALUES)
    for value, item in zip(WRONG_VALUES, items):
        if isinstance(item, ReadError):
            assert item.line and item.reason, item
            continue
        for name, kind in TYPES.items():  # whatever was accepted has the model's types
            assert isinstance(getattr(item, name), kind), (field, value, name)
        assert item.id.strip() and item.title.strip() and item.body


@pytest.mark.parametrize("depth", [10, 1000, 100_000])
def test_deeply_nested_json(tmp_path: Path, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    lines = [nested, '{"a":' * depth + "1" + "}" * depth]
    lines += [json.dumps({**GOOD, "id": f"n-{f}"})[:-1] + f', "{f}": ' + nested + "}" for f in FIELDS[4:]]
    lines.append(json.dumps(GOOD))
    path = tmp_path / "nested.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(read_sources([str(path)]))
    assert items[-1].id == "good-1"  # the reader went on past every nested line
    assert all(isinstance(i, ReadError) for i in items[:2])


def test_ten_megabyte_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({**GOOD, "id": "big", "body": "xin chào " * 55_000}) + "\n")  # 0.8 MB: under every cap
        f.write(json.dumps({**GOOD, "id": "huge", "body": "xin chào " * 1_200_000}) + "\n")  # 10.8 MB
        f.write("{" + " " * 10_000_000 + "\n")  # 10 MB of nothing
        f.write(json.dumps(GOOD) + "\n")
    started = time.monotonic()
    items = list(read_sources([str(path)]))
    assert time.monotonic() - started < 20
    assert [i.id if isinstance(i, Article) else str(i) for i in items] == [
        "big", f"{path}:2: line too long", f"{path}:3: line too long", "good-1"]


@pytest.mark.parametrize(("name", "data"), [
    ("odd.txt", b"\xff\xfe" + "Tin tức > A\nTiêu đề\nNgày đăng: 01/01/2020\n\nThân bài\n".encode("utf-16-le") + b"x"),
    ("odd-be.txt", b"\xfe\xff" + "Tin tức".encode("utf-16-be") + b"\x00"),
    ("odd-unknown", b"\xff\xfe" + "abc".encode("utf-16-le") + b"z"),
    ("lone-surrogate.txt", b"\xff\xfe" + b"\x00\xd8\x41\x00"),
    ("bom.txt", b"\xef\xbb\xbf"),
    ("bom16.txt", b"\xff\xfe"),
    ("bom16be.txt", b"\xfe\xff"),
    ("bom.jsonl", b"\xef\xbb\xbf"),
    ("bom16.jsonl", b"\xff\xfe"),
    ("bom-unknown", b"\xef\xbb\xbf"),
    ("bom-newlines.jsonl", b"\xef\xbb\xbf\n\n\r\n"),
    ("utf16.jsonl", b"\xff\xfe" + json.dumps(GOOD).encode("utf-16-le")),
    ("empty.txt", b""),
    ("nul.txt", b"Tin t\x00c"),
])
def test_broken_encodings_and_bom_only(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    items = list(read_sources([str(path)]))
    assert all(isinstance(i, ReadError) for i in items), items
    assert all(str(path) in str(i) for i in items)


@pytest.mark.parametrize(("field", "value"), [
    ("views", 2**64), ("views", 10**100), ("views", 2**63),
    ("published", "0001-01-01"), ("published", "0001-01-01T12:00:00"), ("published", "9999-12-31T23:59:59-12:00"),
    ("published", "9999-12-31"), ("published", "1899-12-31"), ("published", "2101-01-01"),
    ("id", ".."), ("id", "."),
])
def test_values_the_index_cannot_hold_are_refused(field: str, value: object) -> None:
    with pytest.raises(Exception) as raised:
        parse_record(json.dumps({**GOOD, field: value}).encode())
    assert type(raised.value).__name__ == "RecordError"


def test_portal_out_of_range_values(tmp_path: Path) -> None:
    template = "Tin tức > Thể thao\nTiêu đề\nNgày đăng: {date} - Số lần xem: {views}\n\nThân bài.\n"
    for stem, date, views in (("y1", "01/01/0001", "1"), ("y9999", "31/12/9999 23:59", "1"),
                              ("v", "01/01/2020", "9" * 40), ("ok", "01/01/2020", "1.234")):
        (tmp_path / f"{stem}.txt").write_text(template.format(date=date, views=views), encoding="utf-8")
    items = {Path(i.path).name if isinstance(i, ReadError) else i.id: i for i in read_sources([str(tmp_path)])}
    assert items["portal-ok"].views == 1234
    assert {k for k, v in items.items() if isinstance(v, ReadError)} == {"y1.txt", "y9999.txt", "v.txt"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(any_char, max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@BOUNDED
@example({**GOOD, "title": "RTL \u202eexe.gpj\u202c", "body": "\u2067x\u2069 y\u061c", "source": "\u202bS"})
@given(st.dictionaries(st.sampled_from(FIELDS + ["origin", "", "ID"]), json_values, max_size=12))
def test_arbitrary_records(record: dict) -> None:
    try:
        line = json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, UnicodeEncodeError):
        return
    try:
        article = parse_record(line)
    except Exception as exc:
        assert type(exc).__name__ == "RecordError", repr(exc)
        return
    for name, kind in TYPES.items():
        assert isinstance(getattr(article, name), kind)
    text = "".join([article.id, article.title, *article.body, *article.captions, *article.category_path,
                    article.category, article.source or "", article.url or ""])
    assert not BIDI_CONTROLS & set(text), "a bidi control survived clean-up"


BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
CAPS = {"id": limits.MAX_ID_CHARS, "title": limits.MAX_TITLE_CHARS, "body": limits.MAX_BODY_CHARS,
        "paragraphs": limits.MAX_PARAGRAPHS, "caption": limits.MAX_CAPTION_CHARS, "captions": limits.MAX_CAPTIONS,
        "source": limits.MAX_SOURCE_CHARS, "url": limits.MAX_URL_CHARS, "category": limits.MAX_CATEGORY_CHARS,
        "category_path": limits.MAX_CATEGORY_LEVELS}


def _sized(field: str, n: int, fill: str) -> dict:
    """A record field holding ``n`` of what the cap counts (characters, paragraphs, captions, levels)."""
    text = (fill * n)[:n]
    return {"paragraphs": {"body": [fill] * n}, "caption": {"captions": [text]}, "captions": {"captions": [fill] * n},
            "category_path": {"category_path": [fill] * n}, "url": {"url": "http://x.vn/" + text[12:]}
            }.get(field, {field: text})


@BOUNDED
@given(sizes=st.dictionaries(st.sampled_from(sorted(CAPS)), st.sampled_from([-1, 0, 1]), min_size=1, max_size=4)
       .filter(lambda d: not ({"body", "paragraphs"} <= d.keys() or {"caption", "captions"} <= d.keys())),
       fill=st.sampled_from(["a", "đ", "x\u202e", "\u2066y\u2069", "&amp;", "l\u200e"]))
def test_oversized_fields(sizes: dict, fill: str) -> None:
    """Fields at, just under and just over their caps, several at once: a record is refused exactly
    when a field is over its cap, with the reason naming a field that is; bidi controls and
    entities are counted after clean-up (they are removed or decoded first)."""
    record = dict(GOOD)
    for field, delta in sizes.items():
        record.update(_sized(field, CAPS[field] + delta, "a"))
    if "title" not in sizes:  # a title at its cap once cleaned, however long before
        record["title"] = fill * limits.MAX_TITLE_CHARS
    over = {f for f, d in sizes.items() if d > 0}
    try:
        article = parse_record(json.dumps(record).encode())
    except Exception as exc:
        assert type(exc).__name__ == "RecordError", repr(exc)
        field = str(exc).removeprefix("too large (").split(":")[0]
        assert str(exc).startswith("too large (") and field in over, (str(exc), sizes)
        return
    assert not over, sizes
    assert limits.too_large(article) is None


def test_feed_items_carry_at_most_the_content_cap() -> None:
    """An article at the body cap made every feed listing it outsized: the full content of an item
    is cut on a paragraph boundary, with a last "…" paragraph; a short article is whole."""
    from feeds import FeedInfo, render_atom, render_json, render_rss
    from feeds.text import MAX_CONTENT_CHARS, body_html

    paragraphs = [f"Đoạn {i} " + "chữ " * 240 for i in range(400)]  # ~400,000 characters
    big = Article(id="big", title="Bài lớn", body=paragraphs, category="Thời sự",
                  published=datetime(2020, 1, 1), captions=["Ảnh"])
    small = Article(id="small", title="Bài nhỏ", body=["Một.", "Hai."], category="Thời sự",
                    published=datetime(2020, 1, 2), captions=["Ảnh nhỏ"])
    html = body_html(big)
    kept = html.split("\n")
    assert kept[-1] == "<p>…</p>" and "Ảnh" not in html
    shown = paragraphs[:len(kept) - 1]
    assert [p.removeprefix("<p>").removesuffix("</p>") for p in kept[:-1]] == [p.strip() for p in shown]
    assert MAX_CONTENT_CHARS - len(paragraphs[0]) < sum(map(len, shown)) <= MAX_CONTENT_CHARS
    assert body_html(small) == "<p>Một.</p>\n<p>Hai.</p>\n<p><em>Ảnh nhỏ</em></p>"
    one = Article(id="one", title="Một đoạn", body=["chữ " * 100_000], category="Thời sự",
                  published=datetime(2020, 1, 3))
    assert len(body_html(one)) <= MAX_CONTENT_CHARS + len("<p></p>") and body_html(one).endswith("…</p>")
    info = FeedInfo(feed_id="tag:x.vn,2024:all", title="T", description="D", self_url="http://x.vn/f",
                    html_url="http://x.vn/", site_title="S", author_name="A")
    for render in (render_rss, render_atom, render_json):
        size = len(render(info, [big, small], "http://x.vn"))
        assert size < 3 * MAX_CONTENT_CHARS, (render.__name__, size)


def test_article_json_sends_the_body_once() -> None:
    """/api/articles/{id} sent the body twice (a ``body`` string and ``paragraphs``)."""
    from searchsvc.presenters import article_json

    article = Article(id="a", title="T", body=["Một.", "Hai,\ndòng hai."], category="Thời sự",
                      published=datetime(2020, 1, 1))
    data = article_json(article, "http://x.vn")
    assert "body" not in data and data["paragraphs"] == ["Một.", "Hai,\ndòng hai."]
    assert json.dumps(data, ensure_ascii=False).count("dòng hai") == 1


def test_index_cli_over_hostile_file(tmp_path: Path) -> None:
    """The real ``searchsvc index`` (a fresh build: two writer processes) over good articles mixed
    with every kind of bad record: exit 0, every bad one reported, exactly the good ones indexed.
    A value Whoosh refuses inside a sub-writer used to drop that writer's whole batch silently."""
    good = [{**GOOD, "id": f"ok-{i}", "title": f"Tin tốt số {i}"} for i in range(1500)]
    bad = [
        {**GOOD, "id": "b-views", "views": 2**64}, {**GOOD, "id": "b-views2", "views": 10**100},
        {**GOOD, "id": "b-y1", "published": "0001-01-01"},
        {**GOOD, "id": "b-y9999", "published": "9999-12-31T23:59-12:00"},
        {**GOOD, "id": ".."}, {**GOOD, "id": "b-title", "title": ["x"]}, {**GOOD, "id": "b-body", "body": {"a": 1}},
    ]
    lines = [json.dumps(r) for r in good[:700]] + [json.dumps(r) for r in bad] + ["[" * 100_000 + "]" * 100_000]
    lines += ["{not json", "\udcff".encode("utf-8", "surrogateescape").decode("latin-1")]
    lines += [json.dumps({**GOOD, "id": "big", "body": "xin chào " * 55_000})]  # a 0.8 MB article is fine
    lines += [json.dumps({**GOOD, "id": "b-huge-body", "body": "xin chào " * 60_000}),  # 540,000 characters
              json.dumps({**GOOD, "id": "b-huge-title", "title": "x" * 5_000}),
              json.dumps({**GOOD, "id": "b-huge-line", "body": "x" * 5_000_000})]
    lines += [json.dumps(r) for r in good[700:]]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index_dir = tmp_path / "idx"
    proc = build_index([path], index_dir)
    summary = proc.stdout.strip().splitlines()[-1]
    assert "read 1514, indexed 1501, updated 0, skipped 13" in summary, summary
    assert "too large: 2" in summary and "line too long: 1" in summary, summary
    assert "Traceback" not in proc.stderr
    with WhooshEngine.open(index_dir) as engine:
        assert engine.doc_count == 1501
        assert engine.get_article("ok-0") and engine.get_article("ok-1499") and engine.get_article("big")
        assert engine.search(SearchRequest(q="\"tin tốt số\"", sort="views")).total == 1500


# --- HTTP ----------------------------------------------------------------------------------------

ROUTES = ["/", "/search", "/articles/{seg}", "/c/{seg}", "/api/search", "/api/suggest", "/api/articles/{seg}",
          "/api/categories", "/api/openapi.json", "/feeds", "/feeds.opml", "/feeds/{seg}.rss",
          "/feeds/{seg}.atom", "/feeds/{seg}.json", "/feeds/{seg}.{seg}", "/feeds/search.rss", "/feeds/search.json",
          "/embed/{seg}", "/embed/search", "/embed.js", "/healthz", "/readyz", "/metrics", "/static/{seg}",
          "/api/articles/{seg}/related", "/sitemap.xml", "/sitemaps/{seg}.xml", "/robots.txt", "/opensearch.xml",
          "/{seg}"]
PARAMS = ["q", "category", "source", "from", "to", "sort", "page", "per_page", "limit", "theme", "fmt", "x", "",
          "q[]", "Q", "page "]
RAW_SEGMENTS = ["..", ".", "%2e%2e", "%2E%2E%2F%2E%2E", "..%2f..%2fetc%2fpasswd", "%00", "a%00b", "%", "%zz",
                "%c0%ae%c0%ae", "%ff%fe", "the-thao", "all", "search", "x" * 3000, "%2F", "\\..\\", "~", "*"]
values = st.one_of(
    st.text(any_char, max_size=40),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "0", "-1", "1e9", "0x10", "١٢", "10001", "100", "101", "201", "51", "NaN", "true",
                     "2014-02-30", "0001-01-01", "9999-12-31", "newest", "dark", "light", "rss", "x" * 1001,
                     "x" * 201, "\x00", "%00", "<script>", "'\"", "..", "../../etc/passwd"]),
)
METHODS = [b"GET", b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"FOO"]
# Any RFC 9110 token is a method to uvicorn: made-up ones, lower case, thousands of characters.
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
methods = st.one_of(
    st.sampled_from(METHODS),
    st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=40).map(str.encode),
    st.integers(1000, 8000).map(lambda n: b"Q" * n),
)
HEADERS = st.lists(st.tuples(
    st.sampled_from([b"If-None-Match", b"If-Modified-Since", b"Accept-Encoding", b"Accept", b"X-Request-ID",
                     b"Sec-Fetch-Dest", b"X-Forwarded-For", b"Cookie", b"Range", b"Origin",
                     b"Access-Control-Request-Method", b"Content-Type", b"Authorization"]),
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip()),
), max_size=4)


def encode_value(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def raw_targets(draw) -> bytes:
    route = draw(st.sampled_from(ROUTES))
    while "{seg}" in route:
        if draw(st.booleans()):
            seg = draw(st.sampled_from(RAW_SEGMENTS))
        else:
            seg = encode_value(draw(st.text(any_char, min_size=1, max_size=30)))
        route = route.replace("{seg}", seg, 1)
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS), values), max_size=6))
    query = "&".join(f"{encode_value(k)}={encode_value(v)}" for k, v in pairs)
    if draw(st.booleans()) and pairs:
        query += "&" + draw(st.sampled_from(["%", "%zz", "&&", "=", "q", "q=%ff", "a=b=c", "page=1&page=2"]))
    return (route + ("?" + query if query else "")).encode("ascii")


# Malformed HTTP (a NUL or a bare CR in a header value, a bad Content-Length, an over-long head) is
# refused by uvicorn's parser (h11 or httptools) before the app runs: that answer is uvicorn's own
# plain-text 400.
PROTOCOL_ERROR = INVALID_REQUEST.encode("ascii")


@pytest.fixture(scope="module", params=HTTP_PROTOCOLS)
def served(request: pytest.FixtureRequest, built_index: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A server for each HTTP protocol (``SEARCHSVC_HTTP``), for the tests of the HTTP layer."""
    with running_service(built_index, tmp_path_factory.mktemp("logs"), env={"SEARCHSVC_HTTP": request.param}) as svc:
        yield svc


def protocol(svc: ServiceProcess) -> str:
    return svc.env["SEARCHSVC_HTTP"]


def check_answer(target: bytes, method: bytes, status: int, headers: dict[str, str], body: bytes) -> None:
    assert status != 0, f"no answer to {method!r} {target[:200]!r}"
    assert status < 500, f"{status} for {method!r} {target[:200]!r}: {body[:300]!r}"
    if status == 400 and body == PROTOCOL_ERROR:
        return
    if status >= 400 and method not in (b"HEAD",) and body:
        kind = headers.get("content-type", "")
        if target.startswith(b"/api/"):
            assert kind.startswith("application/json"), (target[:200], kind)
            assert json.loads(body)["error"]["code"], target[:200]
        else:
            assert kind.startswith(("text/html", "application/json", "text/plain")), (target[:200], kind)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=raw_targets(), method=methods, headers=HEADERS)
@example(target=b"/api/search?q=" + b"a" * 15_000, method=b"GET", headers=[])
@example(target=b"/api/search?page=1&page=2&per_page=5&per_page=500", method=b"GET", headers=[])
@example(target=b"/feeds/all.rss?limit=99999999999999999999999&limit=1", method=b"GET", headers=[])
@example(target=b"/feeds/search.json?q=%3Cscript%3E&limit=7&page=3", method=b"GET",
         headers=[(b"Sec-Fetch-Dest", b"document")])  # a browser tab: the feed's HTML page
@example(target=b"/feeds/the-thao.atom?page=999", method=b"GET", headers=[(b"Accept", b"text/html")])
@example(target=b"/api/articles/%00/related?limit=99999999999999999999&limit=1", method=b"GET", headers=[])
@example(target=b"/sitemaps/" + b"9" * 3000 + b"-99999999999999999999.xml", method=b"HEAD", headers=[])
@example(target=b"/api/suggest?q=a&format=%00", method=b"GET", headers=[])
def test_every_route_every_parameter(served: ServiceProcess, target: bytes, method: bytes,
                                     headers: list[tuple[bytes, bytes]]) -> None:
    started = time.monotonic()
    raw_headers = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    status, response_headers, body = raw_request(served.url, target, method=method, headers=raw_headers)
    assert time.monotonic() - started < 15, f"{target[:200]!r} took {time.monotonic() - started:.1f}s"
    check_answer(target, method, status, response_headers, body)


@pytest.mark.parametrize("size", [8_000, 15_000, 16_500, 40_000, 300_000, 1_000_000])
def test_long_urls(served: ServiceProcess, size: int) -> None:
    """Up to the 16 KiB head limit the app answers (400 query_too_long); beyond it uvicorn's parser
    refuses the request itself with a plain 400. Never a 500, never a hang."""
    started = time.monotonic()
    status, headers, body = raw_request(served.url, b"/api/search?q=" + b"a" * size)
    assert status == 400 and time.monotonic() - started < 10, (status, body[:200])
    if size <= 15_000:
        assert json.loads(body)["error"]["code"] == "query_too_long"


@pytest.mark.parametrize(("name", "headers", "statuses"), [
    ("one 1 MB header", b"X-Big: " + b"a" * 1_000_000 + b"\r\n", (0, 400)),
    ("300 KB cookie", b"Cookie: " + b"c=" * 150_000 + b"\r\n", (0, 400)),
    ("50,000 headers", b"".join(b"X-H%d: v\r\n" % i for i in range(50_000)), (0, 400)),
    # Both limits (h11's, ours for httptools) apply to a head still incomplete after a read; a
    # complete head that arrives in one read (asyncio reads up to 256 KiB, uvloop 250 KB) is
    # parsed whatever its size: bounded anyway
    ("5000 headers, 60 KB", b"".join(b"X-H%d: v\r\n" % i for i in range(5000)), (200, 400)),
])
def test_huge_heads(served: ServiceProcess, name: str, headers: bytes, statuses: tuple[int, ...]) -> None:
    started = time.monotonic()
    status, _, _ = raw_request(served.url, b"/api/search?q=x", headers=headers)
    assert status in statuses, status
    assert time.monotonic() - started < 10
    assert httpx.get(served.url + "/healthz").status_code == 200


def send_head_in_pieces(url: str, value_bytes: int, piece: int = 1024) -> tuple[bytes, int]:
    """A request whose one header value of ``value_bytes`` is sent ``piece`` bytes at a time, each
    its own read (TCP_NODELAY, a pause between), and ended only if the server has not answered by
    then: (what the server sent until it closed, how many bytes of the value went out)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = 0
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ")
            while sent < value_bytes:
                sock.sendall(b"a" * min(piece, value_bytes - sent))
                sent += min(piece, value_bytes - sent)
                time.sleep(0.02)
            sock.sendall(b"\r\n\r\n")
        except OSError:  # the server answered and closed: what it said is still to be read
            pass
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
    return data, sent


def test_head_size_limit_over_several_reads(served: ServiceProcess) -> None:
    """A head that arrives in pieces is refused (uvicorn's plain 400, connection closed) once more
    than MAX_REQUEST_HEAD_BYTES of it have come without its end, in both protocols (h11's own
    limit; our count for httptools), and one a little under the limit is answered."""
    data, sent = send_head_in_pieces(served.url, MAX_REQUEST_HEAD_BYTES - 1024)
    assert data.startswith(b"HTTP/1.1 200 "), data[:300]
    data, sent = send_head_in_pieces(served.url, 4 * MAX_REQUEST_HEAD_BYTES)
    assert data.startswith(b"HTTP/1.1 400 ") and data.endswith(PROTOCOL_ERROR), data[:300]
    assert sent <= MAX_REQUEST_HEAD_BYTES + 8 * 1024, sent  # refused near the limit, not at the end


# Malformed requests both parsers refuse with uvicorn's plain 400 (PROTOCOL_ERROR) before the app runs.
MALFORMED = {
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bare CR in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "Content-Length not a number": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative Content-Length": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "two different Content-Lengths": b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                     b"Content-Length: 2\r\n\r\nab",
    "bad chunk size": b"POST /api/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "bytes over 0x7f in the target": b"GET /search?q=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header line without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\ngarbage\r\n\r\n",
    "a space in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n",
    "a TLS ClientHello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,
}
# Requests on which the two parsers differ (RFC 9112 lets a server refuse or accept each): the status
# each one gets, 400 being uvicorn's plain one. None is a 5xx, none reaches the app malformed.
DIFFERING = {
    "obs-fold (a folded header line)": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
                                        {"httptools": 400, "h11": 200}),
    "bare LF line ends": (b"GET /healthz HTTP/1.1\nHost: x\n\n", {"httptools": 400, "h11": 200}),
    "both Content-Length and Transfer-Encoding": (
        b"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {"httptools": 400, "h11": 405}),
    "no Host": (b"GET /healthz HTTP/1.1\r\n\r\n", {"httptools": 200, "h11": 400}),
    "two Hosts": (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {"httptools": 200, "h11": 400}),
    "CONNECT": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                {"httptools": 400, "h11": 404}),
    "a made-up method": (b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", {"httptools": 400, "h11": 405}),
}


def exchange(url: str, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send ``request`` as it is; (status, body) of the first answer (0: none), read to its
    Content-Length or until the server closes."""
    parts = urlsplit(url)
    data = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
                head, found, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
                if found and length and len(body) >= int(length.group(1)):
                    break
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    head, _, body = data.partition(b"\r\n\r\n")
    if re.search(rb"(?im)^transfer-encoding: *chunked\r?$", head):  # h11's 400 after a chunked request
        body = _unchunk(body)
    return int(head.split()[1]), body


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_http_is_refused_by_the_parser(served: ServiceProcess, name: str) -> None:
    status, body = exchange(served.url, MALFORMED[name])
    assert (status, body) == (400, PROTOCOL_ERROR), (protocol(served), status, body[:300])


@pytest.mark.parametrize("name", DIFFERING)
def test_where_the_parsers_differ(served: ServiceProcess, name: str) -> None:
    """What each parser answers where RFC 9112 leaves the choice: a plain 400 from the parser, or
    the app's answer to a request it could parse. Also proves the setting reaches the workers."""
    request, expected = DIFFERING[name]
    status, body = exchange(served.url, request)
    assert status == expected[protocol(served)], (protocol(served), status, body[:300])
    if status == 400:
        assert body == PROTOCOL_ERROR, body[:300]


def test_body_limit(served: ServiceProcess) -> None:
    for method in (b"GET", b"POST"):
        status, headers, body = raw_request(served.url, b"/api/search", method=method,
                                            headers=b"Content-Length: 70000\r\n", body=b"x" * 70000)
        assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large", (method, status, body[:200])
    # a huge announced body is refused at once, without waiting for (or reading) it
    started = time.monotonic()
    status, _, body = raw_request(served.url, b"/search?q=x", headers=b"Content-Length: 10000000000\r\n")
    assert status == 413 and time.monotonic() - started < 5
    status, _, body = raw_request(served.url, b"/api/search", headers=b"Content-Length: 65536\r\n", body=b"x" * 65536)
    assert status == 200


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/search?q=" + "a" * 1000, 200, None),
    ("/api/search?q=" + "a" * 1001, 400, "query_too_long"),
    ("/api/search?per_page=100", 200, None),
    ("/api/search?per_page=101", 400, "bad_per_page"),
    ("/api/search?per_page=0", 400, "bad_per_page"),
    ("/api/search?page=100&per_page=100", 200, None),
    ("/api/search?page=101&per_page=100", 400, "page_too_deep"),
    ("/api/search?page=1001", 400, "page_too_deep"),
    ("/api/search?page=1000000000000", 400, "bad_page"),
    ("/api/search?category=" + "c" * 200, 200, None),
    ("/api/search?category=" + "c" * 201, 400, "bad_parameter"),
    ("/api/search?" + "&".join(f"source=s{i}" for i in range(21)), 400, "bad_parameter"),
    ("/api/suggest?q=dak&limit=20", 200, None),
    ("/api/suggest?q=dak&limit=21", 400, "bad_limit"),
    ("/feeds/all.atom?limit=200", 200, None),
    ("/feeds/all.atom?limit=201", 400, "bad_limit"),
    ("/feeds/all.atom?limit=100&page=101", 400, "page_too_deep"),
    ("/feeds/all.rss?page=2", 400, "rss_not_paged"),
    ("/feeds/search.json?q=" + "b" * 1001, 400, "query_too_long"),
    ("/embed/all?limit=50", 200, None),
    ("/embed/all?limit=51", 400, "bad_limit"),
    ("/search?q=" + "a" * 1001, 400, "query_too_long"),
    ("/c/the-thao?page=501", 400, "bad_page"),
])
def test_documented_limits(service: ServiceProcess, path: str, status: int, code: str | None) -> None:
    response = httpx.get(service.url + path, timeout=30)
    assert response.status_code == status, (path, response.text[:300])
    if code and path.startswith("/api/"):
        assert response.json()["error"]["code"] == code
    elif code:
        assert f"<code>{code}</code>" in response.text, response.text[-800:]


def test_engine_call_survives_a_commit_race() -> None:
    """A commit can delete the table of contents a new searcher is opening (the soak hit it twice
    in 21,000 requests: a 503 on a page, an unhandled 500 on a feed): one retry, then 503."""
    from searchsvc.engine_calls import map_engine_errors
    from searchsvc.errors import ApiError

    calls: list[int] = []

    def flaky(n: int) -> str:
        calls.append(n)
        if len(calls) < n:
            raise FileNotFoundError("_MAIN_117.toc")
        return "ok"

    assert map_engine_errors(flaky, 2) == "ok" and len(calls) == 2
    calls.clear()
    with pytest.raises(ApiError) as raised:
        map_engine_errors(flaky, 3)
    assert raised.value.status == 503 and raised.value.code == "not_ready" and len(calls) == 2
    with pytest.raises(ApiError) as raised:
        map_engine_errors(lambda: (_ for _ in ()).throw(SearchError("page_too_deep", "too deep")))
    assert raised.value.status == 400 and raised.value.code == "page_too_deep"


def test_no_unhandled_error_logged(service: ServiceProcess) -> None:
    log = service.log()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]


# --- made-up methods and paths: metric labels from fixed sets only ----------------------------------

JUNK_TARGETS = ["/junk-{i}", "/api/articles/junk-{i}", "/c/junk-{i}", "/feeds/junk-{i}.rss", "/api/search?q={i}",
                "/static/junk-{i}.css", "/{i}/{i}/"]


def junk_method(i: int) -> str:
    """The i-th distinct made-up method: short ones, token punctuation, and 4,000-character ones."""
    kinds = [f"M{i}", f"X-{i}!#$%&'*+.^_`|~", ("Q" * 4000)[: 4000 - len(str(i))] + str(i), f"get{i}"]
    return kinds[i % len(kinds)]


def series(metrics_text: str) -> set[str]:
    """Every sample line's name and labels (the series), without its value."""
    return {line.rsplit(" ", 1)[0] for line in metrics_text.splitlines() if line and not line.startswith("#")}


# The methods beyond the standard nine that llhttp (httptools) parses; any other method is refused
# by httptools with uvicorn's plain 400 before the app runs. h11 passes on any RFC 9110 token.
LLHTTP_EXTRA_METHODS = ["COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND",
                        "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY",
                        "SUBSCRIBE", "UNSUBSCRIBE", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY"]


def test_junk_methods_and_paths_add_no_metric_series(served: ServiceProcess) -> None:
    """1,000 requests, each with a distinct made-up method and a distinct path: the series in
    /metrics stay the same set (methods become "other", paths their route template or
    <unmatched>), and the access log still records each request, its method cut short.

    With httptools a made-up method never reaches the app (uvicorn's plain 400); the methods llhttp
    does parse beyond the standard nine reach it, and are labelled "other" like the made-up ones h11
    lets through."""
    any_method = protocol(served) == "h11"
    passed = (404, 405)  # what the app answers: no such path, or not with this method
    with httpx.Client(base_url=served.url, timeout=30) as http:

        def send(i: int, method: str | None = None, **headers: str) -> int:
            target = JUNK_TARGETS[i % len(JUNK_TARGETS)].format(i=i)
            return http.request(method or junk_method(i), target, headers=headers).status_code

        def other(i: int) -> str:  # a method the parser passes on and the app labels "other"
            return junk_method(i) if any_method else LLHTTP_EXTRA_METHODS[i % len(LLHTTP_EXTRA_METHODS)]

        for i in range(10_000, 10_000 + 4 * len(JUNK_TARGETS)):  # every (route, status) once first
            assert send(i, other(i)) in passed
        http.get("/metrics")
        before = series(http.get("/metrics").text)
        for i in range(1000):
            status = send(i)
            assert status in (passed if any_method else (400,)), (junk_method(i)[:40], i, status)
            if not any_method:
                assert send(i, other(i)) in passed, (other(i), i)
        after_text = http.get("/metrics").text
        assert series(after_text) == before, sorted(series(after_text) - before)[:5]
        assert 'method="other"' in after_text
        assert "M999" not in after_text and "junk-" not in after_text and "Q" * 100 not in after_text

        long_method = "Q" * 3990 + "TRACEME" if any_method else "M-SEARCH"
        response = http.request(long_method, "/api/search", headers={"X-Request-ID": "junk-method-7"})
        assert response.status_code == 405
    entry = None
    deadline = time.monotonic() + 5
    while entry is None and time.monotonic() < deadline:  # the line is written just after the response
        for line in served.log().splitlines():
            if line.startswith("{") and '"junk-method-7"' in line:
                entry = json.loads(line)
        time.sleep(0.05)
    assert entry is not None, "no access-log line for the request"
    assert entry["route"] == "/api/search" and entry["status"] == 405
    if any_method:
        assert entry["method"].startswith("QQQ") and len(entry["method"]) <= 32, entry["method"]
    else:
        assert entry["method"] == long_method, entry["method"]


# --- rate limit and slow clients -----------------------------------------------------------------

# Every kind of request that makes a worker search, read the newest articles, suggest or render a
# feed document no cache holds, each as a function of n giving the n-th *distinct* request (a repeat
# is answered from a cache and is free). Pages and the API answer from the response cache, feeds and
# embeds from the feed cache; unknown parameters do not make feeds or embeds distinct.
SIZES = (10, 20, 50, 100, 200)
COSTLY = {
    "home search": lambda n: f"/?q=x{n}",
    "search page": lambda n: f"/search?q=x{n}",
    "home": lambda n: f"/?junk={n}",
    "category page": lambda n: f"/c/the-thao?page={n + 1}",
    "api search": lambda n: f"/api/search?q=x{n}",
    "api suggest": lambda n: f"/api/suggest?q=x{n}",
    "search rss": lambda n: f"/feeds/search.rss?q=x{n}",
    "search atom": lambda n: f"/feeds/search.atom?q=x{n}",
    "search json": lambda n: f"/feeds/search.json?q=x{n}",
    "archive rss": lambda n: f"/feeds/all.rss?limit={SIZES[n]}",
    "category atom": lambda n: f"/feeds/the-thao.atom?limit={SIZES[n]}",
    "category json": lambda n: f"/feeds/the-thao.json?limit={SIZES[n]}",
    "embed search": lambda n: f"/embed/search?q=x{n}",
    "embed category": lambda n: f"/embed/the-thao?limit={n + 1}",
    "embed archive": lambda n: f"/embed/all?limit={n + 1}",
}


def test_rate_limit_on_every_limited_route(built_index: Path, tmp_path: Path) -> None:
    """SEARCHSVC_RATE_LIMIT=3 (per minute, per client): every request that costs a search, a read
    of the newest articles, a suggestion or an uncached feed render takes a token, whatever its
    route (``/?q=`` included), so a client gets 3 such answers then 429 with Retry-After; answers
    replayed from a cache, cheap routes and loopback clients are not limited. The client address
    comes from X-Forwarded-For, which uvicorn trusts from 127.0.0.1 (a local proxy)."""
    with running_service(built_index, tmp_path / "logs", env={"SEARCHSVC_RATE_LIMIT": "3"}) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as http:
            for n, (name, url) in enumerate(COSTLY.items()):
                client = {"X-Forwarded-For": f"198.51.100.{n + 1}"}
                answers = [http.get(url(i), headers=client) for i in range(5)]
                assert [a.status_code for a in answers] == [200, 200, 200, 429, 429], name
                limited = answers[-1]
                assert int(limited.headers["retry-after"]) >= 1, name
                if url(0).startswith("/api/"):
                    assert limited.json()["error"]["code"] == "rate_limited"
                else:
                    assert "<code>rate_limited</code>" in limited.text, name
                if url(0).startswith(("/feeds/", "/embed/")):  # a widget can read why
                    assert limited.headers["access-control-allow-origin"] == "*"
                # what was answered once is answered again from a cache, at no cost
                assert http.get(url(0), headers=client).status_code == 200, name
            other = {"X-Forwarded-For": "198.51.100.1"}  # limited above
            for path in ("/api/categories", "/api/openapi.json", "/embed.js", "/healthz", "/readyz"):
                assert all(http.get(path, headers=other).status_code == 200 for _ in range(5)), path
            for path in ("/feeds.opml", "/feeds", "/feeds/all.atom", "/"):  # a render, then cache hits
                assert http.get(path, headers=other).status_code == 429, path
                assert http.get(path).status_code == 200, path  # rendered for a loopback client
                assert http.get(path, headers=other).status_code == 200, path
            # loopback clients that no proxy relayed (the CLI, benchmarks, health checks): never
            for name, url in COSTLY.items():
                if "limit=" not in url(0):
                    assert all(http.get(url(i + 10)).status_code == 200 for i in range(5)), name


def _server_answer(sock: socket.socket, started: float) -> str | None:
    """Wait one socket timeout for the server: "answered", "closed after …", or None (nothing)."""
    try:
        data = sock.recv(100)
    except TimeoutError:
        return None
    except OSError:
        data = b""
    return f"closed after {time.monotonic() - started:.1f}s" if not data else "answered"


def slow_loris(url: str, results: list[str], stop: threading.Event) -> None:
    """One connection sending a request head one byte a second, until the server closes it."""
    host, port = url.removeprefix("http://").split(":")
    head = b"GET /api/search?q=x HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(1.0)
        for i in range(len(head)):
            if stop.is_set():
                results.append(f"still open after {time.monotonic() - started:.1f}s")
                return
            try:
                sock.sendall(head[i:i + 1])
            except OSError:
                results.append(f"closed after {time.monotonic() - started:.1f}s")
                return
            outcome = _server_answer(sock, started)
            if outcome is not None:
                results.append(outcome)
                return
    results.append("sent everything")


def idle_connection(url: str, results: list[str], stop: threading.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(0.5)
        while not stop.is_set():
            outcome = _server_answer(sock, started)
            if outcome is not None:
                results.append(outcome)
                return
    results.append(f"still open after {time.monotonic() - started:.1f}s")


def test_slow_loris(served: ServiceProcess) -> None:
    """Eight connections dribbling their headers and two saying nothing: normal requests are
    answered promptly meanwhile, and the server closes every slow connection at the request-head
    deadline (searchsvc.server.REQUEST_HEAD_TIMEOUT) instead of holding it forever."""
    results: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=slow_loris, args=(served.url, results, stop)) for _ in range(8)]
    threads += [threading.Thread(target=idle_connection, args=(served.url, results, stop)) for _ in range(2)]
    for t in threads:
        t.start()
    latencies = []
    try:
        with httpx.Client(base_url=served.url, timeout=10) as http:
            deadline = time.monotonic() + REQUEST_HEAD_TIMEOUT - 2
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert http.get("/api/search", params={"q": "bóng đá"}).status_code == 200
                with httpx.Client(base_url=served.url, timeout=10) as fresh:  # a new connection too
                    assert fresh.get("/search", params={"q": "dak nong"}).status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
        time_limit = time.monotonic() + 6  # REQUEST_HEAD_TIMEOUT + 4 s after the connections opened
        for t in threads:
            t.join(timeout=max(0.1, time_limit - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    assert len(latencies) >= 10 and max(latencies) < 1.0, latencies
    assert len(results) == 10 and all(r.startswith("closed after") for r in results), results
    waited = [float(r.split()[2][:-1]) for r in results]  # "closed after 5.0s ..."
    assert all(REQUEST_HEAD_TIMEOUT - 1 <= w <= REQUEST_HEAD_TIMEOUT + 4 for w in waited), results


def keep_alive_then(url: str, after: bytes, results: dict[str, float], name: str) -> None:
    """One request on a keep-alive connection, then ``after`` (possibly nothing): how long after
    the response the server closed the connection (in ``results``; absent if it did not in 20 s)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b'"ok"}' not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        answered = time.monotonic()
        if after:
            sock.sendall(after)
        with contextlib.suppress(TimeoutError):
            while sock.recv(65536):
                pass
            results[name] = time.monotonic() - answered


def test_keep_alive_connections_close_when_idle(served: ServiceProcess) -> None:
    """After a response, a keep-alive connection on which nothing comes is closed KEEP_ALIVE_TIMEOUT
    later (uvicorn's timer, in both protocols); one on which the next head has begun but does not
    end is closed at the head deadline instead (REQUEST_HEAD_TIMEOUT after the response): a
    received byte cancels uvicorn's keep-alive timer, never ours."""
    results: dict[str, float] = {}
    threads = [threading.Thread(target=keep_alive_then, args=(served.url, b"", results, "idle")),
               threading.Thread(target=keep_alive_then, args=(served.url, b"GET /heal", results, "half a head"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert KEEP_ALIVE_TIMEOUT - 0.5 <= results.get("idle", -1) <= KEEP_ALIVE_TIMEOUT + 2, results
    assert REQUEST_HEAD_TIMEOUT - 0.5 <= results.get("half a head", -1) <= REQUEST_HEAD_TIMEOUT + 3, results


def test_no_unhandled_error_logged_by_either_protocol(served: ServiceProcess) -> None:
    """Last in the module: whatever the tests above sent, neither server logged a traceback (an
    exception in a protocol callback would be logged by the event loop, not answered)."""
    log = served.log()
    assert "unhandled error" not in log and "Traceback" not in log and "Exception in" not in log, log[-3000:]
