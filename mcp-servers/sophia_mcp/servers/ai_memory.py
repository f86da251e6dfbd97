"""Sophia's fast memory for agents: remember, recall and forget values through the memory
service's L1 API (`PUT/GET/DELETE /l1/{key}` at MEMORY_URL)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import httpx
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from pydantic_settings import BaseSettings

from sophia_mcp.servers import McpService, Readiness

Key = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$", description="Letters, digits, ':', '.', '_', '-'.")]
Value = Annotated[str, Field(max_length=1_000_000)]
Ttl = Annotated[int, Field(ge=1, le=30 * 24 * 3600, description="Seconds until the value expires.")]

TIMEOUT_SECONDS = 5.0
# Its /ready waits on the memory service's, which checks Redis within 1 s; the orchestrator, which
# probes this one, waits 2 s (tests/test_services.py checks the ladder).
READY_TIMEOUT_SECONDS = 1.5


class MemorySettings(BaseSettings):
    # The memory service, e.g. http://memory.sophia-dev.svc:8001 (the infrastructure sets it).
    memory_url: str | None = None


class Memory:
    """The memory service's L1 API over one HTTP client per process."""

    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self.url is None:
            raise ToolError("MEMORY_URL is not set: the ai_memory server has no memory service to talk to")
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT_SECONDS)
        return self._client

    async def call(self, method: str, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self.client().request(method, f"/l1/{quote(key, safe='')}", json=body)
        except httpx.HTTPError as exc:
            raise ToolError(f"the memory service did not answer: {type(exc).__name__}") from exc

    async def ready(self) -> Readiness:
        if self.url is None:
            return False, {"memory": "MEMORY_URL is not set"}
        try:
            response = await self.client().get("/ready", timeout=READY_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            return False, {"memory": type(exc).__name__}
        return response.status_code == 200, {"memory": f"HTTP {response.status_code}"}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def refused(response: httpx.Response) -> ToolError:
    return ToolError(f"the memory service refused the request: HTTP {response.status_code}")


def create() -> McpService:
    memory = Memory(MemorySettings().memory_url)
    mcp = MCPServer("ai_memory", version="0.1.0", instructions="Sophia AI's fast (L1) memory: remember, recall, forget.")

    @mcp.tool()
    async def remember(key: Key, value: Value, ttl_seconds: Ttl | None = None) -> dict[str, Any]:
        """Store value under key in Sophia's fast memory, for ttl_seconds if given."""
        body: dict[str, Any] = {"value": value}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        response = await memory.call("PUT", key, body)
        if response.status_code not in (200, 201, 204):
            raise refused(response)
        return {"key": key, "stored": True}

    @mcp.tool()
    async def recall(key: Key) -> dict[str, Any]:
        """The value stored under key, if any."""
        response = await memory.call("GET", key)
        if response.status_code == 404:
            return {"key": key, "found": False}
        if response.status_code != 200:
            raise refused(response)
        return {"key": key, "found": True, "value": response.json()["value"]}

    @mcp.tool()
    async def forget(key: Key) -> dict[str, Any]:
        """Delete what is stored under key."""
        response = await memory.call("DELETE", key)
        if response.status_code not in (200, 204, 404):
            raise refused(response)
        return {"key": key, "deleted": True}

    return McpService(mcp, memory.ready, memory.aclose)
