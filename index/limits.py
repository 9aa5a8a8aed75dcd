"""Size limits on the input: one article, one input line, one portal export file.

Every reader (JSON Lines, portal export, stdin) checks against these and nothing else, so an
article refused from one format is refused from every other. An article over a cap is reported
``path:line: too large (field: N > cap)`` and skipped rather than shortened: a silently cut body
would be indexed as if it were the whole article.

Why caps at all: one article with a body of tens of millions of characters costs minutes and
gigabytes to index, then slows every search that matches it, every feed that lists it and every
page that shows it. The figures are several times the largest real article (the measured
maxima are in docs/reliability.md), so no real article comes near them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# One figure for an article's url: the reader refuses what the link check (index.urls) would
# never link anyway.
from index.urls import MAX_URL_CHARS

if TYPE_CHECKING:
    from index.article import Article

# One article, in characters after clean-up (``Article`` fields).
MAX_ID_CHARS = 512  # a portal id is "portal-" + a file name (at most 255 bytes)
MAX_TITLE_CHARS = 1_000
MAX_BODY_CHARS = 500_000  # paragraphs joined by a blank line (``Article.body_text``)
MAX_PARAGRAPHS = 2_000
MAX_CAPTION_CHARS = 1_000  # each caption
MAX_CAPTIONS = 200
MAX_SOURCE_CHARS = 300
MAX_CATEGORY_CHARS = 200  # each level of the category path (the filter parameter's own cap)
MAX_CATEGORY_LEVELS = 10

# One JSON Lines line, in bytes (the newline not counted): room for an article at every cap above
# even with every character written as a ``\\uXXXX`` escape. Longer lines are skipped unread.
MAX_LINE_BYTES = 4 * 1024 * 1024
# One portal export file (one article), in bytes; each of its lines is held to MAX_LINE_BYTES
# (counted in UTF-8) as well.
MAX_PORTAL_FILE_BYTES = 2 * MAX_LINE_BYTES

TOO_LONG = "line too long"


def too_large(article: Article) -> tuple[str, str] | None:
    """``(field, reason)`` for the first field of ``article`` over its cap, else None.

    The reason reads ``too large (body: 600000 > 500000)``; the field lets a reader point at the
    line that holds it when it knows one.
    """
    checks: list[tuple[str, int, int]] = [
        ("id", len(article.id), MAX_ID_CHARS),
        ("title", len(article.title), MAX_TITLE_CHARS),
        ("paragraphs", len(article.body), MAX_PARAGRAPHS),
        ("body", sum(map(len, article.body)) + 2 * (len(article.body) - 1), MAX_BODY_CHARS),
        ("captions", len(article.captions), MAX_CAPTIONS),
        ("caption", max(map(len, article.captions), default=0), MAX_CAPTION_CHARS),
        ("source", len(article.source or ""), MAX_SOURCE_CHARS),
        ("url", len(article.url or ""), MAX_URL_CHARS),
        ("category_path", len(article.category_path), MAX_CATEGORY_LEVELS),
        ("category", max(map(len, [article.category, *article.category_path])), MAX_CATEGORY_CHARS),
    ]
    for field, size, cap in checks:
        if size > cap:
            return field, f"too large ({field}: {size} > {cap})"
    return None
