"""A stack run here as the cluster would run it.

`render_stack` runs the real program of a stack under Pulumi's mocks and writes what
`sophia-infra render` writes, with local test secrets in place of the stack's (the offline plan
shows secrets as `[secret]`). `LocalStack` then starts what the rendered objects describe:

- Redis: `redis-server` with the rendered `redis.conf` and ACL file (from the rendered ConfigMap and Secret, at the paths the
  StatefulSet mounts it), on a local port, bound to loopback, its data in a temporary directory;
- each service Deployment whose build context is in this checkout: the command of its image (the
  final `CMD` of its Dockerfile, run in the build context) with exactly the environment of its
  container: plain values, Secret references resolved from the rendered Secrets, the downward API's
  `limits.cpu` rounded up; `<name>.<namespace>.svc:<port>` hosts mapped to the local port that
  stands for that Service's target, and PORT/METRICS_PORT to free local ports;
- the OpenTelemetry Collector's place: an OTLP/gRPC receiver (e2e/otlp.py);
- Snowflake's place: fakesnow's server, with SNOWFLAKE_HOST/PORT/PROTOCOL pointing at it (the one
  variable set the Deployment does not give: an external host mapped to a local emulator);
- with monitoring on, Prometheus (Debian's package) scraping what the rendered ServiceMonitors
  select, at 1 s instead of their 30 s so that the suite takes seconds.

Services without sources yet are not started; `skipped` says why.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from e2e.otlp import Receiver
from infrastructure import catalog
from infrastructure.catalog import ServiceSpec
from stacks import loader
from stacks.model import StackConfig
from stacks.quantities import parse_quantity

PROJECT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# An in-cluster Service address, as the rendered environment holds it.
SERVICE_HOST = re.compile(r"(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9-]+)\.svc(:(?P<port>\d+))?")
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass(frozen=True)
class TestSecrets:
    """Values for the stack's secrets, made for this run only."""

    redis_password: str
    snowflake_private_key: str
    snowflake_passphrase: str

    @classmethod
    def generate(cls) -> TestSecrets:
        passphrase = secrets.token_urlsafe(16)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
        # A quote and a backslash: the rendered redis.conf must carry any password intact.
        return cls(secrets.token_urlsafe(24) + '"\\', pem.decode(), passphrase)


def with_secrets(config: StackConfig, values: TestSecrets) -> StackConfig:
    updates: dict[str, Any] = {"redis": config.redis.model_copy(update={"password": SecretStr(values.redis_password)})}
    if config.snowflake.auth == "keypair":
        key = {
            "private_key": SecretStr(values.snowflake_private_key),
            "private_key_passphrase": SecretStr(values.snowflake_passphrase),
        }
    else:
        key = {"password": SecretStr(values.snowflake_passphrase)}
    updates["snowflake"] = config.snowflake.model_copy(update=key)
    return config.model_copy(update=updates)


