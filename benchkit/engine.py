"""The engine as the search benchmarks measure it: every query executed, none answered from a cache."""

from __future__ import annotations

import sys
from pathlib import Path

from index.engine import WhooshEngine
from index.store import IndexMissing


def open_measured_engine(index_dir: Path) -> tuple[WhooshEngine, str]:
    """The engine on ``index_dir`` with its result cache off, and a line saying so for the output;
    exits with the way to build the index when there is none."""
    try:
        engine = WhooshEngine.open(index_dir)
    except (IndexMissing, FileNotFoundError):
        sys.exit(f"error: no index in {index_dir}; build it first with: .venv/bin/python scripts/bench_index.py")
    if not hasattr(engine, "RESULT_CACHE_SIZE"):
        return engine, "engine has no result cache"
    engine.RESULT_CACHE_SIZE = 0
    return engine, "engine result cache disabled (every query runs)"
