"""The cluster engine's write side: upsert and delete articles, ``--rebuild`` behind an alias, commits.

What the readers see (``index.typesense.connection`` has the names). The articles live in a target
collection ``{prefix}_articles_{stamp}`` that the alias ``{prefix}_articles`` points at. Typesense
makes a write visible at once and has no transactions, so "a commit" is ours: after a batch that
changed something, one document in ``{prefix}_changes`` (``seq``, the ids written or deleted, the
category slugs they were in before and are in now, ``everything`` for a switched collection) and
then the ``state`` document of ``{prefix}_meta`` (``seq``, ``target``, ``labels``, and
``applied_seq``: the last publishing-journal entry a commit applied, which the publishing applier
writes through ``index.typesense.applier_writer`` and every other commit carries over). Serve nodes
poll ``state``: ``{target}.{seq}`` is their generation token, and the change documents with a seq
in (old, new] say what a cache must drop (``SearchEngine.changes_between``).

Why the change document is written *before* its batch is imported: a writer killed between the
import and the ``state`` write leaves articles changed and no newer ``state``. Its change document
is already there, with a seq above ``state``'s; the next commit's seq is higher still (a writer
starts from the newest seq of both), so readers going from the old generation to the next one read
those ids as changed too. The document may list an id whose line of the import then failed: a cache
dropped for nothing, never a stale one kept.

Why versions are read before a batch is written: ``version`` is the article's content hash
(``documents.content_version``). An article whose version is already in the collection is not
written again and is no change (``Changes``: "an identical re-index is no change"), so re-indexing a
whole archive commits nothing and drops no cache. The counts stay those of the Whoosh builder
(``IndexReport``: such an article is *updated*); ``ClusterIndexReport.unchanged`` says how many of
those were already there. Like the Whoosh catalog, the version covers the article, not the
analysis: after a change to the analysis, ``--rebuild``.

``--rebuild`` fills a new target the readers cannot see, then swaps the alias (one atomic PUT),
then writes ``state`` (new target, an ``everything`` change), then drops the old target. A rebuild
that fails or is interrupted drops its own collection and leaves the alias, ``state`` and the old
documents as they were; one killed outright (SIGKILL) leaves an unreferenced collection behind,
which the next successful rebuild drops (every ``{prefix}_articles_{stamp}`` older than the new
target that no alias names). A writer killed between the alias swap and the ``state`` write leaves
``state`` naming the old target: ``ensure()`` (every run starts with it) sees that and commits the
alias's target with an ``everything`` change.

**One writer at a time per prefix.** Typesense has no compare-and-swap: two writers would each
compute the next seq from what they read, and a rebuild would drop a target another writer is
still filling. The Whoosh engine's writer lock has no equivalent here; the operator runs one
indexer (or the publishing applier) per prefix. ``ensure()`` alone is safe to race: "already
exists" answers are expected and the loser of a race for the first target drops its own.

Canonical category labels as in ``index.builder.CanonicalLabels``: the first label seen for a slug
stays (the map is ``state.labels``, JSON); an article with another label for a known slug is
indexed under the canonical one, with a warning. An update writes a new slug's label to ``state``
before the batch that brings the slug, so a reader that meets the slug finds its label.

Bounds: ``batch`` ≤ 1,000 articles per import; a filter names ≤ 100 ids and stays far below the
4,000 characters of a GET query (Typesense 0.24.1, measured); ids holding a backtick (which no
filter can quote) are read and deleted one by one; at most ``max_changes`` change documents are
kept (older ones are deleted every ``PRUNE_EVERY`` commits and at the end of a run); every HTTP call
has the write client's timeout and retries (``connection.write_client``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import typesense
from typesense.exceptions import ObjectAlreadyExists, ObjectNotFound, TypesenseClientError

from index.article import Article
from index.builder import IndexReport, ProgressFn, WarningFn, canonical_label, reason_key
from index.readers import ReadError
from index.typesense import documents
from index.typesense.connection import ClusterSettings, write_client

T = TypeVar("T")

MAX_BATCH = 1000  # articles per import (one request body, one commit)
DEFAULT_BATCH = 500
MAX_CHANGES = 10_000  # change documents kept
PRUNE_EVERY = 100  # commits between two prunings of the change documents
MAX_REPORTED = 1000  # errors and warnings kept in a report (IndexReport)
READ_BACK_TIMEOUT = 10.0  # seconds a document or alias just written may take to reach the node read
FILTER_IDS = 100  # ids in one filter_by (Typesense 0.24.1: ~100 tokens per filter expression)
FILTER_CHARS = 3000  # URL-encoded characters of one filter's ids (a GET query holds 4,000)
STAMP = "%Y%m%dT%H%M%S%f"  # UTC: targets sort by name as by age
STATE_ID = "state"


class ClusterWriteError(OSError):
    """The cluster did not answer or refused a write; the message says which and why. An OSError,
    as a full disk is for the Whoosh builder: the CLI reports it in one line."""


@dataclass
class ClusterIndexReport(IndexReport):
    """``IndexReport``, plus how many of the *updated* articles were already in the cluster with the
    same content (not written again, no change)."""

    unchanged: int = 0

    def summary(self) -> str:
        text = super().summary()
        if self.unchanged:
            updated = f"updated {self.updated}"
            text = text.replace(updated, f"{updated} ({self.unchanged} unchanged)", 1)
        return text


@dataclass(frozen=True, slots=True)
class State:
    """The ``state`` document: the commit counter, the alias target it belongs to, the labels, and
    the last journal entry applied (``index.publishing``; 0 when none)."""

    seq: int
    target: str
    labels: dict[str, str]
    applied_seq: int = 0

    @property
    def generation(self) -> str:
        return f"{self.target}.{self.seq}"


@dataclass(slots=True)
class _Pending:
    """An article waiting for its batch: its document, its slug, and whether it was counted as a
    duplicate when read (its id came in an earlier batch of this run) or as a first occurrence."""

    doc: dict[str, Any]
    line: bytes  # the document as a line of the import's JSONL
    slug: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class _Stored:
    version: int | None
    slug: str  # plain (``documents.untoken``)
    month: str  # plain "YYYY-MM"; "" if the document has none
    by_filter: bool  # found by a filter (so a filter names it), not asked for by its id alone


class _Labels:
    """The canonical label of each slug (``index.builder.CanonicalLabels``, without its files)."""

    def __init__(self, labels: dict[str, str], warn: WarningFn) -> None:
        self.labels = labels
        self.dirty = False  # a slug was added since the map was last written
        self._warn = warn

    def apply(self, article: Article) -> Article:
        article, added = canonical_label(self.labels, article, self._warn)
        self.dirty |= added
        return article


@contextlib.contextmanager
def _cluster_errors(what: str) -> Iterator[None]:
    """Failures of the client (an HTTP status after the retries, a node that never answered) as
    ``ClusterWriteError``: httpx's transport errors are not OSErrors, and the client's own ones
    read "(503, 'Not Ready or Lagging')"."""
    try:
        yield
    except ClusterWriteError:
        raise
    except TypesenseClientError as exc:
        args = exc.args
        detail = f"HTTP {args[0]}: {args[1]}" if len(args) == 2 and isinstance(args[0], int) else str(exc)
        raise ClusterWriteError(f"{what}: Typesense answered {detail}") from exc
    except httpx.HTTPError as exc:
        raise ClusterWriteError(f"{what}: no Typesense node answered ({type(exc).__name__}: {exc})") from exc


def _document(article: Article) -> tuple[dict[str, Any], bytes]:
    """The article's document and its JSONL line (raises ValueError for text UTF-8 cannot hold,
    as a lone surrogate from a caller that did not clean it: that article is skipped, not the batch)."""
    doc = documents.article_document(article)
    return doc, json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _stamp_of(name: str, alias: str) -> str | None:
    match = re.fullmatch(re.escape(alias) + r"_(\d{8}T\d{12})", name)
    return match.group(1) if match else None


def _filter_value(article_id: str) -> str:
    return f"`{article_id}`"


def _id_filters(ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """``filter_by`` expressions naming ``ids`` (each ≤ FILTER_IDS ids, ≤ FILTER_CHARS encoded),
    and the ids no filter can name, read one by one: a backtick inside (no quoting for it),
    whitespace around (a filter trims it: measured), or too long."""
    filters: list[str] = []
    single: list[str] = []
    chunk: list[str] = []
    size = 0
    for article_id in ids:
        value = _filter_value(article_id)
        cost = len(quote(value, safe="")) + 3  # the encoded comma
        if "`" in article_id or article_id != article_id.strip() or cost > FILTER_CHARS // 4:
            single.append(article_id)
            continue
        if chunk and (len(chunk) >= FILTER_IDS or size + cost > FILTER_CHARS):
            filters.append("id:[" + ",".join(chunk) + "]")
            chunk, size = [], 0
        chunk.append(value)
        size += cost
    if chunk:
        filters.append("id:[" + ",".join(chunk) + "]")
    return filters, single


def _eventually(read: Callable[[], T | None], timeout: float = READ_BACK_TIMEOUT) -> T | None:
    """``read()`` until it finds what was just written, for ``timeout`` seconds at most.

    Why: the client sends each request to the next node in turn, and a follower applies a write a
    little after the leader has acknowledged it (no read-your-writes: measured up to 0.4 s on a
    3-node loopback cluster, longer under load), so a document or an alias just created can be
    missing from the next read."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


