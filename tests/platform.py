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
from pathlib import Path
from typing import Any

import httpx
import pytest

PROJECT = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class Processes:
    """Every process a test starts, stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []

    def start(
        self, name: str, command: list[str], env: Mapping[str, str], health: str | None = None, cwd: Path = PROJECT
    ) -> Process:
        process = Process(name, command, env, self.workdir, cwd)
        self.started.append(process)
        if health is not None:
            process.wait_for(health)
        return process

    def standin(self, kind: str, env: Mapping[str, str]) -> str:
        """Start a stand-in of tests/platform_standins.py; its base URL."""
        port = free_port()
        self.start(
            f"standin-{kind}-{port}",
            [sys.executable, "-m", "tests.platform_standins", kind],
            {**env, "PORT": str(port)},
            health=f"http://127.0.0.1:{port}/health",
        )
        return f"http://127.0.0.1:{port}"

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


@pytest.fixture(scope="module")
def module_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
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


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.server.stop(grace=None)


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
