"""The dashboard, loaded in headless Chromium from the stack's own frontend, in front of the
stack's real orchestrator, memory service, Redis and MCP servers: what it shows is what they
answer, and a dependency that goes down shows as down."""

from __future__ import annotations

import json
import re

import httpx

from e2e.browser import PROJECT, browse
from e2e.conftest import Target
from e2e.stack import wait_until

# Kept for the docs (docs/dashboard.png is a copy of the dev stack's).
SCREENSHOT = PROJECT / "build/dashboard-{stack}.png"


def mcp_servers(target: Target) -> dict[str, str]:
    """The MCP servers the orchestrator reports, by name: their in-cluster URLs, from its
    Deployment's MCP_SERVER_URLS."""
    env = {item["name"]: item.get("value") for item in target.rendered.container("orchestrator")["env"]}
    servers: dict[str, str] = json.loads(env["MCP_SERVER_URLS"])
    return servers


def expected_rows(target: Target) -> set[str]:
    """The services the orchestrator reports: itself, memory, and its MCP servers."""
    return {"orchestrator", "memory", *mcp_servers(target)}


def test_chromium_shows_every_service_ready_and_the_l1_latency(target: Target):
    url = target.url("frontend")
    target.url("orchestrator")
    screenshot = SCREENSHOT.with_name(SCREENSHOT.name.format(stack=target.rendered.stack))
    screenshot.parent.mkdir(exist_ok=True)
    shown = browse(url, screenshot)
    assert shown["errors"] == [] and shown["alerts"] == [], shown
    assert shown["title"] == "Sophia AI"
    rows = {cells[0]: cells for cells in shown["rows"]}
    assert set(rows) == expected_rows(target)
    for name, cells in rows.items():
        assert cells[1:3] == ["healthy", "ready"], (name, cells)
        assert re.fullmatch(r"\d+\.\d ms", cells[3]), (name, cells)
    environment = target.rendered.config.environment
    assert shown["summary"] == f"{environment} {len(rows)} of {len(rows)} services ready"
    assert re.fullmatch(r"write \d+\.\d ms · read \d+\.\d ms", shown["l1"]), shown["l1"]
    assert screenshot.stat().st_size > 10_000


def test_chromium_shows_what_each_service_answers_while_redis_is_down(target: Target):
    url = target.url("frontend")
    local = target.control()
    # Each row's own /ready, asked here directly: the page must show the same.
    readiness = {name: local.services[name].url for name in ("orchestrator", "memory")}
    readiness |= {name: local.localize(address) for name, address in mcp_servers(target).items()}

    def ready(name: str) -> bool:
        return httpx.get(f"{readiness[name]}/ready", timeout=5).status_code == 200

    local.stop_redis()
    try:
        wait_until(lambda: not ready("memory"), 30, "memory to be unready")
        shown = browse(url)
        answered = {name: ready(name) for name in readiness}
    finally:
        local.restart_redis()
    rows = {cells[0]: cells for cells in shown["rows"]}
    assert {name: cells[2] == "ready" for name, cells in rows.items()} == answered
    assert all(cells[1] == "healthy" for cells in rows.values()), rows
    # Redis's users are among them (not a vacuous comparison).
    assert rows["memory"][2] == rows["orchestrator"][2] == "not ready"
    total, unready = len(rows), sum(not ok for ok in answered.values())
    assert shown["summary"] == f"{target.rendered.config.environment} {total - unready} of {total} services ready"
    # The L1 probe goes through the memory service to Redis: the page says it failed.
    assert shown["l1"] is None and any(alert.startswith("The L1 probe failed") for alert in shown["alerts"]), shown
    wait_until(lambda: all(ready(name) for name in readiness), 30, "every service to be ready again")
