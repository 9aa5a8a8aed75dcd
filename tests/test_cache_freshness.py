"""Caches under continuous publishing (a real server, real commits): an answer that a commit did not
change keeps its ETag and revalidates as 304, a cached feed of an untouched category is not
rendered again, and answers that did change get new tags within the commit-to-visible delay."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from index_helpers import article, two_sections, wait_until
from service_helpers import running_service

from index.builder import index_articles

VISIBLE = 5.0  # seconds: the service's commit-to-visible target


def corpus() -> list:
    return two_sections(6)


def counter(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_unrelated_commits_keep_validators_and_cached_documents(tmp_path: Path) -> None:
    index_dir = tmp_path / "ix"
    articles = corpus()
    index_articles(index_dir, articles, procs=1)
    untouched = ["/c/the-thao", "/feeds/the-thao.atom", "/feeds/the-thao.json", "/embed/the-thao",
                 "/articles/tt-2", "/api/articles/tt-2", "/api/search?q=" + quote("bóng đá"), "/"]
    touched = ["/c/thoi-su", "/feeds/thoi-su.atom", "/articles/ts-0", "/api/search?q=" + quote("quốc hội")]
    with running_service(index_dir, tmp_path / "logs", workers=1) as svc, \
            httpx.Client(base_url=svc.url, timeout=30) as client:
        tags = {}
        for path in untouched + touched:
            response = client.get(path)
            assert response.status_code == 200, path
            tags[path] = response.headers["etag"]
        renders = counter(client, "searchsvc_feed_renders_total")

        # A correction of the oldest article of Thời sự (not on the home page's newest list).
        corrected = article("ts-0", "Quốc hội họp phiên khai mạc (đã sửa)", "Quốc hội thảo luận dự luật số 0.",
                            "Thời sự", published=articles[0].published)
        index_articles(index_dir, [corrected], procs=1)
        assert wait_until(lambda: client.get("/api/articles/ts-0").json()["title"] == corrected.title, VISIBLE)

        for path in untouched:
            again = client.get(path, headers={"If-None-Match": tags[path]})
            assert again.status_code == 304, f"{path}: the commit did not change it"
        assert counter(client, "searchsvc_feed_renders_total") == renders, "an untouched feed was rendered again"
        for path in touched:
            again = client.get(path, headers={"If-None-Match": tags[path]})
            assert again.status_code == 200 and again.headers["etag"] != tags[path], f"{path} changed"
            assert "đã sửa" in again.text, path

        # A new article in Thời sự: the home page (newest list, counts) changes; Thể thao still does not.
        home = client.get("/").headers["etag"]
        fresh = article("ts-9", "Quốc hội bế mạc kỳ họp", "Quốc hội bế mạc.", "Thời sự",
                        published=articles[-1].published + timedelta(days=1))
        index_articles(index_dir, [fresh], procs=1)
        assert wait_until(lambda: client.get("/api/articles/ts-9").status_code == 200, VISIBLE)
        assert wait_until(lambda: client.get("/", headers={"If-None-Match": home}).status_code == 200, VISIBLE)
        assert "Quốc hội bế mạc kỳ họp" in client.get("/").text
        for path in ("/c/the-thao", "/feeds/the-thao.atom", "/articles/tt-2"):
            assert client.get(path, headers={"If-None-Match": tags[path]}).status_code == 304, path
        feed = client.get("/feeds/thoi-su.json").json()
        assert feed["items"][0]["id"].endswith("ts-9") or "ts-9" in feed["items"][0]["url"]
