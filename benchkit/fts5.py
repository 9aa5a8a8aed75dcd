"""The SQLite FTS5 baseline the search benchmarks compare with (bench_index, eval_relevance, bench_search).

What the baseline is: one FTS5 table with ``title`` and ``body`` columns and the stock tokenizer
``unicode61 remove_diacritics 2`` (case folding and removal of every combining mark, including the
double marks of "ệ", "ở"). ``unicode61`` does not fold "đ" (it is a letter of its own, with no
decomposition), so "đ"/"Đ" (and the look-alikes "ð", "Ð", "Ɖ", "ɖ") are mapped to "d" by hand before
inserting and before querying. Ranking is ``bm25(t, 3.0, 1.0)``: titles weigh 3, as in the Whoosh
plan. Article ids live in a side table keyed by the FTS rowid so the FTS columns are only title and
body.

A query is the folded syllables of the reader's text as an implicit AND of double-quoted tokens
(``"hoi" "nghi"``), so no reader input can be an FTS5 syntax error. A quoted phrase in the reader's
query becomes an FTS5 phrase (``"hoi nghi"``). There is no fuzzy matching and no fallback: a query
returning nothing scores 0.

The database is built once to ``var/bench-fts5.sqlite`` and reused while it was built from the same
number of articles of the same corpus file (a ``meta`` table records both; ``bench_index.py``
always rebuilds it).
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from benchkit.corpus import CORPUS_ARTICLES, REPO_ROOT, iter_articles, require_corpus
from index.article import VN_TZ, Article

DEFAULT_DB = REPO_ROOT / "var" / "bench-fts5.sqlite"
TOKENIZE = "unicode61 remove_diacritics 2"
BM25 = "bm25(t, 3.0, 1.0)"

_D_MAP = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ɖ": "d", "Ɖ": "D"})
_WORD_RE = re.compile(r"\w+")
_PHRASE_RE = re.compile(r'"([^"]*)"?')


def fts_text(text: str) -> str:
    """What goes into FTS5: NFC with đ mapped to d (unicode61 folds everything else)."""
    return unicodedata.normalize("NFC", text).translate(_D_MAP)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFC", text).translate(_D_MAP))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def fts_query(text: str) -> str | None:
    """Reader text -> FTS5 MATCH expression: quoted phrases kept, other words an implicit AND.

    Every token is double-quoted (FTS5 strings), so operators, hyphens, colons and parentheses typed
    by a reader are never syntax errors. Returns None when nothing searchable is left.
    """
    parts: list[str] = []
    rest: list[str] = []
    last = 0
    for m in _PHRASE_RE.finditer(text):
        rest.append(text[last:m.start()])
        last = m.end()
        words = _WORD_RE.findall(_fold(m.group(1)))
        if words:
            parts.append('"' + " ".join(words) + '"')
    rest.append(text[last:])
    words = [w for chunk in rest for w in _WORD_RE.findall(_fold(chunk))]
    parts = [f'"{w}"' for w in words] + parts
    return " ".join(parts) if parts else None


@dataclass
class BuildReport:
    articles: int
    seconds: float
    read_seconds: float  # time spent inside the corpus reader (gzip, JSON, cleanup)
    size_bytes: int
    reused: bool = False


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.Error:
        return {}


def _corpus_stamp() -> str:
    st = require_corpus().stat()
    return f"{st.st_size}:{int(st.st_mtime)}"


def existing(db_path: Path, articles: int) -> bool:
    """Whether ``db_path`` is a complete db built from the first ``articles`` articles of this corpus."""
    if not db_path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            meta = _meta(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return (
        meta.get("complete") == "1"
        and meta.get("corpus") == _corpus_stamp()
        and meta.get("articles") == str(articles)
    )


def build(db_path: Path, limit: int | None, articles: Iterable[Article] | None = None,
          progress: bool = True) -> BuildReport:
    """(Re)build the FTS5 db from the first ``limit`` corpus articles; written to a temp file, renamed."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_suffix(".sqlite.tmp")
    for p in (tmp, Path(str(tmp) + "-journal")):
        if p.exists():
            p.unlink()
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(title, body, tokenize = '{TOKENIZE}')")
    conn.execute("CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, title TEXT NOT NULL, "
                 "category_slug TEXT NOT NULL, published INTEGER NOT NULL, year TEXT NOT NULL, month TEXT NOT NULL)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    source = iter(articles if articles is not None else iter_articles(limit))
    start = time.perf_counter()
    read_seconds = 0.0
    n = 0
    batch_t: list[tuple[int, str, str]] = []
    batch_d: list[tuple[int, str, str, str, int, str, str]] = []

    def flush() -> None:
        conn.executemany("INSERT INTO t (rowid, title, body) VALUES (?, ?, ?)", batch_t)
        conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)", batch_d)
        batch_t.clear()
        batch_d.clear()

    conn.execute("BEGIN")
    while True:
        t0 = time.perf_counter()
        try:
            art = next(source)
        except StopIteration:
            read_seconds += time.perf_counter() - t0
            break
        read_seconds += time.perf_counter() - t0
        n += 1
        body = "\n\n".join([*art.body, *art.captions])
        batch_t.append((n, fts_text(art.title), fts_text(body)))
        local = art.published.astimezone(VN_TZ)
        batch_d.append((n, art.id, art.title, art.category_slug, int(art.published.timestamp()),
                        f"{local.year:04d}", f"{local.year:04d}-{local.month:02d}"))
        if len(batch_t) >= 1000:
            flush()
        if progress and n % 10_000 == 0:
            print(f"  fts5: {n:,} articles, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    flush()
    conn.execute("CREATE INDEX docs_published ON docs (published)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("articles", str(n)),
        ("corpus", _corpus_stamp()), ("tokenize", TOKENIZE), ("complete", "1"),
    ])
    conn.commit()
    conn.close()
    seconds = time.perf_counter() - start
    os.replace(tmp, db_path)
    return BuildReport(n, seconds, read_seconds, db_path.stat().st_size)


