"""Running the services for real in tests: free ports, processes with the environment a
Deployment gives them, a real Redis, an OTLP/gRPC receiver (fixtures registered by
tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.stack import free_port

PROJECT = Path(__file__).resolve().parent.parent
MCP_SERVERS = PROJECT / "mcp-servers"
# The default servers and their tools.
SERVERS = {
    "ai_memory": {"remember", "recall", "forget"},
    "hubspot": {"create_contact"},
    "gong": {"list_calls"},
    "slack": {"post_message"},
}
CREDENTIALS = {
    "HUBSPOT_ACCESS_TOKEN": "hubspot-test-token",
    "GONG_ACCESS_KEY": "gong-key",
    "GONG_ACCESS_KEY_SECRET": "gong-secret",
    "SLACK_BOT_TOKEN": "xoxb-test-token",
}
REDIS_PASSWORD = "standin-redis-password"
# What a process inherits from the test run: nothing of the platform contract.
CONTRACT_PREFIXES = (
    "PORT",
    "METRICS_PORT",
    "SOPHIA_",
    "OTEL_",
    "WEB_CONCURRENCY",
    "REDIS_",
    "MEMORY_URL",
    "SERVICE",
    "PROMETHEUS_",
    "HUBSPOT_",
    "GONG_",
    "SLACK_",
    "ORCHESTRATOR_URL",
    "MCP_SERVER_URLS",
)


class Process:
    """A child process whose stdout and stderr go to a file in `workdir`."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], workdir: Path, cwd: Path = PROJECT) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT_PREFIXES)}
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(command, cwd=cwd, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT)

    def wait_for(self, url: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer {url} in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as the kubelet sends it; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class Server:
    """A running MCP server."""

    name: str
    url: str
    metrics_url: str
    process: Process

    def wait(self) -> None:
        self.process.wait_for(self.url + "/health")


class Processes:
    """Every process a test starts, stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []
        self.by_url: dict[str, Process] = {}

    def start(
        self, name: str, command: list[str], env: Mapping[str, str], health: str | None = None, cwd: Path = PROJECT
    ) -> Process:
        process = Process(name, command, env, self.workdir, cwd)
        self.started.append(process)
        if health is not None:
            process.wait_for(health)
        return process

    def serve(self, name: str, command: list[str], env: Mapping[str, str], cwd: Path, wait: bool) -> str:
        """Start an HTTP server on a free port (given as PORT); its base URL."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.by_url[url] = self.start(f"{name}-{port}", command, {**env, "PORT": str(port)}, cwd=cwd)
        if wait:
            self.wait(url)
        return url

    def standin(self, kind: str, env: Mapping[str, str], wait: bool = True) -> str:
        """Start a stand-in of tests/platform_standins.py; its base URL."""
        return self.serve(f"standin-{kind}", [sys.executable, "-m", "tests.platform_standins", kind], env, PROJECT, wait)

    def service(self, name: str, env: Mapping[str, str], wait: bool = True) -> str:
        """Start the service services/<name> as its image would (`python -m app` in its build
        context), with PORT and `env`; its base URL."""
        return self.serve(name, [sys.executable, "-m", "app"], env, PROJECT / "services" / name, wait)

    def wait(self, url: str) -> None:
        """Wait for the stand-in or service at `url` to answer."""
        self.by_url[url].wait_for(url + "/health")

    def server(self, name: str, env: Mapping[str, str], cwd: Path = MCP_SERVERS, wait: bool = True) -> Server:
        """Start the MCP server `name` of mcp-servers/ as its image would, with the platform
        contract's environment (and `env`)."""
        port, metrics_port = free_port(), free_port()
        contract = {"PORT": str(port), "METRICS_PORT": str(metrics_port), "SOPHIA_ENVIRONMENT": "dev", "SERVICE": name}
        process = self.start(f"mcp-{name}-{port}", [sys.executable, "-m", "sophia_mcp"], {**contract, **env}, cwd=cwd)
        server = Server(name, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process)
        if wait:
            server.wait()
        return server

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
def session_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    running = Processes(tmp_path_factory.mktemp("processes"))
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real redis-server on a free loopback port, with a password: the environment its
    clients get (REDIS_URL, REDIS_PASSWORD)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    options = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD, "--save", "", "--dir", str(workdir)]
    process = subprocess.Popen([binary, *options], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "REDIS_PASSWORD": REDIS_PASSWORD}
    finally:
        process.terminate()
        process.wait(timeout=10)


class OtlpReceiver:
    """An OTLP/gRPC trace receiver (the collector's side of the protocol) on a free port."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - the gRPC method's name
                with receiver.lock:
                    for resource_spans in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                                receiver.spans.append(
                                    {
                                        "name": span.name,
                                        "trace_id": span.trace_id.hex(),
                                        "span_id": span.span_id.hex(),
                                        "resource": resource,
                                        "attributes": attributes,
                                    }
                                )
                return trace_service_pb2.ExportTraceServiceResponse()

        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, predicate, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [span for span in self.spans if predicate(span)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no such span in {timeout}s; got {json.dumps(self.spans)[:2000]}")


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.server.stop(grace=None)


@pytest.fixture(scope="session")
def mcp_platform(
    session_processes: Processes, redis_server: dict[str, str], otlp: OtlpReceiver, tmp_path_factory
) -> dict[str, Any]:
    """The memory stand-in (over the real Redis), a recording SaaS fake, and the four servers
    with credentials, tracing and metrics on; ai_memory with two worker processes. Started
    together, then waited for."""
    saas_log = tmp_path_factory.mktemp("saas") / "requests.jsonl"
    memory = session_processes.standin("memory", redis_server, wait=False)
    saas = session_processes.standin("saas", {"SAAS_LOG": str(saas_log)}, wait=False)
    apis = {"HUBSPOT_API_URL": saas, "GONG_API_URL": saas, "SLACK_API_URL": saas}
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=dev,service.namespace=sophia-ai",
    }
    servers = {
        name: session_processes.server(
            name,
            {
                **tracing,
                "OTEL_SERVICE_NAME": f"mcp-{name.replace('_', '-')}",
                "WEB_CONCURRENCY": "2" if name == "ai_memory" else "1",
                **({"MEMORY_URL": memory} if name == "ai_memory" else {**apis, **CREDENTIALS}),
            },
            wait=False,
        )
        for name in SERVERS
    }
    for url in (memory, saas):
        session_processes.wait(url)
    for server in servers.values():
        server.wait()
    return {"servers": servers, "saas_log": saas_log, "memory": memory}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object (fails on the first that is not one)."""
    lines = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        lines.append(value)
    return lines


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`, from Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def run_async(coroutine):
    """Run `coroutine` on a loop of its own. Unlike asyncio.run, this leaves the thread's
    current event loop alone, which the Pulumi runtime of later tests relies on."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
