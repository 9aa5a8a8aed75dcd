"""Embeds and the feeds' browser page in a real browser: Debian's headless Chromium.

A partner page is served from *another origin* (a tiny ``http.server`` on 127.0.0.2, or on another
port of 127.0.0.1 where 127.0.0.2 cannot be bound) and carries both embeds: an ``<iframe>`` of
``/embed/the-thao`` and the ``<script src=".../embed.js">`` widget. Its own CSS is hostile (it hides
every list and paints every link red) to prove the widget's Shadow DOM keeps both sides apart.
A feed URL opened in a tab must be our HTML page (no XSLT, nothing in Chromium's console) whose
copy button really fills the clipboard.
Skipped, with the reason, where /usr/bin/chromium (or chromedriver) is missing;
``scripts/ensure_chromium.sh`` installs both as root.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import XSS_TITLE, WebDriver, chromium, dump_dom, require_chromium, serve_page

pytestmark = pytest.mark.slow

PARTNER_PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Báo đối tác</title>
<script>window.__globalsBefore = Object.getOwnPropertyNames(window);</script>
<style>
  /* A careless host stylesheet: a widget that is not isolated would vanish or turn red. */
  ol, li, section, h2 { display: none !important; }
  a { color: rgb(255, 0, 0) !important; font-family: serif !important; }
  body { color: rgb(1, 2, 3); font: 30px/3 serif; }
</style></head>
<body>
<h1>Trang của đối tác</h1>
<p><a id="partner-link" href="#top">liên kết của đối tác</a></p>
<iframe id="frame" src="{svc}/embed/the-thao?limit=5" width="420" height="360" title="Tin thể thao"></iframe>
<div id="widget-slot"><script id="widget" src="{svc}/embed.js" data-category="the-thao" data-limit="2"
  data-theme="dark" async></script><span id="after-widget">sau</span></div>
<script id="widget-xss" src="{svc}/embed.js" data-category="xa-hoi" data-limit="5" async></script>
<script id="widget-search" src="{svc}/embed.js" data-q="bóng đá" data-limit="1" async></script>
</body></html>
"""


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    require_chromium()


