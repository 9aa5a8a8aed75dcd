"""One error registry: ``searchsvc.errors.ErrorCode``, the codes the code raises and the codes the
OpenAPI document lists are the same set, with the same statuses, and each one can be raised.

* Raised: read from the source with ``ast``: every ``ErrorCode.X`` named in ``searchsvc/``, and
  the code strings ``index/`` gives ``SearchError`` (the engine knows nothing of HTTP; its codes
  are mapped at the boundary, ``errors.engine_error``, which fails loudly on one it lacks). A code
  typed in as a string anywhere in ``searchsvc/`` fails here, and ``ApiError`` refuses one.
* Documented: ``components.x-error-codes`` and the ``code`` examples of searchsvc/openapi.json,
  and the errors table of docs/service.md.
* Raisable: one request per code, over real HTTP to a real server wherever one can produce it;
  ``SPECIAL`` says why the others need a set-up of their own, which the test then provides.
"""

from __future__ import annotations

import ast
import asyncio
import errno
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import running_service
from starlette.applications import Starlette

from index.api import (
    MAX_DATE,
    MAX_PER_PAGE,
    MAX_RESULT_DEPTH,
    MIN_DATE,
    FacetValue,
    SearchError,
    SearchRequest,
    SearchResult,
)
from index.article import Article
from index.tiers import Tier
from searchsvc.app import MAX_BODY_BYTES, create_app
from searchsvc.config import Config
from searchsvc.errors import (
    ENGINE_CODES,
    GENERIC_CODES,
    ApiError,
    ErrorCode,
    UnknownEngineCode,
    engine_error,
    json_error,
)
from searchsvc.openapi import openapi_document
from searchsvc.params import MAX_FILTER_CHARS, MAX_Q_CHARS

ROOT = Path(__file__).resolve().parent.parent

# String constants in searchsvc/ that equal a code's value but are not an error code.
NOT_CODES = {
    ("searchsvc/routes/ops.py", "not_ready"): "the readiness state in /readyz's body ({'status': 'not_ready'})",
}


def python_files(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def named_members() -> dict[str, set[str]]:
    """``ErrorCode.X`` references in searchsvc/: member name -> the files naming it."""
    found: dict[str, set[str]] = {}
    for name, tree in python_files("searchsvc"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ErrorCode":
                found.setdefault(node.attr, set()).add(name)
    return found


def engine_codes_in_source() -> set[str]:
    """The code strings ``index/`` raises ``SearchError`` with; a code that is not a literal fails."""
    codes: set[str] = set()
    for name, tree in python_files("index"):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) != "SearchError":
                continue
            first = node.args[0] if node.args else None
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{name}:{node.lineno}: SearchError's code must be a string literal, so that it can be checked here"
            )
            codes.add(first.value)
    return codes


def documented() -> dict[str, dict[str, object]]:
    return openapi_document()["components"]["x-error-codes"]


# --- the registry, the source and the document agree ----------------------------------------------


def test_every_code_raised_is_in_the_registry_and_every_member_is_raised() -> None:
    named = named_members()
    unknown = set(named) - set(ErrorCode.__members__)
    assert not unknown, f"ErrorCode has no member {unknown}"  # also caught by mypy; cheap to say here
    engine = engine_codes_in_source()
    assert engine, "no SearchError found in index/: has the engine moved?"
    assert engine == {code.value for code in ENGINE_CODES}, "ENGINE_CODES must be exactly what index/ raises"
    raised = {ErrorCode[name] for name in named} | {code for code in ErrorCode if code.value in engine}
    assert raised == set(ErrorCode), f"in the registry but never raised: {set(ErrorCode) - raised}"


def test_no_code_is_typed_in_as_a_string() -> None:
    values = {code.value for code in ErrorCode}
    loose = []
    for name, tree in python_files("searchsvc"):
        registry = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "ErrorCode"), None)
        inside = {id(n) for n in ast.walk(registry)} if registry else set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in values and id(node) not in inside
                    and (name, node.value) not in NOT_CODES):
                loose.append(f"{name}:{node.lineno}: {node.value!r}")
    assert not loose, "error codes typed in as strings (use ErrorCode):\n" + "\n".join(loose)


