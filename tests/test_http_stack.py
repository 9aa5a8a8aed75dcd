"""The HTTP stack's fast paths, each against what the full path does:

- the repeat lane (``searchsvc.http.repeats``) answers a repeat with exactly the headers and bytes
  the full middleware stack gives, never for a request the stack would answer otherwise (an
  ``Origin``, a ``HEAD``), and stops as soon as a commit changes the answer (a real server);
- uvicorn's httptools cycle writes a response's head with its body (``server.HeadWithBody``),
  driven through uvicorn's own protocol and request cycle;
- the access log writes its lines in batches (``middleware.AccessLog``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from index_helpers import article, two_sections, wait_until
from service_helpers import running_service
from starlette.datastructures import Headers
from uvicorn.config import Config as UvicornConfig
from uvicorn.server import ServerState

from index.builder import index_articles
from searchsvc.http.feed_cache import is_browser_navigation
from searchsvc.http.middleware import AccessLog
from searchsvc.server import COALESCE_COPY_BYTES, HeadTimeoutHttpToolsProtocol

VISIBLE = 5.0  # seconds: the service's commit-to-visible target
PARTNER = "https://partner.example"
PER_REQUEST = {"x-request-id", "date"}


def corpus() -> list[Any]:
    return two_sections(5)


def stable(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's header fields in order, without the per-request ones."""
    return [(k, v) for k, v in response.headers.multi_items() if k not in PER_REQUEST]


def access_lines(log: str) -> dict[str, dict[str, Any]]:
    lines = {}
    for line in log.splitlines():
        if line.startswith('{"time"'):
            entry = json.loads(line)
            lines[entry["request_id"]] = entry
    return lines


