"""The publishing path below the HTTP admin API: the journal, the Whoosh writer, the applier, and
a real ``searchsvc serve`` running the applier beside its workers.

Everything is real: SQLite files, Whoosh indexes, child processes killed with SIGKILL, a server
on loopback. The end-to-end tests append to the journal directly, as the admin API does.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from index_helpers import wait_until
from service_helpers import REPO_ROOT, ServiceProcess, clean_env, free_port, running_service

from index import store
from index.applier import Applier, read_status
from index.article import VN_TZ, Article
from index.builder import delete_articles, index_articles
from index.journal import Journal
from index.publishing import AppliedBatch, Change, Entry, JournalError, Op
from index.whoosh_writer import WhooshIndexWriter

NOW = datetime.now(VN_TZ).replace(microsecond=0)


def art(article_id: str, title: str, body: str = "Nội dung bài viết.", category: str = "Thời sự",
        published: datetime | None = None) -> Article:
    return Article(id=article_id, title=title, body=[body, "Đoạn thứ hai."], category=category,
                   published=published or NOW, source="Phóng viên")


def upsert(article: Article) -> Change:
    return Change(Op.UPSERT, article.id, article)


def delete(article_id: str) -> Change:
    return Change(Op.DELETE, article_id)




def python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """A child Python process running ``code`` (with the repository importable)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'tests'}"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO_ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def index_state(index_dir: Path) -> dict[str, list[str]]:
    """Every document in the live index: id -> the titles stored under it (one, unless duplicated).

    Read under the writer lock: an applier that merges segments while the journal is idle would
    otherwise delete a segment file while Whoosh opens it, and Whoosh's retry leaves the segments
    it had opened unclosed (a ResourceWarning, an error here)."""
    with store.writer_lock(index_dir, wait=60):
        _name, ix = store.open_live(index_dir)
        found: dict[str, list[str]] = {}
        with ix.searcher() as searcher:
            for fields in searcher.all_stored_fields():
                found.setdefault(fields["id"], []).append(json.loads(fields["doc"])["title"])
    return found


# --- the journal ------------------------------------------------------------------------------------


def test_journal_is_durable_across_reopen_and_returns_equal_articles(tmp_path: Path) -> None:
    path = tmp_path / "j" / "journal.sqlite3"
    first = art("a-1", "Bão số 3 đổ bộ", "Mưa lớn\n\nkéo dài ở miền Trung.", category="Thể thao")
    second = Article(id="a-2", title="Lũ quét", body=["Nước lên nhanh."], category="Xã hội",
                     published=datetime(2014, 6, 27, 8, 30, tzinfo=VN_TZ), views=12, url="https://x.example/2",
                     captions=["Ảnh: hiện trường"], category_path=["Xã hội", "Thiên tai"])
    with Journal(path) as journal:
        assert journal.last_seq() == 0 and journal.read_after(0, 10) == []
        assert journal.append([upsert(first), upsert(second)]) == 2
        assert journal.append([delete("a-9")]) == 3
    # A new process sees what the first acknowledged.
    child = python("""
        import sys
        from pathlib import Path
        from index.journal import Journal
        j = Journal(Path(sys.argv[1]))
        print(j.last_seq(), [(e.seq, e.op.value, e.article_id) for e in j.read_after(0, 10)])
    """, str(path))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "3 [(1, 'upsert', 'a-1'), (2, 'upsert', 'a-2'), (3, 'delete', 'a-9')]"
    with Journal(path) as journal:
        entries = journal.read_after(0, 10)
        assert [e.article for e in entries] == [first, second, None]
        assert entries[0].article is not None and entries[0].article.body == first.body  # a paragraph's own blank line
        assert [e.seq for e in journal.read_after(1, 1)] == [2]
        stats = journal.stats()
        assert (stats.length, stats.last_seq) == (3, 3) and stats.bytes_on_disk > 0


def test_compaction_never_reuses_numbers_and_keeps_tombstones(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.append([upsert(art("x", "Một")), delete("y"), upsert(art("z", "Ba"))])
        assert journal.deleted_at("y") is not None and journal.deleted_at("x") is None
        assert journal.compact(3) == 3
        assert journal.stats().length == 0 and journal.read_after(0, 10) == []
        # Numbering goes on after compaction emptied the table (AUTOINCREMENT): a reused 1 would be
        # below what the index already applied, and skipped.
        assert journal.append([upsert(art("w", "Bốn"))]) == 4
        assert journal.deleted_at("y") is not None, "tombstones survive compaction"
        journal.append([upsert(art("y", "Đăng lại"))])
        assert journal.deleted_at("y") is None, "publishing again clears the tombstone"
        journal.append([delete("x")])
        deleted = journal.deleted_at("x")
        assert deleted is not None and abs((datetime.now(deleted.tzinfo) - deleted).total_seconds()) < 60
        assert journal.compact(4) == 1 and [e.seq for e in journal.read_after(0, 10)] == [5, 6]
    with Journal(tmp_path / "journal.sqlite3", readonly=True) as readonly:
        assert readonly.deleted_at("x") is not None and readonly.deleted_at("y") is None
        with pytest.raises(JournalError):
            readonly.append([delete("q")])
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path / "missing.sqlite3", readonly=True)
    assert not (tmp_path / "missing.sqlite3").exists()