def test_only_registry_members_make_an_error() -> None:
    with pytest.raises(TypeError):
        ApiError("bad_sort", "a loose string")  # what mypy refuses is refused at run time too
    with pytest.raises(TypeError):
        json_error("not_found", "a loose string")
    with pytest.raises(ValueError):
        ApiError(ErrorCode.BAD_SORT, "a code goes out with its own status only", status=404)
    with pytest.raises(TypeError):
        ApiError(ErrorCode.HTTP_ERROR, "takes the status of the exception it stands for")
    error = ApiError(ErrorCode.RATE_LIMITED, "slow down", {"Retry-After": "3"})
    assert (error.status, error.code, error.headers) == (429, "rate_limited", {"Retry-After": "3"})
    assert ApiError(ErrorCode.HTTP_ERROR, "x", status=401).status == 401
    response = json_error(ErrorCode.PAGE_TOO_DEEP, "too deep")
    assert response.status_code == 400 and response.body == b'{"error":{"code":"page_too_deep","message":"too deep"}}'


def test_engine_codes_map_at_the_boundary_and_an_unknown_one_fails_loudly() -> None:
    for code in ENGINE_CODES:
        mapped = engine_error(SearchError(code.value, "refused"))
        assert (mapped.code, mapped.status, mapped.message) == (code, 400, "refused")
    for stray in ("made_up_code", "not_ready", "BAD_SORT"):  # not a code at all; a code but not the engine's
        with pytest.raises(UnknownEngineCode, match=stray):
            engine_error(SearchError(stray, "refused"))


def test_the_document_lists_the_registry() -> None:
    codes = documented()
    assert list(codes) == [code.value for code in ErrorCode], "x-error-codes must list ErrorCode, in its order"
    for code in ErrorCode:
        assert codes[code.value]["status"] == code.status, code
        assert codes[code.value]["description"], code
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["code"]["examples"] == [code.value for code in ErrorCode]
    assert schemas["Error"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_docs_list_every_code() -> None:
    text = (ROOT / "docs" / "service.md").read_text(encoding="utf-8")
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in text]
    assert not missing, f"docs/service.md does not list {missing}"


def test_generic_codes_stand_for_their_status() -> None:
    assert all(code.status == status for status, code in GENERIC_CODES.items())
    assert ErrorCode.HTTP_ERROR not in GENERIC_CODES.values()


def _vn_number(n: int) -> str:
    return f"{n:,}".replace(",", ".")  # Vietnamese thousands separator


PAGE_MESSAGE_NUMBERS: dict[ErrorCode, set[str]] = {
    ErrorCode.BAD_DATE: {str(MIN_DATE.year), str(MAX_DATE.year), "2014-06-27"},  # the last: an example
    ErrorCode.BAD_PER_PAGE: {"1", str(MAX_PER_PAGE)},
    ErrorCode.PAGE_TOO_DEEP: {_vn_number(MAX_RESULT_DEPTH)},
    ErrorCode.QUERY_TOO_LONG: {_vn_number(MAX_Q_CHARS)},
}


def test_page_messages_state_the_codes_limits() -> None:
    """The Vietnamese page messages are typed in (the same bytes as ever); their numbers are checked."""
    for code in ErrorCode:
        numbers = set(re.findall(r"\d{4}-\d{2}-\d{2}|\d[\d.]*\d|\d", code.page_message or ""))
        assert numbers == PAGE_MESSAGE_NUMBERS.get(code, set()), code


# --- every code can be raised ---------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None


LONG = "a" * (MAX_Q_CHARS + 1)
CORS_DELETE = (("Origin", "https://other.example"), ("Access-Control-Request-Method", "DELETE"))

