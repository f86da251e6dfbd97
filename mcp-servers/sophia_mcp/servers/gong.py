"""Gong: lists the calls recorded in a time range (v2 calls API) with an access key and secret."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sophia_mcp.saas import HttpSaasClient, SaasRequest, perform, saas_readiness
from sophia_mcp.servers import McpService

Cursor = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9+/=_-]+$")]


class GongSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GONG_")

    access_key: SecretStr | None = None
    access_key_secret: SecretStr | None = None
    api_url: str = "https://api.gong.io"


def calls_request(start: AwareDatetime, end: AwareDatetime, cursor: str | None) -> SaasRequest:
    if start >= end:
        raise ToolError(f"from_time must be before to_time, got {start.isoformat()} and {end.isoformat()}")
    params = {"fromDateTime": start.isoformat(), "toDateTime": end.isoformat()}
    if cursor:
        params["cursor"] = cursor
    return SaasRequest("GET", "/v2/calls", params=params)


def create() -> McpService:
    settings = GongSettings()
    key, secret = settings.access_key, settings.access_key_secret
    auth = httpx.BasicAuth(key.get_secret_value(), secret.get_secret_value()) if key and secret else None
    client = HttpSaasClient("gong", settings.api_url, auth, "GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET")
    mcp = MCPServer("gong", version="0.1.0", instructions="Sophia AI's Gong call tools.")

    @mcp.tool()
    async def list_calls(
        from_time: AwareDatetime, to_time: AwareDatetime, cursor: Cursor | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """List the Gong calls that started between from_time and to_time (ISO 8601 with a time
        zone). Pass the previous answer's records.cursor to get the next page."""
        return await perform(client, calls_request(from_time, to_time, cursor), dry_run)

    return McpService(mcp, saas_readiness("gong", client), client.aclose)
