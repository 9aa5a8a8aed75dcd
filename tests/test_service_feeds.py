"""Feeds and embeds end to end: a real index built by the CLI, a real ``searchsvc serve``.

The index holds the service sample articles (portal text format) plus a JSON Lines file of hard
cases: a U+0014 control character in a body, ``&`` and ``<`` in a title, a 200-paragraph body,
Vietnamese typed in NFD, a ``javascript:`` URL, an external https URL, and a run of same-category
articles (with equal timestamps) long enough to page through. The server runs two workers, so
"byte-identical" is checked across two independent renders and caches.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import etree
from service_helpers import (
    SAMPLE_ARTICLES,
    XSS_TITLE,
    build_index,
    run_cli,
    running_service,
    write_corpus,
)

import feeds
from index.article import VN_TZ
from searchsvc.config import DEFAULT_SITE_TITLE
from searchsvc.http.feed_cache import FeedCache, make_document

SITE = DEFAULT_SITE_TITLE
HUB = "https://hub.example.org/"
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = {"rss": "application/rss+xml", "atom": "application/atom+xml", "json": "application/feed+json"}

AMP_TITLE = "Giá vàng & USD: <tăng> mạnh khi 5 < 7"
NFC_TITLE = "Hội nghị khoa học Đắk Nông bàn về nguồn nước sạch"
EXTERNAL_URL = "https://example.org/bai-goc?id=1&x=2"
SCIENCE = "Khoa học"
SCIENCE_SLUG = "khoa-hoc"
PAGED_COUNT = 25


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


def hard_records() -> list[dict]:
    nfd = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731
    records = [
        {
            "id": "hard-control", "title": "Ký tự điều khiển trong nội dung bài viết", "category": SCIENCE,
            "body": "Đoạn đầu có ký tự điều khiển\u0014 ở giữa câu.\n\nĐoạn hai bình thường.",
            "published": vn(2015, 3, 1, 9, 0).isoformat(), "source": "Phòng\u0014 thí nghiệm",
        },
        {
            "id": "hard-amp", "title": AMP_TITLE, "category": "Kinh tế",
            "body": "Thị trường vàng & ngoại tệ biến động: tỷ giá <b>tăng</b> khi 5 < 7 và 8 > 3.",
            "published": vn(2015, 3, 2, 10, 30).isoformat(), "source": "Báo A & B",
        },
        {
            "id": "hard-long", "title": "Bài rất dài về khoa học vũ trụ", "category": SCIENCE,
            "body": "\n\n".join(f"Đoạn thứ {i}: các nhà khoa học quan sát bầu trời đêm và ghi chép cẩn thận."
                                for i in range(1, 201)),
            "published": vn(2015, 3, 3, 7, 15).isoformat(),
        },
        {
            "id": "hard-nfd", "title": nfd(NFC_TITLE), "category": nfd(SCIENCE),
            "body": nfd("Các đại biểu thảo luận về nguồn nước sạch cho đồng bào ở Đắk Nông."),
            "published": vn(2015, 3, 4, 8, 0).isoformat(), "source": nfd("Đài Phát thanh"),
        },
        {
            "id": "hard-js", "title": "Liên kết javascript phải bị chặn", "category": SCIENCE,
            "body": "Bài này có đường dẫn gốc không an toàn.", "url": "javascript:alert(document.cookie)",
            "published": vn(2015, 3, 5, 8, 0).isoformat(),
        },
        {
            "id": "hard-http", "title": "Bài có đường dẫn gốc hợp lệ", "category": SCIENCE,
            "body": "Bài này dẫn về trang gốc.", "url": EXTERNAL_URL,
            "published": vn(2015, 3, 6, 8, 0).isoformat(),
        },
    ]  # fmt: skip
    start = vn(2016, 1, 1, 6, 0)
    for i in range(PAGED_COUNT):
        # Every third article shares its timestamp with the previous one: paging must not
        # duplicate or drop articles with equal dates.
        when = start - timedelta(days=i - (1 if i % 3 == 2 else 0))
        records.append({
            "id": f"sci-{i:02d}", "title": f"Bản tin khoa học số {i:02d} về thiên văn", "category": SCIENCE,
            "body": f"Nội dung bản tin khoa học số {i:02d}: kính thiên văn ghi nhận sao chổi mới.",
            "published": when.isoformat(), "source": "Ban Khoa học",
        })  # fmt: skip
    return records


def expected_articles() -> list[dict]:
    """title (NFC), category slug, published for every article in the index."""
    rows = []
    for a in SAMPLE_ARTICLES:
        day, month, year = (int(x) for x in a.date.split("/"))
        rows.append({"title": a.title, "published": vn(year, month, day)})
    for r in hard_records():
        title = unicodedata.normalize("NFC", r["title"])
        rows.append({"title": title, "published": datetime.fromisoformat(r["published"])})
    return rows


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feeds_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_corpus(tmp_path_factory.mktemp("feeds-corpus"))
    lines = [json.dumps(r, ensure_ascii=False) for r in hard_records()]
    (directory / "hard.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def feeds_index(feeds_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    index_dir = tmp_path_factory.mktemp("feeds-index") / "idx"
    build_index([feeds_corpus], index_dir)
    return index_dir


@pytest.fixture(scope="module")
def fsvc(feeds_index: Path, tmp_path_factory: pytest.TempPathFactory):
    env = {"SEARCHSVC_WEBSUB_HUB": HUB, "SEARCHSVC_ACCESS_LOG": "0"}
    with running_service(feeds_index, tmp_path_factory.mktemp("feeds-logs"), workers=2, env=env) as svc:
        yield svc


@pytest.fixture
def client(fsvc) -> httpx.Client:
    with httpx.Client(base_url=fsvc.url, timeout=30.0) as c:
        yield c


def get_ok(client: httpx.Client, path: str, **kwargs: object) -> httpx.Response:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    return response


def parsed(client: httpx.Client, path: str) -> feedparser.FeedParserDict:
    body = get_ok(client, path).content
    doc = feedparser.parse(body)
    assert doc.bozo == 0, f"{path}: {doc.get('bozo_exception')!r}"
    return doc


def category_count(client: httpx.Client, slug: str) -> int:
    categories = get_ok(client, "/api/categories").json()["categories"]
    return next(c["count"] for c in categories if c["slug"] == slug)


# --- every kind of feed parses, with the right metadata ----------------------------------------------

KINDS = {
    "all": ("/feeds/all", "Tất cả bài viết", "/"),
    "category": (f"/feeds/{SCIENCE_SLUG}", SCIENCE, f"/c/{SCIENCE_SLUG}"),
    "search": ("/feeds/search", "Tìm kiếm «khoa học»", "/search?q=khoa+h%E1%BB%8Dc&sort=newest"),
}
KIND_QUERY = {"all": "", "category": "", "search": "?q=khoa+h%E1%BB%8Dc"}


@pytest.mark.parametrize("fmt", ["rss", "atom"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_xml_feeds_parse_with_right_metadata(client: httpx.Client, fsvc, kind: str, fmt: str) -> None:
    prefix, label, html_path = KINDS[kind]
    path = f"{prefix}.{fmt}{KIND_QUERY[kind]}"
    doc = parsed(client, path)
    assert doc.version == ("rss20" if fmt == "rss" else "atom10")
    assert doc.feed.title == f"{SITE} – {label}"
    assert doc.feed.get("language", "vi") == "vi"
    links = {link.get("rel"): link.href for link in doc.feed.links}
    assert links["self"] == fsvc.url + path
    assert links["alternate"] == fsvc.url + html_path
    assert links["hub"] == HUB
    assert doc.entries, path
    expected = {row["title"]: row["published"] for row in expected_articles()}
    dates = []
    for entry in doc.entries:
        published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
        if entry.title in expected:  # titles with markup-like text are checked on the raw XML
            assert published == expected[entry.title], entry.title
        dates.append(published)
        assert entry.link.startswith(("http://", "https://"))
        assert entry.id.startswith("tag:127.0.0.1,2024:articles/")
        assert entry.tags and entry.tags[0].term
    assert dates == sorted(dates, reverse=True), f"{path} is not newest first"
    raw = client.get(path).text
    assert "+0700" in raw or "+07:00" in raw
    if kind == "category":
        assert all(e.tags[0].term in (SCIENCE, SCIENCE_SLUG) for e in doc.entries)


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_feeds_have_required_fields(client: httpx.Client, fsvc, kind: str) -> None:
    prefix, label, html_path = KINDS[kind]
    path = f"{prefix}.json{KIND_QUERY[kind]}"
    response = get_ok(client, path)
    assert response.headers["content-type"] == "application/feed+json; charset=utf-8"
    doc = response.json()
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["title"] == f"{SITE} – {label}"
    assert doc["feed_url"] == fsvc.url + path
    assert doc["home_page_url"] == fsvc.url + html_path
    assert doc["language"] == "vi" and doc["authors"] == [{"name": SITE}]
    assert doc["hubs"] == [{"type": "WebSub", "url": HUB}]
    assert doc["items"]
    dates = []
    for item in doc["items"]:
        assert {"id", "url", "title", "content_html", "summary", "date_published"} <= set(item)
        assert item["url"].startswith(("http://", "https://"))
        assert item["date_published"].endswith("+07:00")
        dates.append(datetime.fromisoformat(item["date_published"]))
    assert dates == sorted(dates, reverse=True)
    assert b"<" not in response.content  # HTML-significant characters are \u-escaped


def test_titles_dates_and_links_match_the_index(client: httpx.Client, fsvc) -> None:
    doc = get_ok(client, "/feeds/all.json?limit=200").json()
    expected = expected_articles()
    assert len(doc["items"]) == len(expected)
    by_title = {item["title"]: item for item in doc["items"]}
    assert set(by_title) == {row["title"] for row in expected}
    for row in expected:
        item = by_title[row["title"]]
        assert datetime.fromisoformat(item["date_published"]) == row["published"]
        assert item["date_published"] == row["published"].astimezone(VN_TZ).isoformat()
    order = [datetime.fromisoformat(i["date_published"]) for i in doc["items"]]
    assert order == sorted(order, reverse=True)
    assert by_title["Bài có đường dẫn gốc hợp lệ"]["url"] == EXTERNAL_URL
    assert by_title["Liên kết javascript phải bị chặn"]["url"] == fsvc.url + "/articles/hard-js"


def test_atom_validates_against_relax_ng(client: httpx.Client) -> None:
    schema = etree.RelaxNG(etree.parse(str(feeds.ATOM_RNG_PATH)))
    for path in ("/feeds/all.atom", f"/feeds/{SCIENCE_SLUG}.atom?limit=10&page=2",
                 "/feeds/search.atom?q=khoa+h%E1%BB%8Dc", "/feeds/search.atom?q=zzzyyyxxx",
                 "/feeds/kinh-te.atom"):  # fmt: skip
        root = etree.fromstring(get_ok(client, path).content)
        assert schema.validate(root), f"{path}: {schema.error_log}"


# --- hard cases ------------------------------------------------------------------------------------


def test_hard_cases_reach_every_format_intact(client: httpx.Client, fsvc) -> None:
    for fmt in ("rss", "atom", "json"):
        raw = get_ok(client, f"/feeds/all.{fmt}?limit=200").content
        text = raw.decode("utf-8")
        assert "\x14" not in text and "\\u0014" not in text
        assert "javascript:" not in text
        assert unicodedata.normalize("NFD", NFC_TITLE) not in text and NFC_TITLE in text
        assert "<tăng>" not in text and "<b>tăng</b>" not in text  # markup only ever escaped

    rss = etree.fromstring(get_ok(client, "/feeds/all.rss?limit=200").content)
    items = {i.findtext("title"): i for i in rss.iter("item")}
    assert AMP_TITLE in items  # & and < survive as text
    assert items[AMP_TITLE].findtext("{http://purl.org/dc/elements/1.1/}creator") == "Báo A & B"
    assert items["Liên kết javascript phải bị chặn"].findtext("link") == fsvc.url + "/articles/hard-js"
    assert items["Bài có đường dẫn gốc hợp lệ"].findtext("link") == EXTERNAL_URL
    long_item = items["Bài rất dài về khoa học vũ trụ"]
    content = long_item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")
    assert content.count("<p>") == 200 and "Đoạn thứ 200:" in content
    assert len(long_item.findtext("description")) <= 320
    control = items["Ký tự điều khiển trong nội dung bài viết"]
    assert "Phòng thí nghiệm" == control.findtext("{http://purl.org/dc/elements/1.1/}creator")

    atom = etree.fromstring(get_ok(client, "/feeds/all.atom?limit=200").content)
    titles = [e.findtext(f"{ATOM}title") for e in atom.iter(f"{ATOM}entry")]
    assert AMP_TITLE in titles and NFC_TITLE in titles

    doc = get_ok(client, "/feeds/all.json?limit=200").json()
    amp = next(i for i in doc["items"] if i["title"] == AMP_TITLE)
    assert "&lt;b&gt;tăng&lt;/b&gt;" in amp["content_html"] and amp["authors"] == [{"name": "Báo A & B"}]
    xss = next(i for i in doc["items"] if i["title"] == XSS_TITLE)
    assert "<script>" not in xss["content_html"] and "<img" not in xss["content_html"]


def test_search_feed_is_newest_first_and_normalises_the_query(client: httpx.Client) -> None:
    doc = get_ok(client, "/feeds/search.json", params={"q": "bản tin khoa học", "limit": 200}).json()
    assert len(doc["items"]) >= PAGED_COUNT
    dates = [datetime.fromisoformat(i["date_published"]) for i in doc["items"]]
    assert dates == sorted(dates, reverse=True)
    nfc = get_ok(client, "/feeds/search.atom", params={"q": "đắk nông"}).content
    nfd = get_ok(client, "/feeds/search.atom", params={"q": unicodedata.normalize("NFD", "  đắk   nông ")}).content
    assert nfc == nfd  # one saved search, one URL, one cache entry
    filtered = get_ok(client, "/feeds/search.json", params={"q": "đắk nông", "category": "kinh-te"}).json()
    assert filtered["items"] and all(i["tags"] == ["Kinh tế"] for i in filtered["items"])
    assert "category=kinh-te" in filtered["feed_url"]
    empty = parsed(client, "/feeds/search.rss?q=zzzyyyxxx")
    assert empty.entries == []


# --- OPML ------------------------------------------------------------------------------------------


def test_opml_lists_every_category(client: httpx.Client, fsvc) -> None:
    response = get_ok(client, "/feeds.opml")
    assert response.headers["content-type"] == "text/x-opml; charset=utf-8"
    root = etree.fromstring(response.content)
    assert root.tag == "opml" and root.get("version") == "2.0"
    folders = root.findall("body/outline")
    assert [f.get("text") for f in folders] == ["RSS 2.0", "Atom 1.0"]
    slugs = {c["slug"] for c in get_ok(client, "/api/categories").json()["categories"]}
    assert SCIENCE_SLUG in slugs
    for folder, ext in zip(folders, ("rss", "atom")):
        urls = {o.get("xmlUrl") for o in folder.findall("outline")}
        assert urls == {f"{fsvc.url}/feeds/{s}.{ext}" for s in slugs} | {f"{fsvc.url}/feeds/all.{ext}"}
        for outline in folder.findall("outline"):
            assert outline.get("type") == "rss" and outline.get("htmlUrl").startswith(fsvc.url)


# --- HTTP: validators, determinism, encodings, headers ------------------------------------------------


def test_304_on_if_none_match_and_if_modified_since(client: httpx.Client) -> None:
    path = f"/feeds/{SCIENCE_SLUG}.atom"
    first = get_ok(client, path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"] == "public, max-age=300"
    newest = max(datetime.fromisoformat(r["published"]) for r in hard_records())
    assert parsedate_to_datetime(modified) == newest
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["access-control-allow-origin"] == "*"
    assert client.get(path, headers={"If-None-Match": f"W/{etag}, \"other\""}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    later = format_datetime(newest + timedelta(days=30), usegmt=False)
    assert client.get(path, headers={"If-Modified-Since": later}).status_code == 304
    earlier = format_datetime(newest - timedelta(seconds=1))
    assert client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    stale = client.get(path, headers={"If-None-Match": '"nope"', "If-Modified-Since": modified})
    assert stale.status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "garbage"}).status_code == 200


def test_output_is_byte_identical_across_fetches_and_workers(client: httpx.Client) -> None:
    for path in ("/feeds/all.rss", f"/feeds/{SCIENCE_SLUG}.atom?page=1", "/feeds/search.json?q=khoa+h%E1%BB%8Dc"):
        bodies = {get_ok(client, path, headers={"Accept-Encoding": "identity"}).content for _ in range(8)}
        assert len(bodies) == 1, path
        tags = {client.get(path, headers={"Accept-Encoding": "identity"}).headers["etag"] for _ in range(8)}
        assert len(tags) == 1
    # default parameters and unknown parameters do not make another document
    a = get_ok(client, "/feeds/all.atom").content
    b = get_ok(client, "/feeds/all.atom?limit=50&page=1&utm_source=x").content
    assert a == b


def test_gzip_is_served_once_and_decodes_to_the_same_bytes(client: httpx.Client, fsvc) -> None:
    path = f"/feeds/{SCIENCE_SLUG}.rss"
    plain = get_ok(client, path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", fsvc.url + path, headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
        headers = r.headers
    assert headers["content-encoding"] == "gzip"
    assert "accept-encoding" in headers["vary"].lower()
    assert int(headers["content-length"]) == len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content  # compressed exactly once
    assert headers["etag"] != plain.headers["etag"]  # another representation, another tag
    revalidate = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]})
    assert revalidate.status_code == 304


def test_media_types_cors_and_security_headers(client: httpx.Client) -> None:
    for fmt, media in MEDIA.items():
        for path in (f"/feeds/all.{fmt}", f"/feeds/{SCIENCE_SLUG}.{fmt}", f"/feeds/search.{fmt}?q=x"):
            response = get_ok(client, path, headers={"Origin": "https://partner.example"})
            assert response.headers["content-type"] == f"{media}; charset=utf-8"
            assert response.headers["access-control-allow-origin"] == "*"
            assert "etag" in response.headers["access-control-expose-headers"].lower()
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
    assert get_ok(client, "/feeds.opml").headers["access-control-allow-origin"] == "*"
    missing = client.get("/feeds/nope.json", headers={"Origin": "https://partner.example"})
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == "*"


# --- browser tabs: the feed's HTML page ---------------------------------------------------------------

# What Chromium sends when a person opens a link in a tab; and an older browser without Fetch Metadata.
TAB = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none",
       "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"}
OLD_TAB = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# Everything else gets the feed document: httpx's default (*/*), curl, a feed reader naming feed
# types (and HTML, lower), fetch() even when it asks for HTML, a client asking for XML.
NOT_TABS: list[dict[str, str]] = [
    {},
    {"Accept": "*/*", "User-Agent": "curl/8.5.0"},
    {"Accept": "application/rss+xml, application/atom+xml, application/feed+json;q=0.9, text/html;q=0.1",
     "User-Agent": "Feedbin feed-id:1 - 1 subscribers"},
    {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors", "Accept": "text/html"},
    {"Accept": "application/xml, text/xml;q=0.9"},
]
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
READER_QUERY = {"www.inoreader.com": "add_feed", "www.newsblur.com": "url", "theoldreader.com": "url"}


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in response.headers["vary"].split(",")}


def reader_target(href: str) -> str:
    """The feed URL a one-click reader link subscribes to, decoded as the reader decodes it."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(href)
    assert parts.scheme == "https", href
    if parts.hostname == "feedly.com":
        prefix = "/i/subscription/feed%2F"
        assert parts.path.startswith(prefix) and "/" not in parts.path[len(prefix):], href  # one encoded segment
        return unquote(parts.path[len(prefix):])
    values = parse_qs(parts.query, strict_parsing=True)[READER_QUERY[str(parts.hostname)]]
    assert len(values) == 1, href
    return values[0]


