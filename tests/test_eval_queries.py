"""The known-item query generator of the relevance evaluation (benchkit.queries): the passage kind
crosses punctuation, sentence and paragraph breaks and numbers as it says, is deterministic, and
leaves the other kinds' queries unchanged."""

from __future__ import annotations

import random
import re

from benchkit import queries as eq
from index.analysis import fold

BODY = (
    "Giá lúa tăng mạnh trong tháng này. Mỗi hộ dân thu về 12.500 đồng mỗi ký, theo UBND tỉnh.\n\n"
    "Người mua, doanh nghiệp và thương lái đều cho biết: nguồn cung sẽ còn thiếu đến cuối năm, "
    "khi vụ đông xuân bắt đầu thu hoạch ở các huyện phía nam của tỉnh."
)


def docs(n: int = 60) -> list[eq.Doc]:
    return [eq.Doc(f"d{i}", f"Tin số {i}", BODY) for i in range(n)]


def test_passages_cross_boundaries_as_their_notes_say() -> None:
    items = eq.generate(docs(), 60, seed=3, kinds=["body_passage"])
    assert len(items) == 60
    crossing = 0
    for item in items:
        form, _, rest = item.note.partition(",")
        crosses = rest.rpartition("crosses: ")[2]
        words = item.query.split()
        assert form in ("pasted", "retyped")
        if form == "retyped":
            assert item.query == fold(item.query) and not re.search(r"[,:;!?]", item.query)
        else:
            assert " ".join(item.query.split()) in " ".join(BODY.split())  # the text as it stands
        if crosses != "nothing":
            crossing += 1
        assert "\n" not in item.query  # a paragraph break pasted is a space
        if "paragraph" in crosses and form == "pasted":
            assert "tỉnh. Người" in item.query  # the only break of BODY, pasted as it reads
        if "number" in crosses:
            assert any(ch.isdigit() for ch in item.query)
        assert 4 <= len([w for w in words if re.search(r"\w", w)]) <= 10  # 4-8 syllables; "12 500" is two words
    assert 0.5 <= crossing / len(items) <= 0.9  # about 7 in 10 drawn across a boundary


def test_passage_generation_is_deterministic_and_leaves_other_kinds_alone() -> None:
    first = eq.generate(docs(), 10, seed=9, kinds=["body_span", "body_passage"])
    again = eq.generate(docs(), 10, seed=9, kinds=["body_span", "body_passage"])
    assert [i.query for i in first] == [i.query for i in again]
    alone = eq.generate(docs(), 10, seed=9, kinds=["body_span"])
    assert [i.query for i in first if i.kind == "body_span"] == [i.query for i in alone]


def test_a_number_is_retyped_with_or_without_its_separators() -> None:
    seen = {eq._retyped("12.500", random.Random(seed)) for seed in range(40)}
    assert seen == {"12.500", "12500", "12 500"}
    assert eq._retyped("Đắk", random.Random(1)) == "Dak"
