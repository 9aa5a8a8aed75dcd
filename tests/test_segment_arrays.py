"""Posting arrays (``index.segment_arrays``): what a build writes beside Whoosh's postings, and
what searches read from them, against Whoosh's own decoding of the same segments.

The arrays must hold exactly the postings Whoosh stores (every term of every text field, document
numbers and frequencies), must live and die with their segment, and a search must answer the same
with them as without them, on an index of segments with and without arrays (``searchsvc index``'s
updates go through Whoosh's own writer) and with deleted articles.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whoosh.filedb.structfile import StructFile

from index import docsets as docsets_module
from index import segment_arrays, whoosh_writer
from index.api import SearchRequest
from index.build_writer import fast_fields
from index.builder import delete_articles, index_articles
from index.engine import WhooshEngine
from index.postings import id_weight_arrays
from index.publishing import Entry, Op
from index.schema import build_schema
from index.segment_arrays import AMBIGUOUS, EXT, SegmentArrays, arrays_of, write_arrays
from index.whoosh_writer import WhooshIndexWriter
from tests.index_helpers import article

WORDS = ["Đắk Nông", "cà phê", "hồ tiêu", "mưa lớn", "sạt lở", "học sinh", "tuyển sinh", "giá cả", "nông dân",
         "du lịch", "UBND", "TP.HCM", "2.500 tấn"]


def _articles(start: int, n: int) -> list:
    out = []
    for i in range(start, start + n):
        words = [WORDS[(i * k) % len(WORDS)] for k in (1, 3, 7, 11)]
        body = [f"{words[0]} và {words[1]} năm {2000 + i % 7}.", " ".join(words * (1 + i % 5)), f"Số {i}."]
        out.append(article(i, f"{words[2]} {words[3]} số {i}", body, category=["Kinh tế", "Xã hội"][i % 2]))
    return out


def _leaves(engine: WhooshEngine) -> list[tuple[Any, int]]:
    return list(engine._context().searcher.reader().leaf_readers())


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build (its segment has arrays), an update and a replacement through ``searchsvc index``'s
    update path (Whoosh's own writer: no arrays), deletions, then three publishing commits (the
    applier writes with the build's writer: arrays) of which two are merged (arrays again)."""
    index_dir: Path = tmp_path_factory.mktemp("arrays")
    index_articles(index_dir, _articles(0, 80), procs=1)
    index_articles(index_dir, _articles(80, 40), procs=1)
    delete_articles(index_dir, [str(i) for i in range(0, 120, 7)])
    index_articles(index_dir, _articles(3, 4), procs=1)  # replaced: old versions deleted in place
    writer = WhooshIndexWriter(index_dir)
    now = datetime.now(UTC)
    writer.apply([Entry(1, Op.UPSERT, a.id, a, now) for a in _articles(200, 6)])
    writer.apply([Entry(2, Op.UPSERT, a.id, a, now) for a in _articles(10, 2)] + [Entry(3, Op.DELETE, "1", None, now)])
    writer.apply([Entry(4, Op.UPSERT, a.id, a, now) for a in _articles(300, 3)])
    with pytest.MonkeyPatch.context() as patch:  # the applier's two smallest merged
        patch.setattr(whoosh_writer, "segments_to_merge", lambda segments, **_kw: sorted(
            segments, key=lambda seg: seg.doc_count_all())[:2])
        assert writer.merge_small_segments() == 2
    return index_dir


def test_every_text_posting_is_in_the_arrays_as_whoosh_decodes_it(index_dir: Path) -> None:
    engine = WhooshEngine.open(index_dir)
    try:
        with_arrays = longest = 0
        for leaf, _offset in _leaves(engine):
            arrays = arrays_of(leaf)
            if arrays is None:
                continue
            with_arrays += 1
            assert arrays.fields == fast_fields(leaf.schema)
            checked = 0
            for (field, tbytes), _info in leaf._terms.items():
                if field not in arrays.fields:
                    assert arrays.lookup(field, tbytes) is None  # not held: Whoosh answers
                    continue
                ids, weights = id_weight_arrays(leaf._terms.matcher(field, tbytes, leaf.schema[field].format))
                found = arrays.lookup(field, tbytes)
                assert found is not None
                assert found[0].tolist() == list(ids)
                assert found[1].tolist() == list(weights)  # frequencies: exact in float32
                checked += 1
            assert checked > 100
            longest = max(longest, *(_info.doc_frequency() for (f, _t), _info in leaf._terms.items()
                                     if f in arrays.fields))
            missing = arrays.lookup("body_folded", b"zzzkhongco")
            assert missing is not None and len(missing[0]) == len(missing[1]) == 0
        assert with_arrays == 3  # the build's, the applier's and the merge's; not the updates'
        assert longest >= 60  # posting lists of several documents, not only one-posting terms
    finally:
        engine.close()


