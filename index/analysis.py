"""Vietnamese text analysis: one function that turns text into indexable syllable tokens.

Why we write this ourselves instead of using a stock analyzer or a word segmenter:

* Vietnamese is written as space-separated *syllables*; words are one to four syllables. Word
  segmenters were measured to lose most recall on queries typed without tone marks, and they split
  a query differently from the document it should find. So the matching unit here is the syllable,
  and adjacency of syllables (the ``pair`` terms) stands in for words.
* Readers type with or without tone marks, composed or decomposed, with the tone on either vowel
  ("hoà"/"hòa"), with "kĩ"/"kỹ" spellings, with look-alike letters (Ð U+00D0 for Đ U+0110). None of
  Whoosh's analyzers know these rules; Whoosh's ``\\w+`` tokenizer even cuts decomposed words apart.
* Vietnamese writes numbers with "." as a thousands separator ("1.500" is 1500), dates as
  "26/6/2014" or "26/06/2014", and abbreviations as "TP.HCM", "KT-VH-XH", "U.23".

The pipeline (the same for documents and queries, so both sides always agree):

1. NFC, and Ð/ð/Ɖ/ɖ mapped to Đ/đ.
2. Tokens are syllables. Numbers are kept whole ("1.500" -> ``1500``) with leading zeros dropped
   ("06" -> ``6``). Compounds joined by "." or "-" ("TP.HCM", "KT-VH-XH", "U.23", "Covid-19") give
   their parts plus one joined token (``tphcm``, ``ktvhxh``, ``u23``) when their parts are
   abbreviations (all capitals) or mix letters and digits.
3. Sentence and clause punctuation (. , ; : ! ? … brackets, quotes, dashes, line breaks) leaves a
   position gap, so "Quốc hội. Nghị quyết" never gives the adjacent pair "hội nghị". A dot after an
   all-capital abbreviation ("TP. HCM") is not a sentence end.
4. Lowercase; one tone placement (the tone on the first vowel of an open two-vowel syllable: "hòa",
   "thủy", "khỏe"; on the last vowel when a final consonant follows: "hoàng"; on the vowel with a
   shape mark when there is one: "việt", "người"); a lone i/y after a consonant is spelt "i"
   ("kỹ" -> "kĩ", "quý" -> "quí", "lý" -> "lí"), while "hai"/"hay" stay apart.
5. Each token has an ``exact`` form (step 4, marks kept) and a ``folded`` form (marks stripped,
   đ -> d) used for matching; ``pairs()`` gives adjacent folded pairs, never across a gap.

No stopwords are removed: "không" is part of "không quân".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Token", "analyze", "normalize_syllable", "fold", "folded_form", "pairs", "PAIR_SEP", "nfc"]

PAIR_SEP = " "

_LOOKALIKES = str.maketrans({"Ð": "Đ", "Ɖ": "Đ", "ð": "đ", "ɖ": "đ"})

# A word: letters/digits, possibly joined by "." or "-" to more letters/digits (TP.HCM, 1.500, U.23).
# Combining marks are included in case a caller passes text that NFC could not compose.
_WORD = r"[^\W_][\w\u0300-\u036f]*"
_TOKEN_RE = re.compile(rf"{_WORD}(?:[.\-]{_WORD})*")
# Separators between tokens that end a sentence or clause (a position gap).
_GAP_RE = re.compile(r"[.,;:!?…()\[\]{}\"“”«»–—•|\n]|\s-\s|^-|'\s|\s'")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:\.\d{3})+")

# Combining marks: tones are placed by rule; shape marks (breve, circumflex, horn) belong to the vowel.
_TONES = {"\u0300": 1, "\u0301": 2, "\u0309": 3, "\u0303": 4, "\u0323": 5}
_TONE_MARKS = {v: k for k, v in _TONES.items()}
_VOWELS = set("aăâeêioôơuưy")
_SHAPED = set("ăâêôơư")
_FINALS = {"", "c", "ch", "m", "n", "ng", "nh", "p", "t"}


@dataclass(slots=True, frozen=True)
class Token:
    exact: str  # lowercase, canonical tone placement, marks kept
    folded: str  # marks stripped, đ -> d
    pos: int  # position; a gap at punctuation makes neighbours differ by 2
    end_pos: int  # last position covered (a joined compound token covers its parts)
    start: int  # character offsets in the NFC text
    end: int


def nfc(text: str) -> str:
    """NFC plus the Đ look-alike mapping: the first step for any text, document or query."""
    text = unicodedata.normalize("NFC", text)
    # ``translate`` with a mapping looks every character up: a few substring scans first are
    # cheaper, and texts almost never hold a look-alike (measured: a tenth of a build's nfc time).
    if "Ð" in text or "ð" in text or "Ɖ" in text or "ɖ" in text:
        return text.translate(_LOOKALIKES)
    return text


@lru_cache(maxsize=1 << 18)
def fold(text: str) -> str:
    """Strip every mark and map đ to d (NFD does not decompose đ, so it needs its own rule)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def split_tone(word: str) -> tuple[list[str], str | None, int] | None:
    """``word``'s letters (NFC, each with its shape marks: ơ, ă, ê...), its tone mark (the combining
    character; None without one) and the index of the letter that carries it (-1 without one).
    None when a mark comes before any letter: not a syllable. Case is kept."""
    letters: list[str] = []
    tone, tone_at = None, -1
    for ch in unicodedata.normalize("NFD", word):
        if ch in _TONES:
            tone, tone_at = ch, len(letters) - 1
        elif unicodedata.combining(ch):
            if not letters:
                return None
            letters[-1] = unicodedata.normalize("NFC", letters[-1] + ch)
        else:
            letters.append(ch)
    return letters, tone, tone_at


