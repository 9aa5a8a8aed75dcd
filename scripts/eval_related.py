"""Evaluate related articles (issue 15) on the full corpus: self-retrieval, category agreement,
near-duplicate exclusion, and in-process latency (figures in docs/benchmarks.md).

The index: a copy of a full-corpus index (``--base-index``, e.g. one built by
``scripts/bench_index.py``; never modified) in a temporary directory, to which one update commit
adds the constructed documents; without ``--base-index`` the corpus is indexed there first.

(a) Self-retrieval: for ``--n`` articles of at least two sentences, a copy of the first half
    (its title and the sentences up to the one ending nearest half the characters) is indexed as a query document
    ``rq-ID``, and the second half alone as ``rh-ID`` (titled with its own first sentence). For
    each query document: the rank of the original article (which holds the second half) in its
    related list (S@1, S@5), and the rank of the second half alone once the original is set
    aside (the harder case: no text shared with the query).
(b) Category agreement@5: for ``--n`` other articles, the share of their five related articles
    in their own category, beside the share two random articles would agree (sum of squared
    category shares).
(c) Near-duplicates: ``--dups`` articles re-posted under another id, half verbatim, half edited
    (a title prefix, a sentence added, the last paragraph dropped from an article of six or more);
    neither copy may list the other, which the rule promises for pairs at or above its Jaccard
    threshold (pairs below it are reported apart).

Latency: each related list of (a) and (b) is computed once (no cached list), timed in process.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit.corpus import CORPUS_ARTICLES, iter_articles
from index import related
from index.article import Article
from index.builder import index_articles
from index.engine import WhooshEngine


def halves(a: Article) -> tuple[list[str], list[str]]:
    """The body cut at the sentence end nearest half its characters, paragraphs kept."""
    sentences = [(k, part) for k, p in enumerate(a.body) for part in re.split(r"(?<=[.!?…])\s+", p) if part]
    total = sum(len(part) for _, part in sentences)
    seen, cut, best = 0, 1, float("inf")
    for i, (_, part) in enumerate(sentences[:-1]):
        seen += len(part)
        if abs(seen - total / 2) < best:
            best, cut = abs(seen - total / 2), i + 1

    def paragraphs(run: list[tuple[int, str]]) -> list[str]:
        out: dict[int, list[str]] = {}
        for k, part in run:
            out.setdefault(k, []).append(part)
        return [" ".join(parts) for parts in out.values()]

    return paragraphs(sentences[:cut]), paragraphs(sentences[cut:])


def first_sentence(paragraphs: list[str]) -> str:
    text = paragraphs[0]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence[:120].strip() or "Phần hai"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-index", type=Path, help="a full-corpus index to copy (read only)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--dups", type=int, default=200)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--work-dir", type=Path, help="where the copy goes (default: a temporary directory)")
    ap.add_argument(
        "--latency-only",
        type=int,
        metavar="N",
        help="only time N uncached lists on --base-index itself (opened read only), after 200 others",
    )
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    if args.latency_only:
        latency_only(args.base_index, args.latency_only, args.seed)
        return
    rng = random.Random(args.seed)
    picks = rng.sample(range(CORPUS_ARTICLES), 2 * args.n + args.dups + 200)
    wanted = set(picks)
    chosen: dict[int, Article] = {}
    started = time.perf_counter()
    every: list[Article] = [] if args.base_index is None else []
    for i, a in enumerate(iter_articles()):
        if args.base_index is None:
            every.append(a)
        if i in wanted:
            chosen[i] = a
    print(f"corpus read in {time.perf_counter() - started:.0f} s")
    pool = [chosen[i] for i in picks if i in chosen]
    retrieval = [a for a in pool if all(halves(a))][: args.n]
    rest = [a for a in pool if a not in retrieval]
    agreement = rest[: args.n]
    originals = rest[args.n : args.n + args.dups]

    extras: list[Article] = []
    for a in retrieval:
        first, second = halves(a)
        extras.append(replace(a, id=f"rq-{a.id}", body=first, captions=[], url=None))
        extras.append(replace(a, id=f"rh-{a.id}", title=first_sentence(second), body=second, captions=[], url=None))
    dups: list[tuple[Article, Article, str]] = []
    for k, a in enumerate(originals):
        if k % 2 == 0:
            copy = replace(a, id=f"dup-{a.id}", published=a.published + timedelta(days=1))
            kind = "verbatim"
        else:
            # Re-posted with the edits a re-post gets: a title prefix, a closing sentence, and the
            # last paragraph dropped from a long article (a short one would lose too much of itself).
            body = a.body[:-1] if len(a.body) >= 6 else list(a.body)
            body = [*body[:-1], body[-1] + " Thông tin đang được cập nhật."]
            copy = replace(
                a,
                id=f"dup-{a.id}",
                title="[Cập nhật] " + a.title,
                body=body,
                published=a.published + timedelta(hours=5),
            )
            kind = "edited"
        extras.append(copy)
        dups.append((a, copy, kind))

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="eval-related-"))
    index_dir = work / "ix"
    try:
        started = time.perf_counter()
        if args.base_index is not None:
            shutil.copytree(args.base_index, index_dir, ignore=shutil.ignore_patterns("writer.lock", "*WRITELOCK"))
            print(f"copied {args.base_index} in {time.perf_counter() - started:.0f} s")
        else:
            index_articles(index_dir, every, procs=2)
            print(f"indexed the corpus in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        index_articles(index_dir, extras, procs=1)
        print(f"added {len(extras)} constructed documents in {time.perf_counter() - started:.1f} s")
        with WhooshEngine.open(index_dir) as engine:
            started = time.perf_counter()
            engine.warm_up()
            print(
                f"warm-up (suggester, vocabulary, syllable frequencies) {time.perf_counter() - started:.1f} s; "
                f"{engine.doc_count} articles"
            )
            evaluate(engine, retrieval, agreement, dups)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def latency_only(index_dir: Path, n: int, seed: int) -> None:
    with WhooshEngine.open(index_dir) as engine:
        engine.warm_up()
        searcher, _ = engine._state()
        picks = random.Random(seed).sample(range(searcher.reader().doc_count_all()), n + 200)
        ids = [searcher.stored_fields(i)["id"] for i in picks]
        for article_id in ids[:200]:  # the posting caches as a running worker has them
            engine.related(article_id, related.DEFAULT_LIMIT)
        latencies: list[float] = []
        for article_id in ids[200:]:
            timed(engine, article_id, related.DEFAULT_LIMIT, latencies)
        ms = [x * 1000 for x in latencies]
        print(
            f"latency, {n} uncached related lists in process: p50 {percentile(ms, 0.5):.1f} ms  "
            f"p95 {percentile(ms, 0.95):.1f} ms  max {max(ms):.1f} ms   load {os.getloadavg()}"
        )


def timed(engine: WhooshEngine, article_id: str, limit: int, latencies: list[float]) -> list[Article]:
    started = time.perf_counter()
    found = engine.related(article_id, limit)
    latencies.append(time.perf_counter() - started)
    return found


def evaluate(
    engine: WhooshEngine, retrieval: list[Article], agreement: list[Article], dups: list[tuple[Article, Article, str]]
) -> None:
    latencies: list[float] = []
    at1 = at5 = half1 = half5 = copies = 0
    for a in retrieval:
        listed = [r.id for r in timed(engine, f"rq-{a.id}", related.MAX_LIMIT, latencies)]
        at1 += listed[:1] == [a.id]
        at5 += a.id in listed[:5]
        without = [i for i in listed if i != a.id]
        if a.id not in listed[:5]:
            first, _ = halves(a)
            query = replace(a, id="q", body=first, captions=[], url=None)
            copies += related.jaccard(related.shingles(query), related.shingles(a)) >= related.NEAR_DUPLICATE
        half1 += without[:1] == [f"rh-{a.id}"]
        half5 += f"rh-{a.id}" in without[:5]
    n = len(retrieval)
    print(
        f"(a) self-retrieval, {n} first halves: original S@1 {at1 / n:.3f}  S@5 {at5 / n:.3f}; "
        f"second half alone S@1 {half1 / n:.3f}  S@5 {half5 / n:.3f}   load {os.getloadavg()}"
    )

    agree, listed_total, empty = 0, 0, 0
    counts: dict[str, int] = {}
    for a in agreement:
        counts[a.category_slug] = counts.get(a.category_slug, 0) + 1
        found = timed(engine, a.id, 5, latencies)
        empty += not found
        agree += sum(r.category_slug == a.category_slug for r in found)
        listed_total += len(found)
    chance = sum((c / len(agreement)) ** 2 for c in counts.values())
    print(
        f"(b) category agreement@5, {len(agreement)} articles: {agree / max(1, listed_total):.3f} "
        f"({listed_total} listed, {empty} with none; two random articles agree {chance:.3f})   "
        f"load {os.getloadavg()}"
    )

    excluded = {"verbatim": [0, 0], "edited": [0, 0], "edited, below the threshold": [0, 0]}
    similarity = {"verbatim": [], "edited": []}  # type: dict[str, list[float]]
    for original, copy, kind in dups:
        ok = copy.id not in {r.id for r in engine.related(original.id, related.MAX_LIMIT)}
        ok &= original.id not in {r.id for r in engine.related(copy.id, related.MAX_LIMIT)}
        similar = related.jaccard(related.shingles(original), related.shingles(copy))
        if similar < related.NEAR_DUPLICATE:
            kind = "edited, below the threshold"
        excluded[kind][0] += ok
        excluded[kind][1] += 1
        similarity.setdefault(kind, []).append(similar)
    for kind, (ok, total) in excluded.items():
        sims = sorted(similarity.get(kind, []))
        if not sims:
            continue
        print(
            f"(c) near-duplicates, {kind}: {ok}/{total} pairs kept apart "
            f"(word-bigram Jaccard min {sims[0]:.2f}, median {sims[len(sims) // 2]:.2f})"
        )

    ms = [x * 1000 for x in latencies]
    print(
        f"latency, {len(ms)} uncached related lists in process: p50 {percentile(ms, 0.5):.1f} ms  "
        f"p95 {percentile(ms, 0.95):.1f} ms  max {max(ms):.1f} ms   load {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
