"""The memory service's API. L1, the fast tier of ADR-001, over Redis: `PUT /l1/{key}` with
`{"value": <string>, "ttl_seconds": <int, optional>}` (204), `GET /l1/{key}` (200 `{"key", "value"}`
or 404), `DELETE /l1/{key}` (204). Entries live in Redis as `l1:<key>` and always expire."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field
from redis.asyncio import Redis

router = APIRouter()

PREFIX = "l1:"
DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_VALUE_LENGTH = 1_000_000

Key = Annotated[str, Path(min_length=1, max_length=256)]


class Entry(BaseModel):
    value: str = Field(max_length=MAX_VALUE_LENGTH)
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL_SECONDS)


class Stored(BaseModel):
    key: str
    value: str


def redis(request: Request) -> Redis:
    return request.app.state.dependencies.redis


@router.put("/l1/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def put(key: Key, entry: Entry, request: Request) -> Response:
    await redis(request).set(PREFIX + key, entry.value, ex=entry.ttl_seconds or DEFAULT_TTL_SECONDS)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/l1/{key}")
async def get(key: Key, request: Request) -> Stored:
    value = await redis(request).get(PREFIX + key)
    if value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no L1 entry {key!r}")
    return Stored(key=key, value=value)


@router.delete("/l1/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(key: Key, request: Request) -> Response:
    await redis(request).delete(PREFIX + key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
