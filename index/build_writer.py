"""``BuildSegmentWriter``: a Whoosh ``SegmentWriter`` for building an index, writing the same
segment files byte for byte for a fraction of the CPU.

Where a build's CPU went with Whoosh's own writer (py-spy, 5,000 corpus articles, two writer
processes; issue #14): 42 % in its posting pool (a tuple per posting, sorted, pickled to runs and
merged back one posting at a time), 28 % writing the postings (a dozen Python calls per term and
four per posting, two ``tell`` system calls per term, reading each posting's field length back
from the length columns), 15 % counting the analyzer's tokens through Whoosh's token stream, and
11 % in our analysis. ``BuildSegmentWriter`` keeps Whoosh's segment format and its per-document
writer (stored fields, columns, lengths) and replaces the rest: ``_TermPool`` (postings grouped by
term), ``_write_text_field`` (a text field's terms encoded from their arrays) and a direct count
of ``SyllableAnalyzer.terms``. Whoosh's format is pinned (whoosh3 in pyproject.toml);
tests/test_build_writer.py and ``scripts/compare_index_build.py`` compare the files it writes
with Whoosh's own.
"""

from __future__ import annotations

import heapq
import marshal
import struct
import sys
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from hashlib import md5
from itertools import chain, groupby
from operator import itemgetter, sub
from pickle import dumps
from typing import Any, TypeAlias

from whoosh.codec.whoosh3 import COMPRESSION_MIN_SIZE, WHOOSH3_HEADER_MAGIC, W3TermInfo
from whoosh.filedb.filetables import _lengths as _KEY_VALUE
from whoosh.filedb.filetables import _pointer as _POINTER
from whoosh.formats import Frequency
from whoosh.system import pack_int, pack_long, pack_ushort
from whoosh.util import random_name
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import SegmentWriter

from index.schema import SyllableAnalyzer
from index.segment_arrays import EXT as ARRAYS_EXT
from index.segment_arrays import ArraysWriter

_SWAP = sys.byteorder == "little"  # Whoosh's Frequency values are big-endian ("!I") unsigned ints
if array("I").itemsize != 4:  # the pool's arrays of (docnum, frequency) become "!I" values as they are
    raise ImportError("index.build_writer needs 4-byte unsigned ints in array('I')")
# Bytes of memory a new term and a posting take in a _TermPool, for its spill threshold (measured
# with tracemalloc on corpus articles: a term's str key, dict slot and array; 8 bytes a pair).
_TERM_COST = 170
_POSTING_COST = 9
_CHUNK_TERMS = 4096  # terms per record of a spilled run
# Terms with the same postings share their encoding when they have at most this many bytes of
# (docnum, frequency) pairs (four postings); at most this many encodings are kept at once.
_SHARED_ENCODING = 32
_ENCODINGS_KEPT = 1 << 16
_RECORD = struct.Struct("<I")  # a record's length before it
_PLAIN = (1.0, b"")  # the (weight, value) of every posting of an ``Existence`` field (ids, dates)
_MAGIC = WHOOSH3_HEADER_MAGIC
_TERMINFO = W3TermInfo._struct

# A term's postings as one pool holds them, for a field other than text: its document numbers
# (bytes once spilled) and their (weight, value) pairs, None when all are _PLAIN.
OtherPostings: TypeAlias = "tuple[array[int] | bytes, list[tuple[Any, bytes]] | None]"


def fast_fields(schema: Any) -> frozenset[str]:
    """The fields whose postings ``BuildSegmentWriter`` counts itself: our analyzer's text fields
    with Whoosh's plain ``Frequency`` format (weight = frequency, value = the frequency as "!I")."""
    return frozenset(
        name
        for name, field in schema.items()
        if isinstance(field.analyzer, SyllableAnalyzer)
        and type(field.format) is Frequency
        and field.format.field_boost == 1.0
        and field.indexed
        and field.scorable
        and not field.vector
        and not field.separate_spelling()
        and not field.column_type
        and not field.stored
    )


def _freq_values(freqs: array[int]) -> bytes:
    """The frequencies, each as Whoosh's ``Frequency`` format encodes it (``pack_uint``, "!I")."""
    values = array("I", freqs)
    if _SWAP:
        values.byteswap()
    return values.tobytes()


