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

Bounded (``CHECK_ALL``): the engines check at most that many candidates, the newest first (the
next ones too while none of them holds the phrase, up to ``MAX_SAMPLES`` times as many). When
more hold every pair, those checked are a sample: the total and the facet counts are estimated
from the share of them that hold the phrase (the articles known either way counted exactly), the
ranked page is checked article by article, and the result says so in a note (docs/search.md).
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from index.analysis import analyze, fold, nfc
from index.api import FacetValue
from index.query import ParsedQuery, Unit

MIN_SYLLABLES = 3  # a phrase of two syllables is one pair: the index answers it exactly
MAX_RUNS = 16  # syllable sequences a quote split by compounds is checked as
CHECK_ALL = 100  # candidates checked per search step; more, and they are a sample (module docstring)
MAX_SAMPLES = 4  # ... CHECK_ALL more at a time while none holds the phrase, at most this many times
MAX_PAGE_CHECKS = 200  # candidates of the ranked page checked one by one, beyond the sample

# Characters that always leave a position gap between two tokens (``index.analysis._GAP_RE``,
# less "." and "-", which may join a compound or follow an abbreviation: those cases are settled
# by the analysis of the line).
_GAP_CHARS = r",;:!?…()\[\]{}\"“”«»–—•|\n"


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

    def verdict(self, article: StoredArticle, required: str = "all") -> bool:
        """Whether a stored article passes the checks: it holds a
        phrase of every checked clause (``required="all"``), of one of them at least (``"any"``:
        the partial tier, where an article matches some units only), or need hold none (``"none"``:
        it matched otherwise), and holds no excluded phrase."""
        found = (holds(article, quote) for clause in self.required for quote in clause)
        if required == "all":
            if not all(any(holds(article, quote) for quote in clause) for clause in self.required):
                return False
        elif required == "any" and self.required and not any(found):
            return False
        return not any(holds(article, quote) for quote in self.excluded)


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


# Between two syllables: the separators, or in a stored JSON string an escape sequence (a tab is
# "\t" there, and no gap). One pattern serves the JSON and the texts read from it: compiling one
# (its classes of marked letters) costs 2-5 ms, as much as checking some forty articles.
_RUN_SEPARATOR = rf"(?:[^\w{_GAP_CHARS}]|\\[a-z]|\\u[0-9a-fA-F]{{4}})+"


@lru_cache(maxsize=256)
def run_pattern(run: tuple[str, ...]) -> re.Pattern[str]:
    """Where ``run`` may stand in a text or in the JSON of a stored article: its syllables with no
    gap character between them, the last one a whole word (a superset of where it does:
    ``holds`` confirms). No look-behind for the first: it would keep ``re`` from scanning for
    the pattern's first character in C, several times slower (``_word_start`` checks it)."""
    return re.compile(_RUN_SEPARATOR.join(_syllable_pattern(s) for s in run) + r"(?!\w)")


def _word_start(text: str, at: int) -> bool:
    return at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")


class StoredArticle:
    """A stored article's JSON, its title and body (paragraphs and captions, as ``index.builder``
    indexes them) read from it only when a quick look at the JSON does not settle the check."""

    __slots__ = ("raw", "_texts", "quick")

    def __init__(self, doc_json: str) -> None:
        self.raw = doc_json
        self._texts: tuple[str, str] | None = None
        # The look at the JSON reads letters as written: not in an article stored decomposed (NFD)
        # or with its letters escaped ("\u1ea7"); ours are neither (index.builder).
        self.quick = "\\u" not in doc_json and unicodedata.is_normalized("NFC", doc_json)

    @classmethod
    def of_texts(cls, title: str, body: str) -> StoredArticle:
        return cls(json.dumps({"title": title, "body": body}, ensure_ascii=False))

    @property
    def texts(self) -> tuple[str, str]:
        if self._texts is None:
            doc = json.loads(self.raw)
            body = doc.get("body") or ""
            paragraphs = [body] if isinstance(body, str) else [str(p) for p in body]
            captions = [str(c) for c in doc.get("captions") or []]
            self._texts = nfc(str(doc.get("title") or "")), nfc("\n\n".join([*paragraphs, *captions]))
        return self._texts


def holds(article: StoredArticle, quote: Quote) -> bool:
    """Whether the article's title or body holds one of the quote's runs contiguously."""
    for run in quote.runs:
        # Nowhere in the JSON (whatever escapes it holds), nowhere in the texts: most candidates
        # that fail are settled here, without parsing the JSON.
        if article.quick and run_pattern(run).search(article.raw) is None:
            continue
        if any(_holds_run(text, run) for text in article.texts):
            return True
    return False


def _holds_run(text: str, run: tuple[str, ...]) -> bool:
    pattern = run_pattern(run)
    at = 0
    while (m := pattern.search(text, at)) is not None:
        at = m.start() + 1  # a later match may overlap this one
        if not _word_start(text, m.start()):
            continue
        words = m.group().split(" ")
        # Plain words one space apart: tokens of their own at consecutive positions (one space is
        # never a gap), so their folded forms settle it.
        if len(words) == len(run) and all(w.isalnum() and fold_word(w) == s for w, s in zip(words, run)):
            return True
        if _run_in_line(text, m.start(), m.end(), run):
            return True
    return False


def fold_word(word: str) -> str:
    """The folded form ``index.analysis.analyze`` gives a word of letters or digits."""
    return analyze(word)[0].folded


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
