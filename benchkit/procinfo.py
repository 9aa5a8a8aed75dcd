"""Small process helpers shared by the benchmark and soak scripts and the worker-crash test:
child processes and command lines from ``/proc``, a free loopback port, and a SIGTERM-then-kill
stop. Linux only (``/proc``), like the service's own deployment target."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list), or [] once it is gone."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far (all its threads); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def cmdline(pid: int) -> str:
    """The command line with spaces between arguments; "" for a process that is gone (or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def free_port() -> int:
    """A loopback port free at the time of the call (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; True when SIGTERM alone was enough."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
