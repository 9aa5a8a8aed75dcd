"""What the cluster knows of our terms, for the query plan and the speller (``index.spelling``).

The Whoosh engine asks its term table; Typesense has none to ask, so:

* the folded vocabulary with each syllable's document frequency is one facet query over the
  ``folded`` array (``Vocabulary``), read when a generation is first searched and refreshed in the
  background at most every ``REFRESH`` seconds (``engine._PerTarget``: one query to the cluster; the Whoosh
  engine instead reads the segments each commit adds);
* a pair's document frequency is two counts (searches with ``per_page`` 0 and the pair as a
  filter: on ``pair``, and on ``title_body_pair``), asked in batches of up to ``BATCH`` searches
  in one ``multi_search`` and remembered per generation. The plan asks for the query's own pairs
  first (``prefetch``), so a search costs one round trip for them, not one per pair.

A frequency here is the Whoosh engine's: the articles holding the term in the title plus those
holding it in the body (``index.typesense.documents`` says how the collection makes that
countable). The speller's choices read the values (which typo variants, which pair corrections),
and through them the typo tiers' match sets, so they must be the same numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from cachetools import LRUCache

from index.typesense.documents import pair_token, untoken

BATCH = 50  # searches per multi_search: Typesense's default limit
MAX_VOCABULARY = 2_000_000  # facet values read at most (the full corpus has about 100,000)
PAIR_CACHE = 100_000  # pair frequencies remembered per generation

Multi = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class Vocabulary:
    """Folded syllables -> document frequency, for one collection (read once, shared)."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    @classmethod
    def read(cls, multi: Multi) -> Vocabulary:
        result = multi([{"q": "*", "facet_by": "folded", "max_facet_values": MAX_VOCABULARY, "per_page": 0}])[0]
        counts: dict[str, int] = {}
        for facet in result.get("facet_counts", []):
            if facet.get("field_name") == "folded":
                for item in facet.get("counts", []):
                    counts[untoken(str(item["value"]))] = int(item["count"])
        return cls(counts)


class PairCounts:
    """Pair document frequencies of one generation, shared by every search of it (thread-safe)."""

    def __init__(self, multi: Multi, *, title_body: bool = True) -> None:
        """``title_body``: the collection has ``title_body_pair`` (one written before it had not:
        its pairs count once per article until it is rebuilt)."""
        self._multi = multi
        self._fields = ("pair", "title_body_pair") if title_body else ("pair",)
        self._known: LRUCache[str, int] = LRUCache(PAIR_CACHE)
        self._lock = threading.Lock()

    def get(self, pairs: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(pairs))
        out: dict[str, int] = {}
        missing: list[str] = []
        with self._lock:
            for p in wanted:
                n = self._known.get(p)
                if n is None:
                    missing.append(p)
                else:
                    out[p] = n
        per = len(self._fields)
        for start in range(0, len(missing), BATCH // per):
            chunk = missing[start:start + BATCH // per]
            results = self._multi([{"q": "*", "filter_by": f"{field}:=[{pair_token(p)}]", "per_page": 0}
                                   for p in chunk for field in self._fields])
            found = [int(r.get("found", 0)) for r in results]
            counts = {p: sum(found[per * i:per * i + per]) for i, p in enumerate(chunk)}
            out.update(counts)
            with self._lock:
                for p, n in counts.items():
                    self._known[p] = n
        return out


class ClusterLexicon:
    """``index.spelling.TermStats`` over the cluster, for one query."""

    __slots__ = ("_vocabulary", "_pairs", "_df", "_assume")

    def __init__(self, vocabulary: Callable[[], Vocabulary], pairs: PairCounts) -> None:
        self._vocabulary = vocabulary
        self._pairs = pairs
        self._df: dict[str, int] = {}
        self._assume = False

    @contextmanager
    def assuming_pairs(self) -> Iterator[None]:
        """Every pair not asked for yet counts as present (``df`` 1), without asking: for a query
        whose clauses only need to know whether a pair exists, and match nothing where it does
        not (the plan's first step, ``index.typesense.search``)."""
        self._assume = True
        try:
            yield
        finally:
            self._assume = False

    def prefetch(self, pairs: Iterable[str]) -> None:
        """Ask for these pairs' frequencies now, in as few round trips as possible."""
        self._df.update(self._pairs.get(p for p in pairs if p not in self._df))

    def df(self, kind: str, term: str) -> int:
        if kind == "folded":
            return self._vocabulary().counts.get(term, 0)
        if kind != "pair":
            raise ValueError(f"no frequencies of {kind} terms in the cluster engine")
        n = self._df.get(term)
        if n is None:
            if self._assume:
                return 1
            n = self._df[term] = self._pairs.get([term])[term]
        return n

    def known(self, syllable: str) -> bool:
        return syllable in self._vocabulary().counts

