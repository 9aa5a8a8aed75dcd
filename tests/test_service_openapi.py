"""The hand-written OpenAPI document describes every route of the app and is valid 3.1."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import openapi_spec_validator
from starlette.routing import Mount, Route

from index import related as related_limits
from index.api import MAX_DATE, MAX_PER_PAGE, MAX_QUERY_CHARS, MAX_RESULT_DEPTH, MIN_DATE, SORTS, SearchRequest
from index.tiers import Tier
from searchsvc.app import MAX_BODY_BYTES, create_app
from searchsvc.config import Config
from searchsvc.openapi import DOCUMENT_FILE, openapi_document
from searchsvc.params import (
    DEFAULT_PER_PAGE,
    DEFAULT_SUGGEST_LIMIT,
    MAX_FILTER_CHARS,
    MAX_FILTER_VALUES,
    MAX_Q_CHARS,
    MAX_SUGGEST_LIMIT,
)
from searchsvc.routes.admin import MAX_REJECTED_LISTED
from searchsvc.routes.api import SUGGEST_FORMATS
from searchsvc.routes.embeds import EMBED_DEFAULT_LIMIT, EMBED_MAX_LIMIT, THEMES
from searchsvc.routes.pages import CATEGORY_PAGE_SIZE, RESULTS_PER_PAGE
from searchsvc.selection import DEFAULT_LIMIT, FORMATS, LIMITS, MAX_ITEMS, MAX_LIMIT

ROOT = Path(__file__).resolve().parent.parent

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def app_routes() -> list[tuple[str, set[str]]]:
    app = create_app(Config.from_env(environ={"SEARCHSVC_INDEX_DIR": "/nonexistent"}))
    out = []
    for route in app.routes:
        if isinstance(route, Mount):
            continue  # static files: described by their own validators, not the API
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # "{article_id:path}" -> "{article_id}"
        out.append((path, {m.lower() for m in (route.methods or set())} - {"head"}))
    return out


def test_every_route_is_described() -> None:
    document = openapi_document("http://127.0.0.1:8000")
    routes = app_routes()
    assert routes, "the app has no routes?"
    for path, methods in routes:
        assert path in document["paths"], f"{path} is not in the OpenAPI document"
        for method in methods:
            assert method in document["paths"][path], f"{method.upper()} {path} is not described"
            operation = document["paths"][path][method]
            assert operation.get("responses"), f"{method.upper()} {path} has no responses"
            template_params = set(re.findall(r"\{(\w+)\}", path))
            declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
            assert template_params == declared, f"{path}: path parameters {template_params} vs {declared}"
    described = set(document["paths"])
    assert described <= {p for p, _ in routes}, f"described but not served: {described - {p for p, _ in routes}}"


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_document_structure_is_openapi_31() -> None:
    document = openapi_document("http://127.0.0.1:8000")
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] and document["info"]["version"]
    assert document["servers"] == [{"url": "http://127.0.0.1:8000"}]
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in HTTP_METHODS
            operation_ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d|default", status)
                assert "description" in response or "$ref" in response
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in {"query", "path", "header", "cookie"}
                assert "schema" in parameter or "content" in parameter
                if parameter["in"] == "path":
                    assert parameter.get("required") is True
    assert len(operation_ids) == len(set(operation_ids)), "operationId must be unique"
    for ref in _refs(document):  # every local $ref resolves
        node: object = document
        assert ref.startswith("#/")
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
            node = node[part]


def test_document_validates_with_openapi_spec_validator() -> None:
    openapi_spec_validator.validate(openapi_document("http://127.0.0.1:8000"))  # raises on an invalid document


def test_served_document_is_the_same(http) -> None:
    response = http.get("/api/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"].startswith("3.1.")
    assert served["servers"][0]["url"] == str(http.base_url).rstrip("/")
    assert served == openapi_document(str(http.base_url).rstrip("/"))  # the file, as it is


def test_docs_mention_every_path() -> None:
    text = (ROOT / "docs" / "service.md").read_text(encoding="utf-8")
    routes = app_routes()
    assert routes
    for path, _ in routes:
        assert path in text, f"docs/service.md does not mention {path}"


def test_document_file_ships_with_the_package() -> None:
    """The loader reads the file from the installed package: pyproject's package-data must carry it."""
    assert (ROOT / "searchsvc" / DOCUMENT_FILE).is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["searchsvc"]
    assert any(fnmatch.fnmatch(DOCUMENT_FILE, pattern) for pattern in patterns), patterns


