"""The HTTP layer: ASGI middleware, content coding, caching, CORS, rate limiting, redirects.

Nothing here knows a route: the app (``searchsvc.app``) assembles these layers around the routes
(``searchsvc.routes``), and the route modules use the helpers (feed-cache serving, ``with_cors``).
"""
