"""What this service depends on: its clients, opened once per worker, and the readiness checks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.settings import Settings
from app.snowflake import SnowflakeMonitor

# Each readiness check of a resource (Redis) gets this long; another service's /ready, which runs
# checks of its own first, gets longer, so that a slow callee reads as slow, not as unready. The
# readiness probe waits 3 s for the whole answer (components/service.py): each caller up the chain
# allows more than its callee (tests/test_services.py checks the ladder).
CHECK_TIMEOUT = 1.0
SERVICE_CHECK_TIMEOUT = 2.0
# Calls on behalf of a client get longer.
CALL_TIMEOUT = 5.0
OK = "ok"


@dataclass
class Probe:
    """How another service answers its probes (`/api/status` shows one per dependency)."""

    name: str
    url: str
    healthy: bool
    ready: bool
    latency_ms: float


class Dependencies:
    """Clients for every dependency of the service; `checks()` says which of the needed ones answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # One pooled client for every HTTP call to other services (instrumented: traces propagate).
        self.http = httpx.AsyncClient(timeout=CALL_TIMEOUT)
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        self.redis = Redis.from_url(
            settings.redis_url,
            password=password,
            decode_responses=True,
            socket_connect_timeout=CHECK_TIMEOUT,
            socket_timeout=CALL_TIMEOUT,
        )
        # Services this one needs (its /ready requires theirs), by name -> base URL.
        self.services: dict[str, str | None] = {}
        # Reported by /ready, refreshed in the background; not required (see app/snowflake.py).
        self.snowflake = SnowflakeMonitor(settings) if settings.snowflake_account else None

    async def start(self) -> None:
        """Start the background work of the dependencies."""
        if self.snowflake is not None:
            self.snowflake.start()

    async def close(self) -> None:
        if self.snowflake is not None:
            await self.snowflake.stop()
        await self.redis.aclose()
        await self.http.aclose()

    async def checks(self) -> dict[str, str]:
        """Every dependency this service needs: "ok", or why not (never a secret)."""
        names: list[str] = []
        pending = []
        names.append("redis")
        pending.append(self._redis())
        for name, url in self.services.items():
            names.append(name)
            pending.append(self._service(url))
        return dict(zip(names, await asyncio.gather(*pending), strict=True))

    async def _redis(self) -> str:
        try:
            with suppress_instrumentation():
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self.redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"unreachable: {type(exc).__name__}"
        return OK

    async def _service(self, url: str | None) -> str:
        if not url:
            return "not configured"
        try:
            with suppress_instrumentation():
                response = await self.http.get(f"{url}/ready", timeout=SERVICE_CHECK_TIMEOUT)
        except httpx.HTTPError as exc:
            return f"unreachable: {type(exc).__name__}"
        return OK if response.status_code == 200 else f"not ready: HTTP {response.status_code}"

    async def probe(self, name: str, url: str) -> Probe:
        """`/health` and `/ready` of another service; the latency is that of its `/health`."""
        start = time.perf_counter()
        healthy = await self._answers(f"{url}/health")
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        ready = healthy and await self._answers(f"{url}/ready", SERVICE_CHECK_TIMEOUT)
        return Probe(name, url, healthy, ready, latency_ms)

    async def _answers(self, url: str, timeout: float = CHECK_TIMEOUT) -> bool:
        try:
            return (await self.http.get(url, timeout=timeout)).status_code == 200
        except httpx.HTTPError:
            return False