def _as_array(part: array[int] | bytes) -> array[int]:
    if isinstance(part, array):
        return part
    out = array("I")
    out.frombytes(part)
    return out


class _TermPool:
    """A segment's postings grouped by term as they come, in place of Whoosh's ``PostingPool``.

    Whoosh's pool holds one tuple per posting, sorts them all, and past ``limitmb`` pickles them
    to runs one posting at a time and merges those back through a heap, again one posting at a
    time: most of a build's CPU (measured on 5,000 corpus articles: 42 %). Documents come
    in number order, so a term's postings come sorted: here each term keeps an ``array`` of them,
    and only terms are sorted, spilled (``marshal``, a few thousand terms a record) and merged.
    A term's postings from several runs are joined run by run, which is document order.
    """

    def __init__(self, tempstorage: Any, limitmb: int, fast: frozenset[str]) -> None:
        self.tempstorage = tempstorage
        self.limit = limitmb * 1024 * 1024
        self.fast = fast
        self.size = 0  # estimated bytes held
        self.runs: list[str] = []
        self.text: dict[str, dict[str, array[int]]] = {name: {} for name in fast}
        self.other: dict[str, dict[bytes, tuple[array[int], list[tuple[Any, bytes]] | None]]] = {}

    def add_terms(self, fieldname: str, docnum: int, terms: list[str]) -> None:
        """One document's terms of a text field (one of ``fast``)."""
        table = self.text[fieldname]
        before = len(table)
        counts = Counter(terms)
        for term, freq in counts.items():
            postings = table.get(term)
            if postings is None:
                table[term] = array("I", (docnum, freq))
            else:
                postings.append(docnum)
                postings.append(freq)
        self.size += (len(table) - before) * _TERM_COST + len(counts) * _POSTING_COST
        if self.size > self.limit:
            self.save()

    def add(self, item: tuple[str, bytes, int, Any, bytes | None]) -> None:
        """One posting (fieldname, term, docnum, weight, value), the way Whoosh's pool takes them."""
        fieldname, tbytes, docnum, weight, vbytes = item
        table = self.other.setdefault(fieldname, {})
        value = (weight, vbytes)
        plain = vbytes == b"" and type(weight) is float and weight == 1.0
        entry = table.get(tbytes)
        if entry is None:
            entry = table[tbytes] = (array("I"), None if plain else [])
            self.size += _TERM_COST
        docs, values = entry
        if values is None and not plain:
            values = [_PLAIN] * len(docs)
            table[tbytes] = (docs, values)
        docs.append(docnum)
        if values is not None:
            values.append(value)  # type: ignore[arg-type]  # vbytes None: Whoosh writes b""
        self.size += _POSTING_COST
        if self.size > self.limit:
            self.save()

    def _fieldnames(self) -> list[str]:
        return sorted(name for name, table in [*self.text.items(), *self.other.items()] if table)

    def _terms_in_memory(self, fieldname: str) -> Iterator[tuple[bytes, Any]]:
        """A field's terms in the pool, sorted as Whoosh sorts them (by UTF-8 bytes, which is the
        order of the ``str`` terms: a term with a surrogate could not be encoded at all), with a
        text field's (docnum, frequency) pairs as bytes, another field's (docs, values)."""
        if fieldname in self.fast:
            text = self.text[fieldname]
            for term in sorted(text):
                yield term.encode("utf-8"), text[term].tobytes()
        else:
            yield from sorted(self.other[fieldname].items())

    def save(self) -> None:
        """Write what the pool holds to a run and empty it."""
        if not self.size:
            return
        name = f"{random_name()}.run"
        with self.tempstorage.create_file(name) as f:
            for fieldname in self._fieldnames():
                chunk: list[Any] = []
                text = fieldname in self.fast
                for tbytes, entry in self._terms_in_memory(fieldname):
                    chunk.append((tbytes, entry) if text else (tbytes, entry[0].tobytes(), entry[1]))
                    if len(chunk) >= _CHUNK_TERMS:
                        self._write_record(f, fieldname, chunk)
                        chunk = []
                if chunk:
                    self._write_record(f, fieldname, chunk)
        self.runs.append(name)
        self.text = {name: {} for name in self.fast}
        self.other = {}
        self.size = 0

    @staticmethod
    def _write_record(f: Any, fieldname: str, chunk: list[Any]) -> None:
        data = marshal.dumps((fieldname, chunk))
        f.write(_RECORD.pack(len(data)))
        f.write(data)

    def _read_run(self, name: str, order: int) -> Iterator[tuple[str, bytes, int, Any]]:
        f = self.tempstorage.open_file(name)
        try:
            while header := f.read(_RECORD.size):
                fieldname, chunk = marshal.loads(f.read(_RECORD.unpack(header)[0]))
                if fieldname in self.fast:
                    for tbytes, pairs in chunk:
                        yield fieldname, tbytes, order, pairs
                else:
                    for tbytes, docs, values in chunk:
                        yield fieldname, tbytes, order, (docs, values)
        finally:
            f.close()

    def _merged(self) -> Iterator[tuple[str, bytes, Any]]:
        """(fieldname, term, postings) for every term of the runs and the pool, sorted; a term's
        postings joined run by run, which is document order."""
        last = len(self.runs)
        streams = [self._read_run(name, i) for i, name in enumerate(self.runs)]
        streams.append(
            (fieldname, tbytes, last, entry)
            for fieldname in self._fieldnames()
            for tbytes, entry in self._terms_in_memory(fieldname)
        )
        # (field, term, run) is unique: ties between runs go by run.
        key: tuple[str, bytes] | None = None
        parts: list[Any] = []
        for fieldname, tbytes, _, entry in heapq.merge(*streams):
            if key is not None and tbytes == key[1] and fieldname == key[0]:
                parts.append(entry)
                continue
            if key is not None:
                yield key[0], key[1], b"".join(parts) if key[0] in self.fast else parts
            key, parts = (fieldname, tbytes), [entry]
        if key is not None:
            yield key[0], key[1], b"".join(parts) if key[0] in self.fast else parts

    def fields(self) -> Iterator[tuple[str, Iterator[tuple[bytes, Any]]]]:
        """(fieldname, its terms) by field, sorted: a term with, for a text field, its (docnum,
        frequency) pairs as an ``array('I')``'s bytes, for another field its postings' parts, each
        (docnums as ``array('I')`` or its bytes, (weight, value) pairs or None), in document order."""
        if not self.runs:
            for fieldname in self._fieldnames():
                terms = self._terms_in_memory(fieldname)
                yield fieldname, terms if fieldname in self.fast else ((t, [e]) for t, e in terms)
            return
        for fieldname, group in groupby(self._merged(), key=itemgetter(0)):
            yield fieldname, ((tbytes, postings) for _, tbytes, postings in group)

    def cleanup(self) -> None:
        for name in self.runs:
            try:
                self.tempstorage.delete_file(name)
            except OSError:
                pass
        self.runs = []


