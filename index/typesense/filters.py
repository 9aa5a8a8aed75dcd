"""The query plan's match sets as Typesense filters: a Whoosh query tree -> a ``filter_by`` string.

The plan (``index.plan``) describes each tier as a tree of terms over our fields; the Whoosh engine
evaluates it on posting sets (``index.docsets``). Here the same tree becomes one ``filter_by``
expression, which selects exactly the same articles:

* ``title_X:t OR body_X:t`` (how the plan asks for a syllable or a pair anywhere) is one exact
  element match on the combined array ``X:=[t]`` (``index.typesense.documents``);
* ``AND`` / ``OR`` are ``&&`` / ``||`` with parentheses (Typesense 0.24 has both across fields);
* ``AND NOT`` (the reader's ``-word``) has no operator: the negation is pushed down to the terms
  (De Morgan), where ``X:!=[t]`` means "no element equals t";
* a date range is two integer comparisons on ``published`` (UTC seconds).

Typesense refuses an expression of more than about 100 tokens (measured on 0.24.1: every operand,
``&&``, ``||`` and parenthesis is one; 99 pass, 101 fail; a list ``X:=[a,b,...]`` is one operand
however long). So the tree is simplified first, which selects exactly the same articles: nested
ANDs (ORs) flattened, repeated parts dropped, ``X:=[a] || X:=[b]`` merged into ``X:=[a,b]`` (and
``X:!=[a] && X:!=[b]`` into ``X:!=[a,b]``), a part implied by another absorbed (``A || (A && B)``
is ``A``: "TP.HCM" offers "hcm" alone beside "tp hcm").

A tree still above ``MATCH_TOKENS`` (a long query in the syllables tier: a title of ten syllables
with a typo asks for its pairs, their corrections and the "near" options, some 90 tokens) is
evaluated in parts (``materialize``): an AND's conjuncts in groups that fit, the smallest group's
articles first and the others within them; an OR's parts one by one. The answer is the list of
the matching ids, one operand however long. That is exact while a part's match set holds at most
``MATERIALIZE_CAP`` articles (the many conjuncts of a long query keep it small); past it, and
without a way to search (``multi``), the tree is relaxed instead: conjuncts of an AND left out (the
cheapest kept), a part of an OR relaxed in turn. Every operand sits in a positive place (negations
are pushed down to the terms), so a relaxed expression matches a superset: such a query can match
more articles than the Whoosh engine would (docs/scale-out.md lists this), never fewer, and never
fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from whoosh import query as Q

from index.typesense.documents import pair_token, token

MAX_TOKENS = 99  # Typesense 0.24.1 refuses a filter of 101 tokens (a filter's count is always odd)
# The plan's match set: what is left once the search adds its own parts to it: the request's
# filters (``index.plan.build_filter`` makes at most 9 tokens: categories, sources, two dates, and
# their operators) and the id clauses of ``index.typesense.search`` (``_with``, ``_fill``: 7), each
# joined with its operator and parentheses (3).
MATCH_TOKENS = MAX_TOKENS - 9 - 7 - 3 - 3
MATERIALIZE_CAP = 1000  # articles a part evaluated on its own may match (ids read, filtered by)
_PAGE = 250  # Typesense's largest page
_BATCH = 50  # searches in one multi_search

Multi = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

# Our field -> (the Typesense array it is matched in, how a term is written there).
_ARRAYS = {
    "title_folded": "folded", "body_folded": "folded",
    "title_pair": "pair", "body_pair": "pair",
    "body_bridge": "bridge",
    "title_exact": "exact", "body_exact": "exact",
    "category_slug": "category_slug", "source_key": "source_key",
    "year": "year", "month": "month",
}
_PAIRS = {"title_pair", "body_pair", "body_bridge"}
_AND, _OR = "&&", "||"


class Untranslatable(ValueError):
    """A query node the plan never builds (a bug, not a reader's mistake)."""


# -- the expression tree ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _In:
    """``array:=[values]`` (an element equals one of them), or negated ``array:!=[values]``
    (no element equals any of them)."""

    array: str
    values: tuple[str, ...]
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.array}:{'!=' if self.negated else '='}[{','.join(self.values)}]"


