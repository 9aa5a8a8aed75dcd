"""Paths from requests never escape their roots, and the index directory is only what the operator gave.

* Static files, feeds, articles, categories and embeds are asked for with ``..``, ``%2e%2e``,
  ``%2f``, backslashes, overlong UTF-8 and NUL, sent as raw request targets (an HTTP client would
  normalise dot segments before sending): the answer is a 404/400, never a file from outside
  ``searchsvc/static`` and never a 500.
* Article ids that contain dot segments get links (pages, API, every feed format, embeds) that a
  client resolves back to the article itself, not to another path of the site.
* ``--index-dir`` is the only index a server reads: no parameter, header or cookie changes it, the
  flag wins over ``SEARCHSVC_INDEX_DIR``, ``searchsvc index`` writes nothing outside it, and a
  ``CURRENT`` pointer naming anything but a ``gen-NNNNNN`` directory inside it is not followed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import httpx
import lxml.html
import pytest
from lxml import etree
from service_helpers import (
    REPO_ROOT,
    SAMPLE_ARTICLES,
    ServiceProcess,
    build_index,
    clean_env,
    running_service,
)

from index import store
from index.engine import WhooshEngine

# What must never come back: markers of files outside the static directory.
SECRETS = (b"root:x:0:0", b"# searchsvc", b"class Config", b"def create_app", b"gen-0000")


def raw_request(url: str, target: bytes, *, method: bytes = b"GET", headers: bytes = b"", body: bytes = b"",
                timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with exactly ``target`` as the request target; (status, headers, body).

    Status 0 means the server closed the connection without an answer.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: " + parts.netloc.encode()
                         + b"\r\nConnection: close\r\n" + headers + b"\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (400) and close after reading only the start of an oversized
            # request: the answer is still in our receive buffer unless a reset discarded it.
            pass
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 "):
        return 0, {}, data
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    return status, fields, payload


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


TRAVERSALS = [
    b"/static/../../etc/passwd",
    b"/static/../../../../../../etc/passwd",
    b"/static/%2e%2e/%2e%2e/etc/passwd",
    b"/static/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    b"/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    b"/static/%2e%2e%2f%2e%2e%2fREADME.md",
    b"/static/..%2fconfig.py",
    b"/static/%2e%2e/config.py",
    b"/static/..%5cconfig.py",
    b"/static/..\\config.py",
    b"/static/%252e%252e/config.py",
    b"/static/%c0%ae%c0%ae/config.py",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/static/style.css%00.py",
    b"/static/%00",
    b"/static/",
    b"/static/..",
    b"/static/.",
    b"/../../etc/passwd",
    b"//etc/passwd",
    b"/%2e%2e/%2e%2e/etc/passwd",
    b"/feeds/..%2f..%2fetc%2fpasswd.rss",
    b"/feeds/%2e%2e%2f%2e%2e%2fREADME.md.rss",
    b"/feeds/../../etc/passwd.rss",
    b"/feeds/%00.rss",
    b"/feeds/all.%00",
    b"/feeds/..%2ffeed.xsl",
    b"/articles/..%2f..%2fREADME.md",
    b"/articles/../../README.md",
    b"/articles/%2e%2e/%2e%2e/README.md",
    b"/articles/%00",
    b"/articles/..%00",
    b"/api/articles/..%2f..%2fREADME.md",
    b"/api/articles/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/api/articles/%00",
    b"/embed/%2e%2e",
    b"/embed/..",
    b"/embed/..%2f..%2fetc%2fpasswd",
    b"/embed/%00",
    b"/c/%2e%2e",
    b"/c/..%2f..%2fetc",
    b"/c/%00",
    b"/%00",
    b"/feeds.opml%00",
    b"/embed.js%00",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=lambda t: t.decode("latin-1"))
def test_traversal_never_escapes(service: ServiceProcess, target: bytes) -> None:
    status, headers, body = raw_request(service.url, target)
    assert status in (400, 404), (status, body[:300])
    assert not any(secret in body for secret in SECRETS), body[:500]
    content_type = headers.get("content-type", "")
    if target.startswith(b"/api/"):
        assert content_type.startswith("application/json") and json.loads(body)["error"]["code"]
    else:
        assert content_type.startswith("text/html"), content_type


def test_static_files_still_served(service: ServiceProcess) -> None:
    """The raw client is right: the same paths without traversal work, decoded or not."""
    for target in (b"/static/style.css", b"/static/%73tyle.css", b"/static/./style.css"):
        status, headers, body = raw_request(service.url, target)
        assert status == 200 and headers["content-type"].startswith("text/css"), (target, status)
    assert raw_request(service.url, b"/feeds/all.rss")[0] == 200


def test_no_unhandled_error_logged(service: ServiceProcess) -> None:
    log = service.log()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]


# --- article ids with dot segments --------------------------------------------------------------

DOT_IDS = [
    "x/../../../../etc/passwd",
    "../README.md",
    "a/./b/../c",
    "./.",
    "ok/%2e%2e/z",
    "a/b/..",
]
DOT_SEGMENTS = {".", "..", ".%2e", "%2e.", "%2e%2e"}  # what WHATWG URL parsing removes (case-insensitive)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def dot_records() -> list[dict]:
    return [
        {"id": article_id, "title": f"Bài kiểm tra đường dẫn số {i}", "body": f"Nội dung thử nghiệm số {i}.",
         "category": "Đường dẫn", "published": f"2020-01-{i + 1:02d}T08:00:00+07:00"}
        for i, article_id in enumerate(DOT_IDS)
    ]


@pytest.fixture(scope="module")
def dot_service(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dots")
    index_dir = tmp / "idx"
    build_index([write_jsonl(tmp / "dots.jsonl", dot_records())], index_dir)
    with running_service(index_dir, tmp / "logs") as svc:
        yield svc


def test_dot_segment_ids_link_to_themselves(dot_service: ServiceProcess) -> None:
    base = dot_service.url
    with httpx.Client(base_url=base, timeout=30) as http:
        for record in dot_records():
            article_id = record["id"]
            encoded = quote(article_id, safe="")
            page = http.get(f"/articles/{encoded}")  # httpx keeps %2F and %2E escaped
            assert page.status_code == 200 and record["title"] in page.text, (article_id, page.status_code)
            api = http.get(f"/api/articles/{encoded}").json()
            assert api["id"] == article_id and urlsplit(api["url"]).path == f"/articles/{encoded}"

        links: list[tuple[str, str]] = []  # (where, href)
        hits = http.get("/api/search", params={"q": "kiểm tra đường dẫn", "per_page": 50}).json()["hits"]
        assert len(hits) == len(DOT_IDS)
        links += [("api", h["url"]) for h in hits]
        for path in ("/search?q=ki%E1%BB%83m+tra", "/c/duong-dan", "/", "/embed/duong-dan", "/embed/all"):
            doc = lxml.html.fromstring(http.get(path).content)
            links += [(path, a.get("href")) for a in doc.iter("a") if "/articles/" in (a.get("href") or "")]
        for fmt in ("rss", "atom"):
            tree = etree.fromstring(http.get(f"/feeds/duong-dan.{fmt}").content)
            for el in tree.iter():
                href = el.get("href") if el.tag.endswith("}link") else (el.text if el.tag == "link" else None)
                if href and "/articles/" in href:
                    links.append((fmt, href))
        feed = http.get("/feeds/duong-dan.json").json()
        links += [("json", item["url"]) for item in feed["items"]]

        assert len(links) >= 4 * len(DOT_IDS)
        for where, href in links:
            path = urlsplit(urljoin(base + "/", href)).path
            # nothing a browser or feed reader would resolve: no dot segment, plain or encoded
            assert not any(seg.lower() in DOT_SEGMENTS for seg in path.split("/")), (where, href)
            assert path.startswith("/articles/") and unquote(path[len("/articles/"):]) in DOT_IDS, (where, href)
            target = http.get(href.split("?")[0])
            assert target.status_code == 200 and "Bài kiểm tra đường dẫn" in target.text, (where, href)


@pytest.mark.parametrize("article_id", [".", "..", " .. ", "\u200b.."])
def test_ids_no_url_can_name_are_refused(tmp_path: Path, article_id: str) -> None:
    """An article page for id ".." would be /articles/.., which every client turns into "/"."""
    from index.readers import ReadError, read_sources

    source = write_jsonl(tmp_path / "a.jsonl", [{**dot_records()[0], "id": article_id}])
    (item,) = list(read_sources([str(source)]))
    assert isinstance(item, ReadError) and "bad id" in item.reason


# --- the index directory -------------------------------------------------------------------------

UNIQUE = "Chimcánhcụt"
OTHER_TITLE = f"Bài của chỉ mục khác {UNIQUE}"


def other_index(tmp: Path) -> Path:
    index_dir = tmp / "other-idx"
    record = {"id": "other-1", "title": OTHER_TITLE, "body": f"{UNIQUE} xuất hiện ở đây.",
              "category": "Khác biệt", "published": "2020-02-02"}
    build_index([write_jsonl(tmp / "other.jsonl", [record])], index_dir)
    return index_dir


def open_paths(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            out.append(os.readlink(fd))
        except OSError:
            pass
    return out


def test_requests_cannot_change_the_index_dir(service: ServiceProcess, tmp_path: Path) -> None:
    other = other_index(tmp_path)
    attempts = [
        {"params": {"q": UNIQUE, "index_dir": str(other)}},
        {"params": {"q": UNIQUE, "index-dir": str(other), "SEARCHSVC_INDEX_DIR": str(other)}},
        {"params": {"q": UNIQUE}, "headers": {"X-Index-Dir": str(other), "SEARCHSVC_INDEX_DIR": str(other)}},
        {"params": {"q": UNIQUE}, "headers": {"Cookie": f"index_dir={other}; SEARCHSVC_INDEX_DIR={other}"}},
        {"params": {"q": UNIQUE}, "headers": {"X-Forwarded-Prefix": str(other), "X-Original-URL": str(other)}},
    ]
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for attempt in attempts:
            for path in ("/api/search", "/search", "/feeds/search.json"):
                response = http.get(path, **attempt)
                assert response.status_code == 200, (path, attempt)
                assert OTHER_TITLE not in response.text, (path, attempt)  # the query itself is echoed
        assert http.get("/readyz").json()["articles"] == len(SAMPLE_ARTICLES)
        assert http.get("/api/articles/other-1").status_code == 404
    assert not any(p.startswith(str(other)) for p in open_paths(service.proc.pid))


def test_flag_wins_over_environment(built_index: Path, tmp_path: Path) -> None:
    other = other_index(tmp_path)
    with running_service(built_index, tmp_path / "logs", env={"SEARCHSVC_INDEX_DIR": str(other)}) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as http:
            assert http.get("/readyz").json()["articles"] == len(SAMPLE_ARTICLES)
            assert http.get("/api/search", params={"q": UNIQUE}).json()["total"] == 0


def test_index_writes_only_inside_its_index_dir(tmp_path: Path) -> None:
    """``searchsvc index --index-dir X`` run from another directory, with SEARCHSVC_INDEX_DIR
    pointing elsewhere, creates nothing but X."""
    work = tmp_path / "cwd"
    work.mkdir()
    decoy = tmp_path / "decoy"
    target = tmp_path / "target"
    source = write_jsonl(tmp_path / "in" / "a.jsonl", dot_records()[:2])
    env = clean_env(SEARCHSVC_INDEX_DIR=str(decoy), PYTHONPATH=str(REPO_ROOT))
    for args in (["index", str(source)], ["index", str(source), "--rebuild"], ["delete", DOT_IDS[0]]):
        proc = subprocess.run([sys.executable, "-m", "searchsvc", *args, "--index-dir", str(target)], cwd=work,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert list(work.iterdir()) == []
    assert not decoy.exists()
    assert store.current_generation(target) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "in", "target"]


@pytest.mark.parametrize("pointer", ["../elsewhere/gen-000001", "/etc", "gen-000001/../../elsewhere/gen-000001",
                                     "..", ".", "gen-1", "gen-000001\x00", "../../../../../../etc/passwd"])
def test_current_pointer_cannot_leave_the_index_dir(built_index: Path, tmp_path: Path, pointer: str) -> None:
    """CURRENT is the one file naming what to open: anything but a gen-NNNNNN directory of this
    index directory is "no index" (503 not_ready for the service), never followed."""
    elsewhere = tmp_path / "elsewhere"
    live = store.current_generation(built_index)
    elsewhere.mkdir()
    os.symlink(built_index / live, elsewhere / "gen-000001")  # a real index behind the pointer
    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    (index_dir / "CURRENT").write_text(pointer, encoding="utf-8", errors="surrogateescape")
    assert store.current_generation(index_dir) is None
    with pytest.raises(FileNotFoundError):
        WhooshEngine.open(index_dir)
