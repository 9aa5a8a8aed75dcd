"""The hand-written OpenAPI document describes every route of the app and is valid 3.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from searchsvc.app import create_app
from searchsvc.config import Config
from searchsvc.openapi import openapi_document

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
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator not installed")
    validator.validate(openapi_document("http://127.0.0.1:8000"))


def test_served_document_is_the_same(http) -> None:  # noqa: ANN001 (fixture)
    response = http.get("/api/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["openapi"].startswith("3.1.")
    assert served["servers"][0]["url"] == str(http.base_url).rstrip("/")
    assert set(served["paths"]) == set(openapi_document()["paths"])


def test_docs_mention_every_path() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "service.md"
    if not docs.exists():
        pytest.skip("docs/service.md not written yet")
    text = docs.read_text(encoding="utf-8")
    for path, _ in app_routes():
        assert path in text, f"docs/service.md does not mention {path}"