@dataclass(frozen=True, slots=True)
class _Compare:
    """One comparison, as Typesense writes it (``published:>=1403802000``)."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class _Node:
    op: str  # _AND or _OR
    parts: tuple[_Expr, ...]

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.parts)) + ")"


_Expr = _In | _Compare | _Node  # None, where an expression may be, is every article


def _cost(e: _Expr) -> int:
    """Typesense's count of tokens in ``str(e)``."""
    if isinstance(e, _Node):
        return sum(_cost(p) for p in e.parts) + len(e.parts) + 1
    return 1


def _implies(a: _Expr, b: _Expr) -> bool:
    """Every article ``a`` matches, ``b`` matches too (as far as a look at the two trees tells)."""
    if a == b:
        return True
    if isinstance(a, _In) and isinstance(b, _In) and a.array == b.array and a.negated == b.negated:
        # X:=[s] within X:=[t] when s ⊆ t; "none of s" implies "none of t" when t ⊆ s.
        small, large = (b, a) if a.negated else (a, b)
        return set(small.values) <= set(large.values)
    if isinstance(b, _Node) and b.op == _OR and any(_implies(a, p) for p in b.parts):
        return True
    if isinstance(a, _Node) and a.op == _AND and any(_implies(p, b) for p in a.parts):
        return True
    return False


def _node(op: str, parts: list[_Expr | None]) -> _Expr | None:
    """``op`` over ``parts``, simplified without changing the articles it selects (the module
    docstring lists how). None: every article."""
    if op == _OR and any(p is None for p in parts):
        return None
    flat: list[_Expr] = []
    for p in parts:
        if p is None:
            continue
        flat.extend(p.parts if isinstance(p, _Node) and p.op == op else [p])
    # Terms of one array merge into one list: positive ones in an OR, negated ones in an AND.
    merged: list[_Expr] = []
    lists: dict[str, int] = {}  # array -> index in ``merged`` of its list
    for p in flat:
        if isinstance(p, _In) and p.negated == (op == _AND):
            at = lists.get(p.array)
            if at is not None:
                held = merged[at]
                assert isinstance(held, _In)
                merged[at] = _In(p.array, tuple(dict.fromkeys(held.values + p.values)), p.negated)
                continue
            lists[p.array] = len(merged)
        merged.append(p)
    distinct = list(dict.fromkeys(merged))
    # Absorption: in an OR a part implying another is redundant; in an AND, one implied by another.
    kept: list[_Expr] = []
    for i, p in enumerate(distinct):
        others = kept + distinct[i + 1:]
        redundant = any(_implies(p, q) for q in others) if op == _OR else any(_implies(q, p) for q in others)
        if not redundant:
            kept.append(p)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else _Node(op, tuple(kept))


def _fit(e: _Expr | None, budget: int) -> _Expr | None:
    """``e`` within ``budget`` tokens: itself, or a relaxed form matching a superset of its
    articles (None, every article, at worst)."""
    if e is None or _cost(e) <= budget:
        return e
    if not isinstance(e, _Node) or budget < 1:
        return None
    if e.op == _AND:
        # Keep the cheapest conjuncts (each keeps its place); the others relaxed into what is left.
        order = sorted(range(len(e.parts)), key=lambda i: _cost(e.parts[i]))
        chosen: dict[int, _Expr] = {}
        used = 1  # the parentheses, less the operator the first part does not need
        for i in order:
            part = _fit(e.parts[i], budget - used - 1)
            if part is not None:
                chosen[i] = part
                used += _cost(part) + 1
        kept: list[_Expr | None] = [chosen[i] for i in sorted(chosen)]
        return _fit(_node(_AND, kept), budget) if len(kept) > 1 else (kept[0] if kept else None)
    # An OR keeps every disjunct: the most expensive relaxed until the whole fits.
    parts = list(e.parts)
    while True:
        excess = _cost(_Node(_OR, tuple(parts))) - budget if len(parts) > 1 else _cost(parts[0]) - budget
        if excess <= 0:
            break
        i = max(range(len(parts)), key=lambda j: _cost(parts[j]))
        relaxed = _fit(parts[i], _cost(parts[i]) - excess)
        if relaxed is None:
            return None  # a disjunct that matches everything: so does the OR
        parts[i] = relaxed
    return _node(_OR, list(parts))


