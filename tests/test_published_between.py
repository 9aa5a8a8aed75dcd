"""Listing articles by publication time (``SearchEngine.published_between``, what a month's
sitemap reads) and the months a commit changed (``Changes.months``, what tells a month's sitemap
that it must be rendered again), on both engines against a model of the archive.

The articles sit on the edges a month has in Vietnamese time (its first and last second, the UTC
day before it), share timestamps (ties go by id), and move from one month to another when
corrected.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cluster_helpers import ENGINES, Archive, build_engine
from index_helpers import article

from index.api import Dated, SearchEngine, Shows, month_of
from index.article import VN_TZ, Article
from index.publishing import Entry, Op
from searchsvc.routes.crawl import month_bounds


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


EDGES = [
    vn(2005, 3, 1, 0, 0, 0),  # the first second of March in Vietnam (Feb 28, 17:00 UTC)
    vn(2005, 2, 28, 23, 59, 59),  # the last second of February
    vn(2005, 3, 31, 23, 59, 59),
    vn(2005, 4, 1, 0, 0, 0),
    vn(2004, 12, 31, 23, 59, 59),
    vn(2005, 1, 1, 0, 0, 0),
]


def archive_articles() -> list[Article]:
    rng = random.Random(15)
    out = [
        article(f"edge-{i}", f"Bài ở mép tháng số {i}", f"Nội dung bài mép tháng {i}.", published=when)
        for i, when in enumerate(EDGES)
    ]
    start = vn(2004, 11, 1)
    for i in range(60):
        when = start + timedelta(hours=rng.randrange(24 * 180))
        out.append(article(f"a{i:02d}", f"Bài số {i}", f"Nội dung bài số {i}.", published=when))
    same = vn(2005, 3, 15, 8, 30)
    out += [article(f"tie-{c}", f"Bài cùng giờ {c}", "Cùng một thời điểm.", published=same) for c in "cab"]
    return out


def expected(articles: list[Article], start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    chosen = [a for a in articles if start <= a.published < end]
    return [(a.id, a.published.replace(microsecond=0)) for a in sorted(chosen, key=lambda a: (a.published, a.id))]


def listed(
    engine: SearchEngine, start: datetime, end: datetime, limit: int = 1000, offset: int = 0
) -> list[tuple[str, datetime]]:
    out = engine.published_between(start, end, limit, offset)
    assert all(isinstance(d, Dated) and d.published.tzinfo is not None for d in out)
    return [(d.id, d.published.replace(microsecond=0)) for d in out]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with build_engine(request.param, request, tmp_path_factory.mktemp("dated") / "ix", archive_articles()) as e:
        yield e


def test_each_month_lists_its_articles_oldest_first_ties_by_id(engine: SearchEngine) -> None:
    articles = archive_articles()
    months = sorted({month_of(a.published) for a in articles})
    assert "2005-02" in months and "2005-04" in months
    seen = []
    for month in months:
        start, end = month_bounds(month)
        want = expected(articles, start, end)
        assert want and listed(engine, start, end) == want, month
        assert all(month_of(when) == month for _, when in want)
        seen += [article_id for article_id, _ in want]
    assert sorted(seen) == sorted(a.id for a in articles)  # every article in exactly one month
    march = expected(articles, *month_bounds("2005-03"))
    ties = [article_id for article_id, _ in march if article_id.startswith("tie-")]
    assert ties == ["tie-a", "tie-b", "tie-c"]
    assert march[0][0] == "edge-0" and march[-1][0] == "edge-2"


def test_paging_and_bounds(engine: SearchEngine) -> None:
    articles = archive_articles()
    start, end = vn(2004, 11, 1), vn(2005, 6, 1)
    whole = expected(articles, start, end)
    pages = [listed(engine, start, end, 7, offset) for offset in range(0, len(whole) + 7, 7)]
    assert [row for page in pages for row in page] == whole
    assert listed(engine, start, end, 3, len(whole)) == []
    assert listed(engine, vn(1990, 1, 1), vn(1990, 2, 1)) == []
    # [start, end): the first second of April is April's, the last of March is March's
    assert listed(engine, vn(2005, 3, 31, 23, 59, 59), vn(2005, 4, 1)) == [("edge-2", EDGES[2])]
    assert listed(engine, vn(2005, 4, 1), vn(2005, 4, 1, 0, 0, 1)) == [("edge-3", EDGES[3])]
    # any timezone names the same instants
    utc = listed(engine, vn(2005, 3, 1).astimezone(UTC), vn(2005, 4, 1).astimezone(UTC))
    assert utc == expected(articles, *month_bounds("2005-03"))


@pytest.mark.parametrize("kind", ENGINES)
def test_changes_name_the_months_an_article_left_and_entered(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    articles = archive_articles()
    archive = Archive(kind, request, tmp_path / "ix")
    archive.index(articles)
    with archive, archive.open() as engine:
        first = engine.generation
        moved = article("a01", "Bài số 1, đã sửa ngày", "Nội dung bài số 1.", published=vn(2006, 7, 9, 10, 0))
        before = next(a for a in articles if a.id == "a01")
        archive.apply([Entry(1, Op.UPSERT, moved.id, moved, datetime.now(UTC))])
        engine._checked = 0.0
        second = engine.generation
        changes = engine.changes_between(first, second)
        assert not changes.everything
        assert changes.months == {month_of(before.published), "2006-07"}
        assert changes.touches(Shows.month("2006-07")) and changes.touches(Shows.month(month_of(before.published)))
        untouched = next(m for m in ("2004-11", "2004-12", "2005-01") if m != month_of(before.published))
        assert not changes.touches(Shows.month(untouched))
        assert listed(engine, *month_bounds("2006-07")) == [("a01", vn(2006, 7, 9, 10, 0))]

        archive.apply([Entry(2, Op.DELETE, "edge-3", None, datetime.now(UTC))])
        engine._checked = 0.0
        third = engine.generation
        assert engine.changes_between(second, third).months == {"2005-04"}
        assert engine.changes_between(first, third).months == {month_of(before.published), "2006-07", "2005-04"}
        assert "edge-3" not in [i for i, _ in listed(engine, *month_bounds("2005-04"))]
