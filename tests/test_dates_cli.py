"""Extreme dates, CLI failures and the default base URL (issue 10: defects 1 and 10, base URL).

* Every date the parsers accept is one the engine can use: the day range is defined once
  (``index.api.MIN_DATE``/``MAX_DATE``, the readers' years) and days outside it are refused by
  the HTTP parameters (400 ``bad_date`` on every route family that takes ``from``/``to``), by the
  CLI and by ``SearchRequest`` itself; before, ``0001-01-01`` and ``9999-12-31`` overflowed in the
  engine's day-start conversion (500, or a traceback from the CLI).
* The CLI answers every expected failure with one ``error: …`` line and a documented exit status.
* Without ``--base-url``, absolute links name the host and port actually served.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from index_helpers import article, build
from service_helpers import (
    GRACEFUL_TIMEOUT,
    REPO_ROOT,
    SAMPLE_ARTICLES,
    ServiceProcess,
    clean_env,
    free_port,
    write_corpus,
)

from index.api import SearchError, SearchRequest
from index.article import VN_TZ
from index.readers import MAX_YEAR, MIN_YEAR

FIRST_DAY, LAST_DAY = date(MIN_YEAR, 1, 1), date(MAX_YEAR, 12, 31)
OUTSIDE = ["0001-01-01", "9999-12-31", (FIRST_DAY - timedelta(days=1)).isoformat(),
           (LAST_DAY + timedelta(days=1)).isoformat()]
# Every route family that takes from/to.
DATE_ROUTES = ["/api/search", "/search", "/", "/feeds/search.rss", "/feeds/search.atom", "/feeds/search.json",
               "/embed/search"]


# --- the library ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["date_from", "date_to"])
@pytest.mark.parametrize("day", [date(1, 1, 1), date(9999, 12, 31), FIRST_DAY - timedelta(days=1),
                                 LAST_DAY + timedelta(days=1), datetime(9999, 12, 31, 23, 59)])
def test_search_request_refuses_days_the_engine_cannot_use(name: str, day: date) -> None:
    with pytest.raises(SearchError) as info:
        SearchRequest(**{name: day})
    assert info.value.code == "bad_date"
    request = SearchRequest()
    with pytest.raises(SearchError):  # assignment is checked too: no way round the check
        setattr(request, name, day)
    assert getattr(request, name) is None


def test_engine_filters_on_the_first_and_last_day(tmp_path: Path) -> None:
    """The range's ends are usable days: each selects exactly the article published on it."""
    first = datetime.combine(FIRST_DAY, datetime.min.time(), tzinfo=VN_TZ)
    last = datetime.combine(LAST_DAY, datetime.max.time(), tzinfo=VN_TZ)
    with build(tmp_path / "idx", [article("old-1", "Tin cũ", "Tin tức cũ", published=first),
                                  article("new-1", "Tin mới", "Tin tức mới", published=last),
                                  article("mid-1", "Tin giữa", "Tin tức giữa")]) as engine:

        def ids(**kwargs: date) -> set[str]:
            return {hit.article.id for hit in engine.search(SearchRequest(**kwargs)).hits}

        assert ids(date_from=FIRST_DAY, date_to=LAST_DAY) == {"old-1", "new-1", "mid-1"}
        assert ids(date_from=FIRST_DAY, date_to=FIRST_DAY) == {"old-1"}
        assert ids(date_from=LAST_DAY) == {"new-1"}
        assert ids(date_to=FIRST_DAY) == {"old-1"}


# --- HTTP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", OUTSIDE)
@pytest.mark.parametrize("name", ["from", "to"])
@pytest.mark.parametrize("path", DATE_ROUTES)
def test_out_of_range_dates_are_400_bad_date_everywhere(http: httpx.Client, path: str, name: str, value: str) -> None:
    response = http.get(path, params={"q": "bóng đá", name: value})
    assert response.status_code == 400, (path, name, value, response.text[:300])
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "bad_date"
        assert str(FIRST_DAY) in response.json()["error"]["message"]
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert "YYYY-MM-DD" in response.text  # the usual bad_date page


