"""The index directory on disk: generations, the CURRENT pointer, the writer lock.

Layout::

    <index_dir>/CURRENT          name of the live generation ("gen-000003"), replaced atomically
    <index_dir>/gen-000003/      a complete Whoosh index (the one being served)
    <index_dir>/gen-000003/labels.json   its canonical category labels (see below)
    <index_dir>/gen-000003/journal-12.seq   the last journal entry applied by TOC generation 12 (see below)
    <index_dir>/gen-000002/      the previous one, kept so searchers still open on it keep working
    <index_dir>/writer.lock      held (flock) by the one ``searchsvc index`` run allowed at a time

Why generations: ``--rebuild`` writes a whole new index beside the live one and switches CURRENT
only when it is complete, so a failed or killed build never touches what is served. Updates write
into the live generation through Whoosh's own commit, which is atomic (its table of contents is
written to a temporary file and renamed), so a kill mid-update leaves the last commit intact.

Why canonical labels: a category is identified by its slug, and the label shown for it (pages,
facets, feed titles, OPML) must not depend on which article happens to be stored first: one
article labelled "THỂ THAO ☠ …" (slug ``the-thao``) would otherwise rename the category everywhere.
The first label ever seen for a slug is kept in ``labels.json`` and never changes: updates add new
slugs, a ``--rebuild`` starts from the live generation's map. It is written (atomically) before
the commit that adds a slug, so every commit a searcher can open has a label for each of its slugs.

Why ``journal-<toc generation>.seq``: the publishing applier (``index.whoosh_writer``) must record
the last journal sequence number it applied in the index commit itself, so that a crash between
committing and recording can neither lose nor re-apply entries. Whoosh's commit point is the rename
of its table of contents ``_MAIN_<n>.toc``; the writer knows ``n`` before committing, so it writes
(and fsyncs) ``journal-<n>.seq`` first, then commits. The applied number is read from the file of
the highest generation not above the live table of contents: a file for a generation that never
committed (a crash before the rename) is ignored, and removed under the writer lock before any
later commit could reach its number (``remove_uncommitted_seq_files``). Commits that apply no
journal entry (``searchsvc index``, a merge) write none and inherit the previous file's number.
Whoosh's own clean-up ignores these names, so ``prune_seq_files`` removes the superseded ones.

Why ``supports_mmap=False``: opening a searcher with mmap is far slower on a large index
(docs/benchmarks.md), and the service opens a new searcher whenever the index changes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from whoosh.filedb.filestore import FileStorage
from whoosh.index import FileIndex

from index.schema import build_schema

CURRENT = "CURRENT"
LOCK = "writer.lock"
LABELS = "labels.json"
_GEN_RE = re.compile(r"^gen-(\d{6,})$")
_SEQ_RE = re.compile(r"^journal-(\d+)\.seq$")
KEEP_GENERATIONS = 2


class IndexMissing(FileNotFoundError):
    """No index has been built in this directory yet."""


class IndexBusy(RuntimeError):
    """Another ``searchsvc index`` holds the writer lock."""


def default_index_dir() -> Path:
    return Path(os.environ.get("SEARCHSVC_INDEX_DIR") or "var/index")


def current_generation(index_dir: Path) -> str | None:
    """Name of the live generation, or None when there is no index."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not _GEN_RE.match(name) or not (index_dir / name).is_dir():
        return None
    return name


def storage(path: Path) -> FileStorage:
    return FileStorage(str(path), supports_mmap=False)


def open_live(index_dir: Path) -> tuple[str, FileIndex]:
    """Open the live generation; raises IndexMissing when there is none."""
    name = current_generation(index_dir)
    if name is None:
        raise IndexMissing(f"no index in {index_dir} (build one with: searchsvc index SOURCE --index-dir {index_dir})")
    return name, storage(index_dir / name).open_index()


def generation_numbers(index_dir: Path) -> list[int]:
    numbers = []
    if index_dir.is_dir():
        for child in index_dir.iterdir():
            m = _GEN_RE.match(child.name)
            if m:
                numbers.append(int(m.group(1)))
    return sorted(numbers)


def new_generation(index_dir: Path) -> tuple[str, FileIndex]:
    """Create an empty index in a fresh generation directory (not live until ``switch_to``)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    number = max(generation_numbers(index_dir), default=0) + 1
    name = f"gen-{number:06d}"
    path = index_dir / name
    path.mkdir()
    return name, storage(path).create_index(build_schema())


def switch_to(index_dir: Path, name: str) -> None:
    """Make ``name`` the live generation atomically, then drop generations older than the previous."""
    tmp = index_dir / (CURRENT + ".tmp")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, index_dir / CURRENT)
    _fsync_dir(index_dir)
    remove_stale_generations(index_dir)


def remove_stale_generations(index_dir: Path) -> list[str]:
    """Delete generations that are neither live nor the one before it (including half-built ones
    left by a killed ``--rebuild``, which are always newer than live but never became it)."""
    live = current_generation(index_dir)
    if live is None:
        return []
    match = _GEN_RE.match(live)
    if match is None:  # CURRENT names something that is not a generation: keep everything
        return []
    live_no = int(match.group(1))
    older = [n for n in generation_numbers(index_dir) if n < live_no]
    keep = {live_no, *older[-(KEEP_GENERATIONS - 1):]} if KEEP_GENERATIONS > 1 else {live_no}
    removed = []
    for n in generation_numbers(index_dir):
        if n not in keep:
            name = f"gen-{n:06d}"
            shutil.rmtree(index_dir / name, ignore_errors=True)
            removed.append(name)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def try_flock(fd: int) -> bool:
    """Take the exclusive flock on ``fd`` without waiting: False when another process holds it (the
    caller decides how to wait), any other failure raised."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


