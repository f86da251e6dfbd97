"""Runs the Pulumi program under Pulumi's mock runtime and records every resource it registers:
type, name, parent, dependencies, options and inputs (secrets kept as secrets)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from stacks.loader import SECRET_PLACEHOLDER as SECRET

# What k3s-pulumi-token.sh prints: the Pulumi ServiceAccount's token Secret (base64 data).
SAMPLE_TOKEN_SECRET = json.dumps(
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "sophia-pulumi-token", "namespace": "kube-system"},
        "data": {
            "ca.crt": base64.b64encode(b"sample-ca").decode(),
            "namespace": base64.b64encode(b"kube-system").decode(),
            "token": base64.b64encode(b"sample-service-account-token").decode(),
        },
    }
)
# The first field of the server's agent-token file: K10 and the SHA-256 of its CA.
SAMPLE_CA_HASH = "K10" + "c0ffee" * 10 + "c0ff"
SAMPLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    certificate-authority-data: c2FtcGxlLWNh
    server: https://127.0.0.1:6443
contexts:
- name: default
  context: {cluster: default, user: default}
current-context: default
users:
- name: default
  user:
    client-certificate-data: c2FtcGxlLWNlcnQ=
    client-key-data: c2FtcGxlLWtleQ==
"""


@dataclass
class Recorded:
    type: str
    name: str
    urn: str
    parent: str | None
    dependencies: list[str]
    options: dict[str, Any]
    # Inputs as the engine receives them; secret values are still wrapped (see `plain`/`scrubbed`).
    raw_inputs: dict[str, Any] = field(repr=False)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs with every secret replaced by `[secret]`."""
        return scrub(self.raw_inputs)

    @property
    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets revealed (tests only: to prove where a secret went)."""
        return reveal(self.raw_inputs)

    def secret_paths(self) -> list[str]:
        """Dotted paths of the inputs that are marked secret."""
        return _secret_paths(self.raw_inputs, "")


def _walk(value: Any, on_secret: Callable[[Any], Any], on_leaf: Callable[[Any], Any]) -> Any:
    if rpc.is_rpc_secret(value):
        return on_secret(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _walk(v, on_secret, on_leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_secret, on_leaf) for v in value]
    return on_leaf(value)


def _number(value: Any) -> Any:
    """The engine's wire format has only doubles: show whole numbers as integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _hide(value: Any) -> Any:
    return _walk(value, _hide, lambda _: SECRET)


def scrub(value: Any) -> Any:
    """Replace every secret value by `[secret]`, keeping the keys of a secret mapping so that a
    scrubbed Kubernetes Secret is still a well-formed object."""
    return _walk(value, _hide, _number)


def reveal(value: Any) -> Any:
    return _walk(value, reveal, _number)


def _secret_paths(value: Any, path: str) -> list[str]:
    if rpc.is_rpc_secret(value):
        return [path or "."]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]
    return []


class RecordingMocks(pulumi_mocks.Mocks):
    """Answers like the providers would, with realistic outputs for what the program reads back."""

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        outputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            outputs["outputs"] = {"kubeconfig": rpc.wrap_rpc_secret(SAMPLE_KUBECONFIG)}
            outputs["secretOutputNames"] = ["kubeconfig"]
        elif args.typ == "random:index/randomPassword:RandomPassword":
            # Distinct per resource (two generated tokens must differ), letters and digits only.
            digest = hashlib.sha256(args.name.encode()).hexdigest() * 4
            outputs["result"] = rpc.wrap_rpc_secret(digest[: int(args.inputs.get("length", 32))])
        elif args.typ == "command:remote:Command":
            if args.name.endswith("-kubeconfig"):
                outputs["stdout"] = rpc.wrap_rpc_secret(SAMPLE_TOKEN_SECRET)
            else:
                outputs["stdout"] = SAMPLE_CA_HASH if args.name.endswith("-ca-hash") else ""
            outputs["stderr"] = ""
        elif args.typ == "docker:index/image:Image":
            outputs["repoDigest"] = f"{args.inputs.get('imageName', 'image')}@sha256:{'0' * 64}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, None


def _timeouts(timeouts: Any) -> dict[str, str]:
    """The resource's customTimeouts that are set (create, update, delete)."""
    return {op: getattr(timeouts, op) for op in ("create", "update", "delete") if timeouts is not None and getattr(timeouts, op)}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps what the engine would see: parent, dependencies, options."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.recorded: list[Recorded] = []
        self.stack_outputs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        self._record(request, response.urn, rpc.deserialize_properties(request.object, keep_unknowns=True))
        return response

    def _record(self, request, urn: str, inputs: dict[str, Any]) -> None:
        options = {
            "protect": getattr(request, "protect", False),
            "retainOnDelete": getattr(request, "retainOnDelete", False),
            "deleteBeforeReplace": getattr(request, "deleteBeforeReplace", False),
            "ignoreChanges": list(getattr(request, "ignoreChanges", [])),
            "replaceOnChanges": list(getattr(request, "replaceOnChanges", [])),
            "additionalSecretOutputs": list(getattr(request, "additionalSecretOutputs", [])),
            "customTimeouts": _timeouts(getattr(request, "customTimeouts", None)),
            "provider": request.provider.split("::")[3] if request.provider else None,
        }
        dependencies = set(request.dependencies)
        for deps in getattr(request, "propertyDependencies", {}).values():
            dependencies.update(deps.urns)
        record = Recorded(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent or None,
            dependencies=sorted(dependencies),
            options=options,
            raw_inputs=inputs,
        )
        with self._lock:
            self.recorded.append(record)

    def ReadResource(self, request):  # noqa: N802 - the gRPC method name
        # Stack references are read, not registered.
        response = super().ReadResource(request)
        self._record(request, response.urn, rpc.deserialize_properties(request.properties, keep_unknowns=True))
        return response

    def RegisterResourceOutputs(self, request):  # noqa: N802 - the gRPC method name
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.stack_outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return super().RegisterResourceOutputs(request)


@dataclass
class Recording:
    resources: list[Recorded]
    # Stack outputs (`pulumi.export`), secrets still wrapped.
    raw_outputs: dict[str, Any]

    @property
    def outputs(self) -> dict[str, Any]:
        return scrub(self.raw_outputs)


def run(program: Callable[[], None], *, stack: str, project: str = "sophia-ai") -> Recording:
    """Run `program` once under fresh mocks and record every resource it registers.

    Parent and dependency URNs are turned into resource names, which the program keeps unique.
    """
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    # As the real entry point does, run the program inside a Stack that collects its exports
    # (replacing the one set_mocks made, which is already finished).
    settings.set_root_resource(None)  # type: ignore[arg-type]
    _sync_await(run_in_stack(program))
    names = {record.urn: record.name for record in monitor.recorded}
    for record in monitor.recorded:
        record.parent = names.get(record.parent) if record.parent else None
        record.dependencies = sorted({names[urn] for urn in record.dependencies if urn in names})
    return Recording(sorted(monitor.recorded, key=lambda r: (r.type, r.name)), monitor.stack_outputs)
