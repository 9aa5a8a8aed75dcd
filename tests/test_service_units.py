"""Unit tests of the service's pure parts: config, parameters, highlighting, timeline, caching, limiter."""

from __future__ import annotations

import re
from datetime import UTC, date
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from starlette.datastructures import QueryParams

from index.api import FacetValue, Span
from index.urls import web_url
from searchsvc.config import DEFAULT_RATE_LIMIT, Config, ConfigError, is_loopback_host
from searchsvc.errors import ApiError
from searchsvc.http.caching import (
    cache_control,
    content_etag,
    etag_digest,
    etag_matches,
    make_etag,
    not_modified,
    request_key,
)
from searchsvc.http.ratelimit import TokenBucketLimiter, client_key
from searchsvc.metrics import generation_number
from searchsvc.params import parse_search
from searchsvc.presenters import article_path, highlight, query_string
from searchsvc.timeline import build_timeline

# --- config ---------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = Config.from_env(environ={})
    assert config.index_dir == Path("var/index")
    assert config.base_url == "http://127.0.0.1:8000"
    assert config.cors_origins == ("*",)
    assert config.site_title == "Tin tức – Lưu trữ"
    assert config.rate_limit == DEFAULT_RATE_LIMIT  # on, loopback host or not (a local proxy relays clients)
    assert config.timeout_graceful_shutdown == 10
    assert config.engine_threads == 2


def test_config_env_and_overrides() -> None:
    env = {
        "SEARCHSVC_INDEX_DIR": "/srv/idx",
        "SEARCHSVC_BASE_URL": "https://tin.example/",
        "SEARCHSVC_CORS_ORIGINS": "https://a.example, https://b.example",
        "SEARCHSVC_WORKERS": "3",
        "SEARCHSVC_ENGINE_THREADS": "4",
        "SEARCHSVC_PORT": "9000",
        "SEARCHSVC_RATE_LIMIT": "30",
        "SEARCHSVC_WEBSUB_HUB": "https://hub.example/",
    }
    config = Config.from_env({"port": 9100, "host": None}, environ=env)
    assert config.index_dir == Path("/srv/idx")
    assert config.base_url == "https://tin.example"
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert (config.workers, config.port, config.rate_limit) == (3, 9100, 30)
    assert config.engine_threads == 4
    assert config.websub_hub == "https://hub.example/"
    # to_env is what workers read back: the round trip is exact
    assert Config.from_env(environ=config.to_env()) == config


def test_config_rate_limit_is_on_by_default_on_every_host() -> None:
    for host in ("0.0.0.0", "::1", "127.0.0.1", "localhost"):
        assert Config.from_env({"host": host}, environ={}).rate_limit == DEFAULT_RATE_LIMIT
    assert Config.from_env({"host": "0.0.0.0", "rate_limit": 0}, environ={}).rate_limit == 0
    assert Config.from_env(environ={"SEARCHSVC_RATE_LIMIT": "0"}).rate_limit == 0
    assert is_loopback_host("localhost") and is_loopback_host("127.0.0.2") and not is_loopback_host("10.0.0.1")


@pytest.mark.parametrize(
    "env",
    [
        {"SEARCHSVC_PORT": "http"},
        {"SEARCHSVC_WORKERS": "0"},
        {"SEARCHSVC_ENGINE_THREADS": "0"},
        {"SEARCHSVC_BASE_URL": "ftp://x"},
        {"SEARCHSVC_RATE_LIMIT": "-1"},
        {"SEARCHSVC_ACCESS_LOG": "maybe"},
        {"SEARCHSVC_HTTP": "h2"},
        {"SEARCHSVC_HTTP": "httptools\x00"},
        {"SEARCHSVC_HTTP": "HTTPTOOLS " * 1000},
        {"SEARCHSVC_WORKER_NICE": "-1"},
        {"SEARCHSVC_WORKER_NICE": "20"},
        {"SEARCHSVC_WORKER_NICE": "high"},
        {"SEARCHSVC_MALLOC_ARENAS": "-1"},
        {"SEARCHSVC_MALLOC_ARENAS": "65"},
        {"SEARCHSVC_MALLOC_ARENAS": "few"},
    ],
)
def test_config_rejects_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(environ=env)
    assert next(iter(env)) in str(info.value)


