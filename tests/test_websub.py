"""WebSub: feeds name the hub and themselves, and the applier pings the hub after each commit that
changed feeds, in the background, retried with backoff, never holding publishing up.

The hub is a real HTTP server the test starts on loopback (``Hub``) that checks the protocol of
every request it gets; the notifier is the real one, and the end-to-end tests run a real
``searchsvc serve`` whose applier sends the pings.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from index_helpers import wait_until
from lxml import etree
from service_helpers import REPO_ROOT, clean_env, running_service

from index.applier import read_status
from index.article import VN_TZ, Article
from index.journal import Journal
from index.publishing import AppliedBatch, Change, Op
from searchsvc.config import Config, ConfigError
from searchsvc.websub import HubNotifier, changed_feed_urls

BASE = "http://news.example:8080"
ATOM = "{http://www.w3.org/2005/Atom}"
FORMATS = ("rss", "atom", "json")


def feed_urls(base: str, *names: str) -> set[str]:
    return {f"{base}/feeds/{name}.{fmt}" for name in names for fmt in FORMATS}


class Hub:
    """A WebSub hub on loopback that records every publish ping and answers ``statuses`` in turn
    (then 204). A request that breaks the protocol is recorded in ``violations``."""

    def __init__(self, statuses: list[int] | None = None, hold: threading.Event | None = None) -> None:
        self.statuses = list(statuses or [])
        self.hold = hold  # when set, each request waits for it before answering
        self.pings: list[list[str]] = []  # the hub.url values of each request, in order
        self.arrivals = 0  # requests that reached the hub (answered or held)
        self.times: list[float] = []
        self.violations: list[str] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with hub.lock:
                    hub.arrivals += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("ascii")
                fields = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
                problems = []
                if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                    problems.append(f"content type {self.headers.get('Content-Type')!r}")
                if [v for k, v in fields if k == "hub.mode"] != ["publish"]:
                    problems.append(f"hub.mode in {body!r}")
                urls = [v for k, v in fields if k == "hub.url"]
                if not urls or {k for k, _ in fields} != {"hub.mode", "hub.url"}:
                    problems.append(f"fields of {body!r}")
                if hub.hold is not None:
                    hub.hold.wait(10)
                with hub.lock:
                    hub.violations += problems
                    hub.pings.append(urls)
                    hub.times.append(time.monotonic())
                    status = hub.statuses.pop(0) if hub.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                with hub.lock:
                    hub.violations.append(f"GET {self.path}")
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def received(self) -> list[list[str]]:
        with self.lock:
            return [list(p) for p in self.pings]


class SilentHub:
    """A hub that accepts connections and never answers: every ping times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hub"
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.held.append(conn)
            self.connected.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(5)


@pytest.fixture
def silent_hub() -> Iterator[SilentHub]:
    hub = SilentHub()
    try:
        yield hub
    finally:
        hub.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hub"




def config(hub: str) -> Config:
    return Config.from_env(environ={"SEARCHSVC_WEBSUB_HUB": hub, "SEARCHSVC_BASE_URL": BASE})


# --- which feeds a commit changed -----------------------------------------------------------------


def test_changed_feeds_are_every_format_of_all_and_of_each_changed_category() -> None:
    cfg = config("https://hub.example/")
    batch = AppliedBatch(first_seq=1, last_seq=3, upserted=2, deleted=1, categories={"the-thao", "kinh-te"})
    urls = changed_feed_urls(cfg, batch)
    assert len(urls) == len(set(urls)) == 9
    assert set(urls) == feed_urls(BASE, "all", "the-thao", "kinh-te")
    # "all" and "search" are reserved names, not category feeds; a commit that changed no article
    # (deletes of unknown ids) changed no feed.
    reserved = AppliedBatch(first_seq=4, last_seq=4, upserted=1, categories={"all", "search"})
    assert set(changed_feed_urls(cfg, reserved)) == feed_urls(BASE, "all")
    assert changed_feed_urls(cfg, AppliedBatch(first_seq=5, last_seq=5)) == []


@pytest.mark.parametrize("bad", ["hub.example", "ftp://hub.example/", "https://", "https://hub.example/a b",
                                 'https://hub.example/">', "https://hub.exámple/", "http://[::1/"])
