"""The FastAPI app: /health answers while the process lives, /ready when it can serve."""

from fastapi import FastAPI, Response, status
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.settings import Settings

settings = Settings()
app = FastAPI(title="Sophia AI orchestrator", version="0.1.0", docs_url="/api/docs")


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "healthy", "service": settings.service_name}


@app.get("/ready")
async def ready(response: Response) -> dict[str, str]:
    """Readiness: the dependencies answer too."""
    client = Redis.from_url(settings.redis_url, password=settings.redis_password, socket_timeout=2)
    try:
        await client.ping()
    except RedisError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "service": settings.service_name, "redis": type(exc).__name__}
    finally:
        await client.aclose()
    return {"status": "ready", "service": settings.service_name, "redis": "ok"}
