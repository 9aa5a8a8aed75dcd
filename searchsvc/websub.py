"""WebSub publishing: after a commit that changed feeds, tell the hub which ones.

When ``SEARCHSVC_WEBSUB_HUB`` is set, every RSS and Atom feed names the hub (``<link rel="hub">``)
and itself (``rel="self"``), JSON Feed lists it in ``hubs``, and the feed responses carry the same
two ``Link`` headers (``searchsvc.routes.feeds``). A subscriber subscribes at the hub to a feed's
self URL (its *topic*); this module is the publisher's other half. After each applier commit,
``HubNotifier`` (the applier's ``on_commit`` hook, run in the ``searchsvc apply`` process) sends the
hub one publish ping: a form-encoded ``POST`` of ``hub.mode=publish`` and one ``hub.url`` per
changed topic — the RSS, Atom and JSON feeds of every category whose list changed and of
``/feeds/all``, as absolute URLs on the configured base URL, exactly as the documents name
themselves. The hub then fetches them and delivers the news to its subscribers. Any 2xx is success.

Only the default-size feeds are topics that get pings (``?limit=`` variants and saved searches
cannot be enumerated; their subscribers fall back to polling, which ETags keep cheap).

Never blocking the applier: the hook only queues the URLs; one daemon thread sends. A failed ping
(no connection, a timeout, a 5xx, 408 or 429) is retried with exponential backoff (a ``Retry-After``
is honoured up to the cap) for ``MAX_ATTEMPTS`` attempts; any other answer (a 4xx, a redirect) is
a configuration problem that retrying would not fix and is given up at once. Pings waiting while
one is retried are merged (a ping means "fetch these topics now", and the hub fetches the current
document, so two pending pings for one topic are one), and the queue is bounded: past
``MAX_QUEUE`` waiting pings the oldest are dropped and counted. On stop, what is waiting gets one
attempt each within ``FLUSH_TIMEOUT``; the rest is abandoned and counted. The counts go to the log
and, through ``stats()``, into the applier's status file (``websub``), which
``GET /api/admin/status`` shows.

``searchsvc index`` and ``searchsvc delete`` change feeds too, without the applier: with the hub
set, they ping it for what their commit changed (``ping_after_write``) before they exit.

The HTTP client is the standard library's (a ping a second at most needs no connection pool).
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlencode

from index.api import EVERYTHING, SearchEngine
from index.publishing import AppliedBatch

from .config import ENV_NAMES, Config
from .selection import ALL, FORMATS, SEARCH, Selection, feed_url

logger = logging.getLogger("searchsvc.websub")
T = TypeVar("T")

MAX_ATTEMPTS = 8  # sends of one ping before it is given up (about four minutes of backoff)
BACKOFF_MIN = 1.0  # seconds before the first retry; doubled after every failure
BACKOFF_MAX = 120.0
REQUEST_TIMEOUT = 10.0  # seconds for one POST to the hub
MAX_QUEUE = 100  # pings waiting; the oldest are dropped past this
MAX_URLS_PER_PING = 200  # topics in one POST (a merged ping grows up to this, then a new one starts)
FLUSH_TIMEOUT = 3.0  # seconds a stopping notifier spends on what is still waiting
MAX_ANSWER = 64 << 10  # bytes of a hub's answer read (and thrown away) so the connection closes cleanly
USER_AGENT = "searchsvc-websub/1"
FORM_TYPE = "application/x-www-form-urlencoded"


def changed_feed_urls(config: Config, batch: AppliedBatch) -> list[str]:
    """The topics a commit changed: every format of ``/feeds/all`` and of each category whose list
    moved (``batch.categories``), absolute, as the feeds name themselves (``feed_url``); [] when
    the commit changed no article."""
    if not batch.categories and not (batch.upserted or batch.deleted):
        return []
    return feed_urls_of(config, batch.categories)


def feed_urls_of(config: Config, categories: Iterable[str]) -> list[str]:
    """Every format of ``/feeds/all`` and of each category in ``categories`` (slugs), absolute."""
    # "all" and "search" are reserved feed names: a category with either slug has no feed of its own.
    slugs = sorted({s for s in categories if s and s not in (ALL, SEARCH)})
    selections = [Selection(ALL), *(Selection("category", slug=s) for s in slugs)]
    return [feed_url(config, selection, fmt) for selection in selections for fmt in FORMATS]


class HubError(Exception):
    """A ping the hub did not acknowledge; ``retryable`` when trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A hub that redirects is misconfigured (urllib would turn the POST into a GET): report it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _retry_after(value: str | None) -> float | None:
    value = (value or "").strip()
    return float(value) if value.isdigit() else None  # the HTTP-date form is rare from a hub: backoff instead