def test_a_hub_url_that_cannot_be_used_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="SEARCHSVC_WEBSUB_HUB"):
        config(bad)
    assert config("https://hub.example/publish?x=1").websub_hub == "https://hub.example/publish?x=1"
    assert Config.from_env(environ={"SEARCHSVC_WEBSUB_HUB": " "}).websub_hub is None


# --- the notifier against a hub on loopback -------------------------------------------------------


def test_a_ping_follows_the_protocol_and_failures_are_retried_with_backoff() -> None:
    with Hub(statuses=[500, 503]) as hub:
        notifier = HubNotifier(hub.url, config(hub.url), backoff_min=0.2, backoff_max=1.0).start()
        try:
            notifier(AppliedBatch(first_seq=1, last_seq=1, upserted=1, categories={"the-thao"}))
            assert wait_until(lambda: notifier.stats()["sent"] == 1, 10), notifier.stats()
        finally:
            notifier.close()
    assert hub.violations == []
    pings = hub.received()
    assert len(pings) == 3 and all(set(p) == feed_urls(BASE, "all", "the-thao") for p in pings)
    gaps = [b - a for a, b in zip(hub.times, hub.times[1:], strict=False)]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38, f"exponential backoff between attempts: {gaps}"
    stats = notifier.stats()
    assert (stats["sent"], stats["retried"], stats["failed"], stats["waiting"]) == (1, 2, 0, 0)


def test_a_ping_is_given_up_after_bounded_attempts_and_a_4xx_is_not_retried() -> None:
    with Hub(statuses=[500] * 3 + [400]) as hub:
        notifier = HubNotifier(hub.url, config(hub.url), max_attempts=3, backoff_min=0.05).start()
        try:
            notifier.notify([f"{BASE}/feeds/all.rss"])
            assert wait_until(lambda: notifier.stats()["failed"] == 1, 10)
            notifier.notify([f"{BASE}/feeds/all.atom"])  # answered 400: a configuration problem
            assert wait_until(lambda: notifier.stats()["failed"] == 2, 10)
            time.sleep(0.3)
        finally:
            notifier.close()
        assert hub.received() == [[f"{BASE}/feeds/all.rss"]] * 3 + [[f"{BASE}/feeds/all.atom"]]
    assert notifier.stats()["retried"] == 2 and notifier.stats()["sent"] == 0


def test_notify_never_blocks_and_waiting_pings_are_merged_and_bounded() -> None:
    hold = threading.Event()
    with Hub(hold=hold) as hub:
        notifier = HubNotifier(hub.url, config(hub.url), max_queue=2).start()
        try:
            notifier.notify([f"{BASE}/feeds/first.rss"])
            assert wait_until(lambda: hub.arrivals == 1, 5)  # the first ping is now held by the hub
            started = time.monotonic()
            notifier.notify([f"{BASE}/feeds/a.rss", f"{BASE}/feeds/all.rss"])
            notifier.notify([f"{BASE}/feeds/b.rss", f"{BASE}/feeds/all.rss"])  # merged with the waiting one
            assert notifier.stats()["waiting"] == 2
            big = [f"{BASE}/feeds/c{i}.rss" for i in range(450)]  # three pings of at most 200 topics
            notifier.notify(big)
            assert time.monotonic() - started < 0.5, "notify waited for the hub"
            stats = notifier.stats()
            assert stats["dropped"] == 2 and stats["waiting"] == 3  # the one being sent, and two queued
            hold.set()
            assert wait_until(lambda: notifier.stats()["waiting"] == 0, 10)
        finally:
            notifier.close()
    pings = hub.received()
    assert pings[0] == [f"{BASE}/feeds/first.rss"]
    # The oldest waiting pings were dropped: the merged one and the first 200 of the big batch.
    assert pings[1:] == [big[200:400], big[400:]]
    assert notifier.stats()["sent"] == 3 and hub.violations == []


