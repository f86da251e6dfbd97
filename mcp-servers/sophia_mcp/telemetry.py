"""The platform contract's telemetry: JSON logs on stdout, Prometheus metrics across worker
processes, OpenTelemetry traces when an OTLP endpoint is configured."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Probes would drown the traces: they are counted in the metrics, not traced.
UNTRACED_PATHS = "health,ready"


class TraceContext(logging.Filter):
    """Adds the current span's ids (empty outside a span) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


def service_name(server: str) -> str:
    """The name the platform knows this server by: its Deployment's (`mcp-ai-memory` for
    `ai_memory`), which the infrastructure also sets as OTEL_SERVICE_NAME when tracing."""
    return os.environ.get("OTEL_SERVICE_NAME") or "mcp-" + server.replace("_", "-")


def json_formatter(service: str) -> logging.Formatter:
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": service},
        timestamp=True,
        # uvicorn's terminal-coloured copy of the message.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def log_config(service: str) -> dict[str, Any]:
    """logging.dictConfig for the server and uvicorn (which applies it in every worker): one JSON
    object per line on stdout with timestamp, level, logger, message, service, trace_id, span_id."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace": {"()": TraceContext}},
        "formatters": {"json": {"()": json_formatter, "service": service_name(service)}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json", "filters": ["trace"]}
        },
        "root": {"level": "INFO", "handlers": ["stdout"]},
        # uvicorn's loggers come with handlers of their own: route them through the root's.
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def metrics_registry():
    """A registry that sums the metrics files of every worker process (prometheus_client's
    multiprocess mode: PROMETHEUS_MULTIPROC_DIR, under /tmp, must be set before the import)."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def serve_metrics(port: int) -> None:
    """GET /metrics on `port`, from a thread of the supervising process."""
    from prometheus_client import start_http_server

    start_http_server(port, addr="0.0.0.0", registry=metrics_registry())  # noqa: S104 - inside a container


@functools.cache
def _instruments():
    """The three instruments, registered once per process."""
    from prometheus_client import Counter, Gauge, Histogram

    return (
        Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"]),
        Histogram("http_request_duration_seconds", "Time to answer an HTTP request.", ["method", "route"]),
        # livesum: the sum over the worker processes that are alive.
        Gauge("http_requests_in_flight", "HTTP requests being answered.", multiprocess_mode="livesum"),
    )


class Metrics:
    """ASGI middleware: http_requests_total{method,route,status}, http_request_duration_seconds
    {method,route} and http_requests_in_flight, with `route` the matched route's template (never
    the raw path, so a scan of random URLs cannot explode the series)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        self.requests, self.duration, self.in_flight = _instruments()

    def route(self, scope: Scope) -> str:
        """The template of the route that answers (also when only its method differs: 405)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return getattr(route, "path", "unmatched")
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        route = self.route(scope)
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.in_flight.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self.in_flight.dec()
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.duration.labels(method, route).observe(time.perf_counter() - started)


def setup_tracing(service: str):
    """A tracer provider exporting OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT, or None when unset.
    The resource takes OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from the environment."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name(service)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    return provider
