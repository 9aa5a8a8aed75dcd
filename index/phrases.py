"""Quoted phrases mean contiguous: an article matches ``"Trần Văn Nam"`` only where those three
syllables stand next to each other, in order, with no punctuation between them.

Why a check of its own: the index stores no positions (``index.schema``), so the plan
(``index.plan``) matches a quoted phrase as the chain of its adjacent pairs, and a chain of three
or more syllables is also satisfied by pairs found in different places ("Trần Văn Hùng và Lê Văn
Nam" holds ``tran van`` and ``van nam``). As for copied passages (``index.passages``): the pairs
give the candidates, and each candidate's stored text is checked. Positions were not added to the
index: they would cost every build, for a check the stored text answers (docs/search.md says why).

What counts as contiguous is what makes a pair (``index.analysis``): the syllables' folded forms
(a phrase typed without marks still matches a text written with them), at consecutive positions
of the title or of the body (captions included), never across a gap (a comma, a full stop, a
line break: "Trần Văn, Nam" is not the phrase). A quote that a compound splits into several units
("UBND TP.HCM": ``ubnd`` and ``tp hcm | tphcm``) is checked as one phrase, any alternative of each
unit in turn (at most ``MAX_RUNS`` sequences).

The check, per article (``holds``): a regular expression, built once per phrase, finds where the
syllables may stand (any spelling that folds to them: every mark, both cases, i/y, a number's
separators and leading zeros, a compound's dots and hyphens), with no gap character between
them; where they are plain words one space apart, their folded forms settle it; otherwise that
line is analysed as the index analysed it and the run looked for among its tokens. So the answer
is the analyzer's own, at the cost of a regular expression over the text in most cases.

Bounded (``CHECK_ALL``): the engines check at most that many candidates, the newest first. When
more hold every pair, those checked are a sample: the total and the facet counts are estimated
from the share of them that hold the phrase (the articles known either way counted exactly), the
ranked page is checked article by article, and the result says so in a note (docs/search.md).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from index.analysis import analyze, fold, folded_form, nfc
from index.api import FacetValue
from index.query import ParsedQuery, Unit

MIN_SYLLABLES = 3  # a phrase of two syllables is one pair: the index answers it exactly
MAX_RUNS = 16  # syllable sequences a quote split by compounds is checked as
CHECK_ALL = 200  # candidates checked per search step; more, and they are a sample (module docstring)
MAX_PAGE_CHECKS = 400  # candidates of the ranked page checked one by one, beyond the sample

# Characters that always leave a position gap between two tokens (``index.analysis._GAP_RE``,
# less "." and "-", which may join a compound or follow an abbreviation: those cases are settled
# by the analysis of the line).
_GAP_CHARS = r",;:!?…()\[\]{}\"“”«»–—•|\n"
_SEPARATOR = rf"[^\w{_GAP_CHARS}]+"


@dataclass(frozen=True, slots=True)
class Quote:
    """A quoted phrase: the syllable sequences (folded) any of which must stand contiguous."""

    runs: tuple[tuple[str, ...], ...]
    checked: bool  # pairs alone do not answer it (3+ syllables, or split by a compound)


@dataclass(frozen=True, slots=True)
class Checks:
    """The phrase checks of one query. ``required``: for each clause made only of quoted phrases,
    those phrases (an article must hold one of them); ``excluded``: the phrases an article must not
    hold (``-"..."``). Only phrases that pairs alone do not answer are here."""

    required: tuple[tuple[Quote, ...], ...] = ()
    excluded: tuple[Quote, ...] = ()
    required_quotes: frozenset[int] = frozenset()  # ``Unit.quote`` ids of the quotes in ``required``
    excluded_quotes: frozenset[int] = frozenset()  # of those in ``excluded``: left out of the plan's exclusion

    def __bool__(self) -> bool:
        return bool(self.required or self.excluded)

    def verdict(self, texts: Sequence[str], required: str = "all") -> bool:
        """Whether an article with these texts (``article_texts``) passes the checks: it holds a
        phrase of every checked clause (``required="all"``), of one of them at least (``"any"``:
        the partial tier, where an article matches some units only), or need hold none (``"none"``:
        it matched otherwise), and holds no excluded phrase."""
        found = (holds(texts, quote) for clause in self.required for quote in clause)
        if required == "all":
            if not all(any(holds(texts, quote) for quote in clause) for clause in self.required):
                return False
        elif required == "any" and self.required and not any(found):
            return False
        return not any(holds(texts, quote) for quote in self.excluded)


def _quotes(units: Iterable[Unit]) -> dict[int, Quote]:
    grouped: dict[int, list[Unit]] = {}
    for unit in units:
        if unit.quote is not None:
            grouped.setdefault(unit.quote, []).append(unit)
    out: dict[int, Quote] = {}
    for number, members in grouped.items():
        combos = itertools.islice(itertools.product(*(u.alternatives for u in members)), MAX_RUNS)
        runs = tuple(dict.fromkeys(tuple(s for alt in combo for s in alt.folded) for combo in combos))
        checked = len(members) > 1 or any(len(run) >= MIN_SYLLABLES for run in runs)
        out[number] = Quote(runs, checked)
    return out


def checks_of(parsed: ParsedQuery) -> Checks:
    """The checks ``parsed`` needs. A clause joining a quoted phrase to plain words by OR keeps the
    pairs' answer (the plain words' match set is no text to check)."""
    units = [u for clause in parsed.clauses for u in clause.units]
    quotes = _quotes(units)
    required: list[tuple[Quote, ...]] = []
    required_quotes: set[int] = set()
    for clause in parsed.clauses:
        numbers = [u.quote for u in clause.units]
        if any(n is None for n in numbers):
            continue
        distinct = [n for n in dict.fromkeys(numbers) if n is not None]
        clause_quotes = tuple(quotes[n] for n in distinct)
        if any(q.checked for q in clause_quotes):
            required_quotes.update(distinct)
            if clause_quotes not in required:
                required.append(clause_quotes)
    excluded = {n: q for n, q in _quotes(parsed.excluded).items() if q.checked}
    return Checks(tuple(required), tuple(excluded.values()), frozenset(required_quotes), frozenset(excluded))


# -- the text check -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _letter_classes() -> dict[str, str]:
    """For each ASCII letter, every letter that folds to it (marks, both cases, đ and its look-alikes)."""
    classes: dict[str, set[str]] = {}
    for cp in [*range(0x41, 0x7B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        ch = chr(cp)
        if ch.isalpha():
            folded = fold(ch.lower())
            if len(folded) == 1 and folded.isascii() and folded.isalpha():
                classes.setdefault(folded, set()).update({ch, ch.upper(), ch.lower()})
    classes["d"] |= {"Ð", "ð", "Ɖ", "ɖ"}
    # The analyzer spells a lone i/y after a consonant "i" ("kỹ" -> "kĩ"): either may be written.
    classes["i"] = classes["y"] = classes["i"] | classes["y"]
    return {k: "[" + "".join(sorted(v)) + "]" for k, v in classes.items()}


def _syllable_pattern(syllable: str) -> str:
    """Any spelling the analyzer folds to ``syllable``: every mark and case of each letter, a dot
    or hyphen between two characters (a compound's joined token, "tphcm" from "TP.HCM"; a number's
    groups, "1500" from "1.500"), leading zeros before a number ("6" from "06")."""
    classes = _letter_classes()
    parts = []
    for i, ch in enumerate(syllable):
        if i:
            parts.append(r"[.\-]?")
        if ch.isdigit():
            parts.append(("0*" if i == 0 else "") + ch)
        else:
            parts.append(classes.get(ch, re.escape(ch)))
    return "".join(parts)


@lru_cache(maxsize=256)
def run_pattern(run: tuple[str, ...]) -> re.Pattern[str]:
    """Where ``run`` may stand in a text: its syllables as whole words, with no gap character
    between them (a superset of where it does: ``holds`` confirms)."""
    body = _SEPARATOR.join(_syllable_pattern(s) for s in run)
    return re.compile(rf"(?<!\w){body}(?!\w)")


def article_texts(doc_json: str) -> tuple[str, str]:
    """The title and the body (paragraphs and captions, as ``index.builder`` indexes them) of a
    stored article (its JSON), NFC as the analyzer reads them."""
    doc = json.loads(doc_json)
    body = doc.get("body") or ""
    paragraphs = [body] if isinstance(body, str) else [str(p) for p in body]
    captions = [str(c) for c in doc.get("captions") or []]
    return nfc(str(doc.get("title") or "")), nfc("\n\n".join([*paragraphs, *captions]))


def holds(texts: Sequence[str], quote: Quote) -> bool:
    """Whether one of ``texts`` holds one of the quote's runs contiguously."""
    return any(_holds_run(text, run) for run in quote.runs for text in texts)


