"""Per-client token buckets for the requests that cost real work.

What is limited is decided by cost, not by path: ``searchsvc.engine_calls.charge`` is called where
a request is about to run a search, read the newest articles or render a feed document that no
cache holds, so every route that can make a worker do that work is covered, whatever its path,
and a response replayed from a cache (``caching.ResponseCacheMiddleware``, 304s, ``feed_cache``)
costs nothing.

It protects one worker from one greedy client; it is not a distributed quota: with N workers a
client may get up to N times the rate. The bucket table is bounded: the least recently seen
clients are forgotten first (a ``cachetools.LRUCache`` of ``max_clients``), so a flood of
addresses cannot grow memory; a forgotten client starts again with a full bucket.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable

from cachetools import LRUCache
from starlette.types import Scope

MAX_CLIENTS = 10_000  # buckets remembered per worker: a forgotten client only gets a full bucket again


class TokenBucketLimiter:
    """``rate_per_minute`` tokens refill continuously; a burst of up to ``burst`` is allowed."""

    def __init__(
        self,
        rate_per_minute: int,
        burst: int | None = None,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate = rate_per_minute / 60.0  # tokens per second
        self.burst = float(burst if burst is not None else rate_per_minute)
        self.max_clients = max_clients
        self.clock = clock
        # client key -> (tokens, stamp). cachetools caches are not thread-safe, and a take is a
        # read, a refill and a write that must not interleave with another's: hence the lock
        # (requests are charged on the event loop, but nothing stops a thread from charging one).
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(max(1, max_clients))
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)  # the most recently seen; the least recent goes if full
        return wait

    def wait_time(self, key: str) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now), taking nothing. Lets a caller
        that charges only some outcomes (failed authentications) refuse a client whose bucket is
        already empty before doing the work whose outcome would be charged."""
        now = self.clock()
        with self._lock:
            state = self._buckets.get(key)
        if state is None:
            return 0.0
        tokens = min(self.burst, state[0] + (now - state[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


def is_loopback(client_host: str) -> bool:
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


def client_key(scope: Scope) -> str | None:
    """The address a request is counted against, or None for a local client that is exempt.

    uvicorn (``proxy_headers``) has already replaced ``scope["client"]`` with the address a trusted
    proxy named in ``X-Forwarded-For`` (it trusts ``127.0.0.1`` and ``::1`` by default), and it
    ignores that header from anyone else. So a loopback peer *without* the header is a process on
    this host talking to us directly (the CLI, a benchmark, a health check): exempt, since it has
    the machine anyway. A loopback peer *with* the header is a request relayed by a local proxy,
    which always adds it; it is counted against the forwarded address, or against the proxy's own
    address when uvicorn did not trust the proxy, so that a proxy can never make its clients
    exempt. A client that connects from elsewhere cannot reach the exemption: its peer address is
    not loopback, whatever headers it sends.
    """
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    if is_loopback(host) and not any(name == b"x-forwarded-for" for name, _ in scope.get("headers", ())):
        return None
    return host
