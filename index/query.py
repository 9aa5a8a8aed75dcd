"""The reader's query language, parsed by hand into units the planner (``index.plan``) matches.

Why not Whoosh's QueryParser: it analyses each space-separated chunk on its own, which breaks
Vietnamese compounds and our pair terms, and it raises on unbalanced syntax. This parser accepts
any input and degrades malformed syntax to a plain search; it never raises.

Syntax:

* plain words: every syllable required; a run of plain words is one *unit* whose adjacent
  syllables are matched as pairs first (see the tiers in ``index.plan``);
* ``"quoted phrase"``: adjacent, in order, never relaxed (curly quotes too; an unclosed quote runs
  to the end of the query);
* ``-word`` / ``-"phrase"``: exclude;
* ``a OR b`` (also ``|``): either unit; OR binds the units on each side of it, and a run of plain
  words is one unit, so ``dak nong OR lam dong`` means (đắk nông) or (lâm đồng);
* ``category:the-thao`` (slug or label, repeatable) and ``source:"Tuổi Trẻ"`` filters.

Units are split further where the query has punctuation (no adjacency across a comma), where it
has a compound (``TP.HCM`` gives the alternatives ``tp hcm`` and ``tphcm``) and where a synonym
group matches (``UBND`` also means ``ủy ban nhân dân``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from index.analysis import Token, analyze, fold, nfc
from index.api import MAX_QUERY_CHARS
from index.synonyms import Synonyms, default_synonyms
from index.telex import decode as telex_decode


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way to match a unit: a sequence of syllables that must be adjacent (if more than one)."""

    folded: tuple[str, ...]
    exact: tuple[str, ...]  # canonical forms as typed (marks kept) for exact-diacritics ranking
    marked: tuple[bool, ...]  # whether the reader typed marks on each syllable


@dataclass(slots=True)
class Unit:
    alternatives: list[Alternative]
    phrase: bool = False  # quoted: adjacency is never relaxed
    # Which quoted phrase of the query it comes from (0, 1, ... in order; None: not quoted). A
    # quote is split into several units at a compound ("TP.HCM" keeps its alternatives), and the
    # phrase check (``index.phrases``) puts them back together.
    quote: int | None = None
    # Used only when no alternative can match: the Telex/VNI reading ("hooij nghij" -> hội nghị).
    fallbacks: list[Alternative] = field(default_factory=list)

    @property
    def main(self) -> Alternative:
        return self.alternatives[0]


@dataclass(slots=True)
class Clause:
    """Units joined by OR (a single unit most of the time)."""

    units: list[Unit]


@dataclass(slots=True)
class ParsedQuery:
    text: str  # the query actually used (cleaned, cut)
    clauses: list[Clause] = field(default_factory=list)
    excluded: list[Unit] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.clauses

    def syllables(self) -> list[str]:
        """Folded syllables of every main alternative, in order (for fuzzy and partial tiers)."""
        return [s for c in self.clauses for u in c.units for s in u.main.folded]


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u2060\ufeff]")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "＂": '"'})
_PIECE_RE = re.compile(
    r"""(?P<neg>-)?"(?P<phrase>[^"]*)"?"""
    r"""|(?P<field>category|source|chuyenmuc|nguon):(?:"(?P<fq>[^"]*)"?|(?P<fv>\S*))"""
    r"""|(?P<or>\bOR\b|\|)"""
    r"""|(?P<word>\S+)""",
    re.IGNORECASE,
)


