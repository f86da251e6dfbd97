"""HubSpot CRM: creates contacts (CRM v3 objects API) with a private app's access token."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from sophia_mcp.saas import BearerToken, HttpSaasClient, SaasRequest, perform, saas_readiness
from sophia_mcp.servers import McpService

Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f<>]+$")]


class HubSpotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUBSPOT_")

    access_token: SecretStr | None = None
    api_url: str = "https://api.hubapi.com"


def contact_request(email: str, first_name: str, last_name: str, company: str | None) -> SaasRequest:
    properties = {"email": email.lower(), "firstname": first_name.strip(), "lastname": last_name.strip()}
    if company:
        properties["company"] = company.strip()
    return SaasRequest("POST", "/crm/v3/objects/contacts", json={"properties": properties})


def create() -> McpService:
    settings = HubSpotSettings()
    token = settings.access_token
    client = HttpSaasClient(
        "hubspot", settings.api_url, BearerToken(token.get_secret_value()) if token else None, "HUBSPOT_ACCESS_TOKEN"
    )
    mcp = MCPServer("hubspot", version="0.1.0", instructions="Sophia AI's HubSpot CRM tools.")

    @mcp.tool()
    async def create_contact(
        email: Email, first_name: Name, last_name: Name, company: Name | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Create a HubSpot contact. With dry_run, return the request without sending it."""
        return await perform(client, contact_request(email, first_name, last_name, company), dry_run)

    return McpService(mcp, saas_readiness("hubspot", client), client.aclose)
