"""Reader for the provincial news portal's plain-text export (one article a file).

Layout (see ``../shared/samples/README.md``)::

    Tin tức > <category>                          breadcrumb, " > " between levels
    <title>
    Ngày đăng: DD/MM/YYYY - Số lần xem: N         date (local time), optional view count
    <blank line>
    <paragraphs separated by blank lines; an image caption is a short line of its own>
      • Nguồn: <author or source>                  optional, the last meaningful line
    Phản hồi                                      page chrome ("Feedback" link)

Real exports vary (BOMs, UTF-16, CRLF/CR, decomposed Unicode, missing view counts, one- or
three-level breadcrumbs), so decoding and the header are lenient about form and strict about
content: a file whose date cannot be read is reported, never indexed with a guessed date.

Caption rule. The portal renders an article image as an empty line, so in the export a caption is
a paragraph preceded by *two or more* blank lines (the original export
``000_78598a99919a94f2.txt`` has exactly that before "Đồng chí Phạm Thanh Khiết - Giám đốc Sở,
Chủ trì Hội nghị"). A paragraph is taken as a caption only when it also is a single line, short
(at most ``CAPTION_MAX_CHARS`` characters and ``CAPTION_MAX_WORDS`` words), does not end with
sentence punctuation, and is not the last paragraph (a last short line is a byline such as
"Việt Anh" or "(Theo Tuổi Trẻ)" and stays in the body). The image gap is required because the
purely textual test also matches 318 lines in 39 of the corpus-rendered samples that are not
captions: subheadings ("Chợ đêm, phố mua sắm đìu hiu"), flattened table cells ("17,3", "Pts"),
list items, salutations and e-mail headers. Misfiling those would drop them from the body; missing
a caption only leaves it in the body, where it is still searchable — so the rule errs that way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from index.article import VN_TZ, Article
from index.cleanup import clean_line
from index.limits import MAX_LINE_BYTES, TOO_LONG, too_large

# defined before the package imports this module
from index.readers import MAX_VIEWS, MAX_YEAR, MIN_YEAR, ReadError, date_in_range

CAPTION_MAX_CHARS = 120
CAPTION_MAX_WORDS = 20
CAPTION_MIN_GAP = 2  # blank lines before a paragraph that mark a removed image

_HOME_LEVEL = "tin tức"  # the portal's root section, not a category of its own
_CHROME = frozenset({"phản hồi"})  # casefolded lines that are page links, not content
_LEVEL_SEP = re.compile(r"\s*[>»]\s*")
# "Ngày đăng:" (colon optional before a digit) but not a title such as "Ngày đăng ký kết hôn".
_DATE_PREFIX = re.compile(r"ngày\s+đăng\s*(?::\s*|(?=\d))", re.IGNORECASE)
_VIEWS_SPLIT = re.compile(r"s[ốô]\s+lần\s+xem", re.IGNORECASE)
_DATE_VALUE = re.compile(
    r"(?:(?P<t1>\d{1,2}:\d{2})\s*,?\s*)?"
    r"(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})"
    r"(?:\s*,?\s*(?:lúc\s*)?(?P<t2>\d{1,2}:\d{2}))?",
    re.IGNORECASE,
)
_VIEWS_VALUE = re.compile(r"\s*:?\s*(\d{1,3}(?:[.,]\d{3})+|\d+)")
_SOURCE = re.compile(r"(?:[•·*-]\s*)?nguồn\s*:\s*(?P<source>\S.*)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;…][\"'”’»)\]]*$")
_SEPARATORS = " -–—|,"


class PortalError(Exception):
    """A problem with one file, raised inside the parser and turned into a ``ReadError``."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class _Line:
    number: int  # 1-based, after CR/CRLF normalisation
    text: str  # cleaned


def read_portal(data: bytes, label: str, stem: str) -> list[Article | ReadError]:
    """Parse one exported file; ``label`` names it in errors, ``stem`` gives the article id.

    Returns a list (one Article or one ReadError) rather than raising, so a directory of exports
    keeps going past a bad file.
    """
    try:
        return [_parse(_decode(data), stem)]
    except PortalError as err:
        return [ReadError(label, err.line, err.reason)]


