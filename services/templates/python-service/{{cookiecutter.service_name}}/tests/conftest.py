{%- set redis = cookiecutter.uses_redis == "yes" -%}
{%- set snowflake = cookiecutter.uses_snowflake == "yes" -%}
{%- set callees = cookiecutter.calls.replace(" ", "").split(",") | select | list -%}
{%- set mcp = cookiecutter.calls_mcp_servers == "yes" -%}
"""Fixtures: the app in-process (`make_client`), the service as its container runs it (`serve`:
`python -m app` in a subprocess, environment as the Deployment sets it), an OTLP receiver (`otlp`),
and what the service depends on: {% if redis %}a real Redis server, {% endif %}{% if callees or mcp %}stand-ins for the services it calls, {% endif %}
{%- if snowflake %}a Snowflake emulator (fakesnow), {% endif %}`ready_environment`."""

from __future__ import annotations

import json
import os
{%- if redis %}
import shutil
{%- endif %}
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
{%- if callees or mcp %}
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
{%- endif %}
from pathlib import Path
{%- if callees or mcp %}
from urllib.parse import unquote
{%- endif %}

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SERVICE_DIR = Path(__file__).resolve().parent.parent
# Variables of the platform contract: the tests set them; none leaks in from the runner's environment.
CONTRACT = (
    "PORT",
    "METRICS_PORT",
    "WEB_CONCURRENCY",
    "SOPHIA_",
    "OTEL_",
    "REDIS_",
    "SNOWFLAKE_",
    "PROMETHEUS_MULTIPROC_DIR",
    "MEMORY_URL",
    "MCP_SERVER_URLS",
)
{%- if redis %}
REDIS_PASSWORD = "test-password"
{%- endif %}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_environment(**env: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(CONTRACT)} | env


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(autouse=True)
def contract_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(CONTRACT):
            monkeypatch.delenv(key)


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**env)`: a started TestClient of the app, its settings read from `env`."""
    from app.main import create_app
    from app.settings import Settings

    clients: list[TestClient] = []

    def make(**env: str) -> TestClient:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        client = TestClient(create_app(Settings()))
        client.__enter__()  # runs the lifespan: the dependencies' clients open
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    resource: dict[str, str]
    attributes: dict[str, str]


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, in the collector's place: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - the gRPC method name
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            Span(
                                service=resource.get("service.name", ""),
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                resource=resource,
                                attributes={a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes},
                            )
                        )
        return trace_service_pb2.ExportTraceServiceResponse()

    def received(self, predicate: Callable[[Span], bool], timeout: float = 20.0) -> list[Span]:
        """The spans matching `predicate`, once there is one (the SDK exports in batches, every 5 s)."""

        def matching() -> list[Span]:
            with self._lock:
                return [span for span in self.spans if predicate(span)]

        return wait_until(matching, timeout, "a matching span")  # type: ignore[return-value]


@pytest.fixture
def otlp() -> Iterator[tuple[str, Receiver]]:
    """(endpoint for OTEL_EXPORTER_OTLP_ENDPOINT, the receiver)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    receiver = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", receiver
    server.stop(0)


@dataclass
class Running:
    """The service as its container runs it."""

    process: subprocess.Popen[str]
    url: str
    metrics_url: str | None
    lines: list[str] = field(default_factory=list)

    def logs(self) -> list[dict[str, object]]:
        """Every stdout line, parsed: each must be one JSON object."""
        return [json.loads(line) for line in list(self.lines)]

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def stop(self, timeout: float = 40.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """`serve(**env)`: start `python -m app` with `env` (PORT chosen here) and wait until it answers."""
    started: list[Running] = []

    def start(**env: str) -> Running:
        port = free_port()
        environment = base_environment(PORT=str(port), **env)
        stderr = (tmp_path / f"stderr-{port}.txt").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=SERVICE_DIR,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own process group: the workers go with it if it has to be killed
        )
        metrics = environment.get("METRICS_PORT")
        running = Running(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics}/metrics" if metrics else None)
        threading.Thread(target=lambda: running.lines.extend(process.stdout or []), daemon=True).start()
        started.append(running)

        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the service exited with {process.returncode}: {(tmp_path / f'stderr-{port}.txt').read_text()}")
            try:
                # Long enough never to give up on a request a booting worker will still answer: a
                # stray /health answered later would count in a test's metrics.
                return httpx.get(f"{running.url}/health", timeout=10).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 30, "the service to answer /health")
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(running.process.pid, signal.SIGKILL)
                running.process.wait(10)
{%- if redis %}


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[bytes]


def start_redis(workdir: Path) -> RedisServer:
    """A real redis-server on a free loopback port, with a password."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", REDIS_PASSWORD, "--save", "", "--dir", str(workdir)]
    process = subprocess.Popen([binary, *options], stdout=subprocess.DEVNULL)

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 10, "redis-server to listen")
    return RedisServer(f"redis://127.0.0.1:{port}/0", process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis shared by the session's tests; yields its URL."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test only (to stop or pause)."""
    server = start_redis(tmp_path)
    yield server
    server.process.send_signal(signal.SIGCONT)
    server.process.terminate()
    server.process.wait(10)
{%- endif %}
{%- if callees or mcp %}


class StandIn:
    """A stand-in for another Sophia service: its probes (ready or not) and an in-memory L1 API
    with the memory service's shapes."""

    def __init__(self) -> None:
        self.ready = True
        self.entries: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _answer(self, status: int, body: object = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                stand_in.requests.append((method, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                key = unquote(self.path.removeprefix("/l1/"))
                if self.path == "/health":
                    self._answer(200, {"status": "healthy"})
                elif self.path == "/ready":
                    self._answer(200 if stand_in.ready else 503, {})
                elif self.path.startswith("/l1/") and method == "PUT":
                    stand_in.entries[key] = body["value"]
                    self._answer(204)
                elif self.path.startswith("/l1/") and method == "GET":
                    value = stand_in.entries.get(key)
                    if value is None:
                        self._answer(404, {"detail": "no entry"})
                    else:
                        self._answer(200, {"key": key, "value": value})
                elif self.path.startswith("/l1/") and method == "DELETE":
                    stand_in.entries.pop(key, None)
                    self._answer(204)
                else:
                    self._answer(404, {"detail": "not found"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def stand_in() -> Iterator[Callable[[], StandIn]]:
    made: list[StandIn] = []

    def make() -> StandIn:
        made.append(StandIn())
        return made[-1]

    yield make
    for server in made:
        server.server.shutdown()
        server.server.server_close()
{%- endif %}
{%- if snowflake %}


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[dict[str, object]]:
    """A Snowflake emulator over HTTP (fakesnow): the real connector logs in and queries it."""
    import fakesnow

    with fakesnow.server() as connection:
        yield connection
{%- endif %}


@pytest.fixture
def ready_environment(
{%- if redis %}redis_server: str{% endif %}{% if redis and (callees or mcp) %}, {% endif %}{% if callees or mcp %}stand_in: Callable[[], StandIn]{% endif -%}
) -> dict[str, str]:
    """The environment under which every dependency the service needs answers."""
    env: dict[str, str] = {}
{%- if redis %}
    env |= {"REDIS_URL": redis_server, "REDIS_PASSWORD": REDIS_PASSWORD}
{%- endif %}
{%- for callee in callees %}
    env["{{ callee | upper | replace("-", "_") }}_URL"] = stand_in().url
{%- endfor %}
{%- if mcp %}
    env["MCP_SERVER_URLS"] = json.dumps({"ai_memory": stand_in().url})
{%- endif %}
    return env
