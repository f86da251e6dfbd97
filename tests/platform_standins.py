"""Stand-ins for the platform APIs the MCP servers and the dashboard call but that this branch
does not hold yet: the memory service's L1 API (over a real Redis) and the orchestrator's
`/api/status` and `/api/memory/*`, as the platform contract defines them, plus a recording fake
of the SaaS APIs. Run as processes: `python -m tests.platform_standins memory|orchestrator|saas`
(port from $PORT)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

# GET /l1/<key> of a key with this prefix answers after a delay: an in-flight request to drain.
SLOW_PREFIX = "slow-"
SLOW_SECONDS = 1.5


def memory() -> FastAPI:
    from redis.asyncio import Redis

    redis = Redis.from_url(os.environ["REDIS_URL"], password=os.environ.get("REDIS_PASSWORD"), socket_timeout=2)
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/ready")
    async def ready(response: Response) -> dict[str, str]:
        try:
            await redis.ping()
        except Exception:
            response.status_code = 503
            return {"status": "unavailable"}
        return {"status": "ready"}

    @app.put("/l1/{key}", status_code=204)
    async def put(key: str, body: dict[str, Any]) -> None:
        await redis.set(f"l1:{key}", body["value"], ex=body.get("ttl_seconds"))

    @app.get("/l1/{key}")
    async def get(key: str) -> Response:
        if key.startswith(SLOW_PREFIX):
            await asyncio.sleep(SLOW_SECONDS)
        value = await redis.get(f"l1:{key}")
        if value is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse({"key": key, "value": value.decode()})

    @app.delete("/l1/{key}", status_code=204)
    async def delete(key: str) -> None:
        await redis.delete(f"l1:{key}")

    return app


def orchestrator() -> FastAPI:
    memory_url = os.environ["MEMORY_URL"].rstrip("/")
    callees = {"memory": memory_url, **json.loads(os.environ.get("MCP_SERVER_URLS", "{}"))}
    client = httpx.AsyncClient(timeout=2)
    app = FastAPI()

    async def probe(name: str, url: str) -> dict[str, Any]:
        started = time.perf_counter()
        answers = []
        for path in ("/health", "/ready"):
            try:
                answers.append((await client.get(url + path)).status_code == 200)
            except httpx.HTTPError:
                answers.append(False)
        latency = (time.perf_counter() - started) * 1000
        return {"name": name, "url": url, "healthy": answers[0], "ready": answers[1], "latency_ms": round(latency, 2)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        dependencies = await asyncio.gather(*(probe(name, url) for name, url in callees.items()))
        return {
            "service": "orchestrator",
            "environment": os.environ.get("SOPHIA_ENVIRONMENT", "dev"),
            "dependencies": dependencies,
        }

    @app.api_route("/api/memory/{key}", methods=["GET", "PUT", "DELETE"])
    async def memory_api(key: str, request: Request) -> Response:
        answer = await client.request(
            request.method, f"{memory_url}/l1/{key}", content=await request.body(), headers={"content-type": "application/json"}
        )
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    return app


def saas() -> FastAPI:
    """Answers like HubSpot, Gong and Slack, and appends every request it gets to $SAAS_LOG."""
    log = os.environ["SAAS_LOG"]
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(path: str, request: Request) -> Response:
        body = await request.body()
        record = {
            "method": request.method,
            "path": "/" + path,
            "params": dict(request.query_params),
            "authorization": request.headers.get("authorization"),
            "json": json.loads(body) if body else None,
        }
        with open(log, "a") as file:
            file.write(json.dumps(record) + "\n")
        if path == "crm/v3/objects/contacts":
            return JSONResponse({"id": "101", "properties": record["json"]["properties"]}, status_code=201)
        if path == "v2/calls":
            return JSONResponse({"records": {"totalRecords": 1, "currentPageSize": 1}, "calls": [{"id": "7"}]})
        if path == "api/chat.postMessage":
            if record["json"]["channel"] == "C0REFUSED0":
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            return JSONResponse({"ok": True, "channel": record["json"]["channel"], "ts": "1700000000.000100"})
        return JSONResponse({"detail": "no such API"}, status_code=404)

    return app


if __name__ == "__main__":
    apps = {"memory": memory, "orchestrator": orchestrator, "saas": saas}
    uvicorn.run(apps[sys.argv[1]](), host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
