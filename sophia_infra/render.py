"""The offline plan of a stack: its Kubernetes manifests (validated against the cluster's
Kubernetes schema), every resource with its inputs and dependencies, and the resource graph."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pulumi
import yaml

from infrastructure import program
from sophia_infra import offline
from stacks.loader import LoadedConfig
from stacks.model import StackConfig

# Kubernetes resources that are not objects of their own (providers, Helm releases).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# kubernetes-validate reads and parses its schema files (the definitions file alone is megabytes)
# on every call; a plan validates dozens of objects against the same few files.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)
_NOT_MANIFESTS = re.compile(r"^(pulumi:providers:|kubernetes:helm\.sh/|kubernetes:yaml)")


class ManifestError(Exception):
    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass
class Plan:
    stack: str
    recording: offline.Recording
    manifests: list[dict[str, Any]]
    kubernetes_version: str

    def resources(self) -> list[dict[str, Any]]:
        return [
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "dependencies": r.dependencies,
                "options": {k: v for k, v in r.options.items() if v},
                "inputs": r.inputs,
            }
            for r in self.recording.resources
        ]


def kubernetes_version(config: StackConfig) -> str:
    """The version of the stack's cluster: k3s's when this stack installs it."""
    if config.cluster_mode == "provision":
        return config.k3s.version.lstrip("v").split("+")[0]
    return config.kubernetes_version


def is_manifest(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:") and not _NOT_MANIFESTS.match(resource_type)


def plan(stack: str, loaded: LoadedConfig) -> Plan:
    """Run the real program of `stack` under mocks and collect its objects."""
    recording = offline.run(lambda: program.build(loaded.config), stack=stack)
    manifests = [manifest(r.inputs) for r in recording.resources if is_manifest(r.type)]
    return Plan(stack, recording, manifests, kubernetes_version(loaded.config))


def manifest(inputs: dict[str, Any]) -> dict[str, Any]:
    """The object as it would be applied (apiVersion, kind, metadata, spec... in key order)."""
    return dict(sorted(inputs.items()))


def validate(plan_: Plan) -> list[str]:
    """Problems of the manifests against the Kubernetes schema (strict); custom resources, which
    that schema does not know, are checked for apiVersion, kind and metadata only."""
    problems = []
    for obj in plan_.manifests:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('namespace', '-')}/{obj.get('metadata', {}).get('name')}"
        if not obj.get("metadata", {}).get("name"):
            problems.append(f"{where}: metadata.name: is required")
            continue
        try:
            kubernetes_validate.validate(obj, plan_.kubernetes_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if "." not in obj["apiVersion"].split("/")[0]:
                problems.append(f"{where}: apiVersion {obj['apiVersion']}: not a Kubernetes {plan_.kubernetes_version} API")
        except kubernetes_validate.ValidationError as exc:
            field = ".".join(str(p) for p in exc.path) or "(object)"
            problems.append(f"{where}: {field}: {exc.message}")
    return problems


def file_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    parts = [obj["kind"].lower(), meta.get("namespace", "cluster"), meta["name"]]
    return "-".join(re.sub(r"[^a-z0-9.-]+", "-", part.lower()) for part in parts) + ".yaml"


def mermaid(plan_: Plan) -> str:
    """The resource graph: components as subgraphs, edges from a dependency to its dependents."""
    resources = plan_.recording.resources
    ids = {r.name: f"r{i}" for i, r in enumerate(resources)}
    children: dict[str | None, list[offline.Recorded]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    lines = ["graph LR"]

    def emit(r: offline.Recorded, indent: str) -> None:
        label = f"{r.name}<br/><small>{r.type}</small>"
        if r.name in children:
            lines.append(f'{indent}subgraph {ids[r.name]}["{label}"]')
            for child in children[r.name]:
                emit(child, indent + "  ")
            lines.append(f"{indent}end")
        else:
            lines.append(f'{indent}{ids[r.name]}["{label}"]')

    for r in children.get(None, []):
        emit(r, "  ")
    for r in resources:
        for dep in r.dependencies:
            if dep != r.parent and dep in ids:
                lines.append(f"  {ids[dep]} --> {ids[r.name]}")
    return "\n".join(lines) + "\n"


def _asset(value: Any) -> Any:
    """Assets (the scripts uploaded to hosts) by their path in the project."""
    if isinstance(value, pulumi.FileAsset):
        path = Path(str(value.path))
        return {"fileAsset": str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)}
    if isinstance(value, pulumi.StringAsset):
        return {"stringAsset": value.text}
    raise TypeError(f"cannot write {type(value).__name__} to resources.json")


def write(plan_: Plan, out: Path) -> Path:
    """Write manifests/, resources.json and graph.mmd under `out/<stack>/`."""
    root = out / plan_.stack
    manifests = root / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for old in manifests.glob("*.yaml"):
        old.unlink()
    for obj in plan_.manifests:
        (manifests / file_name(obj)).write_text(yaml.safe_dump(obj, sort_keys=True), encoding="utf-8")
    text = json.dumps(plan_.resources(), indent=2, default=_asset)
    (root / "resources.json").write_text(text + "\n", encoding="utf-8")
    (root / "graph.mmd").write_text(mermaid(plan_), encoding="utf-8")
    return root
