"""Upstreams whose behaviour a test must control: the memory service's L1 API over a real Redis,
with a key prefix that answers slowly (a request held in flight while a server drains), and a
recording fake of the SaaS APIs (HubSpot, Gong, Slack), which cannot be reached offline. Run as
processes: `python -m tests.platform_standins memory|saas` (port from $PORT). The real memory
service runs in services/memory's own tests and in the end-to-end suite."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

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
    apps = {"memory": memory, "saas": saas}
    uvicorn.run(apps[sys.argv[1]](), host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
