"""Admission control for expensive engine work: a bounded, deadline-aware wait for the engine threads.

Expensive work (a search no cache holds, a list of the newest articles, a feed or embed render the
feed cache lacks) runs on each worker's few engine threads (``Config.engine_threads`` says why few).
Without a bound, a burst queued behind them without limit: every request was answered, but late,
each one later than the last, with memory growing with the queue, until clients gave up on answers
the server still went on computing. ``Admission`` owns those threads instead and refuses work it
cannot finish in time, at once, with ``503 overloaded`` and ``Retry-After`` (``Overloaded``):

* **queue**: at most ``queue`` requests wait for a thread; one more is refused at once.
* **deadline** (``deadline`` seconds, 0: none): the budget of one expensive request, waiting and
  running. The time a run takes is learnt as it goes (an exponentially weighted mean of recent
  runs, ``service_time``, and the 95th percentile of the last 64, ``slow_time``), so a request
  waits at most ``deadline * (1 - MARGIN) - slow_time`` (so that a run slower than most, and the
  HTTP work around it, still end in time: with the mean alone, measured, the accepted p99 ended
  just past the deadline) and is refused
  at once when the wait predicted from its place in the queue (``predicted_wait``) already
  exceeds that: a client is never kept waiting only to be refused. Only the wait is bounded: a run
  that has started is never interrupted (a thread cannot be cancelled, and its work would be lost).

A request that finds a thread free always runs, whatever the estimate says: refusing it would help
no one. Cheap work (an article by id, categories, suggestions) never comes here and is never
refused; nor is anything answered from a cache. Each worker has its own ``Admission``; the
configured queue is the machine's, shared out by ``Config.admission_queue_per_worker``.

Everything here runs on the event loop, so the counters need no lock; the tokens are anyio's
``CapacityLimiter``, which is FIFO and hands a token back when a waiter is cancelled.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import anyio

from .errors import ApiError, ErrorCode

T = TypeVar("T")

SHED_QUEUE = "queue"  # the wait queue was full
SHED_DEADLINE = "deadline"  # the wait, predicted or real, would have left too little of the deadline
# Weight of the newest run in the service-time mean: about the last 10-20 runs count, so the
# estimate follows a change of load (a heavier query mix, the other worker busy) within a second
# at the rates the engine reaches, while one slow run moves it only a little.
EWMA_WEIGHT = 0.1
MAX_RETRY_AFTER = 30  # seconds: a refusal never sends a client away for longer
RECENT_RUNS = 64  # run times kept for ``slow_time``
MARGIN = 0.05  # of the deadline, left for what happens around a run (parsing, rendering, sending)


class Overloaded(ApiError):
    """``503 overloaded`` with ``Retry-After``: the expensive request was not admitted."""

    def __init__(self, reason: str, retry_after: int, message: str) -> None:
        super().__init__(ErrorCode.OVERLOADED, message, {"Retry-After": str(retry_after)})
        self.reason = reason
        self.retry_after = retry_after


class Admission:
    """``threads`` engine threads behind a wait queue of at most ``queue`` requests and a
    ``deadline`` (seconds; 0: none). ``run_sync(fn)`` runs ``fn`` in one of the threads or raises
    ``Overloaded``. ``on_shed(reason)`` is called for each refusal (``SHED_QUEUE``,
    ``SHED_DEADLINE``), ``on_wait(seconds)`` for each admitted request's wait (metrics).
    ``clock`` measures run times (tests pass their own); the wait itself is bounded by anyio's."""

    def __init__(self, threads: int, queue: int, deadline: float, *,
                 on_shed: Callable[[str], None] | None = None,
                 on_wait: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if threads < 1:
            raise ValueError("an Admission needs at least one thread")
        if queue < 0:
            raise ValueError("the queue bound must not be negative")
        if not (math.isfinite(deadline) and deadline >= 0):
            raise ValueError("the deadline must be a finite number of seconds, 0 for none")
        self.threads = threads
        self.queue = queue
        self.deadline = deadline
        self.on_shed = on_shed
        self.on_wait = on_wait
        self._clock = clock
        self._slots = anyio.CapacityLimiter(threads)  # who may run: taken here, with a bounded wait
        # The threads the runs use. Never waited on: a run holds a slot first, and returns its
        # thread token before its slot, so one is always free (a private limiter keeps heavy work
        # off anyio's default pool, where cheap lookups run).
        self._threads = anyio.CapacityLimiter(threads)
        self._waiting = 0
        self._service: float | None = None  # None until a run has finished: nothing to predict with
        self._recent: deque[float] = deque(maxlen=RECENT_RUNS)

    @property
    def waiting(self) -> int:
        """Requests waiting for a thread now."""
        return self._waiting

    @property
    def running(self) -> int:
        """Threads running admitted work now."""
        return self._slots.borrowed_tokens

    @property
    def service_time(self) -> float:
        """Seconds a run takes, by recent runs (0 before any)."""
        return self._service or 0.0

    @property
    def slow_time(self) -> float:
        """Seconds the slower runs take: the 95th percentile of the last ``RECENT_RUNS`` (0 before any)."""
        if not self._recent:
            return 0.0
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def learn(self, seconds: float) -> None:
        """Fold one run's time into ``service_time`` and ``slow_time`` (done for every run; public for tests)."""
        seconds = max(0.0, seconds)
        self._recent.append(seconds)
        self._service = seconds if self._service is None else self._service + EWMA_WEIGHT * (seconds - self._service)

    def predicted_wait(self, ahead: int) -> float:
        """Seconds a request with ``ahead`` requests waiting before it will wait when every thread
        is busy: its place in the line times the time a thread takes to free up."""
        return (ahead + 1) * self.service_time / self.threads

    def retry_after(self, ahead: int) -> int:
        """Whole seconds after which the line seen now has drained: at least 1, at most
        ``MAX_RETRY_AFTER``."""
        return max(1, min(MAX_RETRY_AFTER, math.ceil(self.predicted_wait(ahead))))

    async def run_sync(self, fn: Callable[[], T]) -> T:
        """``fn()`` in an engine thread once admitted; ``Overloaded`` if not. The slot is given back
        whatever happens: ``fn`` raising, or the caller cancelled while it waits or runs (a run
        that has started finishes first: anyio does not abandon the thread)."""
        borrower = object()
        await self._admit(borrower)
        try:
            started = self._clock()
            try:
                result = await anyio.to_thread.run_sync(fn, limiter=self._threads)
            except Exception:
                self.learn(self._clock() - started)  # a refusal or a failure took the thread too
                raise
            self.learn(self._clock() - started)
            return result
        finally:
            self._slots.release_on_behalf_of(borrower)

    async def _admit(self, borrower: object) -> None:
        """Take a slot for ``borrower``, waiting if allowed; raises ``Overloaded`` if not."""
        try:
            self._slots.acquire_on_behalf_of_nowait(borrower)  # FIFO: never before someone waiting
        except anyio.WouldBlock:
            pass
        else:
            self._waited(0.0)
            return
        ahead = self._waiting
        if ahead >= self.queue:
            raise self._shed(SHED_QUEUE, f"{ahead} requests are already waiting")
        budget: float | None = None
        if self.deadline > 0:
            budget = self.deadline * (1 - MARGIN) - max(self.service_time, self.slow_time)
            predicted = self.predicted_wait(ahead)
            if predicted > budget:
                raise self._shed(SHED_DEADLINE, f"the wait ({predicted:.2f} s predicted) would leave too little "
                                                f"of the {self.deadline:g} s deadline")
        self._waiting += 1
        started = anyio.current_time()
        try:
            with anyio.move_on_after(budget) as scope:
                await self._slots.acquire_on_behalf_of(borrower)
        finally:
            self._waiting -= 1
        if scope.cancelled_caught:  # the limiter holds no token for a waiter it cancelled
            raise self._shed(SHED_DEADLINE, f"no engine thread became free within {budget or 0:.2f} s")
        self._waited(anyio.current_time() - started)

    def _waited(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds)

    def _shed(self, reason: str, why: str) -> Overloaded:
        """The refusal to raise, counted; ``Retry-After`` is the time the line seen now takes to drain."""
        if self.on_shed is not None:
            self.on_shed(reason)
        retry = self.retry_after(self._waiting)
        return Overloaded(reason, retry, f"the server is overloaded: {why}; retry in {retry} s")
