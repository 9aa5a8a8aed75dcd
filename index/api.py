"""The narrow interface between the search library and its callers (the service, the feeds, the CLI).

Callers build a ``SearchRequest`` and get a ``SearchResult``; they never see Whoosh. Another engine
could serve behind ``SearchEngine`` without the service changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from index.article import Article

SORTS = ("relevance", "newest", "oldest", "views")
MAX_PER_PAGE = 100
MAX_RESULT_DEPTH = 10_000
MAX_QUERY_CHARS = 256

# Which matching tier answered a query (see index.search for the plan).
TIER_ALL = "all"  # empty query: filters only, newest first
TIER_ADJACENT = "adjacent"  # every unit required, multi-syllable units adjacent
TIER_SYLLABLES = "syllables"  # every syllable required, anywhere
TIER_FUZZY = "fuzzy"  # one edit on folded syllables of 4+ letters
TIER_PARTIAL = "partial"  # best partial match: not every syllable found
TIER_NONE = "none"  # nothing matched at all


class SearchError(ValueError):
    """A request the engine refuses (bad sort, page too deep...): the caller answers 400.

    ``code`` is a stable machine-readable name, ``str(error)`` a message for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class SearchRequest:
    q: str = ""
    categories: list[str] = field(default_factory=list)  # slugs or labels
    sources: list[str] = field(default_factory=list)
    date_from: date | None = None  # inclusive, Asia/Ho_Chi_Minh calendar days
    date_to: date | None = None  # inclusive
    sort: str = "relevance"
    page: int = 1
    per_page: int = 10
    recency_boost: bool = False  # decay the score by age (see index.search)
    snippets: bool = True
    facets: bool = True
    # Feeds and embeds show plain titles and no "did you mean": skipping both saves ~15 % of a
    # 50-item search feed's engine time (title analysis per hit; the suggestion's extra lookups).
    highlight_titles: bool = True  # False: Hit.title_spans is []
    spelling_suggestion: bool = True  # False: SearchResult.suggestion is None


@dataclass(slots=True, frozen=True)
class Span:
    """A piece of text; ``hit`` marks a matched syllable. Callers escape ``text`` themselves."""

    text: str
    hit: bool = False


@dataclass(slots=True)
class Hit:
    article: Article
    score: float
    title_spans: list[Span]
    snippet: list[Span]


@dataclass(slots=True, frozen=True)
class FacetValue:
    value: str  # label (category), "2005" (year) or "2005-03" (month)
    slug: str  # category slug; same as value for dates
    count: int


@dataclass(slots=True)
class SearchResult:
    request: SearchRequest
    query: str  # the query actually run (cut to MAX_QUERY_CHARS)
    total: int
    tier: str
    hits: list[Hit]
    facets: dict[str, list[FacetValue]]  # "category", "year", "month"
    suggestion: str | None = None  # did-you-mean
    notes: list[str] = field(default_factory=list)  # e.g. "query cut to 256 characters"
    partial: bool = False  # True when not every syllable matched (TIER_PARTIAL)


class SearchEngine(Protocol):
    def search(self, request: SearchRequest) -> SearchResult: ...

    def suggest(self, prefix: str, limit: int = 10) -> list[str]: ...

    def get_article(self, article_id: str) -> Article | None: ...

    def categories(self) -> list[FacetValue]: ...

    def latest(self, category_slug: str | None = None, limit: int = 50, offset: int = 0) -> list[Article]: ...

    @property
    def generation(self) -> str: ...

    @property
    def doc_count(self) -> int: ...
