"""Caches carried from one generation to the next (``index.docsets.Carry``).

A publishing commit adds a segment, a correction deletes a document in an old one, a merge replaces
the small segments; after each, an engine that carried its caches over must answer exactly as an
engine opened afresh on the same generation: the same posting arrays, frequencies, lengths and
publication keys, and the same search results, to the score.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from index_helpers import article

import index.engine as engine_module
import index.whoosh_writer as whoosh_writer
from index.api import SearchRequest
from index.article import VN_TZ, Article
from index.builder import index_articles
from index.docsets import DocSets, common_prefix
from index.engine import WhooshEngine
from index.publishing import Entry, Op
from index.whoosh_writer import WhooshIndexWriter

SYLLABLES = ("đắk nông mưa lũ giá vàng tăng giảm học sinh bóng đá thủ đô hà nội kinh tế xuất khẩu "
             "gạo cà phê tỉnh ủy ban nhân dân thành phố giao thông tai nạn bệnh viện y tế").split()
CATEGORIES = ("Thời sự", "Kinh tế", "Thể thao", "Giáo dục")
QUERIES = ["đắk nông", "dak nong", "giá vàng", "gia vang tang", "học sinh", "bóng đá hà nội", "kinh te",
           "cà phê xuất khẩu", "ủy ban", "benh vien", "giao thong tai nan", "thủ đô", "gạo", "mưa lũ tỉnh",
           "nhân dân thành phố", "y tế", "xuat khau gao", "vang"]
TERMS = [(f"{where}_{kind}", text) for where in ("title", "body") for kind, text in
         (("folded", "vang"), ("folded", "nong"), ("pair", "gia_vang"), ("pair", "hoc_sinh"), ("folded", "gao"),
          ("exact", "vàng"), ("folded", "khong_co"))]


def random_article(rng: random.Random, article_id: str, day: int) -> Article:
    def words(n: int) -> str:
        return " ".join(rng.choice(SYLLABLES) for _ in range(n))

    return article(article_id, words(rng.randint(3, 7)).capitalize(),
                   [words(rng.randint(15, 40)) + "." for _ in range(rng.randint(1, 3))],
                   rng.choice(CATEGORIES),
                   published=datetime(2021, 1, 1, 7, tzinfo=VN_TZ) + timedelta(days=day, hours=rng.randint(0, 20)))


def requests() -> list[SearchRequest]:
    out = [SearchRequest(q=q) for q in QUERIES]
    out += [SearchRequest(q=q, sort="newest") for q in QUERIES[:6]]
    out += [SearchRequest(q=q, categories=["kinh-te"]) for q in QUERIES[:6]]
    out.append(SearchRequest(q="", sort="newest", per_page=20))
    return out


def answers(engine: WhooshEngine) -> list[tuple[object, ...]]:
    found = []
    for request in requests():
        result = engine.search(request)
        found.append((result.total, result.tier, [(h.article.id, h.score, h.snippet) for h in result.hits],
                      result.facets, result.suggestion))
    return found


def internals(engine: WhooshEngine) -> tuple[object, ...]:
    searcher, _gen = engine._state()
    docsets: DocSets = engine._local.docsets
    postings = [(ids.tolist(), weights.tolist()) for ids, weights in (docsets.postings(f, t) for f, t in TERMS)]
    return (postings, [docsets.df(f, t) for f, t in TERMS],
            [docsets.length_array(f).tolist() for f in ("title_folded", "body_folded")],
            list(docsets.published_keys()), sorted(docsets.all()),
            {f: docsets.counts(f, docsets.all()) for f in ("category_slug", "month")})


@pytest.fixture
def index_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(engine_module, "CHECK_INTERVAL", 0.0)  # every call sees the newest commit
    rng = random.Random(5)
    index_dir = tmp_path / "ix"
    index_articles(index_dir, [random_article(rng, f"a-{i}", i) for i in range(60)], procs=1)
    return index_dir


def test_common_prefix_counts_the_leading_segments_two_generations_share() -> None:
    assert common_prefix([("a", 10), ("b", 5)], [("a", 10), ("b", 5), ("c", 2)]) == (2, 15)
    assert common_prefix([("a", 10), ("b", 5), ("c", 2)], [("a", 10), ("d", 7)]) == (1, 10)
    assert common_prefix([("a", 10)], [("b", 10)]) == (0, 0)


def test_an_engine_that_carried_its_caches_answers_as_a_fresh_one(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(6)
    merge_all = False  # what the merges below take: the small segments, or every segment

    def to_merge(segments: list[Any], **_kwargs: object) -> list[Any]:
        return list(segments) if merge_all else [seg for seg in segments if seg.doc_count_all() < 60]

    monkeypatch.setattr(whoosh_writer, "segments_to_merge", to_merge)

    def merge(everything: bool) -> None:
        nonlocal merge_all
        merge_all = everything
        assert writer.merge_small_segments() > 1
    writer = WhooshIndexWriter(index_dir)
    carried = WhooshEngine.open(index_dir)
    seq = 0

    def commit(entries: list[tuple[Op, str, Article | None]]) -> None:
        nonlocal seq
        batch = []
        for op, article_id, doc in entries:
            seq += 1
            batch.append(Entry(seq, op, article_id, doc, datetime.now(UTC)))
        writer.apply(batch)

    steps = [
        lambda: commit([(Op.UPSERT, f"n-{i}", random_article(rng, f"n-{i}", 70 + i)) for i in range(5)]),
        lambda: commit([(Op.UPSERT, f"a-{i}", random_article(rng, f"a-{i}", i)) for i in (3, 17, 41)]),
        lambda: commit([(Op.DELETE, "a-5", None), (Op.DELETE, "n-2", None)]),
        lambda: commit([(Op.UPSERT, f"m-{i}", random_article(rng, f"m-{i}", 90 + i)) for i in range(3)]),
        lambda: merge(False),  # the four small segments into one: the build's segment stays
        lambda: commit([(Op.UPSERT, "a-9", random_article(rng, "a-9", 9)),
                        (Op.UPSERT, "z-1", random_article(rng, "z-1", 120))]),
        lambda: merge(True),  # every segment: a whole new layout, nothing to carry
        lambda: commit([(Op.UPSERT, "z-2", random_article(rng, "z-2", 121))]),
    ]
    try:
        answers(carried), internals(carried)  # the caches full before the first commit
        kinds = []
        for step in steps:
            step()
            got = (answers(carried), internals(carried))
            token = carried.generation
            kinds.append(carried._shared[token].sets.carry)
            with WhooshEngine.open(index_dir) as fresh:
                assert fresh.generation == token
                assert got == (answers(fresh), internals(fresh)), f"after step {len(kinds)}"
    finally:
        carried.close()
    # What the steps carried: appended segments (all of the old ones kept; the deletions alone add
    # none); after the merge of the small ones, the build's segment alone; after the merge of all,
    # nothing; then appends again.
    assert [None if c is None else (c.first_new, c.appended) for c in kinds] == [
        (1, True), (2, True), (3, True), (3, True), (1, False), (2, True), None, (1, True)]


def test_a_carried_generation_lets_go_of_the_one_before(index_dir: Path) -> None:
    """Only one step back is held: generation n+2 does not keep n's caches alive through n+1."""
    writer = WhooshIndexWriter(index_dir)
    rng = random.Random(7)
    with WhooshEngine.open(index_dir) as engine:
        engine.search(SearchRequest(q="giá vàng"))
        first = engine._shared[engine.generation].sets
        tokens = []
        for seq in (1, 2):
            writer.apply([Entry(seq, Op.UPSERT, f"x-{seq}", random_article(rng, f"x-{seq}", seq), datetime.now(UTC))])
            engine.search(SearchRequest(q="giá vàng"))
            tokens.append(engine.generation)
        second_sets = engine._shared[tokens[1]].sets
        assert second_sets.carry is not None and second_sets.carry.old is not first
        assert second_sets.carry.old.carry is None


