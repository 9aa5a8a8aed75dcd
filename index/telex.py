"""Decode Telex and VNI keystrokes typed with the input method switched off ("hooij nghij" = hội nghị).

Real query logs are full of them. We write the decoder ourselves because it is a few dozen lines of
well-known rules and no maintained package does only this. ``decode`` returns the syllable only when
the result is a well-formed Vietnamese syllable, so ordinary words ("news", "covid") stay as typed.
The query parser offers the decoded form as an extra alternative, never as a replacement.
"""

from __future__ import annotations

import re
import unicodedata

from index.analysis import normalize_syllable

_TELEX_TONES = {"s": "\u0301", "f": "\u0300", "r": "\u0309", "x": "\u0303", "j": "\u0323"}
_VNI_TONES = {"1": "\u0301", "2": "\u0300", "3": "\u0309", "4": "\u0303", "5": "\u0323"}
_TELEX_SHAPES = [("dd", "đ"), ("aa", "â"), ("aw", "ă"), ("ee", "ê"), ("oo", "ô"), ("uow", "ươ"), ("ow", "ơ"),
                 ("uw", "ư"), ("w", "ư")]
_VNI_SHAPES = [("d9", "đ"), ("a6", "â"), ("a8", "ă"), ("e6", "ê"), ("o6", "ô"), ("uo7", "ươ"), ("o7", "ơ"),
               ("u7", "ư")]
_NUCLEI = ("a ă â e ê i o ô ơ u ư y ai ao au ay âu ây eo êu ia iê iu oa oă oe oi ôi ơi oo ua uâ uê ui uô uơ "
           "ưa ưi ưu ươ uy yê iêu oai oay oeo uây uôi uya uyê uyu ươi ươu yêu").split()
_SYLLABLE_RE = re.compile(
    r"^(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnpqrstvx])?"
    r"(?:" + "|".join(sorted(_NUCLEI, key=len, reverse=True)) + r")(?:ch|ng|nh|[cmnptk])?$"
)


def _apply(word: str, shapes: list[tuple[str, str]], tones: dict[str, str]) -> str | None:
    tone = ""
    # A tone key may be typed before the final consonants ("ddawks" = đắk): move it to the end.
    m = re.fullmatch(r"(.*?[aeiouyw6789].*?)([" + "".join(tones) + r"])([a-z]*)", word)
    if m and m.group(3) and all(c not in tones for c in m.group(3)):
        word = m.group(1) + m.group(3) + m.group(2)
    for key, mark in tones.items():
        if word.endswith(key) and len(word) > 1:
            tone, word = mark, word[:-1]
            break
    for key, letter in shapes:
        word = word.replace(key, letter)
    if not _SYLLABLE_RE.match(word):
        return None
    if tone:
        # Put the tone on any vowel; normalize_syllable moves it to the canonical place.
        m = re.search(r"[aăâeêioôơuưy]", word)
        if m is None:  # _SYLLABLE_RE only admits words with a vowel; kept for the type checker
            return None
        word = word[: m.end()] + tone + word[m.end():]
    return normalize_syllable(unicodedata.normalize("NFC", word))


def decode(word: str) -> str | None:
    """The syllable meant by Telex or VNI keystrokes, or None when ``word`` is not such input."""
    w = word.lower()
    if not w.isascii() or not w.isalnum() or len(w) < 2 or len(w) > 9:
        return None
    has_digit = any(c.isdigit() for c in w)
    if has_digit:
        if not re.fullmatch(r"[a-z]+[1-9][a-z]*[1-9]?[a-z]*", w):
            return None
        # VNI: digits may come anywhere after the vowel; move a tone digit to the end.
        tone_digits = [c for c in w if c in _VNI_TONES]
        base = "".join(c for c in w if c not in _VNI_TONES)
        result = _apply(base + "".join(tone_digits[-1:]), _VNI_SHAPES, _VNI_TONES)
    else:
        looks_telex = re.search(r"[aeiouy][a-z]*[sfrxj]", w) or re.search(r"dd|aa|aw|ee|oo|ow|uw", w)
        if not looks_telex:
            return None
        result = _apply(w, _TELEX_SHAPES, _TELEX_TONES)
    if result is None or result == w:
        return None
    return result
