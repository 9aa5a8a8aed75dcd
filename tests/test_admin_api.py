"""The admin API and its keys, over HTTP to real ``searchsvc serve`` processes.

Keys are made with the real CLI (``searchsvc keys``) beside a copy of the session's index, and
servers pick them up (and their revocation) without a restart. Each test that makes failed
authentications sends its own ``X-Forwarded-For`` (uvicorn trusts it from 127.0.0.1, as from a
local proxy), so that its failures fill its own bucket of the per-client failure limiter.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_helpers import ServiceProcess, clean_env, run_cli, running_service

from index.journal import Journal
from index.limits import MAX_BODY_CHARS

KEY_RE = re.compile(r"[A-Za-z0-9_-]{43}")
ADMIN_MAX_BODY = 1_000_000  # the module server's SEARCHSVC_ADMIN_MAX_BODY
SEARCH_RATE_LIMIT = 2  # the module server's SEARCHSVC_RATE_LIMIT (loopback clients are exempt from it)
VISIBLE_WITHIN = 5.0  # seconds from a 202 to the change being served (the bound)


def create_key(index_dir: Path, name: str, scope: str, **env: str) -> str:
    out = run_cli("keys", "create", name, "--scope", scope, "--index-dir", str(index_dir), env=clean_env(**env))
    return out.stdout.splitlines()[-1]


def bearer(key: str, client: int | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if client is not None:
        headers["X-Forwarded-For"] = f"198.51.100.{client}"
    return headers


def article(article_id: str, title: str = "Bão số 9 đổ bộ Quảng Ngãi", body: str = "Mưa lớn kéo dài ở miền Trung.",
            **extra: object) -> dict[str, object]:
    return {"id": article_id, "title": title, "body": body, "category": "Xã hội",
            "published": "2014-06-27T08:00:00+07:00", **extra}


def ndjson(*lines: object) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode()) + b"\n"
                    for line in lines)


def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    text = httpx.get(service.url + "/metrics", timeout=10).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def wait_until(predicate, timeout: float = VISIBLE_WITHIN, step: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(step)


@dataclass
class Admin:
    service: ServiceProcess
    index_dir: Path
    ingest: str
    admin: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, timeout=30)


@pytest.fixture(scope="module")
def admin(built_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """A server on a copy of the session's index (it gets published to), with two keys."""
    index_dir = tmp_path_factory.mktemp("admin") / "idx"
    shutil.copytree(built_index, index_dir)
    ingest = create_key(index_dir, "cms", "ingest")
    admin_key = create_key(index_dir, "ops", "admin")
    with running_service(index_dir, tmp_path_factory.mktemp("admin-logs"),
                         env={"SEARCHSVC_ADMIN_MAX_BODY": str(ADMIN_MAX_BODY),
                              "SEARCHSVC_RATE_LIMIT": str(SEARCH_RATE_LIMIT)}) as service:
        yield Admin(service, index_dir, ingest, admin_key)


# --- the keys CLI ---------------------------------------------------------------------------------


def test_keys_cli_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    out = run_cli("keys", "create", "cms", "--scope", "ingest", "--index-dir", str(index_dir))
    key = out.stdout.splitlines()[-1]
    assert KEY_RE.fullmatch(key), out.stdout  # token_urlsafe(32): 256 bits, URL-safe, alone on the last line
    assert out.stdout.count(key) == 1
    other = create_key(index_dir, "ops", "admin")
    assert other != key

    keys_file = index_dir / "keys.json"
    text = keys_file.read_text()
    assert key not in text and other not in text
    assert "sha256:" + hashlib.sha256(key.encode()).hexdigest() in text
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600

    listing = run_cli("keys", "list", "--index-dir", str(index_dir)).stdout
    assert "cms" in listing and "ingest" in listing and "ops" in listing and "admin" in listing
    as_json = run_cli("keys", "list", "--json", "--index-dir", str(index_dir)).stdout
    for shown in (listing, as_json):
        assert key not in shown and other not in shown and "sha256" not in shown
    assert {k["name"]: k["scope"] for k in json.loads(as_json)["keys"]} == {"cms": "ingest", "ops": "admin"}

    again = subprocess.run([*_cli(), "keys", "create", "cms", "--scope", "ingest", "--index-dir", str(index_dir)],
                           capture_output=True, text=True, env=clean_env(), cwd=_repo())
    assert again.returncode == 2 and "exists" in again.stderr and not KEY_RE.search(again.stdout)

    run_cli("keys", "revoke", "cms", "--index-dir", str(index_dir))
    records = {k["name"]: k for k in json.loads(run_cli("keys", "list", "--json", "--index-dir",
                                                        str(index_dir)).stdout)["keys"]}
    assert records["cms"]["revoked"] and not records["ops"]["revoked"]
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600  # still, after the rewrite

    elsewhere = tmp_path / "conf" / "admin-keys.json"  # SEARCHSVC_KEYS_FILE moves it
    run_cli("keys", "create", "x", "--scope", "admin", "--index-dir", str(index_dir),
            env=clean_env(SEARCHSVC_KEYS_FILE=str(elsewhere)))
    assert [k["name"] for k in json.loads(elsewhere.read_text())["keys"]] == ["x"]


