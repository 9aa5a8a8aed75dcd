"""The narrow interface between the search library and its callers (the service, the feeds, the CLI).

Callers build a ``SearchRequest`` and get a ``SearchResult``; they never see Whoosh. Another engine
could serve behind ``SearchEngine`` without the service changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from index.article import VN_TZ, Article
from index.readers import MAX_YEAR, MIN_YEAR

SORTS = ("relevance", "newest", "oldest", "views")
MAX_PER_PAGE = 100
MAX_RESULT_DEPTH = 10_000
MAX_QUERY_CHARS = 256

# The calendar days a search may filter on, the one range every caller checks against (the HTTP
# parameters, the CLI, ``SearchRequest`` itself). They are the years the readers let into the
# index, so a filter outside them could select nothing anyway; and far outside them the engine's
# conversion of a Vietnamese day to its UTC start overflows (years 1 and 9999).
MIN_DATE = date(MIN_YEAR, 1, 1)
MAX_DATE = date(MAX_YEAR, 12, 31)

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


class EngineUnavailable(RuntimeError):
    """The engine cannot answer now (every node of the cluster engine down, lagging or timing
    out): the caller answers 503 and the reader retries; never a reader's mistake."""


class SettingError(ValueError):
    """A setting (a ``SEARCHSVC_*`` variable, a configuration value) that cannot be used.

    The message names the setting so an operator can fix it; the CLI prints it on one line.
    ``searchsvc.config.ConfigError`` is one, so both the library's and the service's settings
    reach the same handler.
    """


def check_date(name: str, value: date | None) -> None:
    """Raise ``SearchError("bad_date")`` unless ``value`` is None or a day MIN_DATE..MAX_DATE."""
    if value is None:
        return
    day = value.date() if isinstance(value, datetime) else value
    if not MIN_DATE <= day <= MAX_DATE:
        raise SearchError("bad_date", f"'{name}' must be a day from {MIN_DATE} to {MAX_DATE}, not {day}")


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
    # Feeds and embeds show plain titles and no "did you mean": skipping both saves a search feed
    # the title analysis of every hit and the suggestion's extra lookups.
    highlight_titles: bool = True  # False: Hit.title_spans is []
    spelling_suggestion: bool = True  # False: SearchResult.suggestion is None

    def __setattr__(self, name: str, value: object) -> None:
        # Checked on every assignment, construction included, so no request the engine receives
        # carries a day its date filter cannot convert (see MIN_DATE).
        if (name == "date_from" or name == "date_to") and value is not None:
            if not isinstance(value, date):
                raise TypeError(f"SearchRequest.{name} must be a date, not {type(value).__name__}")
            check_date("from" if name == "date_from" else "to", value)
        object.__setattr__(self, name, value)


@dataclass(slots=True, frozen=True)
class Span:
    """A piece of text; ``hit`` marks a matched syllable. Callers escape ``text`` themselves."""

    text: str
    hit: bool = False

    def __reduce__(self) -> tuple[type[Span], tuple[str, bool]]:
        # Results are kept pickled (index.engine): the slotted dataclass's own state methods call
        # ``dataclasses.fields`` for every span, most of pickling a result (0.49 against 0.21 ms).
        return (Span, (self.text, self.hit))


@dataclass(slots=True)
class Hit:
    article: Article
    score: float
    title_spans: list[Span]
    snippet: list[Span]

    def __reduce__(self) -> tuple[type[Hit], tuple[Article, float, list[Span], list[Span]]]:
        return (Hit, (self.article, self.score, self.title_spans, self.snippet))  # as Span's


