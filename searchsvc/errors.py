"""One error shape for the whole service: JSON under ``/api``, an HTML page everywhere else.

Handlers raise ``ApiError`` (or Starlette's ``HTTPException``) and never build error responses
themselves, so a 400 from parameter parsing, a 404 from the router and a 503 from a missing index
all come out the same way: ``{"error": {"code", "message"}}`` or the Vietnamese error page.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

API_PREFIX = "/api/"

# Stable codes for statuses that have no more specific one.
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "not_ready",
}

# What the HTML error page says, by status; more specific texts by code below.
PAGE_TITLES: dict[int, str] = {
    400: "Yêu cầu không hợp lệ",
    404: "Không tìm thấy trang",
    405: "Phương thức không được hỗ trợ",
    413: "Yêu cầu quá lớn",
    429: "Quá nhiều yêu cầu",
    500: "Lỗi máy chủ",
    503: "Dịch vụ chưa sẵn sàng",
}
PAGE_MESSAGES: dict[str, str] = {
    "not_found": "Trang bạn tìm không tồn tại hoặc đã bị chuyển đi.",
    "article_not_found": "Không tìm thấy bài viết này trong kho lưu trữ.",
    "category_not_found": "Không có chuyên mục này.",
    "bad_sort": "Cách sắp xếp không hợp lệ.",
    "bad_date": "Ngày phải có dạng YYYY-MM-DD, ví dụ 2014-06-27.",
    "bad_date_range": "Ngày bắt đầu phải trước ngày kết thúc.",
    "bad_page": "Số trang phải là số nguyên dương.",
    "bad_per_page": "Số kết quả mỗi trang phải từ 1 đến 100.",
    "page_too_deep": "Chỉ xem được 10.000 kết quả đầu tiên; hãy thu hẹp tìm kiếm.",
    "query_too_long": "Từ khóa quá dài (tối đa 1.000 ký tự).",
    "bad_parameter": "Tham số không hợp lệ.",
    "not_ready": "Kho lưu trữ đang được chuẩn bị, vui lòng thử lại sau ít phút.",
    "rate_limited": "Bạn gửi quá nhiều yêu cầu; vui lòng thử lại sau.",
    "internal_error": "Đã có lỗi xảy ra. Vui lòng thử lại sau.",
}


class ApiError(Exception):
    """An expected failure with an HTTP status and a stable machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def wants_json(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


def json_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def error_response(
    request: Request, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error for ``request``'s kind of route: JSON for the API, a page otherwise."""
    if wants_json(request.url.path):
        return json_error(status, code, message, headers)
    templates = getattr(request.app.state, "templates", None)
    title = PAGE_TITLES.get(status, "Lỗi")
    text = PAGE_MESSAGES.get(code) or PAGE_MESSAGES.get(STATUS_CODES.get(status, ""), message)
    if templates is None:  # only if the app is half-built; still never leak a traceback
        return HTMLResponse(f"<!doctype html><title>{status}</title><p>{status}</p>", status_code=status)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "code": code, "title": title, "message": text, "q": request.query_params.get("q", "")},
        status_code=status,
        headers=headers,
    )


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.message, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(request, exc.status_code, code, message, exc.headers)


EXCEPTION_HANDLERS = {ApiError: handle_api_error, HTTPException: handle_http_exception}
