"""Known-item query generator for the relevance evaluation (``scripts/eval_relevance.py``) and the
latency benchmark (``scripts/bench_search.py``). Deterministic: the same corpus, limit and seed give the same queries.

Articles come through the project's reader (so titles are the cleaned titles that are indexed). Only
articles whose title is unique in the corpus are drawn — compared folded, lowercased and with
whitespace collapsed, so two headlines differing only in case or marks count as the same — so the
known item of a title query is well defined.

Kinds (one query per drawn article):

* ``title_unaccented``: the title with every mark removed (``index.analysis.fold``; case kept).
* ``title_nfd_oldtone``: the title with the old-style tone placement in open "oa"/"oe"/"uy"
  syllables (hòa -> hoà, thủy -> thuỷ, khỏe -> khoẻ: the tone moves from the first to the second
  vowel), one random syllable of the title folded, and the whole query in NFD.
* ``body_span``: 6 consecutive syllables (no punctuation between them, letters only) from the middle
  of the body, marks removed. The span is not checked for uniqueness here; the evaluation counts how
  many articles contain it (an FTS5 phrase query) and reports the unique-span subset separately.
* ``title_typo``: the title as written, except one syllable of 4+ letters, folded, gets one edit
  (insert, delete, substitute or transpose of a letter a-z).
* ``body_passage``: a passage a reader pastes or retypes to find its source: 4-8 consecutive
  syllables (numbers included) from anywhere in the body, in 7 cases of 10 a window that crosses
  punctuation, a sentence or paragraph break, or holds a number (``body_span`` avoids all of
  those). Half are pasted (the text as it stands, marks and punctuation kept, line breaks as
  spaces), half retyped (marks and punctuation dropped; a number with group separators written
  with them, without them, or with spaces, at random). The note says which boundaries it crosses.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from index.analysis import Token, analyze, fold, nfc, split_tone

KINDS = ("title_unaccented", "title_nfd_oldtone", "body_span", "title_typo", "body_passage")
SPAN_SYLLABLES = 6
PASSAGE_SYLLABLES = (4, 8)
PASSAGE_CROSSING = 0.7  # share of passages drawn across a boundary (punctuation, break, number)
_SENTENCE_END = re.compile(r"[.!?…]")
TYPO_MIN_LETTERS = 4
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD_RE = re.compile(r"[^\W\d_]+")
_OLD_TONE_NUCLEI = {("o", "a"), ("o", "e"), ("u", "y")}


@dataclass
class KnownItem:
    kind: str
    query: str
    article_id: str
    title: str
    note: str = ""  # what the generator did (which syllable was folded or edited...)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Doc:
    """What the generator needs of an article."""

    id: str
    title: str
    body: str


def title_key(title: str) -> str:
    return " ".join(fold(nfc(title)).lower().split())


def unique_title_docs(docs: Iterable[Doc]) -> tuple[list[Doc], int]:
    """Docs whose title key occurs once; also returns how many docs were dropped as repeats."""
    docs = list(docs)
    counts = Counter(title_key(d.title) for d in docs)
    keep = [d for d in docs if counts[title_key(d.title)] == 1]
    return keep, len(docs) - len(keep)


# -- transformations -----------------------------------------------------------------------------


def old_tone(word: str) -> str:
    """hòa -> hoà, thủy -> thuỷ, khỏe -> khoẻ (case kept); other words unchanged. Returns NFC."""
    parts = split_tone(word)
    if parts is None:
        return word
    letters, tone, tone_at = parts
    if tone is None or tone_at < 0 or tone_at != len(letters) - 2:
        return word  # the tone must sit on the first vowel of a final two-vowel nucleus
    if (letters[tone_at].lower(), letters[tone_at + 1].lower()) not in _OLD_TONE_NUCLEI:
        return word
    if tone_at >= 1 and letters[tone_at - 1].lower() == "q":  # "qu" + vowel: u is the onset
        return word
    if tone_at >= 1 and letters[tone_at - 1].lower() in "aăâeêioôơuưy":  # three vowels: not this case
        return word
    letters[tone_at + 1] = letters[tone_at + 1] + tone
    return unicodedata.normalize("NFC", "".join(letters))


def _replace_word(text: str, m: re.Match[str], new: str) -> str:
    return text[: m.start()] + new + text[m.end():]


def title_unaccented(doc: Doc, rng: random.Random) -> KnownItem:
    return KnownItem("title_unaccented", fold(nfc(doc.title)), doc.id, doc.title)


def title_nfd_oldtone(doc: Doc, rng: random.Random) -> KnownItem:
    title = nfc(doc.title)
    words = list(_WORD_RE.finditer(title))
    moved = 0
    out: list[str] = []
    last = 0
    folded_at = rng.randrange(len(words)) if words else -1
    folded_word = ""
    for i, m in enumerate(words):
        out.append(title[last : m.start()])
        w = m.group()
        if i == folded_at:
            w = fold(w)
            folded_word = w
        else:
            new = old_tone(w)
            moved += new != w
            w = new
        out.append(w)
        last = m.end()
    out.append(title[last:])
    query = unicodedata.normalize("NFD", "".join(out))
    return KnownItem("title_nfd_oldtone", query, doc.id, doc.title,
                     note=f"old tone moved in {moved} syllable(s); folded {folded_word!r}")


def body_span(doc: Doc, rng: random.Random) -> KnownItem | None:
    text = nfc(doc.body)
    toks = [t for t in analyze(text) if t.end_pos == t.pos]
    n = SPAN_SYLLABLES
    if len(toks) < n:
        return None

    def ok(i: int) -> bool:
        window = toks[i : i + n]
        return all(window[k + 1].pos == window[k].pos + 1 for k in range(n - 1)) and all(
            text[t.start : t.end].isalpha() for t in window)

    middle = len(toks) // 2
    jitter = max(1, len(toks) // 6)
    start = min(len(toks) - n, max(0, middle - n // 2 + rng.randint(-jitter, jitter)))
    for d in range(len(toks)):
        for i in (start - d, start + d):
            if 0 <= i <= len(toks) - n and ok(i):
                span = " ".join(fold(text[t.start : t.end]) for t in toks[i : i + n])
                note = f"syllables {i}..{i + n - 1} of {len(toks)}"
                return KnownItem("body_span", span, doc.id, doc.title, note=note)
    return None


def typo(word: str, rng: random.Random) -> tuple[str, str]:
    """One random edit of the folded ``word`` (letters a-z); returns (new word, edit name)."""
    base = fold(word)
    low = base.lower()
    while True:
        op = rng.choice(("insert", "delete", "substitute", "transpose"))
        i = rng.randrange(len(base))
        if op == "insert":
            new = base[:i] + rng.choice(_LETTERS) + base[i:]
        elif op == "delete":
            new = base[:i] + base[i + 1 :]
        elif op == "substitute":
            new = base[:i] + rng.choice(_LETTERS.replace(low[i], "")) + base[i + 1 :]
        else:
            if i == len(base) - 1 or low[i] == low[i + 1]:
                continue
            new = base[:i] + base[i + 1] + base[i] + base[i + 2 :]
        if new.lower() != low:
            return new, op


def title_typo(doc: Doc, rng: random.Random) -> KnownItem | None:
    title = nfc(doc.title)
    words = [m for m in _WORD_RE.finditer(title)
             if len(fold(m.group())) >= TYPO_MIN_LETTERS and fold(m.group()).isascii()]
    if not words:
        return None
    m = rng.choice(words)
    new, op = typo(m.group(), rng)
    return KnownItem("title_typo", _replace_word(title, m, new), doc.id, doc.title,
                     note=f"{op}: {m.group()!r} -> {new!r}")


def _passage_features(text: str, window: list[Token]) -> list[str]:
    """Which boundaries a window of tokens crosses: ``paragraph``, ``sentence``, ``punctuation``
    (any other mark between two syllables), ``number``."""
    gaps = [text[a.end:b.start] for a, b in zip(window, window[1:])]
    found = []
    if any("\n" in g for g in gaps):
        found.append("paragraph")
    if any(_SENTENCE_END.search(g) for g in gaps):
        found.append("sentence")
    if any(g.strip() and not _SENTENCE_END.search(g) and "\n" not in g for g in gaps):
        found.append("punctuation")
    if any(any(ch.isdigit() for ch in text[t.start:t.end]) for t in window):
        found.append("number")
    return found


def _retyped(word: str, rng: random.Random) -> str:
    """How a reader types ``word`` from the page: no marks; a number with group separators
    ("12.500") as written, run together, or spaced."""
    folded = fold(word)
    if any(ch.isdigit() for ch in folded) and re.search(r"\d[.,]\d", folded):
        return rng.choice((folded, re.sub(r"[.,]", "", folded), re.sub(r"[.,]", " ", folded)))
    return folded


def body_passage(doc: Doc, rng: random.Random) -> KnownItem | None:
    text = nfc(doc.body)
    toks = [t for t in analyze(text) if t.end_pos == t.pos]
    n = rng.randint(*PASSAGE_SYLLABLES)
    if len(toks) < n:
        return None
    crossing = rng.random() < PASSAGE_CROSSING
    start = rng.randrange(len(toks) - n + 1)
    count = len(toks) - n + 1
    chosen = start
    for d in range(count):  # the first window from a random start that crosses (or not) as drawn
        i = (start + d) % count
        if bool(_passage_features(text, toks[i:i + n])) == crossing:
            chosen = i
            break
    window = toks[chosen:chosen + n]
    features = _passage_features(text, window)
    if rng.random() < 0.5:
        query = " ".join(text[window[0].start:window[-1].end].split())
        form = "pasted"
    else:
        query = " ".join(_retyped(text[t.start:t.end], rng) for t in window)
        form = "retyped"
    note = f"{form}, {n} syllables at {chosen} of {len(toks)}; crosses: {', '.join(features) or 'nothing'}"
    return KnownItem("body_passage", query, doc.id, doc.title, note=note)


GENERATORS = {
    "title_unaccented": title_unaccented,
    "title_nfd_oldtone": title_nfd_oldtone,
    "body_span": body_span,
    "title_typo": title_typo,
    "body_passage": body_passage,
}


def generate(docs: list[Doc], per_kind: int, seed: int = 42, kinds: Iterable[str] = KINDS) -> list[KnownItem]:
    """``per_kind`` queries of each kind from ``docs`` (expected: unique-title docs, in corpus order).

    Each kind draws its own sample with its own generator seeded from (seed, kind), so adding a kind
    or changing ``per_kind`` of one kind does not change the others' queries.
    """
    out: list[KnownItem] = []
    for kind in kinds:
        rng = random.Random(f"{seed}:{kind}")
        order = list(range(len(docs)))
        rng.shuffle(order)
        made = 0
        for i in order:
            if made >= per_kind:
                break
            item = GENERATORS[kind](docs[i], rng)
            if item is None or not item.query.strip():
                continue
            out.append(item)
            made += 1
    return out


# -- small query sets for the latency benchmark -----------------------------------------------------


def title_syllables(title: str) -> list[str]:
    """Letter-only syllables of a title, in order (NFC)."""
    return [m.group() for m in _WORD_RE.finditer(nfc(title))]


def title_runs(title: str) -> list[list[str]]:
    """Runs of consecutive letter-only syllables of a title, cut at punctuation gaps."""
    text = nfc(title)
    toks = [t for t in analyze(text) if t.end_pos == t.pos]
    runs: list[list[str]] = []
    prev_pos = -10
    for t in toks:
        word = text[t.start : t.end]
        if not word.isalpha():
            runs.append([])
            continue
        if runs and runs[-1] and prev_pos == t.pos - 1:
            runs[-1].append(word)
        else:
            runs.append([word])
        prev_pos = t.pos
    return [r for r in runs if r]


def title_word_queries(titles: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` queries of 1–3 consecutive words of a random title, lower-cased: what a reader types
    into the search box, every one likely new (``bench_http.py``'s distinct searches, the profile
    of ``profile_search.py`` and the dumps of ``compare_rankings.py`` all use this rule)."""
    words_of = [w for w in (re.findall(r"\w+", t) for t in titles) if w]
    out = []
    for _ in range(n):
        words = rng.choice(words_of)
        start = rng.randrange(len(words))
        out.append(" ".join(words[start : start + rng.randint(1, 3)]).lower())
    return out