class BuildSegmentWriter(SegmentWriter):  # type: ignore[misc]  # Whoosh's classes are untyped (mypy skips whoosh.*)
    """A ``SegmentWriter`` for building: the same segment files, byte for byte, for less CPU.

    * A text field's terms come from ``SyllableAnalyzer.terms`` and are counted with a ``Counter``,
      not streamed one Whoosh token at a time through ``Frequency.word_values``.
    * Postings go to a ``_TermPool`` (grouped by term, see there) instead of Whoosh's pool.
    * A text term's postings are encoded from its arrays, block by block as Whoosh's postings
      writer encodes them, terms with the same postings sharing one encoding, and the term table
      is written in large pieces (``_write_text_field``); the field lengths come from memory
      instead of being read back from the length columns. Other fields (ids, dates: a few postings
      a document) go through Whoosh's field writer one posting at a time, as in Whoosh.

    What our schema does not use (term vectors, spelling fields) and what a fresh build does not do
    (merging other segments in with ``add_reader``) is left out.
    ``scripts/compare_index_build.py`` compares a build with Whoosh's writer file by file.
    """

    def __init__(self, ix: Any, limitmb: int = 128, **kwargs: Any) -> None:
        super().__init__(ix, limitmb=limitmb, **kwargs)
        unsupported = [name for name, field in self.schema.items() if field.vector or field.separate_spelling()]
        if unsupported:  # our schema has neither; add them here before a schema gets one
            self.cancel()
            raise ValueError(f"BuildSegmentWriter writes no term vectors or spelling fields: {unsupported}")
        self._fast = fast_fields(self.schema)
        self.pool = _TermPool(self._tempstorage, limitmb, self._fast)
        # Per field: each document's length byte, as the length column stores it (0: none),
        # indexed by docnum - docbase. Whoosh reads the column back while writing the postings.
        self._lengths: dict[str, array[int]] = {}

    def add_reader(self, reader: Any) -> None:
        raise NotImplementedError("BuildSegmentWriter only adds documents")

    def add_document(self, **fields: Any) -> None:
        """``SegmentWriter.add_document`` with the text fields' terms counted directly."""
        self._check_state()
        perdocwriter = self.perdocwriter
        schema = self.schema
        docnum = self.docnum
        pool = self.pool
        fast = self._fast
        docboost = self._doc_boost(fields)
        fieldnames = sorted([name for name in fields if not name.startswith("_")])
        self._check_fields(schema, fieldnames)
        perdocwriter.start_doc(docnum)
        try:
            for fieldname in fieldnames:
                value = fields.get(fieldname)
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    fieldboost = self._field_boost(fields, fieldname, docboost)
                    if fieldname in fast and fieldboost == 1.0 and isinstance(value, str):
                        terms = field.analyzer.terms(value)
                        length = len(terms)  # the sum of the frequencies, as Whoosh counts it
                        pool.add_terms(fieldname, docnum, terms)
                    else:
                        scorable = field.scorable
                        for tbytes, freq, weight, vbytes in field.index(value):
                            weight *= fieldboost
                            if scorable:
                                length += freq
                            pool.add((fieldname, tbytes, docnum, weight, vbytes))
                customval = fields.get(f"_stored_{fieldname}", value)
                perdocwriter.add_field(fieldname, field, customval if field.stored else None, length)
                if length:
                    self._set_length(fieldname, docnum - self.docbase, length)
                column = field.column_type
                if column and customval is not None:
                    perdocwriter.add_column_value(fieldname, column, field.to_column_value(customval))
        except ValueError:
            perdocwriter.cancel_doc()
            raise
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1

    def _set_length(self, fieldname: str, index: int, length: int) -> None:
        lengths = self._lengths.get(fieldname)
        if lengths is None:
            lengths = self._lengths[fieldname] = array("B")
        have = len(lengths)
        if have > index:  # a document given up with ValueError had this number
            del lengths[index:]
        elif have < index:
            lengths.frombytes(bytes(index - have))
        lengths.append(length_to_byte(length))  # the length column's byte

    def _flush_segment(self) -> None:
        """``SegmentWriter._flush_segment``: the postings, by field and term, to the field writer."""
        self.perdocwriter.close()
        fw = self.fieldwriter
        # The text postings a second time, as arrays (index.segment_arrays: what searches read).
        arrays = ArraysWriter(self.newsegment.create_file(self.storage, ARRAYS_EXT), self.docnum)
        for fieldname, terms in self.pool.fields():
            fw.start_field(fieldname, self.schema[fieldname])
            lengths = self._lengths.get(fieldname)
            if fieldname in self._fast:
                arrays.start_field(fieldname)
                _write_text_field(fw, terms, lengths, self.docbase, arrays)
            else:
                for tbytes, parts in terms:
                    self._write_other_term(fw, tbytes, parts, lengths)
            fw.finish_field()
        fw._tindex._write_hashes = partial(_write_hashes, fw._tindex)  # the same bytes, cheaper
        fw.close()
        arrays.close()

    def _write_other_term(self, fw: Any, tbytes: bytes, parts: list[OtherPostings], lengths: array[int] | None) -> None:
        """Another field's term: one ``add`` per posting, as ``FieldWriter.add_postings`` does."""
        docs = array("I")
        values: list[tuple[Any, bytes]] | None = None
        for part_docs, part_values in parts:
            part = _as_array(part_docs)
            if part_values is not None and values is None:
                values = [_PLAIN] * len(docs)
            if values is not None:
                values.extend(part_values if part_values is not None else [_PLAIN] * len(part))
            docs.extend(part)
        base = self.docbase
        fw.start_term(tbytes)
        for i, docnum in enumerate(docs):
            weight, vbytes = values[i] if values is not None else _PLAIN
            if lengths is None:
                length: int | None = 0  # no length column: Whoosh's reader answers its default
            else:
                lbyte = lengths[docnum - base] if docnum - base < len(lengths) else 0
                length = byte_to_length(lbyte) if lbyte else None  # as W3PerDocReader reads it
            fw.add(docnum, weight, vbytes if vbytes is not None else b"", length)
        fw.finish_term()