def test_worker_nice_defaults_to_the_documented_increment_and_round_trips() -> None:
    from searchsvc.config import DEFAULT_WORKER_NICE

    assert Config.from_env(environ={}).worker_nice == DEFAULT_WORKER_NICE == 4
    config = Config.from_env(environ={"SEARCHSVC_WORKER_NICE": "0"})
    assert config.worker_nice == 0 and Config.from_env(environ=config.to_env()).worker_nice == 0


def test_malloc_arenas_default_to_two_and_round_trip() -> None:
    from searchsvc.config import DEFAULT_MALLOC_ARENAS

    assert Config.from_env(environ={}).malloc_arenas == DEFAULT_MALLOC_ARENAS == 2
    for value in (0, 64):
        config = Config.from_env(environ={"SEARCHSVC_MALLOC_ARENAS": str(value)})
        assert config.malloc_arenas == value and Config.from_env(environ=config.to_env()).malloc_arenas == value


def test_config_accepts_whole_float_timeout() -> None:
    assert Config.from_env({"timeout_graceful_shutdown": 5.0}, environ={}).timeout_graceful_shutdown == 5
    assert Config.from_env(environ={"SEARCHSVC_TIMEOUT_GRACEFUL_SHUTDOWN": "7.0"}).timeout_graceful_shutdown == 7


# --- parameters -----------------------------------------------------------------------------------


def parse(qs: str):
    return parse_search(QueryParams(qs))


def test_parse_search_full() -> None:
    p = parse("q=+b%C3%B3ng+%C4%91%C3%A1+&category=the-thao&category=kinh-te&category=the-thao&from=2014-01-01"
              "&to=2014-12-31&sort=newest&page=3&per_page=20&source=TTXVN")  # fmt: skip
    assert p.q == "bóng đá"
    assert p.categories == ["the-thao", "kinh-te"]
    assert (p.date_from, p.date_to) == (date(2014, 1, 1), date(2014, 12, 31))
    assert (p.sort, p.page, p.per_page, p.sources) == ("newest", 3, 20, ["TTXVN"])
    request = p.to_request()
    assert request.q == "bóng đá" and request.categories == ["the-thao", "kinh-te"]


@pytest.mark.parametrize(
    "qs, code",
    [
        ("sort=best", "bad_sort"),
        ("from=2014-13-01", "bad_date"),
        ("from=27/06/2014", "bad_date"),
        ("to=2014-02-30", "bad_date"),
        ("from=2014-05-01&to=2014-04-01", "bad_date_range"),
        ("page=abc", "bad_page"),
        ("page=0", "bad_page"),
        ("page=-1", "bad_page"),
        ("page=1.5", "bad_page"),
        ("per_page=0", "bad_per_page"),
        ("per_page=101", "bad_per_page"),
        ("page=101&per_page=100", "page_too_deep"),
        ("page=99999999999999999999", "bad_page"),
        ("q=" + "a" * 1001, "query_too_long"),
        ("category=" + "x" * 201, "bad_parameter"),
    ],
)
def test_parse_search_errors(qs: str, code: str) -> None:
    with pytest.raises(ApiError) as info:
        parse(qs)
    assert (info.value.status, info.value.code) == (400, code)


def test_parse_search_edges() -> None:
    assert parse("page=100&per_page=100").page == 100  # exactly MAX_RESULT_DEPTH is allowed
    assert parse("q=" + "a" * 1000).q == "a" * 1000
    assert parse("q=a%00b%1bc").q == "a b c"  # control characters become spaces
    assert parse("sort=&page=&per_page=").sort == "relevance"
    assert parse("").is_empty and not parse("category=x").is_empty


@settings(max_examples=300, deadline=None)
@given(st.lists(
    st.tuples(st.sampled_from(["q", "sort", "page", "per_page", "from", "to", "category", "x"]), st.text()),
    max_size=6,
))
def test_parse_search_only_raises_api_errors(pairs: list[tuple[str, str]]) -> None:
    try:
        parse_search(QueryParams(pairs))
    except ApiError as exc:
        assert exc.status == 400 and exc.code


# --- presenters -----------------------------------------------------------------------------------


def test_highlight_escapes_and_marks() -> None:
    spans = [Span("<b>Giá</b> "), Span("cà", True), Span(" ", True), Span("phê", True), Span(" & <script>")]
    html = highlight(spans)
    assert isinstance(html, Markup)
    assert html == "&lt;b&gt;Giá&lt;/b&gt; <mark>cà phê</mark> &amp; &lt;script&gt;"
    assert highlight([Span('"x"', True)]) == "<mark>&#34;x&#34;</mark>"


