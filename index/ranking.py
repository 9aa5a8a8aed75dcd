"""Ranking: the first ``need`` matches of a search in order, by relevance, date or views.

Relevance is BM25F over the fields with the plan's boosts (``index.plan``; the formula is
``index.scoring``): titles above bodies, an exact-diacritics match above a folded-only one,
adjacent query pairs above scattered syllables. Ties go to the newest article, then the lowest
document number. An optional recency boost multiplies the score by a half-life decay on age (off by
default). Scores are compared rounded to 6 decimals so that float noise in a sum never reorders
articles that score the same.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection
from datetime import UTC, datetime

import numpy as np
from whoosh import query as Q

from index.api import MAX_RESULT_DEPTH
from index.docsets import title_only
from index.plan import Context, Planner
from index.scoring import Scores, bm25_scores, scoring_terms
from index.tiers import Tier

DocSet = frozenset[int] | set[int]

RECENCY_HALF_LIFE_DAYS = 365.0
RECENCY_FLOOR = 0.1
# Above this many matches, relevance is ranked over the articles whose title alone matches first
# (see index.docsets.title_only); scoring every match of a common syllable is what makes Whoosh slow.
BIG_MATCH_SET = 500
# Scoring costs time per candidate; past this many, the candidates are first narrowed (_prefilter).
MAX_SCORED = 3000
RECENCY_POOL = 5  # with the recency boost, the best this many times the page depth are re-ordered by age


def rank(ctx: Context, planner: Planner, tier: Tier, q: Q.Query, docs: DocSet, sort: str, need: int,
         recency: bool) -> list[tuple[float, int]]:
    """(score, docnum) of the first ``need`` of ``docs`` (the matches of ``q``) in order; the score
    is 0 for the sorts other than relevance."""
    if sort != "relevance":
        return [(0.0, d) for d in sorted_docs(ctx, docs, sort, need)]
    limit = need + 50
    if recency:
        limit = max(limit, min(MAX_RESULT_DEPTH, need * RECENCY_POOL))
    candidates = _title_matches_first(ctx, q, docs, limit)
    terms = scoring_terms(q) + scoring_terms(planner.boosters(tier))
    if len(candidates) > MAX_SCORED:
        candidates = _prefilter(ctx, terms, candidates, max(MAX_SCORED, limit))
    scored = bm25_scores(ctx.searcher, terms, candidates, ctx.docsets, count_matched=tier is Tier.PARTIAL)
    if tier is Tier.PARTIAL:
        scored = _coordinated(scored, q)
    top, scores = _top(ctx, scored, limit)
    if recency:
        return _recency_ordered(ctx, scores, top)[:need]
    return [(scores[d], d) for d in top][:need]


def _title_matches_first(ctx: Context, q: Q.Query, docs: DocSet, limit: int) -> DocSet:
    """The matches whose title alone matches ``q`` when there are many matches and these fill the
    ranked depth (they outrank body-only matches on the title boost); otherwise every match."""
    if len(docs) > BIG_MATCH_SET:
        title_q = title_only(q)
        if title_q is not None:
            in_titles = ctx.docsets.evaluate(title_q) & docs
            if len(in_titles) >= min(limit, len(docs)):
                return in_titles
    return docs


def _prefilter(ctx: Context, terms: list[tuple[str, str, float]], candidates: DocSet, keep: int) -> set[int]:
    """The ``keep`` candidates that match the most of the query's short-posting terms (pairs, title
    and exact terms), by set intersections alone; the rest could not outrank them on BM25 in any
    realistic case, since those terms carry the largest boosts and idf."""
    counts: dict[int, float] = {}
    for field, text, boost in terms:
        if field.startswith("body_folded"):
            continue  # the long postings every candidate shares
        for d in ctx.docsets.term(field, text) & candidates:
            counts[d] = counts.get(d, 0.0) + boost
    ranked = heapq.nlargest(keep, counts, key=counts.__getitem__)
    if len(ranked) < keep:
        rest = (d for d in candidates if d not in counts)
        ranked += list(itertools.islice(rest, keep - len(ranked)))
    return set(ranked)


def _coordinated(scored: Scores, q: Q.Query) -> Scores:
    """Partial matches: most syllables first, by a coordination factor on the share of the query's
    texts each document matched."""
    wanted = max(1, len({t for f, t, b in scoring_terms(q)}))
    assert scored.matched is not None
    return Scores(scored.ids, scored.values * (scored.matched / wanted) ** 2, scored.matched)


# Python's round(x, 6) moves a score by at most half of 1e-6: candidates this far below the
# limit-th raw score cannot reach its rounded value.
ROUNDING_SLACK = 1e-6


def _top(ctx: Context, scored: Scores, limit: int) -> tuple[list[int], dict[int, float]]:
    """The best ``limit`` candidates (rounded score, then newest, then lowest document number),
    and the scores of those considered.

    Only candidates at or above the limit-th score can be in the top: they are picked from the
    score array by a partition (C), and only they are rounded and ordered in Python, ties
    included, exactly as before."""
    ids, values = scored.ids, scored.values
    threshold = None
    if len(ids) > limit:
        kth = float(np.partition(values, len(values) - limit)[len(values) - limit])
        near = values >= kth - ROUNDING_SLACK
        ids, values = ids[near], values[near]
        threshold = round(kth, 6)
    scores = dict(zip(ids.tolist(), values.tolist()))
    rounded = {d: round(sc, 6) for d, sc in scores.items()}
    pool: Collection[int] = rounded
    if threshold is not None:
        pool = [d for d, sc in rounded.items() if sc >= threshold]
    keys = ctx.docsets.published_keys()
    return heapq.nsmallest(limit, pool, key=lambda d: (-rounded[d], -keys[d], d)), scores


def _recency_ordered(ctx: Context, scores: dict[int, float], top: list[int]) -> list[tuple[float, int]]:
    """``top`` re-ordered by score times ``recency_factor``, ties as in ``_top``."""
    published = ctx.searcher.reader().column_reader("published")
    keys = ctx.docsets.published_keys()
    now = datetime.now(UTC)
    boosted = [(scores.get(d, 0.0) * recency_factor(published[d].replace(tzinfo=UTC), now), d)
               for d in top]
    boosted.sort(key=lambda sd: (-round(sd[0], 6), -keys[sd[1]], sd[1]))
    return boosted


def recency_factor(published: datetime, now: datetime | None = None) -> float:
    """Halves the score every RECENCY_HALF_LIFE_DAYS of age (never below RECENCY_FLOOR)."""
    now = now or datetime.now(UTC)
    age_days = max(0.0, (now - published).total_seconds() / 86400)
    return max(RECENCY_FLOOR, math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS))


def sorted_docs(ctx: Context, docs: DocSet, sort: str, need: int) -> list[int]:
    """The first ``need`` of ``docs`` by date or views, reading per-document values only for a few.

    By date: walk the cached per-month document sets from the newest (or oldest) month, and read the
    exact timestamps only of the documents in the months needed. By views: one column read per match.
    """
    reader = ctx.searcher.reader()
    published = ctx.docsets.published_keys()
    if sort == "views":
        views = reader.column_reader("views")
        return heapq.nsmallest(need, docs, key=lambda d: (-(views[d] or 0), -published[d], d))
    months = ctx.docsets.field_values("month")
    newest = sort == "newest"
    candidates: list[int] = []
    for month in sorted(months, reverse=newest):
        candidates.extend(docs & months[month] if len(docs) > len(months[month]) else months[month] & docs)
        if len(candidates) >= need:
            break
    if len(candidates) < need:  # documents without a month value (none are written that way)
        candidates = list(docs)
    key = (lambda d: (-published[d], d)) if newest else (lambda d: (published[d], d))
    return heapq.nsmallest(need, candidates, key=key)
