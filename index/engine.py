"""``WhooshEngine``: the ``index.api.SearchEngine`` the service, feeds and CLI use.

Thread model: Whoosh searchers are not thread-safe, so each thread gets its own searcher. A new
index generation (``--rebuild`` switching CURRENT, or an update committed by another process) is
noticed by comparing a cheap on-disk token, and the thread then opens a *new* searcher: measured
here, ``Searcher.refresh()`` across processes returns stale and duplicated documents, a fresh
searcher is always right. Opening is cheap because storage is opened without mmap.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache
from whoosh import scoring
from whoosh.index import TOC
from whoosh.reading import MultiReader, SegmentReader
from whoosh.searching import Searcher

from index import catalog, related_whoosh, segment_arrays, store
from index import related as related_algorithm
from index.api import EVERYTHING, NOTHING, Changes, Dated, FacetValue, SearchRequest, SearchResult
from index.article import Article
from index.docsets import DocSets, SegmentCache, SharedSets, segments_of
from index.memory import release_free_memory
from index.search import Context, search
from index.untracked import untracked

if TYPE_CHECKING:  # imported when first needed: building suggestions is rare
    from index.suggest import Suggester

CHECK_INTERVAL = 0.25  # seconds between on-disk generation checks (commit-to-visible well under 5 s)
# Seconds at least between two hand-backs of freed memory (``index.memory``) when generations change:
# without them a worker of the 10-minute soak held 1,127 MB at 300 s, and 670 MB right after one
# (docs/benchmarks.md). The first after a while takes tens of milliseconds, the next a few.
TRIM_INTERVAL = 30.0


def _read_token(token: str, searcher: Searcher, ix: Any) -> str:
    """The generation a searcher opened for ``token`` actually reads, not the newest on disk: a
    commit between opening the searcher and asking the index would key this searcher's
    per-generation data (document counts, publication keys) under a generation with other
    documents."""
    name = token.split(".")[0]
    read = searcher.reader().generation()
    return f"{name}.{read if read is not None and read >= 0 else ix.latest_generation()}"


def _weighting() -> scoring.WeightingModel:
    return scoring.BM25F(B=0.75, K1=1.2)


@dataclass
class _Generation:
    """Per-generation data shared by all threads (read-only once built)."""

    token: str
    labels: dict[str, str] = field(default_factory=dict)
    categories: list[FacetValue] | None = None
    doc_count: int = 0
    sets: SharedSets = field(default_factory=SharedSets)  # posting sets shared by its threads
    vocabulary: frozenset[str] | None = None  # every folded syllable (typo candidates are checked here)
    # What an earlier generation's vocabulary holds, and the segments it was read from
    # (``_vocabulary``: this generation reads only the segments it adds).
    vocabulary_base: tuple[frozenset[str], frozenset[str]] | None = None
    segment_ids: frozenset[str] = frozenset()
    lock: threading.Lock = field(default_factory=threading.Lock)
    catalog: catalog.Snapshot | None = None  # built when the generation is first opened


class WhooshEngine:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._token = ""
        self._checked = 0.0
        self._shared: dict[str, _Generation] = {}
        self._trimmed = 0.0  # when freed memory was last handed back (``TRIM_INTERVAL``)
        self._suggester: Suggester | None = None
        self._suggester_token = ""
        self._suggester_built = 0.0
        self._suggester_lock = threading.Lock()
        self._suggester_building = False
        # Results of the generation ``_results_generation`` (see ``search``); cachetools caches are
        # not thread-safe, and every engine thread and the event loop use this one: hence the lock.
        self._results: LRUCache[tuple[object, ...], tuple[bytes, int]] = LRUCache(0)  # (pickled result, hits)
        self._results_generation: str | None = None
        self._cache_lock = threading.Lock()
        # Every searcher still open and the thread it belongs to: close() must reach the searchers
        # of all threads (a thread-local cannot be enumerated), or their segment files stay open.
        # Holding them here would keep the searcher of a thread that has ended (the service's
        # worker threads end when idle) open for good, so each opening closes those first.
        self._open: dict[Searcher, threading.Thread] = {}
        # The catalog (index.catalog) of the newest generation built, and what each generation
        # changed from the one its catalog was built from: to-token -> (from-token, changes).
        self._catalog: catalog.Snapshot | None = None
        self._changes: OrderedDict[str, tuple[str, Changes]] = OrderedDict()
        self._catalog_lock = threading.Lock()
        # Parsed articles by (id, content version): the newest lists ask for the same few again
        # and again, and parsing an article's JSON is most of what answering them costs.
        self._articles: LRUCache[tuple[str, int], Article] = LRUCache(self.ARTICLE_CACHE_SIZE)
        self._articles_lock = threading.Lock()
        # Related articles of the generation ``_related_generation``, pickled (as results are):
        # (generation, id, limit) -> the list.
        self._related: LRUCache[tuple[str, str, int], bytes] = LRUCache(max(1, self.RELATED_CACHE_SIZE))
        self._related_generation: str | None = None
        # The searcher of cheap lookups (``_lookup``) and its generation, shared under the lock.
        self._lookup_lock = threading.Lock()
        self._lookup_held: tuple[str, Searcher] | None = None
        # What was read from each segment, for every generation that still holds it.
        self._segment_cache = SegmentCache()
        self._segment_slugs: dict[str, frozenset[str]] = {}  # segment id -> its category slugs (``_labels``)

    @classmethod
    def open(cls, index_dir: Path | str) -> WhooshEngine:
        """Open the index in ``index_dir``; raises FileNotFoundError (IndexMissing) when there is none."""
        engine = cls(Path(index_dir))
        try:
            engine._state()  # fail early
        except BaseException:
            engine.close()  # a searcher may be open already (the generation's labels failed)
            raise
        return engine

    # -- generations and per-thread searchers ------------------------------------------------------

    def _disk_token(self) -> str:
        live = store.current_generation(self.index_dir)
        if live is None:
            raise store.IndexMissing(f"no index in {self.index_dir}")
        toc = TOC._latest_generation(store.storage(self.index_dir / live), "MAIN")
        return f"{live}.{toc}"

    @property
    def generation(self) -> str:
        """The newest generation seen on disk (re-read at most every ``CHECK_INTERVAL``).

        It never goes back: threads read the disk concurrently, and a slow reader could otherwise
        store an older token after a faster one stored a newer one. The service keys its caches
        by the generation read before a handler runs and relies on the handler's answer being at
        least that new (``searchsvc.freshness``)."""
        now = time.monotonic()
        if now - self._checked >= CHECK_INTERVAL or not self._token:
            self._advance(self._disk_token())
            self._checked = now
        return self._token

    def _advance(self, token: str) -> None:
        """Make ``token`` the generation if it is newer: read from the disk, or opened by a thread.

        Why the opened ones too: a thread opens whatever is newest on disk, which may be newer than
        the last look at the disk. The other threads then move to it at their next call instead of
        staying on the older generation until their next look, up to ``CHECK_INTERVAL`` later,
        while the caches are already keyed by the newer one (two generations in use at once is
        what made a stale catalog possible; ``_generation_data``)."""
        with self._lock:
            if not self._token or _token_order(token) > _token_order(self._token):
                self._token = token

    def _state(self) -> tuple[Searcher, _Generation]:
        token = self.generation
        local = self._local
        if getattr(local, "token", None) != token:
            old = getattr(local, "searcher", None)
            token, searcher, ix = self._open_searcher(token, old)
            actual = _read_token(token, searcher, ix)
            with self._lock:
                ended = [s for s, thread in self._open.items() if not thread.is_alive()]
                for s in ended:
                    del self._open[s]
                self._open[searcher] = threading.current_thread()
            for s in ended:
                _close_quietly(s)
            self._advance(actual)
            local.searcher, local.token = searcher, actual
            local.docsets = DocSets(searcher, self._generation_data(actual, searcher).sets)
            if actual != token:
                local.token = token = actual
            if old is not None:
                self._close_searcher(old, searcher)
        return local.searcher, self._generation_data(token, local.searcher)

    @contextmanager
    def _lookup(self) -> Iterator[tuple[Searcher, _Generation]]:
        """One searcher per generation for cheap lookups (an article by id, the category list),
        shared by every thread, one at a time.

        Why: those run on the service's ordinary thread pool, whose threads come and go, and each
        thread opened a searcher of its own (every segment's files) at every new generation: with
        a commit a second, that was a third of a worker's CPU while articles were published
        (docs/benchmarks.md, "Publishing"). A lookup takes well under a millisecond, so waiting
        for the lock costs little; searches keep their own per-thread searchers."""
        with self._lookup_lock:
            token = self.generation
            held = self._lookup_held
            if held is None or held[0] != token:
                token, searcher, ix = self._open_searcher(token, held[1] if held is not None else None)
                if held is not None:
                    _close_unshared(held[1], searcher)
                held = self._lookup_held = (_read_token(token, searcher, ix), searcher)
                self._advance(held[0])
            token, searcher = held
            yield searcher, self._generation_data(token, searcher)

    def _close_searcher(self, searcher: Searcher, successor: Searcher | None = None) -> None:
        """Close ``searcher``, but not the segment readers its ``successor`` took over."""
        with self._lock:
            self._open.pop(searcher, None)
        if successor is None:
            _close_quietly(searcher)
        else:
            _close_unshared(searcher, successor)

    def close(self) -> None:
        """Close every searcher this engine opened, in every thread. A thread that searches
        afterwards opens a new one (closing is for shutdown and tests)."""
        with self._lock:
            searchers, self._open = list(self._open), {}
        for searcher in searchers:
            _close_quietly(searcher)
        self._local = threading.local()
        with self._lookup_lock:
            held, self._lookup_held = self._lookup_held, None
        if held is not None:
            _close_quietly(held[1])
        segment_arrays.release()  # the maps go with the searchers that used them

    def __enter__(self) -> WhooshEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    OPEN_ATTEMPTS = 5

    def _open_searcher(self, token: str, previous: Searcher | None = None) -> tuple[str, Searcher, Any]:
        """Open a searcher on the generation ``token`` names, or on a newer one, taking over the
        segment readers of ``previous`` (this thread's searcher) that it can (``_reader_reusing``).

        A commit by another process deletes the previous table of contents and the segments it
        merged away; opening can therefore find a file gone between listing and reading it
        (``FileNotFoundError``, seen twice in 21,068 soak requests). That only ever means a newer
        commit exists, so the token is re-read from disk and the open tried again.
        """
        for attempt in range(self.OPEN_ATTEMPTS):
            name = token.split(".")[0]
            try:
                ix = store.storage(self.index_dir / name).open_index()
                if previous is None or previous.is_closed or previous._ix is None \
                        or previous._ix.storage.folder != ix.storage.folder:
                    return token, ix.searcher(weighting=_weighting()), ix
                reader = _reader_reusing(ix, previous.reader())
                return token, Searcher(reader, fromindex=ix, weighting=_weighting()), ix
            except FileNotFoundError:
                if attempt == self.OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
                self._checked = 0.0
                token = self.generation  # IndexMissing (a FileNotFoundError) if CURRENT itself is gone
        raise AssertionError("unreachable")

    def _generation_data(self, token: str, searcher: Searcher) -> _Generation:
        """The data of generation ``token`` (``searcher`` reads it), shared by every thread.

        The newest generation and the one before it are kept: a thread can still ask for the one
        before after another thread opened the newest (it read the generation just before). An
        older one still is built for that call alone, and never replaces a newer one: a catalog
        built *from* a newer generation's cannot see deletions undone, and the changes the next
        commit's catalog records from it would miss them (a stale cached answer, kept for good)."""
        gen = self._shared.get(token)
        if gen is None:
            trim = False
            with self._lock:
                gen = self._shared.get(token)
                if gen is None:
                    segments = segments_of(searcher)
                    gen = _Generation(token=token, labels=_labels(self.index_dir / token.split(".")[0], searcher,
                                                                  self._segment_slugs),
                                      doc_count=searcher.doc_count(),
                                      segment_ids=frozenset(segment_id for segment_id, _n in segments),
                                      sets=SharedSets(segment_cache=self._segment_cache))
                    gen.catalog = self._build_catalog(token, searcher)
                    previous = max(self._shared.values(), key=lambda g: _token_order(g.token), default=None)
                    if previous is not None and _token_order(previous.token) > _token_order(token):
                        return gen  # older than the newest: for this call only
                    if previous is not None and previous.token.split(".")[0] == token.split(".")[0]:
                        # The caches of the segments both generations hold carry over
                        # (``index.docsets.Carry``): a commit costs the readers what it added.
                        gen.sets.follow(previous.sets, segments)
                        # The vocabulary grows by the syllables of the segments a commit adds
                        # (``_vocabulary``); the previous one, or what it would have grown from.
                        gen.vocabulary_base = ((previous.vocabulary, previous.segment_ids)
                                               if previous.vocabulary is not None else previous.vocabulary_base)
                    kept = {token: gen} if previous is None else {previous.token: previous, token: gen}
                    # What the generations no longer kept (and what the previous one holds that
                    # the newest does not take over) is let go, even while an idle thread's
                    # searcher still points at it (``SharedSets.let_go``).
                    for dropped in self._shared.values():
                        if dropped.token not in kept:
                            dropped.sets.let_go(carried=False)
                    if previous is not None:
                        previous.sets.let_go(carried=gen.sets.carry is not None)
                    self._shared = kept
                    # The posting arrays of segments neither kept generation holds (a replaced
                    # generation's, merged away) are let go: their maps hold the files open.
                    segment_arrays.release(set().union(*(g.segment_ids for g in self._shared.values())))
                    now = time.monotonic()
                    if now - self._trimmed >= TRIM_INTERVAL:
                        trim, self._trimmed = True, now
            if trim:
                # The generation just dropped (two back) held caches and a catalog: their pages
                # go back to the system, or glibc keeps them (index.memory says why).
                release_free_memory()
        return gen

    # Generations whose changes are remembered (``changes_between``): at a commit a second, the
    # last few minutes; an older validator is simply treated as changed.
    CHANGE_LOG_SIZE = 512
    ARTICLE_CACHE_SIZE = 2048

    def _build_catalog(self, token: str, searcher: Searcher) -> catalog.Snapshot:
        """The catalog of ``token``, built from the newest one built so far (a commit costs what it
        changed), and the changes recorded for ``changes_between``."""
        with self._catalog_lock:
            previous = self._catalog
            if previous is not None and previous.token == token:
                return previous
            if previous is not None and _token_order(previous.token) > _token_order(token):
                # An older generation than the newest built (``_generation_data``): built on its
                # own, neither recorded as a change nor the base of the next catalog.
                return catalog.build(token, searcher.reader(), previous, changes=False)[0]
            snapshot, changes = catalog.build(token, searcher.reader(), previous)
            if previous is not None and token not in self._changes:
                self._changes[token] = (previous.token, changes)
                while len(self._changes) > self.CHANGE_LOG_SIZE:
                    self._changes.popitem(last=False)
            self._catalog = snapshot
            return snapshot

    def changes_between(self, old: str, new: str) -> Changes:
        """What changed from generation ``old`` to ``new``: the union of the recorded changes on the
        way back from ``new`` to ``old``; ``EVERYTHING`` when that way is not known (a generation
        no thread of this engine opened, one forgotten, another index directory)."""
        if old == new:
            return NOTHING
        self._state()  # the newest generation's catalog, and its changes, exist from here on
        total = NOTHING
        current = new
        with self._catalog_lock:
            for _ in range(self.CHANGE_LOG_SIZE):
                step = self._changes.get(current)
                if step is None:
                    return EVERYTHING
                current, changes = step
                total = total | changes
                if total.everything or current == old:
                    return total
        return EVERYTHING

    def _context(self) -> Context:
        searcher, gen = self._state()
        return Context(searcher=searcher, labels=gen.labels, docsets=self._local.docsets,
                       vocabulary=lambda: _vocabulary(gen, searcher))

    # -- the SearchEngine interface -------------------------------------------------------------------

    # Bounds of the result cache, per worker: this many results (0: no cache)...
    RESULT_CACHE_SIZE = 1024
    # ...and at most this many hits over all of them. A hit holds its article (body text, several
    # objects), and the cycle collector walks every object a worker keeps on each full collection:
    # the number of cached hits, not of results, is what makes those pauses long (docs/search.md).
    RESULT_CACHE_HITS = 10_000

    def _cache_key(self, request: SearchRequest) -> tuple[object, ...]:
        return (self.generation, request.q, tuple(request.categories), tuple(request.sources), request.date_from,
                request.date_to, request.sort, request.page, request.per_page, request.recency_boost,
                request.snippets, request.facets, request.highlight_titles, request.spelling_suggestion)

    def cached_search(self, request: SearchRequest) -> SearchResult | None:
        """The cached result of ``search(request)`` on the current generation, or None.

        Never searches, so the service can call it on its event loop and answer repeats at once
        instead of queueing them behind the searches its engine threads are computing."""
        return self._cached(self._cache_key(request))

    def _cached(self, key: tuple[object, ...]) -> SearchResult | None:
        with self._cache_lock:
            held = self._results.get(key)
        return None if held is None else pickle.loads(held[0])  # our own bytes; a fresh copy per hit

    def _store(self, key: tuple[object, ...], result: SearchResult) -> None:
        max_results, max_hits = self.RESULT_CACHE_SIZE, self.RESULT_CACHE_HITS
        if max_results <= 0 or max_hits <= 0:
            return
        # Kept pickled: a result is dozens of objects per hit (article, paragraphs, spans), and the
        # cycle collector walks every object a worker keeps on each full collection; measured under
        # load, full collections paused a worker's event loop for up to 170 ms with results kept as
        # objects (docs/benchmarks.md). Bytes are not walked; a hit costs one unpickling.
        held = (pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL), len(result.hits))
        with self._cache_lock:
            if key[0] != self._results_generation:
                # The first result of another generation: no key of the old one can be asked for
                # again, so its results go at once rather than by age. (A thread still finishing a
                # search of the old generation may start one more cache for it; that costs a few
                # repeats, never a stale answer, since the generation is in every key.)
                # A result counts its hits, at most the whole budget: the newest result is always
                # kept, alone if it has to be.
                self._results = LRUCache(max_hits, getsizeof=lambda r: min(r[1], max_hits))
                self._results_generation = str(key[0])
            self._results[key] = held
            while len(self._results) > max_results:
                self._results.popitem()  # the least recently used

    def search(self, request: SearchRequest) -> SearchResult:
        """Search, with an LRU of results per index generation: news search traffic repeats its
        head queries, and a new generation changes the key so a cached result is never stale."""
        key = self._cache_key(request)  # before searching: a result is never older than its key
        cached = self._cached(key)
        if cached is not None:
            return cached
        result = search(self._context(), request)
        self._store(key, result)
        return result

    def get_article(self, article_id: str) -> Article | None:
        article_id = article_id.encode("utf-8", "replace").decode("utf-8")  # lone surrogates: no match
        with self._lookup() as (searcher, _gen):
            fields = searcher.document(id=article_id)
        if not fields:
            return None
        return Article.from_dict(json.loads(fields["doc"]))

    # Related lists kept per worker (each a handful of articles, pickled).
    RELATED_CACHE_SIZE = 4096

    def related(self, article_id: str, limit: int = related_algorithm.DEFAULT_LIMIT) -> list[Article]:
        """The articles most like ``article_id`` (``index.related``), best first; [] for an id the
        index does not hold. Cached per generation: the key holds the generation, so a cached list
        is never older than the index it was asked of."""
        related_algorithm.check_limit(limit)
        key = (self.generation, article_id, limit)
        with self._cache_lock:
            held = self._related.get(key) if key[0] == self._related_generation else None
        if held is not None:
            found: list[Article] = pickle.loads(held)
            return found
        # The source first, then one ``_state()`` for everything below: the searcher and the
        # posting sets used must be those of one call (a second one may reopen this thread's
        # searcher on a newer generation and close the first).
        source = self.get_article(article_id)
        if source is None:
            return []
        searcher, gen = self._state()
        docsets = self._local.docsets
        n_docs = gen.doc_count
        terms = related_algorithm.choose_terms(
            related_algorithm.profile(source), lambda s: related_whoosh.syllable_frequency(docsets, s),
            lambda wanted: related_whoosh.pair_frequencies(docsets, wanted), n_docs)
        candidates = related_whoosh.candidates(searcher, docsets, terms, source, limit)
        found = related_algorithm.rank(source, candidates, limit)
        held = pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)
        with self._cache_lock:
            if key[0] != self._related_generation:
                self._related = LRUCache(max(1, self.RELATED_CACHE_SIZE))
                self._related_generation = key[0]
            self._related[key] = held
        return found

    def categories(self) -> list[FacetValue]:
        """Every category with its article count, largest first: from the catalog, kept current
        commit by commit, so never a pass over the postings."""
        with self._lookup() as (_searcher, gen):
            if gen.categories is None:
                counts = gen.catalog.counts if gen.catalog is not None else {}
                gen.categories = sorted((FacetValue(gen.labels.get(s, s), s, n) for s, n in counts.items() if s),
                                        key=lambda f: (-f.count, f.slug))
            return gen.categories

    def latest(self, category_slug: str | None = None, limit: int = 50, offset: int = 0) -> list[Article]:
        """The newest articles (of one category), newest first, ties by id: a slice of the
        catalog's lists, then the stored articles read by document number."""
        searcher, gen = self._state()
        snapshot = gen.catalog
        assert snapshot is not None  # built with the generation
        out: list[Article] = []
        for article_id in snapshot.latest_ids(category_slug or None, limit, offset):
            entry = snapshot.live[article_id]
            key = (article_id, entry.version)
            with self._articles_lock:
                article = self._articles.get(key)
            if article is None:
                docnum = snapshot.offsets[entry.segment] + entry.docnum
                article = Article.from_dict(json.loads(searcher.stored_fields(docnum)["doc"]))
                with self._articles_lock:
                    self._articles[key] = article
            out.append(article)
        return out

    def published_between(self, start: datetime, end: datetime, limit: int, offset: int = 0) -> list[Dated]:
        """Articles published in [start, end), oldest first, ties by id: from the catalog (two
        bisections and the range's keys), never a search or a stored article."""
        _, gen = self._state()
        snapshot = gen.catalog
        assert snapshot is not None  # built with the generation
        keys = snapshot.between(catalog.published_value(start), catalog.published_value(end))
        return [Dated(article_id, catalog.moment(-key)) for key, article_id in keys[offset: offset + limit]]

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        suggester = self._current_suggester()
        return suggester.complete(prefix, limit=limit) if suggester is not None else []

    @property
    def doc_count(self) -> int:
        return self._state()[1].doc_count

    # -- suggestions --------------------------------------------------------------------------------

    # Seconds: suggestions may lag the index by this much, and never block on it. A rebuild is
    # seconds of pure-Python CPU on a large archive, holding the GIL against searches, while
    # completions (frequent n-grams and titles) change little between commits.
    SUGGEST_REFRESH = 300.0

    def _current_suggester(self) -> Suggester | None:
        token = self.generation
        if self._suggester is None:
            with self._suggester_lock:  # the first build: callers wait for it
                if self._suggester is None:
                    self._build_suggester(token)
        elif (token != self._suggester_token and not self._suggester_building
              and time.monotonic() - self._suggester_built > self.SUGGEST_REFRESH):
            # Later builds happen in the background; the old suggester serves meanwhile.
            self._suggester_building = True
            threading.Thread(target=self._rebuild_suggester, args=(token,), daemon=True,
                             name="searchsvc-suggest").start()
        return self._suggester

    def _rebuild_suggester(self, token: str) -> None:
        try:
            with self._suggester_lock:
                self._build_suggester(token)
            release_free_memory()  # the replaced suggester's pages (index.memory says why)
        finally:
            self._suggester_building = False

    def _build_suggester(self, token: str) -> None:
        from index.suggest import Suggester

        searcher, _ = self._state()
        self._suggester = Suggester.build(_titles(searcher))
        self._suggester_token = token
        self._suggester_built = time.monotonic()

    def warm_up(self) -> None:
        """Build what the first requests would otherwise wait for (the suggester, facet sets)."""
        self._current_suggester()
        self.categories()
        searcher, gen = self._state()
        _vocabulary(gen, searcher)


