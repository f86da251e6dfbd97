"""Traces: the OpenTelemetry SDK exporting over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set,
nothing otherwise. The SDK reads the endpoint (http:// means plaintext), OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES itself; FastAPI, Redis and httpx are instrumented, so a call to another
Sophia service continues the caller's trace (W3C traceparent)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from app.settings import Settings

# Probes are not traced: kubelet calls them every few seconds. Only the top-level paths, not a
# route whose last segment happens to be `health` (the instrumentation matches the full URL).
UNTRACED = r"://[^/]+/(health|ready)$"

_provider: TracerProvider | None = None


def setup(app: FastAPI, settings: Settings) -> TracerProvider | None:
    """Instrument `app` and the clients, exporting to the configured endpoint; a no-op without one."""
    global _provider  # one provider per process, as the OTel API wants
    if not settings.otel_exporter_otlp_endpoint:
        return None
    if _provider is None:
        # OTEL_SERVICE_NAME (set by the Deployment) wins; the service's own name otherwise.
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: settings.service_name}
        _provider = TracerProvider(resource=Resource.create(attributes))
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
        RedisInstrumentor().instrument(tracer_provider=_provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=_provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=UNTRACED, exclude_spans=["receive", "send"])
    return _provider


def flush() -> None:
    """Export what is still buffered (a worker's last spans) before the worker exits."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)
