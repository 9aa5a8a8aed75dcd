"""The service over its life: starting before any index exists, re-indexing under load, several
workers sharing metrics, per-client rate limiting, and clean SIGTERM shutdowns.

Each test runs its own ``searchsvc serve`` (the ``running_service`` context manager asserts exit
status 0 after SIGTERM) on an index built or updated by ``searchsvc index`` in another process.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

import httpx
from service_helpers import (
    SAMPLE_ARTICLES,
    SampleArticle,
    build_index,
    run_cli,
    running_service,
    write_corpus,
)

from searchsvc.config import DEFAULT_MALLOC_ARENAS, DEFAULT_WORKER_NICE

NEW_ARTICLE = SampleArticle(
    "moi-chim-hong-hac-2015",
    "Môi trường",
    "Đàn chim hồng hạc quý hiếm xuất hiện ở hồ Tà Đùng",
    "03/03/2015",
    77,
    (
        "Người dân phát hiện một đàn chim hồng hạc quý hiếm kiếm ăn ven hồ Tà Đùng vào sáng sớm.",
        "Các nhà khoa học cho biết đây là lần đầu tiên loài chim này được ghi nhận tại khu vực.",
    ),
)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_starts_without_index_then_becomes_ready(tmp_path: Path) -> None:
    index_dir = tmp_path / "not-yet"
    with running_service(index_dir, tmp_path / "logs", ready=False) as svc:
        with httpx.Client(base_url=svc.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
            assert ready.json()["error"]["code"] == "not_ready"
            assert ready.headers["retry-after"]
            for path in ("/api/search?q=x", "/api/suggest?q=x", "/api/categories", "/api/articles/x"):
                response = http.get(path)
                assert response.status_code == 503, path
                assert response.json()["error"]["code"] == "not_ready"
            page = http.get("/search", params={"q": "x"})
            assert page.status_code == 503 and "chưa sẵn sàng" in page.text
            assert "etag" not in page.headers  # nothing is cached while there is no index
            assert re.search(r"^searchsvc_ready 0", http.get("/metrics").text, re.M)
            # bad parameters are still 400s, not 503s: validation does not need the index
            assert http.get("/api/search?sort=x").status_code == 400

            build_index([write_corpus(tmp_path / "corpus")], index_dir)  # another process builds it
            assert wait_until(lambda: http.get("/readyz").status_code == 200), "never became ready"
            assert http.get("/readyz").json()["articles"] == len(SAMPLE_ARTICLES)
            assert http.get("/api/search", params={"q": "bóng đá"}).json()["total"] >= 2
            assert re.search(r"^searchsvc_ready 1", http.get("/metrics").text, re.M)


def test_reindex_while_serving(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    index_dir = tmp_path / "idx"
    build_index([corpus], index_dir)
    failures: list[str] = []
    counts = {"requests": 0}
    stop = threading.Event()

    with running_service(index_dir, tmp_path / "logs") as svc:

        def hammer() -> None:
            paths = ["/api/search?q=b%C3%B3ng+%C4%91%C3%A1", "/search?q=dak+nong", "/api/suggest?q=dak", "/c/the-thao"]
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    path = paths[i % len(paths)]
                    i += 1
                    try:
                        response = client.get(path)
                        if response.status_code != 200:
                            failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{path}: {exc!r}")
                    counts["requests"] += 1

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            with httpx.Client(base_url=svc.url, timeout=30) as http:
                before = http.get("/readyz").json()
                assert http.get("/api/search", params={"q": "hồng hạc"}).json()["total"] == 0

                # 1. upsert one new file with the CLI in another process
                (corpus / f"{NEW_ARTICLE.stem}.txt").write_text(NEW_ARTICLE.text(), encoding="utf-8")
                run_cli("index", str(corpus / f"{NEW_ARTICLE.stem}.txt"), "--index-dir", str(index_dir))

                def found() -> bool:
                    hits = http.get("/api/search", params={"q": "hồng hạc"}).json()["hits"]
                    return any(h["title"] == NEW_ARTICLE.title for h in hits)

                assert wait_until(found, timeout=15), "the new article never appeared"
                after = http.get("/readyz").json()
                assert after["articles"] == before["articles"] + 1
                assert after["generation"] != before["generation"]
                page = http.get("/search", params={"q": "hồng hạc"}).text
                assert "hồng hạc" in page and "<mark>" in page

                # 2. a full --rebuild switches to a new generation while requests keep coming
                run_cli("index", str(corpus), "--index-dir", str(index_dir), "--rebuild")
                assert wait_until(lambda: http.get("/readyz").json()["generation"] != after["generation"])
                assert found()
                assert http.get("/readyz").json()["articles"] == len(SAMPLE_ARTICLES) + 1
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    assert counts["requests"] > 20, counts
    assert not failures, failures[:10]


def test_etag_changes_with_the_index(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", SAMPLE_ARTICLES[:4])
    index_dir = tmp_path / "idx"
    build_index([corpus], index_dir)
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url) as http:
        etag = http.get("/api/search", params={"q": ""}).headers["etag"]
        assert http.get("/api/search", params={"q": ""}, headers={"If-None-Match": etag}).status_code == 304
        build_index([write_corpus(tmp_path / "more", SAMPLE_ARTICLES[4:6])], index_dir)
        assert wait_until(lambda: http.get("/readyz").json()["articles"] == 6)

        def revalidated() -> bool:
            response = http.get("/api/search", params={"q": ""}, headers={"If-None-Match": etag})
            return response.status_code == 200 and response.json()["total"] == 6

        assert wait_until(revalidated, timeout=5), "a stale ETag was still accepted after re-indexing"


def children_of(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them (the applier's supervisor is
    a thread of its own)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def nice_of(pid: int) -> int:
    """The nice value of the process's main thread (``/proc/PID/stat``, field 19)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def test_two_workers_share_metrics_and_stop_cleanly(built_index: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with running_service(built_index, tmp_path / "logs", workers=2, env={"TMPDIR": str(scratch)}) as svc:
        assert any(p.name.startswith("searchsvc-metrics-") for p in scratch.iterdir())
        with httpx.Client(base_url=svc.url, timeout=10) as http:
            # every worker must be up before counting: new connections are spread over both
            assert wait_until(lambda: http.get("/readyz").status_code == 200)
            for _ in range(40):
                with httpx.Client(base_url=svc.url, timeout=10) as fresh:  # new connection each time
                    assert fresh.get("/api/categories").status_code == 200
            text = http.get("/metrics").text
        match = re.search(
            r'^searchsvc_http_requests_total\{method="GET",route="/api/categories",status="200"\} (\S+)$'
            r'|^searchsvc_http_requests_total\{route="/api/categories",method="GET",status="200"\} (\S+)$',
            text,
            re.M,
        )
        assert match, text[:2000]
        assert float(match.group(1) or match.group(2)) == 40.0  # both workers' counts merged
        pids = {line for line in svc.log().splitlines() if "Started server process" in line}
        assert len(pids) == 2, svc.log()[-2000:]
        # The workers take less CPU priority than the publishing applier (SEARCHSVC_WORKER_NICE).
        assert svc.proc is not None
        children = {pid: (nice_of(pid), command_of(pid)) for pid in children_of(svc.proc.pid)}
        workers = [nice for nice, command in children.values() if "spawn_main" in command]
        appliers = [nice for nice, command in children.values() if "searchsvc apply" in command]
        assert workers == [DEFAULT_WORKER_NICE] * 2 and appliers == [0], children
        # Each serving process starts with at most DEFAULT_MALLOC_ARENAS glibc heaps (index.memory).
        arenas = [environ_of(pid).get("MALLOC_ARENA_MAX") for pid in children_of(svc.proc.pid)
                  if "spawn_main" in command_of(pid) or "searchsvc apply" in command_of(pid)]
        assert arenas == [str(DEFAULT_MALLOC_ARENAS)] * 3, arenas
    # the fresh multiprocess directory is removed after a clean stop
    assert not any(p.name.startswith("searchsvc-metrics-") for p in scratch.iterdir())


