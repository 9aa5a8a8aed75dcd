"""Building small real indexes in tests (no mocks: the real readers' Article, builder and engine)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from index.article import VN_TZ, Article
from index.builder import index_articles
from index.engine import WhooshEngine

SHARED = Path(__file__).resolve().parents[2] / "shared"


def article(i: int | str, title: str, body: str | list[str], category: str = "Thời sự", *,
            published: datetime | None = None, views: int | None = None, source: str | None = None,
            captions: list[str] | None = None) -> Article:
    paragraphs = [body] if isinstance(body, str) else body
    number = str(i).split("-")[-1]  # "x-3" is published three days after the first article
    day = int(number) if number.isdigit() else 0
    return Article(
        id=str(i), title=title, body=paragraphs, category=category,
        published=published or datetime(2020, 1, 1, 8, 0, tzinfo=VN_TZ) + timedelta(days=day),
        views=views, source=source, captions=captions or [],
    )


def two_sections(n: int) -> list[Article]:
    """``n`` articles in each of two categories, Thời sự (``ts-i``) and Thể thao (``tt-i``), a day
    apart from 1 March 2021: what the cache tests publish into and correct."""
    start = datetime(2021, 3, 1, 8, 0, tzinfo=VN_TZ)
    items = []
    for i in range(n):
        items.append(article(f"ts-{i}", f"Quốc hội họp phiên {i}", f"Quốc hội thảo luận dự luật số {i}.",
                             "Thời sự", published=start + timedelta(days=i)))
        items.append(article(f"tt-{i}", f"Bóng đá vòng {i}", f"Trận bóng đá vòng {i} kết thúc hòa.",
                             "Thể thao", published=start + timedelta(days=i, hours=1)))
    return items


def build(index_dir: Path, articles: list[Article], **kwargs) -> WhooshEngine:
    """Index ``articles`` and open an engine on them. The caller closes it (``with build(...) as
    engine:``, or ``engine.close()`` after a fixture's ``yield``): its searchers hold the index's
    segment files open, and warnings are errors here."""
    index_articles(index_dir, articles, procs=1, **kwargs)
    return WhooshEngine.open(index_dir)


def open_files_under(path: Path) -> int:
    """How many files under ``path`` this process holds open (what an engine's searchers hold)."""
    targets = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            pass
    return sum(target.startswith(f"{path}{os.sep}") for target in targets)


@contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` ("2m") mounted at ``mount`` (created), to fill a disk for real; skips the
    test where mounting needs a root this run does not have. Unmounted lazily on the way out."""
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
