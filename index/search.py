"""The query plan: matching in tiers, ranking, filters, facets, sorting, did-you-mean.

Speed comes from the plan, not from tuning (measured on the full corpus: requiring every folded
syllable over title|body took p50 330 ms, p95 1.5 s, because common syllables have postings in most
articles; requiring adjacent pairs in the pair fields took p50 12 ms). So we match on short
postings first and widen only when a tier finds nothing:

1. ``adjacent``: every unit required; a multi-syllable unit as all its adjacent pairs
   (``title_pair|body_pair``), a one-syllable unit as its folded syllable.
2. ``syllables``: every syllable required, anywhere. First the pairs that exist in the index are
   still required (so "thu tuong dak nong" keeps "thu tuong" and "dak nong" cheap), then, if that
   finds nothing, every syllable alone.
3. ``fuzzy``: one edit (insert, delete, substitute, transpose) on folded syllables of 4+ letters
   that the index does not know, e.g. "hoi ngih" -> "hội nghị".
4. ``partial``: nothing matched every syllable: the documents matching the most syllables, flagged.

Quoted phrases stay adjacent in every tier. Ranking is BM25F over the fields with boosts: titles
above bodies, an exact-diacritics match above a folded-only one (only for syllables the reader
typed with marks), adjacent query pairs above scattered syllables. Ties go to the newest article.
An optional recency boost multiplies the score by a half-life decay on age (off by default).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from dataclasses import dataclass
from typing import Callable
from datetime import datetime, time, timedelta, timezone

from whoosh import query as Q
from whoosh import sorting
from whoosh.searching import Searcher

from index.analysis import PAIR_SEP, fold, nfc
from index.api import (
    MAX_PER_PAGE, MAX_RESULT_DEPTH, SORTS, TIER_ADJACENT, TIER_ALL, TIER_FUZZY, TIER_NONE, TIER_PARTIAL,
    TIER_SYLLABLES, FacetValue, Hit, SearchError, SearchRequest, SearchResult,
)
from index.article import VN_TZ, Article, slugify
from index.query import Alternative, ParsedQuery, Unit, parse
from index.docsets import DocSets, title_only
from index.scoring import bm25_scores, scoring_terms
from index.snippets import highlight, snippet

TITLE_BOOST = 3.0
EXACT_TITLE_BOOST = 4.0
EXACT_BODY_BOOST = 1.5
PAIR_BOOST = 1.0
FUZZY_MIN_LEN = 4
FUZZY_MAX_VARIANTS = 6
NEAR_MIN_SYLLABLES = 4
WEAK_PAIR_DF = 20  # an adjacent pair seen this rarely may be a typo (see Planner.pair_corrections)
RECENCY_HALF_LIFE_DAYS = 365.0
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(slots=True)
class Context:
    """What a search needs besides the request: an open searcher and per-generation lookups."""

    searcher: Searcher
    labels: dict[str, str]  # category slug -> label
    docsets: DocSets
    vocabulary: Callable[[], frozenset[str]] | None = None  # folded syllables of the index


# -- building blocks -----------------------------------------------------------------------------


def _syl(s: str, boost: float = 1.0) -> Q.Query:
    return Q.Or([Q.Term("title_folded", s, boost=TITLE_BOOST * boost), Q.Term("body_folded", s, boost=boost)])


def _pair(p: str, boost: float = 1.0) -> Q.Query:
    return Q.Or([Q.Term("title_pair", p, boost=TITLE_BOOST * boost), Q.Term("body_pair", p, boost=boost)])


def _pairs_of(folded: tuple[str, ...]) -> list[str]:
    return [a + PAIR_SEP + b for a, b in zip(folded, folded[1:])]


def _and(parts: list[Q.Query]) -> Q.Query:
    return parts[0] if len(parts) == 1 else Q.And(parts)


def _or(parts: list[Q.Query]) -> Q.Query:
    return parts[0] if len(parts) == 1 else Q.Or(parts)


class Planner:
    """Builds the Whoosh query of each tier for one parsed query (document frequencies cached)."""

    def __init__(self, ctx: Context, parsed: ParsedQuery) -> None:
        self.ctx = ctx
        self.reader = ctx.searcher.reader()
        self.parsed = parsed
        self._df: dict[tuple[str, str], int] = {}
        self._corrections: dict[Alternative, list[Alternative]] = {}

    def known(self, syllable: str) -> bool:
        """Is this folded syllable in the index? (in-memory vocabulary when the engine has one)"""
        if self.ctx.vocabulary is not None:
            return syllable in self.ctx.vocabulary()
        return self.df("folded", syllable) > 0

    def df(self, kind: str, term: str) -> int:
        key = (kind, term)
        if key not in self._df:
            r = self.reader
            self._df[key] = r.doc_frequency(f"title_{kind}", term) + r.doc_frequency(f"body_{kind}", term)
        return self._df[key]

    # Alternatives per mode
    def strict(self, alt: Alternative) -> Q.Query:
        if len(alt.folded) == 1:
            return _syl(alt.folded[0])
        return _and([_pair(p) for p in _pairs_of(alt.folded)])

    def strict_possible(self, alt: Alternative) -> bool:
        if len(alt.folded) == 1:
            return self.df("folded", alt.folded[0]) > 0
        return all(self.df("pair", p) > 0 for p in _pairs_of(alt.folded))

    def relaxed(self, alt: Alternative) -> Q.Query:
        """Pairs known to the index stay required; syllables they do not cover are required alone."""
        known = [i for i, p in enumerate(_pairs_of(alt.folded)) if self.df("pair", p) > 0]
        covered = {j for i in known for j in (i, i + 1)}
        parts = [_pair(alt.folded[i] + PAIR_SEP + alt.folded[i + 1]) for i in known]
        parts += [_syl(s) for j, s in enumerate(alt.folded) if j not in covered]
        return _and(parts)

    def loose(self, alt: Alternative) -> Q.Query:
        return _and([_syl(s) for s in alt.folded])

    def fuzzy(self, alt: Alternative) -> Q.Query | None:
        parts = []
        changed = False
        for s in alt.folded:
            variants = self.variants(s) if self.df("folded", s) == 0 else []
            if variants:
                changed = True
                parts.append(_or([_syl(v) for v in variants]))
            else:
                parts.append(_syl(s))
        return _and(parts) if changed else None

    def near(self, alt: Alternative) -> Q.Query | None:
        """Every adjacent pair but those of one syllable: a long unit (4+ syllables) with one wrong
        syllable that is still a real one ("Phan Văn Kha" for "Phan Văn Khải") finds its article."""
        n = len(alt.folded)
        if n < NEAR_MIN_SYLLABLES:
            return None
        pairs = _pairs_of(alt.folded)
        options = []
        for j in range(n):
            kept = [p for i, p in enumerate(pairs) if i != j and i != j - 1 and self.df("pair", p) > 0]
            if len(kept) >= n - 3:
                options.append(_and([_pair(p) for p in kept]))
        return _or(options) if options else None

    def pair_corrections(self, alt: Alternative) -> list[Alternative]:
        """The alternative with one edit on each syllable next to an adjacent pair the index does
        not know, chosen so that every pair becomes known (best by pair frequency)."""
        cached = self._corrections.get(alt)
        if cached is not None:
            return cached
        folded = list(alt.folded)
        n = len(folded)
        pair_df = [self.df("pair", folded[i] + PAIR_SEP + folded[i + 1]) for i in range(n - 1)]
        # Pairs the index does not know, or knows only a few times (a typo can make a real but rare
        # pair: "không uoc" for "không được").
        missing = [i for i, df in enumerate(pair_df) if df <= WEAK_PAIR_DF]
        corrected = list(folded)
        for j in sorted({k for i in missing for k in (i, i + 1)}):
            s = folded[j]
            if len(s) < 2 or not s.isalnum() or (j > 0 and corrected[j - 1] != folded[j - 1]):
                continue
            best, best_gain = None, 0
            for v in one_edit(s):
                if not self.known(v):
                    continue
                gain = 0
                neighbours = ([(corrected[j - 1], v, pair_df[j - 1])] if j > 0 else []) + (
                    [(v, folded[j + 1], pair_df[j])] if j < n - 1 else [])
                for a, b, old in neighbours:
                    df = self.df("pair", a + PAIR_SEP + b)
                    if df == 0 or (old and df < max(5, 10 * old)):
                        break
                    gain += df
                else:
                    if gain > best_gain:
                        best, best_gain = v, gain
            if best is not None:
                corrected[j] = best
        result = []
        if corrected != folded and all(self.df("pair", a + PAIR_SEP + b) > 0 for a, b in zip(corrected, corrected[1:])):
            result = [Alternative(tuple(corrected), tuple(corrected), tuple(False for _ in corrected))]
        self._corrections[alt] = result
        return result

    def variants(self, s: str) -> list[str]:
        """Folded syllables one edit away from ``s`` that the index knows, most frequent first."""
        if len(s) < FUZZY_MIN_LEN or not s.isalnum():
            return []
        found = [(self.df("folded", v), v) for v in one_edit(s) if self.known(v)]
        found = [f for f in found if f[0] > 0]
        found.sort(key=lambda f: (-f[0], f[1]))
        return [v for _, v in found[:FUZZY_MAX_VARIANTS]]

    def alternatives(self, unit: Unit) -> list[Alternative]:
        """The unit's alternatives, plus its fallbacks (Telex reading) when none of them can match."""
        if unit.fallbacks and not any(self.strict_possible(a) for a in unit.alternatives):
            return unit.alternatives + unit.fallbacks
        return unit.alternatives

    # Whole queries per tier
    def tier_query(self, mode: str, corrections: bool = True) -> Q.Query | None:
        clauses = []
        any_fuzzy = False
        for clause in self.parsed.clauses:
            options = []
            for unit in clause.units:
                for alt in self.alternatives(unit):
                    if unit.phrase or mode == "strict":
                        if self.strict_possible(alt):
                            options.append(self.strict(alt))
                    elif mode in ("relaxed", "loose"):
                        options.append(self.relaxed(alt) if mode == "relaxed" else self.loose(alt))
                        # A typo that happens to be a real syllable ("không uoc làm" for "không được
                        # làm") breaks adjacency without leaving an unknown syllable: also accept the
                        # one-edit correction that makes every pair known again.
                        if corrections:
                            options += [self.strict(c) for c in self.pair_corrections(alt)]
                            near = self.near(alt)
                            if near is not None:
                                options.append(near)
                    elif mode == "fuzzy":
                        q = self.fuzzy(alt)
                        if q is not None:
                            any_fuzzy = True
                            options.append(q)
                        else:
                            options.append(self.loose(alt))
            if not options:
                return None
            clauses.append(_or(options))
        if mode == "fuzzy" and not any_fuzzy:
            return None
        return self._exclude(_and(clauses))

    def partial_query(self) -> Q.Query | None:
        """Documents matching any unit: plain syllables alone, quoted phrases still whole."""
        parts: list[Q.Query] = []
        seen: set[str] = set()
        for clause in self.parsed.clauses:
            for unit in clause.units:
                if unit.phrase:
                    parts += [self.strict(a) for a in unit.alternatives if self.strict_possible(a)]
                    continue
                for s in unit.main.folded:
                    if s not in seen:
                        seen.add(s)
                        parts.append(_syl(s))
        if not parts:
            return None
        return self._exclude(Q.Or(parts, scale=0.95))

    def _exclude(self, q: Q.Query) -> Q.Query:
        if not self.parsed.excluded:
            return q
        negatives = [self.strict(alt) for unit in self.parsed.excluded for alt in unit.alternatives]
        return Q.AndNot(q, _or(negatives))

    def boosters(self, tier: str = TIER_SYLLABLES) -> Q.Query | None:
        """Optional clauses that only rank: exact diacritics typed by the reader, adjacent pairs.

        In the adjacent tier the pairs inside a unit are already required, so only the pairs that
        join two units ("công an" + "tp hcm" -> "an tp") are added: fewer matchers, same order.
        """
        parts: list[Q.Query] = []
        sequence: list[str] = []
        required: set[str] = set()
        for clause in self.parsed.clauses:
            for unit in clause.units:
                main = unit.main
                for alt in self.alternatives(unit)[len(unit.alternatives):]:
                    parts += [Q.Term("body_exact", e, boost=EXACT_BODY_BOOST) for e in alt.exact]
                for folded, exact, marked in zip(main.folded, main.exact, main.marked):
                    if marked:
                        parts.append(Q.Term("title_exact", exact, boost=EXACT_TITLE_BOOST))
                        parts.append(Q.Term("body_exact", exact, boost=EXACT_BODY_BOOST))
                sequence.extend(main.folded)
                if tier in (TIER_SYLLABLES, TIER_FUZZY) and not unit.phrase:
                    for corrected in self.pair_corrections(main):
                        for p in _pairs_of(corrected.folded):
                            parts.append(_pair(p, PAIR_BOOST))
                if tier == TIER_ADJACENT:
                    required.update(_pairs_of(main.folded))
        for p in dict.fromkeys(_pairs_of(tuple(sequence))):
            if p not in required and self.df("pair", p) > 0:
                parts.append(_pair(p, PAIR_BOOST))
        return Q.Or(parts) if parts else None

    def highlight_terms(self, tier: str) -> tuple[set[str], set[str]]:
        """(syllables marked alone, pairs marked together). Multi-syllable units that matched as
        pairs are marked only where their syllables stand together, not each "ban" or "dân"."""
        terms: set[str] = set()
        pairs: set[str] = set()
        scattered = tier in (TIER_SYLLABLES, TIER_FUZZY, TIER_PARTIAL)
        for clause in self.parsed.clauses:
            for unit in clause.units:
                alts = list(self.alternatives(unit))
                if tier in (TIER_SYLLABLES, TIER_FUZZY) and not unit.phrase:
                    alts += self.pair_corrections(unit.main)
                for alt in alts:
                    pairs.update(_pairs_of(alt.folded))
                    if len(alt.folded) == 1 or (scattered and not unit.phrase and alt is unit.main):
                        terms.update(alt.folded)
                    if tier == TIER_FUZZY:
                        for s in alt.folded:
                            if self.df("folded", s) == 0:
                                variants = self.variants(s)
                                terms.update(variants)
                                i = alt.folded.index(s)
                                for v in variants:
                                    seq = alt.folded[:i] + (v,) + alt.folded[i + 1:]
                                    pairs.update(_pairs_of(seq))
        return terms, pairs


