"""A search: validate the request, run the query plan tier by tier, rank, page, facet, suggest.

This module is the loop; the parts are ``index.plan`` (the query of each tier, the filters),
``index.ranking`` (the order of the matches), ``index.scoring`` (BM25F from postings),
``index.spelling`` (typo corrections, "did you mean") and ``index.docsets`` (match sets). Each step
of the plan runs only when the ones before it matched nothing, and the result says which tier
answered (``SearchResult.tier``, an ``index.tiers.Tier``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from whoosh import query as Q
from whoosh.searching import Searcher

from index.api import (
    MAX_PER_PAGE,
    MAX_RESULT_DEPTH,
    SORTS,
    FacetValue,
    Hit,
    SearchError,
    SearchRequest,
    SearchResult,
)
from index.article import Article
from index.docsets import as_array
from index.passages import contiguous_matches, holding
from index.plan import Context, Planner, Step, build_filter
from index.query import Alternative, parse
from index.ranking import rank
from index.snippets import highlight, snippet
from index.tiers import Tier

DocSet = frozenset[int] | set[int]

WEAK_TOTAL = 3  # fewer full matches than this: offer a "did you mean"
CHECK_RANKED = 10  # best-ranked articles beyond the page also checked for a copied passage


def validate(request: SearchRequest) -> None:
    if request.sort not in SORTS:
        raise SearchError("bad_sort", f"unknown sort {request.sort!r}; use one of: {', '.join(SORTS)}")
    if not 1 <= request.per_page <= MAX_PER_PAGE:
        raise SearchError("bad_per_page", f"per_page must be between 1 and {MAX_PER_PAGE}")
    if request.page < 1:
        raise SearchError("bad_page", "page must be 1 or more")
    if request.page * request.per_page > MAX_RESULT_DEPTH:
        raise SearchError(
            "page_too_deep", f"only the first {MAX_RESULT_DEPTH:,} results can be paged through; refine the query"
        )
    if request.date_from and request.date_to and request.date_from > request.date_to:
        raise SearchError("bad_date_range", "'from' is after 'to'")


def search(ctx: Context, request: SearchRequest) -> SearchResult:
    validate(request)
    parsed = parse(request.q)
    planner = Planner(ctx, parsed)
    filt = build_filter(request, parsed, ctx.labels)
    sort = "newest" if parsed.empty and request.sort == "relevance" else request.sort
    allowed = ctx.docsets.evaluate(filt) if filt is not None else None
    tier, q, docs = first_match(ctx, planner, allowed)
    passage = planner.passage()  # the query's syllables when it may be a copied passage
    contiguous, checked, complete = _passage(ctx, passage, allowed)
    if contiguous:
        # Every syllable is there, in one run: never a fuzzy or partial answer, and those
        # articles are part of the answer whichever tier matched (index.passages says why).
        if tier not in (Tier.ADJACENT, Tier.SYLLABLES):
            # Ranked as the syllables the reader typed, without typo corrections (there is no typo).
            tier, q = Tier.SYLLABLES, planner.query(Step(Tier.SYLLABLES), corrections=False)
        docs = set(docs) | contiguous
    total = len(docs)
    hits: list[Hit] = []
    facets: dict[str, list[FacetValue]] = {"category": [], "year": [], "month": []}
    if total and q is not None:
        need = request.page * request.per_page
        # Deep enough to hold every article found to hold the run, and those to be checked.
        depth = need + len(contiguous) + (CHECK_RANKED if not complete else 0)
        ranked = rank(ctx, planner, tier, q, docs, sort, depth, request.recency_boost)
        if passage is not None and sort == "relevance" and (contiguous or not complete):
            if not complete:  # the best-ranked articles may hold the run without having been checked
                top = [d for _, d in ranked[:need + CHECK_RANKED] if d not in checked]
                contiguous |= holding(ctx.searcher, passage, top)
            ranked = _contiguous_first(ranked, contiguous)[:need]
        page = [(score, _article(ctx.searcher, d)) for score, d in ranked[need - request.per_page : need]]
        terms, pairs = planner.highlight_terms(tier)
        for score, article in page:
            hits.append(Hit(
                article=article, score=float(score),
                title_spans=highlight(article.title, terms, pairs) if request.highlight_titles else [],
                snippet=snippet(article.body, terms, pairs) if request.snippets else [],
            ))
        if request.facets:
            facets = _facet_values(ctx, docs)
    suggestion = None
    # A query found as one run in an article is spelt as that article spells it: no "did you mean"
    # (which, for the few articles a long passage finds, would try hundreds of corrections).
    weak = not contiguous and (tier in (Tier.FUZZY, Tier.PARTIAL, Tier.NONE) or total < WEAK_TOTAL)
    if request.spelling_suggestion and not parsed.empty and weak:
        full_matches = total if tier in (Tier.ADJACENT, Tier.SYLLABLES) else 0
        suggestion = _did_you_mean(ctx, planner, full_matches, allowed)
    return SearchResult(request=request, query=parsed.text, total=total, tier=tier, hits=hits, facets=facets,
                        suggestion=suggestion, notes=parsed.notes, partial=tier is Tier.PARTIAL)


def first_match(ctx: Context, planner: Planner, allowed: DocSet | None) -> tuple[Tier, Q.Query | None, DocSet]:
    """The tier, query and match set (within ``allowed``) of the first step of the plan that
    matches anything; ``Tier.NONE`` when none does. A query already tried is not run again (a
    step can build the same query as the one before it)."""
    tried: set[str] = set()
    for step in planner.steps():
        candidate = planner.query(step)
        if candidate is None or repr(candidate) in tried:
            continue
        tried.add(repr(candidate))
        matched = _within(ctx.docsets.evaluate(candidate), allowed)
        if not matched:
            continue
        tier = step.tier
        if tier is Tier.SYLLABLES:
            # If only the typo corrections this tier adds match, the answer is a fuzzy one.
            plain = planner.query(step, corrections=False)
            if not (plain is not None and _within(ctx.docsets.evaluate(plain), allowed)):
                tier = Tier.FUZZY
        return tier, candidate, matched
    return Tier.NONE, None, frozenset()


def _passage(ctx: Context, passage: list[str] | None,
             allowed: DocSet | None) -> tuple[set[int], set[int], bool]:
    """The articles holding ``passage`` (the query's syllables) as one run, if it may be one, the
    articles checked, and whether they were every article that can hold it."""
    if passage is None:
        return set(), set(), True
    return contiguous_matches(ctx.searcher, ctx.docsets, passage, allowed)


def _contiguous_first(ranked: list[tuple[float, int]], contiguous: set[int]) -> list[tuple[float, int]]:
    """The articles holding the whole passage first (in the order ranking gave them), then the rest."""
    first = [r for r in ranked if r[1] in contiguous]
    seen = {d for _, d in first}
    first += [(0.0, d) for d in sorted(contiguous - seen)]
    return first + [r for r in ranked if r[1] not in contiguous]


def _within(docs: DocSet, allowed: DocSet | None) -> DocSet:
    return docs & allowed if allowed is not None else docs


def _did_you_mean(ctx: Context, planner: Planner, total: int, allowed: DocSet | None) -> str | None:
    """``Speller.did_you_mean`` over this index, within the request's filters."""

    def matching(alt: Alternative) -> tuple[int, Callable[[], dict[str, Any]]]:
        docs = _within(ctx.docsets.evaluate(planner.adjacent_or_anywhere(alt)), allowed)
        # Spelt as the newest of them spells it (as the cluster engine does: its default order).
        keys = ctx.docsets.published_keys()
        return len(docs), lambda: _stored(ctx.searcher, max(docs, key=lambda d: (keys[d], -d)))

    return planner.speller.did_you_mean(planner.parsed.syllables(), total, matching)


def _stored(searcher: Searcher, docnum: int) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(searcher.stored_fields(docnum)["doc"])
    return document


def _article(searcher: Searcher, docnum: int) -> Article:
    return Article.from_dict(_stored(searcher, docnum))


def _facet_values(ctx: Context, docs: DocSet) -> dict[str, list[FacetValue]]:
    """Counts over the whole match set, from each document's cached value (index.docsets)."""
    out: dict[str, list[FacetValue]] = {}
    matches = as_array(docs)  # once for the three facets
    counts = ctx.docsets.count_array("category_slug", matches)
    out["category"] = sorted((FacetValue(ctx.labels.get(slug, slug), slug, n) for slug, n in counts.items()),
                             key=lambda f: (-f.count, f.slug))
    for name in ("year", "month"):
        counts = ctx.docsets.count_array(name, matches)
        out[name] = sorted((FacetValue(k, k, n) for k, n in counts.items()), key=lambda f: f.value)
    return out


__all__ = ["search", "Context"]
