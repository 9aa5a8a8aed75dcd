"""The JSON API under ``/api``: search, suggest, articles, categories and the OpenAPI document.

Handlers validate the query string (``searchsvc.params``), run the engine in a worker thread
(``searchsvc.engine_calls.run_engine``) and shape the answer (``searchsvc.presenters``); errors
are raised as ``ApiError`` and rendered as ``{"error": {"code", "message"}}`` by the app's handlers.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from feeds.opensearch import SUGGESTIONS_TYPE
from index.api import ANY_CHANGE, Shows
from index.related import DEFAULT_LIMIT as DEFAULT_RELATED_LIMIT
from index.related import MAX_LIMIT as MAX_RELATED_LIMIT

from ..engine_calls import fetch_article, run_engine, run_search
from ..errors import ApiError, ErrorCode
from ..freshness import shows
from ..http.caching import ETAG_BASIS_KEY
from ..openapi import openapi_document
from ..params import DEFAULT_SUGGEST_LIMIT, MAX_SUGGEST_LIMIT, parse_int, parse_q, parse_search
from ..presenters import absolute, article_json, article_link_json, article_path, result_json
from ..state import app_state


async def api_search(request: Request) -> Response:
    params = parse_search(request.query_params)
    result = await run_search(request, params.to_request())
    payload = result_json(result, app_state(request).config.base_url)
    # The validator ignores the raw scores: they move with the whole collection's statistics at
    # every commit, while the hits, their order and every other field stay what the answer says.
    steady = {**payload, "hits": [{k: v for k, v in hit.items() if k != "score"} for hit in payload["hits"]]}
    setattr(request.state, ETAG_BASIS_KEY, json.dumps(steady, ensure_ascii=False, sort_keys=True).encode())
    return JSONResponse(payload)


SUGGEST_FORMATS = ("json", "opensearch")


async def api_suggest(request: Request) -> Response:
    """``{"query", "suggestions"}``; with ``format=opensearch``, the OpenSearch suggestions format
    (``["query", ["s1", "s2", ...]]`` as ``application/x-suggestions+json``) that browsers ask for
    through the ``/opensearch.xml`` description."""
    q = parse_q(request.query_params)
    limit = parse_int(request.query_params, "limit", DEFAULT_SUGGEST_LIMIT, ErrorCode.BAD_LIMIT, 1, MAX_SUGGEST_LIMIT)
    fmt = request.query_params.get("format", "json")
    if fmt not in SUGGEST_FORMATS:
        raise ApiError(ErrorCode.BAD_PARAMETER, f"'format' must be one of {', '.join(SUGGEST_FORMATS)}")
    suggestions = await run_engine(request, lambda e: e.suggest(q, limit), heavy=False, charged=True) if q else []
    if fmt == "opensearch":
        return JSONResponse([q, list(suggestions)[:limit]], media_type=SUGGESTIONS_TYPE)
    return JSONResponse({"query": q, "suggestions": list(suggestions)[:limit]})


async def api_article(request: Request) -> Response:
    article_id = request.path_params["article_id"]
    shows(request, Shows.article(article_id))  # only a change to this article can change the answer
    article = await fetch_article(request, article_id)
    return JSONResponse(article_json(article, app_state(request).config.base_url))


async def api_related(request: Request) -> Response:
    """The articles related to one (``SearchEngine.related``): 404/410 as for the article itself.

    Any commit may change the list (a new article may be more alike, every term's frequency
    moves), so the answer declares nothing narrower than ``ANY_CHANGE``: its validator and cached
    copies hold until the next commit."""
    article_id = request.path_params["article_id"]
    limit = parse_int(request.query_params, "limit", DEFAULT_RELATED_LIMIT, ErrorCode.BAD_LIMIT, 1, MAX_RELATED_LIMIT)
    shows(request, ANY_CHANGE)
    article = await fetch_article(request, article_id)
    found = await run_engine(request, lambda e: e.related(article.id, limit), heavy=True)
    base_url = app_state(request).config.base_url
    return JSONResponse({"id": article.id, "url": absolute(base_url, article_path(article.id)),
                         "related": [article_link_json(a, base_url) for a in found]})


async def api_categories(request: Request) -> Response:
    values = await run_engine(request, lambda e: e.categories(), heavy=False)
    base_url = app_state(request).config.base_url
    return JSONResponse(
        {
            "categories": [
                {"label": v.value, "slug": v.slug, "count": v.count, "url": absolute(base_url, f"/c/{v.slug}")}
                for v in values
            ]
        }
    )


async def api_openapi(request: Request) -> Response:
    shows(request, Shows(any_change=False))  # the same whatever the index holds
    return JSONResponse(openapi_document(app_state(request).config.base_url))


routes = [
    Route("/api/search", api_search, methods=["GET"], name="api_search"),
    Route("/api/suggest", api_suggest, methods=["GET"], name="api_suggest"),
    # Before the article itself: its path converter would take ".../related" as part of an id.
    Route("/api/articles/{article_id:path}/related", api_related, methods=["GET"], name="api_related"),
    Route("/api/articles/{article_id:path}", api_article, methods=["GET"], name="api_article"),
    Route("/api/categories", api_categories, methods=["GET"], name="api_categories"),
    Route("/api/openapi.json", api_openapi, methods=["GET"], name="api_openapi"),
]