def test_close_flushes_what_waits_and_abandons_a_hub_that_does_not_answer(silent_hub: SilentHub) -> None:
    with Hub(statuses=[500]) as hub:
        notifier = HubNotifier(hub.url, config(hub.url), backoff_min=30).start()
        notifier.notify([f"{BASE}/feeds/all.rss"])  # fails once, then waits 30 s to retry
        assert wait_until(lambda: notifier.stats()["retried"] == 1, 5)
        notifier.notify([f"{BASE}/feeds/all.atom"])
        started = time.monotonic()
        notifier.close(timeout=2)
        assert time.monotonic() - started < 2, "the retry wait ends at stop"
        # The ping waiting for its retry goes first, then the one queued behind it: one attempt each.
        assert hub.received() == [[f"{BASE}/feeds/all.rss"]] * 2 + [[f"{BASE}/feeds/all.atom"]]
        assert notifier.stats()["sent"] == 2 and notifier.stats()["abandoned"] == 0

    notifier = HubNotifier(silent_hub.url, config(silent_hub.url), timeout=30).start()
    notifier.notify([f"{BASE}/feeds/all.rss"])
    assert silent_hub.connected.wait(5)
    time.sleep(0.1)  # the request is sent; the answer never comes
    started = time.monotonic()
    notifier.close(timeout=1)
    assert time.monotonic() - started < 2.5, "stopping does not wait for a hub that never answers"
    assert notifier.stats()["abandoned"] == 1
    notifier.notify([f"{BASE}/feeds/all.json"])  # after close: ignored, nothing left running
    assert notifier.stats()["waiting"] == 0


# --- a real server: feeds name the hub; the applier pings it ----------------------------------------


NOW = datetime.now(VN_TZ).replace(microsecond=0)


def story(article_id: str, title: str, category: str = "Thể thao") -> Change:
    article = Article(id=article_id, title=title, body=["Nội dung bài viết.", "Đoạn thứ hai."], category=category,
                      published=NOW, source="Phóng viên")
    return Change(Op.UPSERT, article.id, article)


def create_key(index_dir: Path) -> str:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "searchsvc", "keys", "create", "ops", "--scope", "ingest",
                           "--index-dir", str(index_dir)], cwd=REPO_ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=60, check=True)
    return proc.stdout.strip().splitlines()[-1]