def one_edit(s: str) -> set[str]:
    """Every string one insertion, deletion, substitution or transposition away from ``s``."""
    splits = [(s[:i], s[i:]) for i in range(len(s) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in _ALPHABET}
    out |= {a + c + b for a, b in splits for c in _ALPHABET}
    out.discard(s)
    return out


# -- the search ----------------------------------------------------------------------------------


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


def _vn_day_start_utc(d) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=VN_TZ).astimezone(timezone.utc).replace(tzinfo=None)


def resolve_category(value: str, labels: dict[str, str]) -> str:
    """A slug or a label ("Thể thao", "the thao") -> the slug used in the index."""
    value = value.strip()
    if value in labels:
        return value
    slug = slugify(value)
    return slug


def _text(value: str) -> str:
    """Lone surrogates (which no index term can hold) replaced, so they simply match nothing."""
    return value.encode("utf-8", "replace").decode("utf-8")


def build_filter(request: SearchRequest, parsed: ParsedQuery, labels: dict[str, str]) -> Q.Query | None:
    from index.builder import source_key

    parts: list[Q.Query] = []
    categories = [resolve_category(_text(c), labels) for c in [*request.categories, *parsed.categories] if c.strip()]
    if categories:
        parts.append(_or([Q.Term("category_slug", c) for c in dict.fromkeys(categories)]))
    sources = [source_key(_text(s)) for s in [*request.sources, *parsed.sources] if s.strip()]
    if sources:
        parts.append(_or([Q.Term("source_key", s) for s in dict.fromkeys(sources)]))
    if request.date_from or request.date_to:
        start = _vn_day_start_utc(request.date_from) if request.date_from else None
        end = (_vn_day_start_utc(request.date_to + timedelta(days=1)) - timedelta(microseconds=1)
               if request.date_to else None)
        parts.append(Q.DateRange("published", start, end))
    if not parts:
        return None
    return _and(parts)


