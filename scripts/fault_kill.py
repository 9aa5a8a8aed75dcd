#!/usr/bin/env python3
"""Kill ``searchsvc index`` with SIGKILL at chosen phases and check that nothing is lost or doubled.

Each round runs a real ``searchsvc index`` (an update, or a ``--rebuild``) with
SEARCHSVC_TRACE_PHASES=1, waits until it reports the targeted phase (reading, committing, merging,
switching), waits a random few milliseconds, kills its whole process group, and then checks:

* the served index opens;
* it holds every article committed before the kill, each exactly once;
* the same command run again completes, and then holds the round's articles too, once each.

Usage: scripts/fault_kill.py [--kills 24] [--seed 1] [--synthetic] [--per-round 300]
Prints one line per kill and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchkit.corpus import CORPUS, REPO_ROOT, corpus_articles, write_jsonl
from index import store
from index.engine import WhooshEngine

UPDATE_PHASES = ("reading", "committing", "merging")
REBUILD_PHASES = ("reading", "committing", "switching")


def index_cmd(src: Path, index_dir: Path, rebuild: bool) -> list[str]:
    cmd = [sys.executable, "-m", "searchsvc", "index", str(src), "--index-dir", str(index_dir), "--wait", "60"]
    return cmd + (["--rebuild"] if rebuild else [])


def env() -> dict[str, str]:
    return {**os.environ, "SEARCHSVC_TRACE_PHASES": "1",
            "SEARCHSVC_MERGE_AT_SEGMENTS": "2"}


def run_and_kill(cmd: list[str], target: str, delay: float, timeout: float = 600) -> tuple[str, bool]:
    """Run until ``target`` is reported, then SIGKILL after ``delay`` s. Returns (last phase, killed)."""
    proc = subprocess.Popen(cmd, env=env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    last = {"phase": "starting"}
    seen = threading.Event()

    def watch() -> None:
        for line in proc.stderr:
            if line.startswith("phase "):
                last["phase"] = line.split()[1]
                if last["phase"] == target:
                    seen.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not seen.is_set() and time.monotonic() < deadline:
        seen.wait(0.01)
    killed = False
    if proc.poll() is None:
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = proc.poll() is None or proc.returncode == -signal.SIGKILL
        except ProcessLookupError:
            pass
    proc.wait()
    t.join(timeout=5)
    killed = killed and proc.returncode == -signal.SIGKILL
    return last["phase"], killed


def index_contents(index_dir: Path) -> tuple[int, dict[str, int], dict[str, str]]:
    """(doc count, id -> copies, id -> title) of the served index."""
    with WhooshEngine.open(index_dir) as engine:  # called once per kill: close what each opens
        searcher, _ = engine._state()
        counts: dict[str, int] = {}
        titles: dict[str, str] = {}
        for fields in searcher.reader().all_stored_fields():
            doc = json.loads(fields["doc"])
            counts[doc["id"]] = counts.get(doc["id"], 0) + 1
            titles[doc["id"]] = doc["title"]
        return searcher.doc_count(), counts, titles


def check(index_dir: Path, must_have: dict[str, str], may_have: dict[str, str]) -> list[str]:
    problems = []
    try:
        total, counts, titles = index_contents(index_dir)
    except Exception as e:  # report, do not crash the harness
        return [f"index does not open: {e!r}"]
    twice = [i for i, n in counts.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} articles twice, e.g. {twice[:3]}")
    if total != len(counts):
        problems.append(f"doc count {total} != distinct ids {len(counts)}")
    missing = [i for i in must_have if i not in counts]
    if missing:
        problems.append(f"{len(missing)} committed articles missing, e.g. {missing[:3]}")
    for i, title in titles.items():
        if i in must_have and title != must_have[i] and may_have.get(i) != title:
            problems.append(f"article {i} has title {title!r}, expected {must_have[i]!r}")
            break
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-round", type=int, default=300, help="new articles per round")
    ap.add_argument("--synthetic", action="store_true", help="generated articles instead of the corpus")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fault-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    index_dir = work / "index"
    pool = corpus_articles(args.synthetic, args.per_round * (args.kills + 2), args.seed)
    committed: dict[str, str] = {}
    # Round 0: a first index, not killed.
    first = pool[: args.per_round]
    subprocess.run(index_cmd(write_jsonl(work / "r0.jsonl", first), index_dir, False), env=env(), cwd=REPO_ROOT,
                   check=True, capture_output=True)
    committed.update({a["id"]: a["title"] for a in first})
    plan = []
    for k in range(args.kills):
        rebuild = k % 2 == 1
        phases = REBUILD_PHASES if rebuild else UPDATE_PHASES
        plan.append((rebuild, phases[(k // 2) % len(phases)]))
    failures = 0
    survived = 0
    print(f"work dir: {work}; source: {'synthetic' if args.synthetic or not CORPUS.exists() else CORPUS}")
    print(f"{'#':>3} {'mode':8} {'target':10} {'killed in':10} {'delay':>6}  result")
    for k, (rebuild, target) in enumerate(plan, start=1):
        batch = pool[k * args.per_round : (k + 1) * args.per_round]
        # Each round also updates some committed articles (new titles) to check upserts.
        updated = [dict(a, title=a["title"] + f" (sửa {k})") for a in rng.sample(pool[: k * args.per_round], 20)
                   if a["id"] in committed]
        round_articles = batch + updated
        if rebuild:  # a rebuild carries the whole archive
            current = {a["id"]: a for a in pool[: k * args.per_round] if a["id"] in committed}
            for a in current.values():
                a = dict(a, title=committed[a["id"]])
                current[a["id"]] = a
            current.update({a["id"]: a for a in round_articles})
            round_articles = list(current.values())
        src = write_jsonl(work / f"r{k}.jsonl", round_articles)
        delay = {"reading": rng.uniform(0, 0.4), "committing": rng.uniform(0, 0.03)}.get(target, rng.uniform(0, 0.002))
        before = dict(committed)
        phase, killed = run_and_kill(index_cmd(src, index_dir, rebuild), target, delay)
        may = {a["id"]: a["title"] for a in round_articles}
        problems = check(index_dir, before, may)
        # The next run completes the work.
        done = subprocess.run(index_cmd(src, index_dir, rebuild), env=env(), cwd=REPO_ROOT,
                              capture_output=True, text=True)
        if done.returncode != 0:
            problems.append(f"re-run failed: {done.stderr.strip()[-300:]}")
        if rebuild:
            committed = {a["id"]: a["title"] for a in round_articles}
        else:
            committed.update(may)
        problems += check(index_dir, committed, {})
        if not problems:
            _, counts, _ = index_contents(index_dir)
            if set(counts) != set(committed):
                problems.append(f"after re-run: {len(counts)} ids, expected {len(committed)}")
        ok = not problems
        survived += ok and killed
        failures += not ok
        mode = "rebuild" if rebuild else "update"
        note = "ok" if ok else "FAIL: " + "; ".join(problems)
        if not killed:
            note += " (finished before the kill)"
        print(f"{k:>3} {mode:8} {target:10} {phase:10} {delay * 1000:5.0f}ms  {note}", flush=True)
    print(f"\n{len(plan)} kills attempted, {survived} killed mid-run and recovered, {failures} failures; "
          f"final index: {len(committed)} articles, generations {store.generation_numbers(index_dir)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