def test_an_unwritable_journal_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(JournalError) as caught:
        Journal(tmp_path / "a-file" / "journal.sqlite3")
    assert not caught.value.disk_full


APPENDER = """
    import sys
    from datetime import datetime
    from pathlib import Path
    from index.article import VN_TZ, Article
    from index.journal import Journal
    from index.publishing import Change, Op
    path, name, count, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    journal = Journal(path)
    for i in range(count):
        batch = [Change(Op.UPSERT, f"{name}-{i}-{k}", Article(id=f"{name}-{i}-{k}", title=f"{name} {i} {k}",
                 body=["x" * 2000], category="Thời sự", published=datetime(2020, 1, 1, tzinfo=VN_TZ)))
                 for k in range(size)]
        seq = journal.append(batch)
        print(name, i, seq, flush=True)
"""


def test_concurrent_appends_from_threads_and_processes_get_unique_increasing_numbers(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    children = [python(APPENDER, str(path), f"proc{n}", "150", "1") for n in range(2)]
    got: dict[str, list[int]] = {}
    shared = Journal(path)  # threads share one Journal (one connection behind a lock)

    def thread_appender(name: str, journal: Journal) -> None:
        got[name] = [journal.append([upsert(art(f"{name}-{i}", f"{name} {i}"))]) for i in range(150)]

    threads = [threading.Thread(target=thread_appender, args=(f"shared{n}", shared)) for n in range(2)]
    threads += [threading.Thread(target=thread_appender, args=(f"own{n}", Journal(path))) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for n, child in enumerate(children):
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        got[f"proc{n}"] = [int(line.split()[2]) for line in out.splitlines()]
    for name, seqs in got.items():
        assert len(seqs) == 150 and seqs == sorted(seqs) and len(set(seqs)) == 150, name
    everything = sorted(s for seqs in got.values() for s in seqs)
    assert everything == list(range(1, 6 * 150 + 1)), "numbers are unique and leave no gap"
    entries = shared.read_after(0, 10_000)
    assert [e.seq for e in entries] == everything
    by_seq = {e.seq: e.article_id for e in entries}
    for name, seqs in got.items():
        assert [by_seq[s] for s in seqs] == [f"{name}-{i}" if not name.startswith("proc") else f"{name}-{i}-0"
                                             for i in range(150)]


def test_a_killed_appender_leaves_whole_batches_only(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of appending 50-article batches: every batch it was told
    is stored is there in full, and no batch is there in part."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    for round_ in range(3):
        child = python(APPENDER, str(path), f"r{round_}", "100000", "50")
        assert child.stdout is not None
        acknowledged = [child.stdout.readline() for _ in range(3 + round_)]
        time.sleep(random.uniform(0.0, 0.05))
        child.kill()
        rest, _ = child.communicate(timeout=30)
        acknowledged += rest.splitlines()
        acked = {int(line.split()[1]) for line in acknowledged if line.strip()}
        with Journal(path) as journal:
            entries = [e for e in journal.read_after(0, 10**7) if e.article_id.startswith(f"r{round_}-")]
        batches: dict[int, int] = {}
        for entry in entries:
            batch = int(entry.article_id.split("-")[1])
            batches[batch] = batches.get(batch, 0) + 1
        assert all(n == 50 for n in batches.values()), "a batch stored in part"
        assert acked <= set(batches), "an acknowledged batch is missing"


def test_disk_full_is_reported_and_nothing_half_stored(small_disk: Path) -> None:
    path = small_disk / "journal.sqlite3"
    (small_disk / "filler").write_bytes(b"\0" * (1 << 20))  # removed below: space that comes back
    journal = Journal(path)
    big = "Một đoạn văn rất dài. " * 400  # ~9 KB per article
    acknowledged: list[int] = []
    with pytest.raises(JournalError) as caught:
        for i in range(10_000):
            batch = [upsert(art(f"d{i}-{k}", f"Bài {i} {k}", big)) for k in range(5)]
            acknowledged.append(journal.append(batch))
    assert caught.value.disk_full, str(caught.value)
    assert "disk is full" in str(caught.value)
    assert len(acknowledged) > 5
    stored = journal.read_after(0, 10**6)
    assert [e.seq for e in stored] == list(range(1, acknowledged[-1] + 1)), "the refused batch left nothing"
    # Space comes back: appending works again (the refused batch used up no number), and so
    # does compaction; nothing acknowledged was lost.
    (small_disk / "filler").unlink()
    assert journal.append([upsert(art("after", "Sau khi trống chỗ", "ngắn"))]) == acknowledged[-1] + 1
    assert journal.compact(acknowledged[-1]) == acknowledged[-1]
    journal.close()
    with Journal(path) as journal:
        assert [e.article_id for e in journal.read_after(0, 100)] == ["after"]


# --- the Whoosh writer --------------------------------------------------------------------------


def entries_of(journal: Journal, after: int = 0) -> list[Entry]:
    return journal.read_after(after, 10_000)


def test_writer_records_the_applied_number_in_the_commit(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    assert writer.applied_seq() == 0
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.append([upsert(art("a", "Alpha", category="Thể thao")), upsert(art("b", "Beta", category="Kinh tế"))])
        first = writer.apply(entries_of(journal))  # no index yet: the writer creates one
        assert store.current_generation(index_dir) == "gen-000001"
        assert (first.first_seq, first.last_seq, first.upserted, first.deleted) == (1, 2, 2, 0)
        assert first.categories == {"the-thao", "kinh-te"} and first.committed
        assert writer.applied_seq() == 2
        toc = store.toc_generation(index_dir / "gen-000001")
        assert first.generation == f"gen-000001.{toc}"
        assert (index_dir / "gen-000001" / f"journal-{toc}.seq").read_text().strip() == "2"

        # One batch: a correction moving "a" to another category, "b" unpublished, "c" published
        # and unpublished, "d" unpublished then published again (the last entry per id wins).
        journal.append([upsert(art("a", "Alpha sửa", category="Giáo dục")), delete("b"),
                        upsert(art("c", "Gamma")), delete("c"), delete("d"), upsert(art("d", "Delta"))])
        batch = writer.apply(entries_of(journal, 2))
        assert (batch.last_seq, batch.upserted, batch.deleted) == (8, 2, 1)
        assert batch.categories == {"the-thao", "giao-duc", "kinh-te", "thoi-su"}
        assert index_state(index_dir) == {"a": ["Alpha sửa"], "d": ["Delta"]}
        assert writer.applied_seq() == 8
        # Entries already applied are dropped under the lock (a second applier, a stale read).
        again = writer.apply(entries_of(journal))
        assert not again.committed and again.last_seq == 8
        assert index_state(index_dir) == {"a": ["Alpha sửa"], "d": ["Delta"]}
        seq_files = sorted(p.name for p in (index_dir / "gen-000001").glob("journal-*.seq"))
        assert len(seq_files) <= 2, seq_files  # superseded ones are pruned


def test_a_seq_file_for_a_generation_that_never_committed_is_ignored_and_removed(tmp_path: Path) -> None:
    """A writer killed after writing journal-<n+1>.seq but before the table of contents n+1: the
    index has applied the old number. A later commit reaching n+1 without applying entries
    (``searchsvc index``, ``searchsvc delete``) must not inherit the dead writer's number."""
    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.append([upsert(art("a", "Alpha")), upsert(art("b", "Beta"))])
        writer.apply(entries_of(journal))
    generation_dir = index_dir / "gen-000001"
    live = store.toc_generation(generation_dir)
    (generation_dir / f"journal-{live + 1}.seq").write_text("999\n")
    assert writer.applied_seq() == 2
    index_articles(index_dir, [art("e", "Epsilon")], procs=1)  # commits generation live + 1
    assert store.toc_generation(generation_dir) == live + 1
    assert writer.applied_seq() == 2
    (generation_dir / f"journal-{live + 2}.seq").write_text("999\n")
    assert delete_articles(index_dir, ["e"]) == 1
    assert writer.applied_seq() == 2


KILLED_BEFORE_TOC = """
    import os, signal, sys
    from pathlib import Path
    from whoosh.index import TOC
    from index.journal import Journal
    from index.whoosh_writer import WhooshIndexWriter

    def die(self, storage, indexname):  # the commit point is the rename inside TOC.write
        os.kill(os.getpid(), signal.SIGKILL)

    TOC.write = die
    index_dir, journal_path = Path(sys.argv[1]), Path(sys.argv[2])
    writer = WhooshIndexWriter(index_dir)
    writer.apply(Journal(journal_path).read_after(writer.applied_seq(), 1000))
"""


def test_a_writer_killed_between_the_seq_file_and_the_commit_applies_nothing(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    journal = Journal(tmp_path / "journal.sqlite3")
    writer = WhooshIndexWriter(index_dir)
    journal.append([upsert(art("a", "Alpha")), upsert(art("b", "Beta"))])
    writer.apply(entries_of(journal))
    journal.append([upsert(art("a", "Alpha sửa")), delete("b"), upsert(art("c", "Gamma"))])
    generation_dir = index_dir / "gen-000001"
    live = store.toc_generation(generation_dir)
    child = python(KILLED_BEFORE_TOC, str(index_dir), str(journal.path))
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert (generation_dir / f"journal-{live + 1}.seq").read_text().strip() == "5", "killed elsewhere than meant"
    assert store.toc_generation(generation_dir) == live
    assert writer.applied_seq() == 2
    assert index_state(index_dir) == {"a": ["Alpha"], "b": ["Beta"]}
    batch = writer.apply(entries_of(journal, writer.applied_seq()))
    assert batch.last_seq == 5 and writer.applied_seq() == 5
    assert index_state(index_dir) == {"a": ["Alpha sửa"], "c": ["Gamma"]}
    journal.close()


def test_a_rebuild_carries_the_applied_number_into_the_new_generation(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        journal.append([upsert(art("a", "Alpha")), upsert(art("b", "Beta")), delete("a")])
        writer.apply(entries_of(journal))
    report = index_articles(index_dir, [art("r", "Rebuilt")], rebuild=True, procs=1)
    assert report.generation.startswith("gen-000002")
    assert writer.applied_seq() == 3
    assert index_state(index_dir) == {"r": ["Rebuilt"]}


def test_a_rebuild_keeps_what_was_published_through_the_api_and_its_sources_lack(tmp_path: Path) -> None:
    """A rebuild from a CMS export replaces the index with the export, but an article published
    through the API (journal beside the index) that the export lacks is kept, from the live
    generation; the export's version wins where it has one; an unpublished article stays gone; an
    entry still waiting is applied after the switch."""
    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    with Journal(index_dir / "journal.sqlite3") as journal:
        journal.append([upsert(art("a", "Alpha")), upsert(art("b", "Beta")),
                        upsert(art("c", "Gamma", category="Thể thao"))])
        journal.append([delete("a")])
        writer.apply(entries_of(journal))
        journal.append([upsert(art("d", "Delta"))])  # acknowledged, not applied yet
        report = index_articles(index_dir, [art("b", "Beta từ CMS"), art("r", "Rebuilt")], rebuild=True, procs=1)
        assert report.kept == 1 and "kept 1 published through the API" in report.summary()
        assert index_state(index_dir) == {"b": ["Beta từ CMS"], "c": ["Gamma"], "r": ["Rebuilt"]}
        assert writer.applied_seq() == 4
        writer.apply(entries_of(journal, writer.applied_seq()))
        assert index_state(index_dir) == {"b": ["Beta từ CMS"], "c": ["Gamma"], "d": ["Delta"], "r": ["Rebuilt"]}
        # The kept article is whole: searchable, in its category.
        assert searchable_ids(index_dir, ["c"]) == {"c"}
        # Republished then unpublished again: not kept by the next rebuild.
        journal.append([delete("c")])
        writer.apply(entries_of(journal, writer.applied_seq()))
        again = index_articles(index_dir, [art("r", "Rebuilt")], rebuild=True, procs=1)
        assert again.kept == 2  # b and d, published through the API, not in these sources
        assert index_state(index_dir) == {"b": ["Beta từ CMS"], "d": ["Delta"], "r": ["Rebuilt"]}


def test_a_journal_older_than_the_published_table_keeps_nothing_and_fails_nothing(tmp_path: Path) -> None:
    import sqlite3

    index_dir = tmp_path / "ix"
    index_articles(index_dir, [art("x", "X")], procs=1)
    conn = sqlite3.connect(index_dir / "journal.sqlite3")
    conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, article_id TEXT,"
                 " article TEXT, accepted_at TEXT)")
    conn.commit()
    conn.close()
    report = index_articles(index_dir, [art("r", "Rebuilt")], rebuild=True, procs=1)
    assert report.kept == 0 and index_state(index_dir) == {"r": ["Rebuilt"]}


def segment_sizes(index_dir: Path) -> list[int]:
    _name, ix = store.open_live(index_dir)
    return sorted(seg.doc_count_all() for seg in ix._segments())


def searchable_ids(index_dir: Path, ids: list[str]) -> set[str]:
    """The ids a search (the postings, not the stored fields) finds in the live index."""
    from whoosh.query import Term

    _name, ix = store.open_live(index_dir)
    with ix.searcher() as searcher:
        return {article_id for article_id in ids if len(searcher.search(Term("id", article_id))) == 1}


def test_an_apply_never_merges_and_the_idle_merge_takes_the_smallest_segments(tmp_path: Path) -> None:
    """An apply commit costs its own documents only (a merge inside it delayed what it published);
    merging is a separate commit that keeps the applied number and every document."""
    from index.builder import MERGE_AT_SEGMENTS

    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    ids: list[str] = []
    with Journal(tmp_path / "journal.sqlite3") as journal:
        for n in range(MERGE_AT_SEGMENTS + 4):  # batches of 3, then 1, 2, 1, 2, ...: sizes to choose from
            batch_ids = [f"a{n}-{i}" for i in range(3 if n == 0 else 1 + n % 2)]
            ids += batch_ids
            before = len(segment_sizes(index_dir)) if n else 0
            journal.append([upsert(art(i, f"Tin {i}")) for i in batch_ids])
            writer.apply(entries_of(journal, writer.applied_seq()))
            assert len(segment_sizes(index_dir)) == before + 1, f"apply {n} merged"
        applied = writer.applied_seq()
    generation_dir = index_dir / "gen-000001"
    sizes = segment_sizes(index_dir)
    toc = store.toc_generation(generation_dir)
    seq_files = sorted(p.name for p in generation_dir.glob("journal-*.seq"))

    assert writer.merge_small_segments(busy=True) == 0  # entries waiting: only past the hard cap
    assert segment_sizes(index_dir) == sizes and store.toc_generation(generation_dir) == toc

    assert writer.merge_small_segments() == MERGE_AT_SEGMENTS
    smallest = sizes[:MERGE_AT_SEGMENTS]
    assert segment_sizes(index_dir) == sorted([*sizes[MERGE_AT_SEGMENTS:], sum(smallest)])
    assert store.toc_generation(generation_dir) == toc + 1
    assert sorted(p.name for p in generation_dir.glob("journal-*.seq")) == seq_files  # it writes none
    assert writer.applied_seq() == applied
    assert set(index_state(index_dir)) == set(ids)
    assert searchable_ids(index_dir, ids) == set(ids)
    assert writer.merge_small_segments() == 0  # at most MERGE_AT_SEGMENTS small segments left


class Seg:
    """What ``segments_to_merge`` reads of a Whoosh segment."""

    def __init__(self, docs: int, n: int) -> None:
        self.docs, self.n = docs, n

    def doc_count_all(self) -> int:
        return self.docs

    def segment_id(self) -> str:
        return f"s{self.n:03d}"


def test_segments_to_merge_bounds_the_count_even_when_busy() -> None:
    from index.whoosh_writer import segments_to_merge

    build = Seg(50_000, 0)
    small = [Seg(10 + n % 5, n) for n in range(1, 11)]
    assert segments_to_merge([build, *small[:4]], at=4, cap=8) == []
    picked = segments_to_merge([build, *small], at=4, cap=8)
    assert [s.n for s in picked] == [5, 10, 1, 6]  # the smallest four, never the build's segment
    assert segments_to_merge([build, *small[:8]], busy=True, at=4, cap=8) == []
    assert len(segments_to_merge([build, *small], busy=True, at=4, cap=8)) == 4


def test_a_busy_merge_takes_only_a_bounded_number_of_documents() -> None:
    from index.whoosh_writer import segments_to_merge

    small = [Seg(400, n) for n in range(1, 11)]
    assert len(segments_to_merge(small, busy=True, at=4, cap=8, busy_docs=1000)) == 2  # 800; a third: 1,200
    assert len(segments_to_merge(small, busy=True, at=4, cap=8, busy_docs=100)) == 2  # never fewer than two
    assert len(segments_to_merge(small, at=4, cap=8, busy_docs=100)) == 4  # not busy: no such bound


def logical_dump(index_dir: Path) -> tuple[object, ...]:
    """What a live index holds, segment layout aside: per document (in order) its stored fields and
    field lengths; per term of every field its postings (document number, weight)."""
    _name, ix = store.open_live(index_dir)
    with ix.searcher() as searcher:
        reader = searcher.reader()
        fields = [name for name, field in searcher.schema.items() if field.indexed]
        docs = [(searcher.stored_fields(d), [reader.doc_field_length(d, f, 0) for f in fields])
                for d in reader.all_doc_ids()]
        postings = {(f, t): list(reader.postings(f, t).items_as("weight")) for f in fields
                    for t in reader.field_terms(f)}
        return docs, postings, reader.doc_count()


def test_a_merge_re_adds_the_articles_into_the_same_documents_as_whooshs_own_merge(tmp_path: Path) -> None:
    """The merge writes the merged segment with the build's writer from the stored articles; the
    documents and postings are what Whoosh's ``add_reader`` merge wrote (the merge before)."""
    from whoosh.reading import SegmentReader

    import index.whoosh_writer as whoosh_writer
    from index.builder import MERGE_AT_SEGMENTS

    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        for n in range(MERGE_AT_SEGMENTS + 2):
            journal.append([upsert(art(f"m{n}-{i}", f"Tin {n} số {i}", f"Giá vàng {n} {i}.")) for i in range(3)])
            if n % 3 == 2:
                journal.append([delete(f"m{n - 1}-1")])
            writer.apply(entries_of(journal, writer.applied_seq()))
    whoosh_dir = tmp_path / "whoosh-merge"
    shutil.copytree(index_dir, whoosh_dir)

    def add_reader_merge(w: Any, segments: list[Any], chosen: set[str], _interrupt: object) -> None:
        for seg in segments:
            if seg.segment_id() in chosen:
                reader = SegmentReader(w.storage, w.schema, seg)
                w.add_reader(reader)
                reader.close()

    from whoosh.writing import SegmentWriter

    old_way = WhooshIndexWriter(whoosh_dir, segment_writer=SegmentWriter)
    readd = whoosh_writer._readd
    whoosh_writer._readd = add_reader_merge  # type: ignore[assignment]
    try:
        assert old_way.merge_small_segments() == MERGE_AT_SEGMENTS
    finally:
        whoosh_writer._readd = readd
    assert writer.merge_small_segments() == MERGE_AT_SEGMENTS
    assert segment_sizes(index_dir) == segment_sizes(whoosh_dir)
    assert logical_dump(index_dir) == logical_dump(whoosh_dir)


def test_a_merge_gives_way_when_asked_and_commits_nothing(tmp_path: Path) -> None:
    from index.builder import MERGE_AT_SEGMENTS

    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    with Journal(tmp_path / "journal.sqlite3") as journal:
        for n in range(MERGE_AT_SEGMENTS + 1):
            journal.append([upsert(art(f"g{n}-{i}", f"Tin {n} {i}")) for i in range(25)])
            writer.apply(entries_of(journal, writer.applied_seq()))
    generation_dir = index_dir / "gen-000001"
    sizes, toc = segment_sizes(index_dir), store.toc_generation(generation_dir)
    asked = []

    def interrupt() -> bool:
        asked.append(1)
        return len(asked) >= 3

    assert writer.merge_small_segments(interrupt=interrupt) == 0
    assert len(asked) == 3 and segment_sizes(index_dir) == sizes and store.toc_generation(generation_dir) == toc
    assert writer.merge_small_segments(interrupt=lambda: False) == MERGE_AT_SEGMENTS  # then it can finish
    assert len(index_state(index_dir)) == 25 * (MERGE_AT_SEGMENTS + 1)


def test_the_applier_merges_when_the_journal_is_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import index.applier as applier_module
    from index.builder import MERGE_AT_SEGMENTS

    monkeypatch.setattr(applier_module, "MERGE_AFTER_IDLE", 0.3)
    index_dir = tmp_path / "ix"
    writer = WhooshIndexWriter(index_dir)
    journal = Journal(tmp_path / "journal.sqlite3")
    applier = Applier(journal, writer, interval=0, max_batch=1)
    ids = [f"m{n}" for n in range(MERGE_AT_SEGMENTS + 3)]
    journal.append([upsert(art(i, f"Tin {i}")) for i in ids])
    for n in range(len(ids)):  # one entry per commit; entries are waiting until the last one
        batch = applier.step()
        assert batch is not None and batch.committed
        if n < len(ids) - 1:
            assert len(segment_sizes(index_dir)) == n + 1, "merged while entries were waiting"
    # After the last commit nothing waits: the applier merges once the journal has stayed empty
    # for MERGE_AFTER_IDLE (a lull, not the gap between two articles), then merges no more.
    assert len(segment_sizes(index_dir)) == len(ids)
    assert applier.step() is None
    assert len(segment_sizes(index_dir)) == len(ids), "merged before a lull"
    time.sleep(0.3)
    assert applier.step() is None
    assert len(segment_sizes(index_dir)) == len(ids) - MERGE_AT_SEGMENTS + 1
    assert applier.step() is None
    assert len(segment_sizes(index_dir)) == len(ids) - MERGE_AT_SEGMENTS + 1
    assert writer.applied_seq() == len(ids)
    assert searchable_ids(index_dir, ids) == set(ids)
    journal.close()


# --- the applier ----------------------------------------------------------------------------------


def test_applier_batches_compacts_reports_and_survives_a_failing_hook(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    journal = Journal(tmp_path / "journal.sqlite3")
    status_path = tmp_path / "status.json"
    batches: list[AppliedBatch] = []

    def hook(batch: AppliedBatch) -> None:
        batches.append(batch)
        raise RuntimeError("a broken hook")

    applier = Applier(journal, WhooshIndexWriter(index_dir), interval=0.3, max_batch=50, on_commit=hook,
                      status_path=status_path)
    runner = threading.Thread(target=applier.run)
    runner.start()
    try:
        journal.append([upsert(art(f"n{i}", f"Bài {i}")) for i in range(120)])  # max_batch: 50, 50, 20
        assert wait_until(lambda: read_status(status_path).applied_seq == 120, 10), read_status(status_path)
        assert [b.last_seq for b in batches[:3]] == [50, 100, 120], "the hook's failure stopped nothing"
        for i in range(5):  # trickling in faster than the interval: fewer commits than appends
            journal.append([upsert(art(f"t{i}", f"Nhỏ {i}"))])
            time.sleep(0.05)
        assert wait_until(lambda: read_status(status_path).applied_seq == 125, 10)
        assert len(batches) <= 3 + 3
        assert wait_until(lambda: journal.stats().length == 0, 5), "applied entries are compacted away"
        # a merge may still be running after the last commit: the applier is idle once it is done
        assert wait_until(lambda: read_status(status_path).state == "idle", 10), read_status(status_path)
        status = read_status(status_path)
        assert status.state == "idle" and status.pid == os.getpid() and status.last_commit_at is not None
        assert status.generation.startswith("gen-000001.") and status.last_error is None
    finally:
        applier.stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert read_status(status_path).state == "stopped"
    assert len(index_state(index_dir)) == 125
    journal.close()


def test_applier_backs_off_while_the_writer_lock_is_held_then_applies(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    journal = Journal(tmp_path / "journal.sqlite3")
    status_path = tmp_path / "status.json"
    applier = Applier(journal, WhooshIndexWriter(index_dir), interval=0.1, status_path=status_path)
    runner = threading.Thread(target=applier.run)
    with store.writer_lock(index_dir):  # a ``searchsvc index`` run
        journal.append([upsert(art("a", "Alpha"))])
        runner.start()
        assert wait_until(lambda: read_status(status_path).state == "backing-off", 5)
        assert "writer lock" in (read_status(status_path).last_error or "")
    try:
        assert wait_until(lambda: read_status(status_path).applied_seq == 1, 5)
        assert wait_until(lambda: read_status(status_path).last_error is None, 5)
    finally:
        applier.stop.set()
        runner.join(10)
    journal.close()


# --- a real server running the applier ------------------------------------------------------------


def get_status(svc: ServiceProcess) -> int:
    return read_status(svc.index_dir / "applier-status.json").applied_seq


def search_titles(client: httpx.Client, q: str) -> list[str]:
    response = client.get("/api/search", params={"q": q, "per_page": 50})
    assert response.status_code == 200, response.text[:300]
    return [hit["title"] for hit in response.json()["hits"]]


def visible_within(seconds: float, check: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    assert wait_until(check, seconds, 0.05), f"{what}: not visible within {seconds} s"
    return time.monotonic() - started


def test_publish_correct_unpublish_visible_in_search_pages_and_feeds(built_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    shutil.copytree(built_index, index_dir)
    journal = Journal(index_dir / "journal.sqlite3")
    story = art("pub-1", "Phát hiện loài chim Xolotrix quý hiếm", "Các nhà khoa học tìm thấy chim Xolotrix.",
                category="Thể thao", published=NOW)
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=10) as client:
        etags = {path: client.get(path).headers["etag"] for path in ("/api/search?q=Xolotrix", "/feeds/all.rss")}

        def everywhere(title: str, query: str, present: bool) -> Callable[[], bool]:
            def check() -> bool:
                titles = search_titles(client, query)
                page = client.get("/articles/pub-1")
                feeds = [client.get(f).text for f in ("/feeds/the-thao.rss", "/feeds/all.rss")]
                if present:
                    return (title in titles and page.status_code == 200 and title in page.text
                            and all(title in f for f in feeds))
                return not titles and page.status_code == 410 and all("Xolotrix" not in f for f in feeds)
            return check

        journal.append([upsert(story)])
        print("published:", visible_within(5, everywhere(story.title, "Xolotrix", True), "published"))
        assert client.get("/api/articles/pub-1").json()["title"] == story.title
        for path, etag in etags.items():
            assert client.get(path).headers["etag"] != etag, path

        corrected = art("pub-1", "Phát hiện loài chim Xolotrix quý hiếm ở Quorvath",
                        "Bản đính chính: chim Xolotrix sống ở Quorvath.", category="Thể thao", published=NOW)
        before = client.get("/api/articles/pub-1").headers["etag"]
        journal.append([upsert(corrected)])
        print("corrected:", visible_within(5, everywhere(corrected.title, "Quorvath", True), "corrected"))
        assert search_titles(client, "Xolotrix") == [corrected.title], "exactly once, the corrected one"
        assert client.get("/api/articles/pub-1").headers["etag"] != before

        journal.append([delete("pub-1")])
        print("unpublished:", visible_within(5, everywhere(corrected.title, "Xolotrix", False), "unpublished"))
        gone = client.get("/api/articles/pub-1")
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "article_gone"
        page = client.get("/articles/pub-1")
        assert page.status_code == 410 and "<code>article_gone</code>" in page.text
        assert client.get("/api/articles/never-published").status_code == 404
        assert wait_until(lambda: get_status(svc) == 3, 5)
    journal.close()


@contextmanager
def own_group_server(index_dir: Path, log: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``searchsvc serve`` in a process group of its own, so the test can SIGKILL all of it."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "searchsvc", "serve", "--index-dir", str(index_dir), "--port", str(port)],
            cwd=REPO_ROOT, env=clean_env(**env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(healthy, 30), log.read_text(errors="replace")[-3000:]
        yield proc, url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def applier_pid(server_pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == server_pid and b"apply" in cmd and stat[0] not in ("Z", "X"):
            return int(entry.name)
    return None


def kill_rounds(tmp_path: Path, rounds: int, applier_only: int, seed: int) -> None:
    """Publish batches and SIGKILL the server's whole process group (``rounds`` times) or only
    its applier (``applier_only`` times) at random moments while it applies; then check that
    every acknowledged article is there exactly once with its last content."""
    rng = random.Random(seed)
    index_dir = tmp_path / "ix"
    journal = Journal(index_dir / "journal.sqlite3")
    expected: dict[str, str | None] = {}  # id -> last acknowledged title (None: unpublished)
    env = {"SEARCHSVC_COMMIT_INTERVAL": "0.05", "SEARCHSVC_ACCESS_LOG": "0"}
    interrupted = 0
    log = tmp_path / "server.log"

    def publish() -> None:
        changes: list[Change] = []
        for _ in range(rng.randint(100, 400)):
            article_id = f"k{rng.randrange(600)}"
            if rng.random() < 0.2:
                changes.append(delete(article_id))
                expected[article_id] = None
            else:
                title = f"Tin {article_id} bản {rng.randrange(10**9)}"
                changes.append(upsert(art(article_id, title, "Nội dung " * rng.randint(5, 200))))
                expected[article_id] = title
        journal.append(changes)

    for n in range(rounds + applier_only):
        whole_group = n < rounds
        with own_group_server(index_dir, log, env) as (proc, url):
            assert wait_until(lambda: applier_pid(proc.pid), 15), log.read_text()[-3000:]
            publish()
            time.sleep(rng.uniform(0.0, 0.5))
            if whole_group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                killed = applier_pid(proc.pid)
                assert killed is not None
                os.kill(killed, signal.SIGKILL)
                # The server restarts it, and the new one finishes the work.
                restarted = wait_until(lambda: applier_pid(proc.pid) not in (None, killed), 15)  # noqa: B023 - called here
                assert restarted, "applier not restarted"
        if WhooshIndexWriter(index_dir).applied_seq() < journal.last_seq():
            interrupted += 1
    # A clean start resumes by itself, and everything acknowledged is there once, as last sent.
    with running_service(index_dir, tmp_path / "logs", env=env) as svc:
        last = journal.last_seq()
        assert wait_until(lambda: WhooshIndexWriter(index_dir).applied_seq() == last, 30), log.read_text()[-3000:]
        state = index_state(index_dir)
        for article_id, title in expected.items():
            if title is None:
                assert article_id not in state, article_id
            else:
                assert state.get(article_id) == [title], (article_id, state.get(article_id), title)
        assert set(state) == {i for i, t in expected.items() if t is not None}
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            some = [i for i, t in expected.items() if t is None][:3] + [i for i, t in expected.items() if t][:3]
            for article_id in some:
                # Served within seconds of the commit, as every commit is: a worker looks for a newer
                # generation at most every 0.25 s (``index.engine.CHECK_INTERVAL``), and the last
                # commit may have landed just after its last look.
                want = 410 if expected[article_id] is None else 200
                url = f"/api/articles/{article_id}"
                assert wait_until(lambda: client.get(url).status_code == want, 5), article_id  # noqa: B023
        assert wait_until(lambda: journal.stats().length == 0, 10), "applied entries are compacted away"
    journal.close()
    print(f"{rounds + applier_only} kills, {interrupted} before the batch was fully applied")
    assert interrupted >= 1, "no kill landed before its batch was applied: the test did not test"


def test_sigkill_during_apply_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    kill_rounds(tmp_path, rounds=20, applier_only=3, seed=12)


@pytest.mark.slow
def test_sigkill_during_apply_many_times(tmp_path: Path) -> None:
    kill_rounds(tmp_path, rounds=45, applier_only=5, seed=1212)


def test_four_publishers_and_readers_end_with_the_journals_last_state(built_index: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    shutil.copytree(built_index, index_dir)
    before = index_state(index_dir)
    journal_path = index_dir / "journal.sqlite3"
    Journal(journal_path).close()
    ids = [f"c{i}" for i in range(80)]
    appended: list[tuple[int, str, str | None]] = []  # (seq, id, title or None)
    appended_lock = threading.Lock()
    failures: list[str] = []
    reads = 0
    done = threading.Event()

    def publisher(n: int) -> None:
        rng = random.Random(n)
        journal = Journal(journal_path)  # one per publisher, as each admin API worker has its own
        for i in range(500):
            article_id = rng.choice(ids)
            if rng.random() < 0.25:
                seq = journal.append([delete(article_id)])
                record: tuple[int, str, str | None] = (seq, article_id, None)
            else:
                title = f"Bài {article_id} của người {n} lần {i}"
                seq = journal.append([upsert(art(article_id, title, category=rng.choice(["Thể thao", "Kinh tế"])))])
                record = (seq, article_id, title)
            with appended_lock:
                appended.append(record)
            time.sleep(rng.uniform(0, 0.008))  # publishing spans several commits while readers read
        journal.close()

    def reader(url: str, n: int) -> None:
        nonlocal reads
        rng = random.Random(100 + n)
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.is_set():
                path = rng.choice(["/api/search?q=bài&sort=newest", "/feeds/all.rss", "/api/search?q=người",
                                   f"/api/articles/{rng.choice(ids)}", "/c/the-thao", "/feeds/kinh-te.atom"])
                try:
                    response = client.get(path)
                    ok = response.status_code == 200 or (
                        path.startswith("/api/articles/") and response.status_code in (404, 410))
                    if not ok:
                        failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(f"{path}: {exc!r}")
                reads += 1

    env = {"SEARCHSVC_COMMIT_INTERVAL": "0.2", "SEARCHSVC_ACCESS_LOG": "0"}
    with running_service(index_dir, tmp_path / "logs", workers=2, env=env) as svc:
        readers = [threading.Thread(target=reader, args=(svc.url, n)) for n in range(3)]
        publishers = [threading.Thread(target=publisher, args=(n,)) for n in range(4)]
        for t in readers + publishers:
            t.start()
        for t in publishers:
            t.join(300)
        last = max(seq for seq, _, _ in appended)
        assert sorted(seq for seq, _, _ in appended) == list(range(1, 2001))
        assert wait_until(lambda: get_status(svc) == last, 60), read_status(index_dir / "applier-status.json")
        time.sleep(0.5)  # the readers go on against the final state for a moment
        done.set()
        for t in readers:
            t.join(60)
        final: dict[str, str | None] = {}
        for _seq, article_id, title in sorted(appended):
            final[article_id] = title
        state = index_state(index_dir)
        expected = {**{k: v for k, v in before.items()}, **{k: [v] for k, v in final.items() if v is not None}}
        assert state == expected
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            for article_id, title in final.items():
                response = client.get(f"/api/articles/{article_id}")
                assert response.status_code == (200 if title else 410), article_id
    assert not failures, failures[:5]
    assert reads > 50, reads
    print(f"{reads} reads, {len(appended)} entries")
