"""Query-string parsing shared by the JSON API and the HTML pages.

Everything a client can send is checked here, before the engine sees it, so that a bad value is a
400 with a stable code instead of an exception deep inside Whoosh. The engine checks its own
limits again (``SearchError``) for callers that do not come through here, such as the CLI; a
refusal that still reaches a handler is a 400 with the engine's code (``engine_calls``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from starlette.datastructures import QueryParams

from index.api import (
    MAX_PER_PAGE,
    MAX_RESULT_DEPTH,
    SORTS,
    SearchError,
    SearchRequest,
    check_date,
)

from .errors import ApiError, ErrorCode, engine_error

MAX_Q_CHARS = 1_000  # longer is refused; the engine itself cuts at MAX_QUERY_CHARS with a note
MAX_FILTER_CHARS = 200
MAX_FILTER_VALUES = 20
MAX_SUGGEST_LIMIT = 20
DEFAULT_SUGGEST_LIMIT = 10
DEFAULT_PER_PAGE = 10  # the API's; the pages pass their own
MAX_PAGE = 1_000_000_000  # what parses as a page number; page_too_deep comes first in practice

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT = re.compile(r"[0-9]{1,9}")
# C0/C1 controls (NUL, escape sequences...) carry no meaning in a query and only cause trouble in
# logs and in the analyzer; tabs and newlines become plain spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def bad(code: ErrorCode, message: str) -> ApiError:
    return ApiError(code, message)


def clean_text(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def parse_q(params: QueryParams, name: str = "q") -> str:
    q = params.get(name, "")
    if len(q) > MAX_Q_CHARS:
        raise bad(ErrorCode.QUERY_TOO_LONG, f"'{name}' is longer than {MAX_Q_CHARS} characters")
    return clean_text(q)


def parse_int(params: QueryParams, name: str, default: int, code: ErrorCode, low: int, high: int) -> int:
    raw = params.get(name, "").strip()
    if raw == "":
        return default
    if not _INT.fullmatch(raw):
        raise bad(code, f"'{name}' must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise bad(code, f"'{name}' must be between {low} and {high}")
    return value


def parse_date(params: QueryParams, name: str) -> date | None:
    raw = params.get(name, "").strip()
    if raw == "":
        return None
    if not _DATE.fullmatch(raw):
        raise bad(ErrorCode.BAD_DATE, f"'{name}' must be a date as YYYY-MM-DD")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise bad(ErrorCode.BAD_DATE, f"'{name}' is not a real calendar date") from None
    try:
        check_date(name, value)  # the engine's range: what parses here, the engine can use
    except SearchError as exc:
        raise engine_error(exc) from None
    return value


def parse_list(params: QueryParams, name: str) -> list[str]:
    """Repeated values (``?category=a&category=b``), blank ones dropped, duplicates folded."""
    values: list[str] = []
    for raw in params.getlist(name):
        value = clean_text(raw)
        if not value:
            continue
        if len(value) > MAX_FILTER_CHARS:
            raise bad(ErrorCode.BAD_PARAMETER, f"'{name}' values are at most {MAX_FILTER_CHARS} characters")
        if value not in values:
            values.append(value)
    if len(values) > MAX_FILTER_VALUES:
        raise bad(ErrorCode.BAD_PARAMETER, f"at most {MAX_FILTER_VALUES} '{name}' values")
    return values


@dataclass(slots=True)
class SearchParams:
    """What the client asked for, validated; ``to_request`` makes the engine's request."""

    q: str
    categories: list[str]
    sources: list[str]
    date_from: date | None
    date_to: date | None
    sort: str
    page: int
    per_page: int

    @property
    def is_empty(self) -> bool:
        """No query and no filter at all: the home page rather than a result list."""
        return not (self.q or self.categories or self.sources or self.date_from or self.date_to)

    def to_request(self, *, snippets: bool = True, facets: bool = True) -> SearchRequest:
        return SearchRequest(
            q=self.q,
            categories=list(self.categories),
            sources=list(self.sources),
            date_from=self.date_from,
            date_to=self.date_to,
            sort=self.sort,
            page=self.page,
            per_page=self.per_page,
            snippets=snippets,
            facets=facets,
        )


def parse_search(params: QueryParams, default_per_page: int = DEFAULT_PER_PAGE) -> SearchParams:
    q = parse_q(params)
    sort = params.get("sort", "").strip() or "relevance"
    if sort not in SORTS:
        raise bad(ErrorCode.BAD_SORT, f"'sort' must be one of: {', '.join(SORTS)}")
    date_from = parse_date(params, "from")
    date_to = parse_date(params, "to")
    if date_from and date_to and date_from > date_to:
        raise bad(ErrorCode.BAD_DATE_RANGE, "'from' must not be after 'to'")
    # Any integer page parses; the depth limit is checked here, on page * per_page, so that a page
    # too deep is a 400 page_too_deep before any search runs (the engine refuses one too, with
    # the same code, for callers that do not come through here).
    page = parse_int(params, "page", 1, ErrorCode.BAD_PAGE, 1, MAX_PAGE)
    per_page = parse_int(params, "per_page", default_per_page, ErrorCode.BAD_PER_PAGE, 1, MAX_PER_PAGE)
    if page * per_page > MAX_RESULT_DEPTH:
        raise bad(ErrorCode.PAGE_TOO_DEEP, f"only the first {MAX_RESULT_DEPTH} results can be paged through")
    return SearchParams(
        q=q,
        categories=parse_list(params, "category"),
        sources=parse_list(params, "source"),
        date_from=date_from,
        date_to=date_to,
        sort=sort,
        page=page,
        per_page=per_page,
    )
