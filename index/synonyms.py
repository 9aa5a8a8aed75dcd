"""Query-time synonym groups (abbreviations, place-name variants) from ``index/data/synonyms.tsv``.

Applied at query time only, so the index never grows and a new group works without re-indexing.
Each form of a group is analysed like any text, giving a sequence of folded syllables ("UBND" ->
``ubnd``; "Ủy ban nhân dân" -> ``uy ban nhan dan``; "TP.HCM" -> ``tp hcm`` and the joined ``tphcm``).
A query whose syllables contain any form (longest first) also searches for every other form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from index.analysis import analyze, nfc

DATA_FILE = Path(__file__).with_name("data") / "synonyms.tsv"


@dataclass(frozen=True, slots=True)
class Form:
    folded: tuple[str, ...]  # folded syllables
    exact: tuple[str, ...]  # canonical syllables with marks


def _forms_of(text: str) -> list[Form]:
    tokens = analyze(nfc(text))
    parts = [t for t in tokens if t.end_pos == t.pos]
    forms = [Form(tuple(t.folded for t in parts), tuple(t.exact for t in parts))]
    forms += [Form((t.folded,), (t.exact,)) for t in tokens if t.end_pos != t.pos]
    return [f for f in forms if f.folded]


class Synonyms:
    def __init__(self, groups: list[list[Form]]) -> None:
        self.groups = groups
        self._by_key: dict[tuple[str, ...], int] = {}
        for gi, group in enumerate(groups):
            for form in group:
                self._by_key.setdefault(form.folded, gi)
        self.max_len = max((len(k) for k in self._by_key), default=0)

    @classmethod
    def load(cls, path: Path = DATA_FILE) -> Synonyms:
        groups: list[list[Form]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            forms: list[Form] = []
            for text in line.split("\t"):
                for form in _forms_of(text.strip()):
                    if form not in forms:
                        forms.append(form)
            if len(forms) > 1:
                groups.append(forms)
        return cls(groups)

    def find(self, folded: list[str], start: int) -> tuple[int, list[Form]] | None:
        """The longest form starting at ``folded[start]``: (its length, every form of its group)."""
        for length in range(min(self.max_len, len(folded) - start), 0, -1):
            gi = self._by_key.get(tuple(folded[start : start + length]))
            if gi is not None:
                return length, self.groups[gi]
        return None


@lru_cache(maxsize=1)
def default_synonyms() -> Synonyms:
    return Synonyms.load()