def _holds_run(text: str, run: tuple[str, ...]) -> bool:
    pattern = run_pattern(run)
    at = 0
    while (m := pattern.search(text, at)) is not None:
        words = m.group().split(" ")
        # Plain words one space apart: tokens of their own at consecutive positions (one space is
        # never a gap), so their folded forms are the answer.
        if len(words) == len(run) and all(w.isalnum() and folded_form(w) == s for w, s in zip(words, run)):
            return True
        if _run_in_line(text, m.start(), m.end(), run):
            return True
        at = m.start() + 1  # a later match may overlap this one
    return False


def _run_in_line(text: str, start: int, end: int, run: tuple[str, ...]) -> bool:
    """Whether the line around ``text[start:end]`` holds ``run`` at consecutive positions, as
    ``index.analysis.analyze`` reads it (a line break is always a gap: a run never crosses one)."""
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    tokens = analyze(text[first : len(text) if last < 0 else last])
    at: dict[int, list[int]] = {}  # position -> indexes of the tokens starting there
    for i, tok in enumerate(tokens):
        at.setdefault(tok.pos, []).append(i)

    def follows(i: int, k: int) -> bool:
        if k == len(run):
            return True
        return any(tokens[j].folded == run[k] and follows(j, k + 1) for j in at.get(tokens[i].end_pos + 1, ()))

    return any(tok.folded == run[0] and follows(i, 1) for i, tok in enumerate(tokens))