def _token_order(token: str) -> tuple[str, int]:
    """Generations in the order they were made: the generation directory (``gen-000002`` is a
    later build than ``gen-000001``), then the commit number inside it."""
    name, _, toc = token.rpartition(".")
    return name, int(toc) if toc.lstrip("-").isdigit() else -1


def _reader_reusing(ix: Any, previous: Any) -> Any:
    """A reader of the index's newest generation that takes over ``previous``'s reader of every
    segment that is the same in both: same segment and same deleted documents.

    Why not ``Searcher.refresh`` (Whoosh's own reuse): it matches segments by id alone, and a
    commit that deletes documents of an old segment (a correction) keeps its id, so a reused
    reader would still show them. Why reuse at all: opening a segment's reader reads its files'
    headers and tables; every search thread reopened every segment at every commit, a tenth of a
    worker's time while articles were published at 50 a second (docs/benchmarks.md, "Publishing").
    A lone segment is always opened afresh: its reader carries the generation number."""
    info = ix._read_toc()
    if len(info.segments) < 2:
        return ix.reader()
    held = {leaf.segment().segment_id(): leaf for leaf, _offset in previous.leaf_readers()
            if leaf.segment() is not None and not leaf.is_closed}
    readers, opened = [], []
    try:
        for segment in info.segments:
            leaf = held.get(segment.segment_id())
            if leaf is None or not _same_deletions(leaf.segment(), segment):
                leaf = SegmentReader(ix.storage, info.schema, segment, generation=info.generation)
                opened.append(leaf)
            readers.append(leaf)
    except BaseException:  # a segment's files gone (a newer commit merged it away): the caller retries
        for leaf in opened:
            leaf.close()
        raise
    return MultiReader(readers, generation=info.generation)


