"""Connections are shared out between worker processes (``searchsvc.server.SharedListenSocket``).

asyncio accepts every queued connection each time the listening socket wakes a worker, so with
uvicorn's default the first worker to wake took a whole burst: 16 keep-alive connections opened
together went 16/0, 15/1 or 14/2 (measured before the change), and one core then queued most of
the requests. Workers now accept one connection per wake-up, from a queue the supervisor sized.
uvloop (``SEARCHSVC_HTTP=httptools``) accepts one per wake-up by itself but is back for the next
one so fast that bursts went one way again; an idle worker there lets a waiting connection go
(``SharedListenSocket.pass_turn``). Both HTTP protocols, each on its own loop, are tested alike.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from service_helpers import running_service
from test_worker_crash import wait_for, worker_pids

from searchsvc.config import HTTP_PROTOCOLS
from searchsvc.server import SharedListenSocket

CONNECTIONS = 16


def test_adopted_socket_keeps_the_supervisors_accept_queue() -> None:
    """``listen()`` from a worker (asyncio calls it with the tiny accept batch) leaves the queue
    the supervisor set: ten clients still complete their handshake before anyone accepts."""
    plain = socket.create_server(("127.0.0.1", 0), backlog=64)
    shared = SharedListenSocket.adopt(plain)
    assert plain.fileno() == -1  # the same descriptor, now owned by ``shared``
    shared.listen(0)  # what asyncio would do with backlog=1; a real listen(0) drops later SYNs
    port = shared.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=0.5) for _ in range(10)]
    try:
        shared.settimeout(1)
        accepted = [shared.accept()[0] for _ in clients]
        assert len(accepted) == 10
        for conn in accepted:
            conn.close()
    finally:
        for client in clients:
            client.close()
        shared.close()


def test_adopted_socket_reaches_workers_as_itself() -> None:
    """Workers are spawned processes: the socket is pickled, and must arrive with its own listen()."""
    shared = SharedListenSocket.adopt(socket.create_server(("127.0.0.1", 0)))
    try:
        copy = ForkingPickler.loads(ForkingPickler.dumps(shared))
        try:
            assert type(copy) is SharedListenSocket
            assert copy.getsockname() == shared.getsockname()
            assert copy.fileno() != shared.fileno()
        finally:
            copy.close()
    finally:
        shared.close()


def _owners(port: int) -> collections.Counter[bytes]:
    """Which worker (request-id prefix, drawn per process) answers each of CONNECTIONS connections
    opened back to back and kept open until all have answered."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(CONNECTIONS)]
    owners: collections.Counter[bytes] = collections.Counter()
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for sock in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            ids = [line.split(b":", 1)[1].strip() for line in data.split(b"\r\n")
                   if line.lower().startswith(b"x-request-id:")]
            assert ids, data
            owners[ids[0][:20]] += 1
    finally:
        for sock in socks:
            sock.close()
    return owners


@pytest.mark.parametrize("http", HTTP_PROTOCOLS)
def test_a_burst_of_connections_is_shared_between_workers(built_index: Path, tmp_path: Path, http: str) -> None:
    with running_service(built_index, tmp_path / "logs", workers=2, env={"SEARCHSVC_HTTP": http}) as svc:
        port = urlsplit(svc.url).port
        assert port is not None
        deadline = time.monotonic() + 30
        while len(_owners(port)) < 2:  # both workers up and warm
            assert time.monotonic() < deadline, svc.log()[-2000:]
            time.sleep(0.5)
        # Measured on an idle machine: 8/8 or 9/7 in 30 of 30 rounds; before the change mostly 16/0,
        # 15/1 or 14/2 (the smaller share averaged 1.6 of 16). Judged over 5 rounds, twice at most:
        # a worker starved of CPU for a few ms (other jobs on the machine) lets the other take
        # several connections in a row, and with 3 CPU-bound jobs beside the test 1 of 6 series
        # looked like the old behaviour.
        attempts = []
        for _ in range(2):
            splits = []
            for _ in range(5):
                time.sleep(0.3)
                splits.append(sorted(_owners(port).values(), reverse=True))
            attempts.append(splits)
            smaller = sum(split[1] if len(split) == 2 else 0 for split in splits)
            if smaller >= 20:  # of 80: a quarter; even would be 40, the old behaviour gave ~8
                break
        else:
            raise AssertionError(f"connections not shared between the workers: {attempts}")


@pytest.mark.parametrize("http", HTTP_PROTOCOLS)
def test_the_accept_queue_stays_the_supervisors(built_index: Path, tmp_path: Path, http: str) -> None:
    """With both workers stopped (SIGSTOP: nobody accepts), 64 clients still complete their
    handshake at once, and are all answered once the workers run again: the kernel's accept queue
    is uvicorn's 2048, whatever each loop passes to ``listen()`` (asyncio: its one-connection batch,
    which SharedListenSocket ignores; uvloop calls ``listen(2)`` itself, with the number
    ``run_uvicorn`` gives it). A queue of 1 would hold two: the others' SYNs dropped, retried 1 s
    later, past the clients' timeout."""
    with running_service(built_index, tmp_path / "logs", workers=2, env={"SEARCHSVC_HTTP": http}) as svc:
        port = urlsplit(svc.url).port
        assert port is not None
        workers = wait_for(lambda: (w := worker_pids(svc.proc.pid)) and len(w) == 2 and w, 10)
        assert workers, svc.log()[-2000:]
        socks: list[socket.socket] = []
        try:
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            try:  # briefly: the supervisor replaces a worker that misses its health checks for 5 s
                for _ in range(64):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=0.8))
            finally:
                for pid in workers:
                    os.kill(pid, signal.SIGCONT)
            for sock in socks:
                sock.settimeout(10)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for sock in socks:
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in socks:
                sock.close()