# -- from the plan's Whoosh queries ---------------------------------------------------------------


def _value(field: str, text: str) -> str:
    return pair_token(text) if field in _PAIRS else token(text)


def _seconds(value: datetime, up: bool) -> int:
    stamp = value.replace(tzinfo=UTC).timestamp() if value.tzinfo is None else value.timestamp()
    return math.ceil(stamp) if up else math.floor(stamp)


def _tree(q: Q.Query, negate: bool = False) -> _Expr | None:
    """``q`` as an expression (``negate``: its complement); None for "every article"."""
    if isinstance(q, Q.Every):
        if negate:
            raise Untranslatable("NOT every article")
        return None
    if isinstance(q, Q.Term):
        array = _ARRAYS.get(q.fieldname)
        if array is None:
            raise Untranslatable(f"no Typesense field for {q.fieldname}")
        return _In(array, (_value(q.fieldname, q.text),), negate)
    if isinstance(q, Q.DateRange | Q.NumericRange):
        return _range(q, negate)
    if isinstance(q, Q.AndNot):
        if negate:  # NOT (a AND NOT b) = NOT a OR b
            return _node(_OR, [_tree(q.a, negate=True), _tree(q.b)])
        return _node(_AND, [_tree(q.a), _tree(q.b, negate=True)])
    if isinstance(q, Q.And | Q.Or):
        is_and = isinstance(q, Q.And) != negate  # De Morgan
        return _node(_AND if is_and else _OR, [_tree(sub, negate) for sub in q.subqueries])
    raise Untranslatable(f"cannot translate {type(q).__name__}")


def _range(q: Q.Query, negate: bool) -> _Expr | None:
    if q.fieldname != "published":
        raise Untranslatable(f"range on {q.fieldname}")
    if isinstance(q, Q.DateRange):
        start, end = q.startdate, q.enddate
    else:
        start, end = q.start, q.end
    parts: list[_Expr | None] = []
    if start is not None:
        parts.append(_Compare(f"published:{'<' if negate else '>='}{_seconds(start, up=True)}"))
    if end is not None:
        parts.append(_Compare(f"published:{'>' if negate else '<='}{_seconds(end, up=False)}"))
    return _node(_OR if negate else _AND, parts)


def translate(q: Q.Query, negate: bool = False, budget: int = MATCH_TOKENS, *, multi: Multi | None = None,
              scope: str | None = None) -> str | None:
    """``q`` as a ``filter_by`` expression of at most ``budget`` tokens (``negate``: its
    complement); None for "every article". A longer one is evaluated in parts with ``multi``
    when it can be (the module docstring says how), ``scope`` (the request's filters) applied to
    every part, else relaxed."""
    e = _tree(q, negate)
    if e is None or _cost(e) <= budget:
        return None if e is None else str(e)
    if multi is not None:
        try:
            ids = materialize(multi, e, scope, budget)
        except _Unquotable:
            ids = None
        if ids is not None and not any("`" in i for i in ids):
            return id_filter(ids)
    relaxed = _fit(e, budget)
    return None if relaxed is None else str(relaxed)


def id_filter(ids: list[str] | set[str]) -> str:
    """The articles ``ids`` (none: ``id:=[]`` matches nothing)."""
    return "id:=[" + ",".join(f"`{i}`" for i in sorted(ids)) + "]"


