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

from .engine_pool import EngineNotReady
from .services import RETRY_AFTER_NOT_READY, services

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


def _index_state(request: Request) -> tuple[str, int]:
    engine = services(request).engines.get()
    return str(engine.generation), int(engine.doc_count)


async def readyz(request: Request) -> Response:
    svc = services(request)
    try:
        generation, documents = await run_in_threadpool(_index_state, request)
    except (EngineNotReady, FileNotFoundError) as exc:  # none yet, or removed under an open engine
        svc.metrics.set_index(None, None)
        return JSONResponse(
            {"status": "not_ready", "error": {"code": "not_ready", "message": str(exc)}},
            status_code=503,
            headers={**NO_STORE, "Retry-After": RETRY_AFTER_NOT_READY},
        )
    svc.metrics.set_index(generation, documents)
    return JSONResponse({"status": "ready", "articles": documents, "generation": generation}, headers=NO_STORE)


def _scrape(request: Request) -> bytes:
    """Refresh the index gauges, then render every metric (blocking: file reads in multiprocess mode)."""
    svc = services(request)
    engine = svc.engines.engine
    if engine is not None:
        try:
            svc.metrics.set_index(str(engine.generation), int(engine.doc_count))
        except Exception:  # a scrape must not fail because the index is being swapped
            pass
    return svc.metrics.render()


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_scrape, request)
    return Response(body, media_type=services(request).metrics.content_type, headers=NO_STORE)


routes = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics, methods=["GET"], name="metrics"),
]