def test_rate_limit_for_non_loopback_clients(built_index: Path, tmp_path: Path) -> None:
    """Loopback clients are never limited; a client behind a trusted local proxy is.

    uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default ``forwarded_allow_ips``), which is
    how a reverse proxy on the same host reports the real client; only the header names another
    address, no traffic leaves the loopback interface. Each request asks a new search (a repeat
    would be answered from the response cache, which costs no token).
    """
    with running_service(built_index, tmp_path / "logs", env={"SEARCHSVC_RATE_LIMIT": "3"}) as svc:
        with httpx.Client(base_url=svc.url, timeout=10) as http:
            remote = {"X-Forwarded-For": "198.51.100.7"}
            statuses = [http.get("/api/search", params={"q": f"x{i}"}, headers=remote).status_code for i in range(5)]
            assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
            limited = http.get("/api/suggest", params={"q": "x"}, headers=remote)
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            # other clients, loopback clients and unlimited routes are unaffected
            other = {"X-Forwarded-For": "198.51.100.8"}
            assert http.get("/api/search", params={"q": "x"}, headers=other).status_code == 200
            assert all(http.get("/api/search", params={"q": f"y{i}"}).status_code == 200 for i in range(10))
            assert http.get("/healthz", headers=remote).status_code == 200
            assert re.search(r"^searchsvc_rate_limited_total [1-9]", http.get("/metrics").text, re.M)


