"""Embeddable headline lists for partner sites: an ``<iframe>`` page and a ``<script>`` widget.

* ``/embed/{category_slug}``, ``/embed/all``, ``/embed/search?q=…`` (same search parameters as
  the search feed): a small self-contained HTML list of the latest headlines, options
  ``limit`` (1–50, default 10) and ``theme`` (``light`` or ``dark``). Links open in a new tab
  (``target="_blank" rel="noopener"``). Any site may frame it: the ``/embed/`` header policy has
  ``frame-ancestors *`` and no ``X-Frame-Options``, and is otherwise stricter than the pages'
  (``default-src 'none'``, one same-origin stylesheet, no script at all).
* ``/embed.js``: ``<script src="https://host/embed.js" data-category="the-thao" data-limit="5"
  data-theme="light" async></script>`` renders the same list right after its own tag, in a Shadow
  DOM, from ``/feeds/{slug}.json`` (fetched with CORS). See ``static/embed.js``.

Both are cached like the feeds (``searchsvc.http.feed_cache``: per generation, ETag, 304, gzip),
show what a ``searchsvc.selection.Selection`` selects, and carry ``Access-Control-Allow-Origin: *``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import feeds
from feeds.text import one_line
from index.api import SearchEngine

from ..config import Config
from ..engine_calls import current_generation, map_engine_errors
from ..errors import ApiError, ErrorCode
from ..http.cors import with_cors
from ..http.feed_cache import Document, make_document, respond, serve_cached
from ..http.middleware import BASE_SECURITY_HEADERS, HeaderPolicy
from ..params import bad, parse_int
from ..presenters import format_date
from ..selection import Selection, fetch, parse_selection
from ..state import app_state

EMBED_DEFAULT_LIMIT = 10
EMBED_MAX_LIMIT = 50
THEMES = ("light", "dark")
EMBED_JS_PATH = Path(__file__).resolve().parent.parent / "static" / "embed.js"

# Framable by any site (http/https), and nothing else: no script, no inline style, only our CSS.
EMBED_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors *"
)
HEADER_POLICIES: dict[str, HeaderPolicy] = {
    "/embed/": HeaderPolicy({**BASE_SECURITY_HEADERS, "Content-Security-Policy": EMBED_CSP}),
}


def parse_theme(params: object) -> str:
    theme = (params.get("theme") or "").strip() or "light"  # type: ignore[attr-defined]
    if theme not in THEMES:
        raise bad(ErrorCode.BAD_THEME, f"'theme' must be one of: {', '.join(THEMES)}")
    return theme


def render_embed(request: Request, engine: SearchEngine, config: Config, selection: Selection, limit: int,
                 theme: str) -> Document:
    batch = fetch(engine, selection, limit, 0)
    items = [
        {
            "title": one_line(a.title),
            "url": feeds.item_link(a, config.base_url),
            "date": format_date(a.published),
            "datetime": feeds.vn_time(a.published).isoformat(),
            "category": a.category,
        }
        for a in batch.articles
    ]
    context = {
        "heading": batch.label,
        "html_url": config.base_url + selection.html_path(),
        "items": items,
        "theme": theme,
        "show_category": selection.kind != "category",
    }
    html = app_state(request).templates.env.get_template("embed.html").render(context)
    return make_document(html.encode("utf-8"), "text/html; charset=utf-8")


@with_cors
async def embed(request: Request) -> Response:
    """``/embed/{name}``: the framable headline list."""
    name = request.path_params["name"]
    params = request.query_params
    selection = parse_selection(name, params)
    limit = parse_int(params, "limit", EMBED_DEFAULT_LIMIT, ErrorCode.BAD_LIMIT, 1, EMBED_MAX_LIMIT)
    theme = parse_theme(params)
    engine, generation = await current_generation(request)
    state = app_state(request)
    key = (generation, "embed", selection, limit, theme)
    return await serve_cached(request, state.feed_cache, key,
                              lambda: map_engine_errors(render_embed, request, engine, state.config, selection, limit,
                                                        theme), shows=selection.shows())


_EMBED_JS: Document | None = None


@with_cors
async def embed_js(request: Request) -> Response:
    """The widget script; short max-age (its URL has no version), revalidated by ETag."""
    global _EMBED_JS
    if _EMBED_JS is None:
        if not EMBED_JS_PATH.is_file():
            raise ApiError(ErrorCode.NOT_FOUND, "embed.js is missing")
        _EMBED_JS = make_document(EMBED_JS_PATH.read_bytes(), "text/javascript; charset=utf-8")
    # Partners with Cross-Origin-Embedder-Policy: require-corp may load it too.
    return respond(request, _EMBED_JS, {"Cross-Origin-Resource-Policy": "cross-origin"})


routes = [
    Route("/embed.js", embed_js, methods=["GET"], name="embed_js"),
    Route("/embed/{name}", embed, methods=["GET"], name="embed"),
]
