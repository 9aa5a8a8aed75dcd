"""A category's label cannot be taken over by one article (issue 10, defect 7).

A category is identified by its slug; the label shown for it (pages, facets, feed titles, OPML)
is the first one ever seen for that slug, kept in the generation's ``labels.json`` across updates
and ``--rebuild``. An article with another label for the same slug is still indexed, under the
canonical label, and reported as a warning. Before, the label came from whichever article was
stored first, so re-indexing the original articles or a rebuild that read the hostile one first
renamed the category everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cluster_helpers import ENGINES, Archive
from index_helpers import article
from service_helpers import run_cli, running_service, write_corpus

from index import store
from index.api import SearchRequest
from index.builder import index_articles
from index.engine import WhooshEngine

LABEL = "Thể thao"
HOSTILE = "THỂ THAO ☠ Не доверяйте"  # slugifies to "the-thao" too
SLUG = "the-thao"


def originals() -> list:
    return [article(i, f"Bóng đá trận {i}", "Trận đấu bóng đá hấp dẫn", LABEL) for i in range(1, 4)]


def hostile() -> object:
    return article("evil-9", "Tin bóng đá giả", "Nội dung bóng đá giả mạo", HOSTILE)


def labels_of(where: Path | Archive) -> dict[str, str]:
    archive = where if isinstance(where, Archive) else None
    with archive.open() if archive else WhooshEngine.open(where) as engine:  # a new engine: no cached generation
        facets = engine.search(SearchRequest(q="bóng đá")).facets["category"]
        by_categories = {c.slug: c.value for c in engine.categories()}
    by_facets = {f.slug: f.value for f in facets}
    assert by_categories[SLUG] == by_facets[SLUG]
    return by_categories


@pytest.mark.parametrize("kind", ENGINES)
def test_update_and_reindex_keep_the_first_label(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    archive = Archive(kind, request, tmp_path / "idx")
    archive.index(originals())
    warnings: list[str] = []
    report = archive.index([hostile()], on_warning=warnings.append)
    # The article is indexed (under its slug), the conflict reported once, naming both labels.
    assert report.indexed == 1 and report.warnings == warnings and len(warnings) == 1
    assert HOSTILE in warnings[0] and LABEL in warnings[0] and SLUG in warnings[0] and "evil-9" in warnings[0]
    # Re-indexing the original articles moves them behind the hostile one in the index: the
    # label used to follow the first stored article.
    archive.index(originals())
    assert labels_of(archive)[SLUG] == LABEL
    with archive, archive.open() as engine:
        stored = engine.get_article("evil-9")
        assert stored is not None and stored.category == LABEL and stored.category_slug == SLUG
        assert stored.category_path == [HOSTILE]  # its own label is kept as provenance, not shown as the category
        assert engine.search(SearchRequest(categories=[SLUG])).total == 4


@pytest.mark.parametrize("kind", ENGINES)
def test_rebuild_keeps_the_label_even_when_the_hostile_article_comes_first(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    with Archive(kind, request, index_dir) as archive:
        archive.index(originals())
        report = archive.index([hostile(), *originals()], procs=2, rebuild=True)
        assert labels_of(archive)[SLUG] == LABEL
        assert len(report.warnings) == 1 and HOSTILE in report.warnings[0]
    if kind == "whoosh":  # where the Whoosh engine keeps the labels
        assert store.current_generation(index_dir) == "gen-000002"
        assert store.read_labels(index_dir / "gen-000002") == {SLUG: LABEL}


def test_an_index_without_a_label_map_is_seeded_from_its_articles(tmp_path: Path) -> None:
    """An index built before labels.json: its labels are the ones it was showing, then kept."""
    index_dir = tmp_path / "idx"
    index_articles(index_dir, originals(), procs=1)
    (index_dir / "gen-000001" / store.LABELS).unlink()
    assert labels_of(index_dir)[SLUG] == LABEL  # read from the stored articles meanwhile
    index_articles(index_dir, [hostile()], procs=1)
    index_articles(index_dir, originals(), procs=1)
    assert labels_of(index_dir)[SLUG] == LABEL
    assert store.read_labels(index_dir / "gen-000001") == {SLUG: LABEL}


@pytest.mark.parametrize("kind", ENGINES)
def test_new_slugs_are_added_and_labels_never_change(kind: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    with Archive(kind, request, index_dir) as archive:
        archive.index(originals())
        archive.index([article(7, "Giá cà phê", "Giá cà phê tăng", "Kinh tế"),
                       article(8, "Giá lúa", "Giá lúa giảm", "KINH TẾ")])
        assert labels_of(archive) == {SLUG: LABEL, "kinh-te": "Kinh tế"}
    if kind == "whoosh":
        assert store.read_labels(index_dir / "gen-000001") == {SLUG: LABEL, "kinh-te": "Kinh tế"}


def test_takeover_over_http(tmp_path: Path) -> None:
    """The real CLI and server: after an update with the hostile article, a re-index of the
    originals and a rebuild that reads the hostile file first, every surface keeps the label."""
    corpus = write_corpus(tmp_path / "corpus")
    evil = tmp_path / "000-evil.jsonl"
    evil.write_text(json.dumps({"id": "evil-1", "title": "Tin thể thao giả", "body": "Bóng đá giả mạo.",
                                "category": HOSTILE, "published": "2014-06-28T08:00:00+07:00"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    index_dir = tmp_path / "idx"
    run_cli("index", str(corpus), "--index-dir", str(index_dir), "--quiet")
    update = run_cli("index", str(evil), "--index-dir", str(index_dir), "--quiet")
    run_cli("index", str(corpus), "--index-dir", str(index_dir), "--quiet")
    run_cli("index", str(evil), str(corpus), "--index-dir", str(index_dir), "--rebuild", "--quiet")
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=30) as http:
        categories = {c["slug"]: c["label"] for c in http.get("/api/categories").json()["categories"]}
        assert categories[SLUG] == LABEL
        facets = http.get("/api/search", params={"q": "bóng đá"}).json()["facets"]["category"]
        assert {f["slug"]: f["value"] for f in facets}[SLUG] == LABEL
        assert http.get("/api/articles/evil-1").json()["category"] == LABEL
        for path in ("/", "/c/the-thao", "/search?q=b%C3%B3ng+%C4%91%C3%A1", "/feeds/the-thao.rss",
                     "/feeds/the-thao.atom", "/feeds/the-thao.json", "/feeds.opml", "/feeds",
                     "/embed/the-thao", "/articles/evil-1"):
            response = http.get(path)
            assert response.status_code == 200, path
            assert "☠" not in response.text and "доверяйте" not in response.text, path
        assert LABEL in http.get("/feeds/the-thao.rss").text
        assert LABEL in http.get("/feeds.opml").text
    # The CLI reported the conflict, once, on stderr.
    warning = [line for line in update.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and HOSTILE in warning[0] and f"kept '{LABEL}'" in warning[0], update.stderr