def ensure(db_path: Path, articles: int) -> BuildReport:
    """Reuse ``db_path`` if it holds the first ``articles`` articles of this corpus, else build it."""
    if existing(db_path, articles):
        return BuildReport(articles, 0.0, 0.0, db_path.stat().st_size, reused=True)
    print(f"building the FTS5 baseline {db_path} from the first {articles:,} articles ...", file=sys.stderr, flush=True)
    limit = None if articles >= CORPUS_ARTICLES else articles
    return build(db_path, limit)


class Fts5:
    """A read connection to the baseline db."""

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)

    def search(self, text: str, limit: int = 10, with_snippets: bool = False) -> list[tuple[str, str]]:
        """(id, title) of the best ``limit`` articles; [] when the query is empty or matches nothing."""
        expr = fts_query(text)
        if expr is None:
            return []
        if with_snippets:
            sql = ("SELECT d.id, d.title, snippet(t, 1, '<b>', '</b>', '…', 24) "
                   "FROM t JOIN docs d ON d.rowid = t.rowid "
                   f"WHERE t MATCH ? ORDER BY {BM25} LIMIT ?")
        else:
            sql = (f"SELECT d.id, d.title FROM t JOIN docs d ON d.rowid = t.rowid "
                   f"WHERE t MATCH ? ORDER BY {BM25} LIMIT ?")
        try:
            return [(r[0], r[1]) for r in self.conn.execute(sql, (expr, limit))]
        except sqlite3.OperationalError as err:  # should not happen with quoted tokens; count as no result
            print(f"fts5 error for {expr!r}: {err}", file=sys.stderr)
            return []

    def count(self, text: str) -> int:
        expr = fts_query(text)
        if expr is None:
            return 0
        return int(self.conn.execute("SELECT count(*) FROM t WHERE t MATCH ?", (expr,)).fetchone()[0])

    def close(self) -> None:
        self.conn.close()