def clean_query(raw: str) -> tuple[str, list[str]]:
    """NFC, control characters out, whitespace folded, cut at MAX_QUERY_CHARS (with a note)."""
    notes: list[str] = []
    text = nfc(_CONTROL_RE.sub(" ", raw or "")).translate(_QUOTES)
    text = " ".join(text.split())
    if len(text) > MAX_QUERY_CHARS:
        cut = text[:MAX_QUERY_CHARS]
        if " " in cut[MAX_QUERY_CHARS // 2 :]:
            cut = cut[: cut.rfind(" ")]
        text = cut
        notes.append(f"query cut to {MAX_QUERY_CHARS} characters")
    return text, notes


def parse(raw: str, synonyms: Synonyms | None = None) -> ParsedQuery:
    synonyms = synonyms or default_synonyms()
    text, notes = clean_query(raw)
    parsed = ParsedQuery(text=text, notes=notes)
    run: list[str] = []
    pending_or = False
    units_in_order: list[tuple[list[Unit], bool]] = []  # (units, joined to previous by OR)
    quotes = 0

    def flush_run() -> None:
        nonlocal pending_or
        if run:
            units = units_from_text(" ".join(run), synonyms, phrase=False)
            run.clear()
            if units:
                _add(units_in_order, units, pending_or)
                pending_or = False

    for m in _PIECE_RE.finditer(text):
        if m.group("phrase") is not None:
            flush_run()
            units = units_from_text(m.group("phrase"), synonyms, phrase=True)
            if not units:
                continue
            for unit in units:
                unit.quote = quotes
            quotes += 1
            if m.group("neg"):
                parsed.excluded.extend(units)
            else:
                _add(units_in_order, units, pending_or)
                pending_or = False
        elif m.group("field"):
            flush_run()
            value = (m.group("fq") if m.group("fq") is not None else m.group("fv") or "").strip()
            if value:
                key = m.group("field").lower()
                (parsed.categories if key in ("category", "chuyenmuc") else parsed.sources).append(value)
        elif m.group("or"):
            flush_run()
            pending_or = bool(units_in_order)
        else:
            word = m.group("word")
            if word.startswith("-") and len(word) > 1:
                flush_run()
                parsed.excluded.extend(units_from_text(word[1:], synonyms, phrase=False))
                continue
            run.append(word)
    flush_run()
    parsed.clauses = [Clause(units) for units, _ in units_in_order]
    _cap(parsed)
    return parsed


MAX_QUERY_SYLLABLES = 32


def _cap(parsed: ParsedQuery) -> None:
    """At most MAX_QUERY_SYLLABLES syllables are searched (with a note): a 256-character query of
    common words ("và của là ...") otherwise costs seconds of CPU in the wider tiers."""
    total = 0
    kept: list[Clause] = []
    for clause in parsed.clauses:
        size = max(len(u.main.folded) for u in clause.units)
        if total + size > MAX_QUERY_SYLLABLES and kept:
            parsed.notes.append(f"only the first {MAX_QUERY_SYLLABLES} syllables were searched")
            break
        kept.append(clause)
        total += size
    parsed.clauses = kept


def _add(units_in_order: list[tuple[list[Unit], bool]], units: list[Unit], joined_by_or: bool) -> None:
    """Append units; with OR, the first new unit joins the last clause as an alternative."""
    if joined_by_or and units_in_order:
        units_in_order[-1][0].append(units[0])
        units = units[1:]
    for unit in units:
        units_in_order.append(([unit], False))


def _is_marked(token: Token, surface: str) -> bool:
    """Did the reader type diacritics on this syllable? (``đ`` counts as a mark.)"""
    return token.exact != token.folded or any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", surface))


def units_from_text(text: str, synonyms: Synonyms, phrase: bool) -> list[Unit]:
    """Split a run of words into units at punctuation gaps, compounds and synonym matches."""
    text = nfc(text)
    tokens = analyze(text)
    if not tokens:
        return []
    # Linear syllables (parts of compounds) and the joined compound tokens beside them.
    linear = [t for t in tokens if t.end_pos == t.pos]
    joined = {t.pos: t for t in tokens if t.end_pos != t.pos}
    segments: list[list[Token]] = []
    for tok in linear:
        if segments and segments[-1][-1].pos + 1 == tok.pos and not phrase_break(segments[-1][-1], tok, joined):
            segments[-1].append(tok)
        else:
            segments.append([tok])
    units: list[Unit] = []
    for seg in segments:
        units.extend(_segment_units(seg, joined, synonyms, phrase, text))
    if phrase and len(units) > 1 and not any(len(u.alternatives) > 1 for u in units):
        # A quoted phrase stays one unit even across a comma inside the quotes.
        merged = _alt([t for u in units for t in zip(u.main.folded, u.main.exact, u.main.marked)])
        units = [Unit([merged], phrase=True)]
    return units


def phrase_break(prev: Token, tok: Token, joined: dict[int, Token]) -> bool:
    """A compound ("TP.HCM") starts or ends its own unit so its alternatives stay intact."""
    return any(j.pos <= prev.pos <= j.end_pos and not (j.pos <= tok.pos <= j.end_pos) for j in joined.values()) or any(
        j.pos <= tok.pos <= j.end_pos and not (j.pos <= prev.pos <= j.end_pos) for j in joined.values()
    )


def _alt(items: list[tuple[str, str, bool]]) -> Alternative:
    return Alternative(tuple(i[0] for i in items), tuple(i[1] for i in items), tuple(i[2] for i in items))


def _segment_units(seg: list[Token], joined: dict[int, Token], synonyms: Synonyms, phrase: bool,
                   text: str) -> list[Unit]:
    items = [(t.folded, t.exact, _is_marked(t, text[t.start:t.end])) for t in seg]
    folded = [i[0] for i in items]
    compound = joined.get(seg[0].pos)
    if compound is not None and compound.end_pos == seg[-1].pos:
        # The whole segment is one compound: "TP.HCM" -> (tp hcm) | (tphcm), plus its synonyms.
        alts = [_alt(items), _alt([(compound.folded, compound.exact, False)])]
        found = synonyms.find(folded, 0) if not phrase else None
        if found and found[0] == len(folded):
            alts += [_alt([(f, e, False) for f, e in zip(form.folded, form.exact)]) for form in found[1]]
        found_joined = synonyms.find([compound.folded], 0) if not phrase else None
        if found_joined:
            alts += [_alt([(f, e, False) for f, e in zip(form.folded, form.exact)]) for form in found_joined[1]]
        return [Unit(_dedupe(alts), phrase=phrase)]
    if phrase:
        return [Unit([_alt(items)], phrase=True)]
    decoded = []
    for t, item in zip(seg, items):
        syllable = telex_decode(text[t.start:t.end])
        decoded.append((fold(syllable), syllable, True) if syllable else item)
    units: list[Unit] = []
    plain_start = 0
    i = 0

    def plain_unit(a: int, b: int) -> Unit:
        fallback = _alt(decoded[a:b])
        return Unit([_alt(items[a:b])], fallbacks=[fallback] if decoded[a:b] != items[a:b] else [])

    while i < len(items):
        found = synonyms.find(folded, i)
        if found:
            length, forms = found
            if plain_start < i:
                units.append(plain_unit(plain_start, i))
            typed = _alt(items[i : i + length])
            alts = [typed] + [_alt([(f, e, False) for f, e in zip(form.folded, form.exact)]) for form in forms]
            units.append(Unit(_dedupe(alts)))
            i += length
            plain_start = i
        else:
            i += 1
    if plain_start < len(items):
        units.append(plain_unit(plain_start, len(items)))
    return units


def _dedupe(alts: list[Alternative]) -> list[Alternative]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for alt in alts:
        if alt.folded not in seen:
            seen.add(alt.folded)
            out.append(alt)
    return out
