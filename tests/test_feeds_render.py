"""Rendering tests for ``feeds``: RSS 2.0, Atom 1.0, JSON Feed 1.1 and OPML 2.0.

The articles below are the corpus' hard cases: markup characters in titles, U+0014 in a body,
a 50-paragraph body, decomposed (NFD) Vietnamese, ``<script>`` in source and body, a
``javascript:`` URL, captions, and datetimes that are naive, UTC or already +07:00.
"""

from __future__ import annotations

import calendar
import copy
import html
import json
import unicodedata
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from feeds import (
    ATOM_RNG_PATH,
    FeedInfo,
    body_html,
    item_guid,
    item_link,
    render_atom,
    render_json,
    render_opml,
    render_rss,
    summary,
    xml_safe,
)
from index.article import VN_TZ, Article

BASE = "https://tin.example.vn/"
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
DC = "{http://purl.org/dc/elements/1.1/}"
SCRIPT = "<script>alert(1)</script>"
NFD_TITLE = unicodedata.normalize("NFD", "Đắk Nông: mùa cà phê bội thu, giá tăng mạnh")


def _articles() -> list[Article]:
    """Eight articles, newest first (the order the service passes them in)."""
    t0 = datetime(2024, 5, 20, 9, 15, tzinfo=VN_TZ)
    return [
        Article(id="a-amp", title="Giá xăng < 25.000 đồng & dầu giảm",
                body=["Giá xăng giảm từ 15 giờ chiều nay.", "Dầu diesel cũng giảm."],
                category="Kinh tế", published=t0, source="Báo Đắk Nông",
                url="https://baodaknong.vn/gia-xang-giam-123.html"),
        Article(id="a-ctrl", title="Tin có ký tự điều khiển",
                body=["Đoạn một\x14 có ký tự U+0014 ở giữa\x14.", "Đoạn hai."],
                category="Xã hội", published=t0 - timedelta(hours=1)),
        Article(id="a-long", title="Bài rất dài",
                body=[f"Đoạn {i}: tỉnh Đắk Nông triển khai nhiều chương trình phát triển "
                      "kinh tế xã hội, chú trọng nông nghiệp công nghệ cao." for i in range(50)],
                category="Thời sự", published=t0 - timedelta(hours=2)),
        Article(id="a-nfd", title=NFD_TITLE,
                body=[unicodedata.normalize("NFD", "Nông dân Đắk Song phấn khởi vì được mùa.")],
                category=unicodedata.normalize("NFD", "Nông nghiệp"),
                published=(t0 - timedelta(hours=3)).astimezone(UTC)),
        Article(id="a-script", title="Bài có mã độc",
                body=[f"Nội dung có {SCRIPT} ở giữa.", "<b>không in đậm</b>"],
                category="Công nghệ", published=t0 - timedelta(hours=4), source=SCRIPT),
        Article(id="a-js", title="Liên kết nguy hiểm", body=["Bài viết có url javascript."],
                category="Xã hội", published=t0 - timedelta(hours=5), url="javascript:alert(1)"),
        Article(id="a-cap", title="Ảnh: Thác Đray Sáp mùa nước",
                body=["Thác Đray Sáp đẹp hùng vĩ."], category="Du lịch",
                published=(t0 - timedelta(days=1)).replace(tzinfo=None),  # naive = VN time
                captions=["Thác Đray Sáp nhìn từ trên cao.", "Du khách chụp ảnh <3"]),
        Article(id="a/slash ?", title="Id có ký tự đặc biệt", body=["Nội dung."],
                category="Khác", published=t0 - timedelta(days=2),
                url="data:text/html,<script>alert(1)</script>"),
    ]


def _info(fmt: str, **extra) -> FeedInfo:
    base = BASE.rstrip("/")
    fields = dict(
        feed_id=f"{base}/feeds/the-thao",
        title="Tin tức Đắk Nông – Thể thao",
        description="Tin mới nhất chuyên mục Thể thao & đời sống",
        self_url=f"{base}/feeds/the-thao.{fmt}",
        html_url=f"{base}/the-thao",
        site_title="Tin tức Đắk Nông",
        author_name="Ban biên tập <Đắk Nông>",
        hub_url="https://hub.example.net/",
        icon_url=f"{base}/static/icon.png",
        first_url=f"{base}/feeds/the-thao.{fmt}",
        next_url=f"{base}/feeds/the-thao.{fmt}?page=2",
    )
    fields.update(extra)
    return FeedInfo(**fields)


def _expected_title(a: Article) -> str:
    return unicodedata.normalize("NFC", a.title)


