"""The application factory: ``uvicorn searchsvc.app:create_app --factory``.

Each uvicorn worker calls ``create_app()`` with no arguments and reads its ``Config`` from the
``SEARCHSVC_*`` environment, which is how ``searchsvc serve --workers N`` configures every worker.
``create_app`` puts together the parts built below: the per-app state (``build_state``), the routes
(``build_routes``), the middleware stack (``build_middleware``) and the lifespan.

The middleware stack, outermost first, and why in that order (``searchsvc.http``):

1. Observability: request id, access log, metrics, last-resort 500, so it sees every response.
2. The repeat lane (``searchsvc.http.repeats``): a repeat that layers 7 and 9 or the feed cache
   would answer from memory (a 304, a cached page, a cached feed) is answered here with the
   headers the whole stack sent for it last time, without running the layers in between.
3. Security headers, per path prefix, also on errors, 304s and 429s.
4. CORS, for ``/api/`` only: preflights are answered here, and 429/413 still carry CORS headers.
   Not for the admin API (``/api/admin/``): it is for servers (a CMS), never for browser pages.
5. Authentication, for ``/api/admin/`` only (``searchsvc.http.auth``): a bearer key, before the
   body is read or any route runs.
6. Body limit (413): a cheap refusal before any real work (the admin API has a larger one).
7. Response cache: a repeated GET is answered from the bytes of its first answer (after gzip), with
   the per-request headers of the layers above still added around it.
8. GZip, for everything but feeds and embeds (they keep their documents compressed already),
   outside the conditional layer so that the ETag it sets passes through unchanged.
9. Conditional GET: a tag hashed from the answer's bytes; a revalidation whose remembered tag still
   holds (no commit changed what the answer shows) is a 304 before the handler runs.

Inside them Starlette's exception middleware turns ``ApiError`` and ``HTTPException`` into the
service's error responses (``searchsvc.errors``), and the router's default answers trailing-slash
redirects (``searchsvc.http.redirects``). The rate limit is not a layer: a request pays a token
where costly work starts (``searchsvc.engine_calls.charge``, called by the engine calls and feed
renders), so a route cannot be left out and answers from a cache are free. Admission control is
not a layer either, for the same reason: expensive work waits for an engine thread in
``searchsvc.admission`` (503 ``overloaded`` past its queue or deadline), cheap work and caches never.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .admission import Admission
from .config import Config
from .engine_calls import charge
from .engine_holder import EngineHolder, EngineNotReady, Opener, opener_for
from .errors import EXCEPTION_HANDLERS
from .freshness import Freshness
from .http import auth, redirects
from .http.caching import (
    ConditionalGetMiddleware,
    ResponseCacheMiddleware,
    SharedResponseStore,
    StaticCacheControl,
    fingerprint,
)
from .http.cors import ApiCORSMiddleware
from .http.encoding import GZIP_LEVEL, GZIP_MINIMUM_SIZE, GZipMiddleware
from .http.feed_cache import FeedCache
from .http.middleware import (
    ACCESS_LOG,
    DEFAULT_HEADER_POLICIES,
    BodyLimitMiddleware,
    HeaderPolicy,
    ObservabilityMiddleware,
    PathScopedMiddleware,
    SecurityHeadersMiddleware,
)
from .http.ratelimit import TokenBucketLimiter
from .http.repeats import RepeatLane, RepeatLaneMiddleware
from .keys import KeyRing
from .metrics import Metrics
from .publishing import JournalWriter
from .routes import admin as admin_routes
from .routes import api as api_routes
from .routes import crawl as crawl_routes
from .routes import embeds as embed_routes
from .routes import feeds as feed_routes
from .routes import ops as ops_routes
from .routes import pages as page_routes
from .server import SERVE_WORKER_ENV
from .state import STATE_ATTRIBUTE, AppState
from .tombstones import Tombstones

logger = logging.getLogger("searchsvc")

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

MAX_BODY_BYTES = 64 * 1024
WARM_UP_WAIT = 60.0  # seconds a starting worker waits for its warm-up before it serves anyway

CACHEABLE_PATHS = ("/", "/search", "/api/search", "/api/suggest", "/api/categories", "/api/openapi.json")
CACHEABLE_PREFIXES = ("/api/articles/", "/articles/", "/c/")
# Feeds and embeds choose their encoding and write Vary themselves, by the same rule
# (searchsvc.http.encoding): the gzip layer would only cost them time on every request.
GZIP_EXCEPT_PREFIXES = ("/feeds", "/embed", *crawl_routes.OWN_ENCODING_PREFIXES)
# Where routes answer from the feed cache with the same validators (``feed_cache.serve_cached``)
# and the repeat lane may answer their repeats (searchsvc.http.repeats).
DOCUMENT_PREFIXES = ("/feeds", "/embed/")
# Security headers by path prefix: the pages' and the API's, and the policies the embeds (framed
# by anyone) and the admin API define for themselves. Feeds have the pages' policy: a browser tab
# gets a feed's HTML page (searchsvc.feed_page), which is one of the site's pages.
HEADER_POLICIES: dict[str, HeaderPolicy] = {
    **DEFAULT_HEADER_POLICIES,
    **embed_routes.HEADER_POLICIES,
    **admin_routes.HEADER_POLICIES,
}


def build_templates(config: Config, asset_version: str) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template is HTML: escape every value, always
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(site_title=config.site_title, asset_version=asset_version, base_url=config.base_url)
    return Jinja2Templates(env=env)


def build_state(config: Config, opener: Opener | None = None) -> AppState:
    """The per-app state: the engine (opened lazily), metrics, templates, limiters, feed cache."""
    app_fingerprint = fingerprint([TEMPLATES_DIR, STATIC_DIR], config.base_url, config.site_title)
    metrics = Metrics()
    # The engine threads, behind a bounded wait: expensive work past the queue or the deadline is
    # refused with 503 overloaded (searchsvc.admission); the bounds are the machine's, shared out.
    admission = Admission(config.engine_threads, config.admission_queue_per_worker, config.admission_deadline,
                          on_shed=metrics.shed, on_wait=metrics.admission_wait.observe)
    engines = EngineHolder(config.index_dir, opener=opener or opener_for(config.engine))
    freshness = Freshness(engines)
    return AppState(
        config=config,
        engines=engines,
        metrics=metrics,
        templates=build_templates(config, app_fingerprint[:10]),
        fingerprint=app_fingerprint,
        admission=admission,
        # Renders run on the engine threads, like searches, admitted like them, and cost the client a
        # token, like one.
        feed_cache=FeedCache(admission=admission, on_render=metrics.feed_renders.inc, charge=charge,
                             changed=freshness.changed, generation=engines.generation),
        freshness=freshness,
        tombstones=Tombstones(config.journal_path),
        journal_writer=JournalWriter(config.journal_path),
        rate_limiter=TokenBucketLimiter(config.rate_limit) if config.rate_limit > 0 else None,
    )


def build_routes() -> list[BaseRoute]:
    return [
        # Routes are matched in order, one regular expression each: feeds come first because feed
        # readers poll them more than anything else is requested (no two groups' paths overlap).
        *feed_routes.routes,
        *api_routes.routes,
        *page_routes.routes,
        *ops_routes.routes,
        *embed_routes.routes,
        *admin_routes.routes,
        *crawl_routes.routes,
        Mount("/static", app=StaticCacheControl(StaticFiles(directory=STATIC_DIR)), name="static"),
    ]


def _count_cache_hit(metrics: Metrics, tier: object | None) -> None:
    metrics.response_cache_hits.inc()
    if tier is not None:  # a search answered again: its tier counts like a computed one
        metrics.tiers.labels(str(tier)).inc()


def build_middleware(state: AppState, routes: Callable[[], Sequence[BaseRoute]]) -> list[Middleware]:
    """The stack described in the module docstring, outermost first; ``routes`` gives the app's
    routes for the metrics' route templates."""
    config, metrics = state.config, state.metrics
    changed = state.freshness.changed  # one memo of changes for every cache
    lane = RepeatLane(state.fingerprint, routes, document_prefixes=DOCUMENT_PREFIXES)
    return [
        Middleware(ObservabilityMiddleware, metrics=metrics, routes=routes, access_log=config.access_log),
        Middleware(RepeatLaneMiddleware, lane=lane),
        Middleware(SecurityHeadersMiddleware, policies=HEADER_POLICIES),
        Middleware(
            PathScopedMiddleware,
            prefixes=("/api/",),
            except_prefixes=(auth.PREFIX,),
            middleware=lambda inner: ApiCORSMiddleware(
                inner,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "HEAD", "OPTIONS"],
                allow_headers=["*"],  # read-only and credential-free: any request header is harmless
                expose_headers=["ETag", "X-Request-ID", "Retry-After"],
                max_age=600,
            ),
        ),
        Middleware(
            PathScopedMiddleware,
            prefixes=(auth.PREFIX,),
            middleware=lambda inner: AuthenticationMiddleware(
                inner, backend=auth.ApiKeyBackend(KeyRing(config.keys_path), metrics), on_error=auth.on_auth_error
            ),
        ),
        Middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES, limits={auth.PREFIX: config.admin_max_body}),
        Middleware(
            ResponseCacheMiddleware,
            generation=state.generation,
            app_fingerprint=state.fingerprint,
            paths=CACHEABLE_PATHS,
            prefixes=CACHEABLE_PREFIXES,
            max_bytes=config.response_cache_mb << 20,
            on_hit=lambda tier: _count_cache_hit(metrics, tier),
            shared=SharedResponseStore.from_env(max_bytes=4 * (config.response_cache_mb << 20)),
            changed=changed,
            sources=lane.sources,
        ),
        Middleware(
            PathScopedMiddleware,
            prefixes=("/",),
            except_prefixes=GZIP_EXCEPT_PREFIXES,
            middleware=lambda inner: GZipMiddleware(inner, minimum_size=GZIP_MINIMUM_SIZE,
                                                    compresslevel=GZIP_LEVEL),
        ),
        Middleware(
            ConditionalGetMiddleware,
            generation=state.generation,
            app_fingerprint=state.fingerprint,
            paths=CACHEABLE_PATHS,
            prefixes=CACHEABLE_PREFIXES,
            max_age=config.cache_max_age,
            on_not_modified=metrics.not_modified.inc,
            changed=changed,
            sources=lane.sources,
        ),
    ]