def docset_values(docsets: DocSets) -> tuple[object, ...]:
    """What a ``DocSets`` answers from its generation's caches (``internals`` without reopening)."""
    return ([(ids.tolist(), weights.tolist()) for ids, weights in (docsets.postings(f, t) for f, t in TERMS)],
            [docsets.df(f, t) for f, t in TERMS], [sorted(docsets.term(f, t)) for f, t in TERMS],
            [docsets.length_array(f).tolist() for f in ("title_folded", "body_folded")],
            list(docsets.published_keys()), sorted(docsets.all()),
            {f: docsets.counts(f, docsets.all()) for f in ("category_slug", "month")})


def test_an_idle_threads_stale_generation_holds_no_caches(index_dir: Path) -> None:
    """A search thread keeps its last generation's sets until it next searches: the engine empties
    them once that generation is no longer the newest (what the newest carries over excepted), and
    the thread, when it searches again, answers as a fresh engine."""
    writer = WhooshIndexWriter(index_dir)
    rng = random.Random(8)
    idle = ThreadPoolExecutor(max_workers=1)  # one thread, alive and idle between its searches
    try:
        with WhooshEngine.open(index_dir) as engine:
            idle.submit(answers, engine).result()
            stale = idle.submit(lambda: engine._local.docsets._shared).result()
            assert len(stale.terms) and len(stale.postings) and stale.fields and stale.all is not None
            for seq in (1, 2):
                writer.apply([Entry(seq, Op.UPSERT, f"y-{seq}", random_article(rng, f"y-{seq}", seq),
                                    datetime.now(UTC))])
                answers(engine)  # this thread moves to the new generation; the idle one does not
                newest = engine._shared[engine.generation].sets
                previous = newest.carry.old if newest.carry is not None else None
                assert previous is not None and len(previous.postings), "the carried part is kept"
                assert not len(previous.terms) and not previous.fields and previous.all is None
            # Two generations later, the idle thread's sets are empty, the carried part too.
            assert idle.submit(lambda: engine._local.docsets._shared).result() is stale
            assert (len(stale.terms), len(stale.postings), stale.fields, stale.all, stale.lengths,
                    stale.length_arrays, stale.published) == (0, 0, {}, None, {}, {}, None)
            got = idle.submit(answers, engine).result()
            with WhooshEngine.open(index_dir) as fresh:
                assert got == answers(fresh)
    finally:
        idle.shutdown()