def test_arrays_live_inside_their_segment(index_dir: Path) -> None:
    """In the compound file: no file of their own to leave behind, gone when the segment goes."""
    generation = next(p for p in index_dir.iterdir() if p.name.startswith("gen-"))
    assert not list(generation.glob(f"*{EXT}"))
    engine = WhooshEngine.open(index_dir)
    try:
        compound = [leaf for leaf, _o in _leaves(engine) if arrays_of(leaf) is not None]
        for leaf in compound:
            assert leaf.segment().is_compound()
            assert leaf._storage.a.file_exists(leaf.segment().make_filename(EXT))
    finally:
        engine.close()


QUERIES = ["đắk nông", "dak nong", "cà phê hồ tiêu", "ca phe", "học sinh tuyển sinh", "UBND", "tp hcm", "2500 tấn",
           "mưa", "nông dân du lịch", "số 5", "giá cả năm 2003", "\"sạt lở\"", "hồ tiêu -mưa", "du lich dak",
           "hoc sinhh", ""]


def _answers(engine: WhooshEngine) -> list[tuple[Any, ...]]:
    out = []
    for q in QUERIES:
        for sort in ("relevance", "newest"):
            result = engine.search(SearchRequest(q=q, sort=sort, per_page=50))
            out.append((q, sort, result.total, result.tier, [(h.article.id, h.score) for h in result.hits],
                        result.facets, result.suggestion, [(h.title_spans, h.snippet) for h in result.hits]))
    return out


