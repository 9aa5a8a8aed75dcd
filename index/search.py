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
from dataclasses import dataclass
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
from index.passages import contiguous_matches, holding
from index.phrases import (
    CHECK_ALL,
    MAX_PAGE_CHECKS,
    MAX_SAMPLES,
    StoredArticle,
    estimate,
    estimate_note,
    estimated_facets,
)
from index.plan import Context, Planner, Step, build_filter
from index.query import Alternative, parse
from index.ranking import rank, sorted_docs
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
    tier, q, docs, phrases = first_match(ctx, planner, allowed)
    estimated = phrases is not None and not phrases.complete
    if phrases is not None:
        docs = set(docs) - phrases.failing  # complete: the answer; else, the sample's failures out
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
    notes = list(parsed.notes)
    if total and q is not None:
        need = request.page * request.per_page
        # Deep enough to hold every article found to hold the run, and those to be checked.
        depth = need + len(contiguous) + (CHECK_RANKED if not complete else 0)
        if estimated:
            assert phrases is not None
            # The total and the counts from the sample alone (the two engines take the same one);
            # the ranked page is then checked article by article.
            total = _estimate(len(docs), phrases)
            facets = _estimated_facets(ctx, docs, phrases) if request.facets else facets
            notes.append(estimate_note(total, phrases.sampled, len(phrases.unsure)))
            ranked = _checked_ranking(ctx, planner, tier, q, docs, phrases, sort, depth, request.recency_boost)
        else:
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
        if request.facets and not estimated:
            facets = _facet_values(ctx, docs)
    suggestion = None
    # A query found as one run in an article is spelt as that article spells it: no "did you mean"
    # (which, for the few articles a long passage finds, would try hundreds of corrections).
    weak = not contiguous and (tier in (Tier.FUZZY, Tier.PARTIAL, Tier.NONE) or total < WEAK_TOTAL)
    if request.spelling_suggestion and not parsed.empty and weak:
        full_matches = total if tier in (Tier.ADJACENT, Tier.SYLLABLES) else 0
        suggestion = _did_you_mean(ctx, planner, full_matches, allowed)
    ctx.docsets.forget_unions()  # their arrays served this search's facets and scores
    return SearchResult(request=request, query=parsed.text, total=total, tier=tier, hits=hits, facets=facets,
                        suggestion=suggestion, notes=notes, partial=tier is Tier.PARTIAL)


def _checked_ranking(ctx: Context, planner: Planner, tier: Tier, q: Q.Query, docs: DocSet, phrases: Checked,
                     sort: str, depth: int, recency: bool) -> list[tuple[float, int]]:
    """The first ``depth`` of ``docs`` in order, those not yet checked checked one by one (at
    most ``MAX_PAGE_CHECKS``), those failing left out: deeper rankings until the page is full."""
    unknown = phrases.unknown()
    checks = 0
    want = depth
    while True:
        ranked = rank(ctx, planner, tier, q, set(docs) - phrases.failing, sort, want, recency)
        kept = []
        for score, d in ranked:
            if d in unknown and d not in phrases.holding and d not in phrases.failing:
                if checks >= MAX_PAGE_CHECKS:
                    break
                checks += 1
                phrases.check(d)
            if d not in phrases.failing:
                kept.append((score, d))
        if len(kept) >= depth or len(ranked) < want or checks >= MAX_PAGE_CHECKS:
            return kept[:depth]
        want *= 2


def _estimate(count: int, phrases: Checked) -> int:
    """``count`` articles, of which those not checked hold the phrase at the sample's share."""
    return estimate(count, len(phrases.unknown()), phrases.share)


def _estimated_facets(ctx: Context, docs: DocSet, phrases: Checked) -> dict[str, list[FacetValue]]:
    """``_facet_values`` of ``docs``, the articles not checked counted at the sample's share
    (those known either way counted as they are)."""
    unknown = phrases.unknown() & set(docs)
    return estimated_facets(_facet_values(ctx, set(docs)), _facet_values(ctx, unknown), phrases.share)