async def open_index(state: AppState) -> None:
    """Try once at startup so the first request is fast; a missing index is not an error."""
    try:
        engine = await run_in_threadpool(state.engines.get)
        state.metrics.set_index(str(engine.generation), int(engine.doc_count))
        # Accept connections once the suggester and the per-generation sets are built: built while
        # requests arrive, they held the GIL against the first searches, whose latency then
        # depended on when traffic started.
        if not await run_in_threadpool(state.engines.wait_warm, WARM_UP_WAIT):
            logger.warning("still warming up after %.0f s; serving anyway", WARM_UP_WAIT)
        settle_heap()
    except EngineNotReady as exc:
        logger.warning("starting without a search index: %s (will retry on requests)", exc)
        state.metrics.set_index(None, None)


def settle_heap() -> None:
    """In a worker of ``searchsvc serve``, move everything the warm-up built (the catalog, the
    vocabulary, the suggester, the facet tables: ~90,000 objects on the full corpus) out of the
    cycle collector's reach with ``gc.freeze()``.

    Why: a full collection walks every tracked object and holds the GIL meanwhile, so every
    request of the worker waits for it; measured under load, those pauses reached 170 ms
    (docs/benchmarks.md). Reference counting still frees frozen objects when the generation they
    belong to goes; only garbage held in a reference cycle among them would stay, and the heap is
    frozen once per worker, so that is bounded by one warm-up's leftovers. An app embedded in
    another process (the tests) leaves that process's collector alone."""
    if os.environ.get(SERVE_WORKER_ENV):
        gc.collect()
        gc.freeze()