@lru_cache(maxsize=1 << 18)
def normalize_syllable(word: str) -> str:
    """Lowercase and put the tone mark where the canonical spelling has it (see module docstring).

    Words that are not Vietnamese syllables (foreign names, numbers) are only lowercased.
    """
    word = unicodedata.normalize("NFC", word.lower())
    if not word.isalpha():
        return word
    parts = split_tone(word)
    if parts is None:
        return word
    letters, mark, _ = parts
    tone = _TONES[mark] if mark else 0
    base = "".join(letters)
    # Onset: consonants before the first vowel; "qu" and "gi" (before another vowel) are onsets too.
    start = 0
    while start < len(base) and base[start] not in _VOWELS:
        start += 1
    if base.startswith("qu") and len(base) > 2 and base[2] in _VOWELS:
        start = 2
    elif base.startswith("gi") and len(base) > 2 and base[2] in _VOWELS:
        start = 2
    end = start
    while end < len(base) and base[end] in _VOWELS:
        end += 1
    onset, nucleus, final = base[:start], base[start:end], base[end:]
    if not nucleus or final not in _FINALS or len(nucleus) > 3:
        return word
    if nucleus in ("y", "i") and onset and not final:
        nucleus = "i"
    if tone:
        shaped = [i for i, ch in enumerate(nucleus) if ch in _SHAPED]
        if shaped:
            at = shaped[-1]
        elif len(nucleus) == 1:
            at = 0
        elif final:
            at = len(nucleus) - 1
        elif len(nucleus) == 3:
            at = 1
        else:
            at = 0
        nucleus = nucleus[:at] + nucleus[at] + _TONE_MARKS[tone] + nucleus[at + 1 :]
    return unicodedata.normalize("NFC", onset + nucleus + final)


def _number(text: str) -> str:
    """Digits without leading zeros ("06" -> "6"), so dates match padded or not."""
    stripped = text.lstrip("0")
    return stripped or "0"


def _is_abbreviation(part: str) -> bool:
    return part.isupper() and part.isalpha()


