"""The FastAPI app: the platform's probes (`/health` while the process lives, `/ready` while the
dependencies it needs answer), metrics and traces around every request, and the service's own API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from app import api, tracing
from app.dependencies import OK, Dependencies
from app.metrics import MetricsMiddleware
from app.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dependencies = Dependencies(settings)
        await app.state.dependencies.start()
        try:
            yield
        finally:
            await app.state.dependencies.close()
            tracing.flush()

    app = FastAPI(title="Sophia AI orchestrator", version="0.1.0", docs_url="/api/docs", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(MetricsMiddleware)
    tracing.setup(app, settings)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "healthy", "service": settings.service_name}

    @app.get("/ready")
    async def ready(request: Request, response: Response) -> dict[str, Any]:
        """Readiness: every dependency the service needs answers (503 and which one otherwise)."""
        dependencies: Dependencies = request.app.state.dependencies
        checks = await dependencies.checks()
        healthy = all(result == OK for result in checks.values())
        if not healthy:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        answer: dict[str, Any] = {
            "status": "ready" if healthy else "unavailable",
            "service": settings.service_name,
            "checks": checks,
        }
        if dependencies.snowflake is not None:
            answer["snowflake"] = dependencies.snowflake.state
        return answer

    @app.exception_handler(RedisError)
    async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"redis unavailable: {type(exc).__name__}"}, status.HTTP_503_SERVICE_UNAVAILABLE)

    app.include_router(api.router)
    return app


app = create_app()
