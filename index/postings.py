"""Block-at-a-time reading of Whoosh posting lists.

Why this exists: Whoosh's matcher API moves one posting at a time (``next()``, ``id()``,
``skip_to()`` are Python calls per posting), which made listing the documents of a common syllable
slow and was most of a query's time to score its candidates (figures in docs/benchmarks.md).
Whoosh's own format (``whoosh.codec.whoosh3.W3LeafMatcher``) stores postings in blocks of up to
128 with the block's largest id in its header, so we can read a block of ids in one C-level step
and skip blocks that cannot hold a candidate without decoding them.

These helpers use the matcher's block attributes (``_maxid``, ``_nextoffset``, ``_data``…);
any other matcher (another codec, a wrapped one) falls back to the public per-posting API, so
results never depend on the fast path being available. Private attributes can change in any
release without notice, and a changed meaning would give wrong ids or scores rather than an error:
so importing this module fails unless the installed Whoosh is the version it was checked against
(``WHOOSH_VERSION``, the pin in ``pyproject.toml``).
"""

from __future__ import annotations

import importlib.metadata
import io
import pickle
import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any

import numpy as np
from whoosh.codec.whoosh3 import W3TermInfo
from whoosh.matching import Matcher
from whoosh.reading import SegmentReader, TermNotFound
from whoosh.util.numeric import byte_to_length

WHOOSH_DISTRIBUTION = "whoosh3"
WHOOSH_VERSION = "3.54.0"  # the release this module was checked against; pyproject.toml pins the same