# --- every limit in the document is the code's --------------------------------------------------
#
# The document's limits are typed in (searchsvc/openapi.py says why); these tables say which
# constant each one is. Every ``maximum``, ``maxLength``, ``default`` and ``enum`` in the document
# must be in ``expected_limits``, and every description or summary with a number in it that is not
# an HTTP status, a format version or an example must be there too, with exactly those numbers: a limit
# typed into the file without a constant behind it fails, and so does one the code has changed.
# (Lower bounds, ``minimum``, are 0 for counts and 1 for pages and sizes: not settings.)

LIMIT_KEYWORDS = {"maximum", "exclusiveMaximum", "maxLength", "maxItems", "default", "enum"}
NOT_LIMITS = {
    "200", "301", "304", "400", "401", "404", "405", "413", "429", "503",  # HTTP statuses
    "1.0", "1.1", "2.0", "3.1",  # Atom 1.0, JSON Feed 1.1, RSS/OPML 2.0, OpenAPI 3.1
    "2014", "2014-06",  # examples of facet values
}  # fmt: skip
NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d{4}-\d{2}|\d+(?:\.\d+)*")
FIRST_PAGE = 1  # every ``page`` parameter's default (``parse_int(params, "page", 1, …)``)
READY_STATES = ["ready", "not_ready"]  # /readyz's "status" (searchsvc.routes.ops)


def _numbers(*values: object) -> set[str]:
    return {str(value) for value in values}


def expected_limits() -> tuple[dict[str, object], dict[str, set[str]]]:
    """(keyword path -> value, description path -> the numbers it states), from the constants."""
    limits: dict[str, object] = {}
    stated: dict[str, set[str]] = {"info.description": _numbers(405, 413, MAX_BODY_BYTES, 304)}
    for path, per_page in (("/api/search", DEFAULT_PER_PAGE), ("/", RESULTS_PER_PAGE), ("/search", RESULTS_PER_PAGE)):
        p = f"paths.{path}.get.parameters"
        limits |= {
            f"{p}.q.schema.maxLength": MAX_Q_CHARS,
            f"{p}.sort.schema.enum": list(SORTS),
            f"{p}.sort.schema.default": SearchRequest().sort,
            f"{p}.page.schema.default": FIRST_PAGE,
            f"{p}.per_page.schema.maximum": MAX_PER_PAGE,
            f"{p}.per_page.schema.default": per_page,
        }
        stated |= {
            f"{p}.q.description": _numbers(MAX_Q_CHARS, 400),
            f"{p}.from.description": _numbers(MIN_DATE, MAX_DATE, 400),
            f"{p}.to.description": _numbers(MIN_DATE, MAX_DATE, 400),
            f"{p}.per_page.description": _numbers(MAX_RESULT_DEPTH, 400),
        }
    suggest, category = "paths./api/suggest.get.parameters", "paths./c/{slug}.get.parameters"
    related = "paths./api/articles/{article_id}/related.get.parameters"
    feed, embed = "paths./feeds/{name}.{fmt}.get.parameters", "paths./embed/{name}.get.parameters"
    schemas, codes = "components.schemas", "components.x-error-codes"
    limits |= {
        f"{suggest}.q.schema.maxLength": MAX_Q_CHARS,
        f"{suggest}.limit.schema.maximum": MAX_SUGGEST_LIMIT,
        f"{suggest}.limit.schema.default": DEFAULT_SUGGEST_LIMIT,
        f"{suggest}.format.schema.enum": list(SUGGEST_FORMATS),
        f"{suggest}.format.schema.default": SUGGEST_FORMATS[0],
        f"{related}.limit.schema.maximum": related_limits.MAX_LIMIT,
        f"{related}.limit.schema.default": related_limits.DEFAULT_LIMIT,
        f"{category}.page.schema.maximum": MAX_RESULT_DEPTH // CATEGORY_PAGE_SIZE,
        f"{category}.page.schema.default": FIRST_PAGE,
        f"{feed}.fmt.schema.enum": list(FORMATS),
        f"{feed}.limit.schema.maximum": MAX_LIMIT,
        f"{feed}.limit.schema.default": DEFAULT_LIMIT,
        f"{feed}.page.schema.maximum": MAX_ITEMS,
        f"{feed}.page.schema.default": FIRST_PAGE,
        f"{embed}.limit.schema.maximum": EMBED_MAX_LIMIT,
        f"{embed}.limit.schema.default": EMBED_DEFAULT_LIMIT,
        f"{embed}.theme.schema.enum": list(THEMES),
        f"{schemas}.SearchResponse.properties.per_page.maximum": MAX_PER_PAGE,
        f"{schemas}.SearchResponse.properties.tier.enum": [tier.value for tier in Tier],
        f"{schemas}.Ready.properties.status.enum": READY_STATES,
        f"{schemas}.PublishResult.properties.rejected.maxItems": MAX_REJECTED_LISTED,
    }
    stated |= {
        f"{feed}.limit.description": _numbers(*LIMITS, 1, MAX_LIMIT, 301),
        f"{feed}.page.description": _numbers(MAX_ITEMS),
        f"{schemas}.SearchResponse.properties.query.description": _numbers(MAX_QUERY_CHARS),
        f"{codes}.bad_date.description": _numbers(MIN_DATE, MAX_DATE),
        f"{codes}.bad_per_page.description": _numbers(1, MAX_PER_PAGE),
        f"{codes}.bad_parameter.description": _numbers(MAX_FILTER_CHARS, MAX_FILTER_VALUES),
        f"{codes}.page_too_deep.description": _numbers(MAX_RESULT_DEPTH),
        f"{codes}.query_too_long.description": _numbers(MAX_Q_CHARS),
        f"{codes}.body_too_large.description": _numbers(MAX_BODY_BYTES),
    }
    return limits, stated


