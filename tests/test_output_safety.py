"""Markup from the archive reaches readers as text, everywhere, and ``javascript:`` never becomes a link.

Articles whose title, body, captions, source and category carry XSS payloads, one whose ``url`` is
``javascript:alert(1)``, are indexed from JSON Lines with the real CLI and served; then every page,
the API's snippets and highlights, every feed format and the embeds are fetched and *parsed*
(lxml), and the parsed documents are checked, not the bytes:

* HTML: no ``script`` element but the site's own ``/static/`` scripts, no ``on*`` attribute, no
  ``iframe``/``object``/``embed``/``img``/``svg`` from the input, no ``javascript:``/``data:``/
  ``vbscript:`` URL in any URL attribute; the payload text is visible as text where it belongs;
* feeds: well-formed XML (RSS, Atom, OPML) and JSON; links and ids are http(s); the HTML carried
  in ``content:encoded``/``description``, Atom ``content``/``summary`` and ``content_html`` passes
  the same HTML checks once unescaped; plain-text fields keep the payload as text;
* JSON API: ``snippet`` and ``title_highlighted`` are fragments whose only elements are ``mark``;
  ``source_url`` is never a ``javascript:`` URL.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import lxml.html
import pytest
from lxml import etree
from service_helpers import ServiceProcess, build_index, running_service

from index.cleanup import clean_line

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
TITLE_CLOSE = "</title>"
CDATA_CLOSE = "]]>"
ENTITY = "&lt;script&gt;alert(2)&lt;/script&gt;"  # decoded by the readers' clean-up: becomes markup text
SVG = "<svg onload=alert(1)>"
LINK = '<a href="javascript:alert(1)">bấm</a>'
TEMPLATE = "{{ 7*7 }} {% raw %}"
PAYLOADS = [SCRIPT, IMG, JS_URL, TITLE_CLOSE, CDATA_CLOSE, ENTITY, SVG, LINK, TEMPLATE]
ALL_PAYLOADS = " ".join(PAYLOADS)
CATEGORY = f"Độc hại {SCRIPT}{IMG}"
SOURCE = f'Nguồn "{IMG}" {TITLE_CLOSE}'
QUERY = "tấn công"  # in every title and body


def records() -> list[dict]:
    body = [f"Đoạn một về tấn công {ALL_PAYLOADS} kết thúc.", f"Đoạn hai {SCRIPT} và {LINK} tấn công."]
    return [
        {"id": "xss-title", "title": f"Tấn công {SCRIPT} {IMG} {TITLE_CLOSE} {CDATA_CLOSE}", "body": body,
         "category": CATEGORY, "source": SOURCE, "published": "2021-03-01T08:00:00+07:00",
         "captions": [f"Ảnh {IMG}"], "views": 10},
        {"id": "xss-url", "title": f"Liên kết {JS_URL} tấn công", "body": body, "url": JS_URL,
         "category": CATEGORY, "source": JS_URL, "published": "2021-03-02T08:00:00+07:00"},
        {"id": "xss-url-2", "title": f"Liên kết hoa thường tấn công {ENTITY}", "body": body,
         "url": " JaVaScRiPt:alert(document.cookie)", "category": CATEGORY, "published": "2021-03-03T08:00:00+07:00"},
        {"id": "xss-url-3", "title": f"Liên kết dữ liệu tấn công {SVG}", "body": body,
         "url": "data:text/html,<script>alert(1)</script>", "category": CATEGORY,
         "published": "2021-03-04T08:00:00+07:00"},
        {"id": f'xss-id-"{IMG}', "title": f"Mã bài độc hại tấn công {TEMPLATE}", "body": body,
         "url": "https://example.vn/bai-viet?a=1&b=<x>", "category": CATEGORY, "source": SOURCE,
         "published": "2021-03-05T08:00:00+07:00"},
        {"id": "url-backslash", "title": "Gạch chéo ngược tấn công", "body": body, "url": BACKSLASH_URL,
         "category": CATEGORY, "published": "2021-03-06T08:00:00+07:00"},
        {"id": "url-no-slashes", "title": "Thiếu gạch chéo tấn công", "body": body, "url": NO_SLASHES_URL,
         "category": CATEGORY, "published": "2021-03-07T08:00:00+07:00"},
        {"id": "url-encoded", "title": "Địa chỉ cần mã hoá tấn công", "body": body, "url": RAW_URL,
         "category": CATEGORY, "published": "2021-03-08T08:00:00+07:00"},
    ]


# An article's ``url`` as every surface must link it (page "Xem bài gốc", API ``source_url``, feed
# items, embeds); None: refused, so no "original" link and feeds link our own article page.
# A browser reads both refused forms as https://evil.example/…; the kept ones become strict URIs.
BACKSLASH_URL = "https:\\\\evil.example\\x"
NO_SLASHES_URL = "https:evil.example"
RAW_URL = 'https://ví-dụ.vn/bài viết/"a"<b>?q=đá &x=<y>{z}#"top"'
LINKS: dict[str, str | None] = {
    "xss-title": None,
    "xss-url": None,
    "xss-url-2": None,
    "xss-url-3": None,
    f'xss-id-"{IMG}': "https://example.vn/bai-viet?a=1&b=%3Cx%3E",
    "url-backslash": None,
    "url-no-slashes": None,
    "url-encoded": "https://xn--v-d-rma6749a.vn/b%C3%A0i%20vi%E1%BA%BFt/%22a%22%3Cb%3E"
                   "?q=%C4%91%C3%A1%20&x=%3Cy%3E%7Bz%7D#%22top%22",
}


@pytest.fixture(scope="module")
def xss_service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("xss")
    source = tmp / "xss.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records()), encoding="utf-8")
    index_dir = tmp / "idx"
    build_index([source], index_dir)
    with running_service(index_dir, tmp / "logs") as svc:
        yield svc


@pytest.fixture(scope="module")
def http(xss_service: ServiceProcess):
    with httpx.Client(base_url=xss_service.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def slug(http: httpx.Client) -> str:
    (category,) = http.get("/api/categories").json()["categories"]
    assert category["label"] == CATEGORY.replace("  ", " ")
    return category["slug"]


# --- checks ------------------------------------------------------------------------------------

URL_ATTRIBUTES = ("href", "src", "action", "formaction", "xlink:href", "{http://www.w3.org/1999/xlink}href",
                  "data", "poster", "background", "cite", "srcset", "content")
BAD_SCHEMES = re.compile(r"^\s*(javascript|data|vbscript)\s*:", re.I)
FORBIDDEN_TAGS = {"iframe", "object", "embed", "img", "svg", "frame", "base", "form", "input", "style"}


def bad_url(value: str | None) -> bool:
    if not value:
        return False
    squeezed = re.sub(r"[\x00-\x20]", "", value)  # browsers drop tabs/newlines inside a scheme
    return bool(BAD_SCHEMES.match(squeezed))


def check_html_tree(root: lxml.html.HtmlElement, where: str, *, page: bool) -> None:
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        tag = el.tag.lower().rsplit("}", 1)[-1]
        if tag == "script" and page and el.get("type") == "application/ld+json" and not el.get("src"):
            # An article's NewsArticle data block (searchsvc/share.py): never run, and written so
            # that no HTML parser can read markup in it.
            assert not re.search(r"[<>&]", el.text or ""), f"{where}: markup in the JSON-LD {el.text[:200]!r}"
            json.loads(el.text or "")
        elif tag == "script":
            assert page and (el.get("src") or "").startswith("/static/") and not (el.text or "").strip(), \
                f"{where}: script element {lxml.html.tostring(el)[:200]!r}"
        if tag in FORBIDDEN_TAGS:
            allowed = page and tag in ("svg", "form", "input")  # the timeline SVG, the search/date forms
            assert allowed, f"{where}: <{tag}> {lxml.html.tostring(el)[:200]!r}"
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), f"{where}: event handler {name}={value!r} on <{tag}>"
            if name.lower() in URL_ATTRIBUTES or name.lower().endswith("href"):
                assert not bad_url(value), f"{where}: {name}={value!r} on <{tag}>"
            assert "javascript:" not in value.lower().replace(" ", "") or name in ("title", "value", "content",
                                                                                    "aria-label", "alt"), \
                f"{where}: {name}={value!r}"


def check_page(http: httpx.Client, path: str, must_show: list[str] = (),  # type: ignore[assignment]
               headers: dict[str, str] | None = None) -> lxml.html.HtmlElement:
    response = http.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    root = lxml.html.fromstring(response.content)
    check_html_tree(root, path, page=True)
    # "</title>" in a title did not close the head's <title> early (the timeline SVG has its own <title>s)
    assert len(root.xpath("/html/head")) == 1 and len(root.xpath("/html/head/title")) == 1, path
    assert root.xpath("/html/head/link[@rel='stylesheet']"), path
    text = root.text_content()
    for shown in must_show:
        assert shown in text, f"{path}: {shown!r} not shown as text"
    return root


def check_fragment(html: str, where: str, allowed: set[str] = frozenset()) -> str:
    """Parse an HTML fragment (feed content, API snippet); returns its text."""
    if not html.strip():
        return ""
    container = lxml.html.fragment_fromstring(html, create_parent="div")
    check_html_tree(container, where, page=False)
    tags = {el.tag for el in container.iter() if isinstance(el.tag, str)} - {"div"}
    assert tags <= (allowed | {"p", "br", "em", "mark"}), f"{where}: elements {tags}"
    return container.text_content()


def check_plain(text: str | None, where: str) -> None:
    """A plain-text field may contain the payload, as text: it is data, not markup."""
    assert text is None or isinstance(text, str), where


def xml(response: httpx.Response) -> etree._Element:
    assert response.status_code == 200, (response.request.url, response.text[:300])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(response.content, parser)


def check_feed_links(root: etree._Element, where: str) -> list[str]:
    links = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        local = etree.QName(el).localname
        for name, value in el.attrib.items():
            if etree.QName(name).localname in ("href", "url", "xmlUrl", "htmlUrl", "src", "domain"):
                assert not bad_url(value) and value.startswith(("http://", "https://")), (where, name, value)
                links.append(value)
        if local in ("link", "guid", "id", "comments", "docs") and el.text and el.text.strip():
            value = el.text.strip()
            assert not bad_url(value), (where, local, value)
            if local == "link":
                assert value.startswith(("http://", "https://")), (where, value)
                links.append(value)
    return links


# --- pages -------------------------------------------------------------------------------------


def test_pages(http: httpx.Client, slug: str) -> None:
    check_page(http, "/", [SCRIPT])
    check_page(http, f"/c/{slug}", [SCRIPT, CATEGORY.replace("  ", " ")])
    search = check_page(http, "/search?" + httpx.QueryParams({"q": QUERY}).__str__(), [SCRIPT])
    assert search.xpath("//mark"), "no highlighting at all"
    for payload in PAYLOADS:  # the query itself is reflected in the page: the box, the title, the notes
        check_page(http, "/search?" + str(httpx.QueryParams({"q": payload})))
        check_page(http, "/?" + str(httpx.QueryParams({"q": payload, "category": payload, "source": payload})))
    for record in records():
        page = check_page(http, "/articles/" + quote(record["id"], safe=""), [record["title"].split(" tấn")[0]])
        text = page.text_content()
        assert SCRIPT in text and IMG in text, record["id"]
        original = page.xpath("//a[normalize-space()='Xem bài gốc']/@href")
        expected = LINKS[record["id"]]
        assert original == ([expected] if expected else []), (record["id"], original)  # never javascript:
    check_page(http, "/feeds")


def test_error_pages_reflect_safely(http: httpx.Client) -> None:
    for path in (f"/articles/{quote(SCRIPT, safe='')}", f"/c/{quote(IMG, safe='')}", "/search?sort=" + quote(IMG),
                 "/search?from=" + quote(SCRIPT), "/nope/" + quote(LINK, safe="")):
        response = http.get(path)
        assert 400 <= response.status_code < 500
        check_html_tree(lxml.html.fromstring(response.content), path, page=True)


# --- API -----------------------------------------------------------------------------------------


def test_api_snippets_and_highlights(http: httpx.Client) -> None:
    data = http.get("/api/search", params={"q": QUERY, "per_page": 50}).json()
    assert data["total"] == len(records())
    for hit in data["hits"]:
        snippet_text = check_fragment(hit["snippet"], f"snippet {hit['id']}", {"mark"})
        title_text = check_fragment(hit["title_highlighted"], f"title {hit['id']}", {"mark"})
        assert title_text == hit["title"]  # escaped, not altered
        assert snippet_text.strip()
        assert hit["url"].startswith("http://127.0.0.1:")
    # query terms that are themselves markup
    for payload in PAYLOADS:
        for hit in http.get("/api/search", params={"q": payload}).json()["hits"]:
            check_fragment(hit["snippet"], f"snippet for {payload!r}", {"mark"})
            check_fragment(hit["title_highlighted"], f"title for {payload!r}", {"mark"})
    suggestions = http.get("/api/suggest", params={"q": "tấn"}).json()["suggestions"]
    assert all(isinstance(s, str) for s in suggestions)


def test_api_articles_never_carry_script_urls(http: httpx.Client) -> None:
    for record in records():
        article = http.get("/api/articles/" + quote(record["id"], safe="")).json()
        assert article["title"] == clean_line(record["title"])  # entities decoded by the reader, then escaped
        assert not bad_url(article["source_url"]), article["source_url"]
        assert article["url"].startswith("http://127.0.0.1:")
        assert article["source_url"] == LINKS[record["id"]], record["id"]


def test_api_responses_are_not_html(http: httpx.Client) -> None:
    response = http.get("/api/search", params={"q": SCRIPT})
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]


# --- article URLs: one sanitiser for every surface ---------------------------------------------------


def test_article_urls_are_the_same_safe_link_on_every_surface(http: httpx.Client, xss_service: ServiceProcess,
                                                              slug: str) -> None:
    """Each record's ``url`` is linked as ``LINKS`` says on the article page, in the API, in every
    feed format and in the embed: refused forms nowhere (feeds fall back to our page), kept ones
    percent-encoded the same way (no raw ``"<>``, space or non-ASCII in any link)."""
    ours = {r["id"]: f"{xss_service.url}/articles/{quote(r['id'], safe='')}" for r in records()}

    def feed_link(record_id: str) -> str:
        return LINKS[record_id] or ours[record_id]

    def by_guid(pairs: list[tuple[str, str]]) -> dict[str, str]:
        out = {}
        for guid, link in pairs:
            (record_id,) = [r["id"] for r in records() if guid.endswith(":articles/" + quote(r["id"], safe=""))]
            out[record_id] = link
        return out

    for record in records():
        page = check_page(http, "/articles/" + quote(record["id"], safe=""))
        expected = LINKS[record["id"]]
        assert page.xpath("//a[normalize-space()='Xem bài gốc']/@href") == ([expected] if expected else [])
        article = http.get("/api/articles/" + quote(record["id"], safe="")).json()
        assert article["source_url"] == expected, record["id"]
    want = {r["id"]: feed_link(r["id"]) for r in records()}
    rss = xml(http.get(f"/feeds/{slug}.rss"))
    assert by_guid([(i.findtext("guid"), i.findtext("link")) for i in rss.iter("item")]) == want
    atom_ns = "{http://www.w3.org/2005/Atom}"
    atom = xml(http.get(f"/feeds/{slug}.atom"))
    assert by_guid([(e.findtext(atom_ns + "id"), e.find(atom_ns + "link[@rel='alternate']").get("href"))
                    for e in atom.iter(atom_ns + "entry")]) == want
    items = http.get(f"/feeds/{slug}.json").json()["items"]
    assert by_guid([(i["id"], i["url"]) for i in items]) == want
    embed = lxml.html.fromstring(http.get(f"/embed/{slug}?limit=50").content)
    titles = {clean_line(r["title"]): r["id"] for r in records()}
    embedded = {titles[" ".join(a.text_content().split())]: a.get("href") for a in embed.xpath("//li/a[@href]")}
    assert embedded == want
    for link in want.values():
        assert re.fullmatch(r"[\x21-\x7e]+", link) and not re.search(r'["<>\\{}|^`]', link), link


@pytest.mark.parametrize(("url", "expected"), [
    (BACKSLASH_URL, None),  # a browser goes to https://evil.example/x
    (NO_SLASHES_URL, None),  # a browser goes to https://evil.example/
    ("https:/evil.example/x", None),
    ("https:///evil.example", None),
    ("//evil.example/x", None),
    ("https://good.example\\@evil.example/", None),
    ("https://good.example@evil.example/", None),  # user-info: shown as good.example, goes to evil
    ("java\nscript:alert(1)", None),
    ("https://x.vn/a\tb", None),
    ("https://x.vn/\u2028", None),
    ("https://a b.vn/x", None),
    ("https://[zz]/", None),
    ("ftp://x.vn/a", None),
    ("https://x.vn/" + "a" * 3000, None),
    ("https://x.vn/\ud800", None),
    ("https://example.vn/a?b=<x>", "https://example.vn/a?b=%3Cx%3E"),
    (RAW_URL, LINKS["url-encoded"]),
    ("HTTPS://Báo.VN:8443/%41%zz/ä#a#b", "https://xn--bo-mia.vn:8443/%41%25zz/%C3%A4#a%23b"),
    (" https://x.vn/đ?q=a b \n", "https://x.vn/%C4%91?q=a%20b"),
    ("https://x.vn/\u0111\u0300", "https://x.vn/%C4%91%CC%80"),
    ("https://e\u0301.vn/", "https://xn--9ca.vn/"),  # NFC first: é, one code point
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("https://x.vn", "https://x.vn"),
])
def test_web_url(url: str, expected: str | None) -> None:
    from index.urls import web_url

    assert web_url(url) == expected
    if expected is not None:
        assert web_url(expected) == expected  # idempotent: a clean URL is kept as it is


# --- feeds ---------------------------------------------------------------------------------------


def feed_paths(slug: str) -> list[str]:
    q = str(httpx.QueryParams({"q": QUERY}))
    return [f"/feeds/{name}.{{fmt}}" for name in ("all", slug)] + [f"/feeds/search.{{fmt}}?{q}"]


def test_rss(http: httpx.Client, slug: str) -> None:
    for template in feed_paths(slug):
        path = template.format(fmt="rss")
        root = xml(http.get(path))
        check_feed_links(root, path)
        items = root.findall("./channel/item")
        assert len(items) == len(records()), path
        for item in items:
            for name in ("description", "{http://purl.org/rss/1.0/modules/content/}encoded"):
                el = item.find(name)
                assert el is not None, (path, name)
                text = check_fragment(el.text or "", f"{path} {name}")
                assert SCRIPT in text or "tấn công" in text, (path, name)
            check_plain(item.findtext("title"), path)
            assert item.findtext("link").startswith(("http://", "https://"))
        assert JS_URL not in [i.findtext("link") for i in items]


def test_atom(http: httpx.Client, slug: str) -> None:
    atom = "{http://www.w3.org/2005/Atom}"
    for template in feed_paths(slug):
        path = template.format(fmt="atom")
        root = xml(http.get(path))
        check_feed_links(root, path)
        entries = root.findall(f"{atom}entry")
        assert len(entries) == len(records()), path
        for entry in entries:
            for name in ("content", "summary", "title"):
                el = entry.find(atom + name)
                if el is None:
                    continue
                if el.get("type") in ("html", "xhtml"):
                    check_fragment(el.text or "" if el.get("type") == "html" else etree.tostring(el, encoding=str),
                                   f"{path} {name}")
                else:
                    check_plain(el.text, path)
            content = entry.find(atom + "content")
            assert content is not None and SCRIPT in check_fragment(content.text or "", path)


def test_json_feed(http: httpx.Client, slug: str) -> None:
    for template in feed_paths(slug):
        path = template.format(fmt="json")
        response = http.get(path)
        assert response.status_code == 200
        assert b"<" not in response.content and b">" not in response.content  # inert if sniffed as HTML
        feed = response.json()
        for key in ("home_page_url", "feed_url", "next_url"):
            if key in feed:
                assert feed[key].startswith(("http://", "https://")) and not bad_url(feed[key])
        assert len(feed["items"]) == len(records())
        for item in feed["items"]:
            assert item["url"].startswith(("http://", "https://")) and not bad_url(item["url"]), item["url"]
            assert "external_url" not in item or not bad_url(item["external_url"])
            assert SCRIPT in check_fragment(item["content_html"], f"{path} content_html")
            check_plain(item["summary"], path)
            check_plain(item["title"], path)


def test_opml(http: httpx.Client) -> None:
    root = xml(http.get("/feeds.opml"))
    links = check_feed_links(root, "/feeds.opml")
    assert links and all(link.startswith("http://127.0.0.1:") for link in links)


BROWSER_TAB = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_feed_pages(http: httpx.Client, slug: str) -> None:
    """The page a browser tab gets at a feed URL shows titles as text and links our article pages;
    a search feed's page reflects the query (title, address field, reader links) safely."""
    for fmt in ("rss", "atom", "json"):
        root = check_page(http, f"/feeds/{slug}.{fmt}", [SCRIPT, IMG], headers=BROWSER_TAB)
        hrefs = root.xpath("//ol[@class='article-list']/li/h3/a/@href")
        assert len(hrefs) == len(records()) and all(h.startswith("/articles/") for h in hrefs), hrefs
    for payload in PAYLOADS:
        path = "/feeds/search.atom?" + str(httpx.QueryParams({"q": payload}))
        root = check_page(http, path, [payload], headers=BROWSER_TAB)
        assert root.xpath("//input[@id='feed-url']/@value")[0].startswith("http://127.0.0.1:"), path


def links_in_html(html: str, fragment: bool = False) -> list[str]:
    if not html.strip():
        return []
    root = lxml.html.fragment_fromstring(html, create_parent="div") if fragment else lxml.html.fromstring(html)
    return [v for el in root.iter() if isinstance(el.tag, str) for k, v in el.attrib.items()
            if k.lower() in URL_ATTRIBUTES or k.lower().endswith("href")]


def links_in_json(value: object) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key.endswith("url") or key in ("href", "link")):
                out.append(item)
            elif isinstance(item, str) and key in ("content_html", "snippet", "title_highlighted"):
                out += links_in_html(item, fragment=True)
            else:
                out += links_in_json(item)
    elif isinstance(value, list):
        for item in value:
            out += links_in_json(item)
    return out