# A word's (exact, folded) forms, by the word as written. ``normalize_syllable`` and ``fold`` keep
# their own caches, but two cache lookups (with lru_cache's bookkeeping) for every word are a good
# part of analysing a text, and a corpus has few distinct words; emptied when full.
_FORMS: dict[str, tuple[str, str]] = {}
_FORMS_MAX = 1 << 17


def _forms(word: str) -> tuple[str, str]:
    """``word``'s (exact, folded) forms: a number without its leading zeros (both forms), else
    ``normalize_syllable`` and its ``fold``."""
    forms = _FORMS.get(word)
    if forms is None:
        if word.isdigit():
            exact = _number(word)
            forms = (exact, exact)
        else:
            exact = normalize_syllable(word)
            forms = (exact, fold(exact))
        if len(_FORMS) >= _FORMS_MAX:
            _FORMS.clear()
        _FORMS[word] = forms
    return forms


def folded_form(word: str) -> str:
    """The folded form ``analyze`` gives ``word`` when it stands alone (a word of letters or
    digits, NFC): what the phrase check (``index.phrases``) compares without analysing a text."""
    return _forms(word)[1]


_new = object.__new__
_SLOTS = vars(Token)  # the slots' descriptors
_set_exact = _SLOTS["exact"].__set__
_set_folded = _SLOTS["folded"].__set__
_set_pos = _SLOTS["pos"].__set__
_set_end_pos = _SLOTS["end_pos"].__set__
_set_start = _SLOTS["start"].__set__
_set_end = _SLOTS["end"].__set__


def _token(exact: str, folded: str, pos: int, end_pos: int, start: int, end: int) -> Token:
    """``Token(exact, folded, pos, end_pos, start, end)``, made without the frozen dataclass's
    ``__init__``, which sets each field through ``object.__setattr__``: that was over a tenth of
    analysing a text (measured 2.2 against 0.9 µs a token). The same object in the end."""
    tok = _new(Token)
    _set_exact(tok, exact)
    _set_folded(tok, folded)
    _set_pos(tok, pos)
    _set_end_pos(tok, end_pos)
    _set_start(tok, start)
    _set_end(tok, end)
    return tok


def _emit_word(word: str, start: int, pos: int, out: list[Token]) -> None:
    exact, folded = _forms(word)
    out.append(_token(exact, folded, pos, pos, start, start + len(word)))


def analyze(text: str) -> list[Token]:
    """Tokens of ``text`` (which must already be NFC: call ``nfc()`` first on untrusted input).

    Offsets refer to ``text`` itself so callers can highlight the original characters.
    """
    tokens: list[Token] = []
    append = tokens.append
    forms_of = _FORMS.get
    token = _token
    gap = _GAP_RE.search
    pos = -1
    last_end = 0
    for m in _TOKEN_RE.finditer(text):
        raw = m.group()
        start, end = m.span()
        # One space, by far the commonest separator, is never a gap: no regex for it.
        if pos >= 0 and not (start - last_end == 1 and text[last_end] == " "):
            between = text[last_end:start]
            if gap(between):
                # A dot right after an abbreviation ("TP. HCM") does not end a sentence.
                after_abbreviation = (
                    between.strip() == "."
                    and tokens
                    and tokens[-1].start < start
                    and _is_abbreviation(text[tokens[-1].start:tokens[-1].end])
                )
                if not after_abbreviation:
                    pos += 1
        last_end = end
        if "." not in raw and "-" not in raw:
            pos += 1
            forms = forms_of(raw) or _forms(raw)  # _emit_word, inlined: most tokens come here
            append(token(forms[0], forms[1], pos, pos, start, end))
            continue
        if _THOUSANDS_RE.fullmatch(raw):
            pos += 1
            digits = _number(raw.replace(".", ""))
            append(token(digits, digits, pos, pos, start, end))
            continue
        _emit_compound(raw, start, tokens, pos)
        pos = tokens[-1].end_pos if tokens else pos
    return tokens