def document_limits(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str, object]]:
    """("limit" or "text", dotted path, value) for every limit keyword and every description or
    summary in the document; list items are named by their ``name`` (parameters, tags)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = path + (key,)
            if key in LIMIT_KEYWORDS:
                yield "limit", ".".join(here), value
            elif key in ("description", "summary") and isinstance(value, str):
                yield "text", ".".join(here), value
            else:
                yield from document_limits(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            name = value.get("name") if isinstance(value, dict) else None
            yield from document_limits(value, path + (name if isinstance(name, str) else str(i),))


def limit_problems(document: dict) -> list[str]:
    """What in ``document`` disagrees with the code's constants (empty: nothing)."""
    limits, stated = expected_limits()
    found = list(document_limits(document))
    problems = []
    in_document = {path: value for kind, path, value in found if kind == "limit"}
    for path in sorted(set(in_document) - set(limits)):
        problems.append(f"{path}: a limit with no constant behind it (add it to expected_limits)")
    for path in sorted(set(limits) - set(in_document)):
        problems.append(f"{path}: no longer in the document")
    for path in sorted(set(limits) & set(in_document)):
        if in_document[path] != limits[path]:
            problems.append(f"{path}: {in_document[path]!r} in the document, {limits[path]!r} in the code")
    texts = {path: str(value) for kind, path, value in found if kind == "text"}
    for path, text in sorted(texts.items()):
        numbers = set(NUMBER.findall(text))
        if path in stated and numbers != stated[path]:
            problems.append(f"{path}: states {sorted(numbers)}, the code {sorted(stated[path])}")
        elif path not in stated and not numbers <= NOT_LIMITS:
            problems.append(f"{path}: states {sorted(numbers - NOT_LIMITS)} (add it to expected_limits)")
    for path in sorted(set(stated) - set(texts)):
        problems.append(f"{path}: no longer in the document")
    return problems


def test_every_limit_in_the_document_is_the_codes() -> None:
    problems = limit_problems(openapi_document())
    assert not problems, "\n".join(problems)


def test_the_limit_check_finds_a_stale_or_unknown_number() -> None:
    """The check itself: a limit the code has changed, or a new number typed in, is found."""
    document = openapi_document()
    suggest_limit = next(p for p in document["paths"]["/api/suggest"]["get"]["parameters"] if p["name"] == "limit")
    suggest_limit["schema"]["maximum"] = MAX_SUGGEST_LIMIT + 1
    document["paths"]["/healthz"]["get"]["summary"] = "Liveness, within 250 ms."
    document["paths"]["/c/{slug}"]["get"]["parameters"][1]["schema"]["maxLength"] = 9
    problems = limit_problems(document)
    assert [p.split(":")[0] for p in problems] == [
        "paths./c/{slug}.get.parameters.page.schema.maxLength",
        "paths./api/suggest.get.parameters.limit.schema.maximum",
        "paths./healthz.get.summary",
    ], problems
