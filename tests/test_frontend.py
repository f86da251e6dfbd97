"""The dashboard (frontend/): generated from services/templates/react-service, its image, and its
server run as a process with the environment its Deployment gives it, in front of the real
orchestrator and MCP servers. Its upstream memory service is the stand-in of
tests/platform_standins.py, whose slow key holds a request in flight while the server drains. The
dashboard in Chromium against a whole stack run locally is e2e/test_dashboard.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from cookiecutter.main import cookiecutter

from e2e.browser import browse
from tests.conftest import PROJECT
from tests.platform import OtlpReceiver, Processes, free_port, json_lines, metric

FRONTEND = PROJECT / "frontend"
TEMPLATE = PROJECT / "services/templates/react-service"
BUILT = ("node_modules", "dist", "dist-server", "coverage")
NODE_VERSION = (PROJECT / ".nvmrc").read_text().strip()


def differences(left: Path, right: Path) -> list[str]:
    import filecmp

    comparison = filecmp.dircmp(left, right, ignore=[*BUILT, "__pycache__"])
    found = [f"{left.name}/{n}" for n in comparison.left_only + comparison.right_only + comparison.diff_files]
    for sub in comparison.common_dirs:
        found += differences(left / sub, right / sub)
    return found


@pytest.fixture(scope="module")
def built() -> Path:
    """The dashboard and its server, as `make frontend` builds them."""
    missing = [p for p in ("node_modules", "dist/index.html", "dist-server/main.js") if not (FRONTEND / p).exists()]
    if missing:
        pytest.fail(f"frontend/ is not built ({', '.join(missing)} missing): run make frontend")
    return FRONTEND


def npm(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Plain output whatever the environment: vitest colours its summary when CI is set (tinyrainbow
    # reads CI, FORCE_COLOR and NO_COLOR), and the assertions read that summary.
    env = {key: value for key, value in os.environ.items() if key != "FORCE_COLOR"} | {"NO_COLOR": "1"}
    return subprocess.run(["npm", *args], cwd=directory, capture_output=True, text=True, check=False, env=env)


# --- the template ---------------------------------------------------------------------------


def test_the_committed_frontend_is_what_the_template_generates(tmp_path: Path):
    fresh = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(tmp_path)))
    assert fresh.name == "frontend"
    assert differences(FRONTEND, fresh) == []


def test_the_template_renders_a_project_whose_own_tests_pass(tmp_path: Path, built: Path):
    context = {"service_name": "console", "service_port": "8123"}
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(tmp_path), extra_context=context))
    manifest = json.loads((project / "package.json").read_text())
    lock = json.loads((project / "package-lock.json").read_text())
    assert manifest["name"] == lock["name"] == lock["packages"][""]["name"] == "sophia-console"
    assert manifest["config"]["port"] == "8123"
    dockerfile = (project / "Dockerfile").read_text()
    assert "EXPOSE 8123" in dockerfile and "PORT=8123" in dockerfile
    hadolint = subprocess.run(
        [str(PROJECT / ".venv/bin/hadolint"), "Dockerfile"], cwd=project, capture_output=True, text=True, check=False
    )
    assert hadolint.returncode == 0, hadolint.stdout
    # Its sources are those of frontend/ (copied, not rendered; make frontend type checks and lints
    # them) and its lock the same but for the name: frontend/'s installed tree serves it.
    (project / "node_modules").symlink_to(built / "node_modules")
    # Its own checks, as make frontend runs them for frontend/: type check, lint, unit tests.
    for script in ("typecheck", "lint"):
        checked = npm(project, "run", script)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    run = npm(project, "test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"Tests\s+\d+ passed", run.stdout)
    # A failing test fails the run.
    (project / "src/broken.test.ts").write_text('import { expect, it } from "vitest";\nit("fails", () => expect(1).toBe(2));\n')
    failing = npm(project, "test", "--", "src/broken.test.ts")
    assert failing.returncode != 0 and re.search(r"Tests\s+1 failed", failing.stdout), failing.stdout


# --- the image and the toolchain --------------------------------------------------------------


def test_the_dockerfile_pins_node_to_nvmrc_and_runs_as_uid_10001():
    text = (FRONTEND / "Dockerfile").read_text()
    assert re.search(rf"^ARG NODE_VERSION={re.escape(NODE_VERSION)}$", text, flags=re.MULTILINE)
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert len(bases) == 2 and all(base == "node:${NODE_VERSION}-bookworm-slim" for base in bases), bases
    assert "npm ci" in text and "npm install" not in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert 'CMD ["node", "dist-server/main.js"]' in text


def test_every_locked_package_runs_on_the_pinned_node(built: Path):
    # CI (setup-node from .nvmrc) and the image build run this exact Node version.
    script = (
        "const semver = require('semver'); const lock = require('./package-lock.json');"
        "const bad = Object.entries(lock.packages).filter(([, p]) => p.engines && p.engines.node"
        f" && !semver.satisfies('{NODE_VERSION}', p.engines.node)).map(([n, p]) => n + ' ' + p.engines.node);"
        "console.log(JSON.stringify(bad));"
    )
    run = subprocess.run(["node", "-e", script], cwd=built, capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == []
    lock = json.loads((built / "package-lock.json").read_text())
    assert all(
        spec[0] not in "^~><*"
        for spec in {**lock["packages"][""]["dependencies"], **lock["packages"][""]["devDependencies"]}.values()
    )


# --- the server and the dashboard, run for real ---------------------------------------------------


def start_frontend(processes: Processes, orchestrator: str | None, **env: str):
    port, metrics_port = free_port(), free_port()
    contract = {"PORT": str(port), "METRICS_PORT": str(metrics_port), "SOPHIA_ENVIRONMENT": "dev", "WEB_CONCURRENCY": "2"}
    if orchestrator:
        contract["ORCHESTRATOR_URL"] = orchestrator
    process = processes.start(
        f"frontend-{port}", ["node", "dist-server/main.js"], {**contract, **env}, f"http://127.0.0.1:{port}/health", cwd=FRONTEND
    )
    return process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"


@pytest.fixture(scope="module")
def platform(built: Path, mcp_platform, session_processes: Processes, otlp: OtlpReceiver, redis_server: dict[str, str]):
    """The four MCP servers and the memory stand-in (over a real Redis), the real orchestrator
    (services/orchestrator, with the environment the infrastructure gives it) and the frontend,
    traced."""
    servers, memory = mcp_platform["servers"], mcp_platform["memory"]
    orchestrator = session_processes.service(
        "orchestrator",
        {
            **redis_server,
            "MEMORY_URL": memory,
            "MCP_SERVER_URLS": json.dumps({n: s.url for n, s in servers.items()}),
            "SOPHIA_ENVIRONMENT": "dev",
        },
        wait=False,
    )
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_SERVICE_NAME": "frontend",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,service.namespace=sophia-ai",
    }
    frontend, url, metrics_url = start_frontend(session_processes, orchestrator, **tracing)
    session_processes.wait(orchestrator)
    return {
        "servers": servers,
        "memory": memory,
        "orchestrator": orchestrator,
        "frontend": frontend,
        "url": url,
        "metrics": metrics_url,
    }


def test_the_server_answers_the_contract_endpoints(platform):
    url = platform["url"]
    assert httpx.get(url + "/health").json() == {"status": "healthy", "service": "frontend"}
    assert httpx.get(url + "/ready").status_code == 200
    status = httpx.get(url + "/api/status")
    assert status.status_code == 200 and status.json()["service"] == "orchestrator"
    assert httpx.get(url + "/metrics").headers["content-type"].startswith("text/html"), "metrics only on METRICS_PORT"


def test_metrics_are_summed_over_the_workers_on_metrics_port(platform):
    before = httpx.get(platform["metrics"]).text
    for _ in range(20):
        httpx.get(platform["url"] + "/health")  # a connection each: both workers answer some
    after = httpx.get(platform["metrics"]).text
    labels = {"method": "GET", "route": "/health", "status": "200"}
    assert metric(after, "http_requests_total", **labels) - metric(before, "http_requests_total", **labels) == 20
    assert "http_request_duration_seconds_bucket" in after and "http_requests_in_flight" in after
    workers = {line.get("pid") for line in json_lines(platform["frontend"].output()) if line.get("path") == "/health"}
    assert len(workers) == 2, "WEB_CONCURRENCY=2: two worker processes answered"


def test_logs_are_json_lines_with_trace_ids_and_traces_reach_the_collector(platform, otlp: OtlpReceiver):
    httpx.get(platform["url"] + "/api/status", headers={"x-probe": "traced"})
    lines = json_lines(platform["frontend"].output())
    for line in lines:
        assert {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id"} <= set(line), line
        assert line["service"] == "frontend"
    (logged,) = [line for line in lines if line.get("path") == "/api/status"][-1:]
    assert re.fullmatch(r"[0-9a-f]{32}", logged["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", logged["span_id"])
    # The trace of that request reaches the collector: the server's span and, in the same trace,
    # the proxy's call to the orchestrator.
    spans = otlp.wait_for(lambda s: s["trace_id"] == logged["trace_id"] and s["span_id"] == logged["span_id"])
    assert spans[0]["resource"]["service.name"] == "frontend"
    assert spans[0]["resource"]["deployment.environment"] == "dev"
    otlp.wait_for(lambda s: s["trace_id"] == logged["trace_id"] and s["span_id"] != logged["span_id"])
    # Probes are not traced.
    assert not [s for s in otlp.spans if s["attributes"].get("http.target") in ("/health", "/ready")]


def test_sigterm_finishes_the_request_in_flight_and_exits_zero(platform, processes: Processes):
    process, url, _ = start_frontend(processes, platform["orchestrator"])
    httpx.put(url + "/api/memory/slow-dashboard", json={"value": "kept"}).raise_for_status()
    answers: list[httpx.Response] = []
    call = threading.Thread(target=lambda: answers.append(httpx.get(url + "/api/memory/slow-dashboard", timeout=20)))
    call.start()
    time.sleep(0.5)  # the GET now waits on the memory stand-in (1.5 s)
    process.popen.send_signal(signal.SIGTERM)
    call.join(timeout=20)
    assert answers and answers[0].status_code == 200 and answers[0].json()["value"] == "kept"
    assert process.popen.wait(timeout=25) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")


def test_without_an_orchestrator_the_api_answers_503_and_the_dashboard_says_so(processes: Processes, built: Path):
    _, url, _ = start_frontend(processes, None)
    assert httpx.get(url + "/api/status").status_code == 503
    shown = browse(url)
    assert shown["rows"] == [] and "The orchestrator did not answer (GET /api/status: HTTP 503)" in shown["alerts"][0]
