"""One MCP server as an HTTP service: the MCP endpoint (streamable HTTP, `/mcp`) beside the
platform contract's `/health` and `/ready`, with metrics, traces and JSON logs."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response, status

from sophia_mcp import servers, telemetry

MCP_PATH = "/mcp"
logger = logging.getLogger("sophia_mcp")


def create_app(name: str) -> FastAPI:
    service = servers.load(name)
    tracer_provider = telemetry.setup_tracing(name)
    # Stateless and JSON: any worker process of any replica answers any request (no session
    # pinned to one process), and a response is one JSON body that ends with the request, so
    # a shutdown drains it like any other request. A host other than localhost turns off the
    # SDK's DNS-rebinding Host check, a defence for servers on a desktop: callers reach this one
    # by its Service name, and its NetworkPolicy admits only Sophia pods.
    mcp_app = service.mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        host="0.0.0.0",  # noqa: S104
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with service.mcp.session_manager.run():
            logger.info("serving MCP server %s on %s", name, MCP_PATH)
            yield
        await service.close()
        if tracer_provider is not None:
            tracer_provider.shutdown()

    app = FastAPI(title=f"Sophia AI MCP server {name}", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "healthy", "service": name}

    @app.get("/ready")
    async def ready(response: Response) -> dict[str, str]:
        """Readiness: what the server needs answers (see each server's `ready`)."""
        is_ready, details = await service.ready()
        if not is_ready:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "ready" if is_ready else "unavailable", "service": name, **details}

    # The MCP endpoint as a route of this app (not a mounted one), so the metrics and the traces
    # name it by its route like the others.
    app.router.routes.extend(mcp_app.routes)
    app.add_middleware(telemetry.Metrics, routes=app.router.routes)
    if tracer_provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, excluded_urls=telemetry.UNTRACED_PATHS)
    return app


def from_environment() -> FastAPI:
    """The app of the server named by $SERVICE (uvicorn's factory, in every worker process)."""
    return create_app(os.environ["SERVICE"])
