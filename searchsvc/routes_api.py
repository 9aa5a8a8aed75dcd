"""The JSON API under ``/api``: search, suggest, articles, categories and the OpenAPI document.

Handlers validate the query string (``searchsvc.params``), call the engine in the thread pool
(``searchsvc.services.call_engine``) and shape the answer (``searchsvc.presenters``); errors are
raised as ``ApiError`` and rendered as ``{"error": {"code", "message"}}`` by the app's handlers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from index.api import FacetValue, SearchResult

from .errors import ApiError
from .openapi import openapi_document
from .params import MAX_SUGGEST_LIMIT, parse_int, parse_q, parse_search
from .presenters import absolute, article_json, result_json
from .services import call_engine, call_search, services


async def api_search(request: Request) -> Response:
    params = parse_search(request.query_params)
    result: SearchResult = await call_search(request, params.to_request())
    return JSONResponse(result_json(result, services(request).config.base_url))


async def api_suggest(request: Request) -> Response:
    q = parse_q(request.query_params)
    limit = parse_int(request.query_params, "limit", 10, "bad_limit", 1, MAX_SUGGEST_LIMIT)
    suggestions: list[str] = await call_engine(request, "suggest", q, limit) if q else []
    return JSONResponse({"query": q, "suggestions": list(suggestions)[:limit]})


async def api_article(request: Request) -> Response:
    article_id = request.path_params["article_id"]
    article = await call_engine(request, "get_article", article_id)
    if article is None:
        raise ApiError(404, "article_not_found", f"no article with id {article_id!r}")
    return JSONResponse(article_json(article, services(request).config.base_url))


async def api_categories(request: Request) -> Response:
    values: list[FacetValue] = await call_engine(request, "categories")
    base_url = services(request).config.base_url
    return JSONResponse(
        {
            "categories": [
                {"label": v.value, "slug": v.slug, "count": v.count, "url": absolute(base_url, f"/c/{v.slug}")}
                for v in values
            ]
        }
    )


async def api_openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(services(request).config.base_url))


routes = [
    Route("/api/search", api_search, methods=["GET"], name="api_search"),
    Route("/api/suggest", api_suggest, methods=["GET"], name="api_suggest"),
    Route("/api/articles/{article_id:path}", api_article, methods=["GET"], name="api_article"),
    Route("/api/categories", api_categories, methods=["GET"], name="api_categories"),
    Route("/api/openapi.json", api_openapi, methods=["GET"], name="api_openapi"),
]
