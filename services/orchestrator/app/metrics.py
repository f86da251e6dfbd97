"""The HTTP metrics of the platform contract, with prometheus_client: `http_requests_total{method,
route,status}`, `http_request_duration_seconds{method,route}` and `http_requests_in_flight`.

Under gunicorn every worker writes them to PROMETHEUS_MULTIPROC_DIR and the master serves their
sum on METRICS_PORT (see server.py); the in-flight gauge counts live workers only ("livesum")."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "route"])
IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being answered.", multiprocess_mode="livesum")

# Label values stay bounded: the route's template (`/l1/{key}`), never the raw path.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
PROBES = frozenset({"/health", "/ready"})

access = logging.getLogger("app.access")


class MetricsMiddleware:
    """Counts and times every HTTP request by route and writes one access log line per request
    (probes excepted). It runs inside the tracing middleware, so the line carries the trace id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            # The router puts the matched route in the scope it shares with the middlewares.
            route = getattr(scope.get("route"), "path", UNMATCHED)
            REQUESTS.labels(method, route, str(status)).inc()
            DURATION.labels(method, route).observe(elapsed)
            if route not in PROBES:
                access.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 3)},
                )
