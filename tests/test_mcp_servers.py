"""The MCP servers (mcp-servers/), each started as a real process with the environment its
Deployment gives it, used through the MCP SDK's client over streamable HTTP; the platform
contract's endpoints, metrics, traces, logs and shutdown; their image and how a server is added."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from mcp import Client

from sophia_infra import build_matrix
from stacks import loader
from tests.conftest import PROJECT, RunStack, stack_config
from tests.platform import MCP_SERVERS, SERVERS, OtlpReceiver, Processes, free_port, json_lines, metric, run_async

DOCKERFILE = MCP_SERVERS / "docker/Dockerfile.mcp-server"


def mcp(url: str, tool: str | None = None, arguments: dict[str, Any] | None = None):
    """List the tools of the server at `url` (no `tool`) or call `tool`, with the SDK's client."""

    async def run():
        async with Client(url + "/mcp") as client:
            if tool is None:
                return {t.name: t for t in (await client.list_tools()).tools}
            return await client.call_tool(tool, arguments or {})

    return run_async(run())


def result(answer) -> dict[str, Any]:
    assert not answer.is_error, answer.content
    return answer.structured_content


def error(answer) -> str:
    assert answer.is_error, answer.structured_content
    return answer.content[0].text


def saas_requests(mcp_platform) -> list[dict[str, Any]]:
    return [json.loads(line) for line in mcp_platform["saas_log"].read_text().splitlines()]


# --- the tools, over MCP --------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_lists_its_tools_over_streamable_http(mcp_platform, name: str):
    tools = mcp(mcp_platform["servers"][name].url)
    assert set(tools) == SERVERS[name]
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object"


def test_ai_memory_remembers_recalls_and_forgets_through_the_memory_service(mcp_platform, redis_server):
    url = mcp_platform["servers"]["ai_memory"].url
    assert result(mcp(url, "remember", {"key": "ceo:focus", "value": "Q3 board deck", "ttl_seconds": 600})) == {
        "key": "ceo:focus",
        "stored": True,
    }
    # It went through the memory service into Redis, with the TTL.
    direct = redis.Redis.from_url(redis_server["REDIS_URL"], password=redis_server["REDIS_PASSWORD"])
    assert direct.get("l1:ceo:focus") == b"Q3 board deck"
    assert 0 < direct.ttl("l1:ceo:focus") <= 600
    assert result(mcp(url, "recall", {"key": "ceo:focus"}))["value"] == "Q3 board deck"
    assert result(mcp(url, "forget", {"key": "ceo:focus"})) == {"key": "ceo:focus", "deleted": True}
    assert result(mcp(url, "recall", {"key": "ceo:focus"})) == {"key": "ceo:focus", "found": False}
    assert direct.get("l1:ceo:focus") is None


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("remember", {"key": "../admin", "value": "x"}),
        ("remember", {"key": "k", "value": "x", "ttl_seconds": 0}),
        ("recall", {"key": "a" * 201}),
    ],
)
def test_ai_memory_refuses_bad_arguments_before_calling_the_memory_service(mcp_platform, tool: str, arguments):
    assert "validation error" in error(mcp(mcp_platform["servers"]["ai_memory"].url, tool, arguments))


def test_hubspot_shapes_validates_and_sends_a_contact_with_its_token(mcp_platform):
    url = mcp_platform["servers"]["hubspot"].url
    arguments = {"email": "Ada@Example.com", "first_name": " Ada ", "last_name": "Lovelace", "company": "Analytical"}
    dry = result(mcp(url, "create_contact", {**arguments, "dry_run": True}))
    expected = {
        "method": "POST",
        "path": "/crm/v3/objects/contacts",
        "json": {"properties": {"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace", "company": "Analytical"}},
    }
    assert dry == {"request": expected, "sent": False}
    before = len(saas_requests(mcp_platform))
    sent = result(mcp(url, "create_contact", arguments))
    assert sent["sent"] is True and sent["response"]["id"] == "101"
    received = saas_requests(mcp_platform)[before:]
    assert len(received) == 1
    assert received[0]["authorization"] == "Bearer hubspot-test-token"
    assert received[0]["json"] == expected["json"]
    assert "validation error" in error(mcp(url, "create_contact", {**arguments, "email": "not-an-email"}))


