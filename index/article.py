"""The one article type every reader produces and every consumer (index, service, feeds) reads.

Readers are responsible for cleaning text (see ``index.cleanup``) before building an ``Article``;
the model itself only enforces the invariants that every consumer relies on: a non-empty id,
title and body, and a timezone-aware ``published`` datetime.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

_D_STROKE = str.maketrans({"đ": "d", "Đ": "d", "Ð": "d", "ð": "d", "Ɖ": "d", "ɖ": "d"})


def slugify(label: str) -> str:
    """ASCII, lowercase, hyphen-separated slug: "Chính trị Xã hội" -> "chinh-tri-xa-hoi".

    NFD + dropping combining marks removes Vietnamese tone and vowel marks, but "đ" is a letter
    of its own (it has no decomposition), so it is mapped by hand first.
    """
    text = unicodedata.normalize("NFD", label.translate(_D_STROKE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def as_vietnam_time(value: datetime | date) -> datetime:
    """A timezone-aware datetime; naive or date-only values are read as Asia/Ho_Chi_Minh."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0, 0))
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        value = value.replace(tzinfo=VN_TZ)
    return value


@dataclass(slots=True)
class Article:
    id: str
    title: str
    body: list[str]
    category: str
    published: datetime
    category_path: list[str] = field(default_factory=list)
    category_slug: str = ""
    views: int | None = None
    source: str | None = None
    url: str | None = None
    captions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise ValueError("article has no id")
        if not self.title or not self.title.strip():
            raise ValueError("article has no title")
        self.body = [p for p in self.body if p and p.strip()]
        if not self.body:
            raise ValueError("article has no body")
        self.category = (self.category or "").strip() or "Khác"
        if not self.category_path:
            self.category_path = [self.category]
        if not self.category_slug:
            self.category_slug = slugify(self.category) or "khac"
        self.published = as_vietnam_time(self.published)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (cached results, related lists) as its fields, restored without
        ``__post_init__`` (the values are already clean): the slotted dataclass's own state
        methods call ``dataclasses.fields`` on every article."""
        return (_restore_article, tuple(getattr(self, name) for name in _ARTICLE_FIELDS))

    @property
    def body_text(self) -> str:
        """Paragraphs joined by a blank line, the way the corpus stores them."""
        return "\n\n".join(self.body)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Article:
        """Inverse of ``to_dict`` (for articles stored in the index: already clean)."""
        body = d.get("body") or ""
        return cls(
            id=d["id"],
            title=d["title"],
            body=body.split("\n\n") if isinstance(body, str) else list(body),
            category=d.get("category") or "",
            published=datetime.fromisoformat(d["published"]),
            category_path=list(d.get("category_path") or []),
            category_slug=d.get("category_slug") or "",
            views=d.get("views"),
            source=d.get("source"),
            url=d.get("url"),
            captions=list(d.get("captions") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the JSON Lines input format, plus the derived fields)."""
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body_text,
            "category": self.category,
            "category_slug": self.category_slug,
            "category_path": list(self.category_path),
            "published": self.published.isoformat(),
            "views": self.views,
            "source": self.source,
            "url": self.url,
            "captions": list(self.captions),
        }


_ARTICLE_FIELDS = tuple(f.name for f in fields(Article))
_ARTICLE_SETTERS = tuple(vars(Article)[name].__set__ for name in _ARTICLE_FIELDS)


def _restore_article(*values: Any) -> Article:
    """An ``Article`` from ``Article.__reduce__``'s values, set as they were."""
    article: Article = object.__new__(Article)
    for setter, value in zip(_ARTICLE_SETTERS, values, strict=True):
        setter(article, value)
    return article