class ClusterWriter:
    """Writes articles into the cluster of ``settings`` (see the module docstring)."""

    max_changes = MAX_CHANGES

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.client: typesense.Client = write_client(settings)
        self._state: State | None = None
        self._floor = 0  # the highest seq seen in state or the change documents
        self._commits = 0  # since the change documents were last pruned
        self._created = False  # meta and changes exist (created or found by this writer)

    def close(self) -> None:
        """Close the client's connections (an httpx client: its sockets would otherwise linger)."""
        self.client.api_call.close()

    def __enter__(self) -> ClusterWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup ------------------------------------------------------------------------------------

    def ensure(self) -> State:
        """Create what is missing (meta, changes, a first target and the alias, ``state``) and make
        ``state`` agree with the alias; returns ``state``. Idempotent; a race is harmless."""
        s = self.settings
        with _cluster_errors("preparing the collections"):
            if not self._created:
                self._create({"name": s.meta, "fields": [{"name": "seq", "type": "int64"}]})
                self._create({"name": s.changes, "fields": [{"name": "seq", "type": "int64", "sort": True}],
                              "default_sorting_field": "seq"})
                self._created = True
            target = self._alias_target()
            if target is None:
                target = self._first_target()
            state = _eventually(self._read_state)
            if state is None:
                raise ClusterWriteError(f"{s.meta}: the state document vanished while the alias was being created")
            self._state = state
            self._floor = max(self._floor, state.seq, self._newest_change())
            if state.target != target:
                # A writer stopped between swapping the alias and writing state: state catches up.
                seq = self._next_seq()
                self._record(seq, [], [], everything=True)
                self._publish(seq, target, state.labels)
        assert self._state is not None
        return self._state

    def _first_target(self) -> str:
        """Point the alias at a first target: the one ``state`` names, else a new one. Creating
        ``state`` (a create, not an upsert) decides a race: the losers drop their empty target and
        point the alias where the winner's ``state`` says."""
        s = self.settings
        state = self._read_state()
        if state is None:
            name = self._new_target_name(None)
            self._create(cast(Any, documents.collection_schema(name)))
            with contextlib.suppress(ObjectAlreadyExists):
                self._meta().documents.create({"id": STATE_ID, "seq": time.time_ns(), "target": name,
                                               "labels": "{}"})
            state = _eventually(self._read_state)
            if state is None:
                raise ClusterWriteError(f"{s.meta}: the state document vanished while it was being created")
            if state.target != name:
                self._drop(name)
        # A target that is gone (removed by hand) comes back empty rather than an alias to nothing.
        self._create(cast(Any, documents.collection_schema(state.target)))
        self.client.aliases.upsert(s.alias, {"collection_name": state.target})
        target = _eventually(self._alias_target)
        if target is None:
            raise ClusterWriteError(f"alias {s.alias} vanished while it was being created")
        return target

    def _create(self, schema: Any) -> None:
        with contextlib.suppress(ObjectAlreadyExists):
            self.client.collections.create(schema)

    def _alias_target(self) -> str | None:
        try:
            return self.client.aliases[self.settings.alias].retrieve()["collection_name"]
        except ObjectNotFound:
            return None

    def _meta(self) -> Any:
        return self.client.collections[self.settings.meta]

    def _read_state(self) -> State | None:
        try:
            doc: dict[str, Any] = dict(self._meta().documents[STATE_ID].retrieve())
        except ObjectNotFound:
            return None
        try:
            labels = json.loads(doc.get("labels") or "{}")
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise ValueError("labels is not an object of strings")
            return State(int(doc["seq"]), str(doc["target"]), {str(k): v for k, v in labels.items()},
                         int(doc.get("applied_seq") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterWriteError(f"{self.settings.meta}/{STATE_ID} is malformed ({exc}): {doc!r:.200}") from exc

    def _newest_change(self) -> int:
        result = self.client.collections[self.settings.changes].documents.search(
            {"q": "*", "query_by": "", "sort_by": "seq:desc", "per_page": 1, "include_fields": "seq"})
        hits = result.get("hits") or []
        return int(cast(Any, hits[0])["document"]["seq"]) if hits else 0

    def _new_target_name(self, after: str | None) -> str:
        """``{alias}_{stamp}``, the stamp now (UTC) and later than ``after``'s (a clock set back)."""
        stamp = datetime.now(UTC)
        previous = _stamp_of(after, self.settings.alias) if after else None
        if previous is not None:
            floor = datetime.strptime(previous, STAMP).replace(tzinfo=UTC) + timedelta(microseconds=1)
            stamp = max(stamp, floor)
        return f"{self.settings.alias}_{stamp.strftime(STAMP)}"

    def _drop(self, name: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self.client.collections[name].delete()

    # -- commits ----------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = max(time.time_ns(), self._floor + 1)
        self._floor = seq
        return seq

    def _record(self, seq: int, ids: Sequence[str], categories: Iterable[str], months: Iterable[str] = (), *,
                everything: bool = False) -> None:
        """The change document of commit ``seq`` (an upsert: the client may send it twice):
        the ids, and the categories and months of publication they were in before or are in now."""
        self.client.collections[self.settings.changes].documents.upsert({
            "id": str(seq), "seq": seq, "ids": list(ids), "categories": sorted(set(categories)),
            "months": sorted(set(months) - {""}), "everything": everything,
        })

    def _publish(self, seq: int, target: str, labels: dict[str, str], applied_seq: int | None = None) -> None:
        """``state`` at ``seq``: the commit becomes the readers' generation. ``applied_seq``: the
        journal entry this commit applied; None keeps the one ``state`` had (an upsert replaces
        the whole document, so every write carries it)."""
        if applied_seq is None:
            applied_seq = self._state.applied_seq if self._state is not None else 0
        self._meta().documents.upsert({
            "id": STATE_ID, "seq": seq, "target": target,
            "labels": json.dumps(labels, ensure_ascii=False, sort_keys=True), "applied_seq": applied_seq,
        })
        self._state = State(seq, target, dict(labels), applied_seq)
        self._commits += 1
        if self._commits >= PRUNE_EVERY:
            self._prune()

    def _prune(self) -> None:
        """Keep the newest ``max_changes`` change documents."""
        self._commits = 0
        changes = self.client.collections[self.settings.changes]
        if changes.retrieve()["num_documents"] <= self.max_changes:
            return
        result = changes.documents.search({"q": "*", "query_by": "", "sort_by": "seq:desc", "per_page": 1,
                                           "page": self.max_changes, "include_fields": "seq"})
        hits = result.get("hits") or []
        if hits:
            cutoff = int(cast(Any, hits[0])["document"]["seq"])
            changes.documents.delete({"filter_by": f"seq:<{cutoff}"})

    # -- reading what is stored -------------------------------------------------------------------

    def _stored(self, collection: str, ids: Sequence[str], *, each: bool = False) -> dict[str, _Stored]:
        """The version and category of those of ``ids`` that ``collection`` holds. ``each``: ids
        no filter found are asked for one by one too (a delete must not miss an id whose
        spelling a filter reads otherwise; an upsert writes it anyway)."""
        docs = self.client.collections[collection].documents
        found: dict[str, _Stored] = {}

        def keep(doc: dict[str, Any], by_filter: bool) -> None:
            version = doc.get("version")
            found[str(doc["id"])] = _Stored(version if isinstance(version, int) else None,
                                            documents.untoken(str(doc.get("category_slug") or "")),
                                            documents.untoken(str(doc.get("month") or "")), by_filter)

        filters, single = _id_filters(ids)
        for expression in filters:
            text = docs.export({"filter_by": expression, "include_fields": "id,version,category_slug,month"})
            for line in text.splitlines():
                if line.strip():
                    keep(json.loads(line), True)
        if each:
            single = [article_id for article_id in ids if article_id not in found]
        for article_id in single:
            try:
                keep(dict(docs[quote(article_id, safe="")].retrieve()), False)
            except ObjectNotFound:
                pass
        return found

    # -- indexing ---------------------------------------------------------------------------------

    def index_articles(
        self,
        items: Iterable[Article | ReadError],
        *,
        rebuild: bool = False,
        progress: ProgressFn | None = None,
        on_error: Callable[[ReadError], None] | None = None,
        on_warning: WarningFn | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> ClusterIndexReport:
        """Upsert articles (into a new target with ``rebuild``), counted as the Whoosh builder
        counts them; a commit after each batch that changed something."""
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be 1 to {MAX_BATCH}, not {batch}")
        report = ClusterIndexReport()

        def warn(message: str) -> None:
            if len(report.warnings) < MAX_REPORTED:
                report.warnings.append(message)
            if on_warning:
                on_warning(message)

        def error(problem: ReadError) -> None:
            if len(report.errors) < MAX_REPORTED:
                report.errors.append(str(problem))
            if on_error:
                on_error(problem)

        with _cluster_errors("writing articles"):
            state = self.ensure()
            labels = _Labels(dict(state.labels), warn)
            if not rebuild:
                self._write(state.target, items, report, labels, error, progress, batch, fresh=False)
                if self._commits:
                    self._prune()
                assert self._state is not None
                report.generation = self._state.generation
                return report
            old = state.target
            target = self._new_target_name(old)
            self._create(cast(Any, documents.collection_schema(target)))
            try:
                self._write(target, items, report, labels, error, progress, batch, fresh=True)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._drop(target)
                raise
            seq = self._next_seq()
            self._record(seq, [], [], everything=True)
            self.client.aliases.upsert(self.settings.alias, {"collection_name": target})
            self._publish(seq, target, labels.labels)
            if old != target:
                self._drop(old)
            self._drop_stale(target)
            self._prune()
            report.generation = f"{target}.{seq}"
            return report

    def _write(self, target: str, items: Iterable[Article | ReadError], report: ClusterIndexReport,
               labels: _Labels, error: Callable[[ReadError], None], progress: ProgressFn | None, batch: int,
               *, fresh: bool) -> None:
        seen: set[str] = set()
        pending: dict[str, _Pending] = {}
        for item in items:
            report.read += 1
            if isinstance(item, ReadError):
                report.skipped[reason_key(item.reason)] += 1
                error(item)
                continue
            try:
                doc, line = _document(item)
            except (OverflowError, ValueError) as e:  # as the Whoosh builder: a value no field holds
                report.skipped[f"cannot index ({type(e).__name__})"] += 1
                error(ReadError(item.id, None, f"cannot index: {e}"))
                continue
            canonical = labels.apply(item)
            if canonical is not item:
                doc, line = _document(canonical)
            if item.id in seen:
                report.duplicates += 1
                earlier = pending.get(item.id)
                pending[item.id] = _Pending(doc, line, item.category_slug, earlier.duplicate if earlier else True)
            else:
                seen.add(item.id)
                pending[item.id] = _Pending(doc, line, item.category_slug, False)
            if progress:
                progress(1)
            if len(pending) >= batch:
                self._flush(target, pending, report, labels, error, fresh=fresh)
                pending = {}
        if pending:
            self._flush(target, pending, report, labels, error, fresh=fresh)

    def _flush(self, target: str, pending: dict[str, _Pending], report: ClusterIndexReport, labels: _Labels,
               error: Callable[[ReadError], None], *, fresh: bool) -> None:
        """One batch: the articles that differ from what ``target`` holds, imported; a commit
        unless ``fresh`` (a rebuild commits once, when it swaps the alias)."""
        stored = {} if fresh else self._stored(target, list(pending))
        writes: list[tuple[str, _Pending]] = []
        categories: set[str] = set()
        months: set[str] = set()
        for article_id, item in pending.items():
            before = stored.get(article_id)
            if before is not None and before.version == item.doc["version"]:
                if not item.duplicate:
                    report.updated += 1
                    report.unchanged += 1
                continue
            writes.append((article_id, item))
            categories.add(item.slug)
            months.add(documents.untoken(str(item.doc["month"])))
            if before is not None:
                categories.add(before.slug)
                months.add(before.month)
        if not writes:
            return
        seq = 0
        assert self._state is not None
        if not fresh:
            if labels.dirty:  # the labels of new slugs before the articles that bring them
                self._publish_labels(target, labels)
            seq = self._next_seq()
            self._record(seq, [article_id for article_id, _ in writes], categories, months)
        failed = self._import(target, [(article_id, item.line) for article_id, item in writes])
        for article_id, item in writes:
            reason = failed.get(article_id)
            if reason is not None:
                report.skipped[reason_key(reason)] += 1
                if item.duplicate:  # counted as a duplicate when read: now skipped instead
                    report.duplicates -= 1
                error(ReadError(article_id, None, reason))
            elif not item.duplicate:
                if article_id in stored:
                    report.updated += 1
                else:
                    report.indexed += 1
        if not fresh and len(failed) < len(writes):
            self._publish(seq, target, labels.labels)
            labels.dirty = False

    def _publish_labels(self, target: str, labels: _Labels) -> None:
        assert self._state is not None
        self._meta().documents.upsert({
            "id": STATE_ID, "seq": self._state.seq, "target": target,
            "labels": json.dumps(labels.labels, ensure_ascii=False, sort_keys=True),
            "applied_seq": self._state.applied_seq,
        })
        labels.dirty = False

    def _import(self, collection: str, docs: list[tuple[str, bytes]]) -> dict[str, str]:
        """Upsert ``docs`` (id, JSON line); the ids of those Typesense refused, with its reason.
        Every line of the answer is read: a refused document is reported, never silently lost."""
        body = b"\n".join(line for _, line in docs)
        raw = self.client.collections[collection].documents.import_(body, {"action": "upsert"})
        lines = [line for line in raw.split("\n") if line.strip()]
        failed: dict[str, str] = {}
        for i, (article_id, _) in enumerate(docs):
            if i >= len(lines):
                failed[article_id] = "not written (Typesense's answer has no line for it)"
                continue
            try:
                answer = json.loads(lines[i])
            except ValueError:
                failed[article_id] = f"not written (unreadable answer {lines[i][:100]!r})"
                continue
            if not isinstance(answer, dict) or answer.get("success") is not True:
                detail = answer.get("error") if isinstance(answer, dict) else None
                failed[article_id] = f"refused by Typesense: {detail or answer}"
        return failed

    def _drop_stale(self, current: str) -> None:
        """Drop the targets older than ``current`` that no alias names (killed rebuilds)."""
        alias = self.settings.alias
        limit = _stamp_of(current, alias)
        if limit is None:
            return
        named = {a["collection_name"] for a in self.client.aliases.retrieve()["aliases"]}
        for collection in self.client.collections.retrieve():
            name = collection["name"]
            stamp = _stamp_of(name, alias)
            if stamp is not None and stamp < limit and name not in named:
                self._drop(name)

    # -- deleting ---------------------------------------------------------------------------------

    def delete_articles(self, ids: Iterable[str]) -> int:
        """Delete articles by id; how many were in the cluster (a missing id is no error). A
        commit per chunk of ids that deleted something. (A delete the client had to send again,
        its first answer lost, counts only what the second one found.)"""
        wanted = list(dict.fromkeys(ids))
        deleted = 0
        with _cluster_errors("deleting"):
            state = self.ensure()
            target = state.target
            for start in range(0, len(wanted), MAX_BATCH):
                stored = self._stored(target, wanted[start:start + MAX_BATCH], each=True)
                if not stored:
                    continue
                seq = self._next_seq()
                self._record(seq, list(stored), {s.slug for s in stored.values()}, {s.month for s in stored.values()})
                deleted += self._delete(target, stored)
                assert self._state is not None
                self._publish(seq, target, self._state.labels)
            if self._commits:
                self._prune()
        return deleted

    def _delete(self, collection: str, stored: dict[str, _Stored]) -> int:
        """Delete the articles ``_stored`` found, each the way it was found (filter or id)."""
        docs = self.client.collections[collection].documents
        filters, _ = _id_filters([article_id for article_id, s in stored.items() if s.by_filter])
        single = [article_id for article_id, s in stored.items() if not s.by_filter]
        count = 0
        for expression in filters:
            count += docs.delete({"filter_by": expression})["num_deleted"]
        for article_id in single:
            try:
                docs[quote(article_id, safe="")].delete()
                count += 1
            except ObjectNotFound:
                pass
        return count

    # -- inspecting -------------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Target, seq, generation and number of articles, read only (nothing is created)."""
        with _cluster_errors("reading the cluster's state"):
            target = self._alias_target()
            state = self._read_state() if target is not None else None
            try:
                count = self.client.collections[target].retrieve()["num_documents"] if target else 0
            except ObjectNotFound:
                count = 0
        return {
            "alias": self.settings.alias,
            "target": target,
            "seq": state.seq if state else 0,
            "generation": state.generation if state else "",
            "num_documents": count,
        }
