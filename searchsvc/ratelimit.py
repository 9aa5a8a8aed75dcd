"""A small in-process token-bucket limiter for the expensive routes (search and suggest).

It protects one worker from one greedy client; it is not a distributed quota: with N workers a
client may get up to N times the rate. Loopback clients are never limited (local tools, tests and
a reverse proxy on the same host, which should do its own limiting). The bucket table is bounded:
the least recently seen clients are forgotten first, so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import json_error


class TokenBucketLimiter:
    """``rate_per_minute`` tokens refill continuously; a burst of up to ``burst`` is allowed."""

    def __init__(
        self,
        rate_per_minute: int,
        burst: int | None = None,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate = rate_per_minute / 60.0  # tokens per second
        self.burst = float(burst if burst is not None else rate_per_minute)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, stamp)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


def is_loopback(client_host: str) -> bool:
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


class RateLimitMiddleware:
    """429 JSON with ``Retry-After`` once a non-loopback client exceeds its bucket on ``paths``."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: TokenBucketLimiter | None,
        paths: Iterable[str],
        on_limited: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = frozenset(paths)
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter is None or scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else "unknown"
        if is_loopback(host):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(host)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        if self.on_limited is not None:
            self.on_limited()
        retry_after = str(max(1, math.ceil(wait)))
        response = json_error(429, "rate_limited", "too many requests; retry later", {"Retry-After": retry_after})
        await response(scope, receive, send)