def lower_worker_priority(nice: int) -> None:
    """A serving worker (never an app embedded in another process) takes ``nice`` less CPU priority
    than the applier (``config.DEFAULT_WORKER_NICE`` says why). Called on the worker's main thread
    before its engine threads exist: Linux keeps a nice value per thread, and threads inherit it.
    With one worker that thread is ``serve``'s own, but the applier's supervisor thread started
    earlier and keeps its priority, so a restarted applier does too."""
    if nice > 0 and os.environ.get(SERVE_WORKER_ENV):
        try:
            os.nice(nice)
        except OSError as exc:  # a sandbox that forbids it: serve anyway
            logger.warning("cannot lower the worker's priority by %d: %s", nice, exc)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    state: AppState = getattr(app.state, STATE_ATTRIBUTE)
    lower_worker_priority(state.config.worker_nice)
    await open_index(state)
    try:
        yield
    finally:
        await run_in_threadpool(close_state, state)


def close_state(state: AppState) -> None:
    """Release what the app holds open (index files, journal connections) once requests are over:
    the process may live on after its app (an embedding process, a test). Blocking."""
    state.engines.close(WARM_UP_WAIT)
    state.tombstones.close()
    state.journal_writer.close()
    ACCESS_LOG.flush()  # the worker's last lines, before its supervisor may end it


def create_app(config: Config | None = None, *, opener: Opener | None = None) -> Starlette:
    """Build the app for ``config`` (default: from the environment). ``opener`` opens the index
    (by default the engine ``config.engine`` names)."""
    config = config or Config.from_env()
    auth.configure_auth_log()
    state = build_state(config, opener)
    app = Starlette(
        routes=build_routes(),
        middleware=build_middleware(state, routes=lambda: app.router.routes),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    redirects.install(app.router)  # "/search/" -> a relative redirect, never one built from Host
    setattr(app.state, STATE_ATTRIBUTE, state)
    app.state.templates = state.templates  # what the error pages render with (searchsvc.errors)
    return app
