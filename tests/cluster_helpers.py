"""Building small real indexes on a Typesense cluster in tests, as ``index_helpers.build`` does on disk.

Why: the engine-level tests run over both engines (issue #13: "parametrize the existing engine-level
tests over both engines"), against a real Typesense 0.24.1 server, not a mock. One single-node
cluster serves the whole session (``conftest.typesense_cluster``; started only when a test asks for
it, ~1 s), and each build writes under a prefix of its own so that no test sees another's articles.
Closing the engine drops that prefix's collections and alias, so a long session does not pile up
collections in the server's memory.

``build_engine(kind, request, index_dir, articles)`` is what the parametrized tests call: the Whoosh
engine on ``index_dir`` or the cluster engine, the same articles either way.
"""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from index_helpers import build

from index.article import Article
from index.builder import IndexReport, index_articles
from index.publishing import Entry, Op
from index.whoosh_writer import WhooshIndexWriter

if TYPE_CHECKING:  # the cluster extra may be missing: imported when a cluster test runs
    from index.engine import WhooshEngine
    from index.typesense.connection import ClusterSettings
    from index.typesense.engine import TypesenseEngine

ENGINES = ["whoosh", "typesense"]
_builds = itertools.count(1)


def cluster_settings(request: pytest.FixtureRequest) -> ClusterSettings:
    """Settings for a prefix no other build of this session uses, named after the test (or module)
    for whoever reads the server's collections while debugging. Skips the test without the
    cluster extra (``conftest.typesense_cluster``)."""
    from index.typesense.connection import ClusterSettings

    cluster = request.getfixturevalue("typesense_cluster")
    name = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:32]
    return ClusterSettings(tuple(cluster.urls), cluster.api_key or "", f"t{next(_builds)}_{name}")


@functools.cache
def _dropping_engine() -> type[TypesenseEngine]:
    from index.typesense.engine import TypesenseEngine

    class DroppingEngine(TypesenseEngine):
        """The cluster engine, which on ``close`` also drops what its build wrote (its prefix)."""

        def close(self) -> None:
            try:
                drop_prefix(self.settings)
            finally:
                super().close()

    return DroppingEngine


def drop_prefix(settings: ClusterSettings) -> None:
    """Delete the alias and every collection under ``settings.prefix``."""
    from index.typesense.connection import write_client

    client = write_client(settings)
    try:
        try:
            client.aliases[settings.alias].delete()
        except Exception:
            pass
        for collection in client.collections.retrieve():
            name = str(collection["name"])
            if name.startswith(settings.prefix + "_"):
                client.collections[name].delete()
    finally:
        client.api_call.close()


def build_cluster_engine(request: pytest.FixtureRequest, articles: list[Article], **kwargs: Any) -> TypesenseEngine:
    """Index ``articles`` into a fresh prefix of the session's cluster and open an engine on them.
    The caller closes it (``with build_cluster_engine(...) as engine:``), which drops the prefix.
    ``kwargs`` go to ``ClusterWriter.index_articles`` (``on_warning``, ``rebuild`` ...)."""
    from index.typesense.writer import ClusterWriter

    settings = cluster_settings(request)
    try:
        with ClusterWriter(settings) as writer:
            writer.index_articles(articles, **kwargs)
        return _dropping_engine().open(settings)
    except BaseException:
        drop_prefix(settings)
        raise


def build_engine(kind: str, request: pytest.FixtureRequest, index_dir: Path, articles: list[Article],
                 **kwargs: Any) -> WhooshEngine | TypesenseEngine:
    """``index_helpers.build`` (``kind`` "whoosh") or ``build_cluster_engine`` ("typesense")."""
    if kind == "whoosh":
        return build(index_dir, articles, **kwargs)
    if kind == "typesense":
        return build_cluster_engine(request, articles, **kwargs)
    raise ValueError(f"unknown engine {kind!r}")


class Archive:
    """An archive written and read by one engine, for the tests of what writes do (the catalog,
    the category labels): ``index`` (the builder, ``rebuild`` included), ``apply`` (publishing
    entries, in order), ``open`` (a new engine on it). Whoosh: ``index_articles`` and
    ``WhooshIndexWriter.apply`` on ``index_dir``. Typesense: ``ClusterWriter.index_articles`` and
    ``delete_articles`` on a prefix of its own (the cluster writer has no ``apply``: a run of
    upserts is one ``index_articles``, a run of deletes one ``delete_articles``)."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, index_dir: Path) -> None:
        if kind not in ENGINES:
            raise ValueError(f"unknown engine {kind!r}")
        self.kind = kind
        self.index_dir = index_dir
        self.settings = cluster_settings(request) if kind == "typesense" else None

    def index(self, articles: list[Article], **kwargs: Any) -> IndexReport:
        if self.settings is None:
            return index_articles(self.index_dir, articles, **{"procs": 1, **kwargs})
        from index.typesense.writer import ClusterWriter

        kwargs.pop("procs", None)  # one writer, however many readers the Whoosh builder would use
        with ClusterWriter(self.settings) as writer:
            return writer.index_articles(articles, **kwargs)

    def apply(self, entries: list[Entry]) -> None:
        if self.settings is None:
            WhooshIndexWriter(self.index_dir).apply(entries)
            return
        from index.typesense.writer import ClusterWriter

        with ClusterWriter(self.settings) as writer:
            for op, run in itertools.groupby(entries, key=lambda e: e.op):
                batch = list(run)
                if op is Op.DELETE:
                    writer.delete_articles([e.article_id for e in batch])
                else:
                    writer.index_articles([e.article for e in batch if e.article is not None])

    def open(self) -> WhooshEngine | TypesenseEngine:
        if self.settings is None:
            from index.engine import WhooshEngine

            return WhooshEngine.open(self.index_dir)
        from index.typesense.engine import TypesenseEngine

        return TypesenseEngine.open(self.settings)

    def close(self) -> None:
        if self.settings is not None:
            drop_prefix(self.settings)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