@given(st.lists(st.builds(Span, st.text(), st.booleans())))
def test_highlight_never_leaks_markup(spans: list[Span]) -> None:
    html = str(highlight(spans)).replace("<mark>", "").replace("</mark>", "")
    assert "<" not in html and ">" not in html
    def strip(s: str, *marks: str) -> str:
        for mark in marks:
            s = s.replace(mark, "")
        return s

    # Escaped, the text is the same once the escapes and the characters they stand for are removed.
    assert strip(html, "&lt;", "&gt;", "&amp;", "&#34;", "&#39;") == strip(
        "".join(s.text for s in spans), "<", ">", "&", '"', "'"
    )


def test_urls() -> None:
    assert article_path("a/b c") == "/articles/a%2Fb%20c"
    assert query_string(q="bóng đá", category=["a", "b"], page=None, date_from="2014-01-01") == (
        "?q=b%C3%B3ng+%C4%91%C3%A1&category=a&category=b&from=2014-01-01"
    )
    assert query_string() == ""
    assert web_url("javascript:alert(1)") is None
    assert web_url(" JavaScript:alert(1)") is None
    assert web_url("https://baodaknong.vn/x") == "https://baodaknong.vn/x"


# --- timeline -------------------------------------------------------------------------------------


def test_timeline_years_fill_gaps() -> None:
    facets = {
        "year": [FacetValue("2010", "2010", 4), FacetValue("2013", "2013", 2)],
        "month": [FacetValue("2010-02", "2010-02", 4), FacetValue("2013-05", "2013-05", 2)],
    }
    timeline = build_timeline(facets)
    assert timeline is not None and timeline.unit == "year"
    assert [b.label for b in timeline.bars] == ["2010", "2011", "2012", "2013"]
    assert [b.count for b in timeline.bars] == [4, 0, 0, 2]
    tallest = timeline.bars[0]
    assert tallest.height > timeline.bars[3].height > 0 and timeline.bars[1].height == 0
    assert (tallest.date_from, tallest.date_to) == (date(2010, 1, 1), date(2010, 12, 31))
    assert all(0 <= b.x and b.x + b.width <= timeline.width + 0.01 for b in timeline.bars)


def test_timeline_months_when_span_is_short() -> None:
    facets = {
        "year": [FacetValue("2013", "2013", 3), FacetValue("2014", "2014", 1)],
        "month": [FacetValue("2013-11", "2013-11", 3), FacetValue("2014-02", "2014-02", 1)],
    }
    timeline = build_timeline(facets)
    assert timeline is not None and timeline.unit == "month"
    assert [b.label for b in timeline.bars] == ["11/2013", "12/2013", "01/2014", "02/2014"]
    assert timeline.bars[3].date_to == date(2014, 2, 28)
    assert build_timeline({"year": [], "month": []}) is None


# --- caching --------------------------------------------------------------------------------------


def scope(path: str, qs: bytes = b"", encoding: bytes = b"gzip") -> dict:
    return {
        "type": "http", "method": "GET", "path": path, "query_string": qs,
        "headers": [(b"accept-encoding", encoding)],
    }


def test_request_key_normalises_query_order_and_tracks_inputs() -> None:
    a = request_key("fp", scope("/api/search", b"q=x&sort=newest"))
    assert a == request_key("fp", scope("/api/search", b"sort=newest&q=x"))
    assert a != request_key("fp2", scope("/api/search", b"q=x&sort=newest"))  # new deploy
    assert a != request_key("fp", scope("/api/search", b"q=x&sort=newest", b"identity"))  # Vary
    assert a != request_key("fp", scope("/search", b"q=x&sort=newest"))


def test_content_etag_follows_the_bytes_and_the_encoding() -> None:
    a = content_etag(b"answer", "gzip")
    assert a.startswith('W/"') and a == content_etag(b"answer", "gzip")
    assert a != content_etag(b"answer!", "gzip")  # other bytes, another tag
    assert a != content_etag(b"answer", "identity")  # another content coding, another tag


def test_etag_matching() -> None:
    assert etag_matches('W/"abc"', 'W/"abc"')
    assert etag_matches('"abc"', 'W/"abc"')
    assert etag_matches('"x", W/"abc"', 'W/"abc"')
    assert etag_matches("*", 'W/"abc"')
    assert not etag_matches('W/"abd"', 'W/"abc"')
    assert cache_control(0) == "public, no-cache" and cache_control(60) == "public, max-age=60"