HTML_IN_XML = {"description", "encoded", "content", "summary"}


def links_in_xml(body: bytes, where: str) -> list[str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(body, parser)
    out = check_feed_links(root, where)
    for el in root.iter():
        if not isinstance(el.tag, str) or etree.QName(el).localname not in HTML_IN_XML:
            continue
        # RSS description/content:encoded are HTML by convention; Atom text constructs are plain
        # text unless type="html" (RFC 4287 3.1), and readers show them as text
        atom = etree.QName(el).namespace == "http://www.w3.org/2005/Atom"
        if el.get("type", "text" if atom else "html") == "html":
            out += links_in_html(el.text or "", fragment=True)
    return out


def test_javascript_url_never_a_link_anywhere(http: httpx.Client, slug: str) -> None:
    """Every link value of every output, parsed per format (HTML attributes, feed links, the HTML
    inside feeds, JSON url fields): none is javascript:, data: or vbscript:."""
    paths = ["/", f"/c/{slug}", "/search?q=t%E1%BA%A5n+c%C3%B4ng", "/feeds", f"/embed/{slug}", "/embed/all",
             "/embed/search?q=t%E1%BA%A5n+c%C3%B4ng", "/feeds.opml", "/api/search?q=t%E1%BA%A5n+c%C3%B4ng",
             "/api/categories"]
    paths += [t.format(fmt=f) for t in feed_paths(slug) for f in ("rss", "atom", "json")]
    paths += ["/articles/" + quote(r["id"], safe="") for r in records()]
    paths += ["/api/articles/" + quote(r["id"], safe="") for r in records()]
    seen = 0
    for path in paths:
        response = http.get(path)
        assert response.status_code == 200, path
        kind = response.headers["content-type"]
        if "html" in kind:
            links = links_in_html(response.text)
        elif "json" in kind:
            links = links_in_json(response.json())
        else:
            links = links_in_xml(response.content, path)
        bad = [link for link in links if bad_url(link)]
        assert not bad, (path, bad)
        seen += len(links)
    assert seen > 100


# --- embeds --------------------------------------------------------------------------------------


def test_embeds(http: httpx.Client, slug: str) -> None:
    for path in (f"/embed/{slug}", "/embed/all", "/embed/search?" + str(httpx.QueryParams({"q": QUERY})),
                 "/embed/search?" + str(httpx.QueryParams({"q": SCRIPT})),
                 f"/embed/{slug}?theme=dark&limit=50"):
        response = http.get(path)
        assert response.status_code == 200, path
        root = lxml.html.fromstring(response.content)
        check_html_tree(root, path, page=False)
        assert not root.xpath("//script"), path  # the iframe list has no script at all
        for a in root.xpath("//a[@href]"):
            assert a.get("href").startswith(("http://", "https://")), (path, a.get("href"))
            assert a.get("rel") == "noopener"
    text = lxml.html.fromstring(http.get(f"/embed/{slug}").content).text_content()
    assert SCRIPT in text


def test_no_unhandled_errors(xss_service: ServiceProcess) -> None:
    log = xss_service.log()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
