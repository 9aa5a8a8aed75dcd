"""The public reader API: turn files, directories or stdin into ``Article``s and ``ReadError``s.

Callers (the indexer, the CLI) get one stream mixing both, in input order, and decide what to do
with errors (count them, print them, fail the build). Readers never raise for bad input: one
broken export or corpus line must not stop a build, and must not disappear without a trace.

Formats: ``.jsonl``, ``.json``, ``.jsonl.gz`` and ``.gz`` are JSON Lines (see ``jsonl``), ``.txt``
is the portal text export (see ``portal``); any other name, and stdin (``-``), is recognised by
content: gzip magic or a first non-blank ``{`` means JSON Lines, anything else a portal export.

Nothing is read without bound (``index.limits``): JSON Lines are read a line at a time, each line
at most ``MAX_LINE_BYTES`` (a longer one, or a gzip stream that inflates to one, is skipped in
bounded chunks); a portal export is read whole but at most ``MAX_PORTAL_FILE_BYTES``. Only
regular files are opened: a FIFO would block the run (and the writer lock) forever, a device
such as ``/dev/zero`` never ends; both are reported and skipped, symlinks to them too. A pipe is
read through stdin (``-``).
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(slots=True)
class ReadError:
    """One problem in the input: which file, which line (when known) and why."""

    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        """``path:line: reason``, the format editors and CI logs make clickable."""
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.reason}"


# Values the index can hold, checked by both readers. Outside them the builder fails: a date
# whose UTC form leaves years 1-9999 raises OverflowError and aborts the whole run, a year-1 date
# breaks every search that ranks it, a view count over 2**64 - 1 makes a --rebuild sub-writer drop
# its whole batch; and a year far from the others would draw a timeline of thousands of bars.
MIN_YEAR, MAX_YEAR = 1900, 2100
MAX_VIEWS = 2**63 - 1


def date_in_range(value: object) -> bool:
    """True when ``value`` (a datetime) falls in years MIN_YEAR..MAX_YEAR."""
    return MIN_YEAR <= getattr(value, "year", 0) <= MAX_YEAR


# Imported after ReadError on purpose: the reader modules import it from this package.
from index.article import Article  # noqa: E402
from index.limits import MAX_PORTAL_FILE_BYTES  # noqa: E402
from index.readers.jsonl import GZIP_MAGIC, read_jsonl  # noqa: E402
from index.readers.portal import read_portal  # noqa: E402

__all__ = ["ReadError", "read_sources", "read_path", "read_stream"]

STDIN = "-"
STDIN_LABEL = "<stdin>"
_JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".gz")
_PORTAL_SUFFIXES = (".txt",)
_SNIFF_BYTES = 64 * 1024

Item = Article | ReadError


def read_sources(sources: Iterable[str]) -> Iterator[Item]:
    """Everything in ``sources`` (file paths, directories, ``-`` for stdin), in the given order."""
    for source in sources:
        if source == STDIN:
            yield from read_stream(sys.stdin.buffer, STDIN_LABEL, stem="stdin")
        else:
            yield from read_path(Path(source))


def read_path(path: Path) -> Iterator[Item]:
    """A file, or a directory walked recursively in sorted order; hidden entries are skipped."""
    is_dir = _is_dir(path)
    if isinstance(is_dir, ReadError):
        yield is_dir
    elif is_dir:
        yield from _walk(path, visited=set())
    else:
        yield from _read_file(path)


def _is_dir(path: Path) -> bool | ReadError:
    """``Path.is_dir`` lets a PermissionError through; here it becomes a ReadError."""
    try:
        return path.is_dir()
    except OSError as err:
        return ReadError(str(path), None, f"cannot access ({err.strerror or err})")


def _walk(directory: Path, visited: set[str]) -> Iterator[Item]:
    real = os.path.realpath(directory)
    if real in visited:  # a symlink loop: each real directory is read once
        return
    visited.add(real)
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as err:
        yield ReadError(str(directory), None, f"cannot list directory ({err.strerror or err})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        is_dir = _is_dir(entry)
        if isinstance(is_dir, ReadError):
            yield is_dir
        elif is_dir:
            yield from _walk(entry, visited)
        else:
            yield from _read_file(entry)


# What a file that is not a regular one is, for the message that skips it.
_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory"))


def _not_regular(mode: int) -> str | None:
    """None for a regular file, else why it is not read."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _SPECIAL if test(mode)), "special file")
    return f"not a regular file ({kind})"


def _open_regular(path: Path) -> int | str:
    """A read-only descriptor for ``path`` if it is a regular file, else the reason it is not read.

    ``stat`` (following symlinks) comes before ``open``: opening a FIFO blocks until a writer
    appears, opening a device can have effects of its own. The open itself is non-blocking and
    checked again with ``fstat``, so a file swapped for a FIFO in between cannot block either
    (O_NONBLOCK changes nothing for reads of a regular file).
    """
    reason = _not_regular(os.stat(path).st_mode)
    if reason is not None:
        return reason
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        reason = _not_regular(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if reason is not None:
        os.close(fd)
        return reason
    return fd


def _read_file(path: Path) -> Iterator[Item]:
    label = str(path)
    try:
        fd = _open_regular(path)
    except FileNotFoundError:
        yield ReadError(label, None, "no such file or directory")
        return
    except OSError as err:
        yield ReadError(label, None, f"cannot open ({err.strerror or err})")
        return
    if isinstance(fd, str):
        yield ReadError(label, None, fd)
        return
    with os.fdopen(fd, "rb") as stream:
        yield from read_stream(stream, label, stem=_stem(path), fmt=_format_by_name(path.name))


def read_stream(
    stream: IO[bytes], label: str, stem: str, fmt: str | None = None
) -> Iterator[Item]:
    """Read an open binary stream; ``fmt`` is "jsonl" or "portal", ``None`` to sniff the content.

    The first bytes are read once for sniffing and then put back in front of the rest, so
    non-seekable input (a pipe on stdin) works and JSON Lines are still streamed, not slurped.
    """
    try:
        head = stream.read(_SNIFF_BYTES)
        fmt = fmt or _sniff(head)
        if fmt == "portal":
            data = head + stream.read(MAX_PORTAL_FILE_BYTES + 1 - len(head))
            if len(data) > MAX_PORTAL_FILE_BYTES:
                yield ReadError(label, None, f"too large (file: more than {MAX_PORTAL_FILE_BYTES} bytes)")
                return
            yield from read_portal(data, label, stem)
        else:
            yield from read_jsonl(io.BufferedReader(_Prefixed(head, stream)), label)
    except OSError as err:
        yield ReadError(label, None, f"read error ({err.strerror or err})")


def _format_by_name(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if lower.endswith(_PORTAL_SUFFIXES):
        return "portal"
    return None


def _sniff(head: bytes) -> str:
    """gzip or a first non-blank ``{`` → JSON Lines; everything else (UTF-16 too) → portal text."""
    if head.startswith(GZIP_MAGIC):
        return "jsonl"
    return "jsonl" if head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{" else "portal"


def _stem(path: Path) -> str:
    """File name without its extension(s) for the known formats: the basis of portal ids."""
    name = path.name
    for suffix in (*_JSONL_SUFFIXES, *_PORTAL_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem or name


class _Prefixed(io.RawIOBase):
    """A raw stream that replays ``head`` and then continues with ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