LONG_LIST = ", ".join(f'"t{i}"' for i in range(200))  # past the memoised length: parsed each time


@pytest.mark.parametrize(("if_none_match", "etag", "expected"), [
    ('W/"abc"', 'W/"abc"', True),
    ('"abc"', 'W/"abc"', True),  # weak comparison: W/ is ignored on either side
    ('W/"abc"', '"abc"', True),
    ('"x", W/"abc"', '"abc"', True),  # a list
    ('"x",W/"abc" ,\t"y"', '"abc"', True),  # optional whitespace, tabs included
    ('"a,b"', '"a,b"', True),  # a comma inside a tag does not split it
    ('"a,b"', '"a"', False),
    ("*", '"abc"', True),
    (" * ", 'W/"abc"', True),
    ('"x", *', '"abc"', True),
    ('"abd"', '"abc"', False),
    ('"ABC"', '"abc"', False),  # opaque tags compare exactly
    ('"abc-gz"', '"abc"', False),  # a variant is another tag
    ('"abc"', '"abc-gz"', False),
    ("abc", '"abc"', False),  # malformed: no quotes
    ('w/"abc"', '"abc"', False),  # malformed: "W/" is case-sensitive
    ('"abc', '"abc"', False),  # malformed: unterminated
    ('"abc"x', '"abc"', False),  # malformed: text after the tag
    ('"ab c"', '"ab c"', False),  # malformed: a space is not a tag character
    ('garbage, "abc"', '"abc"', True),  # a malformed member is skipped, the rest still counts
    ('"abc" "def", "ghi"', '"ghi"', True),
    ("", '"abc"', False),
    (",,, ,", '"abc"', False),
    (None, '"abc"', False),  # no header
    (LONG_LIST + ', W/"abc"', '"abc"', True),
    (LONG_LIST, '"abc"', False),
])  # fmt: skip
def test_etag_matches_edge_cases(if_none_match: str | None, etag: str, expected: bool) -> None:
    assert etag_matches(if_none_match, etag) is expected


def test_make_etag_is_the_one_format() -> None:
    validator = etag_digest(b"body")
    assert re.fullmatch(r"[0-9a-f]{32}", validator)
    assert validator == etag_digest(b"body") != etag_digest(b"body", b"")  # parts are delimited
    assert etag_digest("a", "bc") != etag_digest("ab", "c")
    assert make_etag(validator, weak=True) == f'W/"{validator}"'
    assert make_etag(validator, weak=False) == f'"{validator}"'
    assert make_etag(validator, "gz", "view", weak=False) == f'"{validator}-gz-view"'
    page = content_etag(b"<html>", "gzip")
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', page)  # page and API tags are built the same way


def test_not_modified_follows_rfc_9110_13_2_2() -> None:
    from datetime import datetime

    from starlette.datastructures import Headers

    modified = datetime(2015, 3, 1, 2, 0, tzinfo=UTC)

    def check(*fields: tuple[str, str], last_modified: datetime | None = modified) -> bool:
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in fields]
        return not_modified(Headers(raw=raw), ('"abc"', '"abc-gz"'), last_modified)

    assert check(("If-None-Match", '"abc-gz"'))  # any of the representation's tags
    assert check(("If-None-Match", '"x"'), ("If-None-Match", 'W/"abc"'))  # several fields are one list
    assert not check(("If-None-Match", '"x"'))
    since = "Sun, 01 Mar 2015 02:00:00 GMT"
    assert check(("If-Modified-Since", since))
    assert check(("If-Modified-Since", "Sun, 01 Mar 2015 02:00:00 -0000"))  # "-0000": UTC
    assert not check(("If-Modified-Since", "Sun, 01 Mar 2015 01:59:59 GMT"))
    assert not check(("If-Modified-Since", "garbage"))
    assert not check(("If-Modified-Since", since), last_modified=None)
    # If-None-Match decides whenever it is present, even empty or malformed
    assert not check(("If-None-Match", '"x"'), ("If-Modified-Since", since))
    assert not check(("If-None-Match", ""), ("If-Modified-Since", since))
    assert not check()


def test_generation_number() -> None:
    assert generation_number("gen-000012") == 12.0
    assert generation_number("7") == 7.0
    assert generation_number("none") == 0.0


