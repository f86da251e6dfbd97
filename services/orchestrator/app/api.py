"""The orchestrator's API, which the dashboard and the ingress (`/api`) use:

- `GET /api/status`: this service, its environment, whether it is ready (as its `/ready` decides),
  and how each dependency (the memory service, then every MCP server) answers its probes;
- `PUT/GET/DELETE /api/memory/{key}`: L1 memory, through the memory service's `/l1/{key}` (same
  bodies and status codes; 503 when the memory service cannot answer)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field

from app.dependencies import OK, Dependencies

router = APIRouter(prefix="/api")

Key = Annotated[str, Path(min_length=1, max_length=256)]


class Entry(BaseModel):
    value: str
    ttl_seconds: int | None = Field(None, ge=1)


class Stored(BaseModel):
    key: str
    value: str


def dependencies(request: Request) -> Dependencies:
    return request.app.state.dependencies


@router.get("/status")
async def service_status(request: Request) -> dict[str, Any]:
    deps = dependencies(request)
    targets = [("memory", deps.services["memory"]), *deps.mcp_servers.items()]
    checks, probes = await asyncio.gather(deps.checks(), asyncio.gather(*(deps.probe(name, url) for name, url in targets if url)))
    return {
        "service": "orchestrator",
        "environment": request.app.state.settings.sophia_environment,
        # This service's own readiness, as its /ready decides it (the dashboard shows it).
        "ready": all(result == OK for result in checks.values()),
        "dependencies": [asdict(probe) for probe in probes],
    }


async def memory(request: Request, method: str, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """One call to the memory service's L1 API; its 4xx answers pass through, anything else is a 503."""
    base = dependencies(request).services["memory"]
    if not base:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "memory service not configured (MEMORY_URL)")
    try:
        response = await dependencies(request).http.request(method, f"{base}/l1/{quote(key, safe='')}", json=body)
    except httpx.HTTPError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"memory service unreachable: {type(exc).__name__}") from None
    if 400 <= response.status_code < 500:
        raise HTTPException(response.status_code, response.json().get("detail"))
    if response.status_code >= 500:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"memory service answered {response.status_code}")
    return response


@router.put("/memory/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def put(key: Key, entry: Entry, request: Request) -> Response:
    await memory(request, "PUT", key, entry.model_dump(exclude_none=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/memory/{key}")
async def get(key: Key, request: Request) -> Stored:
    return Stored.model_validate((await memory(request, "GET", key)).json())


@router.delete("/memory/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(key: Key, request: Request) -> Response:
    await memory(request, "DELETE", key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