def test_rate_limit_is_on_by_default_behind_a_loopback_proxy(built_index: Path, tmp_path: Path) -> None:
    """The documented deployment: the service on 127.0.0.1 behind a proxy on the same host. With no
    SEARCHSVC_RATE_LIMIT, relayed clients get the default 120 costly requests a minute (the burst)
    and then 429, even one that names a loopback address itself; local clients no proxy relayed
    are exempt; SEARCHSVC_RATE_LIMIT=0 turns the limiter off."""
    from searchsvc.config import DEFAULT_RATE_LIMIT

    with running_service(built_index, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=10) as http:
        for client in ("198.51.100.20", "127.0.0.1"):
            relayed, answered, started = {"X-Forwarded-For": client}, 0, time.monotonic()
            while answered < 3 * DEFAULT_RATE_LIMIT:
                params = {"q": "x", "n": f"{client}-{answered}"}
                status = http.get("/api/search", params=params, headers=relayed).status_code
                if status == 429:
                    break
                assert status == 200
                answered += 1
            refilled = (time.monotonic() - started) * DEFAULT_RATE_LIMIT / 60  # tokens that came back meanwhile
            assert DEFAULT_RATE_LIMIT <= answered <= DEFAULT_RATE_LIMIT + refilled + 1, (client, answered)
        local = [http.get("/api/search", params={"q": "x", "n": f"local-{i}"}).status_code for i in range(150)]
        assert set(local) == {200}
    with running_service(built_index, tmp_path / "logs-off", env={"SEARCHSVC_RATE_LIMIT": "0"}) as svc, \
            httpx.Client(base_url=svc.url, timeout=10) as http:
        relayed = {"X-Forwarded-For": "198.51.100.21"}
        statuses = {http.get("/api/search", params={"q": "x", "n": str(i)}, headers=relayed).status_code
                    for i in range(DEFAULT_RATE_LIMIT + 5)}  # fmt: skip
        assert statuses == {200}


def test_sigterm_during_requests_exits_cleanly(built_index: Path, tmp_path: Path) -> None:
    """SIGTERM while clients are busy: in-flight requests finish, the process exits with 0."""
    results: list[int | str] = []
    with running_service(built_index, tmp_path / "logs") as svc:
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=svc.url, timeout=10) as http:
                while not stop.is_set():
                    try:
                        results.append(http.get("/search", params={"q": "bóng đá"}).status_code)
                    except httpx.HTTPError as exc:  # refused after the listener closed: expected
                        results.append(type(exc).__name__)
                        return

        thread = threading.Thread(target=client)
        thread.start()
        time.sleep(0.5)
        code = svc.stop()  # SIGTERM now, while the client is mid-stream
        stop.set()
        thread.join(timeout=10)
    assert code == 0
    statuses = [r for r in results if isinstance(r, int)]
    assert statuses and set(statuses) == {200}, results[-5:]
    assert "Finished server process" in svc.log()


def test_serve_documents_its_flags() -> None:
    out = run_cli("serve", "--help").stdout
    for flag in ("--index-dir", "--host", "--port", "--workers", "--base-url", "--timeout-graceful-shutdown"):
        assert flag in out


def test_index_removed_under_a_running_service(tmp_path: Path) -> None:
    """An index deleted while served is "not ready" (503), not a bug (500), and recovers."""
    corpus = write_corpus(tmp_path / "corpus", SAMPLE_ARTICLES[:3])
    index_dir = tmp_path / "idx"
    build_index([corpus], index_dir)
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url) as http:
        assert http.get("/api/search", params={"q": "bóng đá"}).status_code == 200
        shutil.rmtree(index_dir)

        def unavailable() -> bool:
            response = http.get("/api/search", params={"q": "bóng đá", "page": 1})
            assert response.status_code in (200, 503), response.text
            return response.status_code == 503

        assert wait_until(unavailable, timeout=5)
        assert http.get("/api/search", params={"q": "x"}).json()["error"]["code"] == "not_ready"
        assert http.get("/search", params={"q": "x"}).status_code == 503
        assert http.get("/readyz").status_code == 503
        assert http.get("/metrics").status_code == 200
        build_index([corpus], index_dir)
        assert wait_until(lambda: http.get("/api/search", params={"q": "x"}).status_code == 200, timeout=10)
        assert "unhandled error" not in svc.log()