# --- rate limiter ---------------------------------------------------------------------------------


def test_token_bucket() -> None:
    now = [100.0]
    limiter = TokenBucketLimiter(60, burst=2, max_clients=2, clock=lambda: now[0])
    assert limiter.acquire("a") == 0 and limiter.acquire("a") == 0
    wait = limiter.acquire("a")
    assert 0.9 < wait <= 1.0  # one token a second at 60/min
    now[0] += 1.0
    assert limiter.acquire("a") == 0
    assert limiter.acquire("b") == 0 and limiter.acquire("c") == 0
    assert len(limiter._buckets) == 2  # bounded: the least recently seen client was forgotten


def test_token_buckets_forget_the_least_recently_seen_client() -> None:
    now = [100.0]
    limiter = TokenBucketLimiter(60, burst=1, max_clients=2, clock=lambda: now[0])
    assert limiter.acquire("a") == 0 and limiter.acquire("b") == 0
    assert limiter.acquire("a") > 0  # "a" is now the most recently seen (and empty)
    assert limiter.acquire("c") == 0  # a third client: "b", the least recent, is forgotten
    assert limiter.acquire("a") > 0, "a recently seen client keeps its (empty) bucket"
    assert limiter.acquire("b") == 0, "a forgotten client starts again with a full bucket"


@pytest.mark.parametrize(("client", "headers", "key"), [
    (("127.0.0.1", 5000), [], None),  # a local process, no proxy: exempt
    (("::1", 5000), [(b"accept", b"*/*")], None),
    (("198.51.100.4", 443), [(b"x-forwarded-for", b"198.51.100.4")], "198.51.100.4"),  # rewritten by uvicorn
    (("127.0.0.1", 5000), [(b"x-forwarded-for", b"127.0.0.1")], "127.0.0.1"),  # relayed: never exempt
    (("127.0.0.1", 5000), [(b"x-forwarded-for", b"")], "127.0.0.1"),
    (("203.0.113.9", 5000), [], "203.0.113.9"),  # a direct remote client
    (None, [], "unknown"),
])  # fmt: skip
def test_rate_limit_client_key(client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]],
                               key: str | None) -> None:
    assert client_key({"type": "http", "client": client, "headers": headers}) == key


def test_response_cache_keys_on_generation_and_bounds_itself() -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from searchsvc.http.caching import NO_STORE, ResponseCacheMiddleware

    calls: list[str] = []
    generation = {"value": "g1"}

    async def page(request):
        calls.append(request.url.path)
        status = 404 if request.query_params.get("missing") else 200
        padding = "x" * int(request.query_params.get("n", 1))
        headers = {"Cache-Control": NO_STORE} if request.query_params.get("nostore") else None
        return PlainTextResponse(f"{request.url.path} {generation['value']} " + padding, status_code=status,
                                 headers=headers)

    inner = Starlette(routes=[Route("/p/{name}", page), Route("/other", page)])
    cache = ResponseCacheMiddleware(inner, generation=lambda: generation["value"], app_fingerprint="f",
                                    prefixes=("/p/",), max_bytes=4000, max_entry_bytes=1000)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=cache)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/p/a")).text == (await client.get("/p/a")).text == "/p/a g1 x"
            assert calls == ["/p/a"] and cache.hits == 1
            await client.get("/p/a", headers={"If-None-Match": '"x"'})  # conditional requests pass through
            await client.head("/p/a")
            await client.get("/other")
            await client.get("/other")  # not a cacheable path
            assert calls == ["/p/a"] * 3 + ["/other"] * 2
            await client.get("/p/gone?missing=1")
            await client.get("/p/gone?missing=1")  # errors are never stored
            await client.get("/p/big?n=5000")
            await client.get("/p/big?n=5000")  # larger than max_entry_bytes
            assert calls.count("/p/gone") == 2 and calls.count("/p/big") == 2
            await client.get("/p/partial?nostore=1")
            await client.get("/p/partial?nostore=1")  # a page answered without a part: never stored
            assert calls.count("/p/partial") == 2
            generation["value"] = "g2"
            assert (await client.get("/p/a")).text == "/p/a g2 x"  # a new generation never sees old bytes
            for i in range(20):  # 20 entries of ~900 bytes cannot all fit in 4000
                await client.get(f"/p/many{i}?n=800")
            assert len(cache) < 20 and cache.bytes <= 4000

    asyncio.run(scenario())


