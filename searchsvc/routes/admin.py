"""The admin API under ``/api/admin/``: publish, correct and unpublish articles; the status; the keys.

Who may call it is settled before any of these handlers runs (``searchsvc.http.auth``: a bearer
key, or 404 while no keys file exists); each handler then names the scope it needs.

Articles are validated by the JSON Lines reader itself (``index.readers.jsonl``: its clean-up,
required fields and the size caps of ``index.limits``), so an article the API accepts is exactly
one ``searchsvc index`` would, and one it refuses is refused with the reader's own reason. The
body is read whole (``SEARCHSVC_ADMIN_MAX_BODY`` bounds it, 413 above) and parsed in a worker
thread. A ``202`` is sent only after ``Journal.append`` returned: the accepted changes are on disk
in one transaction, and ``seq`` is the last sequence number given to them. The applier
(``index.applier``) makes them visible; ``GET /api/admin/status`` says how far it got.

Every answer here carries ``Cache-Control: no-store`` (``HEADER_POLICIES``), none carries CORS
headers (the app leaves this prefix out of its CORS layer) and none is kept by the response
caches (``searchsvc.http.caching.PRIVATE_PREFIXES``).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from index.applier import HEARTBEAT, default_status_path, read_status
from index.article import Article
from index.cleanup import clean_line
from index.limits import MAX_ID_CHARS, TOO_LONG
from index.publishing import Change, JournalError, Op
from index.readers import ReadError
from index.readers.jsonl import bounded_lines, read_jsonl_lines

from ..errors import ApiError, ErrorCode
from ..http.auth import PREFIX, require_scope
from ..http.middleware import API_CSP, BASE_SECURITY_HEADERS, HeaderPolicy
from ..keys import KeysFileError, Scope, read_keys
from ..state import app_state

JSON_TYPE = "application/json"
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson"})
MAX_REJECTED_LISTED = 1_000  # rejected lines listed in one answer; ``rejected_total`` counts them all
STALE_AFTER = 3 * HEARTBEAT  # seconds without a status write after which a running applier is reported stale
REQUEST_LABEL = "request"  # what the reader calls the "file" in its messages

HEADER_POLICIES: dict[str, HeaderPolicy] = {
    PREFIX: HeaderPolicy(
        {**BASE_SECURITY_HEADERS, "Content-Security-Policy": API_CSP, "Cache-Control": "no-store"}
    ),
}


@dataclass(slots=True)
class Validated:
    """What the reader made of a request's articles."""

    articles: list[Article] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_REJECTED_LISTED
    rejected_total: int = 0
    first_code: ErrorCode = ErrorCode.BAD_ARTICLE  # the code of the first rejected line
    empty: bool = False  # no record at all (an empty body, only blank lines)

    def details(self) -> dict[str, object]:
        return {"accepted": len(self.articles), "rejected": self.rejected, "rejected_total": self.rejected_total}


def _line_id(raw: bytes | None) -> str | None:
    """The id a rejected line meant, when it can be read (so a client can match the rejection)."""
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value[:MAX_ID_CHARS] if isinstance(value, str) else None


def _reason_code(reason: str) -> ErrorCode:
    too_large = reason == TOO_LONG or reason.startswith("too large")
    return ErrorCode.ARTICLE_TOO_LARGE if too_large else ErrorCode.BAD_ARTICLE


def validate(lines: list[bytes | None]) -> Validated:
    """Run the JSON Lines reader over ``lines`` (blocking: call it in a thread)."""
    result = Validated()
    for item in read_jsonl_lines(lines, REQUEST_LABEL):
        if isinstance(item, Article):
            result.articles.append(item)
            continue
        assert isinstance(item, ReadError)
        if item.line is None:  # "empty file": nothing to accept or reject
            result.empty = True
            continue
        code = _reason_code(item.reason)
        if not result.rejected_total:
            result.first_code = code
        result.rejected_total += 1
        if len(result.rejected) < MAX_REJECTED_LISTED:
            result.rejected.append({"line": item.line, "id": _line_id(lines[item.line - 1]),
                                    "error": {"code": code.value, "message": item.reason}})
    return result


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _require_media_type(request: Request, allowed: frozenset[str]) -> str:
    media_type = _media_type(request)
    if media_type not in allowed:
        raise ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                       f"Content-Type must be {' or '.join(sorted(allowed))}, not {media_type or 'missing'!r}")
    return media_type


def _path_id(request: Request) -> str:
    """The article id in the path, which must already be one the reader would keep as it is."""
    article_id = str(request.path_params["article_id"])
    if (not article_id or clean_line(article_id) != article_id or article_id in (".", "..")
            or len(article_id) > MAX_ID_CHARS):
        raise ApiError(ErrorCode.BAD_ARTICLE,
                       f"bad article id in the path (1-{MAX_ID_CHARS} characters, no control characters, "
                       "no leading, trailing or repeated white space, in Unicode NFC)")
    return article_id


def _refuse(result: Validated, single: bool) -> ApiError:
    """400 for a request none of whose articles was accepted, with the per-line reasons."""
    if result.empty and not result.rejected_total:
        return ApiError(ErrorCode.BAD_ARTICLE, "the request holds no article", details=result.details())
    code = result.first_code if single else ErrorCode.BAD_ARTICLE
    message = (str(result.rejected[0]["error"]["message"]) if single
               else f"no article accepted: {result.rejected_total} lines rejected (see 'rejected')")
    return ApiError(code, message, details=result.details())


