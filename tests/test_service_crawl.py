"""Browsers and crawlers find the archive (issue 15, part 3), end to end on a real server: robots.txt,
the sitemap index and the per-month sitemaps (split into parts, here with a lowered bound), the
OpenSearch description and its suggestions, and the share metadata of article pages, with titles
written to break out of the JSON-LD script.

The index is built by the CLI from JSON Lines: months with a few articles each (ties included),
articles with hostile titles, and one whose id is so long that its URL may not be in a sitemap.
The server lists at most ``PER_FILE`` URLs per sitemap file (``SEARCHSVC_SITEMAP_URLS``), so a
month of five articles takes three files, as one of 50,000 would take more than one.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import time
import urllib.robotparser
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from lxml import etree
from lxml import html as lxml_html
from service_helpers import build_index, chromium, require_chromium, run_cli, running_service

import feeds
from feeds import sitemap
from index.api import month_of
from index.article import VN_TZ

PER_FILE = 2
SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
OS = "{http://a9.com/-/spec/opensearch/1.1/}"
HOSTILE_TITLES = {
    "hostile-script": "</script><script>alert(1)</script> Tiêu đề",
    "hostile-comment": "Bình luận <!-- mở chú thích <script> trong tiêu đề",
    "hostile-quotes": "Trích dẫn \"kép\" và 'đơn' & </SCRIPT > <b>đậm</b>",
    "hostile-separators": "Dòng\u2028tách\u2029đoạn và \\u003c gạch chéo ngược",
}
LONG_ID = "bai-dai-" + "ệ" * 500  # a legal id whose page URL is longer than a sitemap loc may be


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


def records() -> list[dict]:
    rows = []
    march = [
        vn(2005, 3, 1, 0, 0),
        vn(2005, 3, 9, 8, 0),
        vn(2005, 3, 9, 8, 0),
        vn(2005, 3, 20, 12, 0),
        vn(2005, 3, 31, 23, 59, 59),
    ]
    for i, when in enumerate(march):
        rows.append(
            {
                "id": f"mar-{i}",
                "title": f"Tin tháng ba số {i}",
                "category": "Thời sự",
                "body": f"Đoạn mở đầu của tin tháng ba số {i}.\n\nĐoạn thứ hai.",
                "published": when.isoformat(),
                "source": "VnExpress",
            }
        )
    for i, when in enumerate([vn(2005, 4, 1, 0, 0), vn(2005, 4, 2, 7, 0)]):
        rows.append(
            {
                "id": f"apr-{i}",
                "title": f"Tin tháng tư số {i}",
                "category": "Thể thao",
                "body": f"Bóng đá tháng tư số {i}.",
                "published": when.isoformat(),
            }
        )
    rows.append(
        {
            "id": "dec-0",
            "title": "Tin cuối năm",
            "category": "Kinh tế",
            "body": "Giá vàng cuối năm.",
            "published": vn(2004, 12, 31, 23, 59, 59).isoformat(),
            "url": "https://example.org/goc?a=1&b=2",
        }
    )
    for n, (article_id, title) in enumerate(HOSTILE_TITLES.items()):
        rows.append(
            {
                "id": article_id,
                "title": title,
                "category": "Văn hóa",
                "body": f"Nội dung {title} ở đoạn đầu.\n\nĐoạn sau.",
                "source": "Báo </script> & <!--",
                "published": vn(2006, 1, 10 + n, 9, 0).isoformat(),
            }
        )
    rows.append(
        {
            "id": LONG_ID,
            "title": "Bài có mã rất dài",
            "category": "Văn hóa",
            "body": "Mã bài rất dài.",
            "published": vn(2006, 1, 20, 9, 0).isoformat(),
        }
    )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def crawl_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("crawl")
    index_dir = tmp / "idx"
    build_index([write_jsonl(tmp / "articles.jsonl", records())], index_dir)
    return index_dir


ENV = {"SEARCHSVC_SITEMAP_URLS": str(PER_FILE), "SEARCHSVC_ACCESS_LOG": "0"}


@pytest.fixture(scope="module")
def csvc(crawl_index: Path, tmp_path_factory: pytest.TempPathFactory):
    with running_service(crawl_index, tmp_path_factory.mktemp("crawl-logs"), env=ENV) as svc:
        yield svc


@pytest.fixture
def client(csvc) -> httpx.Client:
    with httpx.Client(base_url=csvc.url, timeout=30.0) as c:
        yield c


def get_ok(client: httpx.Client, path: str, **kwargs) -> httpx.Response:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response


def sitemap_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(feeds.SITEMAP_RNG_PATH)))


def parse_valid(response: httpx.Response) -> etree._Element:
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    root = etree.fromstring(response.content)
    schema = sitemap_schema()
    assert schema.validate(root), schema.error_log
    return root


def months_model() -> dict[str, list[dict]]:
    """Month -> its articles, oldest first, ties by id (the sitemap's order)."""
    by_month: dict[str, list[dict]] = {}
    for row in sorted(records(), key=lambda r: (datetime.fromisoformat(r["published"]), r["id"])):
        by_month.setdefault(month_of(datetime.fromisoformat(row["published"])), []).append(row)
    return by_month


def month_paths(month: str, count: int) -> list[str]:
    return [
        f"/sitemaps/{month}.xml" if part == 1 else f"/sitemaps/{month}-{part}.xml"
        for part in range(1, math.ceil(count / PER_FILE) + 1)
    ]


# --- robots.txt -------------------------------------------------------------------------------------


def test_robots_keeps_crawlers_off_searches_and_names_the_sitemap(client: httpx.Client, csvc) -> None:
    response = get_ok(client, "/robots.txt")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/robots.txt", headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(response.text.splitlines())
    base = csvc.url
    for path in (
        "/search?q=b%C3%B3ng+%C4%91%C3%A1",
        "/search",
        "/?q=x",
        "/api/search?q=x",
        "/api/admin/status",
        "/feeds/search.atom?q=x",
        "/embed/the-thao",
        "/metrics",
    ):
        assert not robots.can_fetch("Googlebot", base + path), path
    for path in (
        "/",
        "/articles/mar-0",
        "/c/thoi-su",
        "/c/thoi-su?page=2",
        "/feeds/all.atom",
        "/feeds",
        "/sitemap.xml",
        "/sitemaps/2005-03.xml",
        "/opensearch.xml",
        "/static/style.css",
    ):
        assert robots.can_fetch("Googlebot", base + path), path
    assert robots.site_maps() == [base + "/sitemap.xml"]


# --- sitemaps ---------------------------------------------------------------------------------------


def test_index_names_every_month_in_parts(client: httpx.Client, csvc) -> None:
    response = get_ok(client, "/sitemap.xml")
    root = parse_valid(response)
    assert root.tag == SM + "sitemapindex"
    locs = [loc.text for loc in root.iter(SM + "loc")]
    want = [csvc.url + path for month, rows in sorted(months_model().items()) for path in month_paths(month, len(rows))]
    assert locs == want
    assert "/sitemaps/2005-03-3.xml" in "".join(locs)  # five articles, two a file


def test_month_files_list_each_article_once_with_its_date(client: httpx.Client, csvc) -> None:
    for month, rows in months_model().items():
        listed: list[tuple[str, str]] = []
        for path in month_paths(month, len(rows)):
            root = parse_valid(get_ok(client, path))
            urls = root.findall(SM + "url")
            assert 1 <= len(urls) <= PER_FILE
            listed += [(u.findtext(SM + "loc"), u.findtext(SM + "lastmod")) for u in urls]
        listed = [row for row in listed if row != (csvc.url + "/", None)]  # see the next test
        want = [
            (
                f"{csvc.url}/articles/{quote(r['id'], safe='')}",
                datetime.fromisoformat(r["published"]).isoformat(timespec="seconds"),
            )
            for r in rows
            if r["id"] != LONG_ID
        ]
        assert listed == want, month
    for loc, _ in listed[:3]:
        assert get_ok(client, urlsplit(loc).path).headers["content-type"].startswith("text/html")


def test_a_url_too_long_for_a_sitemap_is_left_out(client: httpx.Client, csvc) -> None:
    loc = f"{csvc.url}/articles/{quote(LONG_ID, safe='')}"
    assert len(loc) >= 2048 and not sitemap.loc_fits(loc)
    get_ok(client, urlsplit(loc).path)  # the page itself is there
    paths = month_paths("2006-01", len(months_model()["2006-01"]))
    text = "".join(get_ok(client, path).text for path in paths)
    assert "bai-dai-" not in text and text.count("<url>") == len(HOSTILE_TITLES) + 1
    # the long id was alone in its part: the file is still a valid sitemap, of the home page
    last = parse_valid(get_ok(client, paths[-1]))
    assert [(u.findtext(SM + "loc"), u.findtext(SM + "lastmod")) for u in last.iter(SM + "url")] == [
        (csvc.url + "/", None)
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/sitemaps/2005-13.xml",
        "/sitemaps/2005-00.xml",
        "/sitemaps/2005-03-1.xml",
        "/sitemaps/2005-03-4.xml",
        "/sitemaps/2005-03-0.xml",
        "/sitemaps/1800-01.xml",
        "/sitemaps/2010-01.xml",
        "/sitemaps/x.xml",
        "/sitemaps/2005-3.xml",
        "/sitemaps/2005-03-01.xml",
        "/sitemaps/2005-03.xml.gz",
        "/sitemaps/" + "9" * 300 + ".xml",
    ],
)
def test_names_no_index_lists_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_sitemaps_revalidate_compress_and_say_when_they_changed(client: httpx.Client) -> None:
    path = "/sitemaps/2005-03.xml"
    plain = get_ok(client, path, headers={"Accept-Encoding": "identity"})
    assert plain.headers["last-modified"] == "Wed, 09 Mar 2005 01:00:00 GMT"  # its newest article
    assert "access-control-allow-origin" in plain.headers
    for etag in (plain.headers["etag"],):
        assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    raw = client.get(path, headers={"Accept-Encoding": "gzip"})
    body = b"".join(raw.iter_raw()) if False else raw.content  # httpx decodes gzip: compare the decoded bytes
    assert raw.headers.get("content-encoding") == "gzip" or len(plain.content) < 500
    assert body == plain.content
    again = get_ok(client, path, headers={"Accept-Encoding": "identity"})
    assert again.content == plain.content and again.headers["etag"] == plain.headers["etag"]