def _emit_compound(raw: str, start: int, tokens: list[Token], pos: int) -> None:
    """Parts of "TP.HCM"/"KT-VH-XH"/"U.23"/"26.6": each part, plus a joined token when useful."""
    pieces = [(m.group(), m.start(), raw[m.end() : m.end() + 1]) for m in re.finditer(r"[^.\-]+", raw)]
    first_pos = pos + 1
    joinable = all(_is_abbreviation(p) or p.isdigit() for p, _, _ in pieces) and any(
        p.isalpha() for p, _, _ in pieces
    )
    mixed = any(p.isdigit() for p, _, _ in pieces) and any(not p.isdigit() for p, _, _ in pieces)
    for i, (piece, offset, sep) in enumerate(pieces):
        pos += 1
        _emit_word(piece, start + offset, pos, tokens)
        # "nước.Đại" (a missing space after a full stop): the dot ends a sentence.
        if sep == "." and i + 1 < len(pieces) and not _is_abbreviation(piece) and not piece.isdigit():
            if pieces[i + 1][0][:1].isupper():
                pos += 1
    if (joinable or mixed) and len(pieces) > 1:
        joined_exact = "".join(t.exact for t in tokens[-len(pieces) :])
        joined = _token(joined_exact, fold(joined_exact), first_pos, pos, start, start + len(raw))
        tokens.append(joined)


def _in_a_row(tokens: list[Token]) -> tuple[list[str], list[int]] | None:
    """(folded forms, positions) of ``tokens`` when no token covers several positions (no joined
    compound: nearly every text), else None.

    Then each position holds one token and positions rise along the list, so the token at a
    position p + k, if any, can only be the next one when it is not at p + 1..p + k - 1: ``pairs``
    and ``bridges`` need only compare neighbours, which is what they cost most of the time
    (measured: half of ``pairs``' time went to its position table)."""
    positions = [t.pos for t in tokens]
    if positions != [t.end_pos for t in tokens]:
        return None
    return [t.folded for t in tokens], positions


def bridges(tokens: list[Token]) -> list[str]:
    """Folded terms of the two syllables on either side of a gap (punctuation, a sentence end, a
    line break: ``analyze`` leaves one position empty there): "hien voi" for "thực hiện. Với".

    Pairs never cross a gap, so that a phrase stays a phrase; a passage copied across one still
    has to be found (``index.passages``), and these terms, indexed in a field of their own, give
    it the pair its break would otherwise lose.
    """
    simple = _in_a_row(tokens)
    if simple is not None:  # the same terms, without the position table
        folded, positions = simple
        return [a + PAIR_SEP + b for a, b, p, q in zip(folded, folded[1:], positions, positions[1:], strict=False)
                if q == p + 2]
    by_pos: dict[int, list[Token]] = {}
    for tok in tokens:
        by_pos.setdefault(tok.pos, []).append(tok)
    out: list[str] = []
    for tok in tokens:
        if tok.end_pos + 1 in by_pos:
            continue
        for nxt in by_pos.get(tok.end_pos + 2, ()):
            out.append(tok.folded + PAIR_SEP + nxt.folded)
    return out


def pairs(tokens: list[Token]) -> list[str]:
    """Folded terms of adjacent syllables ("hoi nghi"), never across a gap.

    Two tokens are adjacent when the second starts right after the first ends, so a joined
    compound ("tphcm") pairs with its neighbours outside the compound.
    """
    simple = _in_a_row(tokens)
    if simple is not None:  # the same terms, without the position table
        folded, positions = simple
        return [a + PAIR_SEP + b for a, b, p, q in zip(folded, folded[1:], positions, positions[1:], strict=False)
                if q == p + 1]
    by_pos: dict[int, list[Token]] = {}
    for tok in tokens:
        by_pos.setdefault(tok.pos, []).append(tok)
    out: list[str] = []
    for tok in tokens:
        for nxt in by_pos.get(tok.end_pos + 1, ()):
            out.append(tok.folded + PAIR_SEP + nxt.folded)
    return out
