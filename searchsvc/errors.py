"""One error shape for the whole service: JSON under ``/api``, an HTML page everywhere else.

Handlers raise ``ApiError`` (or Starlette's ``HTTPException``) and never build error responses
themselves, so a 400 from parameter parsing, a 404 from the router and a 503 from a missing index
all come out the same way: ``{"error": {"code", "message"}}`` or the Vietnamese error page.

Every code is a member of ``ErrorCode``, the one registry: the member carries its HTTP status and
the text its error page shows, and ``ApiError``, ``json_error`` and ``error_response`` accept
nothing else, so a code cannot be typed in loose. ``searchsvc/openapi.json`` documents exactly
these codes (``tests/test_error_registry.py`` checks both ways, and raises each one for real).
The engine (``index``, which knows nothing of HTTP) refuses requests with plain code strings;
``engine_error`` maps them here and fails loudly on one the registry lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Self

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.templating import Jinja2Templates

from index.api import MAX_DATE, MIN_DATE, SearchError

API_PREFIX = "/api/"


class ErrorCode(StrEnum):
    """The stable machine-readable codes, each with its HTTP status and its page message.

    A ``StrEnum``: a member is its value, so ``{"code": ErrorCode.BAD_SORT}`` serialises as
    ``"bad_sort"``, as it always has. ``status`` is None only for ``HTTP_ERROR``, which takes the
    status of the Starlette exception it stands for. ``page_message`` is what the HTML error page
    says (None: the message of the status's generic code, see ``GENERIC_CODES``, else the English
    message). The numbers in the page messages are the code's limits (checked by the tests).
    """

    _value_: str
    status: int | None
    page_message: str | None

    def __new__(cls, value: str, status: int | None, page_message: str | None = None) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.page_message = page_message
        return member

    # 400: the request cannot be answered as asked
    BAD_REQUEST = "bad_request", 400
    BAD_SORT = "bad_sort", 400, "Cách sắp xếp không hợp lệ."
    BAD_DATE = (
        "bad_date", 400, f"Ngày phải có dạng YYYY-MM-DD, từ {MIN_DATE.year} đến {MAX_DATE.year}, ví dụ 2014-06-27."
    )
    BAD_DATE_RANGE = "bad_date_range", 400, "Ngày bắt đầu phải trước ngày kết thúc."
    BAD_PAGE = "bad_page", 400, "Số trang phải là số nguyên dương."
    BAD_PER_PAGE = "bad_per_page", 400, "Số kết quả mỗi trang phải từ 1 đến 100."
    BAD_LIMIT = "bad_limit", 400
    BAD_PARAMETER = "bad_parameter", 400, "Tham số không hợp lệ."
    BAD_THEME = "bad_theme", 400
    PAGE_TOO_DEEP = "page_too_deep", 400, "Chỉ xem được 10.000 kết quả đầu tiên; hãy thu hẹp tìm kiếm."
    QUERY_TOO_LONG = "query_too_long", 400, "Từ khóa quá dài (tối đa 1.000 ký tự)."
    RSS_NOT_PAGED = "rss_not_paged", 400
    CORS_PREFLIGHT_REFUSED = "cors_preflight_refused", 400
    # the admin API (searchsvc.routes.admin): an article the readers' rules refuse, its id
    # differing from the path's, an API key sent in the query string
    BAD_ARTICLE = "bad_article", 400
    ARTICLE_TOO_LARGE = "article_too_large", 400
    ID_MISMATCH = "id_mismatch", 400
    KEY_IN_QUERY = "key_in_query", 400
    # 401/403: the admin API's keys (searchsvc.http.auth)
    UNAUTHORIZED = "unauthorized", 401
    INSUFFICIENT_SCOPE = "insufficient_scope", 403
    # 404: nothing there
    NOT_FOUND = "not_found", 404, "Trang bạn tìm không tồn tại hoặc đã bị chuyển đi."
    ARTICLE_NOT_FOUND = "article_not_found", 404, "Không tìm thấy bài viết này trong kho lưu trữ."
    CATEGORY_NOT_FOUND = "category_not_found", 404, "Không có chuyên mục này."
    PAGE_NOT_FOUND = "page_not_found", 404
    # 410: it was there, and was unpublished (the publishing journal keeps a tombstone)
    ARTICLE_GONE = "article_gone", 410, "Bài viết này đã bị gỡ khỏi kho lưu trữ."
    # what the HTTP layers refuse
    METHOD_NOT_ALLOWED = "method_not_allowed", 405
    BODY_TOO_LARGE = "body_too_large", 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415
    RATE_LIMITED = "rate_limited", 429, "Bạn gửi quá nhiều yêu cầu; vui lòng thử lại sau."
    # the service itself
    INTERNAL_ERROR = "internal_error", 500, "Đã có lỗi xảy ra. Vui lòng thử lại sau."
    NOT_READY = "not_ready", 503, "Kho lưu trữ đang được chuẩn bị, vui lòng thử lại sau ít phút."
    # too much expensive work waiting on this machine (searchsvc.admission); cheap routes never get it
    OVERLOADED = "overloaded", 503, "Máy chủ đang quá tải, vui lòng thử lại sau ít giây."
    JOURNAL_UNAVAILABLE = "journal_unavailable", 503  # the publishing journal cannot be written
    KEYS_UNAVAILABLE = "keys_unavailable", 503  # the keys file exists but cannot be used
    INSUFFICIENT_STORAGE = "insufficient_storage", 507  # the journal's disk is full
    HTTP_ERROR = "http_error", None  # any other status Starlette raises (StaticFiles' 401, say)


# The code of an ``HTTPException`` (the router's 404 and 405...) by its status; any other status is
# ``HTTP_ERROR``. Their page messages stand in for the codes of the same status that have none.
GENERIC_CODES: dict[int, ErrorCode] = {
    code.status: code
    for code in (
        ErrorCode.BAD_REQUEST,
        ErrorCode.NOT_FOUND,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.BODY_TOO_LARGE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.NOT_READY,
    )
    if code.status is not None
}

# The codes the engine refuses a request with (``SearchError.code``): all 400s.
ENGINE_CODES: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.BAD_SORT,
        ErrorCode.BAD_DATE,
        ErrorCode.BAD_DATE_RANGE,
        ErrorCode.BAD_PAGE,
        ErrorCode.BAD_PER_PAGE,
        ErrorCode.PAGE_TOO_DEEP,
        ErrorCode.BAD_LIMIT,  # related(): a limit outside 1..20
    }
)

# What the HTML error page's title says, by status.
PAGE_TITLES: dict[int, str] = {
    400: "Yêu cầu không hợp lệ",
    404: "Không tìm thấy trang",
    410: "Bài viết đã bị gỡ",
    405: "Phương thức không được hỗ trợ",
    413: "Yêu cầu quá lớn",
    429: "Quá nhiều yêu cầu",
    500: "Lỗi máy chủ",
    503: "Dịch vụ chưa sẵn sàng",
}


def status_of(code: ErrorCode, status: int | None = None) -> int:
    """``code``'s HTTP status; ``status`` is required for ``HTTP_ERROR`` and refused otherwise
    unless it is the code's own, so a code can never go out with another status."""
    if not isinstance(code, ErrorCode):
        raise TypeError(f"error codes are ErrorCode members, not {code!r}")
    if code.status is None:
        if status is None:
            raise TypeError(f"{code} takes the status of the exception it stands for")
        return status
    if status is not None and status != code.status:
        raise ValueError(f"{code} is a {code.status}, not a {status}")
    return code.status


