"""The publishing applier as a child of ``searchsvc serve``: started, restarted, stopped.

``searchsvc serve`` runs uvicorn in its main thread (one worker, or ``Multiprocess`` supervising
several); this thread beside it runs ``python -m searchsvc apply`` for the same index and starts
it again, with growing pauses, whenever it exits. A separate process rather than a thread in a
worker: there must be exactly one applier per index whatever the number of workers, its commits
(pure-Python Whoosh work) must not hold a worker's GIL against requests, and a crash in it
(or a SIGKILL) costs nothing but a restart, after which it resumes from the index's own record of
what it applied (index.applier).

The child stays in the server's process group (a SIGKILL of the group takes it along) but ignores
SIGINT: the server stops it with SIGTERM once its own shutdown is done. It also watches the
server's pid, so a server killed alone never leaves it running (searchsvc.cli, ``cmd_apply``).

The child inherits the server's environment, which ``serve`` filled from its ``Config``
(``Config.to_env``): that is how the engine (``SEARCHSVC_ENGINE``, also when given as ``serve
--engine``) and the cluster's ``SEARCHSVC_TYPESENSE_*`` settings reach it. With the cluster engine
``--index-dir`` is the local state directory (journal, applier lock, status file).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger("searchsvc")

PARENT_ENV = "SEARCHSVC_APPLIER_PARENT"  # the server's pid, which the applier watches
RESTART_MIN = 0.5  # seconds before the first restart
RESTART_MAX = 30.0
HEALTHY_RUN = 30.0  # an applier that ran this long before exiting restarts at RESTART_MIN again
STOP_TIMEOUT = 10.0  # seconds a stopping applier gets to finish its commit before SIGKILL


class ApplierSupervisor:
    """Keeps one ``searchsvc apply --index-dir INDEX_DIR`` running until ``stop``."""

    def __init__(self, index_dir: Path, *, python: str = sys.executable) -> None:
        self.index_dir = Path(index_dir)
        self._python = python
        self._stop = threading.Event()
        self._lock = threading.Lock()  # orders spawning against stopping
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="searchsvc-applier", daemon=True)
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            env = {**os.environ, PARENT_ENV: str(os.getpid())}
            self._proc = subprocess.Popen(
                [self._python, "-m", "searchsvc", "apply", "--index-dir", str(self.index_dir)], env=env
            )
            return self._proc

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                proc = self._spawn()
            except OSError as exc:
                proc = None
                logger.error("cannot start the applier: %s", exc)
            if proc is not None:
                while proc.poll() is None and not self._stop.wait(0.2):
                    pass
            if self._stop.is_set():
                return
            failures = 1 if time.monotonic() - started >= HEALTHY_RUN else failures + 1
            delay = min(RESTART_MAX, RESTART_MIN * 2 ** (failures - 1))
            code = proc.returncode if proc is not None else None
            logger.warning("the applier exited (status %s); restarting it in %.1f s", code, delay)
            self.restarts += 1
            self._stop.wait(delay)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the applier (SIGTERM: it finishes the commit in progress), SIGKILL after
        ``timeout``; returns its exit status (None when none was running)."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.error("the applier did not stop within %.0f s of SIGTERM; killing it", timeout)
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._thread is not None:
            self._thread.join(timeout)
        return code