def publish(hub: str, urls: Iterable[str], timeout: float = REQUEST_TIMEOUT) -> int:
    """One publish ping (``hub.mode=publish``, a ``hub.url`` per topic); the 2xx status, or
    ``HubError``."""
    body = urlencode([("hub.mode", "publish"), *(("hub.url", url) for url in urls)]).encode("ascii")
    request = urllib.request.Request(hub, data=body, method="POST",
                                     headers={"Content-Type": FORM_TYPE, "User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(MAX_ANSWER)
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:  # an answer, but not a 2xx (redirects land here too)
        exc.close()
        status = exc.code
        retryable = status >= 500 or status in (408, 429)
        raise HubError(f"the hub answered {status} {exc.reason}", retryable=retryable,
                       retry_after=_retry_after(exc.headers.get("Retry-After"))) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HubError(f"cannot reach the hub: {reason}", retryable=True) from None


@dataclass
class _Ping:
    urls: dict[str, None] = field(default_factory=dict)  # an ordered set
    attempts: int = 0


class HubNotifier:
    """The ``on_commit`` hook that pings a WebSub hub from a background thread (module docstring)."""

    def __init__(
        self,
        hub: str,
        config: Config,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_min: float = BACKOFF_MIN,
        backoff_max: float = BACKOFF_MAX,
        max_queue: int = MAX_QUEUE,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        if max_attempts < 1 or max_queue < 1:
            raise ValueError("max_attempts and max_queue must be at least 1")
        self.hub = hub
        self.config = config
        self.max_attempts = max_attempts
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.max_queue = max_queue
        self.timeout = timeout
        self._queue: deque[_Ping] = deque()
        self._current: _Ping | None = None  # the ping being sent (or waiting to be sent again)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._deadline = 0.0  # monotonic time by which a stopping notifier gives up (set by close)
        self._closed = False  # close() has counted what was left: a late outcome changes nothing
        self._thread: threading.Thread | None = None
        self._counts = {"sent": 0, "retried": 0, "failed": 0, "dropped": 0, "abandoned": 0}

    # -- the hook (the applier's thread) -------------------------------------------------------------

    def __call__(self, batch: AppliedBatch) -> None:
        self.notify(changed_feed_urls(self.config, batch))

    def notify(self, urls: Iterable[str]) -> None:
        """Queue a ping for ``urls``; returns at once."""
        new = dict.fromkeys(urls)
        if not new:
            return
        dropped = 0
        with self._cond:
            if self._stopping.is_set():
                return
            tail = self._queue[-1] if self._queue else None
            if tail is not None and tail.attempts == 0 and len(tail.urls.keys() | new.keys()) <= MAX_URLS_PER_PING:
                tail.urls.update(new)  # not sent yet: one ping for both commits
            else:
                keys = list(new)
                for start in range(0, len(keys), MAX_URLS_PER_PING):
                    self._queue.append(_Ping(dict.fromkeys(keys[start:start + MAX_URLS_PER_PING])))
            while len(self._queue) > self.max_queue:
                self._queue.popleft()
                dropped += 1
            self._counts["dropped"] += dropped
            total = self._counts["dropped"]
            self._cond.notify()
        if dropped:
            logger.warning("WebSub: more than %d pings waiting for %s; dropped the oldest %d (%d dropped in all)",
                           self.max_queue, self.hub, dropped, total)

    def stats(self) -> dict[str, int]:
        """Pings waiting, and the counts since start: sent (acknowledged with a 2xx), retried (failed
        sends tried again), failed (given up), dropped (queue full), abandoned (left at stop)."""
        with self._cond:
            waiting = 0 if self._closed else len(self._queue) + (self._current is not None)
            return {"waiting": waiting, **self._counts}

    # -- the sender thread ----------------------------------------------------------------------------

    def start(self) -> HubNotifier:
        self._thread = threading.Thread(target=self._run, name="websub-notifier", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Stop: what is waiting gets one attempt each within ``timeout`` seconds; whatever is
        left is abandoned (counted and logged). Never waits much longer than ``timeout`` for a hub
        that does not answer (the thread is a daemon: it dies with the process)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._deadline = deadline
            self._stopping.set()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        with self._cond:
            left = len(self._queue) + (self._current is not None)
            self._queue.clear()
            self._counts["abandoned"] += left
            self._closed = True
            counts = dict(self._counts)
        if left:
            logger.warning("WebSub: stopping with %d ping(s) for %s not delivered; abandoned", left, self.hub)
        logger.info("WebSub notifier stopped: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    break
                ping = self._current = self._queue.popleft()
            self._deliver(ping)
            with self._cond:
                self._current = None
        self._flush()

    def _deliver(self, ping: _Ping) -> None:
        """Send ``ping`` until the hub acknowledges it, it is given up, or the notifier stops (then
        it goes back to the head of the queue for the flush)."""
        while True:
            try:
                publish(self.hub, ping.urls, self.timeout)
            except HubError as exc:
                ping.attempts += 1
                if self._stopping.is_set():  # the stop's flush (or close) decides what becomes of it
                    self._requeue(ping)
                    return
                if not exc.retryable or ping.attempts >= self.max_attempts:
                    self._count("failed")
                    why = "giving up" if exc.retryable else "not retried (fix SEARCHSVC_WEBSUB_HUB?)"
                    logger.error("WebSub: ping of %d feed(s) to %s failed after %d attempt(s), %s: %s",
                                 len(ping.urls), self.hub, ping.attempts, why, exc)
                    return
                delay = min(self.backoff_max, max(self.backoff_min * 2 ** (ping.attempts - 1), exc.retry_after or 0))
                self._count("retried")
                logger.warning("WebSub: ping to %s failed (attempt %d of %d; retrying in %.1f s): %s",
                               self.hub, ping.attempts, self.max_attempts, delay, exc)
                if self._stopping.wait(delay):
                    self._requeue(ping)
                    return
                continue
            self._count("sent")
            logger.info("WebSub: notified %s of %d changed feed(s)", self.hub, len(ping.urls))
            return

    def _flush(self) -> None:
        """One attempt per waiting ping while the stop deadline allows."""
        while True:
            remaining = self._deadline - time.monotonic()
            with self._cond:
                if not self._queue or remaining <= 0:
                    return
                ping = self._current = self._queue.popleft()
            try:
                publish(self.hub, ping.urls, min(self.timeout, remaining))
                self._count("sent")
            except HubError as exc:
                self._count("failed")
                logger.warning("WebSub: final ping to %s failed: %s", self.hub, exc)
            with self._cond:
                self._current = None

    def _requeue(self, ping: _Ping) -> None:
        with self._cond:
            if not self._closed:
                self._queue.appendleft(ping)

    def _count(self, name: str) -> None:
        with self._cond:
            if not self._closed:
                self._counts[name] += 1


def notifier_from_env(environ: Mapping[str, str] | None = None) -> HubNotifier | None:
    """A started notifier when ``SEARCHSVC_WEBSUB_HUB`` is set (feed URLs on the configured base
    URL, as ``searchsvc serve`` passes it to its applier), else None."""
    env = os.environ if environ is None else environ
    if not env.get(ENV_NAMES["websub_hub"], "").strip():
        return None
    config = Config.from_env(environ=env)
    if config.websub_hub is None:
        return None
    if not env.get(ENV_NAMES["base_url"], "").strip():
        logger.warning("WebSub: %s is not set; the hub is told of feeds under %s", ENV_NAMES["base_url"],
                       config.base_url)
    logger.info("WebSub: notifying %s of changed feeds under %s", config.websub_hub, config.base_url)
    return HubNotifier(config.websub_hub, config).start()


# How long ``ping_after_write`` waits for the hub to acknowledge (retries included) before it gives
# each waiting ping one last attempt and exits: a command-line write is done by then, and a hub that
# is down must not keep an indexing script waiting for the four minutes of the applier's backoff.
CLI_WAIT = 15.0


def ping_after_write(
    open_engine: Callable[[], SearchEngine], write: Callable[[], T], *, environ: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda message: None, wait: float = CLI_WAIT,
) -> T:
    """Run ``write`` (an index or delete run), then, when ``SEARCHSVC_WEBSUB_HUB`` is set, ping the
    hub for the feeds it changed, as the applier does after its commits.

    What changed comes from the engine, through ``index.api`` (so either engine): its generation
    before the write and ``changes_between`` that and the one after, which the engine knows
    precisely for commits it saw (the categories whose lists moved); a new generation (a
    ``--rebuild``, a first index) is ``EVERYTHING``, and then the feeds of every category before
    and after the write are topics.
    Without the hub setting nothing is opened and ``write`` runs alone."""
    notifier = notifier_from_env(environ)
    if notifier is None:
        return write()
    try:
        engine: SearchEngine | None = open_engine()
    except Exception:  # no index yet: whatever the write creates is new
        engine = None
    try:
        before = engine.generation if engine is not None else None
        # A rebuild replaces everything: the categories it empties have changed feeds too.
        known = {c.slug for c in engine.categories()} if engine is not None else set()
        result = write()
        if engine is None:
            engine = open_engine()
        after = _next_generation(engine, before)
        if after == before:
            say("WebSub: no feed changed; the hub is not told")
            return result
        changes = engine.changes_between(before, after) if before is not None else EVERYTHING
        categories = known | {c.slug for c in engine.categories()} if changes.everything else changes.categories
        urls = feed_urls_of(notifier.config, categories)
        notifier.notify(urls)
        deadline = time.monotonic() + wait
        while notifier.stats()["waiting"] and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = notifier.stats()
        say(f"WebSub: told {notifier.hub} of {len(urls)} changed feed URLs"
            if counts["sent"] else f"WebSub: {notifier.hub} did not acknowledge the ping ({counts})")
        return result
    finally:
        notifier.close()
        if engine is not None:
            engine.close()


def _next_generation(engine: SearchEngine, before: str | None, patience: float = 2.0) -> str:
    """The engine's generation once it has seen the write: engines re-read theirs on an interval
    (``index.engine.CHECK_INTERVAL``), so a new one shows within moments; ``patience`` bounds the
    wait when the write changed nothing."""
    deadline = time.monotonic() + patience
    while True:
        current = engine.generation
        if current != before or time.monotonic() >= deadline:
            return current
        time.sleep(0.05)