@contextmanager
def writer_lock(index_dir: Path, wait: float = 30.0) -> Iterator[None]:
    """Hold the one-writer lock; wait up to ``wait`` seconds, then raise IndexBusy.

    flock is released by the kernel when the holder dies, so a killed run never leaves a stale lock.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + wait
        announced = False
        while not try_flock(fd):
            if time.monotonic() >= deadline:
                raise IndexBusy(
                    f"another 'searchsvc index' is writing to {index_dir} (waited {wait:.0f} s); "
                    "try again when it finishes"
                )
            if not announced:
                import sys

                print(f"waiting for another 'searchsvc index' on {index_dir} to finish...", file=sys.stderr)
                announced = True
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def read_labels(generation_dir: Path) -> dict[str, str] | None:
    """The canonical labels (slug -> label) of a generation; None when it has none (an index
    built before they were kept, or an unreadable file: callers then fall back to the articles)."""
    try:
        data = json.loads((generation_dir / LABELS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return None
    return data


def write_labels(generation_dir: Path, labels: dict[str, str]) -> None:
    """Replace a generation's canonical labels atomically (a reader sees the old map or the new)."""
    tmp = generation_dir / (LABELS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(labels, f, ensure_ascii=False, sort_keys=True, indent=0)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, generation_dir / LABELS)


def labels_from_articles(reader: Any) -> dict[str, str]:
    """Slug -> label read from the first stored article of each slug (a Whoosh ``IndexReader``):
    how labels were chosen before ``labels.json``, used to seed the map of an older index."""
    labels: dict[str, str] = {}
    for slug in reader.field_terms("category_slug"):
        for docnum in reader.postings("category_slug", slug).all_ids():
            if reader.is_deleted(docnum):
                continue
            labels[slug] = json.loads(reader.stored_fields(docnum)["doc"])["category"]
            break
    return labels


def index_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- the applied journal sequence number, recorded per commit (see "Why journal-<n>.seq") --------


def toc_generation(generation_dir: Path) -> int:
    """The generation of the newest table of contents in ``generation_dir`` (-1 when none)."""
    from whoosh.index import TOC

    return int(TOC._latest_generation(storage(generation_dir), "MAIN"))


def _seq_files(generation_dir: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    try:
        children = list(generation_dir.iterdir())
    except FileNotFoundError:
        return found
    for child in children:
        m = _SEQ_RE.match(child.name)
        if m:
            found[int(m.group(1))] = child
    return found


def write_applied_seq(generation_dir: Path, toc_gen: int, seq: int) -> None:
    """Record that the commit writing table of contents ``toc_gen`` applies the journal up to
    ``seq``; durable (file and directory fsynced) before it returns, i.e. before that commit."""
    path = generation_dir / f"journal-{toc_gen}.seq"
    tmp = generation_dir / f"journal-{toc_gen}.seq.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{seq}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(generation_dir)


def read_applied_seq(generation_dir: Path, toc_gen: int | None = None) -> int:
    """The journal sequence number the commit ``toc_gen`` (default: the newest) has applied: the
    one recorded for the highest generation not above it; 0 when none was ever recorded."""
    if toc_gen is None:
        toc_gen = toc_generation(generation_dir)
    files = _seq_files(generation_dir)
    recorded = [n for n in files if n <= toc_gen]
    if not recorded:
        return 0
    try:
        return int(files[max(recorded)].read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        # Written atomically and fsynced, so unreadable means damaged: applying again from 0 is
        # safe (replaying upserts and deletes in order is idempotent), skipping entries is not.
        return 0


def remove_uncommitted_seq_files(generation_dir: Path) -> None:
    """Remove seq files (and temporaries) for generations above the live table of contents: left
    by a writer killed before its commit, they would otherwise be read as the number of a later
    commit that reached the same generation without applying those entries. Call under the
    writer lock, before writing."""
    live = toc_generation(generation_dir)
    for n, path in _seq_files(generation_dir).items():
        if n > live:
            path.unlink(missing_ok=True)
    for tmp in generation_dir.glob("journal-*.seq.tmp"):
        tmp.unlink(missing_ok=True)


def prune_seq_files(generation_dir: Path, toc_gen: int) -> None:
    """Remove the seq files superseded by the one ``toc_gen`` reads, but the one before it: a
    reader that listed the previous table of contents still finds its number."""
    files = _seq_files(generation_dir)
    for n in sorted(n for n in files if n <= toc_gen)[:-2]:
        files[n].unlink(missing_ok=True)