@pytest.mark.parametrize("carried", [True, False])
def test_sets_let_go_mid_search_answer_the_same(index_dir: Path, carried: bool) -> None:
    """A thread still searching a generation whose caches were let go refills what it asks for."""
    with WhooshEngine.open(index_dir) as engine:
        answers(engine)
        docsets: DocSets = engine._local.docsets
        before = docset_values(docsets)
        shared = docsets._shared
        postings, df = shared.postings, shared.df
        assert df, "frequencies were asked"
        shared.let_go(carried=carried)
        assert (shared.postings is postings) == carried and (shared.df is df) == carried  # what Carry reads
        assert not len(shared.terms) and not shared.fields and shared.all is None
        assert docset_values(docsets) == before


def test_carried_postings_are_the_same_arrays_without_a_copy_when_no_new_segment_holds_the_term(
        index_dir: Path) -> None:
    writer = WhooshIndexWriter(index_dir)
    with WhooshEngine.open(index_dir) as engine:
        engine._state()
        before = engine._local.docsets.postings("body_folded", "vang")
        other = article("x-1", "Một bài khác", "Không có chữ ấy.")
        writer.apply([Entry(1, Op.UPSERT, "x-1", other, datetime.now(UTC))])
        engine._state()
        after = engine._local.docsets.postings("body_folded", "vang")
        assert np.shares_memory(after[0], before[0]) and after[0].tolist() == before[0].tolist()


