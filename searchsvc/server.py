"""``searchsvc serve``: run the app under uvicorn, with one or several worker processes.

The app is given to uvicorn as the import string "searchsvc.app:create_app" (factory) so that
``--workers N`` can start N fresh processes; each worker rebuilds the configuration from the
``SEARCHSVC_*`` environment that ``serve`` writes here before starting uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing import reduction
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from index.memory import limit_arenas

from .config import Config
from .http.caching import SHARED_CACHE_ENV
from .supervisor import ApplierSupervisor

logger = logging.getLogger("searchsvc")

APP_FACTORY = "searchsvc.app:create_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set for the workers of ``searchsvc serve``: a process of their own, whose warmed-up heap the app
# may freeze (``searchsvc.app.settle_heap``); an app embedded in another process never does.
SERVE_WORKER_ENV = "SEARCHSVC_SERVE_WORKER"
MALLOC_ARENA_ENV = "MALLOC_ARENA_MAX"  # glibc's: heaps a process may use (Config.malloc_arenas)

# Slow and idle clients (docs/reliability.md). uvicorn has no deadline for a request head: a client
# that connects and sends nothing, or one header byte a second ("slow loris"), held its connection
# and file descriptor forever. REQUEST_HEAD_TIMEOUT bounds that; heads over MAX_REQUEST_HEAD_BYTES
# still incomplete are refused (400: by h11 itself, by our count for httptools); idle keep-alive
# connections close after KEEP_ALIVE_TIMEOUT (uvicorn's timer, in both protocols).
# No limit_concurrency: slow clients would count against it and turn good requests into 503s.
REQUEST_HEAD_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
MAX_REQUEST_HEAD_BYTES = 16 * 1024
# uvicorn's own answer to a request it cannot parse (both protocols): a plain-text 400, then close.
INVALID_REQUEST = "Invalid HTTP request received."


class HeadDeadline(asyncio.Protocol):
    """The request-head deadline, for either of uvicorn's HTTP/1.1 protocols (mixed in first).

    A connection on which the client has not delivered a complete request head REQUEST_HEAD_TIMEOUT
    seconds after connecting (or after the previous response) is closed, unless a response is being
    produced (the handler's time is not the client's). One timer per connection, armed at connect and
    at the end of each response, never reset by received bytes (a byte a second must not extend it);
    when it fires, the protocol's current request cycle says whether a response is in progress (with
    pipelined requests that is the last one parsed, which is answered after the ones before it).
    """

    if TYPE_CHECKING:  # set by the uvicorn protocol this is mixed into
        loop: asyncio.AbstractEventLoop
        transport: asyncio.Transport
        cycle: Any  # that protocol's RequestResponseCycle; only ``response_complete`` is read

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn annotates it loosely
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        """(Re)start the deadline; called at connect and by ``on_response_complete``."""
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(REQUEST_HEAD_TIMEOUT, self._head_timed_out)

    def _drop_request_in_progress(self) -> None:
        """Before the parser's 400 for a request whose head was fine but whose body was not (a bad
        chunk): the app already answering it is treated as talking to a client that left, as it
        would be once the connection is gone, instead of writing its own answer after the 400. With
        h11 that write raised ``LocalProtocolError`` in the app ("unhandled error", a traceback and
        a 500 in the access log, for a request the client had been told was bad)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()  # an app waiting for the body sees http.disconnect

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # the uvicorn protocol's
        self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        self._drop_request_in_progress()
        super().send_400_response(msg)  # type: ignore[misc]  # the uvicorn protocol's

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; on_response_complete re-arms the timer
        self.transport.close()


class HeadTimeoutH11Protocol(HeadDeadline, H11Protocol):
    """uvicorn's h11 protocol plus the head deadline. The head size limit is h11's own
    (``h11_max_incomplete_event_size``, set by ``run_uvicorn``)."""


# Bodies up to this size are copied after their response's head and written with it; larger ones
# are written with it by one writev (``writelines``), which costs more than a small copy.
COALESCE_COPY_BYTES = 64 * 1024


