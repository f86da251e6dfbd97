"""The servers, found by module name: `sophia_mcp.servers.hubspot` is the server `hubspot` of
`sophia-ai:mcpServers`. Adding a server is adding its module (and its name to the stack file):
nothing lists them."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mcp.server import MCPServer

# The names sophia-ai:mcpServers accepts (stacks/model.py).
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

Readiness = tuple[bool, dict[str, str]]


async def _nothing() -> None:
    return None


@dataclass
class McpService:
    """What a server module's `create()` returns: the MCP server with its tools, and what
    `/ready` asks."""

    mcp: MCPServer
    # (ready, details): GET /ready answers 200 when ready, 503 otherwise, with the details.
    ready: Callable[[], Awaitable[Readiness]]
    # Called once at shutdown (e.g. closes an HTTP client).
    close: Callable[[], Awaitable[None]] = field(default=_nothing)


class UnknownServerError(LookupError):
    pass


def available() -> list[str]:
    """Every server this package holds."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if NAME.match(module.name))


def load(name: str) -> McpService:
    """The server `name`, created from its module's `create()`."""
    if not NAME.match(name) or name not in available():
        raise UnknownServerError(f"unknown MCP server {name!r}; this image holds: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.create()