def _sortedby(sort: str):
    if sort == "newest":
        return sorting.FieldFacet("published", reverse=True)
    if sort == "oldest":
        return sorting.FieldFacet("published")
    if sort == "views":
        return sorting.MultiFacet([sorting.FieldFacet("views", reverse=True),
                                   sorting.FieldFacet("published", reverse=True)])
    return None


# Above this many matches, relevance is ranked over the articles whose title alone matches first
# (see index.docsets.title_only); scoring every match of a common syllable is what makes Whoosh slow.
BIG_MATCH_SET = 500


def search(ctx: Context, request: SearchRequest) -> SearchResult:
    validate(request)
    parsed = parse(request.q)
    planner = Planner(ctx, parsed)
    filt = build_filter(request, parsed, ctx.labels)
    sort = request.sort
    if parsed.empty:
        tiers: list[tuple[str, object, object]] = [(TIER_ALL, Q.Every(), None)]
        if sort == "relevance":
            sort = "newest"
    else:
        # (tier, query, the same query without typo corrections: if only the corrections match,
        # the answer is reported as the fuzzy tier)
        tiers = [(TIER_ADJACENT, lambda: planner.tier_query("strict"), None),
                 (TIER_SYLLABLES, lambda: planner.tier_query("relaxed"),
                  lambda: planner.tier_query("relaxed", corrections=False)),
                 (TIER_SYLLABLES, lambda: planner.tier_query("loose"),
                  lambda: planner.tier_query("loose", corrections=False)),
                 (TIER_FUZZY, lambda: planner.tier_query("fuzzy"), None),
                 (TIER_PARTIAL, planner.partial_query, None)]
    allowed = ctx.docsets.evaluate(filt) if filt is not None else None
    tier, q, docs = TIER_NONE, None, frozenset()
    tried: set[str] = set()
    for name, make, make_plain in tiers:
        candidate = make() if callable(make) else make
        if candidate is None or repr(candidate) in tried:
            continue
        tried.add(repr(candidate))
        matched = ctx.docsets.evaluate(candidate)
        if allowed is not None:
            matched = matched & allowed
        if matched:
            if make_plain is not None:
                plain = make_plain()
                plain_docs = ctx.docsets.evaluate(plain) if plain is not None else frozenset()
                if allowed is not None:
                    plain_docs = plain_docs & allowed
                if not plain_docs:
                    name = TIER_FUZZY
            tier, q, docs = name, candidate, matched
            break
    total = len(docs)
    hits: list[Hit] = []
    facets: dict[str, list[FacetValue]] = {"category": [], "year": [], "month": []}
    if total:
        need = request.page * request.per_page
        ranked = _rank(ctx, planner, tier, q, filt, docs, sort, need, request.recency_boost)
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
    weak = tier in (TIER_FUZZY, TIER_PARTIAL, TIER_NONE) or total < 3
    if request.spelling_suggestion and not parsed.empty and weak:
        full_matches = total if tier in (TIER_ADJACENT, TIER_SYLLABLES) else 0
        suggestion = did_you_mean(ctx, planner, full_matches, allowed)
    return SearchResult(request=request, query=parsed.text, total=total, tier=tier, hits=hits, facets=facets,
                        suggestion=suggestion, notes=parsed.notes, partial=tier == TIER_PARTIAL)


