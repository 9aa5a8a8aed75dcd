"""API keys for the admin API: a file of hashed keys beside the index, and the server's view of it.

A key is ``secrets.token_urlsafe(32)``: 256 random bits in 43 URL-safe characters, shown once by
``searchsvc keys create`` and never stored. The keys file (``<index_dir>/keys.json``, or
``$SEARCHSVC_KEYS_FILE``) holds for each key its name, scope, creation (and revocation) time and
the SHA-256 of the key. Why a plain hash is enough: salts and slow KDFs (bcrypt, scrypt, argon2)
exist to make guessing a *low-entropy* secret (a password) expensive one candidate at a time and
to stop one guess from testing many stored hashes at once. A 256-bit random key cannot be guessed
whatever the cost per guess, so a stolen file reveals nothing usable, and a fast hash keeps the
check of every request cheap (no KDF to run per request, no cache of verified keys to keep).

The file is written atomically (a temporary file in the same directory, fsynced, then renamed,
with mode 0600 from the start) under an exclusive lock file, so two ``keys create`` runs never
lose each other's key and a server never reads half a file. A running server (``KeyRing``) looks
at the file's identity (inode, size, modification time) at most once a second and re-reads it
when it changed: new and revoked keys take effect without a restart. A missing file means the
admin API is off; a file that exists but cannot be read or parsed is an error (the server then
refuses every admin request with 503 rather than guess).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

KEYS_FILE = "keys.json"
KEYS_ENV = "SEARCHSVC_KEYS_FILE"
KEY_BYTES = 32  # 256 bits of randomness per key
# What ``secrets.token_urlsafe(KEY_BYTES)`` produces: unpadded URL-safe base64 of 32 bytes.
KEY_FORM = re.compile(r"[A-Za-z0-9_-]{43}")
HASH_PREFIX = "sha256:"
FORMAT_VERSION = 1
MAX_NAME_CHARS = 64
NAME_FORM = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}")
MAX_KEYS_FILE_BYTES = 1 << 20  # a file of keys larger than this is not ours: refused, not read
RECHECK_INTERVAL = 1.0  # seconds between looks at the keys file by a running server


class Scope(StrEnum):
    """What a key may do. ``ingest`` publishes, corrects and unpublishes; ``admin`` may do all of
    that and whatever the later admin routes add."""

    INGEST = "ingest"
    ADMIN = "admin"

    @property
    def grants(self) -> frozenset[Scope]:
        """The scopes a key of this scope holds."""
        return frozenset({Scope.INGEST, Scope.ADMIN}) if self is Scope.ADMIN else frozenset({Scope.INGEST})


class KeysFileError(Exception):
    """The keys file exists but cannot be used (unreadable, not ours, malformed)."""


class KeyNameError(ValueError):
    """A name that cannot be created or revoked (bad form, taken, unknown)."""


def default_keys_path(index_dir: Path) -> Path:
    """``$SEARCHSVC_KEYS_FILE`` when set, else ``<index_dir>/keys.json``."""
    configured = os.environ.get(KEYS_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path(index_dir) / KEYS_FILE


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_key(value: str) -> bool:
    """Whether ``value`` has the form of a key (used to refuse keys sent in a query string)."""
    return KEY_FORM.fullmatch(value) is not None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    name: str
    scope: Scope
    hash: str
    created: datetime
    revoked: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope.value,
            "hash": self.hash,
            "created": self.created.isoformat(),
            "revoked": self.revoked.isoformat() if self.revoked else None,
        }

    @classmethod
    def from_json(cls, data: object) -> KeyRecord:
        if not isinstance(data, dict):
            raise KeysFileError("a key entry is not an object")
        try:
            digest = str(data["hash"])
            if not re.fullmatch(re.escape(HASH_PREFIX) + "[0-9a-f]{64}", digest):
                raise KeysFileError(f"key {data.get('name')!r}: the hash is not {HASH_PREFIX}<64 hex digits>")
            return cls(
                name=str(data["name"]),
                scope=Scope(data["scope"]),
                hash=digest,
                created=datetime.fromisoformat(str(data["created"])),
                revoked=datetime.fromisoformat(str(data["revoked"])) if data.get("revoked") else None,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise KeysFileError(f"a key entry is malformed ({exc!s})") from None


def parse_keys(text: str) -> list[KeyRecord]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KeysFileError(f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or not isinstance(data.get("keys"), list):
        raise KeysFileError(f'not a keys file (expected {{"version": {FORMAT_VERSION}, "keys": [...]}})')
    records = [KeyRecord.from_json(entry) for entry in data["keys"]]
    names = [r.name for r in records]
    if len(names) != len(set(names)):
        raise KeysFileError("a key name appears twice")
    return records


def read_keys(path: Path) -> list[KeyRecord] | None:
    """The records of the keys file; None when there is no file (the admin API is off)."""
    try:
        # Non-blocking, and refused unless a regular file: a FIFO put there would otherwise block
        # the reader (a server reads it on its event loop) until someone writes to it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeysFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise KeysFileError(f"{path} is not a regular file")
            raw = handle.read(MAX_KEYS_FILE_BYTES + 1)
    except OSError as exc:
        raise KeysFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_KEYS_FILE_BYTES:
        raise KeysFileError(f"{path} is larger than {MAX_KEYS_FILE_BYTES} bytes")
    try:
        return parse_keys(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise KeysFileError(f"{path} is not UTF-8") from None
    except KeysFileError as exc:
        raise KeysFileError(f"{path}: {exc}") from None


def _write_keys(path: Path, records: list[KeyRecord]) -> None:
    """Replace the file atomically; it is created with mode 0600 and never exists half-written."""
    text = json.dumps({"version": FORMAT_VERSION, "keys": [r.to_json() for r in records]}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # mkstemp's mode already; said again so that a umask cannot matter
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for a read-modify-write of the keys file (a ``.lock`` file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_name(name: str) -> str:
    if not NAME_FORM.fullmatch(name):
        raise KeyNameError(
            f"bad key name {name!r}: 1-{MAX_NAME_CHARS} characters, letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_key(path: Path, name: str, scope: Scope) -> tuple[str, KeyRecord]:
    """A new key named ``name``: returns the key (to show once) and its record (what is stored).

    A name held by an active key is refused; one held by a revoked key is reused (the revoked
    record is replaced, so the file does not grow with every rotation).
    """
    check_name(name)
    with _locked(path):
        records = read_keys(path) or []
        existing = next((r for r in records if r.name == name), None)
        if existing is not None and existing.active:
            raise KeyNameError(f"a key named {name!r} exists (revoke it first, or choose another name)")
        key = secrets.token_urlsafe(KEY_BYTES)
        record = KeyRecord(name=name, scope=Scope(scope), hash=hash_key(key), created=_now())
        _write_keys(path, [r for r in records if r.name != name] + [record])
    return key, record


def revoke_key(path: Path, name: str) -> KeyRecord:
    """Mark the key ``name`` revoked (its hash is kept, so that a use of it is logged as such)."""
    with _locked(path):
        records = read_keys(path)
        if records is None:
            raise KeyNameError(f"no keys file at {path}")
        record = next((r for r in records if r.name == name), None)
        if record is None:
            raise KeyNameError(f"no key named {name!r}")
        if not record.active:
            return record
        revoked = KeyRecord(record.name, record.scope, record.hash, record.created, _now())
        _write_keys(path, [revoked if r.name == name else r for r in records])
    return revoked


# --- the server's view ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """What a presented key turned out to be: the record it hashes to, if any."""

    record: KeyRecord | None

    @property
    def valid(self) -> bool:
        return self.record is not None and self.record.active


class KeyRing:
    """The keys file as a running server sees it, re-read when it changes.

    ``keys()`` stats the file at most every ``interval`` seconds and re-reads it when its identity
    (device, inode, size, modification time) changed; ``KeysFileError`` when it cannot be used.
    ``match(key)`` compares the key's hash with every stored hash in constant time
    (``hmac.compare_digest``, no early exit), so the time taken says nothing about which stored
    hash came close.
    """

    def __init__(self, path: Path, interval: float = RECHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._identity: tuple[int, int, int, int] | None = None
        self._records: list[KeyRecord] | None = None
        self._error: KeysFileError | None = None

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._identity, self._records, self._error = None, None, None
            return
        except OSError as exc:
            self._identity, self._records = None, None
            self._error = KeysFileError(f"cannot read {self.path}: {exc.strerror or exc}")
            return
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if identity == self._identity:
            return
        try:
            self._records, self._error = read_keys(self.path), None
        except KeysFileError as exc:
            self._records, self._error = None, exc
        self._identity = identity

    def keys(self) -> list[KeyRecord] | None:
        """The records (active and revoked), or None when there is no keys file."""
        with self._lock:
            now = self.clock()
            if now - self._checked >= self.interval:
                self._checked = now
                self._refresh()
            if self._error is not None:
                raise self._error
            return self._records

    def match(self, key: str, records: list[KeyRecord]) -> Match:
        digest = hash_key(key).encode("ascii")
        found: KeyRecord | None = None
        for record in records:
            if hmac.compare_digest(digest, record.hash.encode("ascii")) and found is None:
                found = record
        return Match(found)
