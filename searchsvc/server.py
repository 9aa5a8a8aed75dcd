"""``searchsvc serve``: run the app under uvicorn, with one or several worker processes.

The app is given to uvicorn as the import string "searchsvc.app:create_app" (factory) so that
``--workers N`` can start N fresh processes; each worker rebuilds the configuration from the
``SEARCHSVC_*`` environment that ``serve`` writes here before starting uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from multiprocessing import reduction
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from .config import Config
from .http.caching import SHARED_CACHE_ENV
from .supervisor import ApplierSupervisor

logger = logging.getLogger("searchsvc")

APP_FACTORY = "searchsvc.app:create_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set for the workers of ``searchsvc serve``: a process of their own, whose warmed-up heap the app
# may freeze (``searchsvc.app.settle_heap``); an app embedded in another process never does.
SERVE_WORKER_ENV = "SEARCHSVC_SERVE_WORKER"

# Slow and idle clients (docs/reliability.md). uvicorn has no deadline for a request head: a client
# that connects and sends nothing, or one header byte a second ("slow loris"), held its connection
# and file descriptor forever. REQUEST_HEAD_TIMEOUT bounds that; heads over MAX_REQUEST_HEAD_BYTES
# still incomplete are refused (400) by h11; idle keep-alive connections close after KEEP_ALIVE_TIMEOUT.
# No limit_concurrency: slow clients would count against it and turn good requests into 503s.
REQUEST_HEAD_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
MAX_REQUEST_HEAD_BYTES = 16 * 1024


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: a connection on which the client has not delivered a complete
    request head REQUEST_HEAD_TIMEOUT seconds after connecting (or after the previous response) is
    closed, unless a response is being produced (the handler's time is not the client's)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn annotates it loosely
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(REQUEST_HEAD_TIMEOUT, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; on_response_complete re-arms the timer
        self.transport.close()


# Connections a worker takes from the shared listening socket each time it wakes up (see
# SharedListenSocket). asyncio's default is the listen backlog (uvicorn: 2048).
ACCEPTS_PER_WAKEUP = 1


class SharedListenSocket(socket.socket):
    """The supervisor's listening socket as workers see it: ``listen()`` is a no-op.

    Why: asyncio accepts up to ``backlog`` queued connections each time the socket is readable
    (``create_server(backlog=...)``), and the same number is passed to ``listen()``. Every worker
    is woken by a new connection, and the first to run took the whole burst of keep-alive
    connections opened together (docs/service.md, "Workers"), so one core queued most requests
    while the other idled. Workers are therefore started with
    ``backlog=ACCEPTS_PER_WAKEUP`` so each takes one connection per wake-up and the workers share
    a burst; this class keeps that small number from also shrinking the kernel's accept queue,
    which the supervisor sets once (uvicorn's 2048) before starting them.
    """

    def listen(self, backlog: int = 0) -> None:
        return None

    @classmethod
    def adopt(cls, sock: socket.socket) -> SharedListenSocket:
        """``sock`` itself (same file descriptor, already listening), as this class."""
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def __reduce__(self) -> tuple[Any, ...]:  # multiprocessing's pickler would rebuild a plain socket
        return (_rebuild_shared_socket, (reduction.DupFd(self.fileno()), self.family, self.type, self.proto))


def _rebuild_shared_socket(dup: object, family: int, kind: int, proto: int) -> SharedListenSocket:
    return SharedListenSocket(family, kind, proto, fileno=dup.detach())  # type: ignore[attr-defined]


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    """Swallow the stop signal uvicorn re-raises after its graceful shutdown.

    uvicorn restores the previous handlers when it has finished and then raises the signal it
    caught again, so that a default handler would kill the process: a SIGTERM'd service would
    exit with -15 instead of 0 although it shut down cleanly. With this handler installed as the
    "previous" one, the re-raised signal is a no-op and ``serve`` returns normally.
    """
    logger.debug("stop signal %s handled", signum)


def serve(config: Config) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests get ``timeout_graceful_shutdown`` seconds.

    A requested stop is a normal return (exit status 0), whether one or several workers ran.
    """
    os.environ.update(config.to_env())
    os.environ[SERVE_WORKER_ENV] = "1"
    metrics_dir: str | None = None
    shared_dir: str | None = None
    if config.workers > 1:
        # A fresh directory per run: files left by an earlier run would be summed into this one.
        metrics_dir = tempfile.mkdtemp(prefix="searchsvc-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
        # Responses one worker computed, replayed by the others (searchsvc.http.caching.SharedResponseStore).
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        shared_dir = tempfile.mkdtemp(prefix="searchsvc-responses-", dir=shm)
        os.environ[SHARED_CACHE_ENV] = shared_dir
    else:
        # One process keeps its metrics in memory; an inherited directory would only mislead it.
        os.environ.pop(MULTIPROC_ENV, None)
        os.environ.pop(SHARED_CACHE_ENV, None)
    previous = {sig: signal.signal(sig, _stop_requested) for sig in (signal.SIGINT, signal.SIGTERM)}
    # The publishing applier beside the workers, one per index (searchsvc.supervisor says why a
    # process); stopped after uvicorn, so a commit in progress finishes while requests drain.
    applier = ApplierSupervisor(config.index_dir) if config.applier else None
    if applier is not None:
        applier.start()
    try:
        run_uvicorn(config)
    finally:
        if applier is not None:
            applier.stop()
        os.environ.pop(SERVE_WORKER_ENV, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for directory in (metrics_dir, shared_dir):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)


def run_uvicorn(config: Config, app: str = APP_FACTORY) -> None:
    """What ``uvicorn.run`` does, except that the shared listening socket gets TCP_NODELAY.

    ``app`` is a factory import string; the benchmark runs its "hello" ceiling through here too,
    so that both are measured under exactly the same server settings.

    With several workers uvicorn binds one socket in the supervisor as ``socket.socket(AF_INET)``,
    whose ``proto`` is 0; asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    IPPROTO_TCP, so every worker connection kept Nagle's algorithm, and a response written as
    headers + body waited for the client's delayed ACK on every request (docs/service.md,
    "Workers", has the cost). Linux copies TCP_NODELAY from the listening socket to the sockets
    it accepts, so setting it once here fixes every worker.
    """
    uvicorn_config = uvicorn.Config(
        app,
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        access_log=False,  # ours is the JSON access log in searchsvc.http.middleware
        log_level=config.log_level,
        timeout_graceful_shutdown=config.timeout_graceful_shutdown,
        server_header=False,
        proxy_headers=True,
        http=HeadTimeoutH11Protocol,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
    )
    if config.workers > 1:
        sock = uvicorn_config.bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.listen(uvicorn_config.backlog)  # the kernel's accept queue (uvicorn leaves it to workers)
        uvicorn_config.backlog = ACCEPTS_PER_WAKEUP  # the workers' accept batch, not the queue
        Multiprocess(uvicorn_config, sockets=[SharedListenSocket.adopt(sock)]).run()
        return
    server = uvicorn.Server(uvicorn_config)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app or the socket could not start