# Scoring costs ~0.1 ms a candidate; past this many, the candidates are first narrowed (_prefilter).
MAX_SCORED = 3000


def _prefilter(ctx: Context, terms: list[tuple[str, str, float]], candidates, keep: int) -> set[int]:
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


def _sorted_docs(ctx: Context, docs, sort: str, need: int) -> list[int]:
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


def _article(searcher: Searcher, docnum: int) -> Article:
    return Article.from_dict(json.loads(searcher.stored_fields(docnum)["doc"]))


def _rank(ctx: Context, planner: Planner, tier: str, q: Q.Query, filt: Q.Query | None, docs, sort: str,
          need: int, recency: bool) -> list[tuple[float, int]]:
    """(score, docnum) of the first ``need`` matches in order (score 0 for non-relevance sorts)."""
    searcher = ctx.searcher
    if sort != "relevance":
        return [(0.0, d) for d in _sorted_docs(ctx, docs, sort, need)]
    limit = need + 50
    if recency:
        limit = max(limit, min(MAX_RESULT_DEPTH, need * 5))
    candidates = docs
    if len(docs) > BIG_MATCH_SET:
        title_q = title_only(q)
        if title_q is not None:
            in_titles = ctx.docsets.evaluate(title_q) & docs
            if len(in_titles) >= min(limit, len(docs)):
                candidates = in_titles
    boosters = planner.boosters(tier)
    terms = scoring_terms(q) + scoring_terms(boosters)
    if len(candidates) > MAX_SCORED:
        candidates = _prefilter(ctx, terms, candidates, max(MAX_SCORED, limit))
    scores, matched = bm25_scores(searcher, terms, candidates, ctx.docsets)
    if tier == TIER_PARTIAL:
        # Most syllables first: coordination factor on the share of query texts matched.
        wanted = max(1, len({t for f, t, b in scoring_terms(q)}))
        scores = {d: sc * (matched.get(d, 0) / wanted) ** 2 for d, sc in scores.items()}
    rounded = {d: round(scores.get(d, 0.0), 6) for d in candidates}
    pool = candidates
    if len(candidates) > limit:
        # Only candidates at or above the limit-th score can be in the top; the date (a column
        # read each) is needed only to order those, ties included.
        threshold = heapq.nlargest(limit, rounded.values())[-1]
        pool = [d for d, sc in rounded.items() if sc >= threshold]
    keys = ctx.docsets.published_keys()
    top = heapq.nsmallest(limit, pool, key=lambda d: (-rounded[d], -keys[d], d))
    if recency:
        published = searcher.reader().column_reader("published")
        now = datetime.now(timezone.utc)
        boosted = [(scores.get(d, 0.0) * recency_factor(published[d].replace(tzinfo=timezone.utc), now), d)
                   for d in top]
        boosted.sort(key=lambda sd: (-round(sd[0], 6), -keys[sd[1]], sd[1]))
        ranked_docs = boosted
    else:
        ranked_docs = [(scores.get(d, 0.0), d) for d in top]
    return ranked_docs[:need]
