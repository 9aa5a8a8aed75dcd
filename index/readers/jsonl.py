"""Reader for JSON Lines article files (the corpus format), plain or gzip-compressed.

One JSON object a line::

    {"id": "...", "title": "...", "body": "para\\n\\npara" | ["para", ...], "category": "...",
     "published": "2005-03-01T08:00:00+07:00", "source": "...", "url": "...", "views": 12,
     "category_path": ["..."], "captions": ["..."]}

Every bad line becomes a ``ReadError`` with its 1-based line number and the reader moves on: one
malformed record in a 65,000-line corpus must not stop an index build, and must not vanish
silently either. Unknown keys (the corpus's ``origin``) are ignored. A line longer than
``MAX_LINE_BYTES`` is reported ``line too long`` without ever being held in memory whole, and an
article over a size cap (``index.limits``) ``too large (field: N > cap)``. A file with no record
at all (empty, only blank lines, an empty gzip stream) is reported ``empty file``, as an empty
portal export is.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from index.article import Article, as_vietnam_time
from index.cleanup import clean_line, clean_paragraphs
from index.limits import MAX_LINE_BYTES, TOO_LONG, too_large

# defined before the package imports this module
from index.readers import MAX_VIEWS, MAX_YEAR, MIN_YEAR, ReadError, date_in_range

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CATEGORY = "Khác"
_BOM = b"\xef\xbb\xbf"
# How much of an over-long line is read at a time while skipping to its end.
_SKIP_CHUNK = 1024 * 1024


class RecordError(Exception):
    """One line's problem; becomes a ``ReadError`` carrying the file name and line number."""


def read_jsonl(stream: IO[bytes], label: str) -> Iterator[Article | ReadError]:
    """Articles from a binary stream; gzip is detected by its magic bytes, not the file name.

    ``stream`` must support ``peek`` (any ``io.BufferedReader``: ``open(path, "rb")``,
    ``sys.stdin.buffer``) so the magic bytes can be seen without consuming them.
    """
    head = stream.peek(2)[:2]  # type: ignore[attr-defined]
    source: IO[bytes] | gzip.GzipFile = stream
    if head == GZIP_MAGIC:
        # GzipFile inflates only as much as each bounded read asks for: a small file that
        # inflates to gigabytes costs time, never more memory than one line.
        source = gzip.GzipFile(fileobj=stream, mode="rb")
    yield from read_jsonl_lines(bounded_lines(source), label)


def bounded_lines(stream: IO[bytes] | gzip.GzipFile, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of ``stream``, ``None`` in place of each line over ``limit`` bytes.

    Never holds more than ``limit`` + 2 bytes of a line: a longer one is read on in chunks of
    ``_SKIP_CHUNK``, dropped as it goes, up to its newline, so the next line is read as usual.
    """
    while True:
        line = stream.readline(limit + 2)  # the content and "\r\n"
        if not line:
            return
        cut_short = len(line) == limit + 2 and not line.endswith(b"\n")  # more of it to come
        if len(line) > limit and (cut_short or len(line.rstrip(b"\r\n")) > limit):
            while not line.endswith(b"\n"):
                line = stream.readline(_SKIP_CHUNK)
                if not line:
                    break
            yield None
        else:
            yield line


def read_jsonl_lines(lines: Iterable[bytes | None], label: str) -> Iterator[Article | ReadError]:
    """Articles from raw lines (bytes, newline optional; ``None`` for a line too long to read),
    numbered from 1.

    A decompression or I/O failure part-way (a truncated ``.gz``) ends the file with one
    ``ReadError`` after everything readable has been yielded; a file without any record is one
    ``empty file`` error.
    """
    number = 0
    records = 0
    try:
        for number, raw in enumerate(lines, 1):
            if raw is None or len(raw) > MAX_LINE_BYTES + 2:
                records += 1
                yield ReadError(label, number, TOO_LONG)
                continue
            if number == 1:
                raw = raw.removeprefix(_BOM)
            if not raw.strip():
                continue
            records += 1
            try:
                yield parse_record(raw)
            except RecordError as err:
                yield ReadError(label, number, str(err))
    except (EOFError, OSError, zlib.error) as err:
        yield ReadError(label, number + 1, f"truncated or corrupt data ({err})")
        return
    if not records:
        yield ReadError(label, None, "empty file")


def parse_record(raw: bytes) -> Article:
    """One line to an ``Article``; raises ``RecordError`` with a short reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordError(f"not UTF-8 (byte 0x{raw[err.start]:02x})") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise RecordError("invalid JSON (nested too deeply)") from None
    except ValueError as err:
        raise RecordError(f"invalid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"not a JSON object but {type(obj).__name__}")

    article_id = clean_line(_text(obj, "id") or "")
    if not article_id:
        raise RecordError("no id")
    if article_id in (".", ".."):  # /articles/.. is a dot segment: no URL can name this article
        raise RecordError(f"bad id {article_id!r}")
    title = clean_line(_text(obj, "title") or "")
    if not title:
        raise RecordError("no title")
    body = _body(obj.get("body"))
    if not body:
        raise RecordError("no body")
    category = clean_line(_text(obj, "category") or "") or DEFAULT_CATEGORY
    try:
        article = Article(
            id=article_id,
            title=title,
            body=body,
            category=category,
            published=_published(obj.get("published")),
            category_path=_text_list(obj, "category_path", clean_line),
            views=_views(obj.get("views")),
            source=clean_line(_text(obj, "source") or "") or None,
            url=clean_line(_text(obj, "url") or "") or None,
            captions=_text_list(obj, "captions", clean_line),
        )
    except ValueError as err:  # the Article invariants, should the checks above miss one
        raise RecordError(str(err)) from None
    if oversize := too_large(article):
        raise RecordError(oversize[1])
    return article


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise RecordError(f"{key} is {type(value).__name__}, not a string")


def _text_list(obj: dict[str, Any], key: str, clean: Any) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{key} is not a list of strings")
    return [c for c in (clean(v) for v in value) if c]


def _body(value: Any) -> list[str]:
    """A string of blank-line-separated paragraphs, or a list of paragraph strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return clean_paragraphs(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [p for v in value for p in clean_paragraphs(v)]
    raise RecordError("body is neither a string nor a list of strings")


def _published(value: Any) -> datetime:
    """ISO 8601; a naive or date-only value is Vietnam time (what the portal and corpus mean)."""
    if value is None or value == "":
        raise RecordError("no date")
    if not isinstance(value, str):
        raise RecordError(f"bad date {_short(value)}")
    try:
        published = as_vietnam_time(datetime.fromisoformat(value.strip()))
    except ValueError:
        raise RecordError(f"bad date {_short(value)}") from None
    if not date_in_range(published):
        raise RecordError(f"bad date {_short(value)} (years {MIN_YEAR}-{MAX_YEAR} only)")
    return published


def _views(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VIEWS:
        raise RecordError(f"bad views {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: error messages quote the value, not a whole line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
