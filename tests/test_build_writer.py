"""The build's segment writer (``index.build_writer.BuildSegmentWriter``) writes what Whoosh's own
``SegmentWriter`` writes, byte for byte: the same articles through both, every file of the two
segments compared. Its pool is also made to spill to runs, and terms get more postings than one
block holds, so the merge of runs and the multi-block encoding are compared too."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from index import store
from index.article import VN_TZ, Article
from index.build_writer import BuildSegmentWriter
from index.builder import article_fields, index_articles
from index.segment_arrays import EXT as ARRAYS_EXT
from tests.index_helpers import article

SYLLABLES = (
    "hội nghị tổng kết công tác năm tỉnh Đắk Nông phát triển kinh tế xã hội văn hóa hoà thuỷ "
    "giáo dục y tế giao thông nông nghiệp du lịch thể thao bóng đá học sinh giá vàng"
).split()
ODD = [
    "TP.HCM",
    "KT-VH-XH",
    "U.23",
    "Covid-19",
    "1.500",
    "26/6/2014",
    "06",
    "Ðà",
    "kỹ",
    "quý",
    "«trích»",
    "ﬁ",
    "x²",
    "nước.Đại",
    "TP. HCM",
    "(chú thích)",
    "…",
    "\u0301a",
    "ǅ",
    "İ",
]


def _articles(count: int, seed: int = 7) -> list[Article]:
    rng = random.Random(seed)

    def sentence(n: int) -> str:
        words = [rng.choice(SYLLABLES) if rng.random() > 0.08 else rng.choice(ODD) for _ in range(n)]
        words += ["từ" + str(rng.randrange(10**6))]  # rare terms: most terms of a corpus have one posting
        return " ".join(words) + rng.choice([".", ",", "!", "", ":"])

    out = []
    for i in range(count):
        paragraphs = [
            " ".join(sentence(rng.randrange(3, 25)) for _ in range(rng.randrange(1, 6)))
            for _ in range(rng.randrange(1, 4))
        ]
        if i % 7 == 0:  # a long body: length bytes far from the small ones
            paragraphs.append(" ".join(rng.choice(SYLLABLES) for _ in range(3000)))
        out.append(
            article(
                i,
                f"Bài {i} {sentence(6)}",
                paragraphs,
                rng.choice(["Thời sự", "Kinh tế", "Thể thao"]),
                published=datetime(2014, 6, 26, tzinfo=VN_TZ) + timedelta(hours=7 * i),
                views=rng.choice([None, 0, rng.randrange(10**9)]),
                source=rng.choice([None, "VnExpress", "Tuổi Trẻ"]),
                captions=[sentence(5)] if i % 5 == 0 else [],
            )
        )
    return out


def _segment_files(index_dir: Path) -> dict[str, bytes]:
    """The files of the index's only segment, by extension (inside the compound file)."""
    ix: Any = store.storage(index_dir / str(store.current_generation(index_dir))).open_index()
    (segment,) = ix._segments()
    return _files_of(ix, segment)


def _files_of(ix: Any, segment: Any) -> dict[str, bytes]:
    """A segment's files, by extension (inside its compound file)."""
    files = {}
    compound = segment.open_compound_file(ix.storage)
    for name in compound.list():
        with compound.open_file(name) as f:
            files[name.removeprefix(segment.segment_id())] = f.read()
    compound.close()
    return files


def _write(index_dir: Path, articles: list[Article], writer_class: type, pool_bytes: int | None = None) -> None:
    name, ix = store.new_generation(index_dir)
    writer = writer_class(ix, limitmb=64)
    if pool_bytes is not None:
        writer.pool.limit = pool_bytes  # spill to a run every pool_bytes (estimated) bytes
    for a in articles:
        writer.add_document(**article_fields(a))
    writer.commit(merge=False)
    store.switch_to(index_dir, name)


@pytest.fixture(scope="module")
def whoosh_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    index_dir = tmp_path_factory.mktemp("whoosh")
    from whoosh.writing import SegmentWriter

    _write(index_dir, _articles(300), SegmentWriter)
    return _segment_files(index_dir)


def test_fixture_has_long_posting_lists_and_length_variety(whoosh_files: dict[str, bytes]) -> None:
    """The corpus of these tests holds what the comparison must cover (else it proves little)."""
    assert len(whoosh_files[".pst"]) > 100_000
    assert len(set(whoosh_files["._body_folded_len.col"])) > 20  # many length bytes


@pytest.mark.parametrize("pool_bytes", [None, 40_000], ids=["in memory", "spilled to runs"])
def test_same_segment_files_as_whoosh(tmp_path: Path, whoosh_files: dict[str, bytes], pool_bytes: int | None) -> None:
    _write(tmp_path / "ix", _articles(300), BuildSegmentWriter, pool_bytes)
    ours = _segment_files(tmp_path / "ix")
    assert ours.pop(ARRAYS_EXT)  # the posting arrays, ours alone (tests/test_segment_arrays.py)
    assert sorted(ours) == sorted(whoosh_files)
    different = [ext for ext in ours if ours[ext] != whoosh_files[ext]]
    assert not different, f"files that differ from Whoosh's: {different}"