@dataclass(slots=True, frozen=True)
class FacetValue:
    value: str  # label (category), "2005" (year) or "2005-03" (month)
    slug: str  # category slug; same as value for dates
    count: int

    def __reduce__(self) -> tuple[type[FacetValue], tuple[str, str, int]]:
        return (FacetValue, (self.value, self.slug, self.count))  # as Span's


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


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the index between two generations: the ids of the articles added, corrected
    or removed, and the category slugs they were in before or are in now.

    ``everything``: the change is not known in detail (another index was switched in, or the older
    generation is no longer remembered), so every answer must be treated as changed. Re-writing an
    article with the same content (a merge of segments, an identical re-index) is no change.
    """

    ids: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    everything: bool = False
    # The months of publication ("YYYY-MM", Asia/Ho_Chi_Minh) the changed articles were in before
    # or are in now (what a month's sitemap lists). None: not known (a change recorded before
    # months were), so every month counts as changed.
    months: frozenset[str] | None = frozenset()

    def __bool__(self) -> bool:
        return self.everything or bool(self.ids)

    def __or__(self, other: Changes) -> Changes:
        if self.everything or other.everything:
            return EVERYTHING
        months = None if self.months is None or other.months is None else self.months | other.months
        return Changes(self.ids | other.ids, self.categories | other.categories, months=months)

    def touches(self, shown: Shows) -> bool:
        """Whether an answer that shows ``shown`` may read differently after these changes."""
        if not self:
            return False
        if self.everything or shown.any_change:
            return True
        if shown.months and (self.months is None or not self.months.isdisjoint(shown.months)):
            return True
        return not (self.ids.isdisjoint(shown.ids) and self.categories.isdisjoint(shown.categories))


EVERYTHING = Changes(everything=True)
NOTHING = Changes()


@dataclass(frozen=True, slots=True)
class Shows:
    """What an answer (a page, an API answer, a feed) is made of, so that a cache can tell whether a
    commit changed it: the articles it shows by id, the categories whose lists or counts it shows,
    and ``any_change`` for an answer that any change may alter (a search, the newest articles of
    all categories, every category's count). The default is the cautious one."""

    ids: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    any_change: bool = True
    months: frozenset[str] = frozenset()  # months of publication whose lists it shows (a sitemap)

    @classmethod
    def article(cls, article_id: str) -> Shows:
        return cls(ids=frozenset((article_id,)), any_change=False)

    @classmethod
    def category(cls, slug: str) -> Shows:
        return cls(categories=frozenset((slug,)), any_change=False)

    @classmethod
    def month(cls, month: str) -> Shows:
        """The articles published in ``month`` ("YYYY-MM", Vietnamese time), whatever their ids."""
        return cls(months=frozenset((month,)), any_change=False)


def month_of(moment: datetime) -> str:
    """The month of publication of an aware datetime, "YYYY-MM" in Asia/Ho_Chi_Minh (the month
    facet's values, ``Changes.months`` and the sitemaps' months all read it this way)."""
    local = moment.astimezone(VN_TZ)
    return f"{local.year:04d}-{local.month:02d}"


@dataclass(frozen=True, slots=True)
class Dated:
    """An article's id and publication time, without the article: what a listing by date (a
    month's sitemap) needs, at a fraction of the cost of reading articles."""

    id: str
    published: datetime  # aware; whole seconds on the cluster engine (its stored precision)


ANY_CHANGE = Shows()


class SearchEngine(Protocol):
    def search(self, request: SearchRequest) -> SearchResult: ...

    def suggest(self, prefix: str, limit: int = 10) -> list[str]: ...

    def get_article(self, article_id: str) -> Article | None: ...

    def categories(self) -> list[FacetValue]: ...

    def related(self, article_id: str, limit: int = 5) -> list[Article]:
        """Up to ``limit`` (1..20, else ``SearchError("bad_limit")``) articles most like
        ``article_id``, best first, without the article itself or re-posts of its text
        (``index.related``); [] when the index does not hold the id. Cached per generation."""
        ...

    def latest(self, category_slug: str | None = None, limit: int = 50, offset: int = 0) -> list[Article]: ...

    def published_between(self, start: datetime, end: datetime, limit: int, offset: int = 0) -> list[Dated]:
        """Articles published in [start, end) (aware datetimes), oldest first, ties by id, from
        ``offset``: ids and dates only. Costs what the range holds, not the whole archive."""
        ...

    @property
    def generation(self) -> str: ...

    @property
    def doc_count(self) -> int: ...

    def changes_between(self, old: str, new: str) -> Changes:
        """What changed from generation ``old`` to generation ``new`` (both seen by this engine);
        ``EVERYTHING`` when the engine cannot tell. Blocking: it may read the index."""
        ...

    def close(self) -> None:
        """Release what the engine holds open (index files): the service calls it on shutdown."""