def _vn_struct(a: Article):
    """feedparser's *_parsed fields are UTC struct_times; compare as epoch seconds."""
    return int(a.published.timestamp())


ARTICLES = _articles()
TITLES = [_expected_title(a) for a in ARTICLES]


@pytest.fixture(scope="module")
def rss_bytes() -> bytes:
    return render_rss(_info("rss"), ARTICLES, BASE)


@pytest.fixture(scope="module")
def atom_bytes() -> bytes:
    return render_atom(_info("atom"), ARTICLES, BASE)


@pytest.fixture(scope="module")
def json_bytes() -> bytes:
    return render_json(_info("json"), ARTICLES, BASE)


@pytest.fixture(scope="module")
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(ATOM_RNG_PATH)))


def _check_common_entries(parsed, has_updated: bool) -> None:
    """What every parsed XML feed must show, whatever the format (RSS items have no updated)."""
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert [e.title for e in parsed.entries] == TITLES
    for entry, article in zip(parsed.entries, ARTICLES):
        assert entry.link.startswith("https://"), entry.link
        assert entry.link == item_link(article, BASE)
        assert entry.id == item_guid(article, BASE)
        assert calendar.timegm(entry.published_parsed) == _vn_struct(article)
        if has_updated:
            assert calendar.timegm(entry.updated_parsed) == _vn_struct(article)
        assert len(html.unescape(entry.summary)) <= 301


def _no_dangerous_urls(document: bytes) -> None:
    assert b"javascript:" not in document
    assert b"data:text" not in document
    assert b"<script>" not in document  # only ever present escaped


# --- RSS -------------------------------------------------------------------------------------


def test_rss_parses_with_items_in_order(rss_bytes: bytes) -> None:
    parsed = feedparser.parse(rss_bytes)
    _check_common_entries(parsed, has_updated=False)
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Tin tức Đắk Nông – Thể thao"
    assert parsed.feed.language == "vi"
    _no_dangerous_urls(rss_bytes)


def test_rss_channel_links_dates_and_extensions(rss_bytes: bytes) -> None:
    info = _info("rss")
    channel = etree.fromstring(rss_bytes).find("channel")
    assert channel.findtext("link") == info.html_url
    self_links = channel.findall(f"{ATOM}link[@rel='self']")
    assert [ln.get("href") for ln in self_links] == [info.self_url]
    assert channel.find(f"{ATOM}link[@rel='hub']").get("href") == info.hub_url
    assert channel.find(f"{ATOM}link[@rel='next']").get("href") == info.next_url
    assert channel.findtext("ttl") == "30"
    assert channel.findtext("language") == "vi"
    assert channel.findtext("generator") == "searchsvc"
    # lastBuildDate is the newest item's date, in +07:00
    assert channel.findtext("lastBuildDate") == "Mon, 20 May 2024 09:15:00 +0700"
    items = channel.findall("item")
    assert len(items) == len(ARTICLES)
    for item, article in zip(items, ARTICLES):
        assert item.findtext("pubDate").endswith(" +0700")
        guid = item.find("guid")
        assert guid.get("isPermaLink") == "false" and guid.text.startswith("tag:tin.example.vn,")
        assert item.findtext(f"{CONTENT}encoded") == body_html(article)
        assert item.findtext("category") == unicodedata.normalize("NFC", article.category)
        assert item.find("author") is None  # RSS <author> must be an e-mail; we have none
    creators = [i.findtext(f"{DC}creator") for i in items]
    assert creators[0] == "Báo Đắk Nông"
    assert creators[4] == SCRIPT  # as text: escaped in the XML
    assert creators[1] is None


def test_rss_dc_creator_and_content_through_feedparser(rss_bytes: bytes) -> None:
    entries = feedparser.parse(rss_bytes).entries
    assert entries[0].author == "Báo Đắk Nông"
    assert "Dầu diesel cũng giảm." in entries[0].content[0].value
    # description is HTML-escaped plain text: readers see the characters, not markup
    assert html.unescape(entries[0].summary) == summary(ARTICLES[0])


# --- Atom ------------------------------------------------------------------------------------


def test_atom_parses_with_items_in_order(atom_bytes: bytes) -> None:
    parsed = feedparser.parse(atom_bytes)
    _check_common_entries(parsed, has_updated=True)
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Tin tức Đắk Nông – Thể thao"
    assert parsed.feed.author == "Ban biên tập <Đắk Nông>"
    assert parsed.entries[0].author == "Báo Đắk Nông"
    assert parsed.entries[4].author == SCRIPT
    for entry, article in zip(parsed.entries, ARTICLES):
        assert entry.summary == summary(article)
        assert entry.content[0].type == "text/html"
        assert entry.tags[0].term == article.category_slug
    _no_dangerous_urls(atom_bytes)


