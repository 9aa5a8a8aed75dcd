"""The OpenAPI 3.1 description of the service, written by hand and served at /api/openapi.json.

Hand-written rather than generated so it says what clients may rely on (stable error codes, the
meaning of ``tier``), not what the code happens to do; ``tests/test_service_openapi.py`` checks
that every route of the app is described here and that the document is structurally valid 3.1.
Other parts of the service (the feeds) can add their paths with ``register_paths``.
"""

from __future__ import annotations

import copy
from typing import Any

from index.api import MAX_PER_PAGE, MAX_RESULT_DEPTH, SORTS

from .params import MAX_Q_CHARS, MAX_SUGGEST_LIMIT

_ERROR_CODES = [
    "bad_request",
    "bad_sort",
    "bad_date",
    "bad_date_range",
    "bad_page",
    "bad_per_page",
    "bad_limit",
    "bad_parameter",
    "page_too_deep",
    "query_too_long",
    "not_found",
    "article_not_found",
    "method_not_allowed",
    "body_too_large",
    "rate_limited",
    "not_ready",
    "internal_error",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _response_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_CACHE_HEADERS = {
    "ETag": {"description": "Weak validator from the index generation and the request.", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
    "X-Request-ID": {"schema": {"type": "string"}},
}

_HTML_PAGE_ERRORS = {
    "304": _response_ref("NotModified"),
    "400": _html("Bad parameter (error page)."),
    "404": _html("Not found (error page)."),
    "503": _html("No index is open yet (error page)."),
}

_FACET = {
    "type": "object",
    "required": ["value", "slug", "count"],
    "properties": {
        "value": {"type": "string", "description": 'Category label, a year ("2014") or a month ("2014-06").'},
        "slug": {"type": "string", "description": "Category slug; same as value for dates."},
        "count": {"type": "integer", "minimum": 0},
    },
}

_HIT = {
    "type": "object",
    "required": ["id", "title", "url", "category", "category_slug", "published", "snippet", "title_highlighted"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string", "description": "Plain text."},
        "url": {"type": "string", "format": "uri", "description": "Absolute URL of the article page."},
        "category": {"type": "string"},
        "category_slug": {"type": "string"},
        "published": {"type": "string", "format": "date-time"},
        "source": {"type": ["string", "null"]},
        "views": {"type": ["integer", "null"]},
        "snippet": {"type": "string", "description": "HTML: escaped text, matches wrapped in <mark>."},
        "title_highlighted": {"type": "string", "description": "HTML: escaped title, matches in <mark>."},
        "score": {"type": ["number", "null"]},
    },
}

_SEARCH_RESPONSE = {
    "type": "object",
    "required": ["query", "total", "page", "per_page", "tier", "hits", "facets", "suggestion", "notes"],
    "properties": {
        "query": {"type": "string", "description": "The query actually run (cut to 256 characters)."},
        "total": {"type": "integer", "minimum": 0},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
        "tier": {
            "type": "string",
            "enum": ["all", "adjacent", "syllables", "fuzzy", "partial", "none"],
            "description": "Which matching tier answered: all (empty query), adjacent (phrase-like), "
            "syllables (every syllable anywhere), fuzzy (one edit), partial (not every syllable), none.",
        },
        "partial": {"type": "boolean"},
        "hits": {"type": "array", "items": _ref("Hit")},
        "facets": {
            "type": "object",
            "properties": {
                "category": {"type": "array", "items": _ref("FacetValue")},
                "year": {"type": "array", "items": _ref("FacetValue")},
                "month": {"type": "array", "items": _ref("FacetValue")},
            },
        },
        "suggestion": {"type": ["string", "null"], "description": "Did-you-mean query, if any."},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}

_ARTICLE = {
    "type": "object",
    "required": ["id", "title", "body", "paragraphs", "category", "category_slug", "published", "url"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "body": {"type": "string", "description": "Paragraphs separated by a blank line."},
        "paragraphs": {"type": "array", "items": {"type": "string"}},
        "category": {"type": "string"},
        "category_slug": {"type": "string"},
        "category_path": {"type": "array", "items": {"type": "string"}},
        "published": {"type": "string", "format": "date-time"},
        "views": {"type": ["integer", "null"]},
        "source": {"type": ["string", "null"]},
        "url": {"type": "string", "format": "uri", "description": "Absolute URL of the article page here."},
        "source_url": {"type": ["string", "null"], "description": "The original page, when known and plain http(s) (never `javascript:` or `data:`)."},
        "captions": {"type": "array", "items": {"type": "string"}},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code.", "examples": _ERROR_CODES},
                "message": {"type": "string"},
            },
        }
    },
}

_STRING = {"type": "string"}

_SEARCH_PARAMETERS = [
    {
        "name": "q",
        "in": "query",
        "description": f"Query; empty lists articles newest first. Over {MAX_Q_CHARS} characters: 400 query_too_long.",
        "schema": {"type": "string", "maxLength": MAX_Q_CHARS},
    },
    {
        "name": "category",
        "in": "query",
        "description": "Category slug or label; repeat for several.",
        "schema": {"type": "array", "items": _STRING},
        "style": "form",
        "explode": True,
    },
    {
        "name": "source",
        "in": "query",
        "description": "Source name; repeat for several.",
        "schema": {"type": "array", "items": _STRING},
        "style": "form",
        "explode": True,
    },
    {
        "name": "from",
        "in": "query",
        "description": "First day, inclusive.",
        "schema": {"type": "string", "format": "date"},
    },
    {
        "name": "to",
        "in": "query",
        "description": "Last day, inclusive.",
        "schema": {"type": "string", "format": "date"},
    },
    {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS), "default": "relevance"}},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "per_page",
        "in": "query",
        "description": f"page * per_page may not exceed {MAX_RESULT_DEPTH} (400 page_too_deep).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 10},
    },
]

_BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "searchsvc",
        "version": "1.0.0",
        "summary": "Search and browse a Vietnamese news archive.",
        "description": "JSON API, HTML pages and operations endpoints of the archive search service. "
        'Every error is JSON {"error": {"code", "message"}} under /api. GET responses carry a weak ETag '
        "derived from the index generation; send it back in If-None-Match for a 304.",
        "license": {"name": "MIT", "identifier": "MIT"},
    },
    "tags": [
        {"name": "api", "description": "JSON API (CORS-enabled)."},
        {"name": "pages", "description": "Server-rendered HTML pages in Vietnamese."},
        {"name": "operations", "description": "Health, readiness and metrics."},
        {"name": "feeds", "description": "Syndication feeds, OPML and embeddable headline lists."},
    ],
    "paths": {
        "/api/search": {
            "get": {
                "tags": ["api"],
                "operationId": "search",
                "summary": "Full-text search with filters, facets and highlights.",
                "parameters": _SEARCH_PARAMETERS,
                "responses": {
                    "200": _json(_ref("SearchResponse"), "Results.", _CACHE_HEADERS),
                    "304": _response_ref("NotModified"),
                    "400": _response_ref("BadRequest"),
                    "429": _response_ref("RateLimited"),
                    "503": _response_ref("NotReady"),
                },
            }
        },
        "/api/suggest": {
            "get": {
                "tags": ["api"],
                "operationId": "suggest",
                "summary": "Completions for a typed prefix (accents optional).",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": MAX_Q_CHARS}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SUGGEST_LIMIT, "default": 10},
                    },
                ],
                "responses": {
                    "200": _json(_ref("SuggestResponse"), "Suggestions.", _CACHE_HEADERS),
                    "304": _response_ref("NotModified"),
                    "400": _response_ref("BadRequest"),
                    "429": _response_ref("RateLimited"),
                    "503": _response_ref("NotReady"),
                },
            }
        },
        "/api/articles/{article_id}": {
            "get": {
                "tags": ["api"],
                "operationId": "getArticle",
                "summary": "One article.",
                "parameters": [{"name": "article_id", "in": "path", "required": True, "schema": _STRING}],
                "responses": {
                    "200": _json(_ref("Article"), "The article.", _CACHE_HEADERS),
                    "304": _response_ref("NotModified"),
                    "404": _response_ref("NotFound"),
                    "503": _response_ref("NotReady"),
                },
            }
        },
        "/api/categories": {
            "get": {
                "tags": ["api"],
                "operationId": "listCategories",
                "summary": "Every category with its label, slug and article count.",
                "responses": {
                    "200": _json(_ref("Categories"), "Categories.", _CACHE_HEADERS),
                    "304": _response_ref("NotModified"),
                    "503": _response_ref("NotReady"),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "tags": ["api"],
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/": {
            "get": {
                "tags": ["pages"],
                "operationId": "homePage",
                "summary": "Home page: search box, latest articles, categories; with search parameters, results.",
                "parameters": _SEARCH_PARAMETERS,
                "responses": {"200": _html("Home or results page."), **_HTML_PAGE_ERRORS},
            }
        },
        "/search": {
            "get": {
                "tags": ["pages"],
                "operationId": "searchPage",
                "summary": "Results page: highlights, facets, timeline, did-you-mean, pagination.",
                "parameters": _SEARCH_PARAMETERS,
                "responses": {"200": _html("Results page."), **_HTML_PAGE_ERRORS},
            }
        },
        "/articles/{article_id}": {
            "get": {
                "tags": ["pages"],
                "operationId": "articlePage",
                "summary": "Article page, with feed autodiscovery for its category.",
                "parameters": [
                    {"name": "article_id", "in": "path", "required": True, "schema": _STRING},
                    {"name": "q", "in": "query", "description": "Query to link back to.", "schema": _STRING},
                ],
                "responses": {"200": _html("Article page."), **_HTML_PAGE_ERRORS},
            }
        },
        "/c/{slug}": {
            "get": {
                "tags": ["pages"],
                "operationId": "categoryPage",
                "summary": "Latest articles of a category, paginated.",
                "parameters": [
                    {"name": "slug", "in": "path", "required": True, "schema": _STRING},
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                ],
                "responses": {"200": _html("Category page."), **_HTML_PAGE_ERRORS},
            }
        },
        "/healthz": {
            "get": {
                "tags": ["operations"],
                "operationId": "healthz",
                "summary": "Liveness: the process answers.",
                "responses": {"200": _json({"type": "object"}, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["operations"],
                "operationId": "readyz",
                "summary": "Readiness: 200 once the index is open, with its size and generation.",
                "responses": {
                    "200": _json(_ref("Ready"), "Ready."),
                    "503": _json(_ref("Ready"), "No index yet."),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "operationId": "metrics",
                "summary": "Prometheus text exposition (all workers merged).",
                "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": _STRING}}}},
            }
        },
    },
}