def recency_factor(published: datetime, now: datetime | None = None) -> float:
    """Halves the score every RECENCY_HALF_LIFE_DAYS of age (never below 0.1)."""
    now = now or datetime.now(timezone.utc)
    age_days = max(0.0, (now - published).total_seconds() / 86400)
    return max(0.1, math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS))


def _facet_values(ctx: Context, docs) -> dict[str, list[FacetValue]]:
    """Counts over the whole match set, from cached per-value posting sets (index.docsets)."""
    out: dict[str, list[FacetValue]] = {}
    counts = ctx.docsets.counts("category_slug", docs)
    out["category"] = sorted((FacetValue(ctx.labels.get(slug, slug), slug, n) for slug, n in counts.items()),
                             key=lambda f: (-f.count, f.slug))
    for name in ("year", "month"):
        counts = ctx.docsets.counts(name, docs)
        out[name] = sorted((FacetValue(k, k, n) for k, n in counts.items()), key=lambda f: f.value)
    return out


def did_you_mean(ctx: Context, planner: Planner, total: int, allowed) -> str | None:
    """A one-edit correction of the query's syllables that matches many more articles, spelt with
    the diacritics found in the best matching article ("hoi ngih" -> "hội nghị")."""
    syllables = planner.parsed.syllables()
    if not syllables or len(syllables) > 8:
        return None
    whole = Alternative(tuple(syllables), tuple(syllables), tuple(False for _ in syllables))
    for alt in planner.pair_corrections(whole):
        docs = ctx.docsets.evaluate(planner.strict(alt))
        if allowed is not None:
            docs = docs & allowed
        if len(docs) > max(2, total * 3):
            return _restore_marks(list(alt.folded), json.loads(ctx.searcher.stored_fields(min(docs))["doc"]))
    corrected = []
    changed = False
    for i, s in enumerate(syllables):
        own = planner.df("folded", s)
        options = [s] + [v for v in planner.variants(s) if planner.df("folded", v) >= max(2, 3 * own + 1)]
        if len(options) == 1:
            corrected.append(s)
            continue
        prev = corrected[-1] if corrected else None

        def fitness(v: str) -> tuple[int, int]:
            pair = planner.df("pair", f"{prev}{PAIR_SEP}{v}") if prev else 0
            return (pair, planner.df("folded", v))

        best = max(options, key=fitness)
        changed |= best != s
        corrected.append(best)
    if not changed:
        return None
    alt = Alternative(tuple(corrected), tuple(corrected), tuple(False for _ in corrected))
    q = planner.strict(alt) if planner.strict_possible(alt) else planner.loose(alt)
    docs = ctx.docsets.evaluate(q)
    if allowed is not None:
        docs = docs & allowed
    if len(docs) <= max(2, total * 3):
        return None
    return _restore_marks(corrected, json.loads(ctx.searcher.stored_fields(min(docs))["doc"]))


def _restore_marks(folded: list[str], doc: dict) -> str:
    """Spell the corrected syllables as they appear in an article that contains them."""
    from index.analysis import analyze

    for text in (doc.get("title", ""), doc.get("body", "")[:20000]):
        text = nfc(text)
        tokens = [t for t in analyze(text) if t.end_pos == t.pos]
        n = len(folded)
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            if [t.folded for t in window] == folded and all(
                window[k + 1].pos == window[k].pos + 1 for k in range(n - 1)
            ):
                return " ".join(t.exact for t in window)
    return " ".join(folded)


__all__ = ["search", "Context", "one_edit", "fold"]
