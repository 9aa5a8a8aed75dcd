"""Accessible pages, checked in a real browser against a running server.

* axe-core (the pinned npm package ``scripts/ensure_axe.sh`` fetches into ``.cache/axe``) runs in
  headless Chromium over every kind of page in ``PAGES``: no serious or critical violation.
  The script is injected over WebDriver, which the pages' CSP does not govern (``script-src 'self'``
  would refuse it as a page script): the test checks the CSP is really there, so a page is tested
  as readers get it.
* The search box is a WAI-ARIA 1.2 combobox driven by the keyboard (arrows, Enter, Escape) whose
  changes are announced by a polite live region.
* The timeline has a text alternative (a summary and a table of periods with the same links).
* Every keyboard focus stop on a page shows a visible focus indicator.

Skipped, with the reason, without Chromium/chromedriver or when axe-core could not be fetched.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from service_helpers import REPO_ROOT, ServiceProcess, WebDriver, require_chromium, serve_page

pytestmark = pytest.mark.slow

ENSURE_AXE = REPO_ROOT / "scripts" / "ensure_axe.sh"


class Page(NamedTuple):
    name: str  # the test id
    path: str  # "{article}" stands for the id of an article of the sample corpus
    status: int = 200


# Every kind of page readers see. Adding a page is one line.
PAGES: list[Page] = [
    Page("home", "/"),
    Page("search", "/search?q=dak+nong&per_page=2"),
    Page("search-filtered", "/search?category=kinh-te&from=2010-01-01&sort=newest&per_page=1&page=2"),
    Page("search-empty", "/search?q=zzqxv+wqk"),
    Page("article", "/articles/{article}"),
    Page("category", "/c/kinh-te"),
    Page("feeds", "/feeds"),
    Page("embed", "/embed/all"),
    Page("embed-dark", "/embed/all?theme=dark&limit=5"),
    Page("embed-search", "/embed/search?q=b%C3%B3ng+%C4%91%C3%A1"),
    Page("error-404", "/c/khong-co-chuyen-muc-nay", 404),
    Page("feed-page", "/feeds/all.rss"),  # a feed opened in a browser tab: its HTML page (docs/feeds.md)
    Page("feed-page-search", "/feeds/search.atom?q=b%C3%B3ng+%C4%91%C3%A1"),
]
# What Chromium sends when it navigates: the status and CSP checks ask for the page it will get.
BROWSER_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
}
ARTICLE_STEM = "the-thao-dak-nong-2014"  # it has captions

# Violations at these impacts fail; lesser ones are printed with the failure for context only.
FAILING_IMPACTS = ("serious", "critical")

AXE_RUN = """
var done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(function (r) {
  done(r.violations.map(function (v) {
    return {id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            nodes: v.nodes.map(function (n) { return {target: n.target, summary: n.failureSummary}; })};
  }));
}, function (e) { done({error: String(e)}); });
"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe.min.js, fetched on first use by the same script scripts/test.sh runs."""
    proc = subprocess.run([str(ENSURE_AXE)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"axe-core is not available: {proc.stderr.strip() or 'ensure_axe.sh failed'}")
    return Path(proc.stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One browser for the module (starting Chromium costs seconds on this machine)."""
    require_chromium()
    wd = WebDriver(tmp_path_factory.mktemp("webdriver"))
    try:
        wd.command("POST", "/window/rect", {"width": 1280, "height": 900})
        yield wd
    finally:
        wd.close()


def page_url(service: ServiceProcess, path: str, article_ids: dict[str, str]) -> str:
    return service.url + path.replace("{article}", article_ids[ARTICLE_STEM])


def axe_violations(driver: WebDriver, axe_source: str) -> list[dict[str, object]]:
    if not driver.script("return typeof window.axe === 'object'"):
        driver.script(axe_source)
    result = driver.async_script(AXE_RUN)
    assert isinstance(result, list), f"axe.run failed: {result}"
    return result


def describe(violations: list[dict[str, object]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:  # type: ignore[attr-defined]
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['summary']}".replace("\n", " / "))
    return "\n".join(lines)


def assert_no_serious(violations: list[dict[str, object]], where: str) -> None:
    failing = [v for v in violations if v["impact"] in FAILING_IMPACTS]
    assert not failing, f"axe-core on {where}: {len(failing)} serious/critical violation(s)\n" + describe(violations)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_axe_no_serious_violations(
    service: ServiceProcess, article_ids: dict[str, str], driver: WebDriver, axe_source: str, page: Page
) -> None:
    path = page.path
    url = page_url(service, path, article_ids)
    # The page as served carries its CSP (injection over WebDriver is not a page script).
    response = httpx.get(url, headers=BROWSER_HEADERS, timeout=30)
    assert response.status_code == page.status and "content-security-policy" in response.headers
    driver.get(url)
    violations = axe_violations(driver, axe_source)
    assert_no_serious(violations, path)
    if violations:
        print(f"{path}: minor/moderate findings\n{describe(violations)}")
    assert driver.script("return document.documentElement.lang") == "vi"


def test_axe_with_suggestions_open(service: ServiceProcess, driver: WebDriver, axe_source: str) -> None:
    """The combobox in its open state, an option highlighted, is as clean as the closed page."""
    driver.get(service.url + "/")
    box = driver.find("#q")
    driver.send_keys(box, "dak n")
    driver.wait_until("return !document.getElementById('q-suggestions').hidden")
    driver.send_keys(box, WebDriver.ARROW_DOWN)
    assert driver.script("return document.getElementById('q').getAttribute('aria-activedescendant')")
    assert_no_serious(axe_violations(driver, axe_source), "/ with the suggestions open")


@pytest.fixture
def partner_page(service: ServiceProcess) -> Iterator[str]:
    """A partner's page on another origin (another loopback port) carrying the <script> widget."""
    page = (
        "<!doctype html><html lang=vi><head><meta charset=utf-8><title>Đối tác</title></head><body><main>"
        f'<h1>Trang đối tác</h1><script src="{service.url}/embed.js" data-category="the-thao" data-theme="dark">'
        "</script></main></body></html>"
    ).encode()

    with serve_page(page) as url:
        yield url


def test_axe_embed_widget(partner_page: str, driver: WebDriver, axe_source: str) -> None:
    """The <script> widget's list (in a Shadow DOM, which axe-core enters) on a partner's page."""
    driver.get(partner_page)
    state = driver.wait_until(
        "var h = document.querySelector('[data-searchsvc-state]');"
        "var s = h && h.getAttribute('data-searchsvc-state'); return s && s !== 'loading' ? s : null"
    )
    assert state == "ready"
    assert driver.script("return document.querySelector('[data-searchsvc-state]').dataset.searchsvcCount") != "0"
    assert_no_serious(axe_violations(driver, axe_source), "the embed.js widget")


# --- the search box: WAI-ARIA 1.2 combobox ---------------------------------------------------------

COMBOBOX_STATE = """
var input = document.getElementById('q'), list = document.getElementById(input.getAttribute('aria-controls'));
var opts = Array.prototype.slice.call(list.querySelectorAll('[role=option]'));
return {expanded: input.getAttribute('aria-expanded'), hidden: list.hidden, role: list.getAttribute('role'),
        active: input.getAttribute('aria-activedescendant'), value: input.value,
        selected: opts.filter(function (o) { return o.getAttribute('aria-selected') === 'true'; })
                      .map(function (o) { return o.id; }),
        ids: opts.map(function (o) { return o.id; }), texts: opts.map(function (o) { return o.textContent; }),
        status: document.getElementById(input.getAttribute('data-suggest-status')).textContent};
"""


def contrast(css_a: str, css_b: str) -> float:
    """WCAG contrast ratio of two computed ``rgb()``/``rgba()`` colours (transparent counts as white)."""

    def luminance(css: str) -> float:
        parts = [float(x) for x in re.findall(r"[\d.]+", css)]
        if len(parts) > 3 and parts[3] == 0:
            parts = [255.0, 255.0, 255.0]
        channels = [c / 255 for c in parts[:3]]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(css_a), luminance(css_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def combobox(driver: WebDriver) -> dict[str, object]:
    state = driver.script(COMBOBOX_STATE)
    assert isinstance(state, dict)
    return state


def test_combobox_keyboard_and_announcements(service: ServiceProcess, driver: WebDriver) -> None:
    driver.get(service.url + "/")
    box = driver.find("#q")
    assert driver.computed(box) == ("combobox", "Tìm kiếm bài viết")
    status = driver.find("#q-status")
    assert driver.script(
        "var s = arguments[0]; return [s.getAttribute('role'), s.getAttribute('aria-live')]",
        {WebDriver.ELEMENT_KEY: status},
    ) == ["status", "polite"]
    state = combobox(driver)
    assert state["expanded"] == "false" and state["hidden"] and state["role"] == "listbox" and not state["active"]

    driver.send_keys(box, "dak n")
    driver.wait_until("return document.getElementById('q').getAttribute('aria-expanded') === 'true'")
    state = combobox(driver)
    ids = state["ids"]
    assert isinstance(ids, list) and len(ids) >= 2, state
    assert not state["hidden"] and not state["active"] and not state["selected"]
    # the count is announced by the polite live region
    assert re.match(rf"{len(ids)} gợi ý\b", str(state["status"])), state["status"]

    def press_and_check(key: str, index: int | None) -> None:
        driver.send_keys(box, key)
        s = combobox(driver)
        want = None if index is None else ids[index]
        assert s["active"] == want and s["selected"] == ([want] if want else []), (key, s)
        assert s["value"] == "dak n", "moving through options does not change the text (manual selection)"

    press_and_check(WebDriver.ARROW_DOWN, 0)
    # the highlighted option stands out for sighted keyboard users, not only in the accessibility tree
    backgrounds = driver.script(
        "return Array.prototype.map.call(document.querySelectorAll('#q-suggestions [role=option]'),"
        " function (o) { return getComputedStyle(o).backgroundColor; })"
    )
    assert isinstance(backgrounds, list) and contrast(backgrounds[0], backgrounds[1]) >= 3, backgrounds
    press_and_check(WebDriver.ARROW_DOWN, 1)
    press_and_check(WebDriver.ARROW_UP, 0)
    press_and_check(WebDriver.ARROW_UP, -1)  # wraps to the last
    press_and_check(WebDriver.ARROW_DOWN, 0)  # and back to the first
    press_and_check("\ue012", None)  # ArrowLeft returns to the text, the list stays open
    assert combobox(driver)["expanded"] == "true"

    # Escape closes (the text stays); a second Escape clears the box
    driver.send_keys(box, WebDriver.ESCAPE)
    state = combobox(driver)
    assert state["expanded"] == "false" and state["hidden"] and not state["active"] and state["value"] == "dak n"
    assert state["status"] == ""
    # ArrowDown on the closed box opens it on the first option, ArrowUp on the last
    driver.send_keys(box, WebDriver.ARROW_DOWN)
    driver.wait_until("return document.getElementById('q').getAttribute('aria-expanded') === 'true'")
    assert combobox(driver)["active"] == ids[0]
    assert re.match(r"\d+ gợi ý\b", str(combobox(driver)["status"]))
    driver.send_keys(box, WebDriver.ESCAPE)
    driver.send_keys(box, WebDriver.ARROW_UP)
    driver.wait_until("return document.getElementById('q').getAttribute('aria-expanded') === 'true'")
    assert combobox(driver)["active"] == ids[-1]
    driver.send_keys(box, WebDriver.ESCAPE)
    driver.send_keys(box, WebDriver.ESCAPE)
    assert combobox(driver)["value"] == ""

    # Enter on a highlighted option searches for it
    driver.send_keys(box, "dak n")
    driver.wait_until("return document.getElementById('q').getAttribute('aria-expanded') === 'true'")
    driver.send_keys(box, WebDriver.ARROW_DOWN)
    chosen = combobox(driver)["texts"][0]  # type: ignore[index]
    driver.send_keys(box, WebDriver.ENTER)
    driver.wait_until("return location.pathname === '/search'")
    assert parse_qs(urlsplit(driver.current_url).query)["q"] == [chosen]


# --- the timeline's text alternative -------------------------------------------------------------

TIMELINE_PATH = "/search?q=&per_page=5"  # all twelve sample articles, 2008 to 2014: year bars


def test_timeline_text_alternative(service: ServiceProcess, http: httpx.Client, driver: WebDriver) -> None:
    text = http.get(TIMELINE_PATH).text
    svg = re.search(r"<svg class=\"timeline\"[^>]*>.*?</svg>", text, re.S)
    assert svg, "no timeline"
    # the picture is hidden from assistive technology and its links are out of the tab order...
    assert 'aria-hidden="true"' in svg.group(0).split(">", 1)[0]
    svg_links = re.findall(r'<a href="([^"]+)"( tabindex="-1")?>', svg.group(0))
    assert svg_links and all(tabindex for _, tabindex in svg_links)
    # ... because the table says the same, with the same links
    rows = re.findall(r'<tr><th scope="row">(?:<a href="([^"]+)">)?(\d{4})(?:</a>)?</th><td>(\d+)</td></tr>', text)
    assert [r[1] for r in rows] == [str(y) for y in range(2008, 2015)]
    assert [url for url, _, _ in rows if url] == [url for url, _ in svg_links]
    counts = {year: int(n) for _, year, n in rows}
    assert sum(counts.values()) == 12 and all(url for url, _, n in rows if int(n))
    top = max(counts, key=lambda y: counts[y])
    summary = re.search(r'<p class="timeline-summary" id="tl-sum">([^<]+)</p>', text)
    want = f"12 bài theo năm, từ 2008 đến 2014; nhiều nhất năm {top} ({counts[top]} bài)."
    assert summary and summary.group(1) == want

    driver.get(service.url + TIMELINE_PATH)
    table = driver.find(".timeline-table table")
    assert driver.computed(table) == ("table", "Số bài theo năm (chọn để lọc)")
    size = "var r = document.querySelector('.timeline-table').getBoundingClientRect(); return [r.width, r.height]"
    assert max(driver.script(size)) <= 1, "the table is visually hidden until it has focus"  # type: ignore[type-var]
    link = driver.find(".timeline-table a")
    driver.script("arguments[0].focus()", {WebDriver.ELEMENT_KEY: link})
    width, height = driver.script(size)  # type: ignore[misc]
    assert width > 100 and height > 50, "a keyboard user sees the table"
    driver.send_keys(link, WebDriver.ENTER)
    driver.wait_until("return location.search.indexOf('from=') >= 0")
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["from"][0].endswith("-01-01") and query["to"][0].endswith("-12-31")


# --- visible focus -------------------------------------------------------------------------------

# Runs on the focused element: why its focus is not visible, or null. The indicator must be an
# outline (or box-shadow), the element on screen, and the outline 3:1 against what lies under it
# (WCAG 2.4.7, 1.4.11), sampled just outside each side of the element.
FOCUS_PROBLEM = """
var el = document.activeElement, cs = getComputedStyle(el), r = el.getBoundingClientRect();
if (r.width < 4 || r.height < 4) return 'focused but not on screen (' + r.width + 'x' + r.height + ')';
var outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2;
if (!outline) return cs.boxShadow !== 'none' ? null : 'no outline or box-shadow';
function rgba(c) { var m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; }
function lum(c) {
  var v = c.slice(0, 3).map(function (x) {
    x /= 255; return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
var inset = parseFloat(cs.outlineOffset) + parseFloat(cs.outlineWidth) <= 0;  // drawn on the element itself
function under(x, y) {
  var stack = document.elementsFromPoint(x, y);
  for (var i = 0; i < stack.length; i++) {
    if (inset ? stack[i] !== el && el.contains(stack[i]) : el.contains(stack[i])) continue;
    var bg = rgba(getComputedStyle(stack[i]).backgroundColor);
    if (bg[3] > 0) return bg;
  }
  return [255, 255, 255, 1];
}
var off = parseFloat(cs.outlineOffset) + parseFloat(cs.outlineWidth) / 2, ring = lum(rgba(cs.outlineColor)), worst = 99;
[[r.left - off, r.top + r.height / 2], [r.right + off, r.top + r.height / 2],
 [r.left + r.width / 2, r.top - off], [r.left + r.width / 2, r.bottom + off]].forEach(function (p) {
  if (p[0] < 0 || p[1] < 0 || p[0] >= innerWidth || p[1] >= innerHeight) return;
  var back = lum(under(p[0], p[1]));
  worst = Math.min(worst, (Math.max(ring, back) + 0.05) / (Math.min(ring, back) + 0.05));
});
if (worst >= 3) return null;
return 'outline ' + cs.outlineColor + ' contrasts only ' + worst.toFixed(2) + ':1 with its surroundings';
"""
FOCUSED = """
var el = document.activeElement;
return el === document.body ? null : el.outerHTML.slice(0, 120);
"""


FOCUS_PATHS = ["/", TIMELINE_PATH, "/articles/{article}", "/feeds", "/feeds/all.rss", "/embed/all?theme=dark"]


@pytest.mark.parametrize("path", FOCUS_PATHS)
def test_focus_is_visible(service: ServiceProcess, article_ids: dict[str, str], driver: WebDriver, path: str) -> None:
    """Tab through the page: every stop shows a visible, contrasting focus indicator."""
    driver.get(page_url(service, path, article_ids))
    seen: list[str] = []
    problems: list[str] = []
    for _ in range(80):
        driver.press(WebDriver.TAB)
        focused = driver.script(FOCUSED)
        if focused is None or focused in seen[:1]:
            break  # back to the start: every stop visited
        seen.append(str(focused))
        problem = driver.script(FOCUS_PROBLEM)
        if problem:
            problems.append(f"{focused}: {problem}")
    assert len(seen) >= 3, seen
    assert not problems, "\n".join(problems)


def test_skip_link_leads_to_main(service: ServiceProcess, driver: WebDriver) -> None:
    driver.get(service.url + TIMELINE_PATH)
    driver.press(WebDriver.TAB)
    assert driver.script("return document.activeElement.className") == "skip-link"
    assert driver.script("return document.activeElement.getBoundingClientRect().width") > 50  # shown on focus
    driver.press(WebDriver.ENTER, WebDriver.TAB)
    assert driver.script("return !!document.activeElement.closest('main')"), driver.script(FOCUSED)