def _same_deletions(a: Any, b: Any) -> bool:  # two Whoosh segments of the same id
    return bool(a.deleted_count() == b.deleted_count() and set(a.deleted_docs()) == set(b.deleted_docs()))


def _close_unshared(searcher: Searcher, successor: Searcher) -> None:
    """Close ``searcher``'s segment readers that ``successor`` did not take over."""
    kept = {id(leaf) for leaf, _offset in successor.reader().leaf_readers()}
    for leaf, _offset in searcher.reader().leaf_readers():
        if id(leaf) not in kept:
            try:
                leaf.close()
            except Exception:  # already closed, or its files already gone from disk
                pass
    searcher.is_closed = True


def _close_quietly(searcher: Searcher) -> None:
    try:
        searcher.close()
    except Exception:  # already closed, or its generation already gone from disk
        pass


def _vocabulary(gen: _Generation, searcher: Searcher) -> frozenset[str]:
    """The folded syllables of the index, built once per generation (a term lookup in Whoosh's
    on-disk table is slow, and typo tolerance tries hundreds of candidates per query).

    After an update commit, only the segments the generation adds are read, and their syllables
    joined to the earlier generation's. Syllables of articles since deleted stay: every candidate
    is checked against the index afterwards, so an extra one costs a look-up, never a wrong
    answer. Why not read the whole index again now and then (as before): on the full corpus that
    was the index's every term through Whoosh's term iterators, twice, minutes of a worker's CPU
    once it held a few dozen segments, during which searches were shed as overloaded (the soak,
    docs/benchmarks.md)."""
    if gen.vocabulary is None:
        with gen.lock:
            if gen.vocabulary is None:
                known, read_from = gen.vocabulary_base or (frozenset(), frozenset())
                added = _read_vocabulary([leaf for leaf, _offset in searcher.reader().leaf_readers()
                                          if leaf.segment() is None or leaf.segment().segment_id() not in read_from])
                gen.vocabulary = known if added <= known else untracked(known | added)
                gen.vocabulary_base = None
    return gen.vocabulary