def test_gong_lists_calls_of_a_time_range_with_basic_auth(mcp_platform):
    url = mcp_platform["servers"]["gong"].url
    arguments = {"from_time": "2026-01-01T00:00:00Z", "to_time": "2026-01-31T00:00:00+01:00"}
    before = len(saas_requests(mcp_platform))
    sent = result(mcp(url, "list_calls", arguments))
    assert sent["response"]["calls"] == [{"id": "7"}]
    (received,) = saas_requests(mcp_platform)[before:]
    assert received["path"] == "/v2/calls"
    assert received["params"] == {"fromDateTime": "2026-01-01T00:00:00+00:00", "toDateTime": "2026-01-31T00:00:00+01:00"}
    assert received["authorization"] == "Basic " + __import__("base64").b64encode(b"gong-key:gong-secret").decode()
    reversed_range = {"from_time": arguments["to_time"], "to_time": arguments["from_time"]}
    assert "from_time must be before to_time" in error(mcp(url, "list_calls", reversed_range))
    assert "validation error" in error(mcp(url, "list_calls", {**arguments, "from_time": "2026-01-01T00:00:00"}))


def test_slack_posts_a_message_and_reports_slacks_refusal(mcp_platform):
    url = mcp_platform["servers"]["slack"].url
    sent = result(
        mcp(url, "post_message", {"channel": "C0123456789", "text": "Board deck is ready", "thread_ts": "1700000000.000100"})
    )
    assert sent["request"]["json"] == {"channel": "C0123456789", "text": "Board deck is ready", "thread_ts": "1700000000.000100"}
    assert sent["response"]["ok"] is True
    assert saas_requests(mcp_platform)[-1]["authorization"] == "Bearer xoxb-test-token"
    assert "slack refused the request: channel_not_found" in error(
        mcp(url, "post_message", {"channel": "C0REFUSED0", "text": "hi"})
    )
    assert "validation error" in error(mcp(url, "post_message", {"channel": "general", "text": "hi"}))
    assert "text must not be blank" in error(mcp(url, "post_message", {"channel": "#general", "text": "   "}))


def test_a_saas_server_without_credentials_is_ready_dry_runs_and_refuses_to_send(processes: Processes):
    server = processes.server("hubspot", {"HUBSPOT_API_URL": "http://127.0.0.1:9"})
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200 and ready.json()["credentials"] == "missing"
    arguments = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}
    assert result(mcp(server.url, "create_contact", {**arguments, "dry_run": True}))["sent"] is False
    message = error(mcp(server.url, "create_contact", arguments))
    assert "hubspot has no credentials: set HUBSPOT_ACCESS_TOKEN" in message


# --- the platform contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_health_and_readiness_answer(mcp_platform, name: str):
    server = mcp_platform["servers"][name]
    assert httpx.get(server.url + "/health").json() == {"status": "healthy", "service": name}
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    # Metrics are served on METRICS_PORT only.
    assert httpx.get(server.url + "/metrics").status_code == 404


def test_ai_memory_is_not_ready_without_its_memory_service(processes: Processes):
    down = processes.server("ai_memory", {"MEMORY_URL": f"http://127.0.0.1:{free_port()}"}, wait=False)
    unset = processes.server("ai_memory", {}, wait=False)
    down.wait()
    unset.wait()
    answer = httpx.get(down.url + "/ready")
    assert answer.status_code == 503 and answer.json()["memory"] == "ConnectError"
    assert httpx.get(unset.url + "/ready").status_code == 503
    assert "MEMORY_URL is not set" in error(mcp(unset.url, "recall", {"key": "k"}))


def test_metrics_count_every_worker_by_route(mcp_platform):
    server = mcp_platform["servers"]["ai_memory"]
    before = httpx.get(server.metrics_url).text
    for _ in range(20):
        httpx.get(server.url + "/health")
    mcp(server.url)
    for _ in range(3):
        httpx.get(server.url + f"/no/such/{time.monotonic()}")
    after = httpx.get(server.metrics_url).text
    health = {"method": "GET", "route": "/health", "status": "200"}
    # Two worker processes answered; the supervising process sums their counts.
    assert metric(after, "http_requests_total", **health) - metric(before, "http_requests_total", **health) == 20
    assert metric(after, "http_requests_total", method="POST", route="/mcp", status="200") >= 1
    unmatched = metric(after, "http_requests_total", route="unmatched", status="404")
    assert unmatched - metric(before, "http_requests_total", route="unmatched", status="404") == 3
    assert metric(after, "http_request_duration_seconds_count", method="GET", route="/health") >= 20
    assert "http_requests_in_flight" in after
    assert re.search(r'route="/no/such', after) is None
    workers = [line for line in server.process.output().splitlines() if "Started server process" in line]
    assert len(workers) >= 2, "WEB_CONCURRENCY=2 should start two worker processes"