# Produced by the session's server (an index of the sample articles), over HTTP.
ON_THE_SERVER: dict[ErrorCode, Probe] = {
    ErrorCode.BAD_SORT: Probe("GET", "/api/search?sort=best"),
    ErrorCode.BAD_DATE: Probe("GET", "/api/search?from=1800-01-01"),  # the engine's range, via engine_error
    ErrorCode.BAD_DATE_RANGE: Probe("GET", "/api/search?from=2015-01-01&to=2014-01-01"),
    ErrorCode.BAD_PAGE: Probe("GET", "/c/the-thao?page=0"),
    ErrorCode.BAD_PER_PAGE: Probe("GET", f"/api/search?per_page={MAX_PER_PAGE + 1}"),
    ErrorCode.BAD_LIMIT: Probe("GET", "/api/suggest?q=b&limit=0"),
    ErrorCode.BAD_PARAMETER: Probe("GET", "/api/search?category=" + "c" * (MAX_FILTER_CHARS + 1)),
    ErrorCode.BAD_THEME: Probe("GET", "/embed/all?theme=blue"),
    ErrorCode.PAGE_TOO_DEEP: Probe("GET", f"/api/search?per_page={MAX_PER_PAGE}"
                                          f"&page={MAX_RESULT_DEPTH // MAX_PER_PAGE + 1}"),
    ErrorCode.QUERY_TOO_LONG: Probe("GET", "/search?q=" + LONG),
    ErrorCode.RSS_NOT_PAGED: Probe("GET", "/feeds/all.rss?page=2"),
    ErrorCode.CORS_PREFLIGHT_REFUSED: Probe("OPTIONS", "/api/search", CORS_DELETE),
    ErrorCode.NOT_FOUND: Probe("GET", "/api/no-such-endpoint"),
    ErrorCode.ARTICLE_NOT_FOUND: Probe("GET", "/api/articles/no-such-article"),
    ErrorCode.CATEGORY_NOT_FOUND: Probe("GET", "/feeds/no-such-category.atom"),
    ErrorCode.PAGE_NOT_FOUND: Probe("GET", f"/feeds/all.atom?limit=10&page={MAX_RESULT_DEPTH // 10}"),
    ErrorCode.METHOD_NOT_ALLOWED: Probe("POST", "/api/search"),
    ErrorCode.BODY_TOO_LARGE: Probe("POST", "/api/search", content=b"x" * (MAX_BODY_BYTES + 1)),
}

# Why the others need a set-up of their own, and the test that provides it.
SPECIAL: dict[ErrorCode, str] = {
    ErrorCode.NOT_READY: "a server with no index (test_not_ready_and_rate_limited)",
    ErrorCode.OVERLOADED: "an engine thread kept busy, and no room to wait for it: an engine whose search blocks "
    "until released, in process (test_overloaded_in_process; tests/test_admission.py does it with a real "
    "server and a burst of distinct searches)",
    ErrorCode.RATE_LIMITED: "a server with a rate limit, and a client that is not loopback: a trusted "
    "X-Forwarded-For from 127.0.0.1, as a local proxy sends (test_not_ready_and_rate_limited)",
    ErrorCode.BAD_REQUEST: "a Content-Length that is not a number: uvicorn's parser refuses it with its own "
    "plain 400 before the app sees it, so the app is called in-process (test_bad_request_in_process)",
    ErrorCode.INTERNAL_ERROR: "a bug: an engine that refuses with a code the registry lacks, which the "
    "boundary raises instead of answering (test_internal_error_in_process)",
    ErrorCode.ARTICLE_GONE: "an article unpublished through the publishing journal, whose tombstone the "
    "service reads (test_article_gone_in_process; tests/test_publishing.py does it end to end)",
    # The admin API: off (404) on the session's server, which has no keys file; tests/test_admin_api.py
    # runs servers with keys (and a full disk, an unwritable journal, a broken keys file).
    ErrorCode.BAD_ARTICLE: "an article the reader refuses, posted with a key (test_admin_api.py, "
    "test_a_batch_with_broken_lines_gets_per_line_errors_and_the_good_lines_accepted)",
    ErrorCode.ARTICLE_TOO_LARGE: "an article over a size cap, posted with a key (test_admin_api.py, the same test)",
    ErrorCode.ID_MISMATCH: "a PUT whose body names another id (test_admin_api.py, "
    "test_publish_correct_and_unpublish_are_served_within_seconds)",
    ErrorCode.KEY_IN_QUERY: "a server with keys (test_admin_api.py, test_a_key_in_the_query_string_is_refused)",
    ErrorCode.UNAUTHORIZED: "a server with keys (test_admin_api.py, "
    "test_missing_wrong_and_malformed_keys_get_401_with_a_challenge)",
    ErrorCode.INSUFFICIENT_SCOPE: "an ingest key on an admin route (test_admin_api.py, "
    "test_a_key_without_the_scope_gets_403)",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "a post with a key and another content type (test_admin_api.py, "
    "test_body_limits_and_content_types)",
    ErrorCode.JOURNAL_UNAVAILABLE: "a journal path under a regular file (test_admin_api.py, "
    "test_an_unwritable_journal_or_unusable_keys_file_answer_503)",
    ErrorCode.KEYS_UNAVAILABLE: "a keys file cut in half under a running server (test_admin_api.py, the same test)",
    ErrorCode.INSUFFICIENT_STORAGE: "a journal on a full tmpfs, as root (test_admin_api.py, "
    "test_a_full_disk_answers_507_and_acknowledges_nothing)",
    ErrorCode.HTTP_ERROR: "Starlette's StaticFiles answers 401 when a static file cannot be read, which "
    "root (the tests) never meets: os.stat is made to refuse one path (test_http_error_in_process)",
}


