"""Related articles (issue 15, ``index.related``): on both engines (the Whoosh index and a real
Typesense cluster), the same lists, topic-mates first, the same category preferred, re-posts of
the article's text left out, recency breaking ties, bounded limits."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cluster_helpers import ENGINES, build_cluster_engine, build_engine
from index_helpers import article, build

from index import related
from index.api import SearchError
from index.article import VN_TZ

GOLD = "Giá vàng SJC hôm nay tăng mạnh, thị trường vàng trong nước biến động theo giá vàng thế giới."
FOOTBALL = "Đội tuyển bóng đá Việt Nam thắng Thái Lan tại vòng bảng, huấn luyện viên khen các cầu thủ trẻ."
RICE = "Xuất khẩu gạo của Việt Nam tăng, doanh nghiệp ký hợp đồng bán gạo cho Philippines và Indonesia."


def _day(d: int) -> datetime:
    return datetime(2020, 3, d, 8, 0, tzinfo=VN_TZ)


ARTICLES = [
    article(
        "vang-1",
        "Giá vàng tăng mạnh",
        [GOLD, "Nhà đầu tư mua vàng miếng, giá vàng SJC lập đỉnh mới."],
        "Kinh tế",
        published=_day(1),
    ),
    article(
        "vang-2",
        "Vàng SJC lập đỉnh",
        [GOLD.replace("tăng mạnh", "giảm nhẹ"), "Các cửa hàng vàng bạc đông khách suốt buổi sáng."],
        "Kinh tế",
        published=_day(2),
    ),
    article(
        "vang-3",
        "Thị trường vàng thế giới",
        ["Giá vàng thế giới biến động, nhà đầu tư lo ngại lạm phát.", "Giá vàng SJC theo sát giá thế giới."],
        "Thế giới",
        published=_day(3),
    ),
    # The same text as vang-1 under another id: a re-post, never "related".
    article(
        "vang-1-dang-lai",
        "Giá vàng tăng mạnh",
        [GOLD, "Nhà đầu tư mua vàng miếng, giá vàng SJC lập đỉnh mới."],
        "Kinh tế",
        published=_day(9),
    ),
    article(
        "bong-1",
        "Việt Nam thắng Thái Lan",
        [FOOTBALL, "Cổ động viên ăn mừng khắp các phố."],
        "Thể thao",
        published=_day(4),
    ),
    article(
        "bong-2",
        "Huấn luyện viên khen cầu thủ trẻ",
        [FOOTBALL.replace("thắng", "hòa"), "Trận tiếp theo gặp Malaysia."],
        "Thể thao",
        published=_day(5),
    ),
    article(
        "gao-1",
        "Xuất khẩu gạo tăng",
        [RICE, "Giá lúa tại đồng bằng sông Cửu Long tăng theo."],
        "Kinh tế",
        published=_day(6),
    ),
    article(
        "gao-2",
        "Hợp đồng bán gạo cho Philippines",
        [RICE.replace("tăng", "khởi sắc"), "Nông dân phấn khởi vì giá lúa cao."],
        "Kinh tế",
        published=_day(7),
    ),
    # Two articles that hold the source's terms alike (the same score), with words of their own:
    # the newer one comes first.
    article(
        "hoa-cu",
        "Hoa lan đột biến",
        ["Hoa lan đột biến được trả giá cao. Bán ở chợ phiên Bắc Ninh sáng sớm."],
        "Đời sống",
        published=_day(10),
    ),
    article(
        "hoa-moi",
        "Hoa lan đột biến",
        ["Hoa lan đột biến được trả giá cao. Nghệ nhân Đà Lạt kể chuyện chiều."],
        "Đời sống",
        published=_day(12),
    ),
    # The same score again, in two categories: the source's own category comes first, although
    # the other article is newer.
    article(
        "che-cung",
        "Chè Thái Nguyên được mùa",
        ["Chè Thái Nguyên được mùa. Hợp tác xã ở Đại Từ mở rộng."],
        "Nông nghiệp",
        published=_day(13),
    ),
    article(
        "che-khac",
        "Chè Thái Nguyên được mùa",
        ["Chè Thái Nguyên được mùa. Du khách Hà Giang ghé thăm."],
        "Du lịch",
        published=_day(15),
    ),
    article(
        "che-nguon",
        "Chè Thái Nguyên xuất khẩu",
        ["Người trồng chè Thái Nguyên phấn khởi vì được mùa."],
        "Nông nghiệp",
        published=_day(14),
    ),
    article(
        "hoa-nguon",
        "Hoa lan đột biến được trả giá cao",
        ["Người chơi hoa lan đột biến trả giá cao."],
        "Đời sống",
        published=_day(11),
    ),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with build_engine(request.param, request, tmp_path_factory.mktemp("related"), ARTICLES) as e:
        yield e


def ids(engine, article_id: str, limit: int = 5) -> list[str]:
    return [a.id for a in engine.related(article_id, limit)]


def test_topic_mates_come_first(engine) -> None:
    assert ids(engine, "gao-1")[:1] == ["gao-2"]
    assert ids(engine, "bong-1")[:1] == ["bong-2"]
    head = set(ids(engine, "vang-2")[:2])
    assert "vang-3" in head and len(head & {"vang-1", "vang-1-dang-lai"}) == 1


def test_never_the_article_itself(engine) -> None:
    for a in ARTICLES:
        assert a.id not in ids(engine, a.id, 20)


def test_a_repost_of_the_same_text_is_not_related(engine) -> None:
    """vang-1-dang-lai is vang-1's text under another id: the best match by far, and left out."""
    assert "vang-1-dang-lai" not in ids(engine, "vang-1", 20)
    assert "vang-1" not in ids(engine, "vang-1-dang-lai", 20)
    # ...while both remain related to other articles, once: a list never holds a text twice.
    listed = ids(engine, "vang-2", 20)
    assert len({"vang-1", "vang-1-dang-lai"} & set(listed)) == 1