def feed_renders(client: httpx.Client) -> float:
    match = re.search(r"^searchsvc_feed_renders_total (\S+)$", get_ok(client, "/metrics").text, re.M)
    assert match
    return float(match.group(1))


def test_a_commit_renders_again_only_the_months_it_touched(crawl_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(crawl_index, index_dir)
    with (
        running_service(index_dir, tmp_path / "logs", env=ENV) as svc,
        httpx.Client(base_url=svc.url, timeout=30.0) as http,
    ):
        march, april = get_ok(http, "/sitemaps/2005-03.xml"), get_ok(http, "/sitemaps/2005-04.xml")
        index_before = get_ok(http, "/sitemap.xml")
        generation = get_ok(http, "/readyz").json()["generation"]
        late = {
            "id": "apr-late",
            "title": "Tin tháng tư đăng muộn",
            "category": "Thể thao",
            "body": "Bài đăng bổ sung vào kho.",
            "published": vn(2005, 4, 3, 9, 0).isoformat(),
        }
        run_cli("index", str(write_jsonl(tmp_path / "late.jsonl", [late])), "--index-dir", str(index_dir), "--quiet")
        deadline = time.monotonic() + 20
        while get_ok(http, "/readyz").json()["generation"] == generation:
            assert time.monotonic() < deadline, "the server did not see the new generation"
            time.sleep(0.1)
        renders = feed_renders(http)
        # March shows nothing the commit changed: revalidated, and served without a render
        assert http.get("/sitemaps/2005-03.xml", headers={"If-None-Match": march.headers["etag"]}).status_code == 304
        assert get_ok(http, "/sitemaps/2005-03.xml").content == march.content
        assert feed_renders(http) == renders
        # April does: rendered again, with the late article in its second part
        # (rendered again; its first part still holds the first two articles, so it revalidates)
        assert http.get("/sitemaps/2005-04.xml", headers={"If-None-Match": april.headers["etag"]}).status_code == 304
        second = parse_valid(get_ok(http, "/sitemaps/2005-04-2.xml"))
        assert [u.findtext(SM + "loc") for u in second.iter(SM + "url")] == [svc.url + "/articles/apr-late"]
        assert feed_renders(http) > renders
        index_after = parse_valid(get_ok(http, "/sitemap.xml", headers={"If-None-Match": index_before.headers["etag"]}))
        assert svc.url + "/sitemaps/2005-04-2.xml" in [loc.text for loc in index_after.iter(SM + "loc")]


def test_the_bound_holds_for_the_longest_urls() -> None:
    """A file of ``URLS_PER_FILE`` entries, every loc at the longest a sitemap allows, stays under
    50 MB; one entry more or a loc one byte longer is refused."""
    base = "https://tin.example.vn/articles/"
    loc = base + "a" * (sitemap.MAX_LOC_BYTES - len(base))
    assert sitemap.loc_fits(loc) and not sitemap.loc_fits(loc + "a")
    entries = [(loc, vn(2005, 3, 1, 8, 0))] * sitemap.URLS_PER_FILE
    body = sitemap.render_urlset(entries)
    assert len(body) <= sitemap.MAX_BYTES and sitemap.URLS_PER_FILE <= sitemap.MAX_URLS
    with pytest.raises(ValueError):
        sitemap.render_urlset([*entries, entries[0]])
    with pytest.raises(ValueError):
        sitemap.render_urlset([(loc + "a", None)])


# --- OpenSearch -------------------------------------------------------------------------------------


def test_opensearch_description_and_every_template(client: httpx.Client, csvc) -> None:
    response = get_ok(client, "/opensearch.xml")
    assert response.headers["content-type"] == "application/opensearchdescription+xml; charset=utf-8"
    root = etree.fromstring(response.content)
    assert root.tag == OS + "OpenSearchDescription"
    short = root.findtext(OS + "ShortName")
    assert short and len(short) <= 16
    assert root.findtext(OS + "InputEncoding") == "UTF-8" and root.findtext(OS + "Language") == "vi"
    urls = {(u.get("type"), u.get("rel") or "results"): u.get("template") for u in root.findall(OS + "Url")}
    want = {
        ("text/html", "results"): "text/html; charset=utf-8",
        ("application/atom+xml", "results"): "application/atom+xml; charset=utf-8",
        ("application/rss+xml", "results"): "application/rss+xml; charset=utf-8",
        ("application/x-suggestions+json", "suggestions"): "application/x-suggestions+json",
        ("application/opensearchdescription+xml", "self"): "application/opensearchdescription+xml; charset=utf-8",
    }
    assert set(urls) == set(want)
    for key, template in urls.items():
        assert template.startswith(csvc.url + "/")
        url = template.replace("{searchTerms}", quote("tháng tư"))
        assert "{" not in url, url
        answer = get_ok(client, url)
        assert answer.headers["content-type"] == want[key], key
    suggestions = get_ok(
        client, urls[("application/x-suggestions+json", "suggestions")].replace("{searchTerms}", quote("tin th"))
    ).json()
    assert suggestions[0] == "tin th" and isinstance(suggestions[1], list) and suggestions[1]
    assert all(isinstance(s, str) for s in suggestions[1])
    image = root.findtext(OS + "Image")
    assert image and get_ok(client, image).headers["content-type"].startswith("image/svg+xml")
    assert client.get("/opensearch.xml", headers={"If-None-Match": response.headers["etag"]}).status_code == 304


def test_suggest_formats(client: httpx.Client) -> None:
    plain = get_ok(client, "/api/suggest", params={"q": "tin th"})
    assert plain.headers["content-type"] == "application/json"
    assert set(plain.json()) == {"query", "suggestions"}  # the API as before
    opensearch = get_ok(client, "/api/suggest", params={"q": "tin th", "format": "opensearch", "limit": 2})
    assert opensearch.json() == [plain.json()["query"], plain.json()["suggestions"][:2]]
    assert get_ok(client, "/api/suggest", params={"q": "", "format": "opensearch"}).json() == ["", []]
    bad = client.get("/api/suggest", params={"q": "x", "format": "xml"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_parameter"


@pytest.mark.parametrize("path", ["/", "/search?q=tin", "/c/thoi-su", "/articles/mar-0", "/feeds", "/khong-co"])
def test_every_page_links_the_description(client: httpx.Client, path: str) -> None:
    page = lxml_html.fromstring(client.get(path).text)
    links = page.xpath('//head/link[@rel="search"]')
    assert len(links) == 1
    assert links[0].get("type") == "application/opensearchdescription+xml" and links[0].get("href") == "/opensearch.xml"
    assert links[0].get("title")


# --- share metadata ---------------------------------------------------------------------------------


def head_meta(page: lxml_html.HtmlElement) -> dict[str, str]:
    out = {}
    for meta in page.xpath("//head/meta[@property or @name]"):
        out[meta.get("property") or meta.get("name")] = meta.get("content")
    return out


def ld_json(page_html: str) -> list[dict]:
    page = lxml_html.fromstring(page_html)
    return [json.loads(s.text) for s in page.xpath('//script[@type="application/ld+json"]')]


def test_article_page_has_canonical_open_graph_twitter_and_news_article(client: httpx.Client, csvc) -> None:
    text = get_ok(client, "/articles/mar-1", params={"q": "tin"}).text
    page = lxml_html.fromstring(text)
    canonical = csvc.url + "/articles/mar-1"
    assert page.xpath('//head/link[@rel="canonical"]/@href') == [canonical]
    meta = head_meta(page)
    assert meta["og:type"] == "article" and meta["og:url"] == canonical
    assert meta["og:title"] == meta["twitter:title"] == "Tin tháng ba số 1"
    assert meta["og:description"] == meta["description"] == "Đoạn mở đầu của tin tháng ba số 1."
    assert meta["og:site_name"] and meta["twitter:card"] == "summary"
    assert meta["article:published_time"] == meta["article:modified_time"] == "2005-03-09T08:00:00+07:00"
    assert meta["article:section"] == "Thời sự"
    (news,) = ld_json(text)
    assert news["@context"] == "https://schema.org" and news["@type"] == "NewsArticle"
    assert news["headline"] == "Tin tháng ba số 1" and news["inLanguage"] == "vi"
    assert news["datePublished"] == news["dateModified"] == "2005-03-09T08:00:00+07:00"
    assert news["articleSection"] == "Thời sự" and news["mainEntityOfPage"]["@id"] == canonical
    assert news["author"] == {"@type": "Organization", "name": "VnExpress"}
    assert news["publisher"]["@type"] == "Organization" and news["publisher"]["name"] == meta["og:site_name"]
    (december,) = ld_json(get_ok(client, "/articles/dec-0").text)
    assert "author" not in december and december["isBasedOn"] == "https://example.org/goc?a=1&b=2"


@pytest.mark.parametrize("article_id", sorted(HOSTILE_TITLES))
def test_hostile_titles_stay_inside_the_json_ld(client: httpx.Client, article_id: str) -> None:
    title = get_ok(client, f"/api/articles/{article_id}").json()["title"]  # as the index keeps it
    text = get_ok(client, f"/articles/{article_id}").text
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S | re.I)
    assert block and not re.search(r"[<>&\u2028\u2029]", block.group(1))  # nothing HTML could read
    page = lxml_html.fromstring(text)
    scripts = page.xpath("//script")
    assert sorted(str(s.get("type")) for s in scripts) == ["None", "application/ld+json"]  # the data, autocomplete.js
    (news,) = ld_json(text)
    assert news["headline"] == title and news["author"]["name"] == "Báo </script> & <!--"
    meta = head_meta(page)
    assert meta["og:title"] == meta["twitter:title"] == title


@pytest.mark.slow
def test_chromium_reads_one_json_ld_block_and_reports_no_csp_violation(
    client: httpx.Client, csvc, tmp_path: Path
) -> None:
    require_chromium()
    for article_id in sorted(HOSTILE_TITLES):
        title = get_ok(client, f"/api/articles/{article_id}").json()["title"]
        proc = chromium(
            [
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
                "--dump-dom",
                f"{csvc.url}/articles/{quote(article_id)}",
            ],
            tmp_path / "profile",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Content Security Policy" not in proc.stderr, proc.stderr[-2000:]
        (news,) = ld_json(proc.stdout)
        assert news["headline"] == title
        assert len(lxml_html.fromstring(proc.stdout).xpath("//script")) == 2
        assert "alert(1)" not in "".join(lxml_html.fromstring(proc.stdout).xpath("//script[not(@type)]/text()"))


def test_gzip_decodes_to_the_plain_document(client: httpx.Client) -> None:
    """The compressed variant of a month file is the same document (read without httpx's decoding)."""
    plain = get_ok(client, "/sitemaps/2005-03.xml", headers={"Accept-Encoding": "identity"}).content
    with client.stream("GET", "/sitemaps/2005-03.xml", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
        encoded = response.headers.get("content-encoding")
    assert (gzip.decompress(raw) if encoded == "gzip" else raw) == plain