def _bindable(host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


@pytest.fixture
def partner(service) -> Iterator[str]:
    """URL of the partner page, on an origin other than the service's."""
    page = PARTNER_PAGE.replace("{svc}", service.url).encode("utf-8")
    host = "127.0.0.2" if _bindable("127.0.0.2") else "127.0.0.1"
    with serve_page(page, host, "/partner.html") as url:
        assert not url.startswith(service.url)
        yield url


@contextlib.contextmanager
def webdriver(tmp_path: Path) -> Iterator[WebDriver]:
    driver = WebDriver(tmp_path)
    try:
        driver.command("POST", "/window/rect", {"width": 1200, "height": 1000})
        yield driver
    finally:
        driver.close()


def headlines(service, slug: str, limit: int) -> list[str]:
    """The titles a widget with ``data-limit=limit`` shows: the feed it fetches (a limit that is not
    a feed size is redirected to the next one up), cut to ``limit``."""
    feed = httpx.get(f"{service.url}/feeds/{slug}.json", params={"limit": limit}, timeout=30,
                     follow_redirects=True).json()
    return [item["title"] for item in feed["items"]][:limit]


def test_dump_dom_shows_both_embeds(service, partner: str, tmp_path: Path) -> None:
    dom = dump_dom(partner, tmp_path / "profile")
    assert f'<iframe id="frame" src="{service.url}/embed/the-thao?limit=5"' in dom
    assert 'class="searchsvc-embed"' in dom
    assert 'data-searchsvc-state="ready"' in dom and 'data-searchsvc-count="2"' in dom


def test_embeds_render_on_a_partner_page(service, partner: str, tmp_path: Path) -> None:
    expected = headlines(service, "the-thao", 2)
    with webdriver(tmp_path) as driver:
        driver.get(partner)
        driver.wait_until(
            "return Array.from(document.querySelectorAll('.searchsvc-embed'))"
            ".every(function (h) { return h.getAttribute('data-searchsvc-state') === 'ready'; })"
            " && document.querySelectorAll('.searchsvc-embed').length === 3"
        )
        widget = driver.script(
            "var s = document.getElementById('widget'), h = s.nextElementSibling, r = h.shadowRoot;"
            "var links = Array.from(r.querySelectorAll('li a'));"
            "return {cls: h.className, count: h.getAttribute('data-searchsvc-count'),"
            " after: h.nextElementSibling && h.nextElementSibling.id,"
            " titles: links.map(function (a) { return a.textContent; }),"
            " hrefs: links.map(function (a) { return a.href; }),"
            " targets: links.map(function (a) { return a.target + ' ' + a.rel; }),"
            " display: getComputedStyle(r.querySelector('li')).display,"
            " linkColor: getComputedStyle(links[0]).color,"
            " font: getComputedStyle(r.querySelector('section')).fontSize,"
            " dark: r.querySelector('section').classList.contains('dark')};"
        )
        assert isinstance(widget, dict)
        assert widget["cls"] == "searchsvc-embed" and widget["after"] == "after-widget"  # right after its tag
        assert widget["count"] == "2" and widget["titles"] == expected
        assert all(h.startswith(service.url + "/articles/") for h in widget["hrefs"])
        assert set(widget["targets"]) == {"_blank noopener"}
        # the host page's CSS does not reach into the widget...
        assert widget["display"] != "none" and widget["linkColor"] != "rgb(255, 0, 0)"
        assert widget["font"] == "15px" and widget["dark"] is True
        # ...and the widget's CSS does not leak out, nor does it leave globals behind
        partner_color = driver.script("return getComputedStyle(document.getElementById('partner-link')).color")
        assert partner_color == "rgb(255, 0, 0)"
        # (ignoring frame indexes, the snapshot itself and what chromedriver's own scripts leave)
        leaked = driver.script(
            "var before = new Set(window.__globalsBefore);"
            "return Object.getOwnPropertyNames(window).filter(function (n) {"
            " return !before.has(n) && !/^[0-9]+$/.test(n) && n !== '__globalsBefore'"
            " && n !== 'ret_nodes' && n.indexOf('cdc_') !== 0; });"
        )
        assert leaked == [], leaked
        ours = ("script", "data", "base", "render", "fail", "el", "link", "host", "root", "box", "feedUrl", "webUrl")
        assert driver.script(f"return {list(ours)!r}.filter(function (n) {{ return n in window; }})") == []

        # feed data is text, never markup: the XSS title is shown literally and runs nothing
        xss = driver.script(
            "var r = document.getElementById('widget-xss').nextElementSibling.shadowRoot;"
            "return {text: r.textContent, scripts: r.querySelectorAll('script, img').length,"
            " count: r.host.getAttribute('data-searchsvc-count')};"
        )
        assert XSS_TITLE in xss["text"] and xss["scripts"] == 0 and xss["count"] == "2"
        search = driver.script("return document.getElementById('widget-search').nextElementSibling"
                               ".getAttribute('data-searchsvc-count')")
        assert search == "1"

        # the iframe, framed cross-origin, loaded with its stylesheet (allowed by the embed CSP)
        frame = driver.find("#frame")
        driver.command("POST", "/frame", {"id": {WebDriver.ELEMENT_KEY: frame}})
        inside = driver.script(
            "var links = Array.from(document.querySelectorAll('li a'));"
            "return {origin: location.origin, count: links.length,"
            " titles: links.map(function (a) { return a.textContent; }),"
            " targets: links.map(function (a) { return a.target + ' ' + a.rel; }),"
            " font: getComputedStyle(document.body).fontSize};"
        )
        driver.command("POST", "/frame/parent", {})
        assert inside["origin"] == service.url
        assert inside["titles"] == headlines(service, "the-thao", 5) and inside["count"] == 3
        assert set(inside["targets"]) == {"_blank noopener"} and inside["font"] == "15px"

        shot = base64.b64decode(str(driver.command("GET", "/screenshot")))
        path = tmp_path / "partner-page.png"
        path.write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000


FEED_PAGES = {
    # path: (h1, items on the page); a search feed is checked too (its URL carries a query)
    "/feeds/the-thao.rss": ("Thể thao", 3),
    "/feeds/all.atom?limit=10": ("Tất cả bài viết", 10),
    "/feeds/search.json?q=b%C3%B3ng+%C4%91%C3%A1": ("Tìm kiếm «bóng đá»", 2),
}


@pytest.mark.parametrize("path", list(FEED_PAGES))
def test_feed_in_a_tab_is_a_page_without_xslt_or_csp_complaints(service, path: str, tmp_path: Path) -> None:
    """A feed URL opened in Chromium: our HTML page, not an XSL view. Chromium 156 logs "XSLTProcessor
    and XSLT Processing Instructions have been deprecated" for a document with an xml-stylesheet
    PI, and a CSP violation for each inline style or script; nothing at all is logged here."""
    proc = chromium(
        ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom", service.url + path],
        tmp_path / "profile",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "xslt" not in proc.stderr.lower(), proc.stderr[-2000:]
    assert "Content Security Policy" not in proc.stderr, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no warning, no error, from anything on the page
    title, count = FEED_PAGES[path]
    dom = proc.stdout
    assert f"<h1>{title}</h1>" in dom and dom.count('<li class="article-item">') == count
    assert "<rss" not in dom and "<feed" not in dom
    # the script ran: it shows the copy button (hidden in the HTML, for pages without JavaScript)
    assert re.search(r'<button type="button" id="copy-feed-url"[^>]*>', dom)
    assert not re.search(r'<button type="button" id="copy-feed-url"[^>]*hidden', dom)


def test_feed_page_renders_and_its_copy_button_copies_the_address(service, tmp_path: Path) -> None:
    """In a real tab: the page is styled by its stylesheet, links our article pages and the other
    formats, and the copy button puts the feed address on the system clipboard, read back through
    the async Clipboard API (permission granted over the DevTools protocol), by mouse and by keyboard."""
    expected = headlines(service, "the-thao", 10)
    with webdriver(tmp_path) as driver:
        # a limit that is not a feed size is a 301 the browser follows to the next size (10)
        driver.get(service.url + "/feeds/the-thao.atom?limit=2")
        address = service.url + "/feeds/the-thao.atom?limit=10"
        assert driver.current_url == address
        driver.command("POST", "/goog/cdp/execute", {"cmd": "Browser.grantPermissions", "params": {
            "origin": service.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}})
        page = driver.script(
            "var links = Array.from(document.querySelectorAll('ol.article-list li h3 a'));"
            "var button = document.getElementById('copy-feed-url');"
            "return {title: document.title, lang: document.documentElement.lang,"
            " h1: document.querySelector('h1').textContent, field: document.getElementById('feed-url').value,"
            " titles: links.map(function (a) { return a.textContent; }),"
            " hrefs: links.map(function (a) { return a.href; }),"
            " formats: Array.from(document.querySelectorAll('.format-links a')).map(function (a) {"
            "   return a.href; }),"
            " buttonShown: !button.hidden && button.getBoundingClientRect().width > 0,"
            " buttonColor: getComputedStyle(button).backgroundColor,"
            " readers: Array.from(document.querySelectorAll('.reader-links a')).map(function (a) {"
            "   return a.textContent; })};"
        )
        assert isinstance(page, dict)
        assert page["title"].startswith("Thể thao – nguồn tin Atom 1.0") and page["lang"] == "vi"
        assert page["h1"] == "Thể thao" and page["field"] == address
        assert page["titles"] == expected and len(expected) == 3
        assert all(h.startswith(service.url + "/articles/") for h in page["hrefs"])
        assert page["formats"] == [service.url + f"/feeds/the-thao.{f}?limit=10" for f in ("rss", "atom", "json")]
        assert page["readers"] == ["Feedly", "Inoreader", "NewsBlur", "The Old Reader"]
        assert page["buttonShown"] and page["buttonColor"] == "rgb(11, 79, 138)"  # feed_page.css applied

        def clipboard() -> object:
            return driver.script("return navigator.clipboard.readText()")

        def reset() -> None:
            driver.script("document.getElementById('copy-feed-url').removeAttribute('data-copy-state');"
                          "return navigator.clipboard.writeText('trước khi sao chép')")
            assert clipboard() == "trước khi sao chép"  # the read-back really reads the clipboard

        button = driver.find("#copy-feed-url")
        reset()
        driver.command("POST", f"/element/{button}/click", {})
        assert driver.wait_until("return document.getElementById('copy-feed-url').getAttribute('data-copy-state')") \
            == "copied"
        assert clipboard() == address
        status = driver.script("var s = document.getElementById('copy-status');"
                               "return {role: s.getAttribute('role'), text: s.textContent}")
        assert status == {"role": "status", "text": "Đã sao chép địa chỉ nguồn tin. Hãy dán vào ứng dụng đọc tin."}
        reset()
        driver.send_keys(button, WebDriver.ENTER)  # the keyboard: a real <button>, Enter activates it
        driver.wait_until("return document.getElementById('copy-feed-url').getAttribute('data-copy-state')")
        assert clipboard() == address

        shot = base64.b64decode(str(driver.command("GET", "/screenshot")))
        (tmp_path / "feed-page.png").write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000

        # the other formats open as pages too
        driver.command("POST", f"/element/{driver.find('.format-links li:nth-child(3) a')}/click", {})
        driver.wait_until("return location.pathname === '/feeds/the-thao.json'")
        driver.wait_until("return document.querySelector('.kicker') !== null")
        assert driver.script("return document.querySelector('.kicker').textContent") == "Nguồn tin JSON Feed 1.1"


def test_embed_page_has_no_csp_violations(service, tmp_path: Path) -> None:
    proc = chromium(
        ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom",
         service.url + "/embed/the-thao?theme=dark"],
        tmp_path / "profile",
    )  # fmt: skip
    assert proc.returncode == 0
    assert "Content Security Policy" not in proc.stderr, proc.stderr[-2000:]
    assert 'class="theme-dark"' in proc.stdout and proc.stdout.count("<li>") == 3