@pytest.mark.parametrize("path", DATE_ROUTES)
def test_the_whole_range_is_accepted_everywhere(http: httpx.Client, path: str) -> None:
    response = http.get(path, params={"from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat()})
    assert response.status_code == 200, (path, response.text[:300])
    if path == "/api/search":
        assert response.json()["total"] == len(SAMPLE_ARTICLES)


# --- the command line ----------------------------------------------------------------------------


def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchsvc", *args], cwd=REPO_ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_error(proc: subprocess.CompletedProcess, status: int) -> str:
    """One ``error:`` line on stderr, no traceback, nothing on stdout, the documented status."""
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert proc.stdout == ""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    return lines[0]


@pytest.mark.parametrize("option,value", [("--from", "0001-01-01"), ("--to", "9999-12-31"),
                                          ("--from", OUTSIDE[2]), ("--to", OUTSIDE[3]), ("--from", "2014-02-30")])
def test_cli_search_refuses_bad_dates(built_index: Path, option: str, value: str) -> None:
    line = assert_one_error(cli("search", "bóng đá", option, value, "--index-dir", str(built_index)), 2)
    assert option in line and value in line


def test_cli_search_accepts_the_whole_range(built_index: Path) -> None:
    proc = cli("search", "--json", "--from", FIRST_DAY.isoformat(), "--to", LAST_DAY.isoformat(),
               "--index-dir", str(built_index))
    assert proc.returncode == 0, proc.stderr
    assert f'"total": {len(SAMPLE_ARTICLES)}' in proc.stdout


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-dir"
    path.write_text("x", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [
    ["stats"], ["search", "bóng"], ["delete", "some-id"], ["index", "{corpus}"], ["serve", "--port", "{port}"],
])
@pytest.mark.parametrize("where", ["file", "below a file"])
def test_cli_index_dir_that_is_a_file(tmp_path: Path, a_file: Path, command: list[str], where: str) -> None:
    corpus = write_corpus(tmp_path / "corpus", SAMPLE_ARTICLES[:1])
    args = [part.format(corpus=corpus, port=free_port()) for part in command]
    index_dir = a_file if where == "file" else a_file / "idx"
    line = assert_one_error(cli(*args, "--index-dir", str(index_dir), timeout=30), 2)
    assert str(index_dir) in line and "not a directory" in line


@pytest.mark.parametrize("command,env", [
    (["serve"], {"SEARCHSVC_PORT": "http"}),  # (a --port option would override it)
    (["serve", "--port", "{port}"], {"SEARCHSVC_WORKERS": "0"}),
    (["serve", "--port", "{port}"], {"SEARCHSVC_BASE_URL": "ftp://x"}),
    (["serve", "--port", "{port}"], {"SEARCHSVC_ACCESS_LOG": "maybe"}),
    (["serve", "--port", "99999"], {}),
    (["index", "{corpus}", "--index-dir", "{tmp}/idx"], {"SEARCHSVC_LIMITMB": "lots"}),
    (["index", "{corpus}", "--index-dir", "{tmp}/idx"], {"SEARCHSVC_SEGMENT_DOCS": "-5"}),
])
def test_cli_configuration_errors(tmp_path: Path, command: list[str], env: dict[str, str]) -> None:
    corpus = write_corpus(tmp_path / "corpus", SAMPLE_ARTICLES[:1])
    args = [part.format(corpus=corpus, port=free_port(), tmp=tmp_path) for part in command]
    line = assert_one_error(cli(*args, timeout=30, **env), 4)
    assert line.startswith("error: configuration: ")
    assert (next(iter(env)) if env else "SEARCHSVC_PORT") in line
    assert not (tmp_path / "idx").exists()  # refused before anything was written


def test_cli_other_failures(tmp_path: Path, built_index: Path) -> None:
    assert_one_error(cli("search", "x", "--index-dir", str(tmp_path / "nothing")), 2)  # no index yet
    assert_one_error(cli("search", "x", "--limit", "0", "--index-dir", str(built_index)), 2)  # refused search
    assert_one_error(cli("nonsense"), 2)  # usage
    assert_one_error(cli("search", "--page", "x"), 2)


def test_cli_closed_stdout_is_not_a_traceback(built_index: Path) -> None:
    """``searchsvc stats --json | head -0``: the reader is gone before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "searchsvc", "stats", "--json", "--index-dir", str(built_index)],
                              cwd=REPO_ROOT, env=clean_env(), stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


# --- the default base URL ------------------------------------------------------------------------


class ServiceWithoutBaseUrl(ServiceProcess):
    """``searchsvc serve`` as an operator starts it: no --base-url, a port other than 8000."""

    def start(self) -> ServiceWithoutBaseUrl:
        self.port = self.port or free_port()
        args = [sys.executable, "-m", "searchsvc", "serve", "--index-dir", str(self.index_dir),
                "--host", "127.0.0.1", "--port", str(self.port), "--timeout-graceful-shutdown", str(GRACEFUL_TIMEOUT)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=clean_env(**self.env), stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.wait_for("/readyz")
        return self


def test_links_name_the_address_served_without_base_url(built_index: Path, tmp_path: Path) -> None:
    svc = ServiceWithoutBaseUrl(built_index, tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=svc.url, timeout=30) as http:
            hits = http.get("/api/search", params={"q": "bóng đá"}).json()["hits"]
            assert hits and all(hit["url"].startswith(svc.url + "/articles/") for hit in hits)
            categories = http.get("/api/categories").json()["categories"]
            assert all(c["url"].startswith(svc.url + "/c/") for c in categories)
            assert http.get("/api/openapi.json").json()["servers"] == [{"url": svc.url}]
            assert f'xmlUrl="{svc.url}/feeds/' in http.get("/feeds.opml").text
            link = http.get(hits[0]["url"])  # the link works: it is this server
            assert link.status_code == 200
    finally:
        assert svc.stop() == 0, svc.log()[-3000:]


def test_default_base_url_for_wildcard_and_ipv6_hosts() -> None:
    from searchsvc.config import Config

    assert Config.from_env({"port": 9123}, environ={}).base_url == "http://127.0.0.1:9123"
    assert Config.from_env({"host": "0.0.0.0", "port": 81}, environ={}).base_url == "http://127.0.0.1:81"
    assert Config.from_env({"host": "::", "port": 81}, environ={}).base_url == "http://[::1]:81"
    assert Config.from_env({"host": "::1", "port": 81}, environ={}).base_url == "http://[::1]:81"
    assert Config.from_env({"host": "news.example", "port": 81}, environ={}).base_url == "http://news.example:81"
    explicit = Config.from_env({"port": 81, "base_url": "https://tin.example/"}, environ={})
    assert explicit.base_url == "https://tin.example"
    assert Config.from_env(environ=explicit.to_env()) == explicit