def _write_text_field(fw: Any, terms: Iterable[tuple[bytes, bytes]], lengths: array[int] | None, docbase: int,
                      arrays: ArraysWriter | None = None) -> None:
    """A text field's terms, written as Whoosh's ``W3FieldWriter`` and ``W3PostingsWriter`` write
    them (``start_term``, one ``add_posting`` per posting, ``finish_term``), byte for byte.

    Why not call them: their cost is per posting and per term (two ``tell`` system calls and a
    dozen Python calls a term, four a posting), which was half of a build's CPU once the pool was
    cheap. Here a term's postings are encoded from its arrays (``_encode_postings``), two terms
    with the same postings share the encoding (two thirds of the terms have one posting, and a
    document's many rare pairs then have the same one), and the files are written in large
    pieces: the postings file and the term table are only written here while the field is, so
    their positions are counted instead of asked for. Whoosh's format is pinned (whoosh3 in
    pyproject.toml); ``scripts/compare_index_build.py`` compares the files with Whoosh's own.
    ``arrays``: also writes each term's postings there (``index.segment_arrays``).
    """
    postfile = fw._postfile
    tindex = fw._tindex
    trmfile = tindex.dbfile
    encode = partial(
        _encode_postings,
        lengths=lengths,
        docbase=docbase,
        blocklimit=fw._postwriter._blocklimit,
        compression=fw._postwriter._compression,
    )
    field_prefix = pack_ushort(fw._fieldid)
    post_pos = postfile.tell()
    trm_pos = trmfile.tell()
    posts: list[bytes] = []
    trms: list[bytes] = []
    index_append = tindex.index.append
    buckets = tindex.buckets
    lastkey = tindex.lastkey
    encoded: dict[bytes, tuple[bytes, bytes]] = {}
    for tbytes, raw in terms:
        key = field_prefix + tbytes
        if key <= lastkey:
            raise ValueError(f"Keys must increase: {lastkey!r}..{key!r}")  # as OrderedHashWriter.add
        postings = encoded.get(raw)
        if postings is None:
            postings = encode(raw)
            if len(raw) <= _SHARED_ENCODING:
                if len(encoded) >= _ENCODINGS_KEPT:
                    encoded.clear()
                encoded[raw] = postings
        chunk, terminfo = postings
        if arrays is not None:
            arrays.add(tbytes, raw)
        posts.append(chunk)
        # W3TermInfo.to_bytes: the statistics, then where the postings are (never inlined: the
        # codec's inlinelimit is 1).
        value = terminfo + pack_long(post_pos) + pack_int(len(chunk))
        post_pos += len(chunk)
        # OrderedHashWriter.add and HashWriter.add
        index_append(trm_pos)
        record = _KEY_VALUE.pack(len(key), len(value)) + key + value
        trms.append(record)
        h = int.from_bytes(md5(key, usedforsecurity=False).digest()[-4:], "big")  # filetables.md5_hash
        buckets[h & 255].append((h, trm_pos))
        trm_pos += len(record)
        lastkey = key
        if len(trms) >= 4096:
            postfile.write(b"".join(posts))
            trmfile.write(b"".join(trms))
            posts, trms = [], []
    postfile.write(b"".join(posts))
    trmfile.write(b"".join(trms))
    tindex.lastkey = lastkey


