"""The Whoosh schema: which fields exist, and the analyzer that feeds them from ``index.analysis``.

Design (measured on the corpus, see docs/benchmarks.md): body fields dominate indexing cost, so
every text field stores term frequencies only, no positions. Adjacency, which is what phrases and
multi-syllable words need, comes from the ``*_pair`` fields (one term per adjacent syllable pair),
whose postings are short and make the first matching tier fast. Three views of each text:

* ``*_exact``: canonical syllables with their marks, for ranking exact diacritics first;
* ``*_folded``: marks stripped, đ -> d, for matching whatever the reader typed;
* ``*_pair``: adjacent folded syllables ("hoi nghi"), never across punctuation;
* ``body_bridge``: the folded syllables on either side of punctuation or a break ("hien voi" in
  "thực hiện. Với"), which only the search for copied passages reads (``index.passages``).

Titles have their own fields so they can weigh more than bodies (BM25F field boosts in
``index.search``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from whoosh.analysis import Token as WhooshToken
from whoosh.analysis import Tokenizer
from whoosh.columns import VarBytesColumn
from whoosh.fields import COLUMN, DATETIME, ID, NUMERIC, STORED, TEXT, Schema

from index.analysis import Token, analyze, bridges, fold, nfc, pairs

KINDS = ("exact", "folded", "pair", "bridge")


class _LastAnalysis(threading.local):
    """A one-slot cache: the three fields of a text analyse the same string; do the work once.

    One slot per thread: a shared slot could be overwritten by another thread between the check
    and the read, handing one document's terms to another's fields."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.tokens: list[Token] = []
        self.pairs: list[str] = []


_last = _LastAnalysis()


def analysis_of(text: str) -> tuple[list[Token], list[str]]:
    """(tokens, pair terms) of ``text``, analysed once for the fields that index it in turn."""
    last = _last
    if last.text is not text and last.text != text:
        tokens = analyze(nfc(text))
        last.text, last.tokens, last.pairs = text, tokens, pairs(tokens)
    return last.tokens, last.pairs


class SyllableAnalyzer(Tokenizer):  # type: ignore[misc]  # Whoosh's classes are untyped (mypy skips whoosh.*)
    """A Whoosh analyzer yielding one of the three views (exact, folded, pair) of a text."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(kind)
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SyllableAnalyzer) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash(("SyllableAnalyzer", self.kind))

    def terms(self, text: str) -> list[str]:
        tokens, pair_terms = analysis_of(text)
        if self.kind == "pair":
            return pair_terms
        if self.kind == "bridge":
            return bridges(tokens)
        if self.kind == "exact":
            # Only syllables written with marks: exact terms serve to rank what the reader typed
            # *with* marks above folded-only matches, and a query syllable without marks never
            # looks in the exact fields. About a third of the postings saved.
            return [t.exact for t in tokens if t.exact != t.folded]
        return [t.folded for t in tokens]

    def __call__(self, value: str, positions: bool = False, chars: bool = False, keeporiginal: bool = False,
                 removestops: bool = True, start_pos: int = 0, start_char: int = 0, mode: str = "",
                 **kwargs: Any) -> Iterator[WhooshToken]:
        tok = WhooshToken(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for i, term in enumerate(self.terms(value)):
            tok.text = term
            tok.boost = 1.0
            tok.stopped = False
            if positions:
                tok.pos = start_pos + i
            yield tok


def _text(kind: str) -> TEXT:
    return TEXT(analyzer=SyllableAnalyzer(kind), phrase=False)


def build_schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        title_exact=_text("exact"),
        title_folded=_text("folded"),
        title_pair=_text("pair"),
        body_exact=_text("exact"),
        body_folded=_text("folded"),
        body_pair=_text("pair"),
        body_bridge=_text("bridge"),
        category_slug=ID(stored=True, sortable=True),
        source_key=ID(sortable=True),
        published=DATETIME(sortable=True),
        year=ID(sortable=True),
        month=ID(sortable=True),
        views=NUMERIC(sortable=True, bits=64, signed=False),
        title_column=COLUMN(VarBytesColumn()),  # titles read in one pass to build suggestions
        doc=STORED(),  # the whole article as JSON: the service reads articles from the index
    )


def source_key(source: str) -> str:
    """The ``source_key`` term of a source name: the index stores it and a source filter looks it
    up, so both sides must make it the same way; case- and diacritic-insensitive."""
    return " ".join(fold(source.lower()).split())


TEXT_FIELDS = {
    ("title", "exact"): "title_exact",
    ("title", "folded"): "title_folded",
    ("title", "pair"): "title_pair",
    ("body", "exact"): "body_exact",
    ("body", "folded"): "body_folded",
    ("body", "pair"): "body_pair",
}