@pytest.mark.parametrize("fmt", list(MEDIA))
@pytest.mark.parametrize("kind", list(KINDS))
def test_browser_tabs_get_the_feed_page_everything_else_the_feed(client: httpx.Client, fsvc, kind: str,
                                                                 fmt: str) -> None:
    import lxml.html

    prefix, label, html_path = KINDS[kind]
    path = f"{prefix}.{fmt}{KIND_QUERY[kind]}"
    # readers, curl, fetch(): one document, byte for byte, whatever else they send
    answers = []
    for headers in NOT_TABS:
        response = get_ok(client, path, headers={**headers, "Accept-Encoding": "identity"})
        assert response.headers["content-type"] == f"{MEDIA[fmt]}; charset=utf-8", headers
        assert vary(response) == {"accept-encoding", "accept", "sec-fetch-dest"}, headers
        answers.append((response.content, response.headers["etag"], response.headers["last-modified"]))
    assert len(set(answers)) == 1
    feed_bytes, feed_tag, _ = answers[0]
    if fmt == "json":
        items = json.loads(feed_bytes)["items"]
        titles = [i["title"] for i in items]
        guids = [i["id"] for i in items]
    else:
        doc = feedparser.parse(feed_bytes)
        assert doc.bozo == 0 and doc.entries
        assert b"xml-stylesheet" not in feed_bytes
        raw = etree.fromstring(feed_bytes)
        titles = [t.text for t in raw.findall("channel/item/title") + raw.findall(f"{ATOM}entry/{ATOM}title")]
        guids = [e.id for e in doc.entries]
    ids = [g.rsplit(":articles/", 1)[1] for g in guids]

    # a browser tab (with or without Fetch Metadata): the page, with a tag of its own
    pages = []
    for headers in (TAB, OLD_TAB):
        response = get_ok(client, path, headers={**headers, "Accept-Encoding": "identity"})
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert vary(response) == {"accept-encoding", "accept", "sec-fetch-dest"}
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "public, max-age=300"
        assert "last-modified" not in response.headers  # the ETag alone says whether it changed
        pages.append((response.content, response.headers["etag"]))
    assert len(set(pages)) == 1
    page_bytes, page_tag = pages[0]
    assert page_tag != feed_tag
    html = page_bytes.decode("utf-8")
    assert not re.search(r"<script(?![^>]*\ssrc=\"/static/)", html), "inline script"
    assert not re.search(r"<style|\sstyle=", html), "inline style"
    root = lxml.html.fromstring(page_bytes)
    assert root.get("lang") == "vi" and root.find(".//main") is not None
    assert root.findtext(".//h1") == label
    assert root.xpath("//head/link[@rel='stylesheet']/@href")[1].startswith("/static/feed_page.css?v=")
    assert root.xpath("//head/script/@src")[0].startswith("/static/feed_page.js?v=")
    subscribe = fsvc.url + path
    field = root.get_element_by_id("feed-url")
    assert field.get("value") == subscribe and field.get("readonly") is not None
    assert root.xpath("//label[@for='feed-url']")
    button = root.get_element_by_id("copy-feed-url")
    assert button.get("type") == "button" and button.get("hidden") is not None  # shown by the script
    # the newest items, linking to our article pages, in the feed's order
    links = root.xpath("//ol[@class='article-list']/li/h3/a")
    assert [a.text_content() for a in links] == titles[: len(links)] and len(links) == min(len(titles), 20)
    assert [a.get("href") for a in links] == ["/articles/" + i for i in ids[: len(links)]]
    assert root.xpath("//a[starts-with(normalize-space(), 'Xem')]/@href")[0] == html_path
    # one-click readers, each with the feed URL encoded whole (JSON Feed: its Atom twin)
    target = subscribe.replace(f".{fmt}", ".atom", 1) if fmt == "json" else subscribe
    readers = root.xpath("//ul[@class='reader-links']/li/a/@href")
    assert len(readers) == 4 and [reader_target(h) for h in readers] == [target] * 4
    # the other formats of the same feed
    formats = root.xpath("//ul[@class='format-links']/li/a")
    assert [a.get("href") for a in formats] == [f"{prefix}.{f}{KIND_QUERY[kind]}" for f in MEDIA]
    assert [a.get("type") for a in formats] == list(MEDIA.values())
    assert [a.get("aria-current") for a in formats] == [("page" if f == fmt else None) for f in MEDIA]

    # revalidation: each variant's tag answers 304 for that variant only, Vary on the 304 too
    for headers, tag, other in ((TAB, page_tag, feed_tag), ({}, feed_tag, page_tag)):
        same = client.get(path, headers={**headers, "Accept-Encoding": "identity", "If-None-Match": tag})
        assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag
        assert vary(same) == {"accept-encoding", "accept", "sec-fetch-dest"}
        crossed = client.get(path, headers={**headers, "Accept-Encoding": "identity", "If-None-Match": other})
        assert crossed.status_code == 200 and crossed.headers["etag"] == tag
    # gzip: the page is compressed once, like the feeds, and its -gz tag revalidates it
    with httpx.stream("GET", fsvc.url + path, headers={**TAB, "Accept-Encoding": "gzip"}) as r:
        raw_page = b"".join(r.iter_raw())
        zipped = r.headers
    assert zipped["content-encoding"] == "gzip" and gzip.decompress(raw_page) == page_bytes
    assert zipped["etag"] == page_tag[:-1] + '-gz"'
    again = client.get(path, headers={**TAB, "Accept-Encoding": "gzip", "If-None-Match": zipped["etag"]})
    assert again.status_code == 304