class HeadWithBody:
    """A request cycle's view of its connection that sends a response's head with the first piece
    of its body, in one write.

    Why: uvicorn's httptools protocol writes the status line and headers as soon as the app sends
    ``http.response.start``, then the body on ``http.response.body``: two ``send(2)`` calls and two
    TCP segments for nearly every answer, and the client reads twice. A cached page or a 304
    costs little else, and a profile of a worker answering them put a third to a half of its busy
    time in those writes (docs/benchmarks.md). Holding the head until the body's first write (or
    the end of a response without one, ``flush``) halves the calls; the bytes on the wire are the
    same, in the same order.

    Only the first write after the response has started is held (the head; a ``100 Continue``
    written before it is not), and anything else the cycle does with the connection (close it,
    ask whether it is closing) sends the held head first.
    """

    __slots__ = ("_transport", "_cycle", "_head", "_done")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._done = False  # the head went out (or was never held)

    @classmethod
    def install(cls, cycle: Any, transport: asyncio.Transport) -> None:
        """Put one between ``cycle`` (uvicorn's ``RequestResponseCycle``, before its task runs)
        and ``transport``; a response that ends without a body write (``HEAD``) sends its head
        when the cycle reports it complete."""
        view = cls(transport, cycle)
        on_response = cycle.on_response

        def completed() -> None:
            view.flush()
            on_response()

        cycle.transport = view
        cycle.on_response = completed

    def write(self, data: bytes) -> None:
        if not self._done:
            if self._head is None and self._cycle.response_started:
                self._head = bytes(data)
                return
            if self._head is not None:
                head, self._head = self._head, None
                self._done = True
                if len(data) > COALESCE_COPY_BYTES:  # one writev, without copying a large body
                    self._transport.writelines((head, data))
                    return
                data = head + data
        self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (the response ended without a body write)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._done = True
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)


