"""The pages in a real browser: Debian's headless Chromium against a running server.

Skipped, with the reason, where /usr/bin/chromium (or chromedriver, for the keyboard test) is
missing; ``scripts/ensure_chromium.sh`` installs both as root.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from service_helpers import WebDriver, chromium, dump_dom, require_chromium

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    require_chromium()


def test_results_render_with_highlights_facets_and_timeline(service, tmp_path: Path) -> None:
    dom = dump_dom(service.url + "/search?q=b%C3%B3ng+%C4%91%C3%A1", tmp_path / "profile")
    assert re.search(r'<li class="hit">', dom)
    assert "<mark>" in dom and re.search(r"<mark>[^<]*(bóng|đá)", dom, re.I)
    assert 'class="facet-list"' in dom and "Thể thao" in dom
    assert '<svg class="timeline"' in dom and 'class="bar"' in dom
    # the autocomplete script ran: it is present and the listbox is wired (hidden until typing)
    assert 'role="combobox"' in dom and 'id="q-suggestions"' in dom


def test_screenshot(service, tmp_path: Path) -> None:
    shot = tmp_path / "search.png"
    proc = chromium(
        [f"--screenshot={shot}", "--window-size=1280,900", service.url + "/search?q=%C4%91%E1%BA%AFk+n%C3%B4ng"],
        tmp_path / "profile",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_pages_render_without_csp_violations(service, tmp_path: Path) -> None:
    """The CSP forbids inline script and style; a violation would show in Chromium's console log."""
    proc = chromium(
        ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom",
         service.url + "/search?q=dak+nong"],
        tmp_path / "profile",
    )  # fmt: skip
    assert proc.returncode == 0
    assert "Content Security Policy" not in proc.stderr, proc.stderr[-2000:]


def test_keyboard_autocomplete(service, tmp_path: Path) -> None:
    """Type "dak n", ArrowDown, Enter: the browser lands on a search for the first suggestion."""
    driver = WebDriver(tmp_path)
    try:
        driver.get(service.url + "/")
        box = driver.find("#q")
        driver.send_keys(box, "dak n")
        count = driver.wait_until(
            "var l = document.getElementById('q-suggestions');"
            "return !l.hidden && l.querySelectorAll('[role=option]').length;"
        )
        assert count and driver.script("return document.getElementById('q').getAttribute('aria-expanded')") == "true"
        first = driver.script("return document.querySelector('#q-suggestions [role=option]').textContent")
        assert isinstance(first, str) and "nông" in first.lower()
        driver.send_keys(box, WebDriver.ARROW_DOWN)
        active = driver.script(
            "var i = document.getElementById('q'); var id = i.getAttribute('aria-activedescendant');"
            "return id && document.getElementById(id).getAttribute('aria-selected') === 'true' ? id : null"
        )
        assert active, "ArrowDown did not select an option"
        driver.send_keys(box, WebDriver.ENTER)
        driver.wait_until("return location.pathname === '/search'")
        url = urlsplit(driver.current_url)
        assert parse_qs(url.query)["q"] == [first]
        assert driver.script("return document.querySelectorAll('li.hit').length") > 0
        # Escape closes an open list without leaving the page
        box = driver.find("#q")
        driver.script("document.getElementById('q').value = ''")
        driver.send_keys(box, "dak")
        driver.wait_until("return !document.getElementById('q-suggestions').hidden")
        driver.send_keys(box, "\ue00c")  # Escape
        driver.wait_until("return document.getElementById('q-suggestions').hidden")
        assert driver.script("return location.pathname") == "/search"
    finally:
        driver.close()