def test_small_segments_term_filters_skip_only_segments_that_lack_the_term(index_dir: Path) -> None:
    """Frequencies and posting arrays with the small segments' term filters (``term_filter``) are
    Whoosh's own, for every term of the index and for terms it lacks; a filter never rules out a
    term its segment holds, and rarely lets one through that it lacks."""
    from index.postings import term_bytes, term_filter

    rng = random.Random(8)
    writer = WhooshIndexWriter(index_dir)
    for seq in range(1, 4):  # three small segments beside the build's
        writer.apply([Entry(seq, Op.UPSERT, f"s-{seq}", random_article(rng, f"s-{seq}", 200 + seq), datetime.now(UTC))])
    with WhooshEngine.open(index_dir) as engine:
        searcher, _gen = engine._state()
        docsets: DocSets = engine._local.docsets
        reader = searcher.reader()
        leaves = [leaf for leaf, _offset in reader.leaf_readers()]
        assert len(leaves) == 4
        fields = ("title_folded", "body_folded", "body_pair", "title_exact", "category_slug", "month")
        terms = [(f, t) for f in fields for t in reader.field_terms(f)]
        terms += [(f, "khong_co_dau") for f in fields] + [("no_such_field", "x")]
        for leaf in leaves:
            held = term_filter(leaf)
            assert held is not None
            known = [(f, t) for f, t in terms if f in leaf.schema]
            encoded = [(f, t, term_bytes(leaf, f, t)) for f, t in known]
            assert all(held.may_hold(f, b) for f, t, b in encoded if b is not None and (f, t) in leaf)
            lacking = [(f, b) for f, t, b in encoded if b is not None and (f, t) not in leaf]
            let_through = sum(held.may_hold(f, b) for f, b in lacking)
            assert let_through <= 2, (let_through, len(lacking))  # only 32-bit hash collisions
            assert len(held.hashes) == sum(1 for _ in leaf.all_terms())  # every key, once
        checked = 0
        for field, text in terms:
            if field not in searcher.schema:
                continue
            assert docsets.df(field, text) == reader.doc_frequency(field, text), (field, text)
            ids, weights = docsets.postings(field, text)
            expected = [(offset + d, w) for leaf, offset in reader.leaf_readers() if (field, text) in leaf
                        for d, w in leaf.postings(field, text).items_as("weight")]
            got = [(d, w) for d, w in zip(ids.tolist(), weights.tolist(), strict=True) if d not in docsets._deleted]
            assert got == expected, (field, text)
            checked += 1
        assert checked > 1000


def test_lookups_share_one_searcher_per_generation_whatever_thread_asks(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Articles by id and the category list come from one searcher per generation, shared by the
    threads of the service's pool (which come and go); each thread opened its own before, at every
    commit. What they answer follows the commits."""
    import threading

    writer = WhooshIndexWriter(index_dir)
    rng = random.Random(9)
    with WhooshEngine.open(index_dir) as engine:
        opened: list[str] = []
        open_searcher = engine._open_searcher

        def counting(token: str, previous: Any = None) -> Any:
            opened.append(token)
            return open_searcher(token, previous)

        monkeypatch.setattr(engine, "_open_searcher", counting)

        def lookups(found: list[object]) -> None:
            found.append(engine.get_article("a-1"))
            found.append(engine.get_article("x-1"))
            found.append(sum(c.count for c in engine.categories()))

        for seq in (1, 2):
            results: list[list[object]] = []
            threads = []
            for _ in range(12):  # a new thread each time, as the pool's come and go
                results.append([])
                threads.append(threading.Thread(target=lookups, args=(results[-1],)))
                threads[-1].start()
            for thread in threads:
                thread.join()
            assert len(opened) == seq, opened  # one searcher for this generation, not one a thread
            for a1, x1, total in results:
                assert isinstance(a1, Article) and a1.id == "a-1"
                assert (x1 is not None) == (seq == 2) and total == 60 + (seq == 2)
            writer.apply([Entry(seq, Op.UPSERT, "x-1", random_article(rng, "x-1", 99), datetime.now(UTC))])
    assert engine._lookup_held is None  # closed with the engine


def test_a_term_filter_is_its_segments_own_hash_slots_sorted() -> None:
    """The filter's hashes are exactly the keys' hashes as Whoosh stores them (its ``hashfn`` over
    the keys a ``HashWriter`` wrote), whatever the table's layout, and an empty table holds none;
    ``record`` finds each key's own value (short or longer than one read) and nothing for others."""
    from io import BytesIO

    from whoosh.filedb.filetables import HashReader, HashWriter
    from whoosh.filedb.structfile import StructFile

    from index.postings import TermFilter, term_filter

    class Leaf:  # what term_filter reads of a SegmentReader: its terms reader's table and key coder
        def __init__(self, table: HashReader) -> None:
            self._terms = type("Terms", (), {"_tindex": table, "_keycoder": staticmethod(lambda f, b: f.encode() + b)})

    class Kept(BytesIO):
        def close(self) -> None:  # HashWriter.close closes its file: keep the bytes
            self.kept = self.getvalue()
            super().close()

    rng = random.Random(3)
    for count in (0, 1, 7, 5_000):
        keys = {bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 12))) for _ in range(count)}
        buffer = Kept()
        writer = HashWriter(StructFile(buffer))
        values = {key: key[::-1] * rng.choice((1, 20)) for key in keys}  # some past one read of 64 bytes
        for key in sorted(keys):
            writer.add(key, values[key])
        writer.close()
        data = buffer.kept
        table = HashReader(StructFile(BytesIO(data)), len(data))
        held = term_filter(Leaf(table))  # type: ignore[arg-type]
        assert isinstance(held, TermFilter)
        assert list(held.hashes) == sorted(writer.hashfn(k) for k in keys)
        assert all(writer.hashfn(k) in held for k in keys)
        assert all(held.record(table.dbfile, k, writer.hashfn(k)) == values[k] for k in keys)
        others = [bytes(rng.getrandbits(8) for _ in range(14)) for _ in range(2_000)]
        assert sum(writer.hashfn(k) in held for k in others if k not in keys) <= 1
        assert all(held.record(table.dbfile, k, writer.hashfn(k)) is None for k in others if k not in keys)


