"""``index.postings`` (block-at-a-time posting reads) and the engine's shared caches agree with
Whoosh's own per-posting API on real multi-block posting lists, with and without deletions."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from index_helpers import article
from whoosh.query import Term

from index.api import SearchRequest
from index.builder import index_articles
from index.engine import WhooshEngine
from index.postings import LENGTHS, all_ids, items, length_bytes, raw_postings, weights_of

N = 700  # several 128-posting blocks for the common syllables


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    rng = random.Random(7)
    words = ["bão", "lũ", "mưa", "giá", "vàng", "xăng", "học", "sinh", "thi", "cử", "đường", "phố"]
    docs = []
    for i in range(N):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))
        docs.append(article(i, f"Tin {i} {rng.choice(words)} {rng.choice(words)}", f"Người dân nói {body}."))
    path = tmp_path_factory.mktemp("postings") / "ix"
    index_articles(path, docs, procs=1)
    # a second segment, and deletions in the first (re-indexed ids are deleted there)
    index_articles(path, [article(i, f"Bản mới {i} bão lũ", "Người dân nói mưa lớn.") for i in range(0, N, 9)], procs=1)
    return path


@pytest.fixture
def engine(index_dir):
    with WhooshEngine.open(index_dir) as engine:
        yield engine


def _leaves(engine):
    searcher, _ = engine._state()
    return searcher, list(searcher.reader().leaf_readers())


def test_block_reads_match_whoosh_matchers(engine):
    searcher, leaves = _leaves(engine)
    assert len(leaves) == 2 and leaves[0][0].has_deletions(), "the fixture must give two segments and deletions"
    rng = random.Random(1)
    checked_blocks = 0
    for leaf, _offset in leaves:
        for field in ("body_folded", "title_folded"):
            for text in ("bao", "nguoi", "mua", "vang", "nope"):
                if (field, text) not in leaf:
                    continue
                expected = list(raw_postings(leaf, field, text).items_as("weight"))
                assert all_ids(raw_postings(leaf, field, text)) == [d for d, _ in expected]
                assert list(items(raw_postings(leaf, field, text))) == expected
                checked_blocks += len(expected) > 128
                universe = range(leaf.doc_count_all())
                for size in (1, 2, 5, 50, 400):
                    wanted = sorted(rng.sample(universe, min(size, len(universe))))
                    want_set = set(wanted)
                    assert weights_of(raw_postings(leaf, field, text), wanted) == [
                        (d, w) for d, w in expected if d in want_set]
    assert checked_blocks, "no posting list spanned several blocks: the fast path was not exercised"


def test_length_columns_match_doc_field_length(engine):
    _, leaves = _leaves(engine)
    for leaf, _offset in leaves:
        for field in ("body_folded", "title_folded", "title_pair"):
            raw = length_bytes(leaf, field)
            assert raw is not None
            for docnum in range(leaf.doc_count_all()):
                expected = leaf.doc_field_length(docnum, field, 0) or 0
                got = LENGTHS[raw[docnum]] if docnum < len(raw) else 0
                assert got == expected, (field, docnum)


def test_docsets_share_caches_across_threads_and_skip_deleted(engine):
    import threading

    searcher, _ = engine._state()
    docsets = engine._local.docsets
    expected = frozenset(searcher.docs_for_query(Term("body_folded", "bao")))
    assert docsets.term("body_folded", "bao") == expected  # Whoosh's own answer excludes deleted documents
    seen = []

    def other_thread():
        _, gen = engine._state()
        seen.append(engine._local.docsets is not docsets and gen.sets.get_term(("body_folded", "bao")))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [expected], "another thread on the same generation must find the set already read"


def test_cached_search_answers_only_what_was_searched(engine):
    request = SearchRequest(q="mưa lớn", per_page=5)
    assert engine.cached_search(request) is None
    result = engine.search(request)
    assert result.total > 0
    assert engine.cached_search(request) == result  # an equal copy (results are kept pickled)
    assert engine.cached_search(SearchRequest(q="mưa lớn", per_page=6)) is None


def test_kept_results_come_back_equal_field_for_field(engine):
    """Results are kept pickled through the classes' own ``__reduce__`` (an article restored
    without ``__post_init__``): every field of every object comes back equal, as a new object."""
    from dataclasses import fields

    from index.api import FacetValue, Span
    from index.article import Article

    result = engine.search(SearchRequest(q="mưa lớn", per_page=5))
    copy = pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy == result and copy.hits and copy.facets["category"]
    for ours, theirs in zip(copy.hits, result.hits, strict=True):
        assert ours.article is not theirs.article
        assert [getattr(ours.article, f.name) for f in fields(Article)] == \
            [getattr(theirs.article, f.name) for f in fields(Article)]
        assert ours.article.published.utcoffset() == theirs.article.published.utcoffset()
        assert all(type(span) is Span for span in ours.snippet + ours.title_spans)
    assert all(type(value) is FacetValue for value in copy.facets["category"])
    full = article("x-1", "Tiêu đề", ["Đoạn một.", "Đoạn hai."], views=7, source="VnExpress", captions=["Ảnh"])
    full.url = "https://example.com/a"
    again = pickle.loads(pickle.dumps(full))
    assert again == full and again.body is not full.body


def test_published_keys_order_documents_as_their_dates(engine):
    searcher, _ = engine._state()
    keys = engine._local.docsets.published_keys()
    column = searcher.reader().column_reader("published")
    assert len(keys) == searcher.reader().doc_count_all()
    docs = list(range(len(keys)))
    by_key = sorted(docs, key=lambda d: (keys[d], d))
    by_date = sorted(docs, key=lambda d: (column[d], d))
    assert by_key == by_date
    assert len({keys[d] for d in docs}) > 1, "the fixture's dates must differ for the order to mean anything"


def test_cached_sets_are_invisible_to_the_cycle_collector(engine):
    """Posting, facet and vocabulary sets live for a whole generation; the collector must not walk
    them on every full collection (index.untracked), yet they stay ordinary frozensets."""
    import gc

    from index.untracked import untracked

    docsets = engine._local.docsets
    bao = docsets.term("body_folded", "bao")
    assert isinstance(bao, frozenset) and bao and not gc.is_tracked(bao)
    months = docsets.field_values("month")
    assert months and all(not gc.is_tracked(ids) for ids in months.values())
    assert not gc.is_tracked(docsets.all())
    engine.warm_up()
    _, gen = engine._state()
    assert gen.vocabulary and not gc.is_tracked(gen.vocabulary)
    combined = bao & docsets.all()  # results of set operations are new, tracked as usual
    assert combined == bao and gc.is_tracked(combined)
    gc.collect()
    assert docsets.term("body_folded", "bao") == bao  # still alive and intact after a collection
    with pytest.raises(TypeError):
        untracked({1, 2})  # a mutable set could later hold anything


def test_result_cache_is_bounded_by_hits(engine, monkeypatch):
    monkeypatch.setattr(WhooshEngine, "RESULT_CACHE_HITS", 25)
    first = SearchRequest(q="bão", per_page=20)
    assert len(engine.search(first).hits) == 20
    second = SearchRequest(q="mưa", per_page=10)
    assert len(engine.search(second).hits) == 10
    assert engine.cached_search(first) is None, "30 hits > 25: the oldest result goes"
    assert engine.cached_search(second) is not None
    big = SearchRequest(q="lũ", per_page=50)
    assert len(engine.search(big).hits) == 50
    assert engine.cached_search(big) is not None, "the newest result stays even alone over budget"
    assert engine.cached_search(second) is None
    assert len(engine._results) == 1


def test_result_cache_is_bounded_by_count_and_zero_turns_it_off(index_dir, engine, monkeypatch):
    monkeypatch.setattr(WhooshEngine, "RESULT_CACHE_SIZE", 2)
    a, b, c = (SearchRequest(q=q, per_page=1) for q in ("bão", "mưa", "giá"))
    for request in (a, b):
        engine.search(request)
    assert engine.cached_search(a) is not None  # a hit: now b is the least recently used
    engine.search(c)
    assert engine.cached_search(b) is None
    assert engine.cached_search(a) is not None and engine.cached_search(c) is not None

    with WhooshEngine.open(index_dir) as off:
        off.RESULT_CACHE_SIZE = 0  # what the benchmarks do (benchkit.engine): every query must run
        off.search(a)
        assert off.cached_search(a) is None


def test_posting_set_cache_is_bounded_by_document_numbers():
    from index.docsets import SharedSets

    sets = SharedSets(max_ids=100)
    sets.put_term(("f", "a"), frozenset(range(40)))
    sets.put_term(("f", "b"), frozenset(range(40)))
    assert sets.get_term(("f", "a")) is not None  # now "b" is the least recently used
    sets.put_term(("f", "c"), frozenset(range(10)))  # 40 + 40 + 10 ids and three entries' cost > 100
    assert sets.get_term(("f", "b")) is None
    assert sets.get_term(("f", "a")) is not None and sets.get_term(("f", "c")) is not None
    sets.put_term(("f", "huge"), frozenset(range(500)))  # over the whole budget: kept, alone
    assert sets.get_term(("f", "huge")) is not None and len(sets.terms) == 1


def test_empty_posting_sets_cannot_grow_the_cache_without_bound():
    from index.docsets import TERM_ENTRY_IDS, SharedSets

    # The sets of syllables the index lacks are empty; each entry still costs its key and set, so
    # a flood of queries for made-up syllables must not pile them up (they once counted nothing).
    sets = SharedSets(max_ids=100)
    for i in range(10_000):
        sets.put_term(("f", f"absent{i}"), frozenset())
    assert len(sets.terms) <= 100 // TERM_ENTRY_IDS



def test_posting_arrays_are_bounded_by_postings_and_by_entries():
    import numpy as np

    from index.docsets import TERM_ENTRY_IDS, SharedSets

    budget = 1_000
    sets = SharedSets(max_postings=budget)
    empty = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
    for i in range(10_000):  # the arrays of syllables the index lacks still count their entry
        sets.put_postings(("f", f"absent{i}"), empty)
    assert len(sets.postings) <= budget // TERM_ENTRY_IDS
    big = (np.arange(budget // 3, dtype=np.int32), np.ones(budget // 3, np.float32))
    for i in range(4):
        sets.put_postings(("f", f"common{i}"), big)
    assert sets.postings.currsize <= budget
    assert sets.get_postings(("f", "common3")) is big  # the newest stays
    huge = (np.arange(5 * budget, dtype=np.int32), np.ones(5 * budget, np.float32))
    sets.put_postings(("f", "huge"), huge)
    assert sets.get_postings(("f", "huge")) is huge  # larger than the budget: kept alone


# --- the pinned Whoosh: index.postings reads its private block format --------------------------------

ROOT = Path(__file__).resolve().parent.parent

_IMPORT_WITH_WHOOSH = """
import importlib.metadata as metadata
real = metadata.version
def version(name):
    if name == "whoosh3":
        if {fake!r} is None:
            raise metadata.PackageNotFoundError(name)
        return {fake!r}
    return real(name)
metadata.version = version
try:
    import index.postings
except ImportError as e:
    print("ImportError:", e)
else:
    print("imported")
"""


def _import_postings_with(fake: str | None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _IMPORT_WITH_WHOOSH.format(fake=fake)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("fake", ["3.55.0", "3.53.9", None])
def test_import_fails_loudly_on_another_whoosh(fake):
    out = _import_postings_with(fake)
    assert out.startswith("ImportError:"), out
    assert "whoosh3==3.54.0" in out and "pyproject.toml" in out
    assert (fake or "not installed") in out


def test_import_succeeds_on_the_pinned_whoosh():
    assert _import_postings_with("3.54.0") == "imported"


def test_checked_version_is_the_pin_and_the_installed_one():
    from importlib.metadata import version

    from index.postings import WHOOSH_DISTRIBUTION, WHOOSH_VERSION

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert f"{WHOOSH_DISTRIBUTION}=={WHOOSH_VERSION}" in dependencies
    assert version(WHOOSH_DISTRIBUTION) == WHOOSH_VERSION