def test_every_code_has_a_way_to_raise_it() -> None:
    assert set(ON_THE_SERVER) | set(SPECIAL) == set(ErrorCode)
    assert not set(ON_THE_SERVER) & set(SPECIAL)


def assert_error(response: httpx.Response, code: ErrorCode, status: int | None = None) -> None:
    """``code`` with its status, as JSON under /api/ and as the error page elsewhere."""
    assert response.status_code == (status or code.status), (code, response.status_code, response.text[:300])
    if response.request.url.path.startswith("/api/"):
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]
        assert response.json()["error"]["code"] == code.value, response.text[:300]
    else:
        assert response.headers["content-type"].startswith("text/html"), response.text[:200]
        assert f"<code>{code.value}</code>" in response.text, response.text[-800:]


@pytest.mark.parametrize("code", list(ON_THE_SERVER), ids=str)
def test_code_is_raised_by_the_server(http: httpx.Client, code: ErrorCode) -> None:
    probe = ON_THE_SERVER[code]
    response = http.request(probe.method, probe.path, headers=dict(probe.headers), content=probe.content)
    assert_error(response, code)


def test_not_ready_and_rate_limited(tmp_path: Path) -> None:
    remote = {"X-Forwarded-For": "198.51.100.30"}  # a client behind a proxy on 127.0.0.1 (trusted by uvicorn)
    with running_service(tmp_path / "no-index-yet", tmp_path / "logs", ready=False,
                         env={"SEARCHSVC_RATE_LIMIT": "1"}) as svc, httpx.Client(base_url=svc.url, timeout=10) as http:
        first = http.get("/api/search", params={"q": "a"}, headers=remote)  # pays its token, then finds no index
        assert_error(first, ErrorCode.NOT_READY)
        assert first.headers["retry-after"]
        assert_error(http.get("/search", params={"q": "a"}), ErrorCode.NOT_READY)  # loopback: never limited
        second = http.get("/api/search", params={"q": "b"}, headers=remote)
        assert_error(second, ErrorCode.RATE_LIMITED)
        assert int(second.headers["retry-after"]) >= 1
        assert_error(http.get("/search", params={"q": "b"}, headers=remote), ErrorCode.RATE_LIMITED)


