"""Service configuration, read from ``SEARCHSVC_*`` environment variables.

The environment is the one channel that reaches every uvicorn worker: ``searchsvc serve`` turns its
command-line options into a ``Config``, writes it back with ``Config.to_env()`` and each worker
process rebuilds the same ``Config`` with ``Config.from_env()`` inside ``create_app``.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feeds.sitemap import URLS_PER_FILE
from index.api import SettingError
from index.applier import INTERVAL_ENV, commit_interval_from_env
from index.journal import JOURNAL_FILE

from .keys import KEYS_FILE

DEFAULT_SITE_TITLE = "Tin tức – Lưu trữ"
DEFAULT_ADMIN_MAX_BODY = 16 << 20  # bytes of one admin API request (an NDJSON batch of articles)
DEFAULT_RATE_LIMIT = 120  # costly requests per minute per client (searchsvc.http.ratelimit says which)
# Admission control of expensive work (searchsvc.admission). The deadline is what a reader should
# wait at most for a search or a feed: 4-8x the p95 of searches that are all new, 16 connections on
# the full corpus (237 and 465 ms in two runs, README and docs/service.md), so ordinary load is
# never refused, while a flood is told to come back (503 + Retry-After) within 2 s instead of
# queueing for ever. The queue bound holds the memory of waiting requests when the deadline cannot
# (before any run time is known, or with the deadline off): 256 waiting on the machine is more than
# the deadline lets wait at the ~170 distinct searches/s two cores reach, so it binds only then.
DEFAULT_ADMISSION_QUEUE = 256  # waiting expensive requests, whole machine
DEFAULT_ADMISSION_DEADLINE = 2.0  # seconds for one expensive request, waiting and running; 0: none
MAX_ADMISSION_DEADLINE = 3600.0  # a deadline longer than an hour is a mistake (milliseconds meant?)
MAX_WORKER_NICE = 19  # the largest increment Linux applies
# How much less CPU priority the serving workers take than the publishing applier (``nice``). Why:
# on a machine whose cores searches keep busy, the applier got a third of a core, and a commit of
# a second's articles took 2.4-5 s, so articles showed 9 s after their 202 at 50 a second
# (docs/benchmarks.md, "Publishing"). At 4 (a worker thread weighs 0.4 of the applier) commits
# took 0.7 s and the delay's p99 was 4.8 s; at 10 searches were shed as overloaded. The cost is
# the searches': while publishing, they wait for the applier's CPU.
DEFAULT_WORKER_NICE = 4
# Heaps (glibc malloc arenas) each serving process may use (``index.memory``). In the 10-minute soak
# on the full corpus, with freed memory handed back every 30 s, the workers ended at 768 and 832 MB
# with glibc's own limit (eight per core) and at 740 and 708 MB with 2, serving as many requests
# (39,801 and 39,571; docs/benchmarks.md): the engine threads are few and hold the GIL while they
# allocate, so they hardly contend for a heap.
DEFAULT_MALLOC_ARENAS = 2
MAX_MALLOC_ARENAS = 64

# field name -> environment variable. Every field of ``Config`` is listed once.
ENV_NAMES: dict[str, str] = {
    "index_dir": "SEARCHSVC_INDEX_DIR",
    "engine": "SEARCHSVC_ENGINE",
    "base_url": "SEARCHSVC_BASE_URL",
    "cors_origins": "SEARCHSVC_CORS_ORIGINS",
    "workers": "SEARCHSVC_WORKERS",
    "engine_threads": "SEARCHSVC_ENGINE_THREADS",
    "response_cache_mb": "SEARCHSVC_RESPONSE_CACHE_MB",
    "host": "SEARCHSVC_HOST",
    "port": "SEARCHSVC_PORT",
    "site_title": "SEARCHSVC_SITE_TITLE",
    "rate_limit": "SEARCHSVC_RATE_LIMIT",
    "websub_hub": "SEARCHSVC_WEBSUB_HUB",
    "timeout_graceful_shutdown": "SEARCHSVC_TIMEOUT_GRACEFUL_SHUTDOWN",
    "cache_max_age": "SEARCHSVC_CACHE_MAX_AGE",
    "access_log": "SEARCHSVC_ACCESS_LOG",
    "log_level": "SEARCHSVC_LOG_LEVEL",
    "journal": "SEARCHSVC_JOURNAL",
    "commit_interval": "SEARCHSVC_COMMIT_INTERVAL",
    "applier": "SEARCHSVC_APPLIER",
    "keys_file": "SEARCHSVC_KEYS_FILE",
    "admin_max_body": "SEARCHSVC_ADMIN_MAX_BODY",
    "admission_queue": "SEARCHSVC_ADMISSION_QUEUE",
    "admission_deadline": "SEARCHSVC_ADMISSION_DEADLINE",
    "http": "SEARCHSVC_HTTP",
    "sitemap_urls": "SEARCHSVC_SITEMAP_URLS",
    "worker_nice": "SEARCHSVC_WORKER_NICE",
    "malloc_arenas": "SEARCHSVC_MALLOC_ARENAS",
}


class ConfigError(SettingError):
    """A setting that cannot be used; the message names the variable so an operator can fix it."""


def default_base_url(host: str, port: int) -> str:
    """The base URL of the address actually served, for when no public one is configured.

    A wildcard bind (0.0.0.0, ::) names no host a link could use, so links then point at this
    machine's loopback; a public deployment sets SEARCHSVC_BASE_URL (README, "Configuration").
    """
    name = host.strip().strip("[]") or "127.0.0.1"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return f"http://{name}:{port}"  # a host name
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"http://[{address}]:{port}" if address.version == 6 else f"http://{address}:{port}"


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


ENGINES = ("whoosh", "typesense")
# uvicorn's HTTP/1.1 parsers; searchsvc.server.PROTOCOLS maps each to its protocol class and loop.
HTTP_PROTOCOLS = ("httptools", "h11")


@dataclass(frozen=True, slots=True)
class Config:
    index_dir: Path = Path("var/index")
    # "whoosh": the embedded index in index_dir; "typesense": a cluster (SEARCHSVC_TYPESENSE_*,
    # index.typesense.connection), index_dir then holds only local state (journal, keys, status).
    engine: str = "whoosh"
    # Public base URL for absolute links; empty means the address served (default_base_url).
    base_url: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    workers: int = 1
    # Threads per worker that run heavy index work (searches, feed renders). Few on purpose:
    # Whoosh's work is pure Python under the GIL, and its many small file reads each release and
    # re-take the GIL, so N busy threads in one process do not go faster than one; they only
    # finish together, late, and each keeps its own searcher. With Starlette's default pool (40
    # threads) search throughput under load collapsed (docs/service.md, SEARCHSVC_ENGINE_THREADS).
    engine_threads: int = 2
    # Megabytes per worker of finished responses (pages and API answers, gzipped or not) kept to
    # answer repeats of the same request on the same index generation; 0 turns it off.
    response_cache_mb: int = 64
    host: str = "127.0.0.1"
    port: int = 8000
    site_title: str = DEFAULT_SITE_TITLE
    # Costly requests (a search, a suggestion, an uncached feed render) per minute per client;
    # 0 turns the limiter off. On whatever address the server binds: bound to loopback, it is
    # usually behind a local reverse proxy, whose clients must be limited (see ratelimit.client_key).
    rate_limit: int = DEFAULT_RATE_LIMIT
    websub_hub: str | None = None
    timeout_graceful_shutdown: int = 10
    # max-age for cacheable GET responses; 0 means "store but revalidate every time" (ETag makes
    # revalidation cheap), which keeps a re-indexed archive visible at once.
    cache_max_age: int = 0
    access_log: bool = True
    log_level: str = "info"
    # The publishing journal (index.journal); None: <index_dir>/journal.sqlite3 (``journal_path``).
    journal: Path | None = None
    # Seconds between the applier's commits at most (index.applier).
    commit_interval: float = 1.0
    # Whether ``serve`` runs the applier beside the workers (searchsvc.supervisor).
    applier: bool = True
    # The serving workers' nice increment (``DEFAULT_WORKER_NICE`` says why); 0 leaves them alone.
    worker_nice: int = DEFAULT_WORKER_NICE
    # glibc heaps per serving process (``DEFAULT_MALLOC_ARENAS`` says why); 0 leaves glibc's default,
    # and a ``MALLOC_ARENA_MAX`` in the environment wins over both.
    malloc_arenas: int = DEFAULT_MALLOC_ARENAS
    # The admin API's keys (searchsvc.keys); None: <index_dir>/keys.json (``keys_path``). No file:
    # the admin API is off (every /api/admin/ path answers 404).
    keys_file: Path | None = None
    # Bytes one admin API request body may hold (413 above); other requests keep the app's own cap.
    admin_max_body: int = DEFAULT_ADMIN_MAX_BODY
    # Expensive requests (a search no cache answers, the newest articles, an uncached feed render)
    # that may wait for an engine thread on the whole machine; each worker takes its share
    # (``admission_queue_per_worker``). 0: none waits, all threads busy means 503 overloaded.
    admission_queue: int = DEFAULT_ADMISSION_QUEUE
    # Seconds an expensive request may take, waiting included: it waits only as long as leaves
    # time to run, and is refused at once when its wait is predicted to be longer; 0: no deadline.
    admission_deadline: float = DEFAULT_ADMISSION_DEADLINE
    # The HTTP/1.1 parser: "httptools" (on uvloop, the faster) or "h11" (on asyncio, the former
    # stack); both with the same request-head deadline and size limit (searchsvc.server).
    http: str = "httptools"
    # URLs in one sitemap file at most (a month with more is split: /sitemaps/YYYY-MM-2.xml, ...);
    # the default is the most that always fits the protocol's 50 MB (feeds.sitemap).
    sitemap_urls: int = URLS_PER_FILE

    @property
    def journal_path(self) -> Path:
        return self.journal if self.journal is not None else self.index_dir / JOURNAL_FILE

    @property
    def keys_path(self) -> Path:
        return self.keys_file if self.keys_file is not None else self.index_dir / KEYS_FILE

    @property
    def admission_queue_per_worker(self) -> int:
        """One worker's share of the machine's wait queue: never more than the machine's bound in
        all (rounded down), never 0 unless the bound is (one waiting request per worker at least)."""
        if self.admission_queue == 0:
            return 0
        return max(1, self.admission_queue // self.workers)

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Build a config from ``environ`` (default ``os.environ``), then apply ``overrides``.

        ``overrides`` are typed values keyed by field name (what a CLI parsed); ``None`` values
        are skipped so an option the user did not give leaves the environment in charge.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name, var in ENV_NAMES.items():
            value = env.get(var)
            if value is not None and value.strip() != "":
                raw[name] = value.strip()
        for name, value in (overrides or {}).items():
            if name not in ENV_NAMES:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                raw[name] = value
        return cls._build(raw)

    @classmethod
    def _build(cls, raw: Mapping[str, Any]) -> Config:
        values: dict[str, Any] = {}
        if "index_dir" in raw:
            values["index_dir"] = Path(str(raw["index_dir"])).expanduser()
        if "base_url" in raw:
            base_url = str(raw["base_url"]).rstrip("/")
            if not base_url.startswith(("http://", "https://")):
                raise ConfigError(f"{ENV_NAMES['base_url']} must start with http:// or https://: {base_url!r}")
            values["base_url"] = base_url
        if "cors_origins" in raw:
            origins = raw["cors_origins"]
            if isinstance(origins, str):
                origins = [o.strip() for o in origins.split(",")]
            values["cors_origins"] = tuple(o for o in origins if o)
        for name in ("workers", "engine_threads", "response_cache_mb", "port", "timeout_graceful_shutdown",
                     "cache_max_age", "rate_limit", "admin_max_body", "admission_queue", "sitemap_urls",
                     "worker_nice", "malloc_arenas"):
            if name in raw:
                values[name] = _as_int(name, raw[name])
        if "engine" in raw:
            engine = str(raw["engine"]).strip().lower()
            if engine not in ENGINES:
                raise ConfigError(f"{ENV_NAMES['engine']} must be one of {', '.join(ENGINES)}, not {engine!r}")
            values["engine"] = engine
        if "http" in raw:
            http = str(raw["http"]).strip().lower()
            if http not in HTTP_PROTOCOLS:
                raise ConfigError(f"{ENV_NAMES['http']} must be one of {', '.join(HTTP_PROTOCOLS)}, not {http!r}")
            values["http"] = http
        for name in ("host", "site_title", "log_level"):
            if name in raw:
                values[name] = str(raw[name])
        if "websub_hub" in raw:
            values["websub_hub"] = _websub_hub(str(raw["websub_hub"]).strip()) or None
        if "access_log" in raw:
            values["access_log"] = _as_bool("access_log", raw["access_log"])
        if "applier" in raw:
            values["applier"] = _as_bool("applier", raw["applier"])
        if "journal" in raw:
            values["journal"] = Path(str(raw["journal"])).expanduser()
        if "keys_file" in raw:
            values["keys_file"] = Path(str(raw["keys_file"])).expanduser()
        if "admission_deadline" in raw:
            values["admission_deadline"] = _as_float("admission_deadline", raw["admission_deadline"])
        if "commit_interval" in raw:
            try:
                values["commit_interval"] = commit_interval_from_env({INTERVAL_ENV: str(raw["commit_interval"])})
            except SettingError as exc:
                raise ConfigError(str(exc)) from None
        config = cls(**values)
        config._check()
        return config

    def __post_init__(self) -> None:
        if not self.base_url:  # frozen: set once, here, so every way of building a Config agrees
            object.__setattr__(self, "base_url", default_base_url(self.host, self.port))

    def _check(self) -> None:
        for name in ("workers", "engine_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{ENV_NAMES[name]} must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{ENV_NAMES['port']} must be a TCP port (0-65535)")
        for name in ("rate_limit", "timeout_graceful_shutdown", "cache_max_age", "response_cache_mb",
                     "admission_queue"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV_NAMES[name]} must not be negative")
        if not 0 <= self.worker_nice <= MAX_WORKER_NICE:
            raise ConfigError(f"{ENV_NAMES['worker_nice']} must be a nice increment from 0 to {MAX_WORKER_NICE}")
        if not 0 <= self.malloc_arenas <= MAX_MALLOC_ARENAS:
            raise ConfigError(f"{ENV_NAMES['malloc_arenas']} must be a number of heaps from 0 (glibc's default) "
                              f"to {MAX_MALLOC_ARENAS}")
        if not 1 <= self.sitemap_urls <= URLS_PER_FILE:
            raise ConfigError(f"{ENV_NAMES['sitemap_urls']} must be from 1 to {URLS_PER_FILE}")
        if self.admin_max_body < 1:
            raise ConfigError(f"{ENV_NAMES['admin_max_body']} must be a number of bytes, at least 1")
        if not (math.isfinite(self.admission_deadline) and 0 <= self.admission_deadline <= MAX_ADMISSION_DEADLINE):
            raise ConfigError(f"{ENV_NAMES['admission_deadline']} must be a number of seconds from 0 (no deadline) "
                              f"to {MAX_ADMISSION_DEADLINE:g}")

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``Config.from_env()`` in a worker return this same config."""
        env: dict[str, str] = {}
        for f in fields(self):
            if f.name not in ENV_NAMES:
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            env[ENV_NAMES[f.name]] = str(value)
        return env


def _websub_hub(value: str) -> str:
    """The hub's URL: absolute http(s), and nothing that could break out of the feeds' ``<link>``
    elements and ``Link`` headers (spaces, quotes, angle brackets, control characters) or that a
    header cannot carry (anything but ASCII)."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
        absolute = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        absolute = False
    if (not absolute or not value.isascii()
            or any(c.isspace() or c in '<>"' or ord(c) < 32 or ord(c) == 127 for c in value)):
        raise ConfigError(f"{ENV_NAMES['websub_hub']} must be an absolute http:// or https:// URL in ASCII "
                          f"(percent-encoded), without spaces, quotes or angle brackets, not {value!r}")
    return value


def _as_int(name: str, value: Any) -> int:
    """An integer; a whole float ("10.0", or 10.0 from an argparse ``type=float``) is accepted."""
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number.is_integer():
        return int(number)
    raise ConfigError(f"{ENV_NAMES[name]} must be an integer, not {value!r}")


def _as_float(name: str, value: Any) -> float:
    """A finite number ("2", "0.5"); NaN and infinities are refused with the variable's name."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(f"{ENV_NAMES[name]} must be a number, not {value!r}")
    return number


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{ENV_NAMES[name]} must be a boolean (1/0, true/false), not {value!r}")
