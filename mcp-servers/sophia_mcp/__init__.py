"""Sophia AI MCP servers: `sophia_mcp.servers.<name>` is the server `<name>` of `sophia-ai:mcpServers`."""