def test_the_same_category_is_preferred(engine) -> None:
    """che-cung and che-khac hold che-nguon's terms alike; che-khac is newer but of another category."""
    assert ids(engine, "che-nguon")[:2] == ["che-cung", "che-khac"]


def test_recency_breaks_ties(engine) -> None:
    listed = ids(engine, "hoa-nguon")
    assert listed[:2] == ["hoa-moi", "hoa-cu"]


def test_limits(engine) -> None:
    assert len(engine.related("gao-1", 1)) == 1
    assert len(engine.related("gao-1", related.MAX_LIMIT)) <= related.MAX_LIMIT
    for bad in (0, -1, related.MAX_LIMIT + 1):
        with pytest.raises(SearchError) as caught:
            engine.related("gao-1", bad)
        assert caught.value.code == "bad_limit"


def test_an_unknown_id_has_no_related_articles(engine) -> None:
    assert engine.related("khong-co", 5) == []
    assert engine.related("\ud800", 5) == []


def test_cached_lists_are_copies(engine) -> None:
    first = engine.related("gao-1", 5)
    first.clear()
    assert engine.related("gao-1", 5)


def test_both_engines_give_the_same_lists(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The cluster engine scores its candidates on their text, the Whoosh engine from postings:
    the same formula, so the same lists in the same order (docs/scale-out.md)."""
    with (
        build(tmp_path_factory.mktemp("related-parity"), ARTICLES) as whoosh,
        build_cluster_engine(request, ARTICLES) as cluster,
    ):
        for a in ARTICLES:
            assert ids(cluster, a.id, 20) == ids(whoosh, a.id, 20), a.id


def test_near_duplicates_by_shingles() -> None:
    a, b, c = ARTICLES[0], ARTICLES[3], ARTICLES[1]
    assert related.jaccard(related.shingles(a), related.shingles(b)) == 1.0
    assert related.jaccard(related.shingles(a), related.shingles(c)) < related.NEAR_DUPLICATE


def test_related_while_commits_reopen_the_searcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit between the source's lookup and the scoring used to close the searcher the list was
    being computed with (ReaderClosed: a 500 on the route); each list now uses one state."""
    import threading
    import time
    from datetime import UTC, datetime

    import index.engine as engine_module
    from index.builder import index_articles
    from index.engine import WhooshEngine
    from index.publishing import Entry, Op
    from index.whoosh_writer import WhooshIndexWriter

    monkeypatch.setattr(engine_module, "CHECK_INTERVAL", 0.0)  # every call sees a new commit at once
    index_dir = tmp_path / "ix"
    index_articles(index_dir, ARTICLES, procs=1)
    engine = WhooshEngine.open(index_dir)
    writer = WhooshIndexWriter(index_dir)
    stop = time.monotonic() + 4
    errors: list[str] = []
    lists = 0

    def commits() -> None:
        seq = 0
        while time.monotonic() < stop and not errors:
            seq += 1
            writer.apply([Entry(seq, Op.DELETE, f"khong-co-{seq}", None, datetime.now(UTC))])

    thread = threading.Thread(target=commits)
    thread.start()
    try:
        while time.monotonic() < stop:
            try:
                assert engine.related("vang-1")
                lists += 1
            except Exception as exc:  # any failure is the finding
                errors.append(repr(exc))
                break
    finally:
        thread.join()
        engine.close()
    assert errors == [] and lists > 10, (errors, lists)


def test_a_commit_during_the_source_lookup_does_not_close_the_lists_searcher(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deterministic form of the race above: a commit lands exactly while ``related`` looks its
    source up (which takes its own ``_state()``). Taking the list's state before the lookup made
    this a ReaderClosed every time."""
    from datetime import UTC, datetime

    import index.engine as engine_module
    from index.article import Article
    from index.builder import index_articles
    from index.engine import WhooshEngine
    from index.publishing import Entry, Op
    from index.whoosh_writer import WhooshIndexWriter

    monkeypatch.setattr(engine_module, "CHECK_INTERVAL", 0.0)
    index_dir = tmp_path / "ix"
    index_articles(index_dir, ARTICLES, procs=1)
    engine = WhooshEngine.open(index_dir)
    writer = WhooshIndexWriter(index_dir)
    lookup = engine.get_article
    commits = 0

    def lookup_while_committing(article_id: str) -> Article | None:
        nonlocal commits
        commits += 1
        writer.apply([Entry(commits, Op.DELETE, f"khong-co-{commits}", None, datetime.now(UTC))])
        return lookup(article_id)

    monkeypatch.setattr(engine, "get_article", lookup_while_committing)
    try:
        before = engine.generation
        assert engine.related("vang-1")
        assert commits == 1 and engine.generation != before
    finally:
        engine.close()