def _read_vocabulary(leaves: list[Any]) -> frozenset[str]:  # Whoosh segment readers
    found: set[str] = set()
    for leaf in leaves:
        for name in ("body_folded", "title_folded"):
            if name in leaf.schema:
                found.update(leaf.field_terms(name))
    return untracked(frozenset(found))


def _titles(searcher: Searcher) -> list[str]:
    reader = searcher.reader()
    if "title_column" in searcher.schema:
        column = reader.column_reader("title_column")
        return [reader_bytes.decode("utf-8") for docnum, reader_bytes in enumerate(column)
                if not reader.is_deleted(docnum)]
    return [f.get("title", "") for f in reader.all_stored_fields()]  # indexes built before the column


def _labels(generation_dir: Path, searcher: Searcher, known: dict[str, frozenset[str]]) -> dict[str, str]:
    """Category slug -> display label: the generation's canonical labels (index.store), so that
    no article can rename a category. A slug the map lacks (an index built before it was kept)
    takes the label of its first stored article, as it always did.

    ``known``: the slugs of each segment read so far (segments never change), kept to the segments
    of this generation. Why: the slugs of the whole index through Whoosh's merged term iterator
    were read at every commit, 2.6 % of a worker's CPU while publishing at 50 articles a second."""
    labels = store.read_labels(generation_dir) or {}
    reader = searcher.reader()
    slugs: set[str] = set()
    kept: dict[str, frozenset[str]] = {}
    for leaf, _offset in reader.leaf_readers():
        segment = leaf.segment()
        segment_id = segment.segment_id() if segment is not None else None
        found = known.get(segment_id) if segment_id is not None else None
        if found is None:
            found = frozenset(leaf.field_terms("category_slug")) if "category_slug" in leaf.schema else frozenset()
        if segment_id is not None:
            kept[segment_id] = found
        slugs |= found
    known.clear()
    known.update(kept)
    if any(slug not in labels for slug in slugs):
        labels = {**store.labels_from_articles(reader), **labels}
    return labels
