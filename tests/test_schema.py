"""index.schema: the analyzer's one-slot analysis cache, and the keys the index and the filters share."""

from __future__ import annotations

import threading
from collections.abc import Callable

from index import schema
from index.analysis import analyze, nfc, pairs


class _SwitchDuringCheck(str):
    """A text whose equality check with the cached text runs ``during`` first: the moment another
    thread may run between the cache's check and its read."""

    during: list[Callable[[], None]] = []

    def __ne__(self, other: object) -> bool:
        for action in self.during:
            action()
        return str.__ne__(self, other)

    __hash__ = str.__hash__


def _terms(text: str) -> tuple[list[str], list[str]]:
    tokens = analyze(nfc(text))
    return [t.folded for t in tokens], pairs(tokens)


def test_analysis_cache_is_per_thread():
    mine, theirs = "Hội nghị Trung ương", "Giá vàng tăng mạnh"

    def other_thread_analyses() -> None:
        t = threading.Thread(target=schema.analysis_of, args=(theirs,))
        t.start()
        t.join()

    schema.analysis_of(mine)  # the cache now holds this text (an equal string, not the same object)
    probe = _SwitchDuringCheck(mine)
    probe.during = [other_thread_analyses]
    tokens, pair_terms = schema.analysis_of(probe)
    assert ([t.folded for t in tokens], pair_terms) == _terms(mine)


def test_source_key_is_case_and_diacritic_insensitive():
    assert schema.source_key("  Tuổi   Trẻ ") == schema.source_key("tuoi tre") == "tuoi tre"
    assert schema.source_key("VnExpress") == "vnexpress"