def _cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "searchsvc"]


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent


# --- off by default, keys picked up without a restart -----------------------------------------------


def test_admin_api_is_off_without_keys_and_keys_take_effect_without_restart(built_index: Path,
                                                                           tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(built_index, index_dir)
    with running_service(index_dir, tmp_path / "logs", workers=2) as service:
        url = service.url
        probe = "A" * 43
        for method, path in (("GET", "/api/admin/status"), ("POST", "/api/admin/articles"),
                             ("PUT", "/api/admin/articles/x"), ("DELETE", "/api/admin/articles/x"),
                             ("GET", "/api/admin/keys")):
            response = httpx.request(method, url + path, headers=bearer(probe), json=article("x"), timeout=10)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
        assert not (index_dir / "journal.sqlite3").exists()  # nothing was stored

        key = create_key(index_dir, "cms", "ingest")
        # Every worker (fresh connections land on either) accepts it within a couple of seconds.
        wait_until(lambda: all(httpx.get(url + "/api/admin/status", headers=bearer(key), timeout=10).status_code
                               == 200 for _ in range(6)), timeout=5)
        assert httpx.get(url + "/api/admin/status", timeout=10).status_code == 401

        run_cli("keys", "revoke", "cms", "--index-dir", str(index_dir))
        # Each probe from another client address: until every worker has re-read the file the
        # 401s count as failed authentications, and one client would soon be refused with 429.
        clients = itertools.count()
        wait_until(lambda: all(httpx.get(url + "/api/admin/status", headers=bearer(key, 20 + next(clients) % 200),
                                         timeout=10).status_code == 401 for _ in range(6)), timeout=5)
        revoked = httpx.get(url + "/api/admin/status", headers=bearer(key, 2), timeout=10)
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthorized"
        assert 'error="invalid_token"' in revoked.headers["www-authenticate"]
        assert '"reason": "revoked"' in service.log() and '"key_name": "cms"' in service.log()
        assert key not in service.log()


# --- authentication ---------------------------------------------------------------------------------


def test_missing_wrong_and_malformed_keys_get_401_with_a_challenge(admin: Admin) -> None:
    with admin.client() as http:
        missing = http.get("/api/admin/status", headers={"X-Forwarded-For": "198.51.100.10"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        assert missing.headers["www-authenticate"] == 'Bearer realm="searchsvc"'
        for headers in (bearer("B" * 43, 10), bearer(admin.ingest[:-1], 10),
                        {"Authorization": f"Basic {admin.ingest}", "X-Forwarded-For": "198.51.100.10"},
                        {"Authorization": "Bearer", "X-Forwarded-For": "198.51.100.10"}):
            wrong = http.post("/api/admin/articles", headers=headers, json=article("never-stored"))
            assert wrong.status_code == 401, wrong.text
            assert wrong.headers["www-authenticate"] == 'Bearer realm="searchsvc", error="invalid_token"'
        assert http.get("/api/articles/never-stored").status_code == 404
        ok = http.get("/api/admin/status", headers=bearer(admin.ingest))
        assert ok.status_code == 200, ok.text


def test_a_key_without_the_scope_gets_403(admin: Admin) -> None:
    with admin.client() as http:
        refused = http.get("/api/admin/keys", headers=bearer(admin.ingest, 11))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        listed = http.get("/api/admin/keys", headers=bearer(admin.admin, 11))
        assert listed.status_code == 200
        names = {k["name"]: k["scope"] for k in listed.json()["keys"]}
        assert names == {"cms": "ingest", "ops": "admin"}
        assert "sha256" not in listed.text and admin.ingest not in listed.text
        # The admin scope includes ingest.
        published = http.post("/api/admin/articles", headers=bearer(admin.admin), json=article("by-admin-1"))
        assert published.status_code == 202, published.text


def test_a_key_in_the_query_string_is_refused(admin: Admin) -> None:
    with admin.client() as http:
        for query in (f"key={admin.ingest}", f"api_key={admin.ingest}", "access_token=abc", "token=x",
                      f"whatever={admin.ingest}"):
            response = http.get(f"/api/admin/status?{query}", headers=bearer(admin.ingest, 12))
            assert response.status_code == 400, (query, response.text)
            assert response.json()["error"]["code"] == "key_in_query"
        refused = http.post(f"/api/admin/articles?api_key={admin.ingest}", headers=bearer(admin.ingest, 12),
                            json=article("via-query-1"))
        assert refused.status_code == 400
        assert http.get("/api/admin/status", headers=bearer(admin.ingest), params={"verbose": "1"}).status_code == 200
    assert admin.ingest not in admin.service.log()  # the access log never shows a query string either


def test_a_burst_of_wrong_keys_is_throttled_counted_and_logged_without_the_key(admin: Admin) -> None:
    before = {reason: metric(admin.service, "searchsvc_auth_failures_total", reason=reason)
              for reason in ("unknown", "throttled")}
    guesses = [f"guess{i:02d}" + "x" * 36 for i in range(25)]
    statuses = []
    with admin.client() as http:
        for guess in guesses:
            statuses.append(http.get("/api/admin/status", headers=bearer(guess, 13)).status_code)
        assert statuses[0] == 401 and 429 in statuses, statuses
        first_429 = statuses.index(429)
        assert set(statuses[first_429:]) == {429}, statuses  # no guess is even looked at any more
        throttled = http.get("/api/admin/status", headers=bearer(admin.ingest, 13))
        assert throttled.status_code == 429  # not even the right key, from that client, for now
        assert throttled.json()["error"]["code"] == "rate_limited" and int(throttled.headers["retry-after"]) >= 1
        # Other clients are not affected.
        assert http.get("/api/admin/status", headers=bearer(admin.ingest, 14)).status_code == 200
    after = {reason: metric(admin.service, "searchsvc_auth_failures_total", reason=reason)
             for reason in ("unknown", "throttled")}
    assert after["unknown"] - before["unknown"] == first_429
    assert after["throttled"] - before["throttled"] == len(guesses) - first_429 + 1
    log = admin.service.log()
    failures = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and '"auth_failure"' in line and "198.51.100.13" in line]
    assert len(failures) == len(guesses) + 1
    assert {f["reason"] for f in failures} == {"unknown", "throttled"}
    assert all(f["path"] == "/api/admin/status" and f["method"] == "GET" for f in failures)
    assert not any(guess in log for guess in guesses)
    assert not any(guess in httpx.get(admin.service.url + "/metrics").text for guess in guesses)


def test_admin_requests_cost_no_token_of_the_search_rate_limit(admin: Admin) -> None:
    remote = {"X-Forwarded-For": "198.51.100.16"}  # not exempt, unlike a loopback client
    with admin.client() as http:
        for i in range(3 * SEARCH_RATE_LIMIT):
            assert http.get("/api/admin/status", headers=bearer(admin.ingest, 16)).status_code == 200
            posted = http.post("/api/admin/articles", headers=bearer(admin.ingest, 16), json=article(f"rl-{i}"))
            assert posted.status_code == 202, posted.text
        searches = [http.get("/api/search", params={"q": f"bão {i}"}, headers=remote).status_code
                    for i in range(SEARCH_RATE_LIMIT + 1)]
        assert searches[-1] == 429, searches  # the limiter is on, for what it limits


# --- what admin answers carry ----------------------------------------------------------------------


def test_admin_answers_are_no_store_without_cors_and_never_cached(admin: Admin) -> None:
    origin = {"Origin": "https://cms.example"}
    with admin.client() as http:
        public = http.get("/api/categories", headers=origin)
        assert public.headers.get("access-control-allow-origin") == "*"  # the check below can fail
        hits_before = metric(admin.service, "searchsvc_response_cache_hits_total")
        answers = [
            http.get("/api/admin/status", headers={**origin, **bearer(admin.ingest)}),
            http.get("/api/admin/status", headers={**origin, **bearer(admin.ingest)}),
            http.get("/api/admin/status", headers={**origin, "X-Forwarded-For": "198.51.100.15"}),  # 401
            http.post("/api/admin/articles", headers={**origin, **bearer(admin.ingest)}, json=article("cors-1")),
            http.options("/api/admin/articles", headers={**origin, "Access-Control-Request-Method": "POST",
                                                         "X-Forwarded-For": "198.51.100.15"}),
        ]
        assert [a.status_code for a in answers[:4]] == [200, 200, 401, 202]
        for answer in answers:
            assert answer.headers["cache-control"] == "no-store", answer.request
            assert not any(h.startswith("access-control-") for h in answer.headers), answer.headers
            assert "etag" not in answer.headers
        assert metric(admin.service, "searchsvc_response_cache_hits_total") == hits_before
        seq = answers[3].json()["seq"]
        status = http.get("/api/admin/status", headers=bearer(admin.ingest)).json()
        assert status["last_accepted_seq"] >= seq  # a fresh answer, not the one from before the POST


def test_admin_paths_are_never_cacheable_whatever_prefixes_a_cache_is_given() -> None:
    """Defence in depth: even a cache configured for all of ``/api/`` leaves the admin API out."""
    from searchsvc.http.caching import ConditionalGetMiddleware, ResponseCacheMiddleware

    for layer in (ConditionalGetMiddleware, ResponseCacheMiddleware):
        cache = layer(lambda scope, receive, send: None, generation=lambda: "g", app_fingerprint="f",
                      prefixes=("/api/",))
        assert cache.cacheable("/api/search")
        assert not cache.cacheable("/api/admin/status") and not cache.cacheable("/api/admin/articles/x")


# --- publishing -------------------------------------------------------------------------------------


def test_a_batch_with_broken_lines_gets_per_line_errors_and_the_good_lines_accepted(admin: Admin) -> None:
    body = ndjson(
        article("batch-1"),
        b"{not json",
        article("batch-3", title=""),
        b"",  # a blank line is skipped, as the reader skips it
        article("batch-5", body="x" * (MAX_BODY_CHARS + 1)),
        "a string",
        article("batch-7", published="1800-01-01"),
        article("batch-8", title="Lũ quét ở Yên Bái"),
    )
    with admin.client() as http:
        response = http.post("/api/admin/articles", content=body,
                             headers={**bearer(admin.ingest), "Content-Type": "application/x-ndjson"})
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["accepted"] == 2 and answer["rejected_total"] == 5 and answer["seq"] >= 2
        rejected = {r["line"]: (r["id"], r["error"]["code"]) for r in answer["rejected"]}
        assert rejected == {
            2: (None, "bad_article"),
            3: ("batch-3", "bad_article"),
            5: ("batch-5", "article_too_large"),
            6: (None, "bad_article"),
            7: ("batch-7", "bad_article"),
        }
        messages = {r["line"]: r["error"]["message"] for r in answer["rejected"]}
        assert messages[3] == "no title" and messages[5].startswith("too large (body: ")
        assert "1800" in messages[7]

        all_bad = http.post("/api/admin/articles", content=ndjson(b"[]", article("bad-2", body="")),
                            headers={**bearer(admin.ingest), "Content-Type": "application/x-ndjson"})
        assert all_bad.status_code == 400
        assert all_bad.json()["error"]["code"] == "bad_article" and all_bad.json()["accepted"] == 0
        assert [r["line"] for r in all_bad.json()["rejected"]] == [1, 2]
        empty = http.post("/api/admin/articles", content=b"\n\n",
                          headers={**bearer(admin.ingest), "Content-Type": "application/x-ndjson"})
        assert empty.status_code == 400 and empty.json()["error"]["code"] == "bad_article"
        single = http.post("/api/admin/articles", headers=bearer(admin.ingest),
                           json=article("single-1", body="y" * (MAX_BODY_CHARS + 1)))
        assert single.status_code == 400 and single.json()["error"]["code"] == "article_too_large"

    with Journal(admin.index_dir / "journal.sqlite3", readonly=True) as journal:
        assert journal.last_seq() >= answer["seq"]
    # The good lines are published; the refused ones never are.
    with admin.client() as http:
        wait_until(lambda: http.get("/api/articles/batch-8").status_code == 200)
        assert http.get("/api/articles/batch-1").status_code == 200
        for refused in ("batch-3", "batch-5", "batch-7", "bad-2", "single-1"):
            assert http.get(f"/api/articles/{refused}").status_code == 404


def test_body_limits_and_content_types(admin: Admin) -> None:
    headers = {**bearer(admin.ingest), "Content-Type": "application/x-ndjson"}
    with admin.client() as http:
        # Larger than the app's 64 KiB cap for other routes, within the admin API's own.
        big = ndjson(*(article(f"bulk-{i}", body="Tin tức " * 500) for i in range(40)))
        assert 64 * 1024 < len(big) < ADMIN_MAX_BODY
        assert http.post("/api/admin/articles", content=big, headers=headers).status_code == 202
        too_big = b"x" * (ADMIN_MAX_BODY + 1)
        declared = http.post("/api/admin/articles", content=too_big, headers=headers)
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced as it streams
            for _ in range(ADMIN_MAX_BODY // 65536 + 2):
                yield b"y" * 65536

        streamed = http.post("/api/admin/articles", content=chunks(), headers=headers)
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
        assert streamed.headers["cache-control"] == "no-store"

        for content_type in ("text/plain", "application/xml", "multipart/form-data; boundary=x", ""):
            response = http.post("/api/admin/articles", content=json.dumps(article("ct-1")).encode(),
                                 headers={**bearer(admin.ingest), "Content-Type": content_type})
            assert response.status_code == 415, (content_type, response.text)
            assert response.json()["error"]["code"] == "unsupported_media_type"
        assert http.put("/api/admin/articles/ct-1", content=ndjson(article("ct-1")),
                        headers=headers).status_code == 415
        assert http.get("/api/articles/ct-1").status_code == 404


def test_publish_correct_and_unpublish_are_served_within_seconds(admin: Admin) -> None:
    title = "Hội thi khinh khí cầu Phước Sơn lần thứ nhất"
    with admin.client() as http:
        created = http.post("/api/admin/articles", headers=bearer(admin.ingest),
                            json=article("e2e-1", title=title, body="Hội thi diễn ra ở Phước Sơn."))
        assert created.status_code == 202 and created.json()["accepted"] == 1

        def found(text: str) -> bool:
            hits = http.get("/api/search", params={"q": text}).json()["hits"]
            return any(hit["id"] == "e2e-1" and hit["title"] == text for hit in hits)

        wait_until(lambda: found(title))

        corrected_title = title + " đã khai mạc"
        corrected = http.put("/api/admin/articles/e2e-1", headers=bearer(admin.ingest),
                             json={k: v for k, v in article("", title=corrected_title).items() if k != "id"})
        assert corrected.status_code == 202 and corrected.json()["id"] == "e2e-1"
        wait_until(lambda: http.get("/api/articles/e2e-1").json().get("title") == corrected_title)

        mismatch = http.put("/api/admin/articles/e2e-1", headers=bearer(admin.ingest), json=article("e2e-2"))
        assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == "id_mismatch"

        deleted = http.delete("/api/admin/articles/e2e-1", headers=bearer(admin.ingest))
        assert deleted.status_code == 202 and deleted.json()["seq"] > corrected.json()["seq"]
        wait_until(lambda: http.get("/api/articles/e2e-1").status_code == 410)
        assert not found(corrected_title)

        status = http.get("/api/admin/status", headers=bearer(admin.admin)).json()
        assert status["last_accepted_seq"] >= deleted.json()["seq"]
        wait_until(lambda: http.get("/api/admin/status", headers=bearer(admin.admin)).json()["pending"] == 0)
        status = http.get("/api/admin/status", headers=bearer(admin.admin)).json()
        assert status["last_applied_seq"] == status["last_accepted_seq"]
        assert status["applier"]["state"] in {"idle", "applying"} and status["last_commit_at"]


# --- what cannot be stored is not acknowledged ---------------------------------------------------


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the file that does it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)  # unbuffered: a short write is seen here, not at close
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_answers_507_and_acknowledges_nothing(built_index: Path, tmp_path: Path,
                                                           small_disk: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(built_index, index_dir)
    key = create_key(index_dir, "cms", "ingest")
    journal_path = small_disk / "journal.sqlite3"
    env = {"SEARCHSVC_JOURNAL": str(journal_path), "SEARCHSVC_APPLIER": "0"}
    with running_service(index_dir, tmp_path / "logs", env=env) as service, \
            httpx.Client(base_url=service.url, timeout=30) as http:
        first = http.post("/api/admin/articles", headers=bearer(key), json=article("disk-1"))
        assert first.status_code == 202, first.text
        filler = fill(small_disk)
        batch = ndjson(*(article(f"disk-full-{i}", body="Mưa lớn. " * 10_000) for i in range(5)))
        full = http.post("/api/admin/articles", content=batch,
                         headers={**bearer(key), "Content-Type": "application/x-ndjson"})
        assert full.status_code == 507, full.text
        assert full.json()["error"]["code"] == "insufficient_storage"
        assert "seq" not in full.json() and "accepted" not in full.json()
        deleted = http.delete("/api/admin/articles/disk-1", headers=bearer(key))
        assert deleted.status_code in (202, 507)  # a tiny entry may still fit in the log's free pages
        with Journal(journal_path, readonly=True) as journal:
            stored = {e.article_id for e in journal.read_after(0, 100)}
        assert not any(i.startswith("disk-full-") for i in stored), stored

        filler.unlink()  # space again: the same request is stored
        again = http.post("/api/admin/articles", content=batch,
                          headers={**bearer(key), "Content-Type": "application/x-ndjson"})
        assert again.status_code == 202 and again.json()["accepted"] == 5
        with Journal(journal_path, readonly=True) as journal:
            stored = [e.article_id for e in journal.read_after(0, 100)]
        assert sum(i.startswith("disk-full-") for i in stored) == 5


def test_an_unwritable_journal_or_unusable_keys_file_answer_503(built_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    shutil.copytree(built_index, index_dir)
    key = create_key(index_dir, "cms", "ingest")
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    env = {"SEARCHSVC_JOURNAL": str(not_a_dir / "journal.sqlite3"), "SEARCHSVC_APPLIER": "0"}
    with running_service(index_dir, tmp_path / "logs", env=env) as service, \
            httpx.Client(base_url=service.url, timeout=30) as http:
        refused = http.post("/api/admin/articles", headers=bearer(key), json=article("nowhere-1"))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "journal_unavailable" and refused.headers["retry-after"]
        assert http.delete("/api/admin/articles/x", headers=bearer(key)).status_code == 503
        status = http.get("/api/admin/status", headers=bearer(key))
        assert status.status_code == 200 and status.json()["last_accepted_seq"] == 0

        keys_file = index_dir / "keys.json"
        good = keys_file.read_text()
        keys_file.write_text(good[: len(good) // 2])  # a half-written file (an editor's, not ours)
        wait_until(lambda: http.get("/api/admin/status", headers=bearer(key)).status_code == 503, timeout=5)
        broken = http.get("/api/admin/status", headers=bearer(key))
        assert broken.json()["error"]["code"] == "keys_unavailable"
        keys_file.write_text(good)
        wait_until(lambda: http.get("/api/admin/status", headers=bearer(key)).status_code == 200, timeout=5)


# --- hostile input on every admin route ------------------------------------------------------------

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
_FIELDS = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=40) | st.integers(), "title": st.text(max_size=60) | st.integers(),
    "body": st.text(max_size=200) | st.lists(st.text(max_size=40), max_size=5),
    "category": st.text(max_size=30), "published": st.text(max_size=30) | st.sampled_from(
        ["0001-01-01", "9999-12-31T23:59:59-12:00", "2024-02-30", "2024-05-01T08:00:00+07:00"]),
    "views": st.integers() | st.text(max_size=5), "url": st.text(max_size=40), "source": st.text(max_size=30)})
_BODIES = (
    st.binary(max_size=300)
    | _JSONISH.map(lambda v: json.dumps(v).encode())
    | _FIELDS.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
    | st.lists(_FIELDS.map(lambda v: json.dumps(v)), max_size=5).map(lambda lines: "\n".join(lines).encode())
)
_TYPES = st.sampled_from(["application/json", "application/x-ndjson", "text/plain", "",
                          "application/json; charset=latin-1", "application/x-ndjson; charset=utf-8",
                          "multipart/form-data; boundary=x"])
_IDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH"]), article_id=_IDS, body=_BODIES,
       content_type=_TYPES)
def test_hostile_admin_requests_get_a_coded_4xx_or_are_accepted(admin: Admin, method: str, article_id: str,
                                                                 body: bytes, content_type: str) -> None:
    """Whatever a key holder sends, every admin route answers 2xx or a 4xx with a JSON code: never a
    500 (the readers' validation is the API's, so a bad article is a per-line rejection)."""
    path = "/api/admin/articles" if method in ("POST", "GET") else "/api/admin/articles/" + quote(article_id, safe="")
    headers = {**bearer(admin.ingest), "Content-Type": content_type}
    with admin.client() as client:
        response = client.request(method, path, content=body, headers=headers)
    assert response.status_code < 500, (method, path, content_type, body[:200], response.text[:500])
    if response.status_code >= 400:
        assert response.json()["error"]["code"], response.text
    assert "Traceback" not in admin.service.log()