def test_searches_answer_the_same_with_and_without_arrays(index_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    engine = WhooshEngine.open(index_dir)
    try:
        with_arrays = _answers(engine)
    finally:
        engine.close()
    monkeypatch.setattr(docsets_module, "arrays_of", lambda leaf: None)  # Whoosh's decoding alone
    engine = WhooshEngine.open(index_dir)
    try:
        without = _answers(engine)
    finally:
        engine.close()
    assert sum(1 for answer in with_arrays if answer[2]) > 20  # most queries find something
    assert with_arrays == without


def test_probing_a_long_posting_list_through_the_arrays(index_dir: Path) -> None:
    """``DocSets.probe`` (a clause far larger than the candidates) from the arrays: the candidates
    that hold the term, as the match set says."""
    engine = WhooshEngine.open(index_dir)
    try:
        docsets = engine._context().docsets
        assert docsets._arrays_everywhere
        every = docsets.term("body_folded", "va")
        candidates = set(sorted(docsets.all())[::5])
        from whoosh import query as Q

        assert docsets.probe(Q.Term("body_folded", "va"), candidates) == candidates & every
        assert docsets.probe(Q.Term("body_folded", "zzzkhongco"), candidates) == set()
    finally:
        engine.close()


def _file(fields: list[tuple[str, list[tuple[bytes, list[int]]]]], documents: int = 10) -> bytes:
    buffer = io.BytesIO()
    file = StructFile(buffer)
    file.close = lambda: None  # keep the bytes readable
    write_arrays(file, documents, [(f, [(t, np.array(pairs, dtype=np.uint32).tobytes()) for t, pairs in terms])
                                   for f, terms in fields])
    return buffer.getvalue()


def test_terms_sharing_a_key_are_left_to_whoosh(monkeypatch: pytest.MonkeyPatch) -> None:
    real = segment_arrays.term_key
    monkeypatch.setattr(segment_arrays, "term_key",
                        lambda field, tbytes: 7 if tbytes in (b"a", b"b") else real(field, tbytes))
    raw = _file([("body_folded", [(b"a", [1, 2, 4, 1]), (b"b", [3, 1]), (b"c", [0, 5, 9, 2])])])
    arrays = SegmentArrays.from_bytes(raw)
    assert arrays.lookup("body_folded", b"a") is None
    assert arrays.lookup("body_folded", b"b") is None
    ids, weights = arrays.lookup("body_folded", b"c")  # type: ignore[misc]
    assert ids.tolist() == [0, 9] and weights.tolist() == [5.0, 2.0]
    assert ids.dtype == np.int32 and weights.dtype == np.float32
    assert arrays.lookup("title_folded", b"c") is None  # a field the file does not hold
    keys_at, terms = segment_arrays.TRAILER.unpack(raw[-segment_arrays.TRAILER.size:])[:2]
    counts = np.frombuffer(raw, dtype="<u4", count=terms, offset=keys_at + 16 * terms)
    assert sorted(counts.tolist()) == [2, AMBIGUOUS, AMBIGUOUS]


def test_damaged_arrays_are_refused() -> None:
    raw = _file([("body_folded", [(b"a", [1, 2])])])
    assert SegmentArrays.from_bytes(raw).lookup("body_folded", b"a") is not None
    for damaged in (raw[:-1], raw[:10], b"x" + raw[1:], raw[:-12] + bytes(12)):
        with pytest.raises(ValueError):
            SegmentArrays.from_bytes(damaged)


def test_arrays_for_another_segment_size_are_not_used(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrays that do not count the segment's documents are ignored (read through Whoosh)."""
    engine = WhooshEngine.open(index_dir)
    try:
        leaf = next(leaf for leaf, _o in _leaves(engine) if arrays_of(leaf) is not None)
        monkeypatch.setattr(segment_arrays, "_OPENED", segment_arrays._Opened())
        monkeypatch.setattr(type(leaf.segment()), "doc_count_all", lambda self: 10**6)
        assert arrays_of(leaf) is None
    finally:
        engine.close()


def test_unions_keep_their_sorted_array(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``DocSets.array_of`` of a union ``evaluate`` built (terms, nested unions, deleted articles
    left out) is the set's own sorted members; any other set is converted."""
    from whoosh import query as Q

    monkeypatch.setattr(docsets_module, "RECENT_MIN", 1)
    engine = WhooshEngine.open(index_dir)
    try:
        docsets = engine._context().docsets
        assert docsets._deleted  # the index has deleted articles, which the posting arrays still hold
        queries = [
            Q.Or([Q.Term("title_folded", "dak"), Q.Term("body_folded", "dak")]),
            Q.Or([Q.Or([Q.Term("title_pair", "ca phe"), Q.Term("body_pair", "ca phe")]),
                  Q.Or([Q.Term("title_folded", "ubnd"), Q.Term("body_folded", "ubnd")]),
                  Q.And([Q.Term("body_folded", "ho"), Q.Term("body_folded", "tieu")])]),
        ]
        for q in queries:
            docs = docsets.evaluate(q)
            assert len(docs) > 5
            remembered = docsets._recent.get(id(docs))
            assert remembered is not None and remembered[0] is docs
            assert docsets.array_of(docs).tolist() == sorted(docs)
            assert not set(docsets.array_of(docs).tolist()) & docsets._deleted
        other = set(sorted(docsets.all())[:7])
        assert docsets.array_of(other).tolist() == sorted(other)
    finally:
        engine.close()


def test_segments_with_arrays_are_never_decoded(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Searching reads the segments with arrays without Whoosh's posting reader, the others with it."""
    reads: list[tuple[int, str]] = []
    for name in ("raw_postings", "postings_of"):  # a term looked up in the term table, or through a filter
        real = getattr(docsets_module, name)

        def counting(leaf: Any, field: str, *args: Any, real: Any = real) -> Any:
            reads.append((leaf.doc_count_all(), field))
            return real(leaf, field, *args)

        monkeypatch.setattr(docsets_module, name, counting)
    engine = WhooshEngine.open(index_dir)
    try:
        with_arrays = {leaf.doc_count_all() for leaf, _o in _leaves(engine) if arrays_of(leaf) is not None}
        _answers(engine)
    finally:
        engine.close()
    assert with_arrays == {80, 6, 5}
    text = fast_fields(build_schema())
    decoded = {docs for docs, field in reads if field in text}
    assert decoded == {40, 4}  # the segments without arrays, and only them
    assert {docs for docs, field in reads if field not in text} >= with_arrays  # other fields: Whoosh's


def test_a_damaged_record_is_left_to_whoosh_without_reading() -> None:
    """A record whose count or start points outside the postings (a damaged file) answers None
    (ask Whoosh), and nothing is read for it: a count of four billion would read 32 GB."""
    raw = bytearray(_file([("body_folded", [(b"a", [1, 2, 4, 1]), (b"b", [3, 1])])]))
    keys_at, terms = segment_arrays.TRAILER.unpack(bytes(raw[-segment_arrays.TRAILER.size:]))[:2]
    sizes: list[int] = []
    data = bytes(raw)

    def read(offset: int, size: int) -> bytes:
        sizes.append(size)
        return data[offset:offset + size]

    for damage in ("count", "start"):
        raw2 = bytearray(raw)
        for i in range(terms):
            if damage == "count":
                raw2[keys_at + 16 * terms + 4 * i:keys_at + 16 * terms + 4 * i + 4] = (2**32 - 2).to_bytes(4, "little")
            else:
                raw2[keys_at + 8 * terms + 8 * i:keys_at + 8 * terms + 8 * i + 8] = (2**62).to_bytes(8, "little")
        data = bytes(raw2)
        sizes.clear()
        arrays = SegmentArrays(read, len(data))
        sizes.clear()
        assert arrays.lookup("body_folded", b"a") is None and arrays.count("body_folded", b"b") is None
        assert max(sizes) <= 8  # the record's count and start, never the postings
    intact = SegmentArrays.from_bytes(bytes(raw))
    assert intact.count("body_folded", b"a") == 2 and intact.count("body_folded", b"zz") == 0