def test_feed_page_is_rendered_once_then_cached(client: httpx.Client) -> None:
    """A tab costs one render per worker and generation, then dictionary lookups (like a feed)."""
    path = "/feeds/search.rss?q=thi%C3%AAn+v%C4%83n"  # asked for by no other test
    before = feed_renders(client.get("/metrics").text)
    tags = {get_ok(client, path, headers=TAB).headers["etag"] for _ in range(12)}
    assert len(tags) == 1
    assert feed_renders(client.get("/metrics").text) - before <= 2  # two workers
    # the feed document itself is another render, not the page's bytes
    assert get_ok(client, path).headers["etag"] not in tags


def test_feed_page_paging_and_errors(client: httpx.Client, fsvc) -> None:
    import lxml.html

    # page 2 of an Atom feed: its items, numbered on; the address to subscribe to is the first page
    feed = etree.fromstring(get_ok(client, f"/feeds/{SCIENCE_SLUG}.atom?limit=10&page=2").content)
    titles = [e.findtext(f"{ATOM}title") for e in feed.findall(f"{ATOM}entry")]
    root = lxml.html.fromstring(get_ok(client, f"/feeds/{SCIENCE_SLUG}.atom?limit=10&page=2", headers=TAB).content)
    assert [a.text_content() for a in root.xpath("//ol[@class='article-list']/li/h3/a")] == titles
    assert root.xpath("//ol[@class='article-list']/@start") == ["11"]
    assert root.get_element_by_id("feed-url").get("value") == f"{fsvc.url}/feeds/{SCIENCE_SLUG}.atom?limit=10"
    # a limit that is not a feed size: the same 301 for a tab as for a reader
    moved = client.get("/feeds/all.rss?limit=7", headers=TAB)
    assert moved.status_code == 301 and moved.headers["location"] == "/feeds/all.rss?limit=10"
    # the errors of the feed (unknown category, page past the last one, bad parameter)
    assert client.get("/feeds/nope.rss", headers=TAB).status_code == 404
    assert client.get(f"/feeds/{SCIENCE_SLUG}.atom?page=40", headers=TAB).status_code == 404
    assert client.get("/feeds/all.rss?page=2", headers=TAB).status_code == 400