_FEED_SELECTION_PARAMETERS = [
    {"name": "q", "in": "query", "description": "Search feeds only (name 'search').", "schema": _STRING},
    {"name": "category", "in": "query", "schema": {"type": "array", "items": _STRING}, "style": "form",
     "explode": True},
    {"name": "source", "in": "query", "schema": {"type": "array", "items": _STRING}, "style": "form",
     "explode": True},
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}},
]  # fmt: skip
_FEED_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "'all', 'search' (with the search parameters) or a category slug.",
    "schema": _STRING,
}


def _document(description: str, media_types: list[str]) -> dict[str, Any]:
    return {"description": description, "content": {m: {"schema": _STRING} for m in media_types}}


# Written from the feeds' and embeds' own module documentation (searchsvc/routes_feeds.py,
# searchsvc/routes_embeds.py): those modules own the behaviour, this document only describes it.
_FEED_PATHS: dict[str, Any] = {
    "/feeds": {
        "get": {
            "tags": ["feeds"],
            "operationId": "feedsPage",
            "summary": "Every feed URL, how to subscribe, and the embed snippets (HTML).",
            "responses": {"200": _html("Feeds page."), "304": _response_ref("NotModified"),
                          "503": _html("No index yet.")},
        }
    },
    "/feeds.opml": {
        "get": {
            "tags": ["feeds"],
            "operationId": "feedsOpml",
            "summary": "Every category feed (RSS and Atom) as OPML 2.0.",
            "responses": {"200": _document("OPML 2.0.", ["text/x-opml"]), "304": _response_ref("NotModified"),
                          "503": _response_ref("NotReady")},
        }
    },
    "/feeds/feed.xsl": {
        "get": {
            "tags": ["feeds"],
            "operationId": "feedsStylesheet",
            "summary": "The XSL stylesheet that makes RSS/Atom readable in a browser.",
            "responses": {"200": _document("XSLT.", ["text/xsl"]), "304": _response_ref("NotModified")},
        }
    },
    "/feeds/{name}.{fmt}": {
        "get": {
            "tags": ["feeds"],
            "operationId": "feed",
            "summary": "RSS 2.0, Atom 1.0 or JSON Feed 1.1 of the archive, a category or a search.",
            "parameters": [
                _FEED_NAME,
                {"name": "fmt", "in": "path", "required": True,
                 "schema": {"type": "string", "enum": ["rss", "atom", "json"]}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                {"name": "page", "in": "query", "description": "Atom and JSON only (page × limit ≤ 10000).",
                 "schema": {"type": "integer", "minimum": 1, "default": 1}},
                *_FEED_SELECTION_PARAMETERS,
            ],
            "responses": {
                "200": _document("The feed.", ["application/rss+xml", "application/atom+xml",
                                               "application/feed+json"]),
                "304": _response_ref("NotModified"),
                "400": _response_ref("BadRequest"),
                "404": _response_ref("NotFound"),
                "503": _response_ref("NotReady"),
            },
        }
    },
    "/embed.js": {
        "get": {
            "tags": ["feeds"],
            "operationId": "embedScript",
            "summary": "Script widget rendering a headline list from a JSON feed.",
            "responses": {"200": _document("JavaScript.", ["text/javascript"]), "304": _response_ref("NotModified")},
        }
    },
    "/embed/{name}": {
        "get": {
            "tags": ["feeds"],
            "operationId": "embed",
            "summary": "Framable headline list (HTML) of the archive, a category or a search.",
            "parameters": [
                _FEED_NAME,
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}},
                {"name": "theme", "in": "query", "schema": {"type": "string", "enum": ["light", "dark"]}},
                *_FEED_SELECTION_PARAMETERS,
            ],
            "responses": {"200": _html("Headline list."), "304": _response_ref("NotModified"),
                          "400": _html("Bad parameter."), "404": _html("Unknown category."),
                          "503": _html("No index yet.")},
        }
    },
}  # fmt: skip
_BASE["paths"].update(_FEED_PATHS)
_BASE["components"] = {
    "schemas": {
        "FacetValue": _FACET,
        "Hit": _HIT,
        "SearchResponse": _SEARCH_RESPONSE,
        "SuggestResponse": {
            "type": "object",
            "required": ["query", "suggestions"],
            "properties": {"query": _STRING, "suggestions": {"type": "array", "items": _STRING}},
        },
        "Article": _ARTICLE,
        "Categories": {
            "type": "object",
            "required": ["categories"],
            "properties": {
                "categories": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["label", "slug", "count"],
                        "properties": {
                            "label": _STRING,
                            "slug": _STRING,
                            "count": {"type": "integer", "minimum": 0},
                            "url": {"type": "string", "format": "uri"},
                        },
                    },
                }
            },
        },
        "Ready": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "not_ready"]},
                "articles": {"type": "integer"},
                "generation": _STRING,
                "error": _ref("ErrorBody"),
            },
        },
        "ErrorBody": _ERROR["properties"]["error"],
        "Error": _ERROR,
    },
    "responses": {
        "BadRequest": _json(_ref("Error"), "A parameter is invalid; error.code says which rule."),
        "NotFound": _json(_ref("Error"), "No such article."),
        "NotModified": {"description": "The If-None-Match ETag is still current; no body."},
        "RateLimited": _json(
            _ref("Error"),
            "Too many requests from this client.",
            {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        ),
        "NotReady": _json(
            _ref("Error"),
            "No index can be opened yet (code not_ready).",
            {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        ),
    },
}

_EXTRA_PATHS: dict[str, Any] = {}


def register_paths(paths: dict[str, Any]) -> None:
    """Add path items (e.g. the feed routes) so that the served document describes them too."""
    _EXTRA_PATHS.update(copy.deepcopy(paths))


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """A fresh copy of the document, with ``servers`` pointing at the public base URL."""
    document = copy.deepcopy(_BASE)
    document["paths"].update(copy.deepcopy(_EXTRA_PATHS))
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document