def in_process(app: Starlette, requests: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Serve ``requests`` in this process, between the app's startup and shutdown as a server runs
    them (httpx's transport alone skips the lifespan, so nothing the app opened would be closed)."""
    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await requests(client)

    asyncio.run(run())


def test_bad_request_in_process(tmp_path: Path) -> None:
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": str(tmp_path / "none")}))

    async def requests(client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/api/search", headers={"Content-Length": "ten"}), ErrorCode.BAD_REQUEST)

    in_process(app, requests)


class RefusingEngine:
    """An engine behind ``SearchEngine`` (what ``create_app(opener=)`` is for) that answers
    everything but searches, which it refuses with a code no one registered."""

    generation = "gen-refusing"
    doc_count = 0

    def search(self, request: SearchRequest) -> SearchResult:
        raise SearchError("made_up_code", "a code the service does not know")

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        return []

    def get_article(self, article_id: str) -> Article | None:
        return None

    def categories(self) -> list[FacetValue]:
        return []

    def latest(self, category_slug: str | None = None, limit: int = 50, offset: int = 0) -> list[Article]:
        return []

    def close(self) -> None:
        pass


class BlockingEngine(RefusingEngine):
    """Searches wait for ``release`` (``started`` says one is running), then find nothing."""

    generation = "gen-blocking"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def search(self, request: SearchRequest) -> SearchResult:
        self.started.set()
        self.release.wait(30)
        return SearchResult(request=request, query=request.q, total=0, tier=Tier.NONE, hits=[], facets={})


def test_overloaded_in_process(tmp_path: Path) -> None:
    """One engine thread and no room to wait: while a search holds the thread, the next expensive
    request is refused at once with 503 overloaded and Retry-After, a cheap one still answers."""
    engine = BlockingEngine()
    environ = {"SEARCHSVC_INDEX_DIR": str(tmp_path), "SEARCHSVC_ENGINE_THREADS": "1", "SEARCHSVC_ADMISSION_QUEUE": "0"}
    app = create_app(Config.from_env(environ=environ), opener=lambda index_dir: engine)

    async def requests(client: httpx.AsyncClient) -> None:
        first = asyncio.ensure_future(client.get("/api/search", params={"q": "bão"}))
        try:
            while not engine.started.is_set():
                await asyncio.sleep(0.01)
            refused = await client.get("/api/search", params={"q": "lũ"})
            assert_error(refused, ErrorCode.OVERLOADED)
            assert int(refused.headers["retry-after"]) >= 1
            page = await client.get("/search", params={"q": "lũ"})
            assert_error(page, ErrorCode.OVERLOADED)
            assert ErrorCode.OVERLOADED.page_message and ErrorCode.OVERLOADED.page_message in page.text
            assert (await client.get("/api/categories")).status_code == 200  # cheap: never refused
        finally:
            engine.release.set()
        assert (await first).status_code == 200

    in_process(app, requests)


def test_internal_error_in_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": str(tmp_path)}),
                     opener=lambda index_dir: RefusingEngine())

    async def requests(client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/api/search", params={"q": "bóng đá"}), ErrorCode.INTERNAL_ERROR)
        assert_error(await client.get("/search", params={"q": "bóng đá"}), ErrorCode.INTERNAL_ERROR)
        assert (await client.get("/api/categories")).json() == {"categories": []}  # the rest still answers

    with caplog.at_level(logging.ERROR, logger="searchsvc.error"):
        in_process(app, requests)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "UnknownEngineCode" in logged and "made_up_code" in logged, logged[-2000:]


def test_http_error_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": str(tmp_path / "none")}))
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).endswith("unreadable.css"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)

    async def requests(client: httpx.AsyncClient) -> None:
        response = await client.get("/static/unreadable.css")
        assert_error(response, ErrorCode.HTTP_ERROR, status=401)
        assert "Lỗi 401" in response.text  # the page says which status

    in_process(app, requests)


def test_article_gone_in_process(tmp_path: Path) -> None:
    from index_helpers import article

    from index.builder import index_articles
    from index.journal import Journal
    from index.publishing import Change, Op

    index_dir = tmp_path / "ix"
    index_articles(index_dir, [article(1, "Bão số 3 đổ bộ", "Mưa lớn ở miền Trung.")], procs=1)
    with Journal(index_dir / "journal.sqlite3") as journal:
        journal.append([Change(Op.DELETE, "gone-7")])
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": str(index_dir)}))

    async def requests(client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/api/articles/gone-7"), ErrorCode.ARTICLE_GONE)
        page = await client.get("/articles/gone-7")
        assert_error(page, ErrorCode.ARTICLE_GONE)
        assert ErrorCode.ARTICLE_GONE.page_message and ErrorCode.ARTICLE_GONE.page_message in page.text
        assert_error(await client.get("/api/articles/never-9"), ErrorCode.ARTICLE_NOT_FOUND)

    in_process(app, requests)


def test_error_pages_show_the_registry_message(http: httpx.Client) -> None:
    """A page shows the member's Vietnamese message, else that of its status's generic code."""
    deep = http.get("/search", params={"q": "a", "page": MAX_RESULT_DEPTH + 1})
    assert ErrorCode.PAGE_TOO_DEEP.page_message and ErrorCode.PAGE_TOO_DEEP.page_message in deep.text
    past = http.get("/feeds/all.atom", params={"limit": 10, "page": MAX_RESULT_DEPTH // 10})
    assert ErrorCode.PAGE_NOT_FOUND.page_message is None  # page_not_found has none of its own:
    assert ErrorCode.NOT_FOUND.page_message and ErrorCode.NOT_FOUND.page_message in past.text
    theme = http.get("/embed/all", params={"theme": "blue"})
    assert "must be one of: light, dark" in theme.text  # neither has one: the English message