def test_traces_reach_the_otlp_endpoint_with_the_service_resource(mcp_platform, otlp: OtlpReceiver):
    server = mcp_platform["servers"]["ai_memory"]
    result(mcp(server.url, "remember", {"key": "traced", "value": "1"}))
    spans = otlp.wait_for(lambda s: s["resource"].get("service.name") == "mcp-ai-memory" and s["name"].startswith("POST /mcp"))
    assert spans[0]["resource"]["deployment.environment"] == "dev"

    # The call to the memory service is a child span of the same trace (httpx instrumentation).
    # The client's calls (initialize, then tools/call) may reach either worker, each exporting in
    # its own batches: the traces of the calls are those received by the time the PUT is.
    def calls() -> set[str]:
        return {
            span["trace_id"]
            for span in otlp.spans
            if span["resource"].get("service.name") == "mcp-ai-memory" and span["name"].startswith("POST /mcp")
        }

    otlp.wait_for(lambda s: s["name"] == "PUT" and s["trace_id"] in calls())
    # Probes are not traced.
    httpx.get(server.url + "/ready")
    time.sleep(0.5)
    assert not [
        s for s in otlp.spans if s["name"].startswith("GET /ready") and s["resource"].get("service.name") == "mcp-ai-memory"
    ]


@pytest.mark.parametrize("name", SERVERS)
def test_logs_are_json_lines_with_service_and_trace_ids(mcp_platform, name: str):
    server = mcp_platform["servers"][name]
    mcp(server.url)
    lines = json_lines(server.process.output())
    assert lines
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id"} <= set(line), line
        assert line["service"] == "mcp-" + name.replace("_", "-")  # its Deployment's name
    assert any("Uvicorn running" in line["message"] for line in lines)


def test_sigterm_finishes_the_request_in_flight_and_exits_zero(processes: Processes, mcp_platform):
    server = processes.server("ai_memory", {"MEMORY_URL": mcp_platform["memory"]})
    result(mcp(server.url, "remember", {"key": "slow-draft", "value": "in flight"}))

    async def call_then_terminate():
        async with Client(server.url + "/mcp") as client:
            await client.list_tools()  # what call_tool checks its result against, fetched before
            call = asyncio.create_task(client.call_tool("recall", {"key": "slow-draft"}))
            await asyncio.sleep(0.5)  # the recall now waits on the memory service (1.5 s)
            started = time.monotonic()
            server.process.popen.send_signal(signal.SIGTERM)
            answer = await call
        code = await asyncio.to_thread(server.process.popen.wait, 20)
        return answer, code, time.monotonic() - started

    answer, code, took = run_async(call_then_terminate())
    assert result(answer)["value"] == "in flight"
    assert code == 0 and took < 25
    # It stopped accepting: nothing listens any more.
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")


def test_an_unknown_server_is_refused_with_the_list_of_servers():
    run = subprocess.run(
        [sys.executable, "-m", "sophia_mcp", "notion"], cwd=MCP_SERVERS, capture_output=True, text=True, check=False
    )
    assert run.returncode == 2
    assert "unknown MCP server 'notion'; this image holds: ai_memory, gong, hubspot, slack" in run.stderr


# --- adding a server, the image ---------------------------------------------------------------

NOTION = '''"""A server added by a test: nothing but this module and a stack entry."""

from mcp.server import MCPServer

from sophia_mcp.servers import McpService


def create() -> McpService:
    mcp = MCPServer("notion")

    @mcp.tool()
    def search_pages(query: str) -> list[str]:
        """Find pages."""
        return [query.upper()]

    async def ready():
        return True, {}

    return McpService(mcp, ready)
'''


