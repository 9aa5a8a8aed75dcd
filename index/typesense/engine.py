"""``TypesenseEngine``: the ``index.api.SearchEngine`` on a Typesense cluster.

Serve nodes are stateless: everything is in the cluster (the articles, the commit counter and the
changes of each commit, the category labels: ``index.typesense.connection`` names them), so any
number of ``searchsvc serve`` nodes can answer from it and none needs a local index.

Generations: the token is ``{alias target}.{seq}``, read from the ``state`` document at most every
``CHECK_INTERVAL`` seconds, as the Whoosh engine re-reads its on-disk token; a writer bumps ``seq``
after each commit and a rebuild swaps the alias target. What a commit changed is in the changes
collection (``changes_between``), so the service's caches keep what a commit did not touch.

Per generation, shared by every thread: the labels and category counts, the pair frequencies
(``index.typesense.lexicon``). Per alias target: the vocabulary and the suggester. Only the first
of each is read while callers wait; later ones (every ``REFRESH`` seconds, or a rebuild's new
target) are read in the background while the previous one serves, as the Whoosh engine's suggester
is. Both are whole-collection reads that take far longer than a search (the vocabulary is one facet
over every folded syllable: 2.4 s for 2,000 articles, 4.8 s for 8,000, measured on 0.24.1; about
0.15 ms per distinct syllable), so they go through a client of their own with ``SLOW_READ_TIMEOUT``;
with the searches' timeout the first search of a large archive never got its vocabulary.

Failures: a node that does not answer is skipped by the client (``connection.read_client``); when
none answers, ``EngineUnavailable`` (the service answers 503). Nothing here retries a read for
long: a reader is waiting.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from urllib.parse import quote

import httpx
import typesense
from cachetools import LRUCache
from typesense import exceptions as ts_errors

from index import related as rel
from index.api import (
    EVERYTHING,
    NOTHING,
    Changes,
    Dated,
    EngineUnavailable,
    FacetValue,
    SearchRequest,
    SearchResult,
)
from index.article import Article
from index.typesense import search as cluster_search
from index.typesense.connection import READ_TIMEOUT, ClusterSettings, _node, read_client
from index.typesense.documents import pair_token, token
from index.typesense.lexicon import ClusterLexicon, PairCounts, Vocabulary

if TYPE_CHECKING:
    from index.suggest import Suggester

T = TypeVar("T")

CHECK_INTERVAL = 0.25  # seconds between reads of the state document
# Seconds after a generation is first seen during which a node may still be applying its commit:
# what a read answers then is not kept for the whole generation (``_Generation`` says why).
SETTLE = 5.0
RECHECK = 1.0  # seconds between two reads of a young generation's category counts
REFRESH = 300.0  # seconds: vocabulary and suggestions may lag the cluster by this much
SLOW_READ_TIMEOUT = 120.0  # seconds for the whole-collection reads (vocabulary, titles)
MAX_CHANGES_READ = 2_000  # commits read to tell what changed; more counts as everything
# Documents one multi-search reads in a listing by date: 40 pages of 250, under Typesense's
# default limit of 50 searches in one multi-search request (``limit-multi-searches``).
LISTING_CHUNK = 40 * cluster_search.MAX_PER_SEARCH
ARTICLE_CACHE = 2048
RELATED_CACHE = 1024  # related lists remembered (each a handful of articles)
RELATED_PER_TERM = 100  # articles read per query term of a related list
MAX_ID_PATH = 2000  # characters of a quoted id in a URL path; a longer one is looked up by a filter

_UNAVAILABLE = (ts_errors.ServerError, ts_errors.ServiceUnavailable, ts_errors.HTTPStatus0Error,
                ts_errors.Timeout, httpx.HTTPError, ConnectionError, TimeoutError)


@dataclass
class _Generation:
    """One generation and what is read once for it.

    Young generations: a follower applies a commit some time after the leader (under load, the
    import of a few hundred articles took seconds: facet counts read from that node meanwhile
    missed documents, and Typesense logged "Facet fetch error. Could not locate the JSON
    document"), and it applies each collection's writes on its own, so a node that already serves
    the new ``state`` may not hold the commit's articles yet. Kept for the whole generation, one
    such read made three categories vanish: their feeds answered 404 until the next commit (for
    ever, on an archive that then stays quiet). So until ``SETTLE`` seconds after the generation
    was first seen, the category counts are read again every ``RECHECK`` seconds, and an article
    that is not found is not remembered (the next request asks again, the client the next node).
    """

    token: str
    target: str
    seq: int
    labels: dict[str, str]
    pairs: PairCounts
    categories: list[FacetValue] | None = None
    doc_count: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: float = field(default_factory=time.monotonic)
    categories_read: float = 0.0  # when the kept category counts were asked for

    def settled(self, at: float) -> bool:
        """Whether a read started at ``at`` came late enough to find every node done with the commit."""
        return at - self.seen >= SETTLE


def _slow_client(settings: ClusterSettings) -> typesense.Client:
    """``connection.read_client`` for reads that take seconds: the same nodes and key, a failed
    node skipped at once, ``SLOW_READ_TIMEOUT`` per attempt."""
    return typesense.Client({
        "nodes": [_node(n) for n in settings.nodes],
        "api_key": settings.api_key,
        "connection_timeout_seconds": max(SLOW_READ_TIMEOUT, READ_TIMEOUT),
        "num_retries": len(settings.nodes),
        "retry_interval_seconds": 0.01,
        "healthcheck_interval_seconds": 2,
    })


def _token_order(tok: str) -> tuple[str, int]:
    target, _, seq = tok.rpartition(".")
    return target, int(seq) if seq.isdigit() else -1


class _PerTarget(Generic[T]):
    """A value read from the whole collection once per alias target (the vocabulary, the
    suggester): the first read waits for it; a new target (a rebuild) or a read older than
    ``REFRESH`` is read again in the background while the previous value serves. Both only order
    and propose (typo corrections, each checked against the articles; completions), and a read
    takes seconds on a large archive: no search should wait for it (the Whoosh engine's
    suggester works the same way)."""

    def __init__(self, read: Callable[[], T], name: str) -> None:
        self._read = read
        self._name = name
        self._held: tuple[str, float, T] | None = None  # (target, read at, value)
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self, target: str) -> T:
        held = self._held
        if held is None:
            with self._lock:  # the first read: callers wait for it
                held = self._held
                if held is None:
                    held = self._held = (target, time.monotonic(), self._read())
        elif (held[0] != target or time.monotonic() - held[1] > REFRESH) and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, args=(target,), daemon=True, name=self._name).start()
        return held[2]

    def _refresh(self, target: str) -> None:
        try:
            self._held = (target, time.monotonic(), self._read())
        except Exception:  # the previous value keeps serving; the next call retries
            pass
        finally:
            self._refreshing = False


class TypesenseEngine:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self._client = read_client(settings)
        self._slow_client: typesense.Client | None = None  # made at the first vocabulary read
        self._slow_lock = threading.Lock()
        # Built once: the client builds a tree of helper objects for every collection it is asked for.
        self._state_doc = self._client.collections[settings.meta].documents["state"]
        self._documents = self._client.collections[settings.alias].documents
        self._lock = threading.Lock()
        self._gen: _Generation | None = None
        self._target_fields: tuple[str, frozenset[str]] | None = None
        self._checked = 0.0
        self._vocabulary = _PerTarget(self._read_vocabulary, "searchsvc-vocabulary")
        self._suggester = _PerTarget(self._build_suggester, "searchsvc-suggester")
        self._articles: LRUCache[tuple[str, str], Article | None] = LRUCache(ARTICLE_CACHE)
        # Related lists by (generation, id, limit), under ``_articles_lock``.
        self._related: LRUCache[tuple[str, str, int], tuple[Article, ...]] = LRUCache(RELATED_CACHE)
        self._articles_lock = threading.Lock()

    @classmethod
    def open(cls, settings: ClusterSettings | None = None) -> TypesenseEngine:
        """Connect and read the current generation; ``EngineUnavailable`` when the cluster cannot
        be reached or holds no articles collection yet (the service keeps retrying)."""
        engine = cls(settings or ClusterSettings.from_env())
        try:
            engine._state()
        except BaseException:
            engine.close()
            raise
        return engine

    def close(self) -> None:
        """Close the clients' connections (httpx clients: their sockets would otherwise linger)."""
        self._client.api_call.close()
        if self._slow_client is not None:
            self._slow_client.api_call.close()

    def __enter__(self) -> TypesenseEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- talking to the cluster ---------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ts_errors.ObjectNotFound:
            raise
        except _UNAVAILABLE as exc:
            raise EngineUnavailable(f"the Typesense cluster did not answer: {type(exc).__name__}: {exc}") from exc

    def multi(self, searches: list[dict[str, Any]], collection: str | None = None,
              client: typesense.Client | None = None) -> list[dict[str, Any]]:
        """Searches in one round trip (on the articles alias by default); a search Typesense
        refuses is our bug, raised as RuntimeError with its message."""
        common = {"collection": collection or self.settings.alias}
        use = client or self._client
        response = self._call(lambda: use.multi_search.perform(cast(Any, {"searches": searches}), cast(Any, common)))
        results = cast(list[dict[str, Any]], cast(dict[str, Any], response)["results"])
        for result in results:
            if "error" in result:
                code = int(result.get("code", 500))
                if code >= 500:
                    raise EngineUnavailable(f"Typesense: {result['error']}")
                raise RuntimeError(f"Typesense refused a search ({code}): {result['error']}")
        return results

    # -- generations ------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            doc = self._call(self._state_doc.retrieve)
        except ts_errors.ObjectNotFound:
            raise EngineUnavailable("the cluster holds no articles yet (run searchsvc index --engine typesense)"
                                    ) from None
        return cast(dict[str, Any], doc)

    def _state(self) -> _Generation:
        now = time.monotonic()
        gen = self._gen
        if gen is not None and now - self._checked < CHECK_INTERVAL:
            return gen
        try:
            state = self._read_state()
        except EngineUnavailable:
            if gen is None:
                raise
            # Keep answering from the generation last seen (a node went down mid-poll, a leader
            # election): reads may still succeed on other nodes, and the next poll tries again.
            self._checked = now
            return gen
        target, seq = str(state.get("target", "")), int(state.get("seq", 0))
        tok = f"{target}.{seq}"
        with self._lock:
            self._checked = now
            gen = self._gen
            if gen is None or (tok != gen.token and _token_order(tok) > _token_order(gen.token)):
                try:
                    fields = self._fields(target)
                except EngineUnavailable:
                    if gen is None:
                        raise
                    return gen  # as for a failed poll: the next one tries again
                labels = json.loads(str(state.get("labels") or "{}"))
                pairs = PairCounts(self.multi, title_body="title_body_pair" in fields)
                gen = self._gen = _Generation(tok, target, seq, labels, pairs)
            return gen

    def _fields(self, target: str) -> frozenset[str]:
        """The fields of the collection ``target`` (read once per target): a collection written by
        an older version may lack one (``lexicon.PairCounts`` then counts without it)."""
        held = self._target_fields
        if held is None or held[0] != target:
            try:
                schema = self._call(lambda: self._client.collections[target].retrieve())
                names = frozenset(str(f.get("name")) for f in cast(dict[str, Any], schema).get("fields", []))
            except ts_errors.ObjectNotFound:  # dropped meanwhile: the next poll sees the new target
                names = frozenset()
            held = self._target_fields = (target, names)
        return held[1]

    @property
    def generation(self) -> str:
        return self._state().token

    def changes_between(self, old: str, new: str) -> Changes:
        if old == new:
            return NOTHING
        old_target, old_seq = _token_order(old)
        new_target, new_seq = _token_order(new)
        if old_target != new_target or old_seq < 0 or new_seq < old_seq:
            return EVERYTHING
        ids: set[str] = set()
        categories: set[str] = set()
        months: set[str] | None = set()
        seen = 0
        page = 1
        while True:
            result = self.multi([{"q": "*", "filter_by": f"seq:>{old_seq} && seq:<={new_seq}", "sort_by": "seq:asc",
                                  "per_page": 250, "page": page}], collection=self.settings.changes)[0]
            hits = result.get("hits", [])
            for hit in hits:
                doc = hit["document"]
                if doc.get("everything"):
                    return EVERYTHING
                ids.update(doc.get("ids", []))
                categories.update(doc.get("categories", []))
                if "months" not in doc:  # written before months were recorded: any month may have moved
                    months = None
                elif months is not None:
                    months.update(doc["months"])
            seen += len(hits)
            if len(hits) < 250:
                break
            if seen >= MAX_CHANGES_READ:
                return EVERYTHING
            page += 1
        return Changes(frozenset(ids), frozenset(categories), months=None if months is None else frozenset(months))

    # -- vocabulary and suggestions (per alias target, refreshed in the background) ---------------

    def _slow(self) -> typesense.Client:
        """The client of the whole-collection reads (``SLOW_READ_TIMEOUT``, see the docstring)."""
        if self._slow_client is None:
            with self._slow_lock:
                if self._slow_client is None:
                    self._slow_client = _slow_client(self.settings)
        return self._slow_client

    def _read_vocabulary(self) -> Vocabulary:
        return Vocabulary.read(lambda searches: self.multi(searches, client=self._slow()))

    def _current_vocabulary(self) -> Vocabulary:
        return self._vocabulary.get(self._state().target)

    def _build_suggester(self) -> Suggester:
        from index.suggest import Suggester

        return Suggester.build(self._titles())

    def _current_suggester(self) -> Suggester:
        return self._suggester.get(self._state().target)

    def _titles(self) -> list[str]:
        documents = self._slow().collections[self.settings.alias].documents
        exported = self._call(lambda: documents.export(cast(Any, {"include_fields": "title"})))
        return [str(json.loads(line).get("title", "")) for line in exported.splitlines() if line.strip()]

    # -- the SearchEngine interface ---------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult:
        gen = self._state()
        lexicon = ClusterLexicon(self._current_vocabulary, gen.pairs)
        return cluster_search.search(self.multi, lexicon, gen.labels, request)

    def suggest(self, prefix: str, limit: int = 10) -> list[str]:
        return self._current_suggester().complete(prefix, limit=limit)

    def get_article(self, article_id: str) -> Article | None:
        gen = self._state()
        key = (gen.token, article_id)
        with self._articles_lock:
            if key in self._articles:
                return self._articles[key]
        # The id is a path segment: quoted as the writer quotes it ("/", "?", control characters);
        # one that UTF-8 cannot hold (a lone surrogate) names no article, nor does "". One too
        # long for a URL is looked up by a filter (a POST), unless no filter can quote it.
        try:
            path = quote(article_id, safe="")
        except UnicodeEncodeError:
            path = ""
        asked = time.monotonic()
        try:
            if not path or (len(path) > MAX_ID_PATH and "`" in article_id):
                raise ts_errors.ObjectNotFound(404, "no such id")
            if len(path) > MAX_ID_PATH:
                hits = self.multi([{"q": "*", "filter_by": f"id:=[`{article_id}`]", "per_page": 1,
                                    "include_fields": "doc"}])[0].get("hits", [])
                if not hits:
                    raise ts_errors.ObjectNotFound(404, "no such id")
                doc = hits[0]["document"]
            else:
                doc = self._call(lambda: self._documents[path].retrieve())
            article: Article | None = Article.from_dict(json.loads(str(cast(dict[str, Any], doc)["doc"])))
        except ts_errors.ObjectNotFound:
            article = None
        except ts_errors.TypesenseClientError as exc:
            if isinstance(exc, _UNAVAILABLE):
                raise
            article = None  # an id Typesense cannot even look up (a malformed one): not found
        if article is not None or gen.settled(asked):  # not found while young: maybe a lagging node
            with self._articles_lock:
                self._articles[key] = article
        return article

    def related(self, article_id: str, limit: int = rel.DEFAULT_LIMIT) -> list[Article]:
        """``index.related`` on the cluster: syllable frequencies from the vocabulary facet, pair
        frequencies counted per generation (``lexicon.PairCounts``), candidates from one
        ``multi_search`` of the query terms (``related_candidates``), each scored on its own text."""
        rel.check_limit(limit)
        gen = self._state()
        key = (gen.token, article_id, limit)
        with self._articles_lock:
            held = self._related.get(key)
        if held is not None:
            return list(held)
        source = self.get_article(article_id)
        if source is None:
            return []
        counts = self._current_vocabulary().counts
        terms = rel.choose_terms(rel.profile(source), lambda s: counts.get(s, 0), gen.pairs.get,
                                     self.doc_count)
        found = rel.rank(source, self._related_candidates(terms, limit), limit)
        with self._articles_lock:
            self._related[key] = tuple(found)
        return found

    def _related_candidates(self, terms: list[rel.QueryTerm], limit: int) -> list[rel.Candidate]:
        """The articles holding the query terms, best first by the weights of the terms they hold
        (Typesense cannot score by our term frequencies), the best ``candidate_count`` of them read
        and scored on their analysed text (``rel.score``: the Whoosh engine's score).

        Bounded: one search per term, at most ``RELATED_PER_TERM`` articles each (the newest: a
        term held by more articles is seen only in those, docs/scale-out.md), in one round trip,
        then one read of the candidates."""
        if not terms:
            return []
        searches = [{"q": "*", "per_page": RELATED_PER_TERM, "include_fields": "id",
                     "sort_by": "published:desc,ident:asc",
                     "filter_by": f"{'folded' if t.kind == rel.FOLDED else 'pair'}:=["
                                  f"{token(t.text) if t.kind == rel.FOLDED else pair_token(t.text)}]"}
                    for t in terms]
        held: dict[str, float] = {}
        for term, result in zip(terms, self.multi(searches), strict=True):
            for hit in result.get("hits", []):
                doc_id = str(hit["document"]["id"])
                held[doc_id] = held.get(doc_id, 0.0) + term.weight
        best = sorted(held, key=lambda i: (-held[i], i))[:rel.candidate_count(limit) + 1]
        out: list[rel.Candidate] = []
        for article in self._articles_by_id(best):
            out.append(rel.Candidate(article, rel.score(terms, rel.profile(article))))
        return out

    def _articles_by_id(self, ids: list[str]) -> list[Article]:
        """The stored articles of ``ids`` in one search (an id a filter cannot quote, one holding
        a backtick, is read on its own)."""
        quotable = [i for i in ids if "`" not in i]
        out: list[Article] = []
        if quotable:
            listed = ",".join(f"`{i}`" for i in quotable)
            result = self.multi([{"q": "*", "filter_by": f"id:=[{listed}]", "per_page": len(quotable),
                                  "include_fields": "doc"}])[0]
            out += [Article.from_dict(json.loads(str(h["document"]["doc"]))) for h in result.get("hits", [])]
        for i in ids:
            if "`" in i:
                article = self.get_article(i)
                if article is not None:
                    out.append(article)
        return out

    def categories(self) -> list[FacetValue]:
        gen = self._state()
        asked = time.monotonic()
        young = not gen.settled(gen.categories_read) and asked - gen.categories_read >= RECHECK
        if gen.categories is None or young:  # read again while a node may lag (``_Generation``)
            result = self.multi([{"q": "*", "per_page": 0, "facet_by": "category_slug",
                                  "max_facet_values": cluster_search.MAX_FACET_VALUES}])[0]
            gen.categories = cluster_search._facets(result.get("facet_counts", []), gen.labels)["category"]
            gen.doc_count = int(result.get("found", 0))
            gen.categories_read = asked
        return gen.categories

    def latest(self, category_slug: str | None = None, limit: int = 50, offset: int = 0) -> list[Article]:
        """The newest articles (of one category), newest first, ties by id (as the Whoosh catalog)."""
        params: dict[str, Any] = {"q": "*", "sort_by": "published:desc,ident:asc", "include_fields": "doc"}
        if category_slug:
            params["filter_by"] = f"category_slug:=[{token(category_slug)}]"
        hits = cluster_search.window(self.multi, params, offset, limit)
        return [Article.from_dict(json.loads(h["doc"])) for h in hits]

    def published_between(self, start: datetime, end: datetime, limit: int, offset: int = 0) -> list[Dated]:
        """Articles published in [start, end), oldest first, ties by id (as the Whoosh catalog):
        a filtered, sorted listing of two stored fields, read ``LISTING_CHUNK`` at a time.
        ``published`` is stored in whole seconds, so the bounds are too (a month's are)."""
        params: dict[str, Any] = {
            "q": "*",
            "filter_by": f"published:>={math.ceil(start.timestamp())} && published:<{math.ceil(end.timestamp())}",
            "sort_by": "published:asc,ident:asc",
            "include_fields": "ident,published",
        }
        out: list[Dated] = []
        while len(out) < limit:
            want = min(LISTING_CHUNK, limit - len(out))
            hits = cluster_search.window(self.multi, params, offset + len(out), want)
            out += [Dated(str(h["ident"]), datetime.fromtimestamp(int(h["published"]), UTC)) for h in hits]
            if len(hits) < want:
                break
        return out

    @property
    def doc_count(self) -> int:
        gen = self._state()
        if gen.doc_count is None:
            self.categories()
        return gen.doc_count or 0

    def warm_up(self) -> None:
        """Read what the first requests would otherwise wait for."""
        self._current_vocabulary()
        self.categories()
        self._current_suggester()