def test_feeds_advertise_the_hub_and_a_commit_pings_it_once_retried(built_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    shutil.copytree(built_index, index_dir)
    key = create_key(index_dir)
    with Hub(statuses=[500, 500]) as hub, \
            running_service(index_dir, tmp_path / "logs", env={"SEARCHSVC_WEBSUB_HUB": hub.url}) as svc, \
            httpx.Client(base_url=svc.url, timeout=10) as client:
        # Discovery: the hub and the topic in the documents and in Link headers, for every format.
        for path in ("/feeds/the-thao.rss", "/feeds/all.atom", "/feeds/the-thao.json?limit=20"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["link"] == f'<{hub.url}>; rel="hub", <{svc.url}{path}>; rel="self"'
            if path.endswith(".json?limit=20"):
                doc = response.json()
                assert doc["hubs"] == [{"type": "WebSub", "url": hub.url}] and doc["feed_url"] == svc.url + path
            else:
                links = {el.get("rel"): el.get("href") for el in etree.fromstring(response.content).iter(f"{ATOM}link")}
                assert links["hub"] == hub.url and links["self"] == svc.url + path
        assert hub.received() == []

        with Journal(index_dir / "journal.sqlite3") as journal:
            journal.append([story("ws-1", "Đội tuyển Xolotrix vô địch")])
        # 500, 500, then 204: three attempts about 1 s and 2 s apart.
        assert wait_until(lambda: len(hub.received()) == 3, 15), (hub.received(), svc.log()[-3000:])
        assert "Xolotrix" in client.get("/feeds/the-thao.rss").text
        assert hub.violations == []
        assert all(set(p) == feed_urls(svc.url, "all", "the-thao") and len(p) == 6 for p in hub.received())
        status_file = index_dir / "applier-status.json"
        assert wait_until(lambda: (read_status(status_file).websub or {}).get("sent") == 1, 10), \
            read_status(status_file)
        websub = client.get("/api/admin/status", headers={"Authorization": f"Bearer {key}"}).json()["applier"]["websub"]
        assert websub["sent"] == 1 and websub["retried"] == 2 and websub["failed"] == 0
        time.sleep(1.5)
        assert len(hub.received()) == 3, "one commit, one ping"
    assert "WebSub: ping to" in svc.log() and "retrying in" in svc.log()


def test_an_unreachable_or_silent_hub_never_holds_publishing_up(built_index: Path, tmp_path: Path,
                                                                silent_hub: SilentHub) -> None:
    index_dir = tmp_path / "ix"
    shutil.copytree(built_index, index_dir)
    for hub_url in (silent_hub.url, closed_port_url()):
        with running_service(index_dir, tmp_path / "logs", env={"SEARCHSVC_WEBSUB_HUB": hub_url}) as svc, \
                httpx.Client(base_url=svc.url, timeout=10) as client, \
                Journal(index_dir / "journal.sqlite3") as journal:
            for n in range(3):
                article_id = f"{hub_url.rsplit(':', 1)[1].split('/')[0]}-{n}"
                journal.append([story(article_id, f"Tin nhanh số {n}")])
                assert wait_until(lambda: client.get(f"/api/articles/{article_id}").status_code == 200, 5), \
                    f"article {n} not visible within 5 s with the hub at {hub_url}"  # noqa: B023 - called here
                assert wait_until(lambda: f"Tin nhanh số {n}" in client.get("/feeds/all.rss").text, 5)  # noqa: B023
            # ... while the notifier really was trying: a ping hangs on the silent hub, and the
            # closed port fails and is retried (the status file says so within a heartbeat).
            busy = "waiting" if hub_url == silent_hub.url else "retried"
            assert wait_until(lambda: (read_status(index_dir / "applier-status.json").websub or {}).get(busy),  # noqa: B023
                              10), read_status(index_dir / "applier-status.json")
        # running_service asserted a clean exit within the graceful timeout: the stop did not hang.


def test_command_line_writes_ping_the_hub_for_the_feeds_they_changed(built_index: Path, tmp_path: Path) -> None:
    """``searchsvc index`` and ``searchsvc delete`` change feeds without the applier: with the hub
    set they ping it before exiting, for the categories their commit changed (a rebuild: every
    category), in the protocol's form; without it they open nothing and ping nothing."""
    import json

    from service_helpers import run_cli

    index_dir = tmp_path / "ix"
    shutil.copytree(built_index, index_dir)
    source = tmp_path / "new.jsonl"
    record = {"id": "cli-ws-1", "title": "Đội tuyển Xolotrix vô địch", "body": "Nội dung.\n\nĐoạn hai.",
              "category": "Thể thao", "published": "2020-01-02T08:00:00+07:00"}
    source.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    with Hub(statuses=[503]) as hub:
        env = {**clean_env(), "SEARCHSVC_WEBSUB_HUB": hub.url, "SEARCHSVC_BASE_URL": BASE}
        index = run_cli("index", str(source), "--index-dir", str(index_dir), "--quiet", env=env)
        assert "WebSub: told" in index.stderr, index.stderr
        # 503 then 2xx: retried with backoff, acknowledged before the command exited.
        assert [set(p) for p in hub.received()] == [feed_urls(BASE, "all", "the-thao")] * 2, hub.received()

        run_cli("delete", "cli-ws-1", "--index-dir", str(index_dir), env=env)
        assert [set(p) for p in hub.received()[2:]] == [feed_urls(BASE, "all", "the-thao")]

        from index.engine import WhooshEngine

        engine = WhooshEngine.open(index_dir)
        categories = {c.slug for c in engine.categories()}
        engine.close()
        assert len(categories) > 2  # the rebuild below leaves one: the others' feeds are emptied
        run_cli("index", str(source), "--index-dir", str(index_dir), "--rebuild", "--quiet", env=env)
        assert set(hub.received()[3]) == feed_urls(BASE, "all", *categories)
        assert hub.violations == []

        quiet = {**clean_env(), "SEARCHSVC_BASE_URL": BASE}
        run_cli("delete", "cli-ws-1", "--index-dir", str(index_dir), env=quiet)
        assert len(hub.received()) == 4, "no hub setting, no ping"