class HeadTimeoutHttpToolsProtocol(HeadDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol plus the head deadline and a head size limit.

    httptools (llhttp) has no limit of its own on a request head: an endless header line or an
    endless run of headers was parsed on, callback by callback, into memory. This counts the bytes
    of every read made while a head is awaited or incomplete; once a read leaves the head still
    incomplete past MAX_REQUEST_HEAD_BYTES, the client gets uvicorn's own answer to an unparsable
    request (plain ``400 Invalid HTTP request received.``, connection closed), as h11's
    incomplete-event limit gives. Like h11's, the limit is on a head *still incomplete after a
    read*: a complete head that arrives in one read (uvloop reads up to 250 KB) is parsed whatever
    its size. The count starts with the first read after a request's end, so the bytes of a
    pipelined head that share a read with the previous request's end are not counted: the limit can
    be passed by one read at most, and a head under it is never refused.
    """

    _head_pending = True  # a request head is awaited or being received on this connection
    _head_bytes = 0  # bytes read while it was

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as above
        super().connection_made(transport)
        if not self.tasks:  # an idle worker: give a burst of new connections a chance to spread
            SharedListenSocket.pass_turn()

    def data_received(self, data: bytes) -> None:
        if self._head_pending:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_pending and self._head_bytes > MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
            self.logger.warning(INVALID_REQUEST)
            self.send_400_response(INVALID_REQUEST)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._head_bytes = 0
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before and self.cycle is not None:
            HeadWithBody.install(self.cycle, self.transport)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_pending = True


# SEARCHSVC_HTTP -> the protocol class and uvicorn's event loop for it. httptools runs on uvloop,
# the fastest pair uvicorn offers (docs/service.md, "The HTTP stack", has the figures); h11 keeps
# the standard asyncio loop it was measured and tested on, so that choosing it is a step back to
# exactly the former stack, not a third combination.
PROTOCOLS: dict[str, tuple[type[asyncio.Protocol], str]] = {
    "httptools": (HeadTimeoutHttpToolsProtocol, "uvloop"),
    "h11": (HeadTimeoutH11Protocol, "asyncio"),
}


# Connections a worker takes from the shared listening socket each time it wakes up (see
# SharedListenSocket). asyncio's default is the listen backlog (uvicorn: 2048).
ACCEPTS_PER_WAKEUP = 1
# Seconds a uvloop worker pauses after taking a connection from the shared socket while another
# one waits there (SharedListenSocket.pass_turn).
ACCEPT_PAUSE = 50e-6


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

    That is the asyncio loop (``SEARCHSVC_HTTP=h11``). uvloop needs neither half: libuv (1.45 and
    later) accepts a single connection each time the socket is readable, whatever the backlog,
    and its ``uv_listen`` calls ``listen(2)`` on the descriptor directly, past this class; so with
    uvloop the workers are given the queue's own size (``run_uvicorn``), and this class only
    carries the socket to them.
    """

    # The worker's own copy of the shared socket, watched by ``pass_turn``; none in a process that
    # serves alone (one worker, or a test).
    _poller: select.poll | None = None

    def listen(self, backlog: int = 0) -> None:
        return None

    @classmethod
    def pass_turn(cls) -> None:
        """In a worker that has just taken a connection: if another is already waiting on the shared
        socket, pause ACCEPT_PAUSE seconds so that another worker takes it.

        For uvloop, which has no accept batch to shrink: libuv takes one connection per wake-up, but
        returns to ``epoll_wait`` so fast that the worker which won one wake-up often won the next
        as well: 16 connections opened together on two idle workers went 16/0, 15/1 or 14/2 in
        about one round in four (20 of 70), enough to fail tests/test_worker_balance.py. libuv
        did the same thing, a nanosleep after each accept under ``UV_TCP_SINGLE_ACCEPT=1``, until
        1.45 removed it along with its accept loop. The httptools protocol calls this only while its
        worker has no request in progress, so a lone arrival (nothing waiting) and a busy worker
        (which is slow to come back to ``epoll_wait`` anyway) never pause; the asyncio loop (h11)
        never calls it, its one-connection batch being slow enough. Measured: 8/8 or 9/7, now and
        then 10/6, as asyncio's.
        """
        poller = cls._poller
        if poller is not None and any(events & select.POLLIN for _, events in poller.poll(0)):
            time.sleep(ACCEPT_PAUSE)

    def _watch(self) -> SharedListenSocket:
        """Make this (the worker's copy) the socket ``pass_turn`` looks at."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        type(self)._poller = poller
        return self

    @classmethod
    def adopt(cls, sock: socket.socket) -> SharedListenSocket:
        """``sock`` itself (same file descriptor, already listening), as this class."""
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())

    def __reduce__(self) -> tuple[Any, ...]:  # multiprocessing's pickler would rebuild a plain socket
        return (_rebuild_shared_socket, (reduction.DupFd(self.fileno()), self.family, self.type, self.proto))


def _rebuild_shared_socket(dup: object, family: int, kind: int, proto: int) -> SharedListenSocket:
    """The shared socket as a worker process receives it (multiprocessing unpickles it there)."""
    return SharedListenSocket(family, kind, proto, fileno=dup.detach())._watch()  # type: ignore[attr-defined]


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
    arenas_set = bool(config.malloc_arenas) and MALLOC_ARENA_ENV not in os.environ
    if arenas_set:
        # The workers and the applier read it when they start; this process (the only worker when
        # there is one) is told directly. An operator's own MALLOC_ARENA_MAX is left alone.
        os.environ[MALLOC_ARENA_ENV] = str(config.malloc_arenas)
        limit_arenas(config.malloc_arenas)
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
        if arenas_set:
            os.environ.pop(MALLOC_ARENA_ENV, None)
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
    protocol, loop = PROTOCOLS[config.http]
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
        http=protocol,
        loop=loop,
        # No WebSocket route exists: an Upgrade request is answered as plain HTTP, as before
        # uvicorn[standard] brought the websockets package (which "auto" would switch to).
        ws="none",
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,  # h11 only; httptools: our own count
    )
    if config.workers > 1:
        sock = uvicorn_config.bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.listen(uvicorn_config.backlog)  # the kernel's accept queue (uvicorn leaves it to workers)
        if loop == "asyncio":
            uvicorn_config.backlog = ACCEPTS_PER_WAKEUP  # the workers' accept batch, not the queue
        # uvloop: libuv accepts one connection per wake-up already, and calls listen() on the
        # descriptor itself (SharedListenSocket.listen is never reached), so the number it is given
        # must stay the queue's size (SharedListenSocket says why).
        Multiprocess(uvicorn_config, sockets=[SharedListenSocket.adopt(sock)]).run()
        return
    server = uvicorn.Server(uvicorn_config)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app or the socket could not start