def test_the_xsl_is_gone(client: httpx.Client) -> None:
    for path in ("/feeds/all.rss", f"/feeds/{SCIENCE_SLUG}.atom"):
        assert b"<?xml-stylesheet" not in get_ok(client, path).content
    assert client.get("/feeds/feed.xsl").status_code == 404


# --- paging (RFC 5005) -----------------------------------------------------------------------------


def atom_links(root: etree._Element) -> dict[str, str]:
    return {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}


@pytest.mark.parametrize("slug,limit", [(SCIENCE_SLUG, 10), ("all", 20)])
def test_atom_paging_walks_the_whole_history(client: httpx.Client, fsvc, slug: str, limit: int) -> None:
    total = category_count(client, slug) if slug != "all" else len(expected_articles())
    url = f"{fsvc.url}/feeds/{slug}.atom?limit={limit}"
    first_url, seen, dates, pages, previous = url, [], [], 0, None
    while url:
        root = etree.fromstring(get_ok(client, url).content)
        links = atom_links(root)
        assert links["self"] == url and links["first"] == first_url
        assert links.get("previous") == previous
        entries = root.findall(f"{ATOM}entry")
        assert 0 < len(entries) <= limit
        seen += [e.findtext(f"{ATOM}id") for e in entries]
        dates += [datetime.fromisoformat(e.findtext(f"{ATOM}published")) for e in entries]
        previous, url = url, links.get("next")
        pages += 1
        assert pages <= total
    assert len(seen) == len(set(seen)) == total  # nothing twice, nothing missing
    assert dates == sorted(dates, reverse=True)
    assert links["last"] == previous and pages == -(-total // limit)


def test_json_paging_follows_next_url(client: httpx.Client, fsvc) -> None:
    url, ids = f"{fsvc.url}/feeds/{SCIENCE_SLUG}.json?limit=10", []
    while url:
        doc = get_ok(client, url).json()
        ids += [item["id"] for item in doc["items"]]
        url = doc.get("next_url")
    assert len(ids) == len(set(ids)) == category_count(client, SCIENCE_SLUG)


def test_rss_is_the_first_page_only(client: httpx.Client) -> None:
    root = etree.fromstring(get_ok(client, f"/feeds/{SCIENCE_SLUG}.rss?limit=10").content)
    rels = {link.get("rel") for link in root.iter(f"{ATOM}link")}
    assert rels == {"self", "hub"}
    assert get_ok(client, f"/feeds/{SCIENCE_SLUG}.rss?page=1").status_code == 200
    refused = client.get(f"/feeds/{SCIENCE_SLUG}.rss?page=2")
    assert refused.status_code == 400 and "Atom or JSON" in refused.text


@pytest.mark.parametrize(
    "query,status,words",
    [
        ("limit=0", 400, "limit"), ("limit=201", 400, "limit"), ("limit=abc", 400, "limit"), ("limit=-1", 400, "limit"),
        ("page=0", 400, "page"), ("page=x", 400, "page"), ("limit=200&page=51", 400, "10.000"),
        ("limit=100&page=101", 400, "10.000"), ("limit=10&page=99", 404, "page"),
    ],
)  # fmt: skip
def test_limit_and_page_bounds(client: httpx.Client, query: str, status: int, words: str) -> None:
    response = client.get(f"/feeds/{SCIENCE_SLUG}.atom?{query}")
    assert response.status_code == status and words in response.text


def test_limit_sets_the_number_of_items(client: httpx.Client) -> None:
    assert len(parsed(client, "/feeds/all.rss?limit=10").entries) == 10
    assert len(parsed(client, "/feeds/all.atom").entries) == min(50, len(expected_articles()))
    assert len(get_ok(client, "/feeds/all.json?limit=200").json()["items"]) == len(expected_articles())
    many = get_ok(client, "/feeds/search.json?q=khoa+h%E1%BB%8Dc&limit=200").json()["items"]
    assert len(many) == len({i["id"] for i in many}) >= PAGED_COUNT  # more than one engine page


@pytest.mark.parametrize("path", ["/feeds/nope.rss", "/feeds/nope.atom", "/feeds/nope.json", "/embed/nope",
                                  "/feeds/the-thao.xml", "/feeds/the-thao"])
def test_unknown_feeds_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404


# --- pages: autodiscovery, the search link, /feeds -------------------------------------------------------


def alternates(html: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2).replace("&amp;", "&"))
            for m in re.finditer(r'<link rel="alternate" type="([^"]+)"[^>]* href="([^"]+)"', html)]


