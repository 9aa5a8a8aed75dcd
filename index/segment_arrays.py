"""Posting arrays: a segment's text postings as plain arrays, read without decoding.

Why: Whoosh stores a term's postings in pickled, zlib-compressed blocks of 128, and turning them
into arrays (``index.postings.id_weight_arrays``) costs a dozen Python calls a block, pickle and
zlib included. A distinct search reads a few dozen terms, some of them with tens of thousands of
postings, and a fresh generation reads them all again: on the full corpus, decoding was the
largest single cost of a distinct search (py-spy of a worker under 16 connections, issue 14:
31.7 % of its samples in ``DocSets.postings``, 17.9 % in the blocks' pickle and zlib alone). The
numbers themselves are what scoring and match sets need, so a build writes them a second time,
as arrays, into the segment: a reader finds a term by a binary search in a sorted table of hashed
terms and reads its document numbers and frequencies in one piece, nothing to decode.

Written here because no library writes or reads Whoosh segments' postings this way; Whoosh's own
files stay exactly as Whoosh writes them (``index.build_writer``), the arrays are one more file in
the segment's compound file (``EXT``), so they are committed, merged away and deleted with the
segment and a crash can never leave arrays without their segment or the reverse. The build writer
also writes the publishing applier's segments and its merges; segments written by Whoosh's own
writer (``searchsvc index`` into a live index, its merges of tiny segments, an older build) have
none and are read as before.

The file, little-endian::

    MAGIC, then for each term: its document numbers (int32) and frequencies (float32)
    keys:   uint64 * terms, ascending (``term_key`` of the field name and the term's bytes)
    starts: uint64 * terms (byte offset of the term's postings in the file)
    counts: uint32 * terms (its postings; ``AMBIGUOUS`` when two terms share a key)
    padding to 8 bytes, then fields (UTF-8, one per line), then the trailer:
    TRAILER: keys offset, terms, fields offset, fields length, documents, MAGIC
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from hashlib import blake2b
from typing import Any

import numpy as np
import numpy.typing as npt

EXT = ".arrays"  # the file's extension within the segment (Whoosh's names are "<segment id><ext>")
MAGIC = b"SSARR\x001\x00"
TRAILER = struct.Struct("<QQQQQ8s")
_START = struct.Struct("<Q")
_COUNT = struct.Struct("<I")
AMBIGUOUS = 0xFFFFFFFF  # a key two terms of the segment share: those terms are read from Whoosh
# Segments whose arrays a process keeps open at once (each: one descriptor and its key table, 8
# bytes a term). A segment merged away leaves the table first.
OPEN_SEGMENTS = 64

IdArray = npt.NDArray[np.int32]
WeightArray = npt.NDArray[np.float32]


def term_key(field: str, tbytes: bytes) -> int:
    """The term's 64-bit key: unique within a segment but for a collision (``AMBIGUOUS``)."""
    return int.from_bytes(blake2b(field.encode() + b"\x00" + tbytes, digest_size=8).digest(), "little")