class ApiError(Exception):
    """An expected failure with a stable machine-readable ``code`` and its HTTP ``status``.

    ``details``: more members of the JSON body beside ``error`` (the admin API's per-line
    ``rejected`` list); the HTML error page does not show them.
    """

    def __init__(
        self, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None, *, status: int | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status_of(code, status)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})


class UnknownEngineCode(LookupError):
    """The engine refused a request with a code ``ErrorCode`` lacks: a bug, answered 500."""


def engine_error(exc: SearchError) -> ApiError:
    """The engine's refusal as an ``ApiError`` with the same code (a 400).

    ``index`` names its codes with plain strings (it knows nothing of this module); one it may not
    raise is not turned into a made-up answer but raised, logged and answered 500
    ``internal_error``, and a test holds ``ENGINE_CODES`` equal to the codes ``index`` raises.
    """
    code = next((c for c in ENGINE_CODES if c.value == exc.code), None)
    if code is None:
        raise UnknownEngineCode(f"the engine refused a request with {exc.code!r}, not in ENGINE_CODES") from exc
    return ApiError(code, str(exc))


def wants_json(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


def json_error(
    code: ErrorCode, message: str, headers: Mapping[str, str] | None = None, *, status: int | None = None,
    details: Mapping[str, object] | None = None,
) -> JSONResponse:
    status = status_of(code, status)  # first: it refuses anything but an ErrorCode
    if details:
        body = {**details, "error": {"code": code.value, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse({"error": {"code": code.value, "message": message}}, status_code=status, headers=headers)


def error_response(
    request: Request,
    code: ErrorCode,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    status: int | None = None,
    details: Mapping[str, object] | None = None,
) -> Response:
    """The error for ``request``'s kind of route: JSON for the API, a page otherwise."""
    status = status_of(code, status)
    if wants_json(request.url.path):
        return json_error(code, message, headers, status=status, details=details)
    templates: Jinja2Templates | None = getattr(request.app.state, "templates", None)
    title = PAGE_TITLES.get(status, "Lỗi")
    generic = GENERIC_CODES.get(status)
    text = code.page_message or (generic.page_message if generic else None) or message
    if templates is None:  # only if the app is half-built; still never leak a traceback
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}</p>", status_code=status)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "code": code.value, "title": title, "message": text,
         "q": request.query_params.get("q", "")},
        status_code=status,
        headers=headers,
    )


def api_error_response(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc.code, exc.message, exc.headers, status=exc.status, details=exc.details)


def http_exception_response(request: Request, exc: HTTPException) -> Response:
    """Starlette's ``HTTPException`` (the router's 404 and 405...) as one of our errors."""
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = GENERIC_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    return error_response(request, code, message, exc.headers, status=exc.status_code)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(request, exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_exception_response(request, exc)


EXCEPTION_HANDLERS = {ApiError: handle_api_error, HTTPException: handle_http_exception}