def test_autodiscovery_links(client: httpx.Client) -> None:
    home = alternates(get_ok(client, "/").text)
    assert ("application/rss+xml", "/feeds/all.rss") in home and ("application/atom+xml", "/feeds/all.atom") in home
    category = alternates(get_ok(client, f"/c/{SCIENCE_SLUG}").text)
    assert ("application/rss+xml", f"/feeds/{SCIENCE_SLUG}.rss") in category
    article = alternates(get_ok(client, "/articles/hard-long").text)
    assert ("application/atom+xml", f"/feeds/{SCIENCE_SLUG}.atom") in article
    page = get_ok(client, "/search", params={"q": "khoa học", "category": SCIENCE_SLUG}).text
    search = alternates(page)
    feed_href = "/feeds/search.rss?q=khoa+h%E1%BB%8Dc&category=khoa-hoc"
    assert ("application/rss+xml", feed_href) in search
    assert ("application/atom+xml", feed_href.replace(".rss", ".atom")) in search
    assert "Theo dõi kết quả này" in page and feed_href.replace("&", "&amp;") in page
    # the link leads to a feed of the same search
    doc = parsed(client, feed_href)
    assert doc.entries and all(e.tags[0].term in (SCIENCE, SCIENCE_SLUG) for e in doc.entries)