@dataclass
class Rendered:
    """The objects of a rendered stack; Secrets with their (local test) values."""

    stack: str
    config: StackConfig
    specs: list[ServiceSpec]
    objects: list[dict[str, Any]]
    secrets: dict[str, dict[str, str]]
    directory: Path

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{kind} {name} is not in the rendered {self.stack}")
        return found[0]

    def container(self, deployment: str) -> dict[str, Any]:
        """The (one) container of a rendered Deployment."""
        container: dict[str, Any] = self.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
        return container

    def spec(self, name: str) -> ServiceSpec | None:
        return next((spec for spec in self.specs if spec.name == name), None)

    def workload_of(self, service: dict[str, Any]) -> dict[str, Any]:
        """The Deployment or StatefulSet whose pods a Service selects."""
        selector = service["spec"]["selector"].items()
        for workload in self.of_kind("Deployment") + self.of_kind("StatefulSet"):
            if selector <= workload["spec"]["template"]["metadata"]["labels"].items():
                return workload
        raise KeyError(f"no workload for Service {service['metadata']['name']}")

    def monitored_services(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(ServiceMonitor, the Service it selects) pairs."""
        pairs = []
        for monitor in self.of_kind("ServiceMonitor"):
            wanted = monitor["spec"]["selector"]["matchLabels"].items()
            pairs += [(monitor, svc) for svc in self.of_kind("Service") if wanted <= svc["metadata"]["labels"].items()]
        return pairs


def render_stack(stack: str, out: Path, values: TestSecrets) -> Rendered:
    """Render `stack` as `sophia-infra render` does (validated, written under `out`), with `values`
    as its secrets."""
    from sophia_infra import render  # the Pulumi SDKs: imported when a stack is rendered

    loaded = loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml")
    config = with_secrets(loaded.config, values)
    plan = render.plan(stack, loader.LoadedConfig(config, loaded.missing_secrets, loaded.notes))
    problems = render.validate(plan)
    if problems:
        raise AssertionError(f"{stack} does not render valid manifests: {problems}")
    directory = render.write(plan, out)
    secret_values = {
        r.inputs["metadata"]["name"]: r.plain_inputs.get("stringData", {})
        for r in plan.recording.resources
        if r.type == "kubernetes:core/v1:Secret"
    }
    return Rendered(stack, config, catalog.services(config), plan.manifests, secret_values, directory)


def dockerfile_command(dockerfile: Path, build_args: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The final stage's exec-form CMD and ENV (with ARG values substituted in ENV, as Docker does;
    Docker expands nothing in an exec-form CMD)."""
    args: dict[str, str] = {}
    env: dict[str, str] = {}
    command: list[str] = []
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            env, command = {}, []
        elif instruction == "ARG":
            name, _, default = rest.strip().partition("=")
            args[name] = build_args.get(name, default)
        elif instruction == "ENV":
            known = {**env, **args}
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = re.sub(r"\$\{?(\w+)\}?", lambda m, known=known: known.get(m.group(1), ""), value)
        elif instruction == "CMD":
            command = json.loads(rest)
    return command, env


@dataclass
class Process:
    """A process started here, its stdout kept (one line per log record) and its stderr in a file."""

    name: str
    popen: subprocess.Popen[str]
    stderr: Path
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, command: list[str], cwd: Path, env: dict[str, str], logs: Path) -> Process:
        stderr = logs / f"{name}.stderr"
        popen = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True, start_new_session=True
        )
        process = cls(name, popen, stderr)
        threading.Thread(target=lambda: process.lines.extend(popen.stdout or []), daemon=True).start()
        return process

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.alive():
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)  # its session: the workers too
            self.popen.wait(10)
            raise AssertionError(f"{self.name} did not stop within {timeout} s of {sig.name}") from None

    def output(self) -> str:
        return "".join(self.lines[-20:]) + self.stderr.read_text()[-3000:]


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    process: Process
    url: str
    metrics_url: str | None
    env: dict[str, str]


