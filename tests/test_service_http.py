"""End-to-end tests of the JSON API, the pages and the HTTP machinery, over real HTTP.

One server (the session ``service`` fixture) runs ``python -m searchsvc serve`` on an index that
``python -m searchsvc index`` built from the sample articles in ``service_helpers``.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import time
from datetime import datetime

import httpx
import pytest
from service_helpers import SAMPLE_ARTICLES, XSS_TITLE

TIERS = {"all", "adjacent", "syllables", "fuzzy", "partial", "none"}
HIT_KEYS = {
    "id", "title", "url", "category", "category_slug", "published", "source", "views", "snippet",
    "title_highlighted", "score",
}  # fmt: skip


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


def search(http: httpx.Client, **params: object) -> dict:
    response = http.get("/api/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- operations -----------------------------------------------------------------------------------


def test_healthz_and_readyz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["articles"] == len(SAMPLE_ARTICLES)
    assert isinstance(body["generation"], str) and body["generation"]
    assert ready.headers["cache-control"] == "no-store"


# --- JSON API -------------------------------------------------------------------------------------


def test_search_shape(http: httpx.Client, service) -> None:
    body = search(http, q="bóng đá")
    assert set(body) >= {"query", "total", "page", "per_page", "tier", "hits", "facets", "suggestion", "notes"}
    assert body["query"] == "bóng đá" and body["page"] == 1 and body["per_page"] == 10
    assert body["tier"] in TIERS and body["total"] >= 2
    assert isinstance(body["notes"], list)
    for hit in body["hits"]:
        assert set(hit) >= HIT_KEYS
        assert hit["url"].startswith(service.url + "/articles/")
        datetime.fromisoformat(hit["published"])
    marked = [h for h in body["hits"] if "<mark>" in h["snippet"] or "<mark>" in h["title_highlighted"]]
    assert marked, "no highlight in any hit"
    assert set(body["facets"]) >= {"category", "year", "month"}
    for values in body["facets"].values():
        for value in values:
            assert set(value) == {"value", "slug", "count"} and value["count"] > 0
    assert {"Thể thao"} <= {v["value"] for v in body["facets"]["category"]}


def test_search_accentless_query_finds_accented_text(http: httpx.Client) -> None:
    titles = [h["title"] for h in search(http, q="dak nong")["hits"]]
    assert any("Đắk Nông" in t for t in titles)


def test_empty_query_lists_newest_first(http: httpx.Client) -> None:
    body = search(http, q="", per_page=100)
    assert body["total"] == len(SAMPLE_ARTICLES)
    dates = [h["published"] for h in body["hits"]]
    assert dates == sorted(dates, reverse=True)
    only = search(http, category="giao-duc")
    assert only["total"] == 2 and {h["category_slug"] for h in only["hits"]} == {"giao-duc"}


def test_filters_and_sorts(http: httpx.Client) -> None:
    both = search(http, category=["the-thao", "kinh-te"], per_page=50)
    assert {h["category_slug"] for h in both["hits"]} == {"the-thao", "kinh-te"}
    assert both["total"] == 6
    in_2014 = search(http, **{"from": "2014-01-01", "to": "2014-12-31"}, per_page=50)
    assert in_2014["total"] == 4 and all(h["published"].startswith("2014") for h in in_2014["hits"])
    oldest = search(http, sort="oldest", per_page=50)["hits"]
    assert [h["published"] for h in oldest] == sorted(h["published"] for h in oldest)
    views = [h["views"] for h in search(http, sort="views", per_page=50)["hits"]]
    assert views == sorted(views, reverse=True)
    page2 = search(http, q="", per_page=5, page=2)
    assert page2["page"] == 2 and len(page2["hits"]) == 5


def test_suggest(http: httpx.Client) -> None:
    body = http.get("/api/suggest", params={"q": "dak n"}).json()
    assert body["query"] == "dak n"
    assert body["suggestions"], body
    assert any("đắk nông" in s.lower() for s in body["suggestions"]), body
    assert http.get("/api/suggest", params={"q": ""}).json() == {"query": "", "suggestions": []}
    assert len(http.get("/api/suggest", params={"q": "d", "limit": 2}).json()["suggestions"]) <= 2


def test_article_and_categories(http: httpx.Client, service) -> None:
    hit = search(http, q="cồng chiêng")["hits"][0]
    article = http.get(f"/api/articles/{hit['id']}").json()
    assert article["id"] == hit["id"] and article["title"] == hit["title"]
    assert article["url"] == hit["url"] == f"{service.url}/articles/{hit['id']}"
    assert set(article) >= {"paragraphs", "category", "category_slug", "published", "captions", "views"}
    assert "body" not in article  # the body is sent once, as paragraphs
    assert article["paragraphs"] and all(isinstance(p, str) and p for p in article["paragraphs"])
    categories = http.get("/api/categories").json()["categories"]
    assert sum(c["count"] for c in categories) == len(SAMPLE_ARTICLES)
    assert {"label": "Thể thao", "slug": "the-thao", "count": 3} in [
        {k: c[k] for k in ("label", "slug", "count")} for c in categories
    ]


def test_captions_reach_the_article(http: httpx.Client, article_ids: dict[str, str]) -> None:
    article = http.get(f"/api/articles/{article_ids['the-thao-dak-nong-2014']}").json()
    assert article["captions"] == ["Các cầu thủ nâng cúp vô địch"]


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/api/search?sort=best", 400, "bad_sort"),
        ("/api/search?from=2014-02-30", 400, "bad_date"),
        ("/api/search?to=june", 400, "bad_date"),
        ("/api/search?per_page=0", 400, "bad_per_page"),
        ("/api/search?per_page=101", 400, "bad_per_page"),
        ("/api/search?page=two", 400, "bad_page"),
        ("/api/search?page=1001&per_page=10", 400, "page_too_deep"),
        ("/api/search?page=10001", 400, "page_too_deep"),
        ("/api/search?q=" + "x" * 1001, 400, "query_too_long"),
        ("/api/suggest?q=" + "x" * 1001, 400, "query_too_long"),
        ("/api/suggest?q=a&limit=0", 400, "bad_limit"),
        ("/api/articles/no-such-article", 404, "article_not_found"),
        ("/api/nothing-here", 404, "not_found"),
    ],
)
def test_api_errors(http: httpx.Client, path: str, status: int, code: str) -> None:
    response = http.get(path)
    assert response.status_code == status
    assert error_of(response) == code


def test_long_query_is_cut_by_the_engine_with_a_note(http: httpx.Client) -> None:
    body = search(http, q="bóng " * 150)  # 750 characters: accepted here, cut to 256 by the engine
    assert len(body["query"]) <= 256
    assert body["notes"]


def test_method_not_allowed_is_json(http: httpx.Client) -> None:
    response = http.delete("/api/search")
    assert response.status_code == 405 and error_of(response) == "method_not_allowed"


def test_head_has_headers_and_no_body(http: httpx.Client) -> None:
    response = http.head("/api/search", params={"q": "bóng đá"})
    assert response.status_code == 200 and response.content == b"" and "etag" in response.headers


# --- CORS, caching, compression, headers ----------------------------------------------------------


def test_cors(http: httpx.Client) -> None:
    preflight = http.options(
        "/api/search",
        headers={
            "Origin": "https://other.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    simple = http.get("/api/search", params={"q": "x"}, headers={"Origin": "https://other.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "ETag" in simple.headers["access-control-expose-headers"]
    page = http.get("/search", params={"q": "x"}, headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in page.headers  # CORS is for the API only


@pytest.mark.parametrize("method", ["", "DELETE", "POST"])
def test_refused_cors_preflight_is_a_json_error(http: httpx.Client, method: str) -> None:
    """A preflight for a method the API does not allow is refused in the API's own error shape."""
    refused = http.options(
        "/api/search",
        headers={"Origin": "https://other.example", "Access-Control-Request-Method": method},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["code"] == "cors_preflight_refused"
    assert "method" in error["message"] and "GET" in error["message"]
    assert "GET" in refused.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    "path", ["/api/search?q=b%C3%B3ng+%C4%91%C3%A1&sort=newest", "/search?q=b%C3%B3ng", "/", "/c/the-thao"]
)
def test_etag_and_304(http: httpx.Client, path: str) -> None:
    first = http.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert "no-cache" in first.headers["cache-control"] or "max-age" in first.headers["cache-control"]
    assert "accept-encoding" in first.headers["vary"].lower()
    again = http.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # The tag names the bytes: another request with the same answer matches it, one with another
    # answer does not.
    same = path + ("&" if "?" in path else "?") + "page=1"
    assert http.get(same, headers={"If-None-Match": etag}).status_code == 304
    changed = http.get("/api/search?q=b%C3%B3ng+%C4%91%C3%A1&sort=oldest", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_etag_ignores_parameter_order_and_varies_by_encoding(http: httpx.Client) -> None:
    a = http.get("/api/search?q=x&sort=newest").headers["etag"]
    b = http.get("/api/search?sort=newest&q=x", headers={"If-None-Match": a})
    assert b.status_code == 304
    plain = http.get("/api/search?q=x&sort=newest", headers={"Accept-Encoding": "identity"}).headers["etag"]
    assert plain != a


def test_revalidation_runs_no_search(http: httpx.Client) -> None:
    def counter(name: str) -> float:
        text = http.get("/metrics").text
        return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    etag = http.get("/api/search", params={"q": "cà phê"}).headers["etag"]
    searches = counter("searchsvc_search_tier_total")
    not_modified = counter("searchsvc_http_not_modified_total")
    for _ in range(5):
        assert http.get("/api/search", params={"q": "cà phê"}, headers={"If-None-Match": etag}).status_code == 304
    assert counter("searchsvc_search_tier_total") == searches
    assert counter("searchsvc_http_not_modified_total") == not_modified + 5


def test_gzip(http: httpx.Client) -> None:
    response = http.get("/search", params={"q": "bóng đá"}, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in response.headers["vary"].lower()
    raw = httpx.get(str(http.base_url) + "/api/search?q=x", headers={"Accept-Encoding": "gzip"})
    assert raw.headers.get("content-encoding") == "gzip"
    small = http.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under the 500-byte minimum
    with httpx.stream("GET", str(http.base_url) + "/api/openapi.json", headers={"Accept-Encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert json.loads(gzip.decompress(body))["openapi"].startswith("3.1")


# --- content coding and Vary: one rule for every route family ------------------------------------

# Accept-Encoding -> what RFC 9110 12.5.3 makes of it (for a body big enough to be worth compressing)
ACCEPT_ENCODINGS = {
    "gzip": "gzip",
    "gzip, deflate, br, zstd": "gzip",
    "x-gzip": "gzip",
    "*": "gzip",
    "*;q=0, gzip;q=0.3": "gzip",
    "identity": "identity",
    "gzip;q=0, identity": "identity",
    "GZIP;Q=0": "identity",
    "identity;q=1, gzip;q=0.5": "identity",
    "br": "identity",
    "gzip;q=nonsense": "identity",
}
GZIP_MINIMUM = 500  # searchsvc.http.encoding.GZIP_MINIMUM_SIZE


def encoding_family_paths(article_id: str) -> list[str]:
    return [
        "/", "/search?q=b%C3%B3ng+%C4%91%C3%A1", "/c/the-thao", f"/articles/{article_id}",  # pages
        "/api/search?q=b%C3%B3ng&per_page=20", "/api/search?q=zzzzqqq", "/api/categories",  # API
        f"/api/articles/{article_id}", "/api/openapi.json",
        "/feeds", "/feeds/all.rss", "/feeds/the-thao.atom", "/feeds/all.json",  # feeds
        "/feeds/search.atom?q=b%C3%B3ng", "/feeds.opml",
        "/embed/all", "/embed/search?q=b%C3%B3ng", "/embed.js",  # embeds
        "/static/style.css", "/static/favicon.svg",  # static
    ]


def vary_of(response: httpx.Response) -> list[str]:
    """Every name in every Vary field, lower case, in order (duplicates kept: they are the bug)."""
    return [n.strip().lower() for v in response.headers.get_list("vary") for n in v.split(",") if n.strip()]


def assert_vary_once(response: httpx.Response, where: str) -> list[str]:
    names = vary_of(response)
    assert len(response.headers.get_list("vary")) == 1, (where, response.headers.get_list("vary"))
    assert len(names) == len(set(names)), (where, names)
    assert "accept-encoding" in names, (where, names)
    return names


def raw_get(http: httpx.Client, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body exactly as sent (not decoded)."""
    with http.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_every_route_family_negotiates_encoding_by_one_rule(http: httpx.Client, article_ids: dict[str, str]) -> None:
    """Pages, API, feeds, embeds, OPML and static files: ``Vary: Accept-Encoding`` exactly once
    (and ``Origin`` once on /api/), q-values honoured (``gzip;q=0`` is never gzip), the same bytes
    once decoded, and 304s that carry the same Vary."""
    article_id = next(iter(article_ids.values()))
    for path in encoding_family_paths(article_id):
        plain, plain_raw = raw_get(http, path, {"Accept-Encoding": "identity"})
        assert plain.status_code == 200, path
        assert "content-encoding" not in plain.headers, path
        for value, expected in ACCEPT_ENCODINGS.items():
            where = f"{path} with Accept-Encoding: {value}"
            headers = {"Accept-Encoding": value, "Origin": "https://partner.example"}
            response, raw = raw_get(http, path, headers)
            assert response.status_code == 200, where
            names = assert_vary_once(response, where)
            if path.startswith("/api/"):
                assert "origin" in names, where
            coding = response.headers.get("content-encoding", "identity")
            if expected == "identity" or len(plain_raw) < GZIP_MINIMUM:
                assert coding == "identity", where
            else:
                assert coding == "gzip", where
            assert (gzip.decompress(raw) if coding == "gzip" else raw) == plain_raw, where
            etag = response.headers.get("etag")
            if etag is None:
                continue
            again = http.get(path, headers={**headers, "If-None-Match": etag})
            assert again.status_code == 304, where
            assert vary_of(again) == names, where


def test_encoding_negotiation_rules() -> None:
    from starlette.datastructures import Headers, MutableHeaders

    from searchsvc.http.encoding import add_vary, negotiate, request_encoding

    for value, expected in ACCEPT_ENCODINGS.items():
        assert negotiate(value) == expected, value
    assert negotiate(None) == "identity" and negotiate("") == "identity"
    assert negotiate("identity;q=0") == "identity"  # nothing acceptable: the header is disregarded
    assert negotiate("gzip;q=0.001") == "gzip"  # an unlisted identity never beats a listed coding
    assert negotiate("gzip;q=0.5, identity;q=0.6") == "identity"
    assert negotiate("*;q=0.2, identity;q=0.1") == "gzip"
    assert negotiate("gzip;q=1.5") == "identity" and negotiate("gzip;q=-1") == "identity"  # malformed: ignored
    assert negotiate("x" * 5000 + ", gzip") == "gzip"
    assert request_encoding(Headers(raw=[(b"accept-encoding", b"br"), (b"accept-encoding", b"gzip")])) == "gzip"
    headers = MutableHeaders(raw=[(b"vary", b"Accept-Encoding, origin"), (b"vary", b"Origin, Accept")])
    add_vary(headers, "accept-encoding", "Sec-Fetch-Dest")
    assert headers.getlist("vary") == ["Accept-Encoding, origin, Accept, Sec-Fetch-Dest"]
    star = MutableHeaders(raw=[(b"vary", b"*")])
    add_vary(star, "Accept-Encoding")
    assert star.getlist("vary") == ["*"]


# --- trailing-slash redirects never name a host -----------------------------------------------------

HOSTILE_HOST = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(("path", "location"), [
    ("/search/?q=a", "/search?q=a"),
    ("/api/search/?q=a&sort=newest", "/api/search?q=a&sort=newest"),
    ("/feeds/", "/feeds"),
    ("/c/x/", "/c/x"),
    ("/healthz/", "/healthz"),
    ("/search///?q=%3Cb%3E+%C4%91", "/search?q=%3Cb%3E+%C4%91"),
    ("/feeds/all.rss/", "/feeds/all.rss"),
])
def test_slash_redirects_are_relative(http: httpx.Client, path: str, location: str) -> None:
    """Starlette answered ``/search/`` with ``Location: http://<Host header>/search``: a redirect to
    any site, for anyone who can set a header (and for every cache in front). Ours is relative."""
    for headers in (HOSTILE_HOST, {}):
        response = http.get(path, headers=headers)
        assert response.status_code == 307, (path, response.status_code)
        assert response.headers["location"] == location, (path, response.headers["location"])
        assert "evil" not in response.text
    followed = http.get(path, follow_redirects=True)
    assert followed.url.host == "127.0.0.1" and len(followed.history) == 1


def test_slash_redirect_never_leaves_the_site(service) -> None:
    from test_path_safety import raw_request

    from searchsvc.http.redirects import slash_location

    for target in (b"//evil.example/", b"//evil.example//", b"///evil.example/", b"/\\evil.example/",
                   b"//evil.example/search/", b"/%2Fevil.example/"):
        status, headers, _ = raw_request(service.url, target, headers=b"X-Forwarded-Host: evil.example\r\n")
        assert status == 404, (target, status)
        assert "location" not in headers, (target, headers)
    assert slash_location("//evil.example/", b"") is None  # "//host" would be network-path relative
    assert slash_location("///evil.example/", b"") is None
    assert slash_location("/", b"q=a") is None and slash_location("/search", b"") is None
    assert slash_location("/a b/\\x/", b"q=<\xff") == "/a%20b/%5Cx?q=%3C%FF"


def test_security_headers(http: httpx.Client) -> None:
    page = http.get("/search", params={"q": "x"})
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert page.headers["x-frame-options"] == "DENY"
    api = http.get("/api/search", params={"q": "x"})
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in api.headers["content-security-policy"]
    for path in ("/nothing", "/api/nothing"):
        assert http.get(path).headers["x-content-type-options"] == "nosniff"


def test_request_id_and_access_log(http: httpx.Client, service) -> None:
    given = http.get("/healthz", headers={"X-Request-ID": "abc-123.test"})
    assert given.headers["x-request-id"] == "abc-123.test"
    generated = http.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    for bad in ("has space", "x" * 200, "<script>"):
        echoed = http.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert echoed != bad and re.fullmatch(r"[0-9a-f]{32}", echoed)
    http.get("/api/articles/whatever", headers={"X-Request-ID": "trace-me-42"})
    entry = None
    deadline = time.monotonic() + 5
    while entry is None and time.monotonic() < deadline:  # the line is written just after the response
        for line in service.log().splitlines():
            if line.startswith("{") and "trace-me-42" in line:
                try:
                    entry = json.loads(line)
                except ValueError:  # caught mid-write; read again
                    entry = None
        time.sleep(0.05)
    assert entry is not None, "no access-log line for the request"
    assert entry["method"] == "GET" and entry["path"] == "/api/articles/whatever"
    assert entry["status"] == 404 and entry["route"] == "/api/articles/{article_id:path}"
    assert entry["client"] == "127.0.0.1" and isinstance(entry["duration_ms"], float)
    assert "time" in entry
    assert not any('"GET /healthz' in line for line in service.log().splitlines()), "uvicorn access log is on"


def test_metrics(http: httpx.Client) -> None:
    http.get("/api/search", params={"q": "bóng đá"})
    http.get("/api/articles/some-id-that-does-not-exist")
    text = http.get("/metrics").text
    assert re.search(r'searchsvc_http_requests_total\{[^}]*route="/api/search"[^}]*status="200"', text)
    assert 'route="/api/articles/{article_id:path}"' in text
    assert "some-id-that-does-not-exist" not in text  # labelled by template, never by raw path
    assert "searchsvc_http_request_duration_seconds_bucket" in text
    assert re.search(r'searchsvc_search_tier_total\{tier="\w+"\} [1-9]', text)
    assert re.search(r"^searchsvc_index_generation \S+", text, re.M)
    assert re.search(rf"^searchsvc_index_documents {len(SAMPLE_ARTICLES)}(\.0)?$", text, re.M)


def test_body_limit(http: httpx.Client) -> None:
    big = http.post("/api/search", content=b"x" * (64 * 1024 + 1))
    assert big.status_code == 413 and error_of(big) == "body_too_large"
    ok_size = http.post("/api/search", content=b"x" * 100)
    assert ok_size.status_code == 405

    def chunks():
        for _ in range(20):
            yield b"y" * 8192

    streamed = http.post("/api/search", content=chunks())  # chunked: no Content-Length
    assert streamed.status_code in (405, 413)


# --- pages ----------------------------------------------------------------------------------------


def test_home_page(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<html lang="vi">' in text
    assert 'role="search"' in text and 'name="q"' in text
    assert "Thể thao" in text and "/c/the-thao" in text
    assert 'href="/feeds/all.rss"' in text and 'href="/feeds/all.atom"' in text


def test_search_page(http: httpx.Client) -> None:
    text = http.get("/search", params={"q": "bóng đá"}).text
    assert "<mark>" in text
    assert "bài viết cho «" in text
    assert re.search(r'<svg class="timeline"', text)
    assert re.search(r'href="/search\?q=b%C3%B3ng\+%C4%91%C3%A1&amp;category=the-thao"', text), "category facet link"
    assert 'type="date"' in text and 'name="from"' in text and 'name="to"' in text
    assert "Mới nhất" in text
    assert re.search(r'<time datetime="[^"]+">\d\d/\d\d/\d{4}</time>', text)
    # every timeline bar is a link that filters to its period and keeps the query
    bars = re.findall(r'<a href="(/search\?[^"]*)" tabindex="-1"><rect class="bar"', text)
    assert bars
    for url in bars:
        assert "q=b%C3%B3ng" in url and "from=" in url and "to=" in url
    # ... and so is each period of its text alternative, the table (tests/test_accessibility.py)
    assert re.findall(r'<th scope="row"><a href="(/search\?[^"]*)">(?:\d{4}|\d\d/\d{4})</a>', text) == bars


def test_timeline_switches_to_months_within_a_year(http: httpx.Client) -> None:
    text = http.get("/search", params={"q": "", "from": "2014-01-01", "to": "2014-12-31"}).text
    assert "(theo tháng)" in text
    assert re.search(r'<th scope="row"><a href="[^"]+">\d\d/2014</a></th>', text)


def test_search_page_pagination_and_sort(http: httpx.Client) -> None:
    text = http.get("/search", params={"per_page": 5}).text
    assert 'aria-label="Phân trang"' in text and 'aria-current="page">1<' in text
    text = http.get("/search", params={"per_page": 5, "page": 3}).text
    assert 'aria-current="page">3<' in text
    assert http.get("/search", params={"sort": "views"}).status_code == 200


def test_did_you_mean(http: httpx.Client) -> None:
    body = search(http, q="dak nonh")
    assert body["suggestion"] and body["suggestion"].lower() == "đắk nông"
    text = http.get("/search", params={"q": "dak nonh", "sort": "newest"}).text
    assert "Có phải bạn muốn tìm:" in text
    # the link runs the corrected query and keeps the other choices
    assert re.search(r'Có phải bạn muốn tìm: <a href="/search\?q=%C4%91%E1%BA%AFk\+n%C3%B4ng&amp;sort=newest">', text)


def test_partial_tier_is_explained(http: httpx.Client) -> None:
    body = search(http, q="bóng đá xyzqq")
    assert body["tier"] == "partial" and body["partial"] is True and body["total"] > 0
    text = http.get("/search", params={"q": "bóng đá xyzqq"}).text
    assert "Không tìm thấy kết quả chính xác, hiển thị kết quả gần đúng" in text
    assert 'data-tier="partial"' in text


def test_empty_state(http: httpx.Client) -> None:
    text = http.get("/search", params={"q": "zzqxy", "category": "van-hoa"}).text
    assert "Chuyên mục: Văn hóa" in text  # the chosen filter is named by its label, even with no match
    if "Không có kết quả" in text:
        assert "Một vài gợi ý" in text and "Bỏ mọi bộ lọc" in text
    else:  # the engine found a partial match: the page must say so
        assert "gần đúng" in text


def test_article_page(http: httpx.Client, article_ids: dict[str, str]) -> None:
    page = http.get(f"/articles/{article_ids['kinh-te-ca-phe-2014']}", params={"q": "cà phê"})
    assert page.status_code == 200
    text = page.text
    assert "<h1>Giá cà phê Đắk Nông tăng mạnh đầu vụ thu hoạch</h1>" in text
    assert "10/11/2014" in text and "Kinh tế" in text
    assert '<link rel="alternate" type="application/rss+xml" title="Kinh tế – RSS" href="/feeds/kinh-te.rss">' in text
    assert 'type="application/atom+xml" title="Kinh tế – Atom" href="/feeds/kinh-te.atom"' in text
    assert 'href="/search?q=c%C3%A0+ph%C3%AA"' in text  # back to the results
    assert "Giá cà phê nhân xô" in text
    captions = http.get(f"/articles/{article_ids['the-thao-dak-nong-2014']}").text
    assert "Chú thích ảnh" in captions and "Các cầu thủ nâng cúp vô địch" in captions


def test_category_page(http: httpx.Client) -> None:
    text = http.get("/c/the-thao").text
    assert "<h1>Thể thao</h1>" in text and text.count('class="article-item"') == 3
    assert 'href="/feeds/the-thao.rss"' in text
    missing = http.get("/c/khong-co")
    assert missing.status_code == 404 and "Không có chuyên mục này" in missing.text
    assert http.get("/c/the-thao", params={"page": "x"}).status_code == 400


@pytest.mark.parametrize(
    "path, status",
    [
        ("/articles/no-such-article", 404),
        ("/no/such/page", 404),
        ("/search?sort=best", 400),
        ("/search?from=yesterday", 400),
        ("/search?per_page=500", 400),
        ("/search?q=" + "x" * 1001, 400),
    ],
)
def test_error_pages(http: httpx.Client, path: str, status: int) -> None:
    response = http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in response.text and f"Lỗi {status}" in response.text


def test_pages_have_no_inline_script_or_style(http: httpx.Client, article_ids: dict[str, str]) -> None:
    article = f"/articles/{article_ids['kinh-te-ca-phe-2014']}"
    for path in ("/", "/search?q=b%C3%B3ng", article, "/c/the-thao", "/nope"):
        text = http.get(path).text
        # the one data block allowed: an article's JSON-LD (never run; searchsvc/share.py)
        data = re.findall(r'<script type="application/ld\+json">[^<]*</script>', text)
        assert len(data) == (1 if path == article else 0), path
        text = text.replace(data[0], "") if data else text
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"inline script on {path}: {tag}"
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text)
        assert not re.search(r"<[a-zA-Z][^>]*\sstyle=", text), f"inline style attribute on {path}"
        assert not re.search(r"<[a-zA-Z][^>]*\son[a-z]+=", text), f"inline event handler on {path}"


def test_static_assets(http: httpx.Client) -> None:
    css = http.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "max-age" in css.headers["cache-control"]
    js = http.get("/static/autocomplete.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert http.get("/static/nope.css").status_code == 404


# --- XSS ------------------------------------------------------------------------------------------

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</title><script>alert(1)</script>",
    "{{7*7}}",
]
DANGEROUS = ("<script>alert", "<img src=x", "<svg onload", "<title><script>")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_xss_in_pages_is_inert(http: httpx.Client, payload: str) -> None:
    for params in ({"q": payload}, {"q": "x", "category": payload}, {"q": payload, "source": payload}):
        for path in ("/search", "/"):
            response = http.get(path, params=params)
            assert response.status_code in (200, 400)
            text = response.text
            if any(c in payload for c in "<>\"'"):
                assert payload not in text, f"{payload!r} reflected raw on {path}"
            for raw_markup in DANGEROUS:
                assert raw_markup not in text, f"{raw_markup!r} on {path} for {params}"
    article = http.get("/articles/x", params={"q": payload})
    assert payload not in article.text or not any(c in payload for c in "<>\"'")
    bad_sort = http.get("/search", params={"sort": payload})
    assert bad_sort.status_code == 400 and "<script>alert" not in bad_sort.text


@pytest.mark.parametrize("payload", PAYLOADS)
def test_xss_in_json_is_inert(http: httpx.Client, payload: str) -> None:
    body = http.get("/api/search", params={"q": payload}).json()
    assert body["query"] == payload.strip()  # JSON returns data, not markup
    for hit in body["hits"]:
        for key in ("snippet", "title_highlighted"):
            assert "<script" not in hit[key] and "<img" not in hit[key] and "<svg" not in hit[key]
    response = http.get("/api/search", params={"q": payload})
    assert response.headers["content-type"].startswith("application/json")


def test_article_content_is_escaped(http: httpx.Client, article_ids: dict[str, str]) -> None:
    """An article whose title and body contain markup shows it as text everywhere."""
    article_id = article_ids["xa-hoi-canh-bao-2014"]
    text = http.get(f"/articles/{article_id}").text
    assert "<script>alert(1)</script>" not in text
    assert html.escape(XSS_TITLE, quote=False) in text or "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    results = http.get("/search", params={"q": "cảnh giác lừa đảo"}).text
    assert "<script>alert(1)</script>" not in results and "<img src=x" not in results
    body = http.get("/api/search", params={"q": "cảnh giác lừa đảo"}).json()
    hit = next(h for h in body["hits"] if h["id"] == article_id)
    assert hit["title"] == XSS_TITLE  # the plain field is the data itself
    assert "<script>" not in hit["title_highlighted"] and "&lt;script&gt;" in hit["title_highlighted"]
    assert "<img" not in hit["snippet"]


def test_repeated_get_is_answered_from_the_response_cache(http: httpx.Client) -> None:
    def counter(name: str) -> float:
        text = http.get("/metrics").text
        return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    params = {"q": "mưa lũ miền trung", "per_page": 3}
    # Warm every worker's cache: the requests go to whichever worker accepts them.
    first = [http.get("/api/search", params=params) for _ in range(6)]
    hits, searches = counter("searchsvc_response_cache_hits_total"), counter("searchsvc_search_tier_total")
    again = [http.get("/api/search", params=params) for _ in range(5)]
    assert counter("searchsvc_response_cache_hits_total") >= hits + 5
    assert counter("searchsvc_search_tier_total") == searches + 5  # replayed answers still count their tier
    for response in again:
        assert response.status_code == 200
        assert response.content == first[0].content
        assert response.headers["etag"] == first[0].headers["etag"]
        assert response.headers["content-type"] == first[0].headers["content-type"]
    ids = {r.headers["x-request-id"] for r in first + again}
    assert len(ids) == len(first + again), "per-request headers must not be replayed"
    plain = http.get("/api/search", params=params, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == first[0].json()
