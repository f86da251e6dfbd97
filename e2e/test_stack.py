"""The stack as a whole: a value written through the orchestrator is read back from the memory
service and from Redis; a request's trace arrives with every service's spans; the orchestrator
reports its dependencies; stopping Redis makes its users unready and restarting it makes them ready.
The last test runs this suite again against the same stack given only by URLs, as against a deployed
one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest
from redis import Redis

from e2e.conftest import Target
from e2e.stack import PROJECT, wait_until

LOG_FIELDS = {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id"}


def redis_client(target: Target) -> Redis:
    if target.redis_url is None:
        pytest.skip("no Redis to read (E2E_REDIS_URL)")
    return Redis.from_url(target.redis_url, password=target.redis_password, decode_responses=True, socket_timeout=5)


def test_a_value_written_through_the_orchestrator_is_read_from_memory_and_redis(target: Target):
    orchestrator, memory = target.url("orchestrator"), target.url("memory")
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    value = "Q3 board deck: revenue slide needs the churn number"
    put = httpx.put(f"{orchestrator}/api/memory/{key}", json={"value": value, "ttl_seconds": 300}, timeout=10)
    assert put.status_code in (200, 204), put.text
    assert httpx.get(f"{memory}/l1/{key}", timeout=10).json() == {"key": key, "value": value}
    redis = redis_client(target)
    assert redis.get(f"l1:{key}") == value
    assert 0 < redis.ttl(f"l1:{key}") <= 300
    assert httpx.get(f"{orchestrator}/api/memory/{key}", timeout=10).json() == {"key": key, "value": value}
    assert httpx.delete(f"{orchestrator}/api/memory/{key}", timeout=10).status_code == 204
    assert httpx.get(f"{orchestrator}/api/memory/{key}", timeout=10).status_code == 404
    assert redis.exists(f"l1:{key}") == 0


def test_the_orchestrator_reports_each_dependency(target: Target):
    body = httpx.get(f"{target.url('orchestrator')}/api/status", timeout=10).json()
    config = target.rendered.config
    assert (body["service"], body["environment"]) == ("orchestrator", config.environment)
    assert [d["name"] for d in body["dependencies"]] == ["memory", *config.mcp_servers]
    memory = body["dependencies"][0]
    assert (memory["healthy"], memory["ready"]) == (True, True)
    for dependency in body["dependencies"][1:]:
        name = f"mcp-{dependency['name'].replace('_', '-')}"
        if target.local is not None:
            assert dependency["healthy"] is (name in target.urls), dependency
        assert isinstance(dependency["latency_ms"], float)


def test_a_request_is_traced_across_the_services(target: Target):
    local = target.control()
    key = f"trace-{uuid.uuid4().hex[:8]}"
    assert httpx.put(f"{target.url('orchestrator')}/api/memory/{key}", json={"value": "traced"}, timeout=10).status_code == 204

    def server_span(spans, service: str, route: str):
        return next((s for s in spans if s.service == service and s.name == f"PUT {route}"), None)

    def complete(spans) -> bool:
        entry = server_span(spans, "orchestrator", "/api/memory/{key}")
        return bool(entry) and any(
            s.trace_id == entry.trace_id and s.service == "memory" and "redis" in s.attributes.get("db.system", "") for s in spans
        )

    spans = local.receiver.wait_for(complete)
    entry = server_span(spans, "orchestrator", "/api/memory/{key}")
    trace = [s for s in spans if s.trace_id == entry.trace_id]
    memory = next(s for s in trace if s.service == "memory" and s.name == "PUT /l1/{key}")
    # The memory service continued the orchestrator's trace: its server span's parent is the
    # orchestrator's outgoing (httpx) call.
    assert next(s for s in trace if s.span_id == memory.parent_span_id).service == "orchestrator"
    assert f"deployment.environment': '{target.rendered.config.environment}" in entry.attributes["resource"]
    # And the log lines of both requests carry the trace id.
    for service in ("orchestrator", "memory"):
        lines = [json.loads(line) for line in local.services[service].process.lines]
        assert any(line.get("trace_id") == entry.trace_id for line in lines), service


def test_every_log_line_is_a_json_object_with_the_contract_fields(target: Target):
    local = target.control()
    for name, service in local.services.items():
        lines = list(service.process.lines)
        assert lines, f"{name} wrote no log line"
        for line in lines:
            record = json.loads(line)
            assert set(record) >= LOG_FIELDS, (name, record)
            assert record["service"] == name


def test_stopping_redis_makes_its_users_unready_and_restarting_it_makes_them_ready(target: Target):
    local = target.control()
    users = [name for name, service in local.services.items() if "REDIS_URL" in service.env]
    assert {"orchestrator", "memory"} <= set(users)
    kept = f"kept-{uuid.uuid4().hex[:8]}"
    assert httpx.put(f"{target.url('orchestrator')}/api/memory/{kept}", json={"value": "survives"}, timeout=10).status_code == 204

    def readiness(name: str) -> httpx.Response:
        return httpx.get(f"{target.urls[name]}/ready", timeout=5)

    local.stop_redis()
    try:
        for name in users:
            response = wait_until(lambda n=name: (r := readiness(n)).status_code == 503 and r, 20, f"{name} unready")
            assert response.json()["checks"]["redis"].startswith("unreachable"), response.text
            assert httpx.get(f"{target.urls[name]}/health", timeout=5).status_code == 200, "alive, only unready"
    finally:
        local.restart_redis()
    # Every service, not only Redis's users: those that call them recover too.
    for name in local.services:
        wait_until(lambda n=name: readiness(n).status_code == 200, 20, f"{name} ready again")
    # Append-only persistence: what was written before the stop is still there.
    assert httpx.get(f"{target.url('orchestrator')}/api/memory/{kept}", timeout=10).json()["value"] == "survives"


def test_the_suite_runs_against_the_stack_given_only_by_urls(target: Target):
    """What `make e2e` does against a deployed stack (README), here against this one."""
    local = target.control()
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2E_")} | {
        "E2E_STACKS": target.rendered.stack,
        "E2E_SERVICE_URLS": json.dumps(target.urls),
        "E2E_REDIS_URL": target.redis_url or "",
        "E2E_REDIS_PASSWORD": target.redis_password or "",
    }
    if local.prometheus_url:
        env["E2E_PROMETHEUS_URL"] = local.prometheus_url
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "e2e", "-p", "no:cacheprovider", "-rs", "-k", "not given_only_by_urls"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "needs the stack's processes" in result.stdout  # skipped there, with the reason
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout[-2000:]


def test_the_snowflake_secret_as_rendered_connects(target: Target):
    """The services that use Snowflake read the rendered `snowflake` Secret (its key pair) and
    connect; here to fakesnow in Snowflake's place, so /ready reports it."""
    local = target.control()
    users = [name for name, service in local.services.items() if "SNOWFLAKE_ACCOUNT" in service.env]
    assert {"orchestrator", "memory"} <= set(users)
    for name in users:

        def reported(n: str = name) -> str | None:
            state: str | None = httpx.get(f"{target.urls[n]}/ready", timeout=5).json().get("snowflake")
            return state if state not in (None, "pending") else None

        assert wait_until(reported, 30, f"{name} to report Snowflake") == "ok"