def test_response_cache_evicts_the_least_recently_used_by_size() -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from searchsvc.http.caching import ResponseCacheMiddleware

    calls: list[str] = []

    async def page(request):
        calls.append(request.url.path)
        return PlainTextResponse("x" * int(request.query_params.get("n", 800)))

    inner = Starlette(routes=[Route("/p/{name}", page)])

    def make(max_bytes: int) -> ResponseCacheMiddleware:
        return ResponseCacheMiddleware(inner, generation=lambda: "g", app_fingerprint="f", prefixes=("/p/",),
                                       max_bytes=max_bytes, max_entry_bytes=100_000)

    async def get(cache: ResponseCacheMiddleware, path: str) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cache), base_url="http://t") as client:
            assert (await client.get(path)).status_code == 200

    async def scenario() -> None:
        probe = make(1 << 20)
        await get(probe, "/p/probe")
        entry = probe.bytes  # what one 800-byte answer counts, headers included
        assert entry > 800
        room = 2 * entry + entry // 2  # room for two
        cache = make(room)
        calls.clear()
        for path in ("/p/a", "/p/b", "/p/a", "/p/c"):  # the repeat of /p/a makes /p/b the oldest
            await get(cache, path)
        assert calls == ["/p/a", "/p/b", "/p/c"] and len(cache) == 2 and cache.bytes <= room
        await get(cache, "/p/a")
        await get(cache, "/p/c")
        assert calls == ["/p/a", "/p/b", "/p/c"], "the two most recently used stayed"
        await get(cache, "/p/b")
        assert calls[-1] == "/p/b", "the least recently used was evicted"
        # an answer larger than the whole cache (but under max_entry_bytes) is not kept and evicts nothing
        before = cache.bytes
        await get(cache, "/p/huge?n=20000")
        await get(cache, "/p/huge?n=20000")
        assert calls.count("/p/huge") == 2 and cache.bytes == before and len(cache) == 2

    asyncio.run(scenario())


def test_shared_response_store_lets_one_worker_replay_another(tmp_path) -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from searchsvc.http.caching import ResponseCacheMiddleware, SharedResponseStore

    calls: list[str] = []
    generation = {"value": "gen-000001.1"}

    def worker(name: str, root) -> ResponseCacheMiddleware:
        async def page(request):
            calls.append(name)
            return PlainTextResponse(f"{request.url.path} from {name} on {generation['value']}")

        return ResponseCacheMiddleware(Starlette(routes=[Route("/p/{x}", page)]),
                                       generation=lambda: generation["value"], app_fingerprint="f",
                                       prefixes=("/p/",), shared=SharedResponseStore(root, max_bytes=1 << 20))

    root = tmp_path / "shared"
    root.mkdir()
    first, second = worker("w1", root), worker("w2", root)

    async def get(app, path: str) -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return (await client.get(path)).text

    async def scenario() -> None:
        assert await get(first, "/p/a") == "/p/a from w1 on gen-000001.1"
        assert await get(second, "/p/a") == "/p/a from w1 on gen-000001.1"  # replayed from the shared file
        assert calls == ["w1"]
        generation["value"] = "gen-000001.2"
        assert await get(second, "/p/a") == "/p/a from w2 on gen-000001.2"
        assert [d.name for d in root.iterdir()] == ["gen-000001.2"]  # the old generation's files are gone
        broken = worker("w3", tmp_path / "missing" / "dir")  # unusable directory: served, just not shared
        assert await get(broken, "/p/b") == "/p/b from w3 on gen-000001.2"

    asyncio.run(scenario())


def test_request_ids_are_unique_hex() -> None:
    from searchsvc.http.middleware import new_request_id

    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_worker_draws_its_own_request_id_prefix() -> None:
    """uvicorn's workers are forked: each must number its requests under a prefix of its own."""
    import os

    from searchsvc.http.middleware import new_request_id

    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, through the pipe, then out without pytest's teardown
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child) and child[:20] != parent[:20]
    assert new_request_id()[:20] == parent[:20]