def test_atom_structure(atom_bytes: bytes) -> None:
    info = _info("atom")
    feed = etree.fromstring(atom_bytes)
    assert feed.findtext(f"{ATOM}id") == info.feed_id
    assert feed.findtext(f"{ATOM}updated") == "2024-05-20T09:15:00+07:00"
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    rels = {ln.get("rel"): ln.get("href") for ln in feed.findall(f"{ATOM}link")}
    assert rels == {"self": info.self_url, "hub": info.hub_url, "first": info.first_url,
                    "next": info.next_url, "alternate": info.html_url}
    for entry in feed.findall(f"{ATOM}entry"):
        for tag in ("published", "updated"):
            assert entry.findtext(f"{ATOM}{tag}").endswith("+07:00")
        links = entry.findall(f"{ATOM}link")
        assert len(links) == 1 and links[0].get("rel") == "alternate"
        assert entry.find(f"{ATOM}content").get("type") == "html"
    assert feed.find(f"{ATOM}generator").text == "searchsvc"


def test_atom_validates_against_rfc4287_schema(atom_bytes: bytes, atom_schema) -> None:
    doc = etree.fromstring(atom_bytes)
    assert atom_schema.validate(doc), atom_schema.error_log


def test_atom_schema_has_teeth(atom_bytes: bytes, atom_schema) -> None:
    doc = etree.fromstring(atom_bytes)

    no_id = copy.deepcopy(doc)
    no_id.remove(no_id.find(f"{ATOM}id"))
    assert not atom_schema.validate(no_id)

    bad_date = copy.deepcopy(doc)
    bad_date.find(f"{ATOM}entry/{ATOM}updated").text = "hôm qua"
    assert not atom_schema.validate(bad_date)

    unknown = copy.deepcopy(doc)
    etree.SubElement(unknown.find(f"{ATOM}entry"), f"{ATOM}bogus")
    assert not atom_schema.validate(unknown)

    foreign_ok = copy.deepcopy(doc)  # extension elements outside the Atom namespace are fine
    etree.SubElement(foreign_ok.find(f"{ATOM}entry"), "{urn:x-test}note").text = "ok"
    assert atom_schema.validate(foreign_ok), atom_schema.error_log


# --- JSON Feed -------------------------------------------------------------------------------


def _assert_json_feed_1_1(doc: dict) -> None:
    """The MUST/SHOULD rules of https://jsonfeed.org/version/1.1 for what we emit.

    feedparser 6.0.x cannot parse JSON Feed, so the spec is checked directly.
    """
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["items"], list)
    for key in ("home_page_url", "feed_url", "next_url", "icon"):
        if key in doc:
            assert doc[key].startswith("https://")
    for author in doc.get("authors", []):
        assert set(author) <= {"name", "url", "avatar"} and author
    for hub in doc.get("hubs", []):
        assert set(hub) == {"type", "url"}
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert "content_html" in item or "content_text" in item
        assert item["url"].startswith("https://")
        for key in ("date_published", "date_modified"):
            assert datetime.fromisoformat(item[key]).utcoffset() == timedelta(hours=7)
            assert item[key].endswith("+07:00")
        assert all(isinstance(t, str) for t in item.get("tags", []))


def test_json_feed_follows_spec(json_bytes: bytes) -> None:
    doc = json.loads(json_bytes.decode("utf-8"))
    _assert_json_feed_1_1(doc)
    info = _info("json")
    assert doc["feed_url"] == info.self_url and doc["home_page_url"] == info.html_url
    assert doc["language"] == "vi"
    assert doc["next_url"] == info.next_url
    assert doc["hubs"] == [{"type": "WebSub", "url": info.hub_url}]
    assert [i["title"] for i in doc["items"]] == TITLES
    assert [i["id"] for i in doc["items"]] == [item_guid(a, BASE) for a in ARTICLES]
    assert [i["url"] for i in doc["items"]] == [item_link(a, BASE) for a in ARTICLES]
    for item, article in zip(doc["items"], ARTICLES):
        assert len(item["summary"]) <= 301
        assert datetime.fromisoformat(item["date_published"]) == article.published
    _no_dangerous_urls(json_bytes)


