"""Faults while indexing: SIGKILL in every phase, a full disk. The served index must survive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from index_helpers import small_tmpfs

from benchkit.corpus import corpus_articles, write_jsonl
from index import store
from index.engine import WhooshEngine

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "searchsvc", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def test_sigkill_in_every_phase(tmp_path):
    """The fault harness (scripts/fault_kill.py) with 6 kills: update and --rebuild, killed while
    reading, committing, merging and switching; every check in it must pass."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "fault_kill.py"), "--kills", "6", "--synthetic",
                          "--per-round", "150", "--seed", "5", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 failures" in out.stdout
    lines = [line for line in out.stdout.splitlines() if line[:3].strip().isdigit()]
    assert len(lines) == 6 and all(" ok" in line for line in lines)
    killed_in = {line.split()[3] for line in lines}
    assert {"reading", "committing"} <= killed_in


@pytest.fixture
def small_disk(tmp_path):
    """3 MiB, not conftest's 2: a first small index must fit before the big one fills it."""
    with small_tmpfs(tmp_path / "disk", "3m") as mount:
        yield mount


@pytest.mark.parametrize("rebuild", [False, True], ids=["update", "rebuild"])
def test_disk_full_leaves_live_index_intact(tmp_path, small_disk, rebuild):
    index_dir = small_disk / "index"
    small = write_jsonl(tmp_path / "small.jsonl", corpus_articles(True, 40, 1))
    big = write_jsonl(tmp_path / "big.jsonl", corpus_articles(True, 3000, 2))
    assert cli("index", str(small), "--index-dir", str(index_dir)).returncode == 0
    live = store.current_generation(index_dir)
    args = ["index", str(big), "--index-dir", str(index_dir)] + (["--rebuild"] if rebuild else [])
    out = cli(*args)
    assert out.returncode == 2
    assert "No space left on device" in out.stderr and "error: indexing failed" in out.stderr
    assert store.current_generation(index_dir) == live
    with WhooshEngine.open(index_dir) as engine:
        assert engine.doc_count == 40
        assert engine.get_article("syn-0") is not None
    assert store.generation_numbers(index_dir) == [int(live.split("-")[1])]  # no half-built generation left
    # Once space is back, the same command completes.
    (small_disk / "filler").write_bytes(b"")
    out = cli("index", str(small), "--index-dir", str(index_dir))
    assert out.returncode == 0, out.stderr


def test_opening_a_searcher_survives_a_commit_deleting_its_table_of_contents(tmp_path, monkeypatch):
    """The race the soak found: another process commits between the engine listing the table of
    contents and reading it, so the file it picked is gone. The engine must re-read the live
    generation and open that, not fail the request."""
    from index_helpers import article, build
    from whoosh.index import TOC

    from index.builder import index_articles

    index_dir = tmp_path / "ix"
    with build(index_dir, [article(1, "Bão số 3 đổ bộ", "Mưa lớn ở miền Trung.")]) as engine:
        assert engine.get_article("1") is not None
        index_articles(index_dir, [article(2, "Lũ quét ở Yên Bái", "Nước lên nhanh.")], procs=1)

        real_read = TOC.read.__func__
        failures = []

        def read_once_gone(cls, storage, indexname, gen=None, schema=None):
            if not failures:
                failures.append(gen)
                raise FileNotFoundError(2, "No such file or directory", f"_{indexname}_{gen}.toc")
            return real_read(cls, storage, indexname, gen=gen, schema=schema)

        monkeypatch.setattr(TOC, "read", classmethod(read_once_gone))
        engine._checked = 0.0  # notice the new commit now rather than after CHECK_INTERVAL
        assert engine.get_article("2").title == "Lũ quét ở Yên Bái"
        assert failures, "the injected disappearance never happened: the test did not exercise the race"
