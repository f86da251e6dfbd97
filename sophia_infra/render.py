"""The offline plan of a stack: its Kubernetes manifests and the objects of its Helm releases
(rendered from the vendored charts with the values the program passes), every one validated
against the cluster's Kubernetes schema or the CRD that defines it, every resource with its inputs
and dependencies, and the resource graph."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pulumi
import yaml

from infrastructure import program
from sophia_infra import charts, offline
from sophia_infra.crds import CrdIndex
from stacks.compat import VENDORED_CHARTS
from stacks.loader import LoadedConfig
from stacks.model import StackConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# kubernetes-validate reads and parses its schema files (the definitions file alone is megabytes)
# on every call; a plan validates hundreds of objects against the same few files.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)
# Kubernetes resources that are not objects of their own (providers, Helm releases).
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
    # The Helm releases, rendered; problems that kept one from rendering at all.
    releases: list[charts.RenderedRelease] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def resources(self) -> list[dict[str, Any]]:
        return [
            {
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "dependencies": r.dependencies,
                "options": {k: v for k, v in r.options.items() if v},
                "inputs": _portable(r.type, r.inputs),
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
    """Run the real program of `stack` under mocks, collect its objects and render its releases."""
    recording = offline.run(lambda: program.build(loaded.config), stack=stack)
    manifests = [manifest(r.inputs) for r in recording.resources if is_manifest(r.type)]
    result = Plan(stack, recording, manifests, kubernetes_version(loaded.config))
    try:
        result.releases = charts.render_releases([r.inputs for r in recording.resources if r.type == charts.RELEASE_TYPE])
    except charts.ChartError as exc:
        result.problems.append(str(exc))
    return result


def manifest(inputs: dict[str, Any]) -> dict[str, Any]:
    """The object as it would be applied (apiVersion, kind, metadata, spec... in key order)."""
    return dict(sorted(inputs.items()))


@functools.cache
def vendored_crds() -> CrdIndex:
    """The CRDs of every vendored chart: the custom resources of attached stacks live on a cluster
    that the production stack set up with them."""
    found = []
    for chart in VENDORED_CHARTS:
        path = charts.CHARTS_DIR / chart.name
        found += charts.crds_of(path, charts.chart_defaults(path))
    return CrdIndex.of(found)


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


def object_problems(obj: dict[str, Any], version: str, crds: CrdIndex) -> list[str]:
    """A built-in object against the Kubernetes schema of `version` (strict), a custom resource
    against the CRD in `crds` that defines it."""
    where = _where(obj)
    if not (obj.get("metadata") or {}).get("name"):
        return [f"{where}: metadata.name: is required"]
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        api_version = str(obj.get("apiVersion", ""))
        if crds.defines(api_version, str(obj.get("kind"))):
            return [f"{where}: {problem}" for problem in crds.problems(obj)]
        if "." not in api_version.split("/")[0]:
            return [f"{where}: apiVersion {api_version}: not a Kubernetes {version} API"]
        return [f"{where}: apiVersion {api_version}: no CustomResourceDefinition for {obj.get('kind')} here"]
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(object)"
        return [f"{where}: {path}: {exc.message}"]
    return []


def validate(plan_: Plan) -> list[str]:
    """Problems of the plan: its manifests, then each release's values and objects."""
    problems = list(plan_.problems)
    for obj in plan_.manifests:
        problems += object_problems(obj, plan_.kubernetes_version, vendored_crds())
    for release in plan_.releases:
        crds = CrdIndex.of(release.crds)
        lines = list(release.problems)
        for obj in release.objects:
            lines += object_problems(obj, plan_.kubernetes_version, crds)
        problems += [f"release {release.name}: {line}" for line in lines]
    return problems


def file_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    parts = [obj["kind"].lower(), meta.get("namespace", "cluster"), meta["name"]]
    return "-".join(re.sub(r"[^a-z0-9.-]+", "-", part.lower()) for part in parts) + ".yaml"


def _object_label(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def mermaid(plan_: Plan) -> str:
    """The resource graph: components as subgraphs, edges from a dependency to its dependents; a
    Helm release is a subgraph of the objects its chart renders."""
    resources = plan_.recording.resources
    ids = {r.name: f"r{i}" for i, r in enumerate(resources)}
    children: dict[str | None, list[offline.Recorded]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r)
    rendered = {release.name: release for release in plan_.releases}
    lines = ["graph LR"]

    def emit(r: offline.Recorded, indent: str) -> None:
        label = f"{r.name}<br/><small>{r.type}</small>"
        release = rendered.get(str(r.inputs.get("name"))) if r.type == charts.RELEASE_TYPE else None
        if r.name in children or release is not None:
            lines.append(f'{indent}subgraph {ids[r.name]}["{label}"]')
            for child in children.get(r.name, []):
                emit(child, indent + "  ")
            for j, obj in enumerate((release.crds + release.objects) if release else []):
                lines.append(f'{indent}  {ids[r.name]}o{j}["{_object_label(obj)}"]')
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


def _relative(path: str) -> str:
    """A path under the project, relative to it (a plan reads the same on every checkout)."""
    candidate = Path(path)
    return str(candidate.relative_to(PROJECT_ROOT)) if candidate.is_relative_to(PROJECT_ROOT) else path


def _portable(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    if resource_type == charts.RELEASE_TYPE and isinstance(inputs.get("chart"), str):
        return {**inputs, "chart": _relative(inputs["chart"])}
    return inputs


def _asset(value: Any) -> Any:
    """Assets (the scripts uploaded to hosts) by their path in the project."""
    if isinstance(value, pulumi.FileAsset):
        return {"fileAsset": _relative(str(value.path))}
    if isinstance(value, pulumi.StringAsset):
        return {"stringAsset": value.text}
    raise TypeError(f"cannot write {type(value).__name__} to resources.json")


# libyaml's emitter when available: a plan writes megabytes of CRDs.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _write_objects(directory: Path, objects: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        (directory / file_name(obj)).write_text(yaml.dump(obj, Dumper=_Dumper, sort_keys=True), encoding="utf-8")


def write(plan_: Plan, out: Path) -> Path:
    """Write manifests/ (a release's objects in manifests/<release>/, its CRDs' files in .../crds/),
    resources.json and graph.mmd under `out/<stack>/`."""
    root = out / plan_.stack
    manifests = root / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for old in sorted(manifests.rglob("*.yaml"), reverse=True):
        old.unlink()
    _write_objects(manifests, plan_.manifests)
    for release in plan_.releases:
        _write_objects(manifests / release.name, release.objects)
        # The CRDs as the chart ships them, file by file (they are megabytes: no round trip).
        crds = manifests / release.name / "crds"
        crds.mkdir(parents=True, exist_ok=True)
        for source in release.crd_files:
            target = crds / f"{source.parent.parent.name}-{source.name}"
            target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    text = json.dumps(plan_.resources(), indent=2, default=_asset)
    (root / "resources.json").write_text(text + "\n", encoding="utf-8")
    (root / "graph.mmd").write_text(mermaid(plan_), encoding="utf-8")
    return root