def test_json_feed_escapes_markup(json_bytes: bytes) -> None:
    items = json.loads(json_bytes)["items"]
    script_item = items[4]
    assert "<script>" not in script_item["content_html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in script_item["content_html"]
    assert "&lt;b&gt;không in đậm&lt;/b&gt;" in script_item["content_html"]
    assert script_item["authors"] == [{"name": SCRIPT}]  # plain text field, not HTML
    assert "\x14" not in json_bytes.decode("utf-8")
    assert b"<" not in json_bytes and b">" not in json_bytes  # HTML-safe bytes, same values


# --- shared properties -----------------------------------------------------------------------

RENDERERS = {"rss": render_rss, "atom": render_atom, "json": render_json}


# Two wall clocks far from every article date (and from each other); time-machine moves the whole
# process clock (datetime.now, date.today, time.time...), so a "now" read anywhere shows.
FROZEN_CLOCKS = (datetime(1999, 12, 31, 23, 59, 58, 123456, tzinfo=UTC),
                 datetime(2041, 3, 7, 5, 6, 7, tzinfo=VN_TZ))


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_output_is_deterministic(fmt: str) -> None:
    """The same input renders the same bytes whatever the wall clock says: feedgen stamps
    ``datetime.now()`` into feed and entry dates, and every one must be overwritten."""
    render = RENDERERS[fmt]
    outputs = []
    for clock in FROZEN_CLOCKS:
        with time_machine.travel(clock, tick=False):
            outputs.append(render(_info(fmt), ARTICLES, BASE))
    for clock, output in zip(FROZEN_CLOCKS, outputs):
        assert str(clock.year).encode() not in output, f"the wall clock ({clock}) leaked into the feed"
    assert outputs[0] == outputs[1]
    assert render(_info(fmt), ARTICLES, BASE) == outputs[0]  # and the real clock changes nothing either


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_no_xml_illegal_characters_and_nfc(fmt: str) -> None:
    document = RENDERERS[fmt](_info(fmt), ARTICLES, BASE)
    text = document.decode("utf-8")
    assert "\x14" not in text
    assert unicodedata.normalize("NFC", NFD_TITLE) in text
    assert NFD_TITLE not in text
    assert "Đoạn một có ký tự U+0014 ở giữa." in text


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_no_processing_instruction(fmt: str) -> None:
    """The XML declaration, then the root: no xml-stylesheet PI (browser tabs get an HTML page from
    the service instead of an XSL view, docs/feeds.md)."""
    document = RENDERERS[fmt](_info(fmt), ARTICLES, BASE)
    assert document.split(b"\n")[0].startswith(b"<?xml ")
    assert not list(etree.fromstring(document).itersiblings(preceding=True))
    assert b"<?xml-stylesheet" not in document


def test_empty_feeds_are_valid(atom_schema) -> None:
    fallback = datetime(2000, 1, 1, tzinfo=VN_TZ)
    atom = render_atom(_info("atom"), [], BASE)
    assert atom_schema.validate(etree.fromstring(atom)), atom_schema.error_log
    assert etree.fromstring(atom).findtext(f"{ATOM}updated") == "2000-01-01T00:00:00+07:00"
    parsed = feedparser.parse(atom)
    assert parsed.bozo == 0 and parsed.entries == []
    rss = render_rss(_info("rss"), [], BASE)
    assert feedparser.parse(rss).bozo == 0
    assert etree.fromstring(rss).findtext("channel/lastBuildDate") == "Sat, 01 Jan 2000 00:00:00 +0700"
    doc = json.loads(render_json(_info("json"), [], BASE))
    _assert_json_feed_1_1(doc)
    assert doc["items"] == []
    assert _info("atom").updated_fallback == fallback


# --- OPML ------------------------------------------------------------------------------------


def test_opml_lists_every_feed() -> None:
    rows = [
        ("Thể thao", f"{BASE}feeds/the-thao.rss", f"{BASE}feeds/the-thao.atom", f"{BASE}the-thao"),
        ("Kinh tế & <Đầu tư>", f"{BASE}feeds/kinh-te.rss?a=1&b=2", f"{BASE}feeds/kinh-te.atom",
         f"{BASE}kinh-te"),
    ]
    document = render_opml("Tin tức Đắk Nông", "Ban biên tập", rows, datetime(2024, 5, 20, 9, 15))
    root = etree.fromstring(document)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "Tin tức Đắk Nông"
    assert root.findtext("head/dateCreated") == "Mon, 20 May 2024 09:15:00 +0700"
    feeds = root.findall(".//outline[@xmlUrl]")
    assert {f.get("xmlUrl") for f in feeds} == {u for r in rows for u in r[1:3]}
    assert all(f.get("type") == "rss" for f in feeds)
    assert [f.get("text") for f in feeds] == [r[0] for r in rows] * 2
    groups = root.findall("body/outline")
    assert [g.get("text") for g in groups] == ["RSS 2.0", "Atom 1.0"]
    assert render_opml("Tin tức Đắk Nông", "Ban biên tập", rows,
                       datetime(2024, 5, 20, 9, 15)) == document


# --- building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "vbscript:x",
    "/relative/path", "//evil.example/x", "ftp://host/x", "http://", "https://a b.vn/x",
    "http:\x14//x", "https://x.vn/\x00", None, "",
])
def test_item_link_refuses_non_web_urls(url) -> None:
    a = Article(id="x y/1", title="t", body=["b"], category="c",
                published=datetime(2024, 1, 1), url=url)
    assert item_link(a, BASE) == "https://tin.example.vn/articles/x%20y/1"


