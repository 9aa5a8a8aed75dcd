"""A search on the cluster: the same plan as ``index.search``, its match sets selected by Typesense.

What is shared with the Whoosh engine, so both answer alike: the query parser, the plan
(``index.plan.Planner``: each tier's query, the typo corrections, the passage test), the filters,
the speller, the snippets and highlights (from the stored article, the same code), the passage
check's pattern. What Typesense does: each tier's match set (``index.typesense.filters``), the
totals and facets over it, and the order of the matches.

The order, as close to the Whoosh engine's as Typesense's ranking allows (it has no tf-idf; the
figures are in docs/benchmarks.md): articles holding the syllables the reader typed with marks
first (``_eval`` over the ``exact`` array), then Typesense's text match of the folded syllables
over the title and the body (syllables matched, their proximity, the title before the body), then
the newest. Articles holding a copied passage as one run come first, as in ``index.search``.
No recency boost (``SearchRequest.recency_boost`` is not read: Typesense's text match is no score
that a decay could multiply). Equal dates in the date sorts go by id, not by indexing order.

Round trips, one ``multi_search`` each: the first step of the plan with its page, totals and
facets, and a passage's candidates (every article holding all its pairs); then, when the first
step matched nothing, the pair frequencies and each later step until one matches; a query whose
filter is too long for one Typesense expression has it evaluated in parts first
(``filters.materialize``), a passage holding a number has its candidates chosen in a few more.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whoosh import query as Q

from index.api import FacetValue, Hit, SearchRequest, SearchResult
from index.article import Article
from index.passages import MAX_BREAKS, MAX_CHECKED, MAX_FULL, SMALL_POOL, merge_numbers, pattern
from index.phrases import CHECK_ALL, MAX_SAMPLES, Checks, StoredArticle, estimate, estimate_note, estimated_facets
from index.plan import PLAN, Planner, Step, build_filter
from index.query import Alternative, parse
from index.search import CHECK_RANKED, WEAK_TOTAL, validate
from index.snippets import fold_text, highlight, snippet
from index.spelling import WEAK_PAIR_DF, one_edit
from index.tiers import Tier
from index.typesense.documents import token, untoken
from index.typesense.filters import both, id_filter, translate
from index.typesense.lexicon import ClusterLexicon

Multi = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

MAX_FACET_VALUES = 1000  # categories, years, months: a news archive has far fewer of each
MAX_PER_SEARCH = 250  # Typesense's per_page cap
MULTI_LIMIT = 50  # searches in one multi_search: Typesense's default limit
TEXT_FIELDS = "title_folded,body_folded"
TEXT_WEIGHTS = "3,1"  # as index.plan.TITLE_BOOST


def search(multi: Multi, lexicon: ClusterLexicon, labels: dict[str, str], request: SearchRequest) -> SearchResult:
    validate(request)
    parsed = parse(request.q)
    planner = Planner(None, parsed, lexicon=lexicon)
    allowed = translate(fq) if (fq := build_filter(request, parsed, labels)) is not None else None
    sort = "newest" if parsed.empty and request.sort == "relevance" else request.sort
    syllables = parsed.syllables()
    passage = planner.passage()
    need = request.page * request.per_page
    wide = passage is not None and sort == "relevance" and need + CHECK_RANKED <= MAX_PER_SEARCH
    # Round one: the first step of the plan with its page, totals and facets, and the passage
    # candidates. The first step is built assuming every pair of the query exists: a pair that
    # does not makes its clause match nothing, as leaving it out would (``index.plan``), and the
    # pair frequencies need not be asked first.
    first = Step(Tier.ALL) if parsed.empty else PLAN[0]
    fallbacks = [unit for clause in parsed.clauses for unit in clause.units if unit.fallbacks]
    if fallbacks:
        # Whether a unit's fallbacks (a Telex reading) join the query depends on which of its
        # pairs exist: assumed, the query would lack them and match fewer articles.
        lexicon.prefetch(a + " " + b for unit in fallbacks for alt in (*unit.alternatives, *unit.fallbacks)
                         for a, b in zip(alt.folded, alt.folded[1:]))
        q = planner.query(first)
    else:
        with lexicon.assuming_pairs():
            q = planner.query(first)
    tier, matched = first.tier, translate(q, multi=multi, scope=allowed) if q is not None else None
    # Quoted phrases checked on the text (index.phrases): the match set is known after the check.
    checking = bool(planner.checks)
    phrases: _Checked | None = None
    deep = False  # the ranked page as deep as one search goes (index.phrases: beyond the bound)
    searches = []
    if q is not None and not checking:
        searches += _page_searches(planner, tier, both(matched, allowed), sort, request, wide)
    # As index.passages.contiguous_matches: without a digit, an article holding the run holds every pair.
    exact_passage = passage is not None and not any(c.isdigit() for s in passage for c in s)
    checked: dict[str, dict[str, Any]] = {}
    complete = False
    if passage is not None and exact_passage:
        searches.append(_passage_search(multi, passage, allowed))
    elif passage is not None:
        checked = _passage_candidates(multi, passage, allowed)
    results = multi(searches) if searches else []
    answered = q is not None and not checking and int(results[0].get("found", 0)) > 0
    if passage is not None and exact_passage:
        last = results[-1]
        # More than SMALL_POOL holding every pair: none is checked, the best-ranked ones are
        # (index.passages._holding_every_pair).
        complete = int(last.get("found", 0)) <= SMALL_POOL
        if complete:
            checked = {str(h["document"]["id"]): h["document"] for h in last.get("hits", [])}
    contiguous = [i for i, doc in checked.items() if passage is not None and _holds(passage, doc)]
    if not answered:
        lexicon.prefetch(a + " " + b for a, b in zip(syllables, syllables[1:]))
        tier, matched, phrases = _first_match(multi, planner, allowed, tried=set() if checking else {repr(q)})
        if phrases is not None:
            matched = _without(matched, phrases.failing)
            if not phrases.complete:
                # Room to leave out the ranked articles that fail their check: the page is ranked
                # from the first result, as deep as one search goes.
                wide = need <= MAX_PER_SEARCH
                deep = True
        if contiguous and tier not in (Tier.ADJACENT, Tier.SYLLABLES):
            # Every syllable is there, in one run: never a fuzzy or partial answer (index.search):
            # the match set stays the one the plan found, and the articles holding the run join it.
            if tier is Tier.NONE:
                matched = id_filter(contiguous)
            tier = Tier.SYLLABLES
        results = []
        if tier is not Tier.NONE:
            results = multi(_page_searches(planner, tier, both(_with(matched, contiguous), allowed), sort,
                                           request, wide, deep))
    elif contiguous:
        # The totals and facets count the articles holding the run too (they may miss a pair).
        results[0] = multi([_counts(both(_with(matched, contiguous), allowed), request.facets)])[0]
    hits: list[Hit] = []
    facets: dict[str, list[FacetValue]] = {"category": [], "year": [], "month": []}
    total = 0
    notes = list(parsed.notes)
    if tier is not Tier.NONE and results:
        total = int(results[0].get("found", 0))
        page = _ranked(multi, results[1], planner, tier, both(_with(matched, contiguous), allowed), request,
                       total, wide)
        if phrases is not None and not phrases.complete:
            # As index.search: the total and the counts from the sample, the ranked page checked.
            unknown = multi([_counts(phrases.unknown_filter(), request.facets)])[0]
            unknown_total = int(unknown.get("found", 0))
            total = estimate(total, unknown_total, phrases.share)
            notes.append(estimate_note(total, len(phrases.sample), phrases.unsure_count))
            if request.facets:
                facets = estimated_facets(_facets(list(results[0].get("facet_counts", [])), labels),
                                          _facets(list(unknown.get("facet_counts", [])), labels), phrases.share)
            page = [d for d in page if phrases.keeps(d)]
        start = 0 if wide else need - request.per_page
        if contiguous and wide:
            # Unless every article that can hold the run was checked, the best-ranked articles may
            # hold it too without having been checked.
            run = set(contiguous)
            if not complete:
                run |= {d["id"] for d in page if d["id"] not in checked and _holds(passage or [], d)}
            by_id = {**{i: checked[i] for i in contiguous}, **{d["id"]: d for d in page}}
            ids = [d["id"] for d in page if d["id"] in run]
            ids += [i for i in contiguous if i not in ids]
            ids += [d["id"] for d in page if d["id"] not in run]
            page = [by_id[i] for i in ids]
        ordered = page[need - request.per_page - start:][:request.per_page]
        terms, pairs = planner.highlight_terms(tier)
        for doc in ordered:
            article = Article.from_dict(json.loads(doc["doc"]))
            hits.append(Hit(
                article=article, score=float(doc.get("_score", 0)),
                title_spans=highlight(article.title, terms, pairs) if request.highlight_titles else [],
                snippet=snippet(article.body, terms, pairs) if request.snippets else [],
            ))
        if request.facets and (phrases is None or phrases.complete):
            facets = _facets(list(results[0].get("facet_counts", [])), labels)
    suggestion = None
    weak = not contiguous and (tier in (Tier.FUZZY, Tier.PARTIAL, Tier.NONE) or total < WEAK_TOTAL)
    if request.spelling_suggestion and not parsed.empty and weak:
        lexicon.prefetch(a + " " + b for a, b in zip(syllables, syllables[1:]))
        full_matches = total if tier in (Tier.ADJACENT, Tier.SYLLABLES) else 0

        def matching(alt: Alternative) -> tuple[int, Callable[[], dict[str, Any]]]:
            alt_matched = translate(planner.adjacent_or_anywhere(alt), multi=multi, scope=allowed)
            result = multi([{"q": "*", "filter_by": both(alt_matched, allowed), "sort_by": "published:desc,ident:asc",
                             "per_page": 1, "include_fields": "doc"}])[0]
            found = int(result.get("found", 0))
            docs = [h["document"] for h in result.get("hits", [])]
            return found, lambda: json.loads(docs[0]["doc"]) if docs else {}

        _prefetch_corrections(planner)  # the pairs the speller will ask for, in one round trip
        suggestion = planner.speller.did_you_mean(syllables, full_matches, matching)
    return SearchResult(request=request, query=parsed.text, total=total, tier=tier, hits=hits, facets=facets,
                        suggestion=suggestion, notes=notes, partial=tier is Tier.PARTIAL)


def _with(matched: str | None, ids: list[str]) -> str | None:
    """The match set and the articles ``ids`` (found to hold a copied passage)."""
    if not ids or matched is None:
        return matched
    return f"({matched} || id:=[{','.join(f'`{i}`' for i in ids)}])"


def _count(multi: Multi, filters: list[str | None]) -> list[int]:
    results = _chunked(multi, [{"q": "*", "per_page": 0, **({"filter_by": f} if f else {})} for f in filters])
    return [int(r.get("found", 0)) for r in results]


def _first_match(multi: Multi, planner: Planner, allowed: str | None, tried: set[str]
                 ) -> tuple[Tier, str | None, _Checked | None]:
    """The tier and the filter of its match set, as ``index.search.first_match``: the first step of
    the plan whose query matches anything within ``allowed``, queries in ``tried`` left out (the
    first step built without the pair frequencies is the same query unless the plan's choice of
    alternatives depends on them, e.g. a Telex reading offered when no pair of the query exists).
    With quoted phrases to check (``index.phrases``), a step matches when its check finds one."""
    if planner.parsed.empty:
        return Tier.NONE, None, None
    verdicts: dict[str, bool] = {}
    for step in PLAN:
        if step.tier in (Tier.SYLLABLES, Tier.FUZZY):
            _prefetch_corrections(planner)
        q = planner.query(step)
        if q is None or repr(q) in tried:
            continue
        tried.add(repr(q))
        matched = translate(q, multi=multi, scope=allowed)
        found = _count(multi, [both(matched, allowed)])[0]
        if found == 0:
            continue
        phrases = _check_phrases(multi, planner, step.tier, matched, allowed, verdicts) if planner.checks else None
        if phrases is not None and not (phrases.holding or found > phrases.unsure_count):
            continue
        tier = step.tier
        if tier is Tier.SYLLABLES:
            plain = planner.query(step, corrections=False)
            if plain is None or _count(multi, [both(translate(plain, multi=multi, scope=allowed), allowed)])[0] == 0:
                tier = Tier.FUZZY
        return tier, matched, phrases
    return Tier.NONE, None, None


@dataclass(slots=True)
class _Checked:
    """``index.search.Checked`` here: the articles that needed a phrase check (a filter, and how
    many), the newest ``CHECK_ALL`` of them checked (``sample``), the verdicts."""

    unsure: str
    unsure_count: int
    sample: set[str]
    holding: set[str]
    failing: set[str]
    share: float
    verdict: Callable[[dict[str, Any]], bool]

    @property
    def complete(self) -> bool:
        return self.unsure_count <= len(self.sample)

    def unknown_filter(self) -> str:
        """The articles not checked in the sample."""
        return _without(self.unsure, self.sample) or self.unsure

    def keeps(self, doc: dict[str, Any]) -> bool:
        """Whether a ranked article stays on the page (checked now if it was not in the sample)."""
        ident = str(doc["id"])
        if ident in self.sample:
            return ident in self.holding
        if ident not in self.holding and ident not in self.failing:
            (self.holding if self.verdict(doc) else self.failing).add(ident)
        return ident in self.holding


def _check_phrases(multi: Multi, planner: Planner, tier: Tier, matched: str | None, allowed: str | None,
                   verdicts: dict[str, bool]) -> _Checked:
    """``index.search._check_phrases`` over a filter: which articles of the match set need a
    check, and the check of the newest ``CHECK_ALL`` of them (all of them when that is all)."""
    checks = planner.checks
    base = both(matched, allowed)
    parts: list[str | None] = []
    mode = "any" if tier is Tier.PARTIAL else "all"
    rest = planner.partial_query(checked=False) if tier is Tier.PARTIAL and checks.required else None
    if checks.required:
        parts.append(both(base, translate(rest, negate=True, multi=multi, scope=allowed)) if rest is not None
                     else base)
    holders = planner.excluded_holders()
    if holders is not None:
        parts.append(both(base, translate(holders, multi=multi, scope=allowed)))
    unsure = " || ".join(f"({p})" for p in parts if p is not None) if all(p is not None for p in parts) else ""
    # As index.search: the newest CHECK_ALL, and the next ones while none holds a phrase.
    search = {"q": "*", "sort_by": "published:desc,ident:asc", "per_page": CHECK_ALL, "include_fields": "id,doc",
              **({"filter_by": unsure} if unsure else {})}
    result = multi([search])[0]
    docs = [h["document"] for h in result.get("hits", [])]
    unsure_count = int(result.get("found", 0))
    page = 1
    while (rest is None and page < MAX_SAMPLES and len(docs) < unsure_count
           and not any(_verdict_of(checks, d, mode, verdicts) for d in docs)):
        page += 1
        docs += [h["document"] for h in multi([{**search, "page": page}])[0].get("hits", [])]
    sure: set[str] = set()
    if rest is not None and docs:  # partial tier: which of them match the units that need no check
        in_rest = both(id_filter({str(d["id"]) for d in docs}), translate(rest, multi=multi, scope=allowed))
        sure = {str(h["document"]["id"]) for h in multi([{"q": "*", "filter_by": in_rest, "per_page": CHECK_ALL,
                                                           "include_fields": "id"}])[0].get("hits", [])}

    def verdict(doc: dict[str, Any]) -> bool:
        return _verdict_of(checks, doc, "none" if str(doc["id"]) in sure else mode, verdicts)

    checked = _Checked(unsure or "", unsure_count, {str(d["id"]) for d in docs}, set(), set(), 1.0, verdict)
    for doc in docs:
        (checked.holding if verdict(doc) else checked.failing).add(str(doc["id"]))
    checked.share = len(checked.holding) / len(docs) if docs else 1.0
    return checked


def _verdict_of(checks: Checks, doc: dict[str, Any], mode: str, verdicts: dict[str, bool]) -> bool:
    """``Checks.verdict`` of a stored article, once per search."""
    ident = str(doc["id"])
    found = verdicts.get(ident)
    if found is None:
        found = checks.verdict(StoredArticle(doc["doc"]), mode)
        verdicts[ident] = found
    return found


def _without(matched: str | None, ids: set[str]) -> str | None:
    """The match set less the articles ``ids`` (found not to hold a quoted phrase)."""
    if not ids:
        return matched
    return both(matched, "ident:!=[" + ",".join(f"`{i}`" for i in sorted(ids)) + "]")


def _prefetch_corrections(planner: Planner) -> None:
    """The pair frequencies the speller's corrections will ask for, in two round trips at most:
    the query's own pairs, then, for the syllables beside a pair the index does not know or knows
    rarely (the only ones ``Speller.pair_corrections`` edits), the pairs each known one-edit
    variant would make."""
    lexicon = planner.lexicon
    if not isinstance(lexicon, ClusterLexicon):
        return
    units = [list(unit.main.folded) for clause in planner.parsed.clauses for unit in clause.units]
    lexicon.prefetch(a + " " + b for folded in units for a, b in zip(folded, folded[1:]))
    wanted: list[str] = []
    for folded in units:
        weak = [i for i in range(len(folded) - 1)
                if lexicon.df("pair", folded[i] + " " + folded[i + 1]) <= WEAK_PAIR_DF]
        for j in sorted({k for i in weak for k in (i, i + 1)}):
            s = folded[j]
            if len(s) < 2 or not s.isalnum():
                continue
            for v in one_edit(s):
                if lexicon.known(v):
                    if j > 0:
                        wanted.append(folded[j - 1] + " " + v)
                    if j < len(folded) - 1:
                        wanted.append(v + " " + folded[j + 1])
    lexicon.prefetch(wanted)


def _passage_pairs(passage: list[str]) -> list[str]:
    merged = merge_numbers(passage)
    return list(dict.fromkeys(f"{a} {b}" for a, b in zip(merged, merged[1:])))


def _holding_pair(pair: str) -> Q.Query:
    """The articles holding ``pair`` in the title or the body, or across a break (``bridge``)."""
    return Q.Or([Q.Term("body_pair", pair), Q.Term("body_bridge", pair)])


def _passage_search(multi: Multi, passage: list[str], allowed: str | None) -> dict[str, Any]:
    """The search for the candidates of a passage without numbers (``index.passages``): every
    article holding every one of its pairs (across breaks too), up to ``SMALL_POOL``, with its
    stored text. A filter, not a text match: Typesense's text match counts the tokens matched in
    the best field alone, so an article holding some pairs in ``pair`` and the others in
    ``bridge`` (the very passage copied across a full stop) would not count as holding them all."""
    holding = translate(Q.And([_holding_pair(p) for p in _passage_pairs(passage)]), multi=multi, scope=allowed)
    params: dict[str, Any] = {"q": "*", "per_page": SMALL_POOL, "include_fields": "id,doc",
                              "sort_by": "published:desc,ident:asc"}
    final = both(holding, allowed)
    if final:
        params["filter_by"] = final
    return params


def _passage_candidates(multi: Multi, passage: list[str], allowed: str | None) -> dict[str, dict[str, Any]]:
    """The candidates of a passage holding a number (which a text may write with its groups apart,
    so an article holding the run may miss up to ``MAX_BREAKS`` of its pairs), chosen as
    ``index.passages.contiguous_matches`` chooses them: the articles holding one of the rarest
    pairs, then those holding the most pairs, the rarer ones first. A few round trips, for such
    queries only: how many articles hold each pair; those holding one of the rarest (none checked
    when more than a page of ``MAX_PER_SEARCH`` do: the best-ranked articles are still checked);
    which of them hold each pair; the stored text of those checked."""
    pairs = _passage_pairs(passage)
    need = max(1, len(pairs) - MAX_BREAKS)
    filters = [translate(_holding_pair(p)) for p in pairs]
    sizes = _count(multi, filters)
    rarest = sorted(range(len(pairs)), key=lambda i: sizes[i])[: len(pairs) - need + 1]
    pool = _pool(multi, " || ".join(str(filters[i]) for i in rarest), allowed)
    if not pool:
        return {}
    held: Counter[str] = Counter()
    having: list[set[str]] = []
    results = _chunked(multi, [{"q": "*", "filter_by": both(id_filter(pool), f), "per_page": len(pool),
                                "include_fields": "id"} for f in filters])
    for result in results:
        ids = {str(h["document"]["id"]) for h in result.get("hits", [])}
        having.append(ids)
        held.update(ids)
    rarity = [1.0 / (n or 1) for n in sizes]

    def key(d: str) -> tuple[int, float, str]:
        return -held[d], -sum(r for r, ids in zip(rarity, having) if d in ids), d

    full = [d for d, n in held.items() if n == len(pairs)]
    if len(full) > MAX_FULL:
        chosen = heapq.nsmallest(MAX_FULL, full, key=key)
    elif len(full) >= MAX_CHECKED:
        chosen = full
    else:
        partial = [d for d, n in held.items() if need <= n < len(pairs)]
        chosen = full + heapq.nsmallest(MAX_CHECKED - len(full), partial, key=key)
    if not chosen:
        return {}
    docs = multi([{"q": "*", "filter_by": id_filter(chosen), "per_page": len(chosen), "include_fields": "id,doc"}])
    return {str(h["document"]["id"]): h["document"] for h in docs[0].get("hits", [])}


def _pool(multi: Multi, expression: str, allowed: str | None) -> set[str] | None:
    """The ids matching ``expression`` within ``allowed`` (None when more than a page do)."""
    result = multi([{"q": "*", "filter_by": both(f"({expression})", allowed), "per_page": MAX_PER_SEARCH,
                     "include_fields": "id"}])[0]
    if int(result.get("found", 0)) > MAX_PER_SEARCH:
        return None
    return {str(h["document"]["id"]) for h in result.get("hits", [])}


def _chunked(multi: Multi, searches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``multi`` for any number of searches (Typesense takes ``MULTI_LIMIT`` in one request)."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(searches), MULTI_LIMIT):
        out += multi(searches[start:start + MULTI_LIMIT])
    return out


def _holds(passage: list[str], doc: dict[str, Any]) -> bool:
    """``index.passages.holding`` for one stored article."""
    article = json.loads(doc["doc"])
    body = article.get("body") or []
    paragraphs = body if isinstance(body, list) else [str(body)]
    text = fold_text("\n".join([str(article.get("title", "")), *map(str, paragraphs)]))
    merged = tuple(merge_numbers(passage))
    if any(s.isdigit() for s in merged):
        from index.passages import _GROUP_SEPARATOR

        text = _GROUP_SEPARATOR.sub("", text)
    return pattern(merged).search(text) is not None


def _ranking(planner: Planner, tier: Tier, sort: str) -> dict[str, Any]:
    """The search parameters that order the matches (see the module docstring)."""
    # Equal dates (and views) go by id: the Whoosh engine orders them by its document numbers
    # (the order articles were indexed in), which Typesense does not have (docs/scale-out.md).
    if sort == "oldest":
        return {"q": "*", "sort_by": "published:asc,ident:asc"}
    if sort == "views":
        return {"q": "*", "sort_by": "views:desc,published:desc,ident:asc"}
    if sort == "newest" or tier is Tier.ALL:
        return {"q": "*", "sort_by": "published:desc,ident:asc"}
    folded: list[str] = []
    exact: list[str] = []
    for clause in planner.parsed.clauses:
        for unit in clause.units:
            folded.extend(unit.main.folded)
            exact.extend(e for e, marked in zip(unit.main.exact, unit.main.marked) if marked)
    sort_by = "_text_match:desc,published:desc"
    if exact:
        # Every marked syllable exact (``&&``: a comma would end the sort field).
        held = " && ".join(f"exact:={token(e)}" for e in dict.fromkeys(exact))
        sort_by = f"_eval({held}):desc," + sort_by
    return {
        "q": " ".join(token(s) for s in folded) or "*", "query_by": TEXT_FIELDS, "query_by_weights": TEXT_WEIGHTS,
        "num_typos": 1 if tier is Tier.FUZZY else 0, "prefix": "false", "sort_by": sort_by,
        "drop_tokens_threshold": 10_000, "typo_tokens_threshold": 1,
        # Our snippet code marks the hits: Typesense's highlights of the body would only cost.
        "highlight_fields": "none",
    }


def _counts(final: str | None, facets: bool = True) -> dict[str, Any]:
    """The search for the total (and the facets) of a match set."""
    params: dict[str, Any] = {"q": "*", "per_page": 0}
    if facets:  # the costly part: Typesense counts every match's values
        # The years are summed from the months: a facet of its own costs Typesense a fifth more.
        params.update({"facet_by": "category_slug,month", "max_facet_values": MAX_FACET_VALUES})
    if final:
        params["filter_by"] = final
    return params


def _page_searches(planner: Planner, tier: Tier, final: str | None, sort: str, request: SearchRequest,
                   wide: bool, deep: bool = False) -> list[dict[str, Any]]:
    """The searches for the total and facets, and for the ranked page (``wide``: every article
    up to the page's end and ``CHECK_RANKED`` more, from the first; ``deep``: as many as one
    search returns)."""
    need = request.page * request.per_page
    depth = MAX_PER_SEARCH if deep else min(MAX_PER_SEARCH, need + CHECK_RANKED)
    paging = {"page": 1, "per_page": depth} if wide else {"page": request.page, "per_page": request.per_page}
    ranked: dict[str, Any] = {**_ranking(planner, tier, sort), **paging, "include_fields": "id,doc"}
    if "drop_tokens_threshold" in ranked:
        # Drop query syllables only while fewer matches than the page needs are reached (each
        # drop is another search; _ranked fills the rest from the match set).
        ranked["drop_tokens_threshold"] = int(paging["page"]) * int(paging["per_page"])
    if final:
        ranked["filter_by"] = final
    return [_counts(final, request.facets), ranked]


def _ranked(multi: Multi, result: dict[str, Any], planner: Planner, tier: Tier, final: str | None,
            request: SearchRequest, total: int, wide: bool) -> list[dict[str, Any]]:
    """The ranked page's documents. The text match ranks only the articles Typesense's token
    search reaches; the filter alone selects the match set. When the former reaches fewer than
    the page needs (an article matched through an alternative or a correction holds none of the
    query's own syllables), the page is filled with the rest of the match set, newest first."""
    docs = [_doc(h) for h in result.get("hits", [])]
    reached = int(result.get("found", 0))
    per_page = int(result.get("request_params", {}).get("per_page", 0)) or (
        request.page * request.per_page + CHECK_RANKED if wide else request.per_page)
    start = 0 if wide else request.page * request.per_page - request.per_page
    if reached < total and len(docs) < per_page:
        docs += _fill(multi, final, docs, max(0, start - reached), per_page - len(docs))
    return docs


def _fill(multi: Multi, final: str | None, have: list[dict[str, Any]], offset: int, limit: int
          ) -> list[dict[str, Any]]:
    """The newest matches not among ``have``, from ``offset`` (deep pages of such a query can
    repeat or skip an article: the token search's matches are not all known here)."""
    exclude = ",".join(f"`{d['id']}`" for d in have)
    params: dict[str, Any] = {"q": "*", "sort_by": "published:desc,ident:asc", "include_fields": "id,doc"}
    final = both(final, f"ident:!=[{exclude}]" if exclude else None)
    if final:
        params["filter_by"] = final
    return window(multi, params, offset, limit)


def window(multi: Multi, params: dict[str, Any], offset: int, limit: int) -> list[dict[str, Any]]:
    """Documents ``offset`` to ``offset + limit`` of a search, read in pages of Typesense's
    largest size (it pages by page number, not by offset)."""
    out: list[dict[str, Any]] = []
    if limit <= 0:
        return out
    if limit <= MAX_PER_SEARCH and offset % limit == 0:  # the usual case: one page of the right size
        return [_doc(h) for h in multi([{**params, "page": offset // limit + 1, "per_page": limit}])[0]
                .get("hits", [])]
    first, last = offset // MAX_PER_SEARCH, (offset + limit - 1) // MAX_PER_SEARCH
    searches = [{**params, "page": p + 1, "per_page": MAX_PER_SEARCH} for p in range(first, last + 1)]
    for result in multi(searches):
        out += [_doc(h) for h in result.get("hits", [])]
    skip = offset - first * MAX_PER_SEARCH
    return out[skip:skip + limit]


def _doc(hit: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = dict(hit["document"])
    doc["_score"] = hit.get("text_match", 0)
    return doc


def _facets(facet_counts: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, list[FacetValue]]:
    """``index.search._facet_values`` from Typesense's facet counts."""
    out: dict[str, list[FacetValue]] = {"category": [], "year": [], "month": []}
    for facet in facet_counts:
        name = facet.get("field_name")
        values = [(untoken(str(c["value"])), int(c["count"])) for c in facet.get("counts", [])]
        if name == "category_slug":
            out["category"] = sorted((FacetValue(labels.get(s, s), s, n) for s, n in values),
                                     key=lambda f: (-f.count, f.slug))
        elif name in ("year", "month"):
            out[name] = sorted((FacetValue(v, v, n) for v, n in values), key=lambda f: f.value)
    if out["month"] and not out["year"]:  # the years are the months summed ("2005-03" -> "2005")
        years: Counter[str] = Counter()
        for month in out["month"]:
            years[month.value[:4]] += month.count
        out["year"] = [FacetValue(y, y, n) for y, n in sorted(years.items())]
    return out
