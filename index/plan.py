"""The query plan: the Whoosh query of each matching tier, the ranking-only clauses, the filters.

Speed comes from the plan, not from tuning: requiring every folded syllable over title|body is
slow because common syllables have postings in most articles, while requiring adjacent pairs in the
pair fields reads short postings (figures in docs/benchmarks.md). So we match on short postings
first and widen only when a step finds nothing (``PLAN``; the loop is ``index.search``):

1. ``Tier.ADJACENT``: every unit required; a multi-syllable unit as all its adjacent pairs
   (``title_pair|body_pair``), a one-syllable unit as its folded syllable.
2. ``Tier.SYLLABLES``: every syllable required, anywhere. First the pairs that exist in the index
   are still required (so "thu tuong dak nong" keeps "thu tuong" and "dak nong" cheap), then, if
   that finds nothing, every syllable alone. Typo corrections (``index.spelling``) join this tier;
   when only they match, the answer is reported as ``Tier.FUZZY``.
3. ``Tier.FUZZY``: one edit (insert, delete, substitute, transpose) on folded syllables of 4+
   letters that the index does not know, e.g. "hoi ngih" -> "hội nghị".
4. ``Tier.PARTIAL``: nothing matched every syllable: the documents matching the most syllables.

An empty query is the one step ``Tier.ALL`` (every article, within the filters). Quoted phrases
stay adjacent in every tier. Boosts (``boosters``) rank titles above bodies, an exact-diacritics
match above a folded-only one (only for syllables the reader typed with marks), adjacent query
pairs above scattered syllables; ``index.ranking`` orders the matches with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from whoosh import query as Q
from whoosh.searching import Searcher

from index.analysis import PAIR_SEP
from index.api import SearchRequest
from index.article import VN_TZ, slugify
from index.docsets import DocSets
from index.phrases import checks_of
from index.query import Alternative, ParsedQuery, Unit
from index.schema import source_key
from index.spelling import Lexicon, Speller, TermStats
from index.tiers import Tier

TITLE_BOOST = 3.0
EXACT_TITLE_BOOST = 4.0
EXACT_BODY_BOOST = 1.5
PAIR_BOOST = 1.0
NEAR_MIN_SYLLABLES = 4
MIN_PASSAGE_SYLLABLES = 4  # index.passages: a query this long may be a copied passage


@dataclass(slots=True)
class Context:
    """What a search needs besides the request: an open searcher and per-generation lookups."""

    searcher: Searcher
    labels: dict[str, str]  # category slug -> label
    docsets: DocSets
    vocabulary: Callable[[], frozenset[str]] | None = None  # folded syllables of the index


@dataclass(frozen=True, slots=True)
class Step:
    """One query of the plan: it runs only when every step before it matched nothing."""

    tier: Tier
    keep_known_pairs: bool = False  # Tier.SYLLABLES: the pairs the index knows stay required


PLAN = (
    Step(Tier.ADJACENT),
    Step(Tier.SYLLABLES, keep_known_pairs=True),
    Step(Tier.SYLLABLES),
    Step(Tier.FUZZY),
    Step(Tier.PARTIAL),
)
EMPTY_QUERY_PLAN = (Step(Tier.ALL),)


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
    """Builds the Whoosh query of each step for one parsed query (document frequencies cached)."""

    def __init__(self, ctx: Context | None, parsed: ParsedQuery, lexicon: TermStats | None = None) -> None:
        """``lexicon``: the terms another engine knows (``index.typesense``); by default, those
        of ``ctx``'s open Whoosh index."""
        self.parsed = parsed
        if lexicon is None:
            if ctx is None:
                raise ValueError("a Planner needs an open index or a lexicon")
            lexicon = Lexicon(ctx.searcher.reader(), ctx.vocabulary, ctx.docsets.df)
        self.lexicon: TermStats = lexicon
        self.speller = Speller(self.lexicon)
        self.df = self.lexicon.df
        self.checks = checks_of(parsed)  # quoted phrases the pairs alone do not answer (index.phrases)

    def steps(self) -> tuple[Step, ...]:
        return EMPTY_QUERY_PLAN if self.parsed.empty else PLAN

    def query(self, step: Step, corrections: bool = True) -> Q.Query | None:
        """The step's query, or None when it cannot match anything. ``corrections=False``: without
        the typo corrections the syllables tier adds (to tell whether only they matched)."""
        if step.tier is Tier.ALL:
            return Q.Every()
        if step.tier is Tier.PARTIAL:
            return self.partial_query()
        return self.tier_query(step.tier, keep_known_pairs=step.keep_known_pairs, corrections=corrections)

    # One alternative of a unit, as each tier matches it

    def adjacent(self, alt: Alternative) -> Q.Query:
        if len(alt.folded) == 1:
            return _syl(alt.folded[0])
        return _and([_pair(p) for p in _pairs_of(alt.folded)])

    def adjacent_possible(self, alt: Alternative) -> bool:
        if len(alt.folded) == 1:
            return self.df("folded", alt.folded[0]) > 0
        return all(self.df("pair", p) > 0 for p in _pairs_of(alt.folded))

    def anywhere(self, alt: Alternative, keep_known_pairs: bool = False) -> Q.Query:
        """Every syllable required; with ``keep_known_pairs``, the pairs known to the index stay
        required and only the syllables they do not cover are required alone."""
        if not keep_known_pairs:
            return _and([_syl(s) for s in alt.folded])
        known = [i for i, p in enumerate(_pairs_of(alt.folded)) if self.df("pair", p) > 0]
        covered = {j for i in known for j in (i, i + 1)}
        parts = [_pair(alt.folded[i] + PAIR_SEP + alt.folded[i + 1]) for i in known]
        parts += [_syl(s) for j, s in enumerate(alt.folded) if j not in covered]
        return _and(parts)

    def adjacent_or_anywhere(self, alt: Alternative) -> Q.Query:
        return self.adjacent(alt) if self.adjacent_possible(alt) else self.anywhere(alt)

    def fuzzy(self, alt: Alternative) -> Q.Query | None:
        parts = []
        changed = False
        for s in alt.folded:
            variants = self.speller.variants(s) if self.df("folded", s) == 0 else []
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

    def alternatives(self, unit: Unit) -> list[Alternative]:
        """The unit's alternatives, plus its fallbacks (Telex reading) when none of them can match."""
        if unit.fallbacks and not any(self.adjacent_possible(a) for a in unit.alternatives):
            return unit.alternatives + unit.fallbacks
        return unit.alternatives

    # Whole queries

    def tier_query(self, tier: Tier, keep_known_pairs: bool = False, corrections: bool = True) -> Q.Query | None:
        """The query of the adjacent, syllables or fuzzy tier (None: it cannot match anything)."""
        if tier not in (Tier.ADJACENT, Tier.SYLLABLES, Tier.FUZZY):
            raise ValueError(f"tier {tier!r} has no query of its own")
        clauses = []
        any_fuzzy = False
        for clause in self.parsed.clauses:
            options = []
            for unit in clause.units:
                for alt in self.alternatives(unit):
                    if unit.phrase or tier is Tier.ADJACENT:
                        if self.adjacent_possible(alt):
                            options.append(self.adjacent(alt))
                    elif tier is Tier.SYLLABLES:
                        options.append(self.anywhere(alt, keep_known_pairs))
                        # A typo that happens to be a real syllable ("không uoc làm" for "không được
                        # làm") breaks adjacency without leaving an unknown syllable: also accept the
                        # one-edit correction that makes every pair known again.
                        if corrections:
                            options += [self.adjacent(c) for c in self.speller.pair_corrections(alt)]
                            near = self.near(alt)
                            if near is not None:
                                options.append(near)
                    else:
                        q = self.fuzzy(alt)
                        if q is not None:
                            any_fuzzy = True
                            options.append(q)
                        else:
                            options.append(self.anywhere(alt))
            if not options:
                return None
            clauses.append(_or(options))
        if tier is Tier.FUZZY and not any_fuzzy:
            return None
        return self._exclude(_and(clauses))

    def partial_query(self, checked: bool = True) -> Q.Query | None:
        """Documents matching any unit: plain syllables alone, quoted phrases still whole.
        ``checked=False``: without the phrases ``index.phrases`` checks (what matches the rest)."""
        parts: list[Q.Query] = []
        seen: set[str] = set()
        quotes = self.checks.required_quotes if not checked else frozenset()
        for clause in self.parsed.clauses:
            for unit in clause.units:
                if unit.quote is not None and unit.quote in quotes:
                    continue
                if unit.phrase:
                    parts += [self.adjacent(a) for a in unit.alternatives if self.adjacent_possible(a)]
                    continue
                for s in unit.main.folded:
                    if s not in seen:
                        seen.add(s)
                        parts.append(_syl(s))
        if not parts:
            return None
        return self._exclude(Q.Or(parts, scale=0.95))

    def _exclude(self, q: Q.Query) -> Q.Query:
        """``q`` without the excluded units, but for the phrases checked on the text instead
        (``index.phrases``: an article is left out only where it holds such a phrase contiguously)."""
        skipped = self.checks.excluded_quotes
        negatives = [self.adjacent(alt) for unit in self.parsed.excluded for alt in unit.alternatives
                     if unit.quote is None or unit.quote not in skipped]
        return Q.AndNot(q, _or(negatives)) if negatives else q

    def excluded_holders(self) -> Q.Query | None:
        """The articles that may hold an excluded phrase checked on the text: all the pairs of one
        of its runs (None: no such phrase)."""
        options = [self.adjacent(Alternative(run, run, (False,) * len(run)))
                   for quote in self.checks.excluded for run in quote.runs]
        return _or(options) if options else None

    # What ranks and what is marked, once a tier has matched

    def boosters(self, tier: Tier) -> Q.Query | None:
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
                for exact, marked in zip(main.exact, main.marked):
                    if marked:
                        parts.append(Q.Term("title_exact", exact, boost=EXACT_TITLE_BOOST))
                        parts.append(Q.Term("body_exact", exact, boost=EXACT_BODY_BOOST))
                sequence.extend(main.folded)
                if tier in (Tier.SYLLABLES, Tier.FUZZY) and not unit.phrase:
                    for corrected in self.speller.pair_corrections(main):
                        for p in _pairs_of(corrected.folded):
                            parts.append(_pair(p, PAIR_BOOST))
                if tier is Tier.ADJACENT:
                    required.update(_pairs_of(main.folded))
        for p in dict.fromkeys(_pairs_of(tuple(sequence))):
            if p not in required and self.df("pair", p) > 0:
                parts.append(_pair(p, PAIR_BOOST))
        return Q.Or(parts) if parts else None

    def passage(self) -> list[str] | None:
        """For a query that may be a copied passage (``index.passages``): its folded syllables in
        order; None when the query is short, quoted as a whole, has an exclusion or alternatives
        joined by OR."""
        parsed = self.parsed
        if parsed.excluded or any(len(c.units) != 1 for c in parsed.clauses):
            return None
        if len(parsed.clauses) == 1 and parsed.clauses[0].units[0].phrase:
            return None  # the whole query quoted: the reader asked for that phrase, pairs and all
        # A quote inside a longer query is most often part of what was copied ('phong trào "thử').
        syllables = parsed.syllables()
        return syllables if len(syllables) >= MIN_PASSAGE_SYLLABLES else None

    def highlight_terms(self, tier: Tier) -> tuple[set[str], set[str]]:
        """(syllables marked alone, pairs marked together). Multi-syllable units that matched as
        pairs are marked only where their syllables stand together, not each "ban" or "dân"."""
        terms: set[str] = set()
        pairs: set[str] = set()
        scattered = tier in (Tier.SYLLABLES, Tier.FUZZY, Tier.PARTIAL)
        for clause in self.parsed.clauses:
            for unit in clause.units:
                alts = list(self.alternatives(unit))
                if tier in (Tier.SYLLABLES, Tier.FUZZY) and not unit.phrase:
                    alts += self.speller.pair_corrections(unit.main)
                for alt in alts:
                    pairs.update(_pairs_of(alt.folded))
                    if len(alt.folded) == 1 or (scattered and not unit.phrase and alt is unit.main):
                        terms.update(alt.folded)
                    if tier is Tier.FUZZY:
                        for s in alt.folded:
                            if self.df("folded", s) == 0:
                                variants = self.speller.variants(s)
                                terms.update(variants)
                                i = alt.folded.index(s)
                                for v in variants:
                                    seq = alt.folded[:i] + (v,) + alt.folded[i + 1:]
                                    pairs.update(_pairs_of(seq))
        return terms, pairs


# -- filters -------------------------------------------------------------------------------------


def _vn_day_start_utc(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=VN_TZ).astimezone(UTC).replace(tzinfo=None)


def resolve_category(value: str, labels: dict[str, str]) -> str:
    """A slug or a label ("Thể thao", "the thao") -> the slug used in the index."""
    value = value.strip()
    if value in labels:
        return value
    return slugify(value)


def _text(value: str) -> str:
    """Lone surrogates (which no index term can hold) replaced, so they simply match nothing."""
    return value.encode("utf-8", "replace").decode("utf-8")


def build_filter(request: SearchRequest, parsed: ParsedQuery, labels: dict[str, str]) -> Q.Query | None:
    """The request's and the query's category, source and date filters as one query (None: none)."""
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
