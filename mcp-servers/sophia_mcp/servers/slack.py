"""Slack: posts messages (chat.postMessage) with a bot token."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sophia_mcp.saas import BearerToken, HttpSaasClient, SaasRequest, perform, saas_readiness
from sophia_mcp.servers import McpService

# A channel, group or DM id (C…, G…, D…) or a #channel-name.
Channel = Annotated[str, Field(pattern=r"^([CGD][A-Z0-9]{8,20}|#[a-z0-9][a-z0-9_-]{0,79})$")]
# Slack truncates longer messages.
Text = Annotated[str, Field(min_length=1, max_length=40000)]
ThreadTs = Annotated[str, Field(pattern=r"^\d{10}\.\d{6}$")]


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_")

    bot_token: SecretStr | None = None
    api_url: str = "https://slack.com"


def message_request(channel: str, text: str, thread_ts: str | None) -> SaasRequest:
    if not text.strip():
        raise ToolError("text must not be blank")
    body: dict[str, Any] = {"channel": channel, "text": text}
    if thread_ts:
        body["thread_ts"] = thread_ts
    return SaasRequest("POST", "/api/chat.postMessage", json=body)


class SlackClient(HttpSaasClient):
    """Slack answers HTTP 200 with `"ok": false` when it refuses a call."""

    async def send(self, request: SaasRequest) -> dict[str, Any]:
        answer = await super().send(request)
        if not answer.get("ok"):
            raise ToolError(f"slack refused the request: {str(answer.get('error', 'unknown error'))[:100]}")
        return answer


def create() -> McpService:
    settings = SlackSettings()
    token = settings.bot_token
    client = SlackClient("slack", settings.api_url, BearerToken(token.get_secret_value()) if token else None, "SLACK_BOT_TOKEN")
    mcp = MCPServer("slack", version="0.1.0", instructions="Sophia AI's Slack tools.")

    @mcp.tool()
    async def post_message(
        channel: Channel, text: Text, thread_ts: ThreadTs | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Post a message to a Slack channel (an id such as C0123456789, or #name), optionally in a
        thread. With dry_run, return the request without sending it."""
        return await perform(client, message_request(channel, text, thread_ts), dry_run)

    return McpService(mcp, saas_readiness("slack", client), client.aclose)