def _decode(data: bytes) -> str:
    """UTF-16 when a BOM says so, else UTF-8 (BOM optional); NUL bytes mean binary, not text."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise PortalError(None, "not UTF-8/UTF-16 text (bad UTF-16 after a BOM)") from None
    elif b"\x00" in data:
        raise PortalError(None, "binary data (NUL bytes), not a text export")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            byte = data[err.start]
            raise PortalError(line, f"not UTF-8/UTF-16 text (byte 0x{byte:02x})") from None
    if "\x00" in text:
        raise PortalError(None, "binary data (NUL characters), not a text export")
    return text


def _parse(text: str, stem: str) -> Article:
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for n, raw in enumerate(raw_lines, 1):
        # Counted in UTF-8 whatever the file's encoding, like a JSON Lines line; a line of at most
        # a quarter of the cap in characters cannot be longer, so most lines are never encoded.
        if len(raw) * 4 > MAX_LINE_BYTES and len(raw.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            raise PortalError(n, TOO_LONG)
    lines = [_Line(n, clean_line(raw)) for n, raw in enumerate(raw_lines, 1)]
    filled = [ln for ln in lines if ln.text]
    if not filled:
        raise PortalError(None, "empty file")

    date_at = next((i for i, ln in enumerate(filled[:3]) if _DATE_PREFIX.match(ln.text)), None)
    if date_at is None:
        where = filled[2].number if len(filled) > 2 else filled[-1].number + 1
        raise PortalError(where, "no date line after breadcrumb and title (expected 'Ngày đăng: DD/MM/YYYY')")
    date_line = filled[date_at]
    if date_at == 0:
        raise PortalError(date_line.number, "no breadcrumb and no title (before 'Ngày đăng')")
    if date_at == 1:
        only = filled[0]
        if _LEVEL_SEP.search(only.text):
            raise PortalError(date_line.number, "no title (between breadcrumb and 'Ngày đăng')")
        raise PortalError(only.number, "no breadcrumb (only one line before 'Ngày đăng')")

    crumb, title = filled[0], filled[1]
    levels = [lvl for lvl in _LEVEL_SEP.split(crumb.text) if lvl]
    if not levels:
        raise PortalError(crumb.number, "no breadcrumb")
    path = levels[1:] if len(levels) > 1 and levels[0].casefold() == _HOME_LEVEL else levels
    published, views = _parse_date_line(date_line)

    body_lines = [ln for ln in lines if ln.number > date_line.number]
    paragraphs, source = _paragraphs(body_lines)
    last = len(paragraphs) - 1
    is_caption = [_is_caption(p, i == last) for i, p in enumerate(paragraphs)]
    captions = [p.text for p, cap in zip(paragraphs, is_caption) if cap]
    body = [p.text for p, cap in zip(paragraphs, is_caption) if not cap]
    if not body:
        raise PortalError(date_line.number, "no body text (after the 'Ngày đăng' line)")
    try:
        article = Article(
            id=f"portal-{stem}",
            title=title.text,
            body=body,
            category=path[-1],
            category_path=path,
            published=published,
            views=views,
            source=source,
            captions=captions,
        )
    except ValueError as err:  # the Article invariants, should the checks above miss one
        raise PortalError(None, str(err)) from None
    if oversize := too_large(article):
        field, reason = oversize
        line_of = {"title": title.number, "category": crumb.number, "category_path": crumb.number}
        raise PortalError(line_of.get(field), reason)
    return article


def _parse_date_line(line: _Line) -> tuple[datetime, int | None]:
    """``Ngày đăng: 27/06/2014 - Số lần xem: 1021``; the time and the view count are optional."""
    rest = _DATE_PREFIX.sub("", line.text, count=1)
    date_part, *views_part = _VIEWS_SPLIT.split(rest, maxsplit=1)
    date_part = date_part.strip(_SEPARATORS)
    m = _DATE_VALUE.fullmatch(date_part)
    if not m:
        raise PortalError(line.number, f"malformed date line {line.text[:80]!r} (expected 'Ngày đăng: DD/MM/YYYY')")
    hhmm = m["t1"] or m["t2"]
    hour, minute = map(int, hhmm.split(":")) if hhmm else (0, 0)
    try:
        published = datetime(int(m["y"]), int(m["m"]), int(m["d"]), hour, minute, tzinfo=VN_TZ)
    except ValueError:
        raise PortalError(line.number, f"bad date {date_part!r}") from None
    if not date_in_range(published):
        raise PortalError(line.number, f"bad date {date_part!r} (years {MIN_YEAR}-{MAX_YEAR} only)")
    views = None
    if views_part:
        v = _VIEWS_VALUE.fullmatch(views_part[0].rstrip(_SEPARATORS))
        if not v:
            raise PortalError(line.number, f"bad view count {views_part[0].strip()[:40]!r}")
        views = int(re.sub(r"[.,]", "", v[1]))
        if views > MAX_VIEWS:
            raise PortalError(line.number, f"bad view count {views_part[0].strip()[:40]!r}")
    return published, views


@dataclass(slots=True)
class _Paragraph:
    text: str
    lines: int  # how many lines it spans
    gap: int  # blank lines before it


def _paragraphs(lines: list[_Line]) -> tuple[list[_Paragraph], str | None]:
    """Group (already cleaned) body lines into paragraphs; drop chrome; split off "• Nguồn:".

    Each paragraph remembers how many blank lines preceded it: the caption rule needs that.
    """
    content = [ln for ln in lines if ln.text.casefold() not in _CHROME]
    source = None
    last = next((ln for ln in reversed(content) if ln.text), None)
    if last is not None and (m := _SOURCE.fullmatch(last.text)):
        source = m["source"]
        content = [ln for ln in content if ln is not last]

    paragraphs: list[_Paragraph] = []
    current: list[str] = []
    gap = blanks = 0
    for ln in content:
        if not ln.text:
            if current:
                paragraphs.append(_Paragraph("\n".join(current), len(current), gap))
                current, blanks = [], 0
            blanks += 1
            continue
        if not current:
            gap = blanks
        current.append(ln.text)
    if current:
        paragraphs.append(_Paragraph("\n".join(current), len(current), gap))
    return paragraphs, source


def _is_caption(p: _Paragraph, is_last: bool) -> bool:
    """See the module docstring: image gap + one short line without sentence punctuation."""
    return (
        not is_last
        and p.gap >= CAPTION_MIN_GAP
        and p.lines == 1
        and len(p.text) <= CAPTION_MAX_CHARS
        and len(p.text.split()) <= CAPTION_MAX_WORDS
        and not _SENTENCE_END.search(p.text)
    )
