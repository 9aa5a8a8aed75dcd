"""The query plan's parts on a small real index: the tier names, the planner's queries, spelling."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cluster_helpers import ENGINES, build_engine
from hypothesis import given, settings
from hypothesis import strategies as st
from index_helpers import article

from index.api import TIER_ADJACENT, TIER_ALL, TIER_FUZZY, TIER_NONE, TIER_PARTIAL, TIER_SYLLABLES, SearchRequest
from index.plan import PLAN, Planner, Step
from index.query import Alternative, parse
from index.spelling import Lexicon, Speller, one_edit
from index.tiers import Tier

DOCS = [
    *[article(i, f"Hội nghị tổng kết năm {2000 + i}", "Hội nghị tổng kết công tác năm.") for i in range(1, 7)],
    *[article(i, f"Không được làm thêm giờ {i}", "Người lao động không được làm thêm quá giờ.") for i in range(7, 12)],
    article(12, "Không ước mơ", "Một bài về ước mơ."),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, tmp_path_factory):
    with build_engine(request.param, request, tmp_path_factory.mktemp("plan"), DOCS) as engine:
        yield engine


# The tests that read the Whoosh engine's internals (its planner context, term table, docsets).
whoosh_only = pytest.mark.parametrize("engine", ["whoosh"], indirect=True)


def plain(*folded: str) -> Alternative:
    return Alternative(folded, folded, tuple(False for _ in folded))


def test_tiers_are_the_strings_callers_see(engine):
    assert {t.value for t in Tier} == {TIER_ALL, TIER_ADJACENT, TIER_SYLLABLES, TIER_FUZZY, TIER_PARTIAL, TIER_NONE}
    for q, expected in [("hội nghị", "adjacent"), ("", "all"), ("hoi ngih", "fuzzy"), ("zzqx", "none")]:
        r = engine.search(SearchRequest(q=q))
        assert isinstance(r.tier, Tier) and r.tier == expected
        # What the API, the CLI and the metrics make of it: the plain string.
        assert json.dumps({"tier": r.tier}) == json.dumps({"tier": expected})
        assert f"{r.tier}" == str(r.tier) == expected


@whoosh_only
def test_plan_widens_step_by_step(engine):
    assert [s.tier for s in PLAN] == [Tier.ADJACENT, Tier.SYLLABLES, Tier.SYLLABLES, Tier.FUZZY, Tier.PARTIAL]
    planner = Planner(engine._context(), parse("tổng kết hội nghị"))
    docsets = engine._context().docsets
    # "kết hội" is a pair no article holds: no adjacent query; but every syllable is in six articles.
    assert planner.query(PLAN[0]) is None
    assert len(docsets.evaluate(planner.query(PLAN[1]))) == 6
    with pytest.raises(ValueError):
        planner.tier_query(Tier.PARTIAL)
    assert planner.query(Step(Tier.ALL)) is not None


def _osa_distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcdz09", min_size=1, max_size=6), st.data())
def test_one_edit_is_every_string_one_edit_away(s, data):
    edits = one_edit(s)
    assert s not in edits
    assert all(_osa_distance(s, e) == 1 for e in edits)
    i = data.draw(st.integers(0, len(s)))
    c = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"))
    inserted, deleted, substituted = s[:i] + c + s[i:], s[:i] + s[i + 1:], s[:i] + c + s[i + 1:]
    transposed = s[:i] + s[i + 1 : i + 2] + s[i : i + 1] + s[i + 2:]
    for e in (inserted, deleted, substituted, transposed):
        assert e == s or e in edits


@whoosh_only
def test_speller_corrects_against_the_index(engine):
    ctx = engine._context()
    with_vocabulary = Speller(Lexicon(ctx.searcher.reader(), ctx.vocabulary))
    from_terms = Speller(Lexicon(ctx.searcher.reader()))
    for speller in (with_vocabulary, from_terms):
        assert speller.variants("ngih") == ["nghi"]
        assert speller.variants("ngi") == []  # too short to guess from
        # "uoc" is a real syllable, but "khong uoc" is a rare pair and "khong duoc" a frequent one.
        assert speller.pair_corrections(plain("khong", "uoc", "lam")) == [plain("khong", "duoc", "lam")]
        assert speller.pair_corrections(plain("hoi", "nghi")) == []


@whoosh_only
def test_did_you_mean_needs_clearly_more_matches(engine):
    ctx = engine._context()
    speller = Speller(Lexicon(ctx.searcher.reader(), ctx.vocabulary))
    docsets = ctx.docsets
    planner = Planner(ctx, parse(""))

    def matching(alt: Alternative) -> tuple[int, Callable[[], dict]]:
        docs = docsets.evaluate(planner.adjacent_or_anywhere(alt))
        return len(docs), lambda: json.loads(ctx.searcher.stored_fields(min(docs))["doc"])

    # Spelt with the marks of an article that holds it.
    assert speller.did_you_mean(["hoi", "ngih"], 0, matching) == "hội nghị"
    assert speller.did_you_mean(["hoi", "ngih"], 2, matching) is None  # 6 is not more than 3 x 2
    assert speller.did_you_mean(["hoi", "nghi"], 0, matching) is None  # nothing to correct


_TIE_SCRIPT = """
from index.query import Alternative
from index.spelling import Speller

class Lexicon:
    # 'banh' and 'bath' are both one edit from 'baxh' and make pairs just as frequent with 'mi'.
    vocab = {"banh", "bath", "mi"}
    pairs = {"banh|mi": 50, "bath|mi": 50}

    def known(self, s):
        return s in self.vocab

    def df(self, kind, term):
        if kind == "pair":
            a, _, b = term.partition(chr(0x1F))
            return self.pairs.get(a + "|" + b, 0)
        return 10 if term in self.vocab else 0

alt = Alternative(("baxh", "mi"), ("baxh", "mi"), (False, False))
print([a.folded for a in Speller(Lexicon()).pair_corrections(alt)])
"""


def test_pair_corrections_do_not_depend_on_the_hash_seed() -> None:
    """Two candidates with the same gain: the choice must be the same in every process (workers
    answer the same query alike, and their shared caches agree)."""
    import os
    import subprocess
    import sys

    from index.analysis import PAIR_SEP

    script = _TIE_SCRIPT.replace("chr(0x1F)", repr(PAIR_SEP))
    answers = set()
    for seed in range(12):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        answers.add(out.stdout.strip())
    assert answers == {"[('banh', 'mi')]"}