class LocalStack:
    """A rendered stack running here; see the module's docstring. Use as a context manager."""

    def __init__(self, rendered: Rendered, workdir: Path, values: TestSecrets) -> None:
        self.rendered = rendered
        self.workdir = workdir
        self.values = values
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.services: dict[str, ServiceProcess] = {}
        self.skipped: dict[str, str] = {}
        self.receiver = Receiver()
        self.redis: Process | None = None
        self.prometheus: Process | None = None
        self.prometheus_url: str | None = None
        self.fakesnow: Process | None = None
        self.fakesnow_port = 0
        # (workload, container port) -> the local port standing for it.
        self.listeners: dict[tuple[str, int], int] = {}
        for workload in rendered.of_kind("Deployment") + rendered.of_kind("StatefulSet"):
            for container in workload["spec"]["template"]["spec"]["containers"]:
                for port in container.get("ports", []):
                    self.listeners[(workload["metadata"]["name"], port["containerPort"])] = free_port()
        # (Service, port) -> local port, through the Service's selector and target port.
        self.addresses: dict[tuple[str, int], int] = {}
        for service in rendered.of_kind("Service"):
            workload = rendered.workload_of(service)
            for port in service["spec"]["ports"]:
                number = self.container_port(workload, port["targetPort"])
                local = self.listeners[(workload["metadata"]["name"], number)]
                self.addresses[(service["metadata"]["name"], port["port"])] = local

    # What a Service name and port mean here.

    @staticmethod
    def container_port(workload: dict[str, Any], target: int | str) -> int:
        if isinstance(target, int):
            return target
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for port in container.get("ports", []):
                if port.get("name") == target:
                    return port["containerPort"]
        raise KeyError(f"{workload['metadata']['name']} has no port named {target}")

    def localize(self, value: str) -> str:
        """`http://memory.sophia-dev.svc:8001` -> `http://127.0.0.1:<the local memory port>`."""

        def local(match: re.Match[str]) -> str:
            key = (match["name"], int(match["port"] or 80))
            if match["namespace"] != self.rendered.namespace or key not in self.addresses:
                raise AssertionError(f"{match[0]} is not a Service of {self.rendered.stack}")
            return f"{LOOPBACK}:{self.addresses[key]}"

        return SERVICE_HOST.sub(local, value)

    def container_env(self, workload: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet builds it (envFrom first, env overrides)."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.rendered.secrets[source["secretRef"]["name"]])
        for item in container.get("env", []):
            ref = item.get("valueFrom", {})
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in ref:
                env[item["name"]] = self.rendered.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
            elif "resourceFieldRef" in ref:
                field_ref = ref["resourceFieldRef"]
                bound, resource = field_ref["resource"].split(".")
                quantity = parse_quantity(container["resources"][bound][resource])
                env[item["name"]] = str(math.ceil(quantity / parse_quantity(field_ref.get("divisor", "1"))))
            else:
                raise AssertionError(f"{item['name']}: no local equivalent of {item}")
        name = workload["metadata"]["name"]
        ports = {str(p["containerPort"]): str(self.listeners[(name, p["containerPort"])]) for p in container.get("ports", [])}
        for key, value in env.items():
            env[key] = ports[value] if key.endswith("PORT") and value in ports else self.localize(value)
        return env

    # Starting and stopping.

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        collector = ("otel-collector", 4317)
        if collector in self.addresses:
            self.receiver.start(self.addresses[collector])
        self.fakesnow, self.fakesnow_port = self.start_fakesnow()
        self.redis = self.start_redis()
        for deployment in self.rendered.of_kind("Deployment"):
            spec = self.rendered.spec(deployment["metadata"]["name"])
            if spec is not None:
                self.start_service(spec, deployment)
        for service in self.services.values():
            self.wait_serving(service)
        self.start_prometheus()

    def start_fakesnow(self) -> tuple[Process, int]:
        """fakesnow's server (the Snowflake REST API the connector speaks, over HTTP), in a process."""
        port = free_port()
        command = [sys.executable, "-m", "fakesnow", "--server", "--port", str(port)]
        return self.start_listening("fakesnow", command, port, 30), port

    def start_listening(self, name: str, command: list[str], port: int, timeout: float) -> Process:
        """Start `command` and wait until it accepts connections on `port` (failing if it exits)."""
        process = Process.start(name, command, self.workdir, dict(os.environ), self.logs)

        def listening() -> bool:
            if not process.alive():
                raise AssertionError(f"{name} exited: {process.output()}")
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, port)) == 0

        wait_until(listening, timeout, name)
        return process

    def redis_command(self) -> tuple[list[str], int]:
        """The StatefulSet's command, its volumes as local directories (Secret volumes hold the
        rendered files), paths to them in its arguments and files relocated as a runtime would."""
        statefulset = self.rendered.get("StatefulSet", "redis")
        pod = statefulset["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: self.workdir / "redis" / m["name"] for m in container["volumeMounts"]}

        # One pass over every mount path (longest first), so a replaced path is not replaced again.
        alternatives = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
        mount_path = re.compile(rf"(?<![\w/])({alternatives})(?=/|\s|$)", re.MULTILINE)

        def relocate(text: str) -> str:
            return mount_path.sub(lambda match: str(mounts[match[1]]), text)

        for mount in container["volumeMounts"]:
            local = mounts[mount["mountPath"]]
            local.mkdir(parents=True, exist_ok=True)
            volume = volumes[mount["name"]]
            if "secret" in volume:
                source, values = volume["secret"], self.rendered.secrets[volume["secret"]["secretName"]]
            elif "configMap" in volume:
                source, values = volume["configMap"], self.rendered.get("ConfigMap", volume["configMap"]["name"])["data"]
            else:
                continue
            for item in source.get("items", [{"key": k, "path": k} for k in values]):
                content = values[item["key"]]
                (local / item["path"]).write_text(relocate(content) if item["path"].endswith(".conf") else content)
        command = [relocate(arg) for arg in container["command"]]
        binary = shutil.which(command[0])
        if binary is None:
            raise AssertionError("redis-server is not installed (make e2e installs it)")
        port = self.listeners[("redis", self.container_port(statefulset, "redis"))]
        # Local overrides after the rendered file (the last `port` and `bind` win): a free port, loopback.
        return [binary, *command[1:], "--port", str(port), "--bind", LOOPBACK], port

    def start_redis(self) -> Process:
        command, port = self.redis_command()
        return self.start_listening("redis", command, port, 10)

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def restart_redis(self) -> None:
        self.redis = self.start_redis()

    def local_command(self, spec: ServiceSpec) -> tuple[list[str], dict[str, str]] | str:
        """How to run `spec` here (its image's command in its build context), or why it cannot be."""
        dockerfile = PROJECT / spec.context / spec.dockerfile
        if not dockerfile.is_file():
            return f"{spec.name}: no sources in this checkout yet ({spec.context}/{spec.dockerfile})"
        command, image_env = dockerfile_command(dockerfile, spec.build_args)
        if not command:
            return f"{spec.name}: {spec.context}/{spec.dockerfile} has no exec-form CMD to run"
        if command[0] in ("python", "python3"):
            command = [sys.executable, *command[1:]]
        elif shutil.which(command[0]) is None:
            return f"{spec.name}: its image runs {command[0]}, which is not installed here"
        return command, image_env

    def start_service(self, spec: ServiceSpec, deployment: dict[str, Any]) -> None:
        how = self.local_command(spec)
        if isinstance(how, str):
            self.skipped[spec.name] = how
            return
        command, image_env = how
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = self.container_env(deployment, container)
        if "SNOWFLAKE_ACCOUNT" in env:
            env |= {"SNOWFLAKE_HOST": LOOPBACK, "SNOWFLAKE_PORT": str(self.fakesnow_port), "SNOWFLAKE_PROTOCOL": "http"}
        # The image's environment, then the container's; PATH etc. so the local interpreter runs.
        process_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        process_env |= image_env | env
        process = Process.start(spec.name, command, PROJECT / spec.context, process_env, self.logs)
        ports = {p.get("name"): self.listeners[(spec.name, p["containerPort"])] for p in container["ports"]}
        self.services[spec.name] = ServiceProcess(
            spec,
            process,
            f"http://{LOOPBACK}:{ports['http']}",
            f"http://{LOOPBACK}:{ports['metrics']}/metrics" if "metrics" in ports else None,
            env,
        )

    def wait_serving(self, service: ServiceProcess) -> None:
        def answers() -> bool:
            if not service.process.alive():
                raise AssertionError(f"{service.spec.name} exited: {service.process.output()}")
            try:
                return httpx.get(f"{service.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, START_TIMEOUT, f"{service.spec.name} to answer")

    def prometheus_config(self) -> dict[str, Any]:
        """Scrape configuration from the rendered ServiceMonitors, for the services running here."""
        jobs = []
        for monitor, service in self.rendered.monitored_services():
            name = service["metadata"]["name"]
            if name not in self.services:
                continue
            for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
                port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
                jobs.append(
                    {
                        # The job name the Prometheus operator gives a ServiceMonitor endpoint.
                        "job_name": f"serviceMonitor/{self.rendered.namespace}/{monitor['metadata']['name']}/{index}",
                        "metrics_path": endpoint.get("path", "/metrics"),
                        "scheme": endpoint.get("scheme", "http"),
                        "scrape_interval": "1s",
                        "static_configs": [
                            {
                                "targets": [f"{LOOPBACK}:{self.addresses[(name, port['port'])]}"],
                                "labels": {"namespace": self.rendered.namespace, "service": name},
                            }
                        ],
                    }
                )
        return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}

    def start_prometheus(self) -> None:
        config = self.prometheus_config()
        if not config["scrape_configs"]:
            return
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is not installed (make e2e installs Debian's package)")
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        command = [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ]
        self.prometheus = Process.start("prometheus", command, self.workdir, dict(os.environ), self.logs)
        self.prometheus_url = f"http://{LOOPBACK}:{port}"

        def ready() -> bool:
            if not self.prometheus or not self.prometheus.alive():
                raise AssertionError(f"prometheus exited: {self.prometheus.output() if self.prometheus else ''}")
            try:
                return httpx.get(f"{self.prometheus_url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "prometheus")

    def stop(self) -> dict[str, int]:
        """Stop everything; the services with SIGTERM, as the kubelet does. Returns their exit codes."""
        codes = {}
        for name, service in self.services.items():
            codes[name] = service.process.stop(signal.SIGTERM)
        for process in (self.prometheus, self.redis, self.fakesnow):
            if process is not None and process.alive():
                process.stop()
        self.receiver.stop()
        return codes
