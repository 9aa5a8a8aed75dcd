"""The OpenAPI 3.1 description of the service: ``searchsvc/openapi.json``, served at /api/openapi.json.

Written by hand rather than generated, so that it says what clients may rely on (stable error
codes, the meaning of ``tier``), not what the code happens to do; and kept as a plain JSON file so
that any OpenAPI tool can read it from the repository as it is.

Its limits (``maxLength``, ``maximum``, ``default``, ``enum``, the numbers in descriptions) are
typed in, not filled in when served: a document with placeholders would not be a valid document
until the service rewrote it. ``tests/test_error_registry.py`` instead holds every limit in the
file equal to the code's constant, and fails on a number it does not know, so a limit changed in
the code cannot leave the document behind. The same tests hold ``components.x-error-codes`` equal
to ``searchsvc.errors.ErrorCode`` (codes and statuses); ``tests/test_service_openapi.py`` checks
that every route is described and that the document is valid 3.1.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

DOCUMENT_FILE = "openapi.json"


def load_document() -> dict[str, Any]:
    """The document as the package ships it (``package-data`` in pyproject.toml)."""
    text = resources.files(__package__).joinpath(DOCUMENT_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


# Read once, at import (the app imports the API routes when it starts): a missing or malformed file
# stops the service from starting rather than answering 500 later.
_BASE = load_document()


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """A fresh copy of the document, with ``servers`` pointing at the public base URL."""
    document = copy.deepcopy(_BASE)
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document