def installed_whoosh() -> str | None:
    """The installed version of the Whoosh distribution, None when it is not installed."""
    try:
        return importlib.metadata.version(WHOOSH_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_whoosh(installed: str | None) -> None:
    """Raise ImportError unless ``installed`` is the Whoosh release this module was checked against."""
    if installed == WHOOSH_VERSION:
        return
    found = f"{WHOOSH_DISTRIBUTION} {installed} is installed" if installed else "it is not installed"
    raise ImportError(
        f"index.postings reads Whoosh's private posting-block format and was checked against "
        f"{WHOOSH_DISTRIBUTION}=={WHOOSH_VERSION}, but {found}. Install {WHOOSH_DISTRIBUTION}=={WHOOSH_VERSION} "
        f"(the pin in pyproject.toml), or check index/postings.py against the new release and then change "
        f"WHOOSH_VERSION and the pin together."
    )


check_whoosh(installed_whoosh())


def raw_postings(leaf: SegmentReader, field: str, text: str) -> Matcher:
    """The term's postings in one segment, deleted documents included (callers filter them):
    ``SegmentReader.postings`` wraps the matcher in a per-posting deletion filter otherwise."""
    terms = getattr(leaf, "_terms", None)
    if terms is None:
        return leaf.postings(field, text)
    return terms.matcher(field, leaf._text_to_bytes(field, text), leaf.schema[field].format)


def _is_block_matcher(m: Matcher) -> bool:
    return all(hasattr(m, a) for a in ("_read_data", "_goto", "_nextoffset", "_postfile", "_maxid", "_byteids",
                                       "_i", "_blocklength", "_lastblock"))


_BLOCK_LENGTH = struct.Struct("!i")


def _next_block(m: Any) -> None:  # a W3LeafMatcher, whose private fields are untyped
    """``W3LeafMatcher._next_block`` with the header read in one piece.

    Whoosh's ``_goto`` unpickles the block header straight from its file object, which costs a
    Python-level ``read`` call per pickle opcode (the largest single cost of scoring). Here the
    whole block is read with one ``get`` and unpickled from memory; the attributes set are
    exactly those ``_goto`` sets, and the block's bytes are kept so that reading its ids or
    weights needs no second read."""
    if m._atend:
        raise RuntimeError("no next block")
    if m._lastblock:
        m._atend = True
        return
    position = m._nextoffset
    postfile = m._postfile
    (length,) = _BLOCK_LENGTH.unpack(postfile.get(position, 4))
    if length < 0:
        m._lastblock = True
        length = -length
    m._data = m._ids = m._weights = m._values = None
    m._i = 0
    m._nextoffset = position + 4 + length
    block = postfile.get(position + 4, length)
    stream = io.BytesIO(block)
    (m._blocklength, m._maxid, m._maxweight, m._compression, mnlen, mxlen) = pickle.load(stream)
    m._dataoffset = position + 4 + stream.tell()
    m._minlength = byte_to_length(mnlen)
    m._maxlength = byte_to_length(mxlen)
    m._searchsvc_block = (m._dataoffset, memoryview(block)[stream.tell():])  # decoded only if needed


def _load_data(m: Any) -> None:
    if m._data is None:
        block: tuple[int, memoryview] | None = getattr(m, "_searchsvc_block", None)
        if block is None or block[0] != m._dataoffset:
            m._read_data()
            return
        data = block[1]
        m._data = pickle.loads(zlib.decompress(data) if m._compression else data)


def _block_ids(m: Any) -> Sequence[int]:
    if m._ids is None:
        _load_data(m)
        raw = m._data[0]
        m._ids = raw if m._byteids else tuple(accumulate(raw))  # delta-coded ids, decoded in C
    ids: Sequence[int] = m._ids
    return ids


def id_blocks(m: Matcher) -> Iterator[Sequence[int]]:
    """The ids of ``m`` from its current position to the end, a block at a time."""
    if not _is_block_matcher(m):
        yield tuple(m.all_ids())
        return
    while m.is_active():
        ids = _block_ids(m)
        yield ids if m._i == 0 else ids[m._i:]
        _next_block(m)


def all_ids(m: Matcher) -> list[int]:
    out: list[int] = []
    for block in id_blocks(m):
        out.extend(block)
    return out


def weights_of(m: Matcher, ordered: list[int]) -> list[tuple[int, float]]:
    """(id, weight) of the ids in ``ordered`` (ascending, local to the segment) that ``m`` holds.

    Blocks whose largest id is below the next wanted id are skipped from their header alone; in a
    block that can hold some, the ids are looked up in one dict built from the block."""
    found: list[tuple[int, float]] = []
    if not ordered or not m.is_active():
        return found
    if not _is_block_matcher(m):
        for local in ordered:
            if not m.is_active():
                break
            if m.id() < local:
                m.skip_to(local)
                if not m.is_active():
                    break
            if m.id() == local:
                found.append((local, m.weight()))
        return found
    j, n = 0, len(ordered)
    while j < n and m.is_active():
        want = ordered[j]
        if m._maxid < want:
            _next_block(m)
            continue
        hi = bisect_right(ordered, m._maxid, j)
        ids = _block_ids(m)
        if m._weights is None:
            _load_data(m)
            m._read_weights()
        weights = m._weights
        if hi - j == 1:
            k = bisect_left(ids, want)
            if k < len(ids) and ids[k] == want:
                found.append((want, weights[k]))
        else:
            position = {doc: k for k, doc in enumerate(ids)}
            for local in ordered[j:hi]:
                at = position.get(local)
                if at is not None:
                    found.append((local, weights[at]))
        j = hi
        _next_block(m)
    return found


def items(m: Matcher) -> Iterator[tuple[int, float]]:
    """Every (id, weight) of ``m``, a block at a time."""
    if not _is_block_matcher(m):
        yield from m.items_as("weight")
        return
    while m.is_active():
        ids = _block_ids(m)
        if m._weights is None:
            _load_data(m)
            m._read_weights()
        yield from zip(ids[m._i:], m._weights[m._i:])
        _next_block(m)


def id_weight_arrays(m: Matcher) -> tuple[array[int], array[float]]:
    """Every id and weight of ``m`` as two arrays, extended a block at a time (C-level copies,
    where ``items`` yields a Python tuple per posting)."""
    ids: array[int] = array("q")
    weights: array[float] = array("d")
    if not _is_block_matcher(m):
        for i, weight in m.items_as("weight"):
            ids.append(i)
            weights.append(weight)
        return ids, weights
    while m.is_active():
        block = _block_ids(m)
        if m._weights is None:
            _load_data(m)
            m._read_weights()
        start = m._i
        ids.extend(block[start:] if start else block)
        block_weights = m._weights[start:] if start else m._weights
        weights.extend(block_weights.tolist() if isinstance(block_weights, array) else block_weights)
        _next_block(m)
    return ids, weights


_SLOT = struct.Struct("!Iq")  # whoosh.filedb.filetables._pointer: a slot of the on-disk hash tables (hash, position)
_LENGTHS = struct.Struct("!ii")  # whoosh.filedb.filetables._lengths: a record's key and value lengths
_VALUE_READ = 64  # bytes of a record's value read with its key: a term's info, unless its postings are inlined


class TermFilter:
    """Whether a segment may hold a term (``term_filter``): the sorted hashes of every key of its
    term table, as Whoosh stored them in the table's own slots. Never says no to a term the
    segment holds; says yes to one it lacks only when two 32-bit hashes collide (about one in
    190,000 for 22,500 terms), which then costs the look-up it would have cost anyway.

    Why these hashes: they are on disk already, so the filter is one read and a sort in C, about
    a millisecond for a 50-article segment, where hashing each term in Python cost 40-70 ms per
    segment and worker, paid again at every commit (docs/benchmarks.md, "Publishing"); 270 KB
    for the 22,500 terms of 50 articles with where each term's record is (``record``; a set of
    the hashes alone would be 2.9 MB)."""

    __slots__ = ("hashes", "positions", "hashfn", "keycoder")

    def __init__(self, hashes: array[int], hashfn: Any, keycoder: Any, positions: array[int]) -> None:
        self.hashes = hashes  # ascending (a hash twice when two keys share it)
        self.positions = positions  # where the record of each key is in the table (``record``)
        self.hashfn = hashfn  # the table's hash function (whoosh.filedb.filetables)
        self.keycoder = keycoder  # (field name, term bytes) -> the table's key in this segment

    def record(self, dbfile: Any, key: bytes, h: int) -> bytes | None:
        """The value (the term's ``W3TermInfo`` bytes) the table stores for ``key``, whose hash is
        ``h``, read from the segment's term file ``dbfile`` in one read at the record the slot
        points at; None when the segment lacks the key.

        Why: Whoosh's own look-up (``HashReader.ranges_for_key``) reads the slots one by one, then
        the record's lengths, key and value apart, each a seek and a read through the compound
        file. Measured on a 50-article segment, a term it holds or lacks: 6-7 µs through the
        filter and this read, 22-26 µs through Whoosh's ``in`` and ``doc_frequency``. While
        publishing, each commit adds a small segment that every search term is looked up in."""
        hashes, positions = self.hashes, self.positions
        i = bisect_left(hashes, h)
        while i < len(hashes) and hashes[i] == h:
            value = _record_value(dbfile, positions[i], key)
            if value is not None:
                return value
            i += 1
        return None

    def key_hash(self, field: str, tbytes: bytes) -> int:
        """What the table stored for the term's key in this segment (field numbers are per segment)."""
        return int(self.hashfn(self.keycoder(field, tbytes)))

    def may_hold(self, field: str, text_bytes: bytes) -> bool:
        return self.key_hash(field, text_bytes) in self

    def __contains__(self, h: int) -> bool:
        hashes = self.hashes
        i = bisect_left(hashes, h)
        return i < len(hashes) and hashes[i] == h


def _record_value(dbfile: Any, position: int, key: bytes) -> bytes | None:
    """The value of the term table's record at ``position`` if its key is ``key``, else None: the
    lengths, the key and (usually) the value in one read."""
    size = _LENGTHS.size
    head = dbfile.get(position, size + len(key) + _VALUE_READ)
    keylen, datalen = _LENGTHS.unpack_from(head)
    start = size + keylen
    if keylen != len(key) or head[size:start] != key:
        return None
    value = bytes(head[start:start + datalen])
    return value if len(value) == datalen else bytes(dbfile.get(position + start, datalen))


def term_filter(leaf: SegmentReader) -> TermFilter | None:
    """The ``TermFilter`` of a segment, read from its term table's hash slots (after the records,
    before the directory: ``HashWriter._write_hashes``); None for another codec. With it, asking a
    small segment about a term it lacks costs a binary search instead of a probe of its on-disk
    hash table (about 6 µs each, paid in every segment: publishing adds one a commit, up to
    ``whoosh_writer.MERGE_CAP`` while busy)."""
    terms = getattr(leaf, "_terms", None)
    tindex = getattr(terms, "_tindex", None)
    keycoder = getattr(terms, "_keycoder", None)
    tables = getattr(tindex, "tables", None)
    if tindex is None or keycoder is None or not tables or not hasattr(tindex, "hashfn"):
        return None
    start = tables[0][0]  # the first table starts where the records end
    end = max(position + slots * _SLOT.size for position, slots in tables)
    raw = np.frombuffer(tindex.dbfile.get(start, end - start), dtype=[("hash", ">u4"), ("position", ">i8")])
    used = raw[raw["position"] != 0]
    order = np.argsort(used["hash"], kind="stable")
    return TermFilter(array("I", used["hash"][order].astype(np.uint32).tobytes()), tindex.hashfn, keycoder,
                      array("q", used["position"][order].astype(np.int64).tobytes()))


def term_info(value: bytes) -> Any:
    """A term's ``W3TermInfo`` from the bytes its term table stores (``TermFilter.record``)."""
    return W3TermInfo.from_bytes(value)


def postings_of(leaf: SegmentReader, field: str, text: str, info: Any) -> Matcher:
    """The term's raw postings in one segment (``raw_postings``) from its info, already read
    (``TermFilter.record``, ``term_info``): what ``W3TermsReader.matcher`` does after its own
    look-up."""
    terms = leaf._terms
    tbytes = leaf._text_to_bytes(field, text)
    return terms._codec.postings_reader(terms._postfile, info, leaf.schema[field].format, term=(field, tbytes))


def term_bytes(leaf: SegmentReader, field: str, text: str) -> bytes | None:
    """The term's bytes as the term tables store them; None for a field the schema lacks."""
    try:
        return bytes(leaf._text_to_bytes(field, text))
    except TermNotFound:
        return None


def length_bytes(leaf: SegmentReader, field: str) -> bytes | None:
    """The segment's per-document length bytes of ``field`` in one read (Whoosh keeps one byte a
    document in a column, encoded by ``whoosh.util.numeric.byte_to_length``), or None when the
    codec does not store them that way. Index with ``LENGTHS[byte]``; documents past the end of the
    bytes have no length (0)."""
    try:
        from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

        column = leaf._perdoc._cached_reader(_lenfield(field), LENGTHS_COLUMN)
        if column is None:
            return b""
        if getattr(column, "_fixedlen", None) != 1:
            return None
        return bytes(column._dbfile.get(column._basepos, column._count))
    except (AttributeError, ImportError):
        return None


def _lengths_table() -> tuple[int, ...]:
    from whoosh.util.numeric import byte_to_length

    return tuple(byte_to_length(b) for b in range(256))


LENGTHS = _lengths_table()


def numeric_column(column: Any, doccount: int) -> array[Any] | None:  # a NumericColumn.Reader
    """Every value of a fixed-width numeric column of one segment (``NumericColumn.Reader``), read
    in one piece, or None for any other column reader. Documents past the stored values get the
    column's default, as ``column[docnum]`` would give them."""
    typecode = getattr(column, "_typecode", None)
    if typecode is None or not all(hasattr(column, a) for a in ("_dbfile", "_basepos", "_count", "_default")):
        return None
    values = array(typecode)
    if values.itemsize != struct.calcsize("!" + typecode):
        return None
    values.frombytes(bytes(column._dbfile.get(column._basepos, column._count * values.itemsize)))
    if sys.byteorder == "little":
        values.byteswap()  # stored big-endian ("!" + typecode)
    if doccount > len(values):
        values.extend([column._default] * (doccount - len(values)))
    return values
