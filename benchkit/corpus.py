"""Where the shared corpus and the benchmarks' index live, and reading the corpus.

The corpus is read-only data beside the repository (``../shared/corpus/vntc.jsonl.gz``), never
copied into it; every script finds it through ``CORPUS`` here, and the benchmarks share one index
built by ``scripts/bench_index.py`` (``BENCH_INDEX``).
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from index.article import Article
from index.cleanup import clean_line
from index.readers import ReadError, read_sources

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "vntc.jsonl.gz"
CORPUS_ARTICLES = 65_553  # articles in that file: the data set's size, not a measurement
BENCH_INDEX = REPO_ROOT / "var" / "bench-index"


def require_corpus() -> Path:
    """The shared corpus, or exit with a message saying where it was expected."""
    if not CORPUS.is_file():
        sys.exit(f"error: corpus not found at {CORPUS}\n"
                 "(expected the read-only shared data beside the repository: ../shared/corpus/vntc.jsonl.gz)")
    return CORPUS


def corpus_records(limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The first ``limit`` JSON records of the corpus as they are in the file (lines that are not
    a JSON object are skipped). Exits with a message when the corpus is missing."""
    with gzip.open(require_corpus(), "rt", encoding="utf-8") as handle:
        records = (_record(line) for line in handle)
        yield from itertools.islice((r for r in records if r is not None), limit)


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def corpus_titles(limit: int | None = None) -> list[str]:
    """Titles of the first ``limit`` corpus records, cleaned as the readers store them."""
    titles = (clean_line(str(r.get("title") or "")) for r in corpus_records())
    return list(itertools.islice((t for t in titles if t), limit))


def iter_articles(limit: int | None = None, errors: list[ReadError] | None = None) -> Iterator[Article]:
    """The first ``limit`` Articles of the corpus through the project's reader (so titles and
    bodies are what gets indexed); the reader's errors are appended to ``errors``."""
    articles = 0
    for item in read_sources([str(require_corpus())]):
        if not isinstance(item, Article):
            if errors is not None:
                errors.append(item)
            continue
        yield item
        articles += 1
        if limit is not None and articles >= limit:
            return


SYNTHETIC_WORDS = ("hội nghị tổng kết công tác năm tỉnh Đắk Nông phát triển kinh tế xã hội văn hóa "
                   "giáo dục y tế giao thông nông nghiệp du lịch thể thao bóng đá học sinh giá vàng "
                   "thị trường").split()


def corpus_articles(synthetic: bool, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` article records for ``searchsvc index``: the corpus's first ones (titles cleaned
    as the reader stores them, so checks can compare titles), or generated ones when ``synthetic``
    or when the corpus is missing."""
    if not synthetic and CORPUS.is_file():
        fields = ("id", "title", "body", "category", "published", "source")
        return [{**{k: d[k] for k in fields}, "title": clean_line(d["title"])} for d in corpus_records(count)]
    rng = random.Random(seed)

    def words(n: int) -> str:
        return " ".join(rng.choice(SYNTHETIC_WORDS) for _ in range(n))

    return [{"id": f"syn-{i}", "title": words(8), "body": "\n\n".join(words(80) for _ in range(5)),
             "category": rng.choice(["Thời sự", "Kinh tế", "Thể thao"]), "published": "2020-01-01"}
            for i in range(count)]  # fmt: skip


def write_jsonl(path: Path, articles: Iterable[dict[str, Any]]) -> Path:
    """``articles`` one JSON object a line (UTF-8 kept as is), as ``searchsvc index`` reads them."""
    with path.open("w", encoding="utf-8") as f:
        for a in articles:
            f.write(json.dumps(a, ensure_ascii=False) + "\n")
    return path