def test_a_new_generation_takes_over_the_readers_of_unchanged_segments_only(index_dir: Path) -> None:
    """A thread's next searcher keeps its reader of every segment a commit left as it was, and opens
    afresh a segment whose deletions changed (Whoosh's own ``refresh`` would keep that one too, and
    still show the deleted article)."""
    rng = random.Random(10)
    writer = WhooshIndexWriter(index_dir)
    seq = 0

    def apply(op: Op, article_id: str) -> None:
        nonlocal seq
        seq += 1
        doc = random_article(rng, article_id, 300 + seq) if op is Op.UPSERT else None
        writer.apply([Entry(seq, op, article_id, doc, datetime.now(UTC))])

    def leaves(engine: WhooshEngine) -> list[Any]:
        searcher, _gen = engine._state()
        return [leaf for leaf, _offset in searcher.reader().leaf_readers()]

    with WhooshEngine.open(index_dir) as engine:
        apply(Op.UPSERT, "n-1")
        first = leaves(engine)
        assert len(first) == 2
        apply(Op.UPSERT, "n-2")  # appends a segment: both earlier readers carry on
        second = leaves(engine)
        assert len(second) == 3 and second[0] is first[0] and second[1] is first[1]
        assert not first[0].is_closed
        apply(Op.DELETE, "a-7")  # deletes in the build's segment: that one is opened again
        third = leaves(engine)
        assert third[0] is not second[0] and second[0].is_closed
        assert third[1] is second[1] and third[2] is second[2]
        assert engine.get_article("a-7") is None
        assert "a-7" not in {h.article.id for h in engine.search(SearchRequest(q="", sort="newest", per_page=100)).hits}
        with WhooshEngine.open(index_dir) as fresh:
            assert answers(engine) == answers(fresh)


