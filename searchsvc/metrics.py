"""Prometheus metrics that stay correct with several uvicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``searchsvc.server`` does it when workers > 1), every worker
writes its samples to files in that directory and a scrape, answered by whichever worker gets it,
merges all of them; without it the metrics live in this process's own registry.

Every label value comes from a fixed set, whatever a client sends, because each distinct value is
a new series kept (and scraped) for the life of the process: the route is its *template*
("/api/articles/{article_id}", or ``<unmatched>``), never the raw path, and a method outside
``HTTP_METHODS`` is ``other`` (any token is a valid method to uvicorn: ``M123``, or 4,000 letters).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# RFC 9110 section 9 and PATCH (RFC 5789): the methods a client of ours may use on purpose.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"
# Why an admin API request was refused (searchsvc.http.auth): no key, a header that is not
# "Bearer <key>", a key that matches nothing, a revoked key, a key in the query string, a valid key
# without the route's scope, a client refused because of its earlier failures.
AUTH_FAILURE_REASONS = ("missing", "malformed", "unknown", "revoked", "in_query", "scope", "throttled")
# Why expensive work was refused with 503 overloaded (searchsvc.admission): the wait queue was full,
# or the wait (predicted, or real) would have left too little of the deadline.
SHED_REASONS = ("queue", "deadline")
# Seconds admitted expensive work waited for an engine thread: 0 for most while the machine keeps up.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def method_label(method: str) -> str:
    """The method as a label value: itself if standard, else ``other`` (methods are case-sensitive)."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class Metrics:
    """The service's metric objects and their exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # In multiprocess mode metrics must not be registered anywhere: the collector reads files.
        self._registry = None if self.multiprocess else CollectorRegistry()
        registry = self._registry
        self.requests = Counter(
            "searchsvc_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "searchsvc_http_request_duration_seconds",
            "Time from request start to the last byte sent, by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tiers = Counter(
            "searchsvc_search_tier_total",
            "Searches answered, by the matching tier that produced the results.",
            ["tier"],
            registry=registry,
        )
        self.not_modified = Counter(
            "searchsvc_http_not_modified_total",
            "Conditional GETs answered 304 without running the handler.",
            registry=registry,
        )
        self.response_cache_hits = Counter(
            "searchsvc_response_cache_hits_total",
            "GETs answered from the bytes of an earlier identical answer on the same index generation.",
            registry=registry,
        )
        self.rate_limited = Counter(
            "searchsvc_rate_limited_total", "Requests refused with 429 by the per-client limiter.", registry=registry
        )
        # ``reason`` is one of ``AUTH_FAILURE_REASONS``, never anything a client sent.
        self.auth_failures = Counter(
            "searchsvc_auth_failures_total",
            "Admin API requests refused by authentication or authorisation, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in AUTH_FAILURE_REASONS:  # every series from the start, at 0: rates need no gap-filling
            self.auth_failures.labels(reason)
        # ``reason`` is one of ``SHED_REASONS``.
        self.admission_shed = Counter(
            "searchsvc_admission_shed_total",
            "Expensive requests (searches, newest-article lists, feed renders) refused with 503 overloaded, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in SHED_REASONS:
            self.admission_shed.labels(reason)
        self.admission_wait = Histogram(
            "searchsvc_admission_wait_seconds",
            "Time admitted expensive requests waited for an engine thread.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.feed_renders = Counter(
            "searchsvc_feed_renders_total",
            "Feed, OPML, embed and /feeds documents rendered because no feed-cache entry held them.",
            registry=registry,
        )
        # "mostrecent": a scrape reports the value the latest writing worker saw.
        self.generation = Gauge(
            "searchsvc_index_generation",
            "Generation of the on-disk index the service reads (numeric part).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.documents = Gauge(
            "searchsvc_index_documents",
            "Articles in the index.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.ready = Gauge(
            "searchsvc_ready",
            "1 when the index is open and searches are served.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # ``labels()`` takes a lock and builds its key on every call: keep the children instead
        # (routes are templates, so there are few of them; per request, this is the hot path).
        method = method_label(method)
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route, method))
            if len(self._children) < 10_000:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def auth_failure(self, reason: str) -> None:
        if reason not in AUTH_FAILURE_REASONS:
            raise ValueError(f"unknown authentication failure reason {reason!r}")
        self.auth_failures.labels(reason).inc()

    def shed(self, reason: str) -> None:
        if reason not in SHED_REASONS:
            raise ValueError(f"unknown shedding reason {reason!r}")
        self.admission_shed.labels(reason).inc()

    def set_index(self, generation: str | None, documents: int | None) -> None:
        if generation is None:
            self.ready.set(0)
            return
        self.ready.set(1)
        self.generation.set(generation_number(generation))
        if documents is not None:
            self.documents.set(documents)

    def render(self) -> bytes:
        if self._registry is not None:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def generation_number(generation: str | int) -> float:
    """The generation as a number for the gauge: its last run of digits, or 0."""
    if isinstance(generation, int):
        return float(generation)
    digits = ""
    for ch in reversed(str(generation)):
        if ch.isdigit():
            digits = ch + digits
        elif digits:
            break
    return float(digits) if digits else 0.0