async def _store(request: Request, changes: list[Change]) -> int:
    return await app_state(request).journal_writer.append(changes)


def _accepted(result: Validated, seq: int, **extra: object) -> Response:
    return JSONResponse({**result.details(), "seq": seq, **extra}, status_code=202)


async def post_articles(request: Request) -> Response:
    require_scope(request, Scope.INGEST, app_state(request).metrics)
    media_type = _require_media_type(request, NDJSON_TYPES | {JSON_TYPE})
    body = await request.body()
    single = media_type == JSON_TYPE

    def lines() -> list[bytes | None]:
        # One JSON document is one "line" however it is laid out; NDJSON is split as the reader
        # splits a file (bounded_lines: a line over the reader's cap is never held whole twice).
        return [body] if single else list(bounded_lines(io.BytesIO(body)))

    result = await run_in_threadpool(lambda: validate(lines()))
    if not result.articles:
        raise _refuse(result, single)
    seq = await _store(request, [Change(Op.UPSERT, a.id, a) for a in result.articles])
    return _accepted(result, seq)


async def put_article(request: Request) -> Response:
    require_scope(request, Scope.INGEST, app_state(request).metrics)
    article_id = _path_id(request)
    _require_media_type(request, frozenset({JSON_TYPE}))
    body = await request.body()

    def fill_id() -> bytes:
        """The body with the path's id when it has none (the reader still checks all of it)."""
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            return body  # the reader says what is wrong with it
        if isinstance(obj, dict) and obj.get("id") in (None, ""):
            obj["id"] = article_id
            return json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return body

    result = await run_in_threadpool(lambda: validate([fill_id()]))
    if not result.articles:
        raise _refuse(result, single=True)
    article = result.articles[0]
    if article.id != article_id:
        raise ApiError(ErrorCode.ID_MISMATCH,
                       f"the body's id {article.id[:80]!r} is not the path's {article_id[:80]!r}")
    seq = await _store(request, [Change(Op.UPSERT, article.id, article)])
    return _accepted(result, seq, id=article.id)


async def delete_article(request: Request) -> Response:
    """Unpublish: the article leaves search, pages and feeds once applied, and its id answers 410.
    Accepted whether or not the id was ever published (a delete is idempotent)."""
    require_scope(request, Scope.INGEST, app_state(request).metrics)
    article_id = _path_id(request)
    seq = await _store(request, [Change(Op.DELETE, article_id)])
    return JSONResponse({"id": article_id, "seq": seq}, status_code=202)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _status(request: Request) -> dict[str, Any]:
    """Blocking: reads the journal (SQLite) and the applier's status file."""
    state = app_state(request)
    journal: dict[str, Any] | None
    journal_error: str | None = None
    try:
        stats = state.journal_writer.stats()
        journal = None if stats is None else {"length": stats.length, "last_seq": stats.last_seq,
                                              "bytes": stats.bytes_on_disk}
    except (JournalError, OSError) as exc:
        journal, journal_error = None, str(exc)
    applier = read_status(default_status_path(state.config.index_dir))
    last_accepted = journal["last_seq"] if journal else 0
    updated = applier.updated_at
    if updated is not None and updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    stale = (applier.state != "stopped" and updated is not None
             and (datetime.now(UTC) - updated).total_seconds() > STALE_AFTER)
    return {
        "journal_length": journal["length"] if journal else 0,
        "journal_bytes": journal["bytes"] if journal else 0,
        "journal_error": journal_error,
        "last_accepted_seq": last_accepted,
        "last_applied_seq": applier.applied_seq,
        "pending": max(0, last_accepted - applier.applied_seq),
        "last_commit_at": _iso(applier.last_commit_at),
        "last_commit_seconds": applier.last_commit_seconds,
        "generation": state.generation(),
        "applier": {
            "state": applier.state,
            "stale": stale,
            "pid": applier.pid,
            "generation": applier.generation or None,
            "updated_at": _iso(applier.updated_at),
            "last_error": applier.last_error,
            "websub": applier.websub,
        },
    }


async def admin_status(request: Request) -> Response:
    # Any valid key may read it: the authentication layer let only those through.
    return JSONResponse(await run_in_threadpool(_status, request))


def _key_list(request: Request) -> list[dict[str, Any]]:
    try:
        records = read_keys(app_state(request).config.keys_path) or []
    except KeysFileError as exc:
        raise ApiError(ErrorCode.KEYS_UNAVAILABLE, str(exc)) from None
    return [{k: v for k, v in r.to_json().items() if k != "hash"} for r in records]


async def admin_keys(request: Request) -> Response:
    """The keys' names, scopes and dates (never a key, nor its hash); scope ``admin``."""
    require_scope(request, Scope.ADMIN, app_state(request).metrics)
    return JSONResponse({"keys": await run_in_threadpool(_key_list, request)})


routes = [
    Route("/api/admin/articles", post_articles, methods=["POST"], name="admin_articles"),
    Route("/api/admin/articles/{article_id:path}", put_article, methods=["PUT"], name="admin_article_put"),
    Route("/api/admin/articles/{article_id:path}", delete_article, methods=["DELETE"], name="admin_article_delete"),
    Route("/api/admin/status", admin_status, methods=["GET"], name="admin_status"),
    Route("/api/admin/keys", admin_keys, methods=["GET"], name="admin_keys"),
]