def test_feeds_page_lists_every_feed_and_both_embeds(client: httpx.Client, fsvc) -> None:
    response = get_ok(client, "/feeds")
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for category in get_ok(client, "/api/categories").json()["categories"]:
        for fmt in ("rss", "atom", "json"):
            assert f"{fsvc.url}/feeds/{category['slug']}.{fmt}" in html
    assert f"{fsvc.url}/feeds/all.rss" in html and f"{fsvc.url}/feeds.opml" in html
    assert f"&lt;iframe src=&#34;{fsvc.url}/embed/" in html or f"&lt;iframe src=&quot;{fsvc.url}/embed/" in html
    assert "embed.js" in html and "data-category=" in html
    assert not re.search(r"<[a-zA-Z][^>]*\sstyle=", html) and "<script>" not in html
    assert response.headers["x-frame-options"] == "DENY"


# --- embeds ------------------------------------------------------------------------------------------


def test_embed_lists_headlines_escaped_and_may_be_framed(client: httpx.Client, fsvc) -> None:
    response = get_ok(client, "/embed/xa-hoi", headers={"Origin": "https://partner.example"})
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<script>alert(1)</script>" not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    links = re.findall(r'<li><a href="([^"]+)" target="_blank" rel="noopener">', html)
    assert len(links) == 2 and all(link.startswith(fsvc.url + "/articles/") for link in links)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors *" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "x-frame-options" not in response.headers
    assert response.headers["access-control-allow-origin"] == "*"
    assert not re.search(r"<[a-zA-Z][^>]*\sstyle=", html) and '<link rel="stylesheet" href="/static/embed.css' in html
    etag = response.headers["etag"]
    assert client.get("/embed/xa-hoi", headers={"If-None-Match": etag}).status_code == 304


def test_embed_options(client: httpx.Client) -> None:
    assert len(re.findall(r"<li>", get_ok(client, f"/embed/{SCIENCE_SLUG}").text)) == 10
    assert len(re.findall(r"<li>", get_ok(client, f"/embed/{SCIENCE_SLUG}?limit=3").text)) == 3
    assert len(re.findall(r"<li>", get_ok(client, f"/embed/{SCIENCE_SLUG}?limit=50").text)) == category_count(
        client, SCIENCE_SLUG)
    assert 'class="theme-dark"' in get_ok(client, "/embed/all?theme=dark").text
    assert 'class="theme-light"' in get_ok(client, "/embed/all").text
    search = get_ok(client, "/embed/search", params={"q": "bản tin khoa học", "limit": 2}).text
    assert search.count("<li>") == 2 and "Bản tin khoa học số 00" in search
    for query in ("limit=0", "limit=51", "theme=blue", "limit=x"):
        assert client.get(f"/embed/all?{query}").status_code == 400
    assert "Liên kết javascript" in get_ok(client, f"/embed/{SCIENCE_SLUG}?limit=50").text
    assert "javascript:" not in get_ok(client, f"/embed/{SCIENCE_SLUG}?limit=50").text


def test_embed_js_is_served_as_javascript(client: httpx.Client) -> None:
    response = get_ok(client, "/embed.js", headers={"Origin": "https://partner.example"})
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    source = response.text
    assert source.lstrip().startswith("/*") and "(function () {" in source and source.rstrip().endswith("})();")
    assert "innerHTML" not in source and "document.write" not in source and "eval(" not in source
    assert "attachShadow" in source and "document.currentScript" in source
    assert client.get("/embed.js", headers={"If-None-Match": response.headers["etag"]}).status_code == 304


# --- the ETag follows the index ------------------------------------------------------------------------


def test_etag_changes_when_an_article_is_indexed(feeds_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(feeds_index, index_dir)
    with running_service(index_dir, tmp_path / "logs", env={"SEARCHSVC_ACCESS_LOG": "0"}) as svc, \
            httpx.Client(base_url=svc.url, timeout=30.0) as http:
        path = "/feeds/the-thao.atom"
        before = get_ok(http, path)
        generation = get_ok(http, "/readyz").json()["generation"]
        assert http.get(path, headers={"If-None-Match": before.headers["etag"]}).status_code == 304
        new = {"id": "late-news", "title": "Tin thể thao mới nhất vừa cập nhật", "category": "Thể thao",
               "body": "Đội tuyển thắng trận.", "published": vn(2020, 5, 1, 12, 0).isoformat()}
        extra = tmp_path / "late.jsonl"
        extra.write_text(json.dumps(new, ensure_ascii=False) + "\n", encoding="utf-8")
        run_cli("index", str(extra), "--index-dir", str(index_dir), "--quiet")
        deadline = time.monotonic() + 20
        while get_ok(http, "/readyz").json()["generation"] == generation:
            assert time.monotonic() < deadline, "the server did not see the new generation"
            time.sleep(0.1)
        after = get_ok(http, path, headers={"If-None-Match": before.headers["etag"]})
        assert after.headers["etag"] != before.headers["etag"]
        root = etree.fromstring(after.content)
        assert root.find(f"{ATOM}entry").findtext(f"{ATOM}title") == new["title"]
        assert root.findtext(f"{ATOM}updated") == "2020-05-01T12:00:00+07:00"
        assert after.headers["last-modified"] == "Fri, 01 May 2020 05:00:00 GMT"


def test_search_feeds_are_rate_limited_like_search(feeds_index: Path, tmp_path: Path) -> None:
    """Each distinct saved search costs a search and a render, and so does every feed document no
    cache holds; a document already rendered costs nothing, whoever asks for it."""
    env = {"SEARCHSVC_RATE_LIMIT": "3", "SEARCHSVC_ACCESS_LOG": "0"}
    with running_service(feeds_index, tmp_path / "logs", env=env) as svc, \
            httpx.Client(base_url=svc.url, timeout=30.0) as http:
        remote = {"X-Forwarded-For": "198.51.100.9"}  # a client behind a local proxy (see lifecycle tests)
        get_ok(http, f"/feeds/{SCIENCE_SLUG}.rss")  # rendered for a loopback client (never limited)
        statuses = [http.get("/feeds/search.atom", params={"q": f"khoa {i}"}, headers=remote).status_code
                    for i in range(4)]  # fmt: skip
        assert statuses == [200, 200, 200, 429]
        assert http.get("/embed/search", params={"q": "x"}, headers=remote).status_code == 429
        assert http.get(f"/feeds/{SCIENCE_SLUG}.atom", headers=remote).status_code == 429  # a render
        assert all(http.get(f"/feeds/{SCIENCE_SLUG}.rss", headers=remote).status_code == 200 for _ in range(5))
        assert http.get("/feeds/search.atom", params={"q": "khoa 0"}, headers=remote).status_code == 200


def feed_renders(metrics: str) -> float:
    """Feed documents rendered so far, all workers (``searchsvc_feed_renders_total``)."""
    match = re.search(r"^searchsvc_feed_renders_total (\S+)$", metrics, re.M)
    assert match, "no searchsvc_feed_renders_total in /metrics"
    return float(match.group(1))


def test_feed_limits_are_a_few_cached_sizes(client: httpx.Client, fsvc) -> None:
    """Every limit is a render of up to 200 full articles, so only 10, 20, 50, 100 and 200 are
    rendered: a walk of limit=200, 199, … 1 costs one render per size and worker, every other
    limit is a 301 to the next size up (relative, CORS-readable), and what it leads to is the
    valid document of that size, at the page that holds the first item asked for."""
    sizes = (10, 20, 50, 100, 200)
    before = client.get("/metrics").text
    for limit in range(200, 0, -1):
        answer = client.get(f"/feeds/all.json?limit={limit}")
        size = next(s for s in sizes if s >= limit)
        if limit == size:
            assert answer.status_code == 200, limit
            assert len(answer.json()["items"]) == min(size, len(expected_articles()))
        else:
            assert answer.status_code == 301, limit
            assert answer.headers["location"] == "/feeds/all.json" + ("" if size == 50 else f"?limit={size}")
            assert answer.headers["access-control-allow-origin"] == "*"
    renders = feed_renders(client.get("/metrics").text) - feed_renders(before)
    assert renders <= len(sizes) * 2  # two workers, each renders a size once
    # paged: items 15-21 in pages of 7 lead to page 2 of 10 (items 11-20), which holds item 15
    newest = [i["id"] for i in get_ok(client, "/feeds/all.json?limit=200").json()["items"]]
    moved = client.get(f"/feeds/{SCIENCE_SLUG}.atom?limit=7&page=3&utm_source=x")
    assert moved.status_code == 301 and moved.headers["location"] == f"/feeds/{SCIENCE_SLUG}.atom?limit=10&page=2"
    moved = client.get("/feeds/all.atom?limit=7&page=3")
    assert moved.headers["location"] == "/feeds/all.atom?limit=10&page=2"
    page = client.get(moved.headers["location"])
    root = etree.fromstring(page.content)
    assert etree.RelaxNG(etree.parse(str(feeds.ATOM_RNG_PATH))).validate(root)
    assert atom_links(root)["self"] == fsvc.url + moved.headers["location"]
    ids = [e.findtext(f"{ATOM}id") for e in root.findall(f"{ATOM}entry")]
    assert ids == newest[10:20] and newest[14] in ids
    saved = client.get("/feeds/search.rss", params={"q": "  khoa   học ", "limit": 3})
    assert saved.headers["location"] == "/feeds/search.rss?q=khoa+h%E1%BB%8Dc&limit=10"
    assert len(parsed(client, saved.headers["location"]).entries) == 10


# --- the cache itself ----------------------------------------------------------------------------------


def test_feed_cache_is_bounded_per_generation_and_single_flight() -> None:
    async def scenario() -> None:
        cache = FeedCache(max_entries=3, max_bytes=10_000_000)
        renders: list[str] = []

        def render(name: str):
            def run():
                time.sleep(0.05)
                renders.append(name)
                return make_document(name.encode() * 200, "text/plain")
            return run

        docs = await asyncio.gather(*(cache.get_or_render(("g1", "a"), render("a")) for _ in range(10)))
        assert renders == ["a"] and len({id(d) for d in docs}) == 1  # ten waiters, one render
        for name in "bcd":
            await cache.get_or_render(("g1", name), render(name))
        assert len(cache) == 3 and await cache.get(("g1", "a")) is None  # LRU evicted the oldest
        doc = await cache.get_or_render(("g2", "b"), render("b2"))
        assert doc.body.startswith(b"b2"), "without a way to tell what changed, a new generation re-renders"
        with pytest.raises(ValueError):
            await cache.get_or_render(("g2", "bad"), lambda: (_ for _ in ()).throw(ValueError("boom")))
        assert await cache.get(("g2", "bad")) is None
        # the request that started a render goes away: the others still get the document
        leader = asyncio.ensure_future(cache.get_or_render(("g2", "slow"), render("slow")))
        await asyncio.sleep(0.01)
        waiter = asyncio.ensure_future(cache.get_or_render(("g2", "slow"), render("never")))
        leader.cancel()
        assert (await waiter).body.startswith(b"slow") and "never" not in renders
        assert await cache.get(("g2", "slow")) is not None

        small = FeedCache(max_entries=100, max_bytes=1000)
        for i in range(5):
            await small.get_or_render(("g", i), lambda i=i: make_document(bytes(300), "x"))
        assert small.bytes <= 1000

    asyncio.run(scenario())


def test_feed_cache_keeps_documents_a_commit_did_not_touch() -> None:
    from index.api import ANY_CHANGE, Shows

    touched = {("g1", "g2"): {"thoi-su"}, ("g2", "g3"): set(), ("g1", "g3"): {"thoi-su"}}
    asked: list[tuple[str, str]] = []

    async def changed(old: str, new: str, shows: Shows) -> bool:
        asked.append((old, new))
        return shows.any_change or bool(shows.categories & touched[(old, new)])

    async def scenario() -> None:
        cache = FeedCache(max_entries=10, max_bytes=10_000_000, changed=changed)
        renders: list[str] = []

        def render(name: str):
            def run():
                renders.append(name)
                return make_document(name.encode() * 50, "text/plain")
            return run

        await cache.get_or_render(("g1", "thoi-su"), render("thoi-su@1"), shows=Shows.category("thoi-su"))
        await cache.get_or_render(("g1", "the-thao"), render("the-thao@1"), shows=Shows.category("the-thao"))
        await cache.get_or_render(("g1", "all"), render("all@1"), shows=ANY_CHANGE)
        # g2 changed thoi-su only: its feed and the whole archive's are rendered again, the-thao's is not
        for name in ("thoi-su", "the-thao", "all"):
            await cache.get_or_render(("g2", name), render(f"{name}@2"),
                                      shows=ANY_CHANGE if name == "all" else Shows.category(name))
        assert renders == ["thoi-su@1", "the-thao@1", "all@1", "thoi-su@2", "all@2"]
        kept = await cache.get(("g3", "the-thao"))  # g3 changed nothing: carried over again, from g2
        assert kept is not None and kept.body.startswith(b"the-thao@1")
        assert ("g2", "g3") in asked and cache.hits >= 2

    asyncio.run(scenario())


def test_documents_are_deterministic_and_validators_follow_the_bytes() -> None:
    a = make_document(b"<rss>x</rss>" * 100, "application/rss+xml", datetime(2015, 3, 1, 9, tzinfo=VN_TZ))
    b = make_document(b"<rss>x</rss>" * 100, "application/rss+xml", datetime(2015, 3, 1, 9, tzinfo=VN_TZ))
    assert a == b and a.gzip_body == b.gzip_body and gzip.decompress(a.gzip_body) == a.body
    assert a.etag != make_document(b"<rss>y</rss>", "application/rss+xml").etag
    assert a.gzip_etag.startswith(a.etag[:-1]) and a.last_modified.utcoffset() == timedelta(0)


def test_feed_cache_evicts_the_least_recently_used_by_size() -> None:
    docs = {name: make_document(name.encode() * 400, "text/plain") for name in "abcd"}
    size = docs["a"].size
    assert all(doc.size == size for doc in docs.values())
    cache = FeedCache(max_entries=100, max_bytes=2 * size + size // 2)  # room for two, by bytes

    def get(key: tuple[str, str]):
        return asyncio.run(cache.get(key))

    cache.observe("g")
    cache.put(("g", "a"), docs["a"])
    cache.put(("g", "b"), docs["b"])
    assert get(("g", "a")) is docs["a"]  # now "b" is the least recently used
    cache.put(("g", "c"), docs["c"])
    assert get(("g", "b")) is None and get(("g", "a")) is docs["a"]
    assert len(cache) == 2 and cache.bytes == 2 * size
    # a document larger than the whole cache is not kept and evicts nothing
    huge = make_document(bytes(range(256)) * 40, "text/plain")
    assert huge.size > cache.max_bytes
    cache.put(("g", "huge"), huge)
    assert get(("g", "huge")) is None and len(cache) == 2 and cache.bytes == 2 * size
    cache.put(("old", "d"), docs["d"])  # a render finished for a generation no longer current
    assert get(("old", "d")) is None
    cache.observe("g2")
    assert get(("g2", "a")) is None, "without a way to tell what changed, a new generation drops it"


def test_every_variant_tag_of_a_document_revalidates_it() -> None:
    from starlette.requests import Request

    from searchsvc.http.feed_cache import NAVIGATION_VARY, respond

    doc = make_document(b"<rss>x</rss>" * 100, "application/rss+xml")
    validator = doc.etag.strip('"')
    assert doc.gzip_etag == f'"{validator}-gz"'

    def get(**headers: str) -> tuple[int, str]:
        raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
        response = respond(Request({"type": "http", "method": "GET", "path": "/f", "headers": raw}), doc,
                           vary=NAVIGATION_VARY)
        assert response.headers["vary"] == "Accept-Encoding, Accept, Sec-Fetch-Dest"
        return response.status_code, response.headers["etag"]

    assert get(accept_encoding="identity") == (200, doc.etag)
    assert get(accept_encoding="gzip") == (200, doc.gzip_etag)
    for tag in (doc.etag, doc.gzip_etag, "W/" + doc.gzip_etag, f'"{validator}-gzip"', f'"other", {doc.etag}', "*"):
        assert get(accept_encoding="gzip", if_none_match=tag) == (304, doc.gzip_etag), tag
        assert get(accept_encoding="identity", if_none_match=tag) == (304, doc.etag), tag
    for tag in ('"other"', f'"{validator}-other"', f'"{validator}-view"', validator, f'"{validator[:-1]}"'):
        assert get(accept_encoding="gzip", if_none_match=tag)[0] == 200, tag
