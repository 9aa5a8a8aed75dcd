#!/usr/bin/env python
"""Known-item relevance evaluation: Whoosh (the project's engine) against a SQLite FTS5 baseline.

    .venv/bin/python scripts/bench_index.py          # first: builds var/bench-index and var/bench-fts5.sqlite
    .venv/bin/python scripts/eval_relevance.py       # 5 kinds x 200 queries, seed 42
    .venv/bin/python scripts/eval_relevance.py --per-kind 50 --seed 7 --json-out var/eval.json

Queries are generated from the corpus by ``benchkit.queries`` (see its docstring for the five
kinds); each has one known article. Each query runs against the Whoosh index with per_page=10,
facets and snippets off, and against FTS5 (``bm25(t, 3.0, 1.0)``, implicit AND of the quoted folded
tokens, no fallback; a ``body_passage`` as a quoted phrase). The rank of the known article in the
first 10 gives Success@1, Success@10 and MRR@10 (reciprocal rank, 0 when not in the first 10), per
kind and overall.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from benchkit import fts5
from benchkit import queries as eq
from benchkit.corpus import BENCH_INDEX, iter_articles, require_corpus
from benchkit.engine import open_measured_engine
from benchkit.report import banner, load_note
from index.api import SearchRequest

TARGET_MRR = 0.90
TARGET_S10 = 0.95
TARGET_PASSAGE_S1 = 0.90  # issue 16: a pasted or retyped passage finds its article first
TARGET_PASSAGE_MRR = 0.93
TIERS = ("adjacent", "syllables", "fuzzy", "partial", "none")


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks) or 1
    s1 = sum(1 for r in ranks if r == 1) / n
    s10 = sum(1 for r in ranks if r is not None and r <= 10) / n
    mrr = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return s1, s10, mrr


def rank_of(ids: list[str], wanted: str) -> int | None:
    try:
        return ids.index(wanted) + 1
    except ValueError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-dir", type=Path, default=BENCH_INDEX)
    ap.add_argument("--fts5-db", type=Path, default=fts5.DEFAULT_DB)
    ap.add_argument("--per-kind", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--kinds", default=",".join(eq.KINDS), help="comma-separated subset of: " + ", ".join(eq.KINDS))
    ap.add_argument("--skip-fts5", action="store_true")
    ap.add_argument("--json-out", type=Path, help="write every query with its results here")
    ap.add_argument("--typesense", action="store_true",
                    help="also ask the cluster engine (SEARCHSVC_TYPESENSE_*, the same articles indexed there) "
                         "every query, in the same run, and compare it with Whoosh")
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    for k in kinds:
        if k not in eq.KINDS:
            sys.exit(f"error: unknown kind {k!r}; kinds: {', '.join(eq.KINDS)}")
    require_corpus()
    engine, cache_note = open_measured_engine(args.index_dir)
    n_docs = engine.doc_count

    print(banner("eval_relevance"))
    print(cache_note)
    print(f"index: {args.index_dir} ({n_docs:,} articles, generation {engine.generation}); seed {args.seed}, "
          f"{args.per_kind} queries per kind")

    t0 = time.perf_counter()
    docs = [eq.Doc(a.id, a.title, a.body_text) for a in iter_articles(n_docs)]
    if len(docs) != n_docs:
        print(f"warning: the index holds {n_docs:,} articles but the first {n_docs:,} of the corpus gave {len(docs):,}")
    unique, dropped = eq.unique_title_docs(docs)
    items = eq.generate(unique, args.per_kind, args.seed, kinds)
    print(f"queries: drawn from {len(unique):,} articles with a unique title ({dropped:,} articles share their "
          f"folded title with another and were left out); {len(items):,} queries generated in "
          f"{time.perf_counter() - t0:.1f} s (reading the corpus included)")

    cluster = None
    c_time = 0.0
    if args.typesense:
        from index.typesense.engine import TypesenseEngine

        cluster = TypesenseEngine.open()
        cluster.warm_up()
        print(f"cluster engine: {', '.join(cluster.settings.nodes)} ({cluster.doc_count:,} articles, "
              f"generation {cluster.generation})")
        if cluster.doc_count != n_docs:
            print(f"warning: the cluster holds {cluster.doc_count:,} articles, the index {n_docs:,}")

    fts = None
    if not args.skip_fts5:
        rep = fts5.ensure(args.fts5_db, n_docs)
        print(f"FTS5 baseline: {args.fts5_db} ({'reused' if rep.reused else f'built in {rep.seconds:.0f} s'})")
        fts = fts5.Fts5(args.fts5_db)

    records: list[dict[str, Any]] = []
    w_time = f_time = 0.0
    for i, item in enumerate(items, 1):
        req = SearchRequest(q=item.query, per_page=10, facets=False, snippets=False)
        t = time.perf_counter()
        res = engine.search(req)
        w_ms = (time.perf_counter() - t) * 1000
        w_time += w_ms
        w_ids = [h.article.id for h in res.hits]
        rec: dict[str, Any] = {
            **item.to_dict(),
            "whoosh": {"rank": rank_of(w_ids, item.article_id), "tier": res.tier, "total": res.total,
                       "first": res.hits[0].article.title if res.hits else None, "ms": round(w_ms, 1),
                       "suggestion": res.suggestion, "ids": w_ids},
        }
        if cluster is not None:
            t = time.perf_counter()
            c_res = cluster.search(req)
            c_ms = (time.perf_counter() - t) * 1000
            c_time += c_ms
            c_ids = [h.article.id for h in c_res.hits]
            rec["typesense"] = {"rank": rank_of(c_ids, item.article_id), "tier": c_res.tier, "total": c_res.total,
                                "first": c_res.hits[0].article.title if c_res.hits else None, "ms": round(c_ms, 1),
                                "ids": c_ids}
        if fts is not None:
            # A passage is looked up in FTS5 as a phrase (its tokenizer skips punctuation, so the
            # phrase crosses it): the reference the passage kind is compared with.
            fts_text = f'"{item.query}"' if item.kind == "body_passage" else item.query
            t = time.perf_counter()
            f_hits = fts.search(fts_text, 10)
            f_ms = (time.perf_counter() - t) * 1000
            f_time += f_ms
            f_ids = [h[0] for h in f_hits]
            rec["fts5"] = {"rank": rank_of(f_ids, item.article_id), "first": f_hits[0][1] if f_hits else None,
                           "ms": round(f_ms, 1), "ids": f_ids, "match": fts5.fts_query(fts_text)}
            if item.kind in ("body_span", "body_passage"):
                rec["span_articles"] = fts.count('"' + item.query + '"')
        records.append(rec)
        if i % 100 == 0:
            print(f"  {i}/{len(items)} queries", file=sys.stderr, flush=True)

    by_kind: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_kind[r["kind"]].append(r)

    # ---- the table -------------------------------------------------------------------------------------
    print()
    engines = ["whoosh"] + (["typesense"] if cluster is not None else []) + (["fts5"] if fts is not None else [])
    head = f"{'kind':<20}{'n':>5}  " + "  ".join(f"{e + ' S@1':>11}{'S@10':>7}{'MRR@10':>8}" for e in engines)
    print(head + "   targets (Whoosh)")
    print("-" * (len(head) + 30))
    rows = [(k, by_kind[k]) for k in kinds] + [("overall", records)]
    for name, recs in rows:
        line = f"{name:<20}{len(recs):>5}  "
        cells = []
        for e in engines:
            s1, s10, mrr = metrics([r[e]["rank"] for r in recs])
            cells.append(f"{s1:>11.3f}{s10:>7.3f}{mrr:>8.3f}")
        line += "  ".join(cells)
        s1, s10, mrr = metrics([r["whoosh"]["rank"] for r in recs])
        if name == "overall":
            line += f"   MRR {mrr:.3f} >= {TARGET_MRR}: {'OK' if mrr >= TARGET_MRR else 'MISSED'}"
        else:
            line += f"   S@10 {s10:.3f} >= {TARGET_S10}: {'OK' if s10 >= TARGET_S10 else 'MISSED'}"
        print(line)
    spans = by_kind.get("body_span", [])
    if spans and fts is not None:
        uniq = [r for r in spans if r.get("span_articles") == 1]
        print(f"\nbody_span: {len(uniq)} of {len(spans)} spans occur (as a folded phrase, FTS5 count) "
              "in that one article only; "
              f"{sum(1 for r in spans if (r.get('span_articles') or 0) > 1)} occur in several, "
              f"{sum(1 for r in spans if not r.get('span_articles'))} were not found as a phrase by FTS5 "
              "(tokenisation differs).")
        if uniq:
            line = f"{'body_span (unique)':<20}{len(uniq):>5}  " + "  ".join(
                "{:>11.3f}{:>7.3f}{:>8.3f}".format(*metrics([r[e]["rank"] for r in uniq])) for e in engines)
            print(line)
    passages = by_kind.get("body_passage", [])
    if passages:
        s1, _, mrr = metrics([r["whoosh"]["rank"] for r in passages])
        print(f"\nbody_passage: S@1 {s1:.3f} >= {TARGET_PASSAGE_S1}: {'OK' if s1 >= TARGET_PASSAGE_S1 else 'MISSED'}, "
              f"MRR@10 {mrr:.3f} >= {TARGET_PASSAGE_MRR}: {'OK' if mrr >= TARGET_PASSAGE_MRR else 'MISSED'}"
              + ("" if fts is None else
                 f"; FTS5 as a phrase: S@1 {metrics([r['fts5']['rank'] for r in passages])[0]:.3f}; "
                 f"{sum(1 for r in passages if r.get('span_articles') == 1)} of {len(passages)} passages occur "
                 "in one article only (FTS5 phrase count)"))
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in passages:
            form, _, rest = r["note"].partition(",")
            crosses = rest.rpartition("crosses: ")[2]
            groups[form].append(r)
            for feature in crosses.split(", "):
                groups[feature].append(r)
        for name in ("pasted", "retyped", "nothing", "punctuation", "sentence", "paragraph", "number"):
            if groups.get(name):
                recs = groups[name]
                cells = "  ".join("{:>11.3f}{:>7.3f}{:>8.3f}".format(*metrics([r[e]["rank"] for r in recs]))
                                  for e in engines)
                print(f"  {name:<18}{len(recs):>5}  {cells}")
    if cluster is not None:
        # Issue 13: overall MRR@10 within 0.02 of Whoosh, no kind more than 0.05 below.
        print("\ncluster engine against Whoosh (MRR@10, same queries):")
        for name, recs in rows:
            w_mrr = metrics([r["whoosh"]["rank"] for r in recs])[2]
            c_mrr = metrics([r["typesense"]["rank"] for r in recs])[2]
            bound = 0.02 if name == "overall" else 0.05
            ok = c_mrr >= w_mrr - bound
            print(f"  {name:<20} whoosh {w_mrr:.3f}  typesense {c_mrr:.3f}  ({c_mrr - w_mrr:+.3f}; within {bound}: "
                  f"{'OK' if ok else 'MISSED'})")
        same_tier = sum(1 for r in records if r["typesense"]["tier"] == r["whoosh"]["tier"])
        same_total = sum(1 for r in records if r["typesense"]["total"] == r["whoosh"]["total"])
        print(f"  same tier for {same_tier} of {len(records)} queries, same total for {same_total}")
    print(f"\nmean latency per query: Whoosh {w_time / max(1, len(records)):.1f} ms"
          + (f", Typesense {c_time / max(1, len(records)):.1f} ms" if cluster is not None else "")
          + (f", FTS5 {f_time / max(1, len(records)):.1f} ms" if fts is not None else "")
          + " (facets and snippets off; see bench_search.py for percentiles)")

    # ---- tiers --------------------------------------------------------------------------------------
    print("\nWhoosh tier distribution (which tier answered), with S@10 per tier")
    print(f"{'kind':<20}" + "".join(f"{t:>16}" for t in TIERS))
    for name, recs in rows:
        c = Counter(r["whoosh"]["tier"] for r in recs)
        cells = []
        for t in TIERS:
            in_tier = [r for r in recs if r["whoosh"]["tier"] == t]
            if in_tier:
                s10 = metrics([r["whoosh"]["rank"] for r in in_tier])[1]
                cells.append(f"{c[t]:>8} ({s10:.2f})")
            else:
                cells.append(f"{0:>8}       ")
        print(f"{name:<20}" + "".join(f"{x:>16}" for x in cells))

    # ---- worst failures -------------------------------------------------------------------------------
    misses = defaultdict(list)
    for r in records:
        if r["whoosh"]["rank"] is None:
            misses[r["kind"]].append(r)
    worst: list[dict] = []
    while len(worst) < 10 and any(misses.values()):  # round robin over kinds
        for k in kinds:
            if misses[k] and len(worst) < 10:
                worst.append(misses[k].pop(0))
    if len(worst) < 10:
        low = sorted((r for r in records if r["whoosh"]["rank"] not in (None, 1)), key=lambda r: -r["whoosh"]["rank"])
        worst += low[: 10 - len(worst)]
    total_miss = sum(1 for r in records if r["whoosh"]["rank"] is None)
    print(f"\n10 worst Whoosh results ({total_miss} queries without the known article in the first 10)")
    for r in worst:
        w = r["whoosh"]
        print(f"- [{r['kind']}] q={r['query']!r}  ({r['note']})" if r["note"] else f"- [{r['kind']}] q={r['query']!r}")
        print(f"    expected: {r['title']!r} ({r['article_id']})")
        print(f"    whoosh:   rank {w['rank'] or '>10'}, tier {w['tier']}, total {w['total']}, first {w['first']!r}"
              + (f", did-you-mean {w['suggestion']!r}" if w["suggestion"] else ""))
        if "fts5" in r:
            print(f"    fts5:     rank {r['fts5']['rank'] or '>10'}"
                  + (f", span in {r['span_articles']} article(s)" if "span_articles" in r else ""))
    print(f"\n{load_note()} (end)")

    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({
            "date": datetime.now().astimezone().isoformat(timespec="seconds"), "seed": args.seed,
            "per_kind": args.per_kind, "index_dir": str(args.index_dir), "articles": n_docs,
            "unique_title_articles": len(unique), "results": records,
        }, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"raw results: {args.json_out}")


if __name__ == "__main__":
    main()