def _encode_postings(
    raw: bytes, *, lengths: array[int] | None, docbase: int, blocklimit: int, compression: int
) -> tuple[bytes, bytes]:
    """A text term's postings (``raw``: its (docnum, frequency) pairs as an ``array('I')``'s
    bytes) as ``W3PostingsWriter`` writes them (a header, then blocks of ``blocklimit``: the block's
    length, negative for the last, its pickled info and its pickled, maybe compressed ids, weights
    and values), and the start of its ``W3TermInfo.to_bytes``: (postings bytes, term info)."""
    pairs = array("I")
    pairs.frombytes(raw)
    docs, freqs = pairs[0::2], pairs[1::2]
    count = len(docs)
    if count <= blocklimit:  # most terms: one block
        block, min_lbyte, max_lbyte, max_weight = _encode_block(docs, freqs, True, lengths, docbase, compression)
        terminfo = _TERMINFO.pack(False, sum(freqs), count, min_lbyte, max_lbyte, max_weight, docs[0], docs[-1])
        return _MAGIC + block, terminfo
    # W3TermInfo's running statistics (TermInfo.__init__, then add_block for each block).
    min_lbyte = max_lbyte = 0  # length bytes: in the order of the lengths, and what is stored
    max_weight = 0.0
    out = [_MAGIC]
    for start in range(0, count, blocklimit):
        block, block_min, block_max, block_weight = _encode_block(
            docs[start : start + blocklimit],
            freqs[start : start + blocklimit],
            start + blocklimit >= count,
            lengths,
            docbase,
            compression,
        )
        out.append(block)
        if block_min and (not min_lbyte or block_min < min_lbyte):
            min_lbyte = block_min
        max_lbyte = max(max_lbyte, block_max)
        max_weight = max(max_weight, block_weight)
    # The total weight: W3TermInfo adds up the blocks' array('f') of weights, exact for these sums.
    terminfo = _TERMINFO.pack(False, sum(freqs), count, min_lbyte, max_lbyte, max_weight, docs[0], docs[-1])
    return b"".join(out), terminfo


