#!/usr/bin/env python
"""Compare two Whoosh indexes built from the same articles: is what they index the same?

    .venv/bin/python scripts/compare_index_build.py DIR_A DIR_B [--bytes-only] [--logical-only]

Written for issue #14 (a cheaper build that must index exactly what the old one did). Two checks:

* bytes: when both indexes have one segment each (a build with ``--procs 1``, which is
  deterministic), every file inside the two compound segment files, by extension (term table,
  postings, columns, stored fields), must be byte for byte the same;
* logical: for any number of segments (a two-process build splits the articles between its
  segments as the processes happen to take them, so its files differ from run to run), every
  document's stored fields, field lengths and column values, and every term's statistics and
  postings, with documents named by their ``id``.

Exit status 0 when both checks that ran found no difference, 1 otherwise (the first differences
are printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from index import store
from index.segment_arrays import EXT as ARRAYS_EXT

MAX_SHOWN = 20


def _open(index_dir: Path) -> Any:
    live = store.current_generation(index_dir)
    if live is None:
        sys.exit(f"error: no index in {index_dir}")
    return store.storage(index_dir / live).open_index()


def segment_files(ix: Any) -> dict[str, bytes]:
    """The files of an index's only segment, by extension (the segment id taken off)."""
    (segment,) = ix._segments()
    prefix = segment.segment_id()
    files: dict[str, bytes] = {}
    if segment.is_compound():
        cstore = segment.open_compound_file(ix.storage)
        for name in cstore.list():
            with cstore.open_file(name) as f:
                files[name.removeprefix(prefix)] = f.read()
        cstore.close()
    for name in ix.storage.list():
        if name.startswith(prefix + ".") and not name.endswith(segment.COMPOUND_EXT):
            with ix.storage.open_file(name) as f:
                files[name.removeprefix(prefix)] = f.read()
    return files


def compare_bytes(a: Any, b: Any) -> list[str]:
    if len(a._segments()) != 1 or len(b._segments()) != 1:
        return [f"bytes: needs one segment each (have {len(a._segments())} and {len(b._segments())})"]
    fa, fb = segment_files(a), segment_files(b)
    # The posting arrays (index.segment_arrays) are the build writer's alone; both builds of the
    # same writer hold them, and tests/test_segment_arrays.py checks them against Whoosh's postings.
    if (ARRAYS_EXT in fa) != (ARRAYS_EXT in fb):
        fa.pop(ARRAYS_EXT, None)
        fb.pop(ARRAYS_EXT, None)
    problems = []
    if sorted(fa) != sorted(fb):
        problems.append(f"bytes: different files {sorted(fa)} vs {sorted(fb)}")
    for ext in sorted(set(fa) & set(fb)):
        if fa[ext] != fb[ext]:
            first = next(
                (i for i, (x, y) in enumerate(zip(fa[ext], fb[ext], strict=False)) if x != y),
                min(len(fa[ext]), len(fb[ext])),
            )
            problems.append(f"bytes: {ext} differs ({len(fa[ext]):,} vs {len(fb[ext]):,} bytes, first at {first:,})")
    print(f"bytes: {len(fa)} files compared: " + ", ".join(f"{ext} {len(data):,}" for ext, data in sorted(fa.items())))
    return problems


def _docs(reader: Any) -> dict[int, str]:
    return {docnum: fields["id"] for docnum, fields in reader.iter_docs()}


def logical_view(ix: Any) -> Iterator[tuple[Any, Any]]:
    """(key, value) pairs describing everything the index holds, documents named by id."""
    with ix.reader() as reader:
        ids = _docs(reader)
        schema = ix.schema
        yield ("doc_count",), reader.doc_count()
        for docnum, doc_id in ids.items():
            yield ("stored", doc_id), tuple(sorted(reader.stored_fields(docnum).items()))
        scorable = [name for name, field in schema.items() if field.scorable]
        for name in scorable:
            yield ("field_length", name), reader.field_length(name)
            yield ("min/max length", name), (reader.min_field_length(name), reader.max_field_length(name))
            for docnum, doc_id in ids.items():
                yield ("doc_length", name, doc_id), reader.doc_field_length(docnum, name)
        for name, field in schema.items():
            if field.column_type and reader.has_column(name):
                column = reader.column_reader(name)
                for docnum, doc_id in ids.items():
                    yield ("column", name, doc_id), column[docnum]
        for fieldname, tbytes in reader.all_terms():
            info = reader.term_info(fieldname, tbytes)
            yield (
                ("terminfo", fieldname, tbytes),
                (info.weight(), info.doc_frequency(), info.min_length(), info.max_length(), info.max_weight()),
            )
            matcher = reader.postings(fieldname, tbytes)
            postings = []
            while matcher.is_active():
                postings.append((ids[matcher.id()], matcher.weight(), matcher.value()))
                matcher.next()
            yield ("postings", fieldname, tbytes), hash(tuple(sorted(postings)))


def compare_logical(a: Any, b: Any) -> list[str]:
    view_a = dict(logical_view(a))
    problems = []
    seen = 0
    for key, value in logical_view(b):
        seen += 1
        other = view_a.pop(key, "(missing)")
        if other != value:
            problems.append(f"logical: {key!r}: {other!r} vs {value!r}"[:300])
    for key in list(view_a)[:MAX_SHOWN]:
        problems.append(f"logical: {key!r} only in the first index")
    print(f"logical: {seen:,} items compared")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--bytes-only", action="store_true")
    ap.add_argument("--logical-only", action="store_true")
    args = ap.parse_args()
    a, b = _open(args.a), _open(args.b)
    problems: list[str] = []
    if not args.logical_only:
        problems += compare_bytes(a, b)
    if not args.bytes_only:
        problems += compare_logical(a, b)
    for line in problems[:MAX_SHOWN]:
        print(line)
    print("SAME" if not problems else f"DIFFERENT ({len(problems)} differences)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
