"""The orchestrator's API: status of its dependencies and L1 memory through the memory service
(a stand-in here; the real one in the end-to-end suite)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def services(stand_in):
    return {"memory": stand_in(), "ai_memory": stand_in(), "gong": stand_in()}


@pytest.fixture
def api(make_client, ready_environment, services):
    mcp = {"ai_memory": services["ai_memory"].url, "gong": services["gong"].url}
    return make_client(
        **{
            **ready_environment,
            "MEMORY_URL": services["memory"].url,
            "MCP_SERVER_URLS": json.dumps(mcp),
            "SOPHIA_ENVIRONMENT": "staging",
        }
    )


def test_status_lists_memory_then_every_mcp_server(api, services):
    services["gong"].ready = False
    body = api.get("/api/status").json()
    assert (body["service"], body["environment"]) == ("orchestrator", "staging")
    by_name = {d["name"]: d for d in body["dependencies"]}
    assert [d["name"] for d in body["dependencies"]] == ["memory", "ai_memory", "gong"]
    assert by_name["memory"]["url"] == services["memory"].url
    assert (by_name["memory"]["healthy"], by_name["memory"]["ready"]) == (True, True)
    assert (by_name["gong"]["healthy"], by_name["gong"]["ready"]) == (True, False)
    assert all(isinstance(d["latency_ms"], float) for d in body["dependencies"])


def test_an_unready_mcp_server_does_not_make_the_orchestrator_unready(api, services):
    services["gong"].ready = False
    assert api.get("/ready").status_code == 200
    assert api.get("/api/status").json()["ready"] is True


def test_status_says_the_orchestrator_is_unready_when_its_ready_probe_fails(api, services):
    # What the dashboard shows for the orchestrator itself: the verdict of its own /ready.
    assert api.get("/api/status").json()["ready"] is True
    services["memory"].ready = False
    assert api.get("/ready").status_code == 503
    assert api.get("/api/status").json()["ready"] is False


def test_memory_goes_through_the_memory_service(api, services):
    memory = services["memory"]
    assert api.put("/api/memory/deal:42", json={"value": "Acme", "ttl_seconds": 60}).status_code == 204
    assert memory.entries == {"deal:42": "Acme"}
    assert api.get("/api/memory/deal:42").json() == {"key": "deal:42", "value": "Acme"}
    assert api.delete("/api/memory/deal:42").status_code == 204
    assert api.get("/api/memory/deal:42").status_code == 404
    assert [(method, path) for method, path, _ in memory.requests if path.startswith("/l1/")] == [
        ("PUT", "/l1/deal%3A42"),
        ("GET", "/l1/deal%3A42"),
        ("DELETE", "/l1/deal%3A42"),
        ("GET", "/l1/deal%3A42"),
    ]


def test_memory_unreachable_is_a_503_and_makes_the_orchestrator_unready(api, services):
    services["memory"].server.shutdown()
    services["memory"].server.server_close()
    response = api.put("/api/memory/k", json={"value": "x"})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("memory service unreachable")
    assert api.get("/ready").json()["checks"]["memory"].startswith("unreachable")


def test_bad_bodies_are_refused_before_the_memory_service(api, services):
    assert api.put("/api/memory/k", json={"ttl_seconds": 5}).status_code == 422
    assert not [path for _, path, _ in services["memory"].requests if path.startswith("/l1/")]
