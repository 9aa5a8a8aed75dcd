/*
 * searchsvc headline widget for partner sites.
 *
 *   <script src="https://HOST/embed.js" data-category="the-thao" data-limit="5" data-theme="light" async></script>
 *
 * Options (all optional): data-category (a category slug, or "all"), data-q (a search: newest
 * matches; data-category then filters it), data-limit (1-50, default 10), data-theme (light|dark).
 *
 * Renders the latest headlines right after its own <script> tag, from HOST/feeds/….json (JSON
 * Feed, fetched with CORS, no cookies), inside a Shadow DOM so the host page's CSS cannot reach
 * the list and ours cannot reach the page. One IIFE, no globals. Feed data only ever reaches the
 * DOM through textContent and setAttribute, and only http(s) links are made clickable.
 * The host element reports its state for page scripts (and tests):
 *   data-searchsvc-state = loading | ready | error,  data-searchsvc-count = items rendered.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src || !script.parentNode) {
    return; // loaded as a module or injected in a way we cannot locate: nothing to attach to
  }

  var DEFAULT_LIMIT = 10;
  var MAX_LIMIT = 50;
  var SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

  var CSS = [
    ":host { all: initial; display: block; contain: content; }",
    ".box { --text: #1b1f24; --muted: #4f5661; --link: #0b4f8a; --line: #d9dde3; --bg: #fff;",
    "  box-sizing: border-box; margin: 0; padding: .75rem .9rem; border: 1px solid var(--line);",
    "  border-radius: 6px; background: var(--bg); color: var(--text); text-align: left;",
    "  font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', Arial, sans-serif; }",
    ".box.dark { --text: #e8eaed; --muted: #aab1bb; --link: #8cc4ff; --line: #3a4048; --bg: #15191e; }",
    "h2 { font-size: 1rem; margin: 0 0 .5rem; padding: 0 0 .4rem; border-bottom: 2px solid var(--link); }",
    "h2 a { color: var(--text); text-decoration: none; }",
    "a { color: var(--link); text-underline-offset: 2px; }",
    "a:focus-visible { outline: 3px solid var(--link); outline-offset: 2px; }",
    "ol { list-style: none; margin: 0; padding: 0; }",
    "li { display: block; margin: 0; padding: .45rem 0; border-bottom: 1px solid var(--line); }",
    "li a { font-weight: 600; text-decoration: none; }",
    "li a:hover { text-decoration: underline; }",
    ".meta { display: block; color: var(--muted); font-size: .8rem; margin-top: .1rem; }",
    ".status { color: var(--muted); margin: .25rem 0; }",
    ".more { margin: .5rem 0 0; font-size: .85rem; }"
  ].join("\n");

  var data = script.dataset || {};
  var base;
  try {
    base = new URL(script.src, document.baseURI);
  } catch (e) {
    return;
  }
  var category = (data.category || "").trim();
  var query = (data.q || "").trim();
  var limit = parseInt(data.limit, 10);
  if (!(limit >= 1 && limit <= MAX_LIMIT)) {
    limit = DEFAULT_LIMIT;
  }
  var theme = data.theme === "dark" ? "dark" : "light";

  var feedUrl;
  if (query) {
    feedUrl = new URL("/feeds/search.json", base);
    feedUrl.searchParams.set("q", query);
    if (category && category !== "all") {
      feedUrl.searchParams.set("category", category);
    }
  } else if (category && category !== "all" && SLUG.test(category)) {
    feedUrl = new URL("/feeds/" + category + ".json", base);
  } else {
    feedUrl = new URL("/feeds/all.json", base);
  }
  feedUrl.searchParams.set("limit", String(limit));

  function el(name, className, text) {
    var node = document.createElement(name);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function webUrl(value) {
    if (typeof value !== "string" || !value) {
      return null;
    }
    try {
      var url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href, text) {
    var url = webUrl(href);
    if (!url) {
      return el("span", "", text);
    }
    var a = el("a", "", text);
    a.setAttribute("href", url);
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noopener");
    return a;
  }

  function shortDate(value) {
    // "2014-06-27T08:00:00+07:00" -> "27/06/2014", as written (already Vietnam time)
    var m = /^(\d{4})-(\d{2})-(\d{2})T/.exec(typeof value === "string" ? value : "");
    return m ? m[3] + "/" + m[2] + "/" + m[1] : "";
  }

  var host = el("div", "searchsvc-embed");
  host.setAttribute("data-searchsvc-state", "loading");
  script.parentNode.insertBefore(host, script.nextSibling);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;

  var sheetAdopted = false;
  try {
    if (root !== host && "adoptedStyleSheets" in root && typeof CSSStyleSheet === "function") {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
      sheetAdopted = true;
    }
  } catch (e) {
    sheetAdopted = false;
  }
  if (!sheetAdopted) {
    root.appendChild(el("style", "", CSS));
  }

  var box = el("section", "box " + theme);
  box.setAttribute("lang", "vi");
  var status = el("p", "status", "Đang tải tin…");
  box.appendChild(status);
  root.appendChild(box);

  function fail() {
    status.textContent = "Không tải được tin.";
    host.setAttribute("data-searchsvc-count", "0");
    host.setAttribute("data-searchsvc-state", "error");
  }

  function render(feed) {
    var items = feed && Array.isArray(feed.items) ? feed.items.slice(0, limit) : [];
    var heading = el("h2");
    var title = typeof feed.title === "string" ? feed.title : "Tin mới";
    heading.appendChild(link(feed.home_page_url, title));
    box.textContent = "";
    box.appendChild(heading);
    var count = 0;
    if (items.length) {
      var list = el("ol");
      items.forEach(function (item) {
        if (!item || typeof item.title !== "string") {
          return;
        }
        var li = el("li");
        li.appendChild(link(item.url, item.title));
        var when = el("time", "meta", shortDate(item.date_published));
        if (typeof item.date_published === "string") {
          when.setAttribute("datetime", item.date_published);
        }
        li.appendChild(when);
        list.appendChild(li);
        count += 1;
      });
      box.appendChild(list);
    }
    if (!count) {
      box.appendChild(el("p", "status", "Chưa có bài viết nào."));
    }
    var more = el("p", "more");
    more.appendChild(link(feed.home_page_url, "Xem thêm ›"));
    box.appendChild(more);
    host.setAttribute("data-searchsvc-count", String(count));
    host.setAttribute("data-searchsvc-state", "ready");
  }

  fetch(feedUrl.href, { mode: "cors", credentials: "omit" })
    .then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    })
    .then(render)
    .catch(fail);
})();