def materialize(multi: Multi, e: _Expr, scope: str | None, budget: int = MATCH_TOKENS,
                within: set[str] | None = None) -> set[str] | None:
    """The ids of the articles matching ``e`` (and ``scope``, and among ``within``), found by
    searches of at most ``budget`` tokens each; None when a part matches more than
    ``MATERIALIZE_CAP`` articles or an id cannot be written in a filter."""
    if _cost(e) <= budget:
        return _fetch(multi, [both(_within(within), both(scope, str(e)))])[0]
    if not isinstance(e, _Node):
        return None  # a single operand always fits
    if e.op == _OR:
        found: set[str] = set()
        for part in e.parts:
            ids = materialize(multi, part, scope, budget, within)
            if ids is None:
                return None
            found |= ids
        return found
    # An AND: conjuncts packed into groups that fit; the smallest group first, then the others
    # (and the conjuncts too big for any group) among its articles.
    groups: list[_Expr] = []
    large: list[_Expr] = []
    current: list[_Expr] = []
    for part in sorted(e.parts, key=_cost):
        if _cost(part) > budget:
            large.append(part)
            continue
        trial = _node(_AND, [*current, part])
        if current and trial is not None and _cost(trial) > budget:
            groups.append(_as_one(current))
            current = [part]
        else:
            current.append(part)
    if current:
        groups.append(_as_one(current))
    ids = None if within is None else set(within)
    if ids is None and groups:
        counts = [r.get("found", 0) for r in multi([_count_search(both(scope, str(g))) for g in groups])]
        first = min(range(len(groups)), key=lambda i: counts[i])
        if counts[first] > MATERIALIZE_CAP:
            return None
        ids = _fetch(multi, [both(scope, str(groups[first]))])[0]
        groups = groups[:first] + groups[first + 1:]
    if ids is None:  # only conjuncts too big for a group, and no ids to start from
        ids = materialize(multi, large[0], scope, budget)
        large = large[1:]
        if ids is None:
            return None
    if groups and ids:
        for found_ in _fetch(multi, [both(_within(ids), str(g)) for g in groups]):
            if found_ is None:
                return None
            ids &= found_
    for part in large:
        if not ids:
            break
        narrowed = materialize(multi, part, scope, budget, ids)
        if narrowed is None:
            return None
        ids = narrowed
    return ids


def _as_one(parts: list[_Expr]) -> _Expr:
    joined = _node(_AND, list(parts))
    assert joined is not None  # parts are never "every article"
    return joined


def _within(ids: set[str] | None) -> str | None:
    if ids is None:
        return None
    if any("`" in i for i in ids):
        raise _Unquotable
    return id_filter(ids)


class _Unquotable(Exception):
    """An id holding a backtick: no filter can name it."""


def _count_search(filter_by: str | None) -> dict[str, Any]:
    return {"q": "*", "per_page": 0, **({"filter_by": filter_by} if filter_by else {})}


def _fetch(multi: Multi, filters: list[str | None]) -> list[set[str] | None]:
    """The ids matching each filter (None for one matching more than ``MATERIALIZE_CAP``)."""
    out: list[set[str] | None] = []
    for start in range(0, len(filters), _BATCH):
        chunk = filters[start:start + _BATCH]
        searches = [{**_count_search(f), "per_page": _PAGE, "include_fields": "id"} for f in chunk]
        for f, result in zip(chunk, multi(searches)):
            found = int(result.get("found", 0))
            if found > MATERIALIZE_CAP:
                out.append(None)
                continue
            ids = {str(h["document"]["id"]) for h in result.get("hits", [])}
            if found > len(ids):
                more = [{**_count_search(f), "per_page": _PAGE, "page": p, "include_fields": "id"}
                        for p in range(2, (found + _PAGE - 1) // _PAGE + 1)]
                for page in multi(more):
                    ids |= {str(h["document"]["id"]) for h in page.get("hits", [])}
            out.append(ids)
    return out


def both(a: str | None, b: str | None) -> str | None:
    """Two filters that must both hold."""
    if a is None or b is None:
        return a if b is None else b
    return f"({a} && {b})"
