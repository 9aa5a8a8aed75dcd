"""The application factory: ``uvicorn searchsvc.app:create_app --factory``.

Each uvicorn worker calls ``create_app()`` with no arguments and reads its ``Config`` from the
``SEARCHSVC_*`` environment, which is how ``searchsvc serve --workers N`` configures every worker.

Middleware, outermost first, and why in that order:

1. Observability: request id, access log, metrics, last-resort 500, so it sees every response.
2. Security headers, per path prefix, also on errors, 304s and 429s.
3. CORS, for ``/api/`` only: preflights are answered here, and 429/413 still carry CORS headers.
4. Body limit (413) and 5. rate limit (429): cheap refusals before any real work.
6. GZip, outside the conditional layer so the ETag it sets passes through unchanged.
7. Conditional GET: ETag and 304 computed before the handler, so revalidation costs no search.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import routes_api, routes_embeds, routes_feeds, routes_ops, routes_pages
from .caching import (
    ConditionalGetMiddleware,
    ResponseCacheMiddleware,
    SharedResponseStore,
    StaticCacheControl,
    fingerprint,
)
from .config import Config
from .engine_pool import EngineHolder, EngineNotReady, Opener, open_whoosh
from .errors import EXCEPTION_HANDLERS
from .metrics import Metrics
from .middleware import (
    DEFAULT_HEADER_POLICIES,
    ApiCORSMiddleware,
    BodyLimitMiddleware,
    HeaderPolicy,
    ObservabilityMiddleware,
    PathScopedMiddleware,
    SecurityHeadersMiddleware,
    configure_access_log,
)
from .ratelimit import RateLimitMiddleware, TokenBucketLimiter
from .services import Services

logger = logging.getLogger("searchsvc")

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

MAX_BODY_BYTES = 64 * 1024
GZIP_MINIMUM_SIZE = 500
WARM_UP_WAIT = 60.0  # seconds a starting worker waits for its warm-up before it serves anyway
GZIP_LEVEL = 6  # level 9 costs about twice the CPU for a few percent on HTML/JSON

CACHEABLE_PATHS = ("/", "/search", "/api/search", "/api/suggest", "/api/categories", "/api/openapi.json")
CACHEABLE_PREFIXES = ("/api/articles/", "/articles/", "/c/")
RATE_LIMITED_PATHS = ("/api/search", "/api/suggest", "/search", *routes_feeds.SEARCH_PATHS)


def _count_cache_hit(metrics: Metrics, tier: object | None) -> None:
    metrics.response_cache_hits.inc()
    if tier is not None:  # a search answered again: its tier counts like a computed one
        metrics.tiers.labels(str(tier)).inc()


def build_templates(config: Config, asset_version: str) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template is HTML: escape every value, always
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(site_title=config.site_title, asset_version=asset_version, base_url=config.base_url)
    return Jinja2Templates(env=env)


def create_app(
    config: Config | None = None,
    *,
    opener: Opener = open_whoosh,
    extra_routes: Sequence[BaseRoute] = (),
    header_policies: Mapping[str, HeaderPolicy] | None = None,
) -> Starlette:
    """Build the app. ``extra_routes`` lets other parts (feeds, embeds) plug in their routes;
    ``header_policies`` overrides the security headers per path prefix (``/embed/`` may be framed)."""
    config = config or Config.from_env()
    configure_access_log()
    app_fingerprint = fingerprint([TEMPLATES_DIR, STATIC_DIR], config.base_url, config.site_title)
    metrics = Metrics()
    services = Services(
        config=config,
        engines=EngineHolder(config.index_dir, opener=opener),
        metrics=metrics,
        templates=build_templates(config, app_fingerprint[:10]),
        fingerprint=app_fingerprint,
        engine_limiter=anyio.CapacityLimiter(config.engine_threads),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Try once at startup so the first request is fast; a missing index is not an error.
        try:
            engine = await run_in_threadpool(services.engines.get)
            metrics.set_index(str(engine.generation), int(engine.doc_count))
            # Accept connections once the suggester and the per-generation sets are built (about
            # 5 s of CPU on the full corpus): built while requests arrive, they held the GIL
            # against the first searches, whose latency then depended on when traffic started.
            if not await run_in_threadpool(services.engines.wait_warm, WARM_UP_WAIT):
                logger.warning("still warming up after %.0f s; serving anyway", WARM_UP_WAIT)
        except EngineNotReady as exc:
            logger.warning("starting without a search index: %s (will retry on requests)", exc)
            metrics.set_index(None, None)
        yield
        services.engines.close()

    routes: list[BaseRoute] = [
        # Routes are matched in order, one regular expression each: feeds come first because feed
        # readers poll them more than anything else is requested (no two groups' paths overlap).
        *routes_feeds.routes,
        *routes_api.routes,
        *routes_pages.routes,
        *routes_ops.routes,
        *routes_embeds.routes,
        *extra_routes,
        Mount("/static", app=StaticCacheControl(StaticFiles(directory=STATIC_DIR)), name="static"),
    ]
    limiter = TokenBucketLimiter(config.rate_limit) if config.rate_limit > 0 else None
    app: Starlette

    def current_routes() -> Sequence[BaseRoute]:
        return app.router.routes

    middleware = [
        Middleware(ObservabilityMiddleware, metrics=metrics, routes=current_routes, access_log=config.access_log),
        Middleware(
            SecurityHeadersMiddleware,
            policies=header_policies
            or {**DEFAULT_HEADER_POLICIES, **routes_feeds.HEADER_POLICIES, **routes_embeds.HEADER_POLICIES},
        ),
        Middleware(
            PathScopedMiddleware,
            prefixes=("/api/",),
            middleware=lambda inner: ApiCORSMiddleware(
                inner,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "HEAD", "OPTIONS"],
                allow_headers=["*"],  # read-only and credential-free: any request header is harmless
                expose_headers=["ETag", "X-Request-ID", "Retry-After"],
                max_age=600,
            ),
        ),
        Middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES),
        Middleware(
            RateLimitMiddleware,
            limiter=limiter,
            paths=RATE_LIMITED_PATHS,
            on_limited=metrics.rate_limited.inc,
        ),
        Middleware(
            ResponseCacheMiddleware,
            generation=services.generation,
            app_fingerprint=app_fingerprint,
            paths=CACHEABLE_PATHS,
            prefixes=CACHEABLE_PREFIXES,
            max_bytes=config.response_cache_mb << 20,
            on_hit=lambda tier: _count_cache_hit(metrics, tier),
            shared=SharedResponseStore.from_env(max_bytes=4 * (config.response_cache_mb << 20)),
        ),
        # Feeds and embeds keep their documents gzipped already (searchsvc.feed_cache) and choose
        # the encoding themselves: Starlette's gzip layer would only cost them time (measured:
        # ~30 us a request, most of a cached feed's 304).
        Middleware(
            PathScopedMiddleware,
            prefixes=("/",),
            except_prefixes=("/feeds", "/embed"),
            middleware=lambda inner: GZipMiddleware(inner, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL),
        ),
        Middleware(
            ConditionalGetMiddleware,
            generation=services.generation,
            app_fingerprint=app_fingerprint,
            paths=CACHEABLE_PATHS,
            prefixes=CACHEABLE_PREFIXES,
            max_age=config.cache_max_age,
            on_not_modified=metrics.not_modified.inc,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.templates = services.templates
    app.state.config = config
    return app
