"""The platform contract's environment, as the infrastructure sets it on every container."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class PlatformSettings(BaseSettings):
    port: int = Field(8080, ge=1, le=65535)
    sophia_environment: str = "dev"
    # Set only when monitoring is on: then /metrics is served there, on a listener of its own.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Worker processes: the container's CPU limit, rounded up (downward API).
    web_concurrency: int = Field(1, ge=1, le=64)
    # Traces are exported only when this is set (OTLP/gRPC, e.g. http://otel-collector.sophia-dev.svc:4317).
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str | None = None