def test_request_key_is_computed_once_per_request_and_per_fingerprint() -> None:
    from searchsvc.http.caching import request_key

    scope = {"type": "http", "method": "GET", "path": "/api/search", "query_string": b"q=a&b=1",
             "headers": [(b"accept-encoding", b"gzip")]}
    first = request_key("f1", scope)
    scope["query_string"] = b"q=changed"  # no layer does this; it shows the key was kept
    assert request_key("f1", scope) == first
    fresh = {**scope, "query_string": b"q=a&b=1"}
    fresh.pop("searchsvc.request_key")
    assert request_key("f1", fresh) == first and request_key("f2", fresh) != first
    assert request_key("f1", {**fresh, "searchsvc.request_key": None, "path": "/search"}) != first


def test_engine_holder_reports_when_warm_up_is_over(tmp_path) -> None:
    """The service waits for this before accepting connections (``searchsvc.app`` lifespan)."""
    import threading

    from searchsvc.engine_holder import EngineHolder

    release = threading.Event()

    class SlowToWarm:  # only the holder is under test: it calls warm_up() and nothing else here
        def warm_up(self) -> None:
            release.wait(10)

    holder = EngineHolder(tmp_path, opener=lambda path: SlowToWarm())
    assert holder.wait_warm(0.01)  # nothing opened yet: nothing to wait for
    holder.get()
    assert not holder.wait_warm(0.05)
    release.set()
    assert holder.wait_warm(5)


def test_shutdown_closes_the_index_files(tmp_path) -> None:
    """A worker's engine holds the index's segment files open; the app's shutdown closes them, as
    a process can outlive its app (an embedding server, a test) and a closed file frees the disk
    space of a generation already replaced."""
    import asyncio

    from index_helpers import article, open_files_under

    from index.builder import index_articles
    from searchsvc.app import create_app

    index_dir = tmp_path / "ix"
    index_articles(index_dir, [article(1, "Bão số 3 đổ bộ", "Mưa lớn ở miền Trung.")], procs=1)
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": str(index_dir)}))

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                assert (await client.get("/api/search", params={"q": "bão"})).json()["total"] == 1
            assert open_files_under(index_dir) > 0
        assert open_files_under(index_dir) == 0

    asyncio.run(serve())


def test_validators_and_cached_answers_hold_across_commits_that_change_nothing_they_show() -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from index.api import Shows
    from searchsvc.http.caching import SHOWS_KEY, ConditionalGetMiddleware, ResponseCacheMiddleware

    calls: list[str] = []
    generation = {"value": "g1"}
    content = {"a": "article a", "b": "article b"}
    changed_ids: dict[tuple[str, str], set[str]] = {}

    async def page(request):
        name = request.path_params["name"]
        calls.append(name)
        setattr(request.state, SHOWS_KEY, Shows.article(name))
        return PlainTextResponse(content[name])

    async def changed(old: str, new: str, shows: Shows) -> bool:
        return bool(shows.ids & changed_ids.get((old, new), set()))

    inner = Starlette(routes=[Route("/p/{name}", page)])
    conditional = ConditionalGetMiddleware(inner, generation=lambda: generation["value"], app_fingerprint="f",
                                           prefixes=("/p/",), changed=changed)
    cached = ResponseCacheMiddleware(conditional, generation=lambda: generation["value"], app_fingerprint="f",
                                     prefixes=("/p/",), changed=changed)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cached), base_url="http://t") as client:
            tags = {name: (await client.get(f"/p/{name}")).headers["etag"] for name in "ab"}
            assert calls == ["a", "b"]
            generation["value"] = "g2"
            changed_ids[("g1", "g2")] = {"b"}  # the commit corrected b
            content["b"] = "article b, corrected"
            # a: nothing it shows changed, so its tag holds without running the handler...
            assert (await client.get("/p/a", headers={"If-None-Match": tags["a"]})).status_code == 304
            assert (await client.get("/p/a")).text == "article a"  # ...and the cached bytes too
            assert calls == ["a", "b"]
            # b changed: the handler runs, a new tag, new bytes
            answer = await client.get("/p/b", headers={"If-None-Match": tags["b"]})
            assert answer.status_code == 200 and answer.headers["etag"] != tags["b"]
            assert (await client.get("/p/b")).text == "article b, corrected"  # the old bytes were dropped
            assert calls == ["a", "b", "b", "b"]  # (a conditional request is not the response cache's)
            # a commit said to touch a, that changed none of its bytes: computed again, still a 304
            generation["value"] = "g3"
            changed_ids[("g2", "g3")] = {"a"}
            assert (await client.get("/p/a", headers={"If-None-Match": tags["a"]})).status_code == 304
            assert calls == ["a", "b", "b", "b", "a"]

    asyncio.run(scenario())
