"""Building small real indexes in tests (no mocks: the real readers' Article, builder and engine)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from index.article import VN_TZ, Article
from index.builder import index_articles
from index.engine import WhooshEngine

SHARED = Path(__file__).resolve().parents[2] / "shared"


def article(i: int | str, title: str, body: str | list[str], category: str = "Thời sự", *,
            published: datetime | None = None, views: int | None = None, source: str | None = None,
            captions: list[str] | None = None) -> Article:
    paragraphs = [body] if isinstance(body, str) else body
    return Article(
        id=str(i), title=title, body=paragraphs, category=category,
        published=published or datetime(2020, 1, 1, 8, 0, tzinfo=VN_TZ) + timedelta(days=int(str(i).split("-")[-1]) if str(i).split("-")[-1].isdigit() else 0),
        views=views, source=source, captions=captions or [],
    )


def build(index_dir: Path, articles: list[Article], **kwargs) -> WhooshEngine:
    index_articles(index_dir, articles, procs=1, **kwargs)
    return WhooshEngine.open(index_dir)
