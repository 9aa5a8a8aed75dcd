"""Shared pytest fixtures. The service fixtures live in ``service_helpers`` (importable helpers)."""

from service_helpers import article_ids, built_index, corpus_dir, http, service  # noqa: F401  (fixtures)
