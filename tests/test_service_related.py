"""Related articles over HTTP (issue 15): ``/api/articles/{id}/related`` and the "Bài liên quan"
list of the article page, on a real server (``service_helpers``): limits, 400/404/410 with their
codes, the JSON shape, validators and 304s, and the page's links."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from index_helpers import article
from service_helpers import running_service

from index.builder import index_articles
from index.journal import Journal
from index.publishing import Change, Op
from index.related import MAX_LIMIT
from searchsvc.routes.pages import RELATED_ON_PAGE

SOURCE = "kinh-te-ca-phe-2014"  # coffee in Đắk Nông: other Đắk Nông and farming articles are alike


def _related(http: httpx.Client, article_id: str, **params: object) -> httpx.Response:
    return http.get(f"/api/articles/{article_id}/related", params=params)


def test_the_answer_lists_other_articles_linking_to_our_pages(http: httpx.Client, article_ids: dict[str, str]) -> None:
    source = article_ids[SOURCE]
    response = _related(http, source)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"] == source and body["url"].endswith(f"/articles/{source}")
    listed = body["related"]
    assert 1 <= len(listed) <= 5
    for item in listed:
        assert set(item) == {"id", "title", "url", "category", "category_slug", "published", "source"}
        assert item["id"] != source
        assert item["url"].startswith(str(http.base_url).rstrip("/") + "/articles/")
    assert listed[0]["id"] in set(article_ids.values())


def test_limits(http: httpx.Client, article_ids: dict[str, str]) -> None:
    source = article_ids[SOURCE]
    assert len(_related(http, source, limit=1).json()["related"]) == 1
    assert len(_related(http, source, limit=MAX_LIMIT).json()["related"]) <= MAX_LIMIT
    for bad in ("0", str(MAX_LIMIT + 1), "-3", "abc", "1.5", "9" * 40):
        response = _related(http, source, limit=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_limit", bad


def test_an_unknown_article_is_404(http: httpx.Client) -> None:
    response = http.get("/api/articles/khong-co-bai-nay/related")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "article_not_found"


def test_validators_and_304(http: httpx.Client, article_ids: dict[str, str]) -> None:
    first = _related(http, article_ids[SOURCE])
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and "cache-control" in first.headers
    again = http.get(f"/api/articles/{article_ids[SOURCE]}/related", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    other = _related(http, article_ids[SOURCE], limit=2)
    assert other.headers["etag"] != etag


def test_the_article_page_lists_the_related_articles(http: httpx.Client, article_ids: dict[str, str]) -> None:
    source = article_ids[SOURCE]
    page = http.get(f"/articles/{source}")
    assert page.status_code == 200
    section = re.search(r'<section class="related".*?</section>', page.text, re.S)
    assert section is not None, page.text[-2000:]
    assert "Bài liên quan" in section.group()
    links = re.findall(r'<a href="(/articles/[^"]+)">', section.group())
    expected = [f"/articles/{item['id']}" for item in _related(http, source, limit=RELATED_ON_PAGE).json()["related"]]
    assert links == expected
    # Cached as before: the same validator, and a 304 for it.
    etag = page.headers["etag"]
    assert http.get(f"/articles/{source}").headers["etag"] == etag
    assert http.get(f"/articles/{source}", headers={"If-None-Match": etag}).status_code == 304


def test_an_unpublished_article_is_410(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    index_articles(
        index_dir,
        [
            article(1, "Bão số 3 đổ bộ", "Mưa lớn ở miền Trung."),
            article(2, "Bão số 4 suy yếu", "Mưa lớn ở miền Trung giảm dần."),
        ],
        procs=1,
    )
    with Journal(index_dir / "journal.sqlite3") as journal:
        journal.append([Change(Op.DELETE, "gone-7")])
    with running_service(index_dir, tmp_path / "logs") as svc, httpx.Client(base_url=svc.url, timeout=10) as client:
        gone = client.get("/api/articles/gone-7/related")
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "article_gone"
        listed = client.get("/api/articles/1/related")
        assert listed.status_code == 200, (listed.status_code, listed.text, svc.log()[-3000:])
        assert [a["id"] for a in listed.json()["related"]] == ["2"]