def logged(service: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The access-log lines of ``ids``, once all are written (the log writes in batches)."""
    assert wait_until(lambda: set(ids) <= set(access_lines(service.log())), 5), "access-log lines missing"
    return access_lines(service.log())


# (path, request headers): pages and API answers (validators and the response cache), feeds, a
# feed's page for a browser tab, an embed, the OPML (the feed cache).
CASES = [
    ("/api/search?q=" + quote("bóng đá"), {}),
    ("/search?q=" + quote("quốc hội"), {}),
    ("/articles/tt-2", {}),
    ("/api/articles/tt-2", {}),
    ("/c/the-thao", {}),
    ("/", {}),
    ("/feeds/the-thao.rss", {}),
    ("/feeds/the-thao.atom", {"Accept-Encoding": "identity"}),
    ("/feeds/the-thao.json", {}),
    ("/feeds/the-thao.rss", {"Sec-Fetch-Dest": "document", "Accept": "text/html"}),
    ("/feeds/the-thao.json", {"Accept": "text/html"}),  # a tab without Fetch Metadata
    ("/embed/the-thao", {}),
    ("/feeds", {}),
    ("/feeds.opml", {}),
]


def test_repeats_are_answered_as_the_full_stack_answers_them(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    index_articles(index_dir, corpus(), procs=1)
    with running_service(index_dir, tmp_path / "logs", env={"SEARCHSVC_CORS_ORIGINS": PARTNER}) as svc, \
            httpx.Client(base_url=svc.url, timeout=30) as client:
        repeated: list[str] = []  # request ids the lane must have answered
        full: list[str] = []  # ...and the ones it must not have
        for n, (path, headers) in enumerate(CASES):
            plain_tag = ""  # the tag of the plain answers, which the conditional ones name
            for conditional in (False, True):
                answers = []
                for i in range(4):
                    rid = f"case{n}-{int(conditional)}-{i}"
                    extra = {"If-None-Match": plain_tag} if conditional else {}
                    answers.append(client.get(path, headers={**headers, **extra, "X-Request-ID": rid}))
                    if i == 0:
                        full.append(rid)  # the first is the full stack's (the lane records the second at most)
                    elif i >= 2:
                        repeated.append(rid)
                expected = 304 if conditional else 200
                assert [a.status_code for a in answers] == [expected] * 4, path
                assert all(stable(a) == stable(answers[0]) for a in answers), f"{path} {headers}: headers differ"
                assert all(a.content == answers[0].content for a in answers), path
                if not conditional:
                    plain_tag = answers[0].headers["etag"]
            if path.startswith("/api/"):
                with_origin = [client.get(path, headers={**headers, "Origin": PARTNER, "X-Request-ID": f"o{n}-{i}"})
                               for i in range(3)]
                for a in with_origin:
                    assert a.headers["access-control-allow-origin"] == PARTNER, path
                full += [f"o{n}-{i}" for i in range(3)]
            heads = [client.head(path, headers={**headers, "X-Request-ID": f"h{n}-{i}"}) for i in range(3)]
            assert all(h.status_code == 200 and not h.content for h in heads), path
            full += [f"h{n}-{i}" for i in range(3)]

        lines = logged(svc, repeated + full)
        assert [rid for rid in repeated if not lines[rid].get("repeat")] == []
        assert [rid for rid in full if lines[rid].get("repeat")] == []
        assert all(lines[rid]["route"] != "<unmatched>" for rid in repeated)


def test_hostile_headers_get_the_full_stack_answer(tmp_path: Path) -> None:
    """Made-up, huge, repeated and contradictory Accept and Sec-Fetch-Dest values on a feed: each
    request gets what the route gives it (the feed, or its page for a browser tab), whether the lane
    answers or not, and none is a 4xx or 5xx."""
    index_dir = tmp_path / "ix"
    index_articles(index_dir, corpus(), procs=1)
    path = "/feeds/the-thao.rss"
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=30) as client:
        feed = client.get(path, headers={"Accept": "application/rss+xml"})
        page = client.get(path, headers={"Sec-Fetch-Dest": "document"})
        assert feed.headers["content-type"].startswith("application/rss+xml")
        assert page.headers["content-type"].startswith("text/html")
        hostile: list[list[tuple[str, str]]] = [
            [("Accept", "text/html" + ", x/" + "y" * 8000)],  # a browser's, padded
            [("Accept", "*/*;" * 500)],
            [("Accept", "text/html"), ("Accept", "application/rss+xml")],  # the route reads the first
            [("Accept", "application/rss+xml"), ("Accept", "text/html")],
            [("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Dest", "empty")],
            [("Sec-Fetch-Dest", "empty"), ("Accept", "text/html")],
            [("Sec-Fetch-Dest", ""), ("Accept", "text/html")],
            [("Sec-Fetch-Dest", "DOCUMENT")],
        ]
        for n in range(200):  # distinct values too: the recordings stay bounded by their own key
            hostile.append([("Accept", f"text/html;q=0.{n % 10}, x/{n}")])
        for headers in hostile:
            for _ in range(3):  # recorded, then answered by the lane
                answer = client.get(path, headers=headers)
                assert answer.status_code == 200, headers
                # the route's own rule, on the headers as sent
                tab = is_browser_navigation(Headers(raw=[(k.lower().encode(), v.encode()) for k, v in headers]))
                assert answer.content == (page.content if tab else feed.content), headers


def test_a_commit_ends_the_repeats_of_what_it_changed(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    articles = corpus()
    index_articles(index_dir, articles, procs=1)
    touched = ["/feeds/thoi-su.atom", "/c/thoi-su", "/api/articles/ts-0", "/embed/thoi-su"]
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=30) as client:
        before = {}
        for path in touched:
            for _ in range(3):  # the last ones from the lane
                plain = client.get(path)
                assert client.get(path, headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
            before[path] = plain

        corrected = article("ts-0", "Quốc hội họp phiên khai mạc (đã sửa)", "Quốc hội thảo luận dự luật số 0.",
                            "Thời sự", published=articles[0].published)
        index_articles(index_dir, [corrected], procs=1)
        assert wait_until(lambda: "đã sửa" in client.get("/api/articles/ts-0").text, VISIBLE)
        for path in touched:
            again = client.get(path, headers={"If-None-Match": before[path].headers["etag"]})
            assert again.status_code == 200 and again.headers["etag"] != before[path].headers["etag"], path
            assert "đã sửa" in again.text, path
            for _ in range(3):
                assert client.get(path).content == again.content, path


# --- the head written with the body ----------------------------------------------------------------


class RecordingTransport(asyncio.Transport):
    """What uvicorn's protocol writes, call by call (the kernel's side of the socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.writes.append(b"".join(lines))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def exchange(request: bytes, body: bytes = b"hello", chunks: int = 1) -> RecordingTransport:
    """``request`` through uvicorn's httptools protocol (ours), answered by an app that sends a
    ``200`` with ``body`` in ``chunks`` pieces; the writes it made."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        step = max(1, len(body) // chunks)
        for start in range(0, len(body), step):
            piece = body[start:start + step]
            await send({"type": "http.response.body", "body": piece, "more_body": start + step < len(body)})
        if not body:
            await send({"type": "http.response.body", "body": b""})

    config = UvicornConfig(app=app, http=HeadTimeoutHttpToolsProtocol, lifespan="off", log_level="warning")
    config.load()
    protocol = HeadTimeoutHttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                            _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(100):
        await asyncio.sleep(0)
        if not protocol.tasks and protocol.cycle is not None and protocol.cycle.response_complete:
            break
    protocol.connection_lost(None)
    return transport


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_response_is_one_write() -> None:
    writes = asyncio.run(exchange(GET)).writes
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nhello")


def test_a_head_response_is_written_when_it_completes() -> None:
    writes = asyncio.run(exchange(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")).writes
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\n")


def test_an_empty_body_and_a_streamed_one() -> None:
    writes = asyncio.run(exchange(GET, body=b"")).writes
    assert len(writes) == 1 and writes[0].endswith(b"content-length: 0\r\n\r\n")
    writes = asyncio.run(exchange(GET, body=b"abcdef", chunks=3)).writes
    assert len(writes) == 3 and writes[0].endswith(b"\r\n\r\nab") and writes[1:] == [b"cd", b"ef"]


def test_a_large_body_goes_with_its_head_uncopied() -> None:
    body = b"x" * (COALESCE_COPY_BYTES + 1)
    writes = asyncio.run(exchange(GET, body=body)).writes
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n" + body)


def test_100_continue_is_written_before_the_head_is_held() -> None:
    request = (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")

    async def run() -> RecordingTransport:
        return await exchange(request + b"ok")

    writes = asyncio.run(run()).writes
    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert len(writes) == 2 and writes[1].startswith(b"HTTP/1.1 200 OK") and writes[1].endswith(b"hello")


def test_pipelined_requests_on_a_real_server_keep_their_order(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    index_articles(index_dir, corpus(), procs=1)
    with running_service(index_dir, tmp_path / "logs") as svc:
        host, port = svc.url.removeprefix("http://").split(":")
        requests = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /api/articles/tt-1 HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"GET /api/articles/tt-1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n",
                    b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"".join(requests))
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        heads = data.split(b"HTTP/1.1 ")[1:]
        assert [h[:3] for h in heads] == [b"200", b"200", b"200", b"404"]
        article_json = heads[2].split(b"\r\n\r\n", 1)[1]
        assert json.loads(article_json)["id"] == "tt-1"


# --- the access log --------------------------------------------------------------------------------


def test_access_log_lines_are_written_in_batches() -> None:
    written: list[str] = []
    log = AccessLog(written.append)

    async def run() -> None:
        log.line({"n": 1})
        log.line({"n": 2, "path": "/tìm"})
        assert written == []  # not yet: one write for the batch
        await asyncio.sleep(AccessLog.FLUSH_SECONDS * 3)
        assert written == ['{"n": 1}\n{"n": 2, "path": "/tìm"}\n']
        big = "x" * AccessLog.FLUSH_BYTES
        log.line({"big": big})  # past the byte bound: written at once
        assert len(written) == 2 and big in written[1]

    asyncio.run(run())
    log.line({"n": 3})  # no loop running: written at once
    assert written[-1] == '{"n": 3}\n'


@pytest.mark.parametrize("failure", [OSError("disk full"), ValueError("I/O operation on closed file")])
def test_access_log_survives_a_broken_stderr(failure: Exception) -> None:
    def broken(text: str) -> None:
        raise failure

    log = AccessLog(broken)
    log.line({"n": 1})  # no loop: flushed at once, and the failure is swallowed
    log.flush()