def first_match(ctx: Context, planner: Planner, allowed: DocSet | None
                ) -> tuple[Tier, Q.Query | None, DocSet, Checked | None]:
    """The tier, query and match set (within ``allowed``) of the first step of the plan that
    matches anything, and what the phrase checks found in it (``index.phrases``; None: the query
    has none); ``Tier.NONE`` when none does. A query already tried is not run again (a step can
    build the same query as the one before it)."""
    tried: set[str] = set()
    verdicts: dict[int, bool] = {}  # an article's phrase check, whichever step asks again
    for step in planner.steps():
        candidate = planner.query(step)
        if candidate is None or repr(candidate) in tried:
            continue
        tried.add(repr(candidate))
        matched = _within(ctx.docsets.evaluate(candidate), allowed)
        if not matched:
            continue
        checked = _check_phrases(ctx, planner, step.tier, matched, verdicts)
        if checked is not None and not checked.matches_any(matched):
            continue
        tier = step.tier
        if tier is Tier.SYLLABLES:
            # If only the typo corrections this tier adds match, the answer is a fuzzy one.
            plain = planner.query(step, corrections=False)
            if not (plain is not None and _within(ctx.docsets.evaluate(plain), allowed)):
                tier = Tier.FUZZY
        return tier, candidate, matched, checked
    return Tier.NONE, None, frozenset(), None


@dataclass(slots=True)
class Checked:
    """What the phrase checks (``index.phrases``) found among a step's matches: those that needed
    a check (``unsure``), and of them those checked, holding or failing. Unless every one was
    checked (``complete``), the newest ``CHECK_ALL`` were, a sample whose ``share`` estimates the rest."""

    unsure: DocSet
    holding: set[int]
    failing: set[int]
    complete: bool
    share: float
    sampled: int
    verdict: Callable[[int], bool]

    def matches_any(self, matched: DocSet) -> bool:
        return bool(self.holding) or len(matched) > len(self.unsure)

    def unknown(self) -> set[int]:
        """Those not checked (yet)."""
        return set(self.unsure) - self.holding - self.failing

    def check(self, docnum: int) -> bool:
        ok = self.verdict(docnum)
        (self.holding if ok else self.failing).add(docnum)
        return ok


def _check_phrases(ctx: Context, planner: Planner, tier: Tier, matched: DocSet,
                   verdicts: dict[int, bool]) -> Checked | None:
    """The phrase checks of ``matched`` (None when the query has none): every article that needs
    one when they are ``CHECK_ALL`` at most, else the newest ``CHECK_ALL``."""
    checks = planner.checks
    if not checks:
        return None
    docsets = ctx.docsets
    sure: DocSet = frozenset()  # partial tier: matched by units that need no check
    rest = planner.partial_query(checked=False) if tier is Tier.PARTIAL and checks.required else None
    if rest is not None:
        sure = docsets.evaluate(rest) & matched
    unsure: DocSet = set(matched) - sure if checks.required else frozenset()
    holders = planner.excluded_holders()
    if holders is not None:
        unsure = set(unsure) | (docsets.evaluate(holders) & matched)
    required = "any" if tier is Tier.PARTIAL else "all"

    def verdict(docnum: int) -> bool:
        found = verdicts.get(docnum)
        if found is None:
            texts = StoredArticle(ctx.searcher.stored_fields(docnum)["doc"])
            found = checks.verdict(texts, "none" if docnum in sure else required)
            verdicts[docnum] = found
        return found

    # The newest CHECK_ALL; while none of them holds a phrase, the next CHECK_ALL (a phrase whose
    # pairs are common but which is itself rare, "độ cổ đông": 417 candidates, one holding it).
    # (Not in the partial tier, where the articles matched otherwise are told apart in the first ones alone.)
    most = CHECK_ALL if rest is not None else CHECK_ALL * MAX_SAMPLES
    ordered = sorted_docs(ctx, unsure, "newest", most) if len(unsure) > CHECK_ALL else list(unsure)
    checked = Checked(unsure, set(), set(), False, 1.0, 0, verdict)
    while checked.sampled < len(ordered) and (not checked.holding or checked.sampled < CHECK_ALL):
        for docnum in ordered[checked.sampled : checked.sampled + CHECK_ALL]:
            checked.check(docnum)
        checked.sampled = min(len(ordered), checked.sampled + CHECK_ALL)
    checked.complete = checked.sampled >= len(unsure)
    checked.share = len(checked.holding) / checked.sampled if checked.sampled else 1.0
    return checked


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
    matches = ctx.docsets.array_of(docs)  # once for the three facets
    counts = ctx.docsets.count_array("category_slug", matches)
    out["category"] = sorted((FacetValue(ctx.labels.get(slug, slug), slug, n) for slug, n in counts.items()),
                             key=lambda f: (-f.count, f.slug))
    for name in ("year", "month"):
        counts = ctx.docsets.count_array(name, matches)
        out[name] = sorted((FacetValue(k, k, n) for k, n in counts.items()), key=lambda f: f.value)
    return out


__all__ = ["search", "Context"]