# -- beyond the bound: estimates, computed alike by both engines -----------------------------------


def estimate(count: int, unknown: int, share: float) -> int:
    """``count`` matches, ``unknown`` of them not checked: those counted at the sample's ``share``."""
    return count - unknown + round(share * unknown)


def estimated_facets(
    counted: dict[str, list[FacetValue]], unknown: dict[str, list[FacetValue]], share: float
) -> dict[str, list[FacetValue]]:
    """Facet counts over every match (``counted``), those of the articles not checked
    (``unknown``, a part of them) counted at the sample's ``share``; values left at 0 dropped."""
    out: dict[str, list[FacetValue]] = {}
    for name, values in counted.items():
        guessed = {v.slug: v.count for v in unknown.get(name, [])}
        kept = [FacetValue(v.value, v.slug, estimate(v.count, guessed.get(v.slug, 0), share)) for v in values]
        kept = [v for v in kept if v.count > 0]
        # In the order of index.search._facet_values: categories by count, years and months by value.
        out[name] = sorted(kept, key=lambda f: (-f.count, f.slug)) if name == "category" else kept
    return out


def estimate_note(total: int, sampled: int, unsure: int) -> str:
    """The result's note when the total is an estimate."""
    return (
        f"about {total:,} results: the quoted phrase was checked in the newest {sampled} of the {unsure:,} "
        "articles holding its pairs and in those shown; the total and the counts are estimated from them"
    )
