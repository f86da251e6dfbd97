"""Reads the API documents of the Python services in one build context, in a process of its own.

Run by `sophia_infra/api_docs.py` as `python api_docs_worker.py KIND CONTEXT OUT NAME...`, with
CONTEXT first on sys.path: the services generated from services/templates/python-service
are all a package named `app`, so each context gets an interpreter of its own. Writes a JSON
object {name: document} to OUT (not stdout, where the services log).

- `openapi CONTEXT OUT NAME`: the FastAPI app `app.main:app`, its `openapi()` (what it serves
  at /openapi.json);
- `mcp CONTEXT OUT SERVER...`: each MCP server of `sophia_mcp.servers`, its tools as an MCP
  client receives them from `tools/list` (the SDK's client, connected in-process).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any


def openapi(name: str) -> dict[str, Any]:
    main = importlib.import_module("app.main")
    return {name: main.app.openapi()}


async def mcp_tools(names: list[str]) -> dict[str, Any]:
    from mcp import Client

    app = importlib.import_module("sophia_mcp.app")
    servers = importlib.import_module("sophia_mcp.servers")
    documents: dict[str, Any] = {}
    for name in names:
        service = servers.load(name)
        tools: list[dict[str, Any]] = []
        async with Client(service.mcp) as client:
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
        await service.close()
        documents[name] = {
            "server": service.mcp.name,
            "version": service.mcp.version,
            "path": app.MCP_PATH,
            "tools": sorted(tools, key=lambda tool: tool["name"]),
        }
    return documents


def main(argv: list[str]) -> int:
    kind, context, out, *names = argv
    # In place of this script's directory: the context's `app` (or `sophia_mcp`) and nothing else.
    sys.path[0] = context
    documents = openapi(*names) if kind == "openapi" else asyncio.run(mcp_tools(names))
    with open(out, "w", encoding="utf-8") as file:
        json.dump(documents, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