def test_item_link_keeps_web_urls() -> None:
    a = Article(id="1", title="t", body=["b"], category="c", published=datetime(2024, 1, 1),
                url="https://baodaknong.vn/đắk-nông.html")
    assert item_link(a, BASE) == "https://baodaknong.vn/%C4%91%E1%BA%AFk-n%C3%B4ng.html"
    with pytest.raises(ValueError):
        item_link(a, "localhost")


def test_xml_safe_and_body_html() -> None:
    assert xml_safe("a\x14b\x00c\x0bd\ufffee\t\n") == "abcde\t\n"
    a = ARTICLES[6]
    assert body_html(a) == (
        "<p>Thác Đray Sáp đẹp hùng vĩ.</p>\n"
        "<p><em>Thác Đray Sáp nhìn từ trên cao.</em></p>\n"
        "<p><em>Du khách chụp ảnh &lt;3</em></p>"
    )


def test_summary_cuts_at_word_boundary() -> None:
    text = summary(ARTICLES[2])
    assert len(text) <= 300 and text.endswith("…")
    assert text[:-1] == text[:-1].rstrip()
    joined = " ".join(ARTICLES[2].body)
    stem = text[:-1]
    assert joined.startswith(stem) and joined[len(stem)] == " "
    assert summary(ARTICLES[0]) == "Giá xăng giảm từ 15 giờ chiều nay. Dầu diesel cũng giảm."


@given(st.lists(st.text(min_size=1), min_size=1, max_size=6), st.integers(1, 400))
def test_summary_never_exceeds_limit(paragraphs: list[str], limit: int) -> None:
    if not any(p.strip() for p in paragraphs):
        return
    a = Article(id="h", title="t", body=paragraphs, category="c", published=datetime(2024, 1, 1))
    text = summary(a, limit)
    assert len(text) <= limit
    assert xml_safe(text) == text
    whole = " ".join(" ".join(xml_safe(p).split()) for p in a.body if xml_safe(p).split())
    if not text.endswith("…"):
        assert text == unicodedata.normalize("NFC", whole)


@pytest.mark.parametrize(("fmt", "render", "module", "tree_fn", "public"), [
    ("rss", render_rss, "feeds.rss", "rss_tree", "rss_str"),
    ("atom", render_atom, "feeds.atom", "atom_tree", "atom_str"),
])
def test_amending_feedgens_own_tree_gives_the_bytes_of_its_public_output(
    monkeypatch: pytest.MonkeyPatch, fmt, render, module, tree_fn, public
) -> None:
    """Renderers amend the tree feedgen builds (a private method, for speed); the document must be
    byte-identical to re-parsing feedgen's public serialization, on hostile articles too."""
    import importlib

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)

    def reparse(document: bytes) -> etree._ElementTree:
        return etree.ElementTree(etree.fromstring(document, parser))

    articles = _articles() + [
        Article(id="x", title="Tiêu đề\u2028dòng & <b>", body=["a\u00a0 b\n\n  c", "  ", "d\u0301"],
                category="Thể thao", published=datetime(2024, 1, 1, tzinfo=VN_TZ), source="Nguồn & <x>",
                captions=["", "chú thích\r\nhai dòng"]),
    ]
    info = _info(fmt, prev_url=f"{BASE}feeds/the-thao.{fmt}?page=1", last_url=f"{BASE}feeds/the-thao.{fmt}?page=3")
    direct = render(info, articles, BASE)
    monkeypatch.setattr(importlib.import_module(module), tree_fn,
                        lambda fg: reparse(getattr(fg, public)(pretty=False)))
    assert render(info, articles, BASE) == direct
