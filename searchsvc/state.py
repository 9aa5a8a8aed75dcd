"""The per-app state: what handlers need besides the request, built once by ``create_app``.

One ``AppState`` per app (so per uvicorn worker), hung on ``app.state.searchsvc``;
``app_state(request)`` is how a handler reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from .admission import Admission
from .config import Config
from .engine_holder import EngineHolder
from .freshness import Freshness
from .http.feed_cache import FeedCache
from .http.ratelimit import TokenBucketLimiter
from .metrics import Metrics
from .publishing import JournalWriter
from .tombstones import Tombstones

STATE_ATTRIBUTE = "searchsvc"  # app.state.searchsvc


@dataclass(slots=True)
class AppState:
    config: Config
    engines: EngineHolder
    metrics: Metrics
    templates: Jinja2Templates
    fingerprint: str  # hash of templates, static files and config shown in responses
    admission: Admission  # the Config.engine_threads threads that run heavy engine work, and who may wait for them
    feed_cache: FeedCache  # rendered feed, OPML, embed and /feeds documents of the current generation
    tombstones: Tombstones  # unpublished article ids (410 rather than 404), from the publishing journal
    journal_writer: JournalWriter  # where the admin API appends changes (opened on first use)
    freshness: Freshness  # whether a commit changed what a cached answer shows (every cache asks it)
    rate_limiter: TokenBucketLimiter | None = None  # per-client requests that cost work; None: off

    def generation(self) -> str | None:
        """Current index generation without blocking, or None while no index is open."""
        return self.engines.generation()


def app_state(request: Request) -> AppState:
    state: AppState = getattr(request.app.state, STATE_ATTRIBUTE)
    return state
