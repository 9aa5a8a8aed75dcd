"""Cross-origin access: the API's CORS layer, and the open CORS of feeds and embeds.

``/api/`` answers the origins configured in ``SEARCHSVC_CORS_ORIGINS`` through Starlette's CORS
middleware (``ApiCORSMiddleware``, scoped to the prefix by the app). Feeds, OPML and embeds are
public documents any site may fetch (the script widget reads ``/feeds/{slug}.json``
cross-origin): they carry ``CORS_HEADERS`` on every answer, errors included (``with_cors``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Send

from ..errors import ApiError, ErrorCode, api_error_response, http_exception_response, json_error
from .encoding import vary_message

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Last-Modified",
}

Handler = Callable[[Request], Awaitable[Response]]


def with_cors(handler: Handler) -> Handler:
    """Errors carry ``Access-Control-Allow-Origin`` too, so a cross-origin widget can read a 404."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            response = api_error_response(request, exc)
        except HTTPException as exc:
            if exc.status_code < 400:
                raise
            response = http_exception_response(request, exc)
        response.headers.update(CORS_HEADERS)
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


class ApiCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight answers in the API's JSON error shape.

    Starlette refuses a preflight (an unknown origin, method or header) with a plain-text 400;
    every other ``/api/`` error is ``{"error": {"code", "message"}}``, and clients parse it.
    """

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        """Starlette's, with ``Vary: Origin`` merged into the response's one ``Vary`` field
        (Starlette appends it, after an ``Origin`` or ``Accept-Encoding`` that may be there)."""

        async def send_merged(message: Message) -> None:
            if message["type"] == "http.response.start":
                vary_message(message)
            await send(message)

        await super().send(message, send_merged, request_headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        reason = bytes(answer.body).decode("utf-8", "replace")
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-type")}
        return json_error(ErrorCode.CORS_PREFLIGHT_REFUSED,
                          f"{reason}: allowed methods are {', '.join(sorted(self.allow_methods))}", headers,
                          status=answer.status_code)