def test_the_vocabulary_grows_by_what_a_commit_adds_and_reads_only_that(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a commit only the segments it adds are read for new syllables (the whole index was
    read again every five minutes before, minutes of CPU on the full corpus); the result is the
    vocabulary read from scratch, plus nothing but syllables of deleted articles."""
    rng = random.Random(11)
    writer = WhooshIndexWriter(index_dir)
    read: list[int] = []
    real = engine_module._read_vocabulary

    def counting(leaves: list[Any]) -> frozenset[str]:
        read.append(len(leaves))
        return real(leaves)

    monkeypatch.setattr(engine_module, "_read_vocabulary", counting)

    def vocabulary(engine: WhooshEngine) -> frozenset[str]:
        searcher, gen = engine._state()
        return engine_module._vocabulary(gen, searcher)

    def from_scratch() -> frozenset[str]:
        with WhooshEngine.open(index_dir) as fresh:
            searcher, _gen = fresh._state()
            return real([leaf for leaf, _offset in searcher.reader().leaf_readers()])

    with WhooshEngine.open(index_dir) as engine:
        first = vocabulary(engine)
        assert read == [1] and "xyzzyq" not in first
        novel = random_article(rng, "n-1", 400)
        novel = Article.from_dict({**novel.to_dict(), "title": novel.title + " xyzzyq"})
        writer.apply([Entry(1, Op.UPSERT, "n-1", novel, datetime.now(UTC))])
        writer.apply([Entry(2, Op.UPSERT, "n-2", random_article(rng, "n-2", 401), datetime.now(UTC))])
        grown = vocabulary(engine)  # two commits, one look: both new segments, nothing else
        assert read == [1, 2] and "xyzzyq" in grown and grown == from_scratch()
        writer.apply([Entry(3, Op.DELETE, "n-1", None, datetime.now(UTC))])
        after_delete = vocabulary(engine)
        assert read[-1] == 0  # a deletion adds no segment
        assert "xyzzyq" in after_delete and after_delete - from_scratch() <= {"xyzzyq"}


def test_a_segment_is_read_once_for_a_term_whatever_generations_come_between(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's segment is read for a term once: a later generation that did not carry the term
    (the one before it never asked for it) takes it from the process's ``SegmentCache``, and only
    the segments the commits added are read. The answers are those of an engine opened afresh."""
    import index.docsets as docsets_module

    writer = WhooshIndexWriter(index_dir)
    rng = random.Random(10)
    reads: list[tuple[str, int]] = []
    frequencies: list[tuple[str, int]] = []
    raw_postings = docsets_module.raw_postings

    def counting(leaf: Any, field: str, text: str) -> Any:
        reads.append((text, leaf.doc_count_all()))
        return raw_postings(leaf, field, text)

    monkeypatch.setattr(docsets_module, "raw_postings", counting)
    # Segments read through Whoosh (the build's arrays would answer without a read: a segment
    # written by Whoosh's own writer has none, tests/test_segment_arrays.py).
    monkeypatch.setattr(docsets_module, "arrays_of", lambda leaf: None)
    with WhooshEngine.open(index_dir) as engine:
        engine._state()
        first = engine._local.docsets
        build_docs = first._leaves[0][0].doc_count_all()
        first.postings("body_folded", "vang"), first.df("body_folded", "nong")
        assert ("vang", build_docs) in reads
        for seq in (1, 2, 3):  # three commits; no generation between asks for the terms
            doc = random_article(rng, f"x-{seq}", 300 + seq)
            writer.apply([Entry(seq, Op.UPSERT, f"x-{seq}", doc, datetime.now(UTC))])
            engine._state()
        reads.clear()
        leaf_df = type(first._leaves[0][0]).doc_frequency

        def counting_df(leaf: Any, field: str, text: str) -> int:
            frequencies.append((text, leaf.doc_count_all()))
            return int(leaf_df(leaf, field, text))

        monkeypatch.setattr(type(first._leaves[0][0]), "doc_frequency", counting_df)
        docsets: DocSets = engine._local.docsets
        assert docsets is not first and len(docsets._leaves) == 4
        got = (docsets.postings("body_folded", "vang"), docsets.df("body_folded", "nong"))
        assert [docs for text, docs in reads if docs == build_docs] == []  # the build's segment: not read again
        assert [docs for text, docs in frequencies if docs == build_docs] == []
        with WhooshEngine.open(index_dir) as fresh:
            fresh._state()
            other: DocSets = fresh._local.docsets
            expected = (other.postings("body_folded", "vang"), other.df("body_folded", "nong"))
        assert got[0][0].tolist() == expected[0][0].tolist() and got[0][1].tolist() == expected[0][1].tolist()
        assert got[1] == expected[1]
        # Each segment's entry is a view of the generation's arrays (one copy in memory), at its place.
        held = [engine._segment_cache.get_postings((segment_id, "body_folded", "vang"))
                for segment_id in docsets._segment_ids if segment_id is not None]
        parts = [h[0] for h in held if h is not None and len(h[0])]
        assert len(parts) > 1 and all(np.shares_memory(part, got[0][0]) for part in parts)
        assert np.concatenate(parts).tolist() == got[0][0].tolist()


def test_small_segments_that_key_a_term_alike_are_asked_about_it_with_one_hash(index_dir: Path) -> None:
    """The small segments' filters are grouped by how their tables key a term of a field
    (``_filter_groups``): the field's number in the segment (the order its fields first came in)
    and the hash function. Every small segment is in the one group of its own key prefix."""
    writer = WhooshIndexWriter(index_dir)
    rng = random.Random(11)
    for seq in range(1, 7):
        writer.apply([Entry(seq, Op.UPSERT, f"g-{seq}", random_article(rng, f"g-{seq}", 400 + seq), datetime.now(UTC))])
    with WhooshEngine.open(index_dir) as engine:
        engine._state()
        docsets: DocSets = engine._local.docsets
        for field in ("body_folded", "title_exact", "category_slug"):
            groups = docsets._filter_groups(field)
            positions = [position for _p, _h, members in groups for position, _f, _hs in members]
            assert sorted(positions) == list(range(7))  # the build's 60 articles are a small segment too
            assert len({prefix for prefix, _h, _m in groups}) == len(groups)
            for prefix, _hashfn, members in groups:
                assert all(held.keycoder(field, b"x") == prefix + b"x" for _p, held, _hs in members)
        held_by = [position for position, (leaf, _o, _d) in enumerate(docsets._leaves)
                   if ("body_folded", "vang") in leaf]
        assert 0 < len(held_by) < 7
        holding = docsets._holding("body_folded", "vang")
        assert [position for position, _leaf, _offset, probe in holding if probe is not None] == held_by


def test_a_commit_reads_the_category_slugs_of_the_segments_it_added_only(
        index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The labels of a generation check the slugs of each segment once (``engine._labels``): after a
    commit only the new segment's are read, and a new category's label appears as in a fresh
    engine's."""
    from whoosh.reading import SegmentReader

    writer = WhooshIndexWriter(index_dir)
    read: list[int] = []
    field_terms = SegmentReader.field_terms

    def counting(leaf: Any, field: str) -> Any:
        if field == "category_slug":
            read.append(leaf.doc_count_all())
        return field_terms(leaf, field)

    monkeypatch.setattr(SegmentReader, "field_terms", counting)
    with WhooshEngine.open(index_dir) as engine:
        engine._state()
        assert read == [60]
        doc = article("c-1", "Một bài mới", "Nội dung.", "Chuyên mục mới")
        writer.apply([Entry(1, Op.UPSERT, "c-1", doc, datetime.now(UTC))])
        read.clear()
        _searcher, gen = engine._state()
        assert read == [1]
        with WhooshEngine.open(index_dir) as fresh:
            assert gen.labels == fresh._state()[1].labels
        assert gen.labels["chuyen-muc-moi"] == "Chuyên mục mới"


def test_a_segment_entry_counts_the_whole_array_its_view_keeps_alive() -> None:
    """The ``SegmentCache`` budget bounds what is held in memory: an entry that is a view of a
    generation's arrays counts the whole of them, so views of arrays no generation uses any more
    cannot keep more than the budget alive."""
    from index.docsets import TERM_ENTRY_IDS, SegmentCache

    cache = SegmentCache(max_postings=2_500)
    whole = np.arange(1_000, dtype=np.int32)
    weights = np.ones(1_000, dtype=np.float32)
    for n in range(3):  # three views of 10 postings, each keeping 1,000 alive
        cache.put_postings((f"s{n}", "body_folded", "x"), (whole[:10], weights[:10], 0))
    assert cache.postings.currsize == 2 * (1_000 + TERM_ENTRY_IDS)  # the oldest had to go
    assert cache.get_postings(("s0", "body_folded", "x")) is None
    own = np.arange(10, dtype=np.int32)
    cache.put_postings(("t", "body_folded", "x"), (own, weights[:10].copy(), 0))
    assert cache.postings.getsizeof(cache.postings[("t", "body_folded", "x")]) == 10 + TERM_ENTRY_IDS
