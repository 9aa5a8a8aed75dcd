"""Fuzzing the query string of every route against a running server.

Whatever the parameters, the service answers without a 500; under /api every 4xx is JSON with
``error.code``, and pages answer their errors as HTML; and after each test the server is still up
and its catch-all 500 handler never fired. Bounded: about 200 examples per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from service_helpers import ServiceProcess

from index.readers import MAX_YEAR, MIN_YEAR

API_PATHS = ["/api/search", "/api/suggest", "/api/categories", "/api/openapi.json"]
PAGE_PATHS = ["/", "/search", "/c/the-thao", "/c/khong-co"]
NAMES = ["q", "category", "source", "from", "to", "sort", "page", "per_page", "limit", "x", ""]

interesting_values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789-/. +e", max_size=12),
    st.integers(min_value=-(10**12), max_value=10**22).map(str),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "relevance", "newest", "views", "0", "100", "101", "1e3", "NaN", "-0", " 5", "٣",
            "2014-02-30", "0000-01-01", "9999-12-31", "2014-1-1", "*", "\x00", "\ud7ff", "đắk nông",
            "<script>alert(1)</script>", "' OR 1=1 --", "title:x", "AND OR NOT", '"', "(", "*:*", "x" * 1001,
        ]
    ),
)
params = st.lists(st.tuples(st.sampled_from(NAMES), interesting_values), max_size=6)
raw_query = st.binary(max_size=60).map(
    lambda b: "".join(f"%{byte:02X}" if byte % 3 else chr(97 + byte % 26) for byte in b)
)

# The client fixture is per test, not per example, on purpose: it checks the log once the whole
# test has run.
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    """A client of the shared server; afterwards the server still answers and its log gained no
    unhandled error: each test checks what it caused itself, whatever ran before it."""
    offset = service.log_path.stat().st_size
    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c
        assert c.get("/healthz").status_code == 200
    with service.log_path.open("rb") as log:
        log.seek(offset)
        added = log.read().decode("utf-8", "replace")
    assert "unhandled error" not in added and "Traceback" not in added, added[-3000:]


def check(response: httpx.Response, path: str) -> None:
    assert response.status_code < 500, f"{response.status_code} for {response.request.url}: {response.text[:300]}"
    if 400 <= response.status_code < 500:
        if path.startswith("/api/"):
            assert response.headers["content-type"].startswith("application/json"), response.request.url
            assert response.json()["error"]["code"], response.request.url
        else:
            assert response.headers["content-type"].startswith("text/html"), response.request.url


@FUZZ
@given(path=st.sampled_from(API_PATHS + PAGE_PATHS), pairs=params)
def test_fuzz_parameters(client: httpx.Client, path: str, pairs: list[tuple[str, str]]) -> None:
    check(client.get(path, params=pairs), path)


@FUZZ
@given(path=st.sampled_from(API_PATHS + PAGE_PATHS), query=raw_query)
def test_fuzz_raw_query_bytes(client: httpx.Client, path: str, query: str) -> None:
    """Percent-encoded bytes that are not UTF-8, stray '%' and '&' included."""
    check(client.get(f"{path}?q={query}&category={query}"), path)


@settings(FUZZ, max_examples=100)
@given(prefix=st.sampled_from(["/api/articles/", "/articles/"]), article_id=st.text(min_size=1, max_size=40))
def test_fuzz_article_ids(client: httpx.Client, prefix: str, article_id: str) -> None:
    response = client.get(prefix + quote(article_id, safe=""))
    check(response, prefix)
    # "." and ".." are dot segments: the client removes them, and "/api/articles/" is redirected
    # to "/api/articles" (Starlette's redirect_slashes), which then answers 404
    assert response.status_code in (200, 307, 400, 404), response.request.url



# Every route family that takes from/to, and days across the whole calendar: the extremes
# (0001-01-01, 9999-12-31 overflowed the engine's day-start conversion: a 500) and both sides of
# the accepted range's ends.
DATE_PATHS = ["/api/search", "/search", "/", "/feeds/search.rss", "/feeds/search.atom", "/feeds/search.json",
              "/embed/search"]
EDGE_DAYS = [date(1, 1, 1), date(9999, 12, 31), date(MIN_YEAR, 1, 1), date(MIN_YEAR - 1, 12, 31),
             date(MAX_YEAR, 12, 31), date(MAX_YEAR + 1, 1, 1)]
days = st.one_of(st.none(), st.dates(), st.sampled_from(EDGE_DAYS))


@FUZZ
@example(path="/api/search", date_from=date(1, 1, 1), date_to=None)
@example(path="/feeds/search.atom", date_from=None, date_to=date(9999, 12, 31))
@given(path=st.sampled_from(DATE_PATHS), date_from=days, date_to=days)
def test_fuzz_dates(client: httpx.Client, path: str, date_from: date | None, date_to: date | None) -> None:
    """A day in the readers' years is a filter (200), any other is 400 bad_date, never a 500."""
    params = {"q": "đắk nông", "from": date_from.isoformat() if date_from else "",
              "to": date_to.isoformat() if date_to else ""}
    response = client.get(path, params=params)
    check(response, path)
    usable = all(d is None or MIN_YEAR <= d.year <= MAX_YEAR for d in (date_from, date_to))
    ordered = not (date_from and date_to and date_from > date_to)
    assert response.status_code == (200 if usable and ordered else 400), (response.request.url, response.text[:300])
    if path.startswith("/api/") and not usable:
        assert response.json()["error"]["code"] == "bad_date"
