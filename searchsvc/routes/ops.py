"""Operations endpoints: liveness, readiness and Prometheus metrics.

``/healthz`` only says the process answers (a restart will not fix a missing index, so liveness
must not depend on it); ``/readyz`` says whether searches can be served, which is what a load
balancer should route on, and tries to open the index so it becomes ready without a restart.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine_calls import RETRY_AFTER_NOT_READY
from ..engine_holder import EngineNotReady
from ..errors import ErrorCode
from ..state import app_state

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


def _index_state(request: Request) -> tuple[str, int]:
    engine = app_state(request).engines.get()
    return str(engine.generation), int(engine.doc_count)


async def readyz(request: Request) -> Response:
    state = app_state(request)
    try:
        generation, documents = await run_in_threadpool(_index_state, request)
    except (EngineNotReady, FileNotFoundError) as exc:  # none yet, or removed under an open engine
        state.metrics.set_index(None, None)
        return JSONResponse(
            {"status": "not_ready", "error": {"code": ErrorCode.NOT_READY.value, "message": str(exc)}},
            status_code=503,
            headers={**NO_STORE, "Retry-After": RETRY_AFTER_NOT_READY},
        )
    state.metrics.set_index(generation, documents)
    return JSONResponse({"status": "ready", "articles": documents, "generation": generation}, headers=NO_STORE)


def _scrape(request: Request) -> bytes:
    """Refresh the index gauges, then render every metric (blocking: file reads in multiprocess mode)."""
    state = app_state(request)
    engine = state.engines.engine
    if engine is not None:
        try:
            state.metrics.set_index(str(engine.generation), int(engine.doc_count))
        except Exception:  # a scrape must not fail because the index is being swapped
            pass
    return state.metrics.render()


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_scrape, request)
    return Response(body, media_type=app_state(request).metrics.content_type, headers=NO_STORE)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics, methods=["GET"], name="metrics"),
]