def _encode_block(
    docs: array[int], freqs: array[int], last: bool, lengths: array[int] | None, docbase: int, compression: int
) -> tuple[bytes, int, int, float]:
    """``W3PostingsWriter._write_block`` for these postings: (the block's bytes, its smallest
    and largest length bytes (0: none), its largest weight)."""
    if lengths is None:
        block_min = block_max = 0
    else:
        have = len(lengths)
        found = [lengths[d - docbase] for d in docs if d - docbase < have]
        if 0 in found:  # add_posting skips zero lengths (none for a text field's postings)
            found = [n for n in found if n]
        block_min, block_max = (min(found), max(found)) if found else (0, 0)
    top = max(freqs)
    weight = float(top)  # add_posting keeps the largest weight: float(frequency)
    # _mini_weights over the block's array('f') of weights (exact for integer frequencies)
    if top == 1:
        weights: float | tuple[float, ...] | None = None
    elif min(freqs) == top:
        weights = weight
    else:
        weights = tuple(map(float, freqs))
    data = dumps((tuple(map(sub, docs, chain((0,), docs))), weights, _freq_values(freqs)), 2)
    comp = compression if len(data) >= COMPRESSION_MIN_SIZE else 0
    if comp:
        data = zlib.compress(data, comp)
    info = dumps((len(docs), docs[-1], weight, comp, block_min, block_max), 2)
    size = len(info) + len(data)
    return pack_int(-size if last else size) + info + data, block_min, block_max, weight


def _write_hashes(writer: Any) -> None:
    """``HashWriter._write_hashes`` with the same bytes in one write instead of one per slot."""
    dbfile = writer.dbfile
    pos = dbfile.tell()
    null = (0, 0)
    pack = _POINTER.pack
    out = []
    for entries in writer.buckets:
        numslots = 2 * len(entries)
        writer.directory.append((pos, numslots))
        table = [null] * numslots
        for hashval, position in entries:
            slot = (hashval >> 8) % numslots
            while table[slot] != null:
                slot = (slot + 1) % numslots
            table[slot] = (hashval, position)
        chunk = b"".join([pack(hashval, position) for hashval, position in table])
        out.append(chunk)
        pos += len(chunk)
    dbfile.write(b"".join(out))
