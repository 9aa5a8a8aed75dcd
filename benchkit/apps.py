"""Bare Starlette apps the HTTP benchmarks measure as ceilings: on stock uvicorn[standard] (the
honest ceiling) and under the service's own uvicorn settings (``benchkit.wrk``).

uvicorn imports them by name (``benchkit.apps:hello_app``) in every worker it spawns, which is why
they are factories in an installed module rather than objects built by the benchmark script.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# The same-bytes ceiling's body, read from files the benchmark writes (uvicorn's workers are other
# processes: the environment is how they get it).
BLOB_PLAIN = "BENCH_BLOB_PLAIN"
BLOB_GZIP = "BENCH_BLOB_GZIP"
BLOB_TYPE = "BENCH_BLOB_TYPE"


def hello_app() -> Starlette:
    """The most this machine can serve: the smallest Starlette app, no work at all."""

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


def blob_app() -> Starlette:
    """What sending a feed's bytes costs with no work: /plain, /gzip (Content-Encoding: gzip), /304."""
    plain = Path(os.environ[BLOB_PLAIN]).read_bytes()
    packed = Path(os.environ[BLOB_GZIP]).read_bytes()
    media = os.environ.get(BLOB_TYPE, "application/rss+xml; charset=utf-8")

    async def send_plain(request: Request) -> Response:
        return Response(plain, headers={"Content-Type": media})

    async def send_gzip(request: Request) -> Response:
        return Response(packed, headers={"Content-Type": media, "Content-Encoding": "gzip"})

    async def not_modified(request: Request) -> Response:
        return Response(status_code=304, headers={"ETag": '"x"'})

    return Starlette(routes=[Route("/plain", send_plain), Route("/gzip", send_gzip), Route("/304", not_modified)])
