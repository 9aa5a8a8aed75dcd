"""Shared pytest fixtures. The service fixtures live in ``service_helpers`` (importable helpers)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from index_helpers import small_tmpfs
from service_helpers import article_ids, built_index, corpus_dir, http, service  # noqa: F401  (fixtures)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB file system (tmpfs) that a test can fill to the last byte; skips without root."""
    with small_tmpfs(tmp_path / "disk", "2m") as mount:
        yield mount
