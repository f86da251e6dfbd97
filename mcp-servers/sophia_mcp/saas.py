"""The SaaS servers' one way out: a tool validates its arguments and shapes a `SaasRequest`; a
`SaasClient` sends it with the credentials the infrastructure gives the server (the Secret
`mcp-<server>-credentials`, as environment variables). Without credentials the server still
validates and shapes requests (dry runs); sending one fails with a message naming the missing key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from mcp.server.mcpserver.exceptions import ToolError

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SaasRequest:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        """The request as a tool shows it: never any credential."""
        shown: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.params:
            shown["params"] = self.params
        if self.json is not None:
            shown["json"] = self.json
        return shown


class SaasClient(Protocol):
    @property
    def configured(self) -> bool: ...

    async def send(self, request: SaasRequest) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class HttpSaasClient:
    """Sends requests to `base_url` with `auth` (None: no credentials were given). `missing`
    names what to configure, for the error a send without credentials returns."""

    def __init__(self, server: str, base_url: str, auth: httpx.Auth | None, missing: str) -> None:
        self.server = server
        self.base_url = base_url
        self.auth = auth
        self.missing = missing
        self._client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return self.auth is not None

    async def send(self, request: SaasRequest) -> dict[str, Any]:
        if self.auth is None:
            raise ToolError(
                f"{self.server} has no credentials: set {self.missing} (sophia-ai:mcpCredentials.{self.server},"
                " as a secret); a dry run shapes the request without sending it"
            )
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, auth=self.auth, timeout=TIMEOUT_SECONDS)
        try:
            response = await self._client.request(request.method, request.path, params=request.params, json=request.json)
        except httpx.HTTPError as exc:
            raise ToolError(f"{self.server} did not answer: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise ToolError(f"{self.server} refused the request: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ToolError(f"{self.server} answered with something other than JSON") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def perform(client: SaasClient, request: SaasRequest, dry_run: bool) -> dict[str, Any]:
    """What every SaaS tool returns: the shaped request and, unless a dry run, the answer."""
    if dry_run:
        return {"request": request.describe(), "sent": False}
    return {"request": request.describe(), "sent": True, "response": await client.send(request)}


def saas_readiness(server: str, client: SaasClient):
    """/ready of a SaaS server: ready once started, with or without credentials.

    Readiness gates traffic and `pulumi up` waits for it: a server that needs credentials to be
    ready would block the deploy of a stack that has none yet (dev), although its tools validate
    and shape requests (dry runs) without them. Nor does it call the SaaS: probes every few
    seconds would spend the API quota, and the SaaS's outage is not this pod's to fix by being
    taken out of the Service. The answer says whether credentials are configured."""

    async def ready() -> tuple[bool, dict[str, str]]:
        return True, {"credentials": "configured" if client.configured else "missing"}

    return ready


class BearerToken(httpx.Auth):
    """`Authorization: Bearer <token>` (HubSpot private apps, Slack bot tokens)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