def test_a_new_module_and_a_stack_entry_add_a_server(tmp_path: Path, processes: Processes, run_stack: RunStack):
    copy = tmp_path / "mcp-servers"
    shutil.copytree(MCP_SERVERS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "sophia_mcp/servers/notion.py").write_text(NOTION)
    server = processes.server("notion", {}, cwd=copy)
    assert set(mcp(server.url)) == {"search_pages"}
    assert result(mcp(server.url, "search_pages", {"query": "okr"})) == {"result": ["OKR"]}

    servers = [*stack_config("sophia-ai-dev")["sophia-ai:mcpServers"], "notion"]
    build = {
        "sophia-ai:images": {"registry": "scoobyjava15", "tag": "abc123", "build": True},
        "sophia-ai:registryAuth": {"username": "ci"},
    }
    run = run_stack("sophia-ai-dev", {"sophia-ai:mcpServers": servers, **build})
    assert "mcp-notion-deployment" in run.names("Deployment")
    image = run.get("docker:index/image:Image", "images-sophia-mcp-notion")
    assert image.inputs["build"]["args"] == {"SERVICE": "notion"}
    assert image.inputs["build"]["context"].endswith("/mcp-servers")
    assert Path(image.inputs["build"]["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("stack", sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in PROJECT.glob("Pulumi.*.yaml")))
def test_every_server_a_stack_runs_has_a_module(stack: str):
    listed = loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml").config.mcp_servers
    modules = {p.stem for p in (MCP_SERVERS / "sophia_mcp/servers").glob("*.py") if not p.stem.startswith("_")}
    assert set(listed) <= modules


def test_the_dockerfile_builds_any_server_by_its_service_argument_as_uid_10001():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim-bookworm|python:\d+\.\d+\.\d+-slim-bookworm", base), base
    assert re.search(r"^ARG PYTHON_VERSION=\d+\.\d+\.\d+$", text, flags=re.MULTILINE)
    assert "ARG SERVICE\n" in text and "SERVICE=${SERVICE}" in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert "EXPOSE 8080" in text
    for server in SERVERS:
        assert server not in text, "the Dockerfile must not list servers"
    hadolint = subprocess.run([str(PROJECT / ".venv/bin/hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert hadolint.returncode == 0, hadolint.stdout


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def closure(requirements: list[str]) -> set[str]:
    """Every distribution `requirements` pull in on Linux (extras included), from the installed
    metadata."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    def applies(requirement: Requirement, extras: set[str]) -> bool:
        marker = requirement.marker
        return marker is None or any(marker.evaluate({"extra": extra, "sys_platform": "linux"}) for extra in {"", *extras})

    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(r), set()) for r in requirements]
    while todo:
        requirement, wanted_by = todo.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if not applies(requirement, wanted_by):
            continue
        for extra in {"", *requirement.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            todo += [(Requirement(r), {extra} - {""}) for r in distribution(name).requires or []]
    return {name for name, _ in seen}


def test_the_image_installs_exactly_the_versions_the_tests_ran():
    project = pins((PROJECT / "constraints.txt").read_text().splitlines())
    dependencies = tomllib.loads((MCP_SERVERS / "pyproject.toml").read_text())["project"]["dependencies"]
    package = pins(dependencies)
    image = pins((MCP_SERVERS / "constraints.txt").read_text().splitlines())
    assert len(package) == len(dependencies), "every dependency is pinned exactly"
    for name, version in {**package, **image}.items():
        assert project.get(name) == version, f"{name}=={version} differs from constraints.txt ({project.get(name)})"
    # The image's constraints pin everything the package pulls in, nothing more.
    assert set(image) == closure(dependencies)


def test_the_pipeline_builds_every_image_from_a_context_and_dockerfile_that_exist():
    # The build matrix is the catalog's (`sophia-infra catalog`, tests/test_workflows.py): its
    # paths must exist and each MCP image's SERVICE must be a server of the package.
    stacks = {path.name.removeprefix("Pulumi.").removesuffix(".yaml"): path for path in PROJECT.glob("Pulumi.*.yaml")}
    entries = build_matrix.entries({stack: loader.load_stack_file(path).config for stack, path in stacks.items()})
    assert {"sophia-frontend", "sophia-mcp-ai-memory"} <= {entry["image"] for entry in entries}
    modules = {p.stem for p in (MCP_SERVERS / "sophia_mcp/servers").glob("*.py")}
    for entry in entries:
        assert (PROJECT / entry["context"]).is_dir() and (PROJECT / entry["dockerfile"]).is_file(), entry
        if entry["build-args"].startswith("SERVICE="):
            assert entry["build-args"].removeprefix("SERVICE=") in modules, entry