class ArraysWriter:
    """Writes a segment's arrays to ``dbfile`` (a Whoosh ``StructFile``), term by term, in the order
    the segment writer writes its terms; ``close`` adds the table. Memory: the table only (20
    bytes a term), the postings go straight to the file."""

    def __init__(self, dbfile: Any, documents: int) -> None:
        self._file = dbfile
        self._documents = documents
        self._fields: list[str] = []
        self._keys = array("Q")
        self._starts = array("Q")
        self._counts = array("I")
        self._position = len(MAGIC)
        self._parts: list[bytes] = []
        self._buffered = 0
        dbfile.write(MAGIC)

    def start_field(self, field: str) -> None:
        if field in self._fields:
            raise ValueError(f"field {field!r} written twice")
        self._fields.append(field)

    def add(self, tbytes: bytes, pairs: bytes | array[int]) -> None:
        """A term of the current field: ``pairs``, its (document number, frequency) pairs as the
        segment stores them (``array('I')``, ascending document numbers)."""
        values = np.frombuffer(pairs, dtype=np.uint32)
        count = len(values) // 2
        chunk = values[0::2].astype("<i4").tobytes() + values[1::2].astype("<f4").tobytes()
        self._keys.append(term_key(self._fields[-1], tbytes))
        self._starts.append(self._position)
        self._counts.append(count)
        self._position += len(chunk)
        self._parts.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        self._file.write(b"".join(self._parts))
        self._parts, self._buffered = [], 0

    def close(self) -> None:
        """The table (sorted by key, shared keys marked ``AMBIGUOUS``), the fields, the trailer."""
        self._flush()
        keys = np.frombuffer(self._keys, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.frombuffer(self._starts, dtype=np.uint64)[order]
        counts = np.frombuffer(self._counts, dtype=np.uint32)[order].copy()
        shared = np.zeros(len(keys), dtype=np.bool_)
        if len(keys) > 1:
            same = keys[1:] == keys[:-1]
            shared[1:] |= same
            shared[:-1] |= same
        counts[shared] = AMBIGUOUS
        pad = -self._position % 8
        keys_at = self._position + pad
        fields = "\n".join(self._fields).encode()
        fields_at = keys_at + 20 * len(keys)
        self._file.write(b"\x00" * pad + keys.astype("<u8").tobytes() + starts.astype("<u8").tobytes()
                         + counts.astype("<u4").tobytes() + fields)
        self._file.write(TRAILER.pack(keys_at, len(keys), fields_at, len(fields), self._documents, MAGIC))
        self._file.close()


class SegmentArrays:
    """A segment's arrays: the key table in memory, a term's postings read on demand.

    Why reads, not a memory map: a map's pages count in a worker's resident memory once touched,
    and a 10-minute soak put about 495 MB of mapped segment pages in each worker's RSS beside its
    own memory (docs/benchmarks.md). Read with ``os.pread``, the pages stay in the page cache,
    shared and reclaimable; a term costs three small reads (about 5 µs) where decoding it from
    Whoosh's blocks cost milliseconds. The key table (8 bytes a term: 14 MB for a full-corpus
    segment) is read once."""

    __slots__ = ("fields", "documents", "_read", "_keys", "_terms", "_starts_at", "_counts_at", "_postings_end",
                 "__weakref__")

    def __init__(self, read: Callable[[int, int], bytes], length: int) -> None:
        """``read(offset, size)``: the file's bytes at ``offset`` (fewer at its end); ``length``:
        its size. Raises ValueError when they are not a whole arrays file."""
        if sys.byteorder != "little":  # the keys are read as native unsigned 64-bit numbers
            raise ValueError("posting arrays are read on little-endian machines only")
        if length < len(MAGIC) + TRAILER.size or read(0, len(MAGIC)) != MAGIC:
            raise ValueError("not a posting-arrays file")
        trailer = read(length - TRAILER.size, TRAILER.size)
        if len(trailer) != TRAILER.size:
            raise ValueError("a posting-arrays file cut short")
        keys_at, terms, fields_at, fields_len, documents, magic = TRAILER.unpack(trailer)
        if magic != MAGIC or fields_at != keys_at + 20 * terms or fields_at + fields_len + TRAILER.size != length:
            raise ValueError("a posting-arrays file cut short or damaged")
        keys = read(keys_at, 8 * terms)
        fields = read(fields_at, fields_len)
        if len(keys) != 8 * terms or len(fields) != fields_len:
            raise ValueError("a posting-arrays file cut short")
        self._read = read
        self.documents = documents
        self.fields = frozenset(fields.decode().split("\n")) - {""}
        # Searched with ``bisect`` over a typed view of the keys (numpy's ``searchsorted`` would
        # first copy them whenever they are not 8-byte aligned: 1 ms a look-up).
        self._keys = memoryview(keys).cast("Q")
        self._terms = terms
        self._starts_at = keys_at + 8 * terms
        self._counts_at = keys_at + 16 * terms
        self._postings_end = keys_at  # every term's postings lie between MAGIC and the key table

    @classmethod
    def from_bytes(cls, data: bytes) -> SegmentArrays:
        """The arrays of a whole file held in memory (tests, tools)."""
        return cls(lambda offset, size: bytes(data[offset:offset + size]), len(data))

    def _find(self, field: str, tbytes: bytes) -> tuple[int, int] | None:
        """(start, count) of the term's postings, (0, 0) when the segment lacks it; None when these
        arrays cannot tell: a field they do not hold, a key two terms share, or a record that
        points outside the postings (a damaged file: nothing is read for it)."""
        if field not in self.fields:
            return None
        key = term_key(field, tbytes)
        keys = self._keys
        i = bisect_left(keys, key)
        if i >= self._terms or keys[i] != key:
            return (0, 0)
        read = self._read
        counted = read(self._counts_at + 4 * i, 4)
        started = read(self._starts_at + 8 * i, 8)
        if len(counted) != 4 or len(started) != 8:
            return None
        (count,) = _COUNT.unpack(counted)
        (start,) = _START.unpack(started)
        if count == AMBIGUOUS or start < len(MAGIC) or start + 8 * count > self._postings_end:
            return None
        return start, count

    def count(self, field: str, tbytes: bytes) -> int | None:
        """The term's document frequency (deleted documents included), without reading its postings;
        None as ``lookup``."""
        found = self._find(field, tbytes)
        return None if found is None else found[1]

    def lookup(self, field: str, tbytes: bytes) -> tuple[IdArray, WeightArray] | None:
        """The term's local document numbers (ascending, deleted ones included) and frequencies
        (read-only arrays over the bytes read); empty arrays when the segment lacks it; None when
        these arrays cannot tell (``_find``, or a file cut short since): ask Whoosh."""
        found = self._find(field, tbytes)
        if found is None:
            return None
        start, count = found
        if not count:
            return EMPTY
        raw = self._read(start, 8 * count)
        if len(raw) != 8 * count:
            return None
        return (np.frombuffer(raw, dtype="<i4", count=count),
                np.frombuffer(raw, dtype="<f4", count=count, offset=4 * count))


EMPTY: tuple[IdArray, WeightArray] = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))