def test_spilling_really_spills(tmp_path: Path) -> None:
    _, ix = store.new_generation(tmp_path / "ix")
    writer = BuildSegmentWriter(ix, limitmb=64)
    writer.pool.limit = 40_000
    for a in _articles(20):
        writer.add_document(**article_fields(a))
    assert len(writer.pool.runs) > 5
    writer.cancel()
    assert not any(p.name.endswith(".run") for p in (tmp_path / "ix").rglob("*"))


def test_two_process_build_indexes_the_same_as_one(tmp_path: Path) -> None:
    """The builder's writer processes use the build writer too: the articles split between two
    segments, every term's postings and statistics are those of a one-process build."""
    articles = _articles(400, seed=3)
    index_articles(tmp_path / "one", articles, procs=1)
    index_articles(tmp_path / "two", articles, procs=2)

    def view(index_dir: Path) -> dict[Any, Any]:
        ix: Any = store.storage(index_dir / str(store.current_generation(index_dir))).open_index()
        out: dict[Any, Any] = {}
        with ix.reader() as reader:
            ids = {docnum: fields["id"] for docnum, fields in reader.iter_docs()}
            for fieldname, text in reader.all_terms():
                info = reader.term_info(fieldname, text)
                m = reader.postings(fieldname, text)
                postings = []
                while m.is_active():
                    postings.append((ids[m.id()], m.weight(), m.value()))
                    m.next()
                out[fieldname, text] = (
                    info.weight(),
                    info.doc_frequency(),
                    info.min_length(),
                    info.max_length(),
                    sorted(postings),
                )
            out["lengths"] = sorted(
                (ids[d], name, reader.doc_field_length(d, name)) for d in ids for name in ("body_folded", "title_pair")
            )
            out["segments"] = len(ix._segments())
        return out

    one, two = view(tmp_path / "one"), view(tmp_path / "two")
    assert (one.pop("segments"), two.pop("segments")) == (1, 2)
    assert one == two


def _applied_segment(index_dir: Path, before: set[str]) -> tuple[dict[str, bytes], dict[str, list[int]]]:
    """The files of the segment an apply wrote, and the deleted document numbers of every segment
    (the ids of segments differ between two indexes: they are keyed by their order)."""
    ix: Any = store.storage(index_dir / str(store.current_generation(index_dir))).open_index()
    segments = ix._segments()
    (new,) = [s for s in segments if s.segment_id() not in before]
    deleted = {str(i): sorted(s.deleted_docs()) for i, s in enumerate(segments)}
    return _files_of(ix, new), deleted


def test_applier_commit_writes_the_same_segment_as_whoosh(tmp_path: Path) -> None:
    """The publishing applier's commits (``WhooshIndexWriter.apply``) write their segment with the
    build writer: new articles, corrections and deletions give the files Whoosh's own writer gives."""
    from whoosh.writing import SegmentWriter

    from index.publishing import Entry, Op
    from index.whoosh_writer import WhooshIndexWriter

    articles = _articles(260)
    base, added = articles[:200], articles[200:]
    now = datetime(2026, 12, 7, tzinfo=VN_TZ)
    entries = [Entry(i + 1, Op.UPSERT, a.id, a, now) for i, a in enumerate(added)]
    corrected = [replace(a, title=a.title + " (cập nhật)") for a in base[:15]]
    entries += [Entry(len(entries) + i + 1, Op.UPSERT, a.id, a, now) for i, a in enumerate(corrected)]
    entries += [Entry(len(entries) + i + 1, Op.DELETE, a.id, None, now) for i, a in enumerate(base[40:50])]
    results = []
    for name, writer_class in (("whoosh", SegmentWriter), ("ours", BuildSegmentWriter)):
        index_dir = tmp_path / name
        index_articles(index_dir, iter(base), procs=1)
        before = {s.segment_id() for s in store.storage(index_dir / str(store.current_generation(index_dir)))
                  .open_index()._segments()}
        batch = WhooshIndexWriter(index_dir, segment_writer=writer_class).apply(entries)
        assert (batch.upserted, batch.deleted) == (75, 10)
        results.append(_applied_segment(index_dir, before))
    (theirs, their_deleted), (ours, our_deleted) = results
    assert ours.pop(ARRAYS_EXT)  # the posting arrays, ours alone
    assert sorted(ours) == sorted(theirs) and len(ours[".pst"]) > 10_000
    assert [ext for ext in ours if ours[ext] != theirs[ext]] == []
    assert our_deleted == their_deleted and sum(map(len, our_deleted.values())) == 25
