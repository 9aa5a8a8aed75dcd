"""Who may use the admin API (``/api/admin/``): bearer API keys, checked before any handler runs.

Starlette's ``AuthenticationMiddleware`` runs ``ApiKeyBackend`` for every request under the
prefix (the app scopes it there); a refusal never reaches a route, whatever route a later change
adds. Routes then say which scope they need with ``require_scope``. In order:

1. No keys file: 404 ``not_found`` for every admin path, as if the API did not exist (it is off
   until an operator creates a key); a keys file that cannot be used: 503 ``keys_unavailable``
   (failing closed: never "no keys, so anyone").
2. A client whose failed attempts emptied its bucket: 429 ``rate_limited`` with ``Retry-After``,
   before its key is even looked at, so a burst of guesses learns nothing more.
3. A key in the query string (``?key=``, ``?api_key=``, ``?access_token=``... or any parameter
   whose name or value has the form of a key): 400 ``key_in_query``. Query strings end up in
   access logs, proxy logs and browser histories; refusing them teaches a client to stop before
   the key is used for real.
4. No ``Authorization: Bearer KEY``: 401 ``unauthorized`` with ``WWW-Authenticate: Bearer
   realm="searchsvc"`` (RFC 6750); a key that matches nothing or was revoked: the same with
   ``error="invalid_token"``.

Every failure is counted (``searchsvc_auth_failures_total{reason}``, a fixed set of reasons) and
logged as one JSON line on ``searchsvc.auth`` with the client, method, path and reason, never the
key. Failures of authentication (not 403s, which need a valid key) cost the client a token of
``FAILURE_RATE`` per minute: unlike the search limiter, loopback clients are counted too, since a
failed authentication is never the local traffic that limiter exempts. Like it, the buckets are
per worker.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope as AsgiScope

from ..errors import ApiError, ErrorCode, json_error
from ..keys import KeyRing, KeysFileError, Scope, looks_like_key
from ..metrics import Metrics
from .middleware import configure_json_log
from .ratelimit import TokenBucketLimiter, client_key

auth_logger = logging.getLogger("searchsvc.auth")

PREFIX = "/api/admin/"
REALM = "searchsvc"
FAILURE_RATE = 10  # failed authentications per minute per client, in a burst of as many
# Query parameters refused by name whatever their value (besides any that looks like a key).
QUERY_KEY_NAMES = frozenset(
    {"key", "api_key", "apikey", "api-key", "access_token", "token", "auth", "authorization", "bearer", "secret"}
)


def configure_auth_log() -> None:
    """One JSON object per line on stderr, like the access log."""
    configure_json_log(auth_logger)


def challenge(error: str | None = None, **params: str) -> str:
    """A ``WWW-Authenticate`` value (RFC 6750 section 3)."""
    parts = [f'realm="{REALM}"'] + ([f'error="{error}"'] if error else []) + [f'{k}="{v}"' for k, v in params.items()]
    return "Bearer " + ", ".join(parts)


class KeyUser(BaseUser):
    """The key a request authenticated with (its name, never the key)."""

    def __init__(self, name: str, scope: Scope) -> None:
        self.name = name
        self.scope = scope

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name


class Refused(AuthenticationError):
    """A refusal with its error code, the metric reason and the headers of the answer."""

    def __init__(self, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def failure_client(scope: AsgiScope) -> str:
    """The key of a client's failure bucket: ``client_key``'s address, loopback included."""
    key = client_key(scope)
    if key is not None:
        return key
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def log_failure(scope: AsgiScope, reason: str, key_name: str | None = None) -> None:
    client = scope.get("client")
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": "auth_failure",
        "request_id": scope.get("state", {}).get("request_id"),
        "client": str(client[0]) if client else None,
        "method": str(scope.get("method", ""))[:32],
        "path": scope.get("path"),
        "reason": reason,
    }
    if key_name is not None:
        record["key_name"] = key_name  # a name from the keys file, not a secret
    auth_logger.warning(json.dumps(record, ensure_ascii=False))


def key_in_query(query: QueryParams) -> bool:
    return any(
        name.lower() in QUERY_KEY_NAMES or looks_like_key(name) or looks_like_key(value)
        for name, value in query.multi_items()
    )


class ApiKeyBackend(AuthenticationBackend):
    def __init__(self, keys: KeyRing, metrics: Metrics, failures: TokenBucketLimiter | None = None) -> None:
        self.keys = keys
        self.metrics = metrics
        self.failures = failures or TokenBucketLimiter(FAILURE_RATE, burst=FAILURE_RATE)

    def _fail(self, conn: HTTPConnection, reason: str, code: ErrorCode, message: str,
              headers: Mapping[str, str] | None = None, key_name: str | None = None) -> Refused:
        self.metrics.auth_failure(reason)
        log_failure(conn.scope, reason, key_name)
        if reason != "throttled":
            self.failures.acquire(failure_client(conn.scope))
        return Refused(code, message, headers)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        try:
            records = self.keys.keys()  # a stat at most once a second; a small read when it changed
        except KeysFileError as exc:
            auth_logger.error(json.dumps({"event": ErrorCode.KEYS_UNAVAILABLE.value, "error": str(exc)},
                                         ensure_ascii=False))
            raise Refused(ErrorCode.KEYS_UNAVAILABLE,
                          "the admin API's keys file cannot be used; the operator must fix it") from None
        if records is None:
            raise Refused(ErrorCode.NOT_FOUND, "Not Found")  # off: exactly what an unknown path answers
        wait = self.failures.wait_time(failure_client(conn.scope))
        if wait > 0:
            raise self._fail(conn, "throttled", ErrorCode.RATE_LIMITED,
                             "too many failed authentications from this client; wait before trying again",
                             {"Retry-After": str(max(1, math.ceil(wait)))})
        if key_in_query(conn.query_params):
            raise self._fail(conn, "in_query", ErrorCode.KEY_IN_QUERY,
                             "API keys are refused in the query string (it is logged and cached along the way): "
                             "send 'Authorization: Bearer KEY', and replace a key that was sent this way")
        headers = conn.headers.getlist("authorization")
        if not headers:
            raise self._fail(conn, "missing", ErrorCode.UNAUTHORIZED,
                             "this route needs an API key: send 'Authorization: Bearer KEY'",
                             {"WWW-Authenticate": challenge()})
        scheme, _, token = headers[0].strip().partition(" ")
        token = token.strip()
        if len(headers) > 1 or scheme.lower() != "bearer" or not token:
            raise self._fail(conn, "malformed", ErrorCode.UNAUTHORIZED,
                             "the Authorization header must be exactly 'Bearer KEY'",
                             {"WWW-Authenticate": challenge("invalid_token")})
        record = self.keys.match(token, records).record
        if record is None or not record.active:
            raise self._fail(conn, "unknown" if record is None else "revoked", ErrorCode.UNAUTHORIZED,
                             "the API key is not valid (unknown or revoked)",
                             {"WWW-Authenticate": challenge("invalid_token")},
                             key_name=None if record is None else record.name)
        return AuthCredentials(sorted(s.value for s in record.scope.grants)), KeyUser(record.name, record.scope)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """The refusal in the API's error shape (``AuthenticationMiddleware``'s ``on_error``)."""
    if isinstance(exc, Refused):
        return json_error(exc.code, exc.message, exc.headers)
    return json_error(ErrorCode.UNAUTHORIZED, str(exc), {"WWW-Authenticate": challenge("invalid_token")})


def require_scope(request: Request, scope: Scope, metrics: Metrics) -> KeyUser:
    """The request's key, if it holds ``scope``; else 403 ``insufficient_scope`` (counted, logged)."""
    user = request.user if "user" in request.scope else None
    if isinstance(user, KeyUser) and scope.value in request.auth.scopes:
        return user
    metrics.auth_failure("scope")
    log_failure(request.scope, "scope", user.name if isinstance(user, KeyUser) else None)
    raise ApiError(ErrorCode.INSUFFICIENT_SCOPE, f"this route needs a key with the scope {scope.value!r}",
                   {"WWW-Authenticate": challenge(ErrorCode.INSUFFICIENT_SCOPE.value, scope=scope.value)})