class _Opened:
    """The process's opened segments, by segment id (a segment never changes once written).

    Opened arrays hold their file (a descriptor, and the disk space of a file deleted meanwhile) as
    long as they live: only this table and the ``DocSets`` of the searchers that use the segment
    keep them, and ``release`` lets go of the segments no open generation holds (a replaced
    generation's, a merged-away one's)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_segment: dict[str, SegmentArrays | None] = {}


_OPENED = _Opened()


def arrays_of(leaf: Any) -> SegmentArrays | None:
    """The arrays of a Whoosh ``SegmentReader``'s segment, None when it has none (written by
    Whoosh's own writer) or they cannot be read (then the segment is read through Whoosh)."""
    segment = leaf.segment() if hasattr(leaf, "segment") else None
    if segment is None:
        return None
    segment_id = segment.segment_id()
    with _OPENED.lock:
        if segment_id in _OPENED.by_segment:
            return _OPENED.by_segment[segment_id]
    found = _open(leaf, segment)
    with _OPENED.lock:
        if len(_OPENED.by_segment) >= OPEN_SEGMENTS:
            _OPENED.by_segment.pop(next(iter(_OPENED.by_segment)))  # the oldest; its users keep it open
        _OPENED.by_segment[segment_id] = found
    return found


def release(keep: Iterable[str] = ()) -> None:
    """Forget every opened segment but those in ``keep`` (segment ids); one closes as soon as the
    searchers still using it do."""
    wanted = set(keep)
    with _OPENED.lock:
        for segment_id in [k for k in _OPENED.by_segment if k not in wanted]:
            del _OPENED.by_segment[segment_id]


def _open(leaf: Any, segment: Any) -> SegmentArrays | None:
    """Open the file holding the segment's arrays (its compound file, or the arrays file itself);
    the descriptor is closed when the arrays are no longer used."""
    storage = getattr(leaf, "_storage", None)
    base = getattr(storage, "b", storage)  # SegmentReader overlays the compound file on the folder
    folder = getattr(base, "folder", None)
    if folder is None:
        return None
    name = segment.make_filename(EXT)
    if segment.is_compound():
        compound = getattr(storage, "a", None)
        try:
            offset, length = compound.range(name)  # type: ignore[union-attr]
        except (AttributeError, NameError):
            return None
        path = os.path.join(folder, segment.make_filename(".seg"))
    else:
        path = os.path.join(folder, name)
        offset = 0
        try:
            length = os.path.getsize(path)
        except OSError:
            return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        arrays = SegmentArrays(lambda at, size: os.pread(fd, size, offset + at), length)
    except (OSError, ValueError):
        os.close(fd)
        return None
    weakref.finalize(arrays, os.close, fd)
    if arrays.documents != segment.doc_count_all():
        return None  # the finalizer closes the descriptor
    return arrays


def write_arrays(dbfile: Any, documents: int,
                 fields: Iterable[tuple[str, Iterable[tuple[bytes, bytes | array[int]]]]]) -> None:
    """A whole arrays file from (field, [(term bytes, pairs)]) in one go (tests, tools)."""
    writer = ArraysWriter(dbfile, documents)
    for field, terms in fields:
        writer.start_field(field)
        for tbytes, pairs in terms:
            writer.add(tbytes, pairs)
    writer.close()
