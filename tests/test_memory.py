"""``index.memory``: glibc's freed pages handed back, in a child process (a clean heap, and nothing
of the test process's own state measured)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from index.memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="not glibc: index.memory is a no-op here")

# Holes in the heap: every other 64 KB block freed (below glibc's mmap threshold, so in the heap,
# and each one many whole pages). free() cannot give back pages between live blocks; malloc_trim can.
CHILD = r"""
import json
from index.memory import limit_arenas, release_free_memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

arenas = limit_arenas(2)
blocks = [bytearray(64 * 1024) for _ in range(3000)]
for b in blocks:
    b[::4096] = b"x" * len(b[::4096])  # touch every page
kept = blocks[1::2]
del blocks
before = rss()
released = release_free_memory()
print(json.dumps({"arenas": arenas, "released": released, "before": before, "after": rss(), "kept": len(kept)}))
"""


def test_release_free_memory_gives_back_the_pages_between_live_blocks() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True)
    figures = json.loads(out.stdout)
    assert figures["arenas"] is True and figures["released"] is True, figures
    # About 94 MB were freed in holes: most of it must leave the process.
    assert figures["before"] - figures["after"] >= 60, figures


def test_without_the_trim_the_holes_stay() -> None:
    """The contrast that makes the test above mean something: free() alone keeps them."""
    child = CHILD.replace("released = release_free_memory()", "released = True")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True)
    figures = json.loads(out.stdout)
    assert figures["before"] - figures["after"] < 20, figures
