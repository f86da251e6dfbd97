"""The Helm releases of a plan, rendered offline with exactly the values the program passes: their
objects, the CRDs the charts install, and what is wrong with the values.

Rendering runs helm-python-sdk in its own virtualenv (`sophia_infra/helm_worker.py`). Neither
chart ships a values.schema.json, so Helm renders a misspelled key silently (it is simply never
read): every key the program sets is checked against the chart's values.yaml, with its type.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.charts import CHARTS_DIR

__all__ = [
    "CHARTS_DIR",
    "ChartError",
    "RenderedRelease",
    "chart_defaults",
    "crd_files",
    "crds_of",
    "render_releases",
    "value_problems",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HELM_VENV = PROJECT_ROOT / ".venv-helm"
WORKER = Path(__file__).with_name("helm_worker.py")
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


class ChartError(Exception):
    pass


@dataclass
class RenderedRelease:
    name: str
    namespace: str
    chart: Path
    values: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)
    # The CRDs Helm installs with it: crds/ of the chart and of its enabled subcharts (shared,
    # read-only), and the files they come from.
    crds: list[dict[str, Any]] = field(default_factory=list)
    crd_files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def helm_python() -> Path:
    """The interpreter of the virtualenv that holds helm-python-sdk."""
    configured = os.environ.get("SOPHIA_HELM_PYTHON")
    path = Path(configured) if configured else HELM_VENV / "bin" / "python"
    if not path.exists():
        raise ChartError(f"{path}: no helm-python-sdk virtualenv; `make .venv-helm/.installed` makes it (make plan does)")
    return path


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}
    return override


def _dependencies(chart: Path) -> list[dict[str, Any]]:
    return (_load_yaml(chart / "Chart.yaml") or {}).get("dependencies") or []


def chart_defaults(chart: Path) -> dict[str, Any]:
    """The chart's default values: its values.yaml over each subchart's, under the subchart's name."""
    defaults: dict[str, Any] = {}
    for dependency in _dependencies(chart):
        sub = chart / "charts" / dependency["name"]
        if (sub / "values.yaml").is_file():
            defaults[dependency.get("alias") or dependency["name"]] = chart_defaults(sub)
    return _merge(defaults, _load_yaml(chart / "values.yaml") or {})


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    kinds: dict[type, str] = {str: "a string", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)


def value_problems(values: dict[str, Any], defaults: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Keys of `values` the chart's values.yaml does not have, and values of another type than its
    default. A key under an empty mapping or a null default is free-form (labels, annotations...)."""
    problems = []
    for key, value in values.items():
        where = ".".join((*path, key))
        if not defaults or (key == "global" and not path):
            continue
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" (did you mean {'.'.join((*path, close[0]))}?)" if close else ""
            problems.append(f"{where}: not a key of the chart's values.yaml{hint}")
            continue
        default = defaults[key]
        if isinstance(value, dict) and isinstance(default, dict):
            problems += value_problems(value, default, (*path, key))
        elif default is not None and _kind(value) != _kind(default):
            problems.append(f"{where}: must be {_kind(default)} like the chart's default {default!r}, got {value!r}")
    return problems


def _enabled(condition: str | None, values: dict[str, Any]) -> bool:
    """A dependency's `condition` (comma-separated paths; the first one set decides), as Helm reads it."""
    for path in (condition or "").split(","):
        node: Any = values
        for part in path.strip().split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, bool):
            return node
    return True


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as Kubernetes reads it: a bare `=` is a string (PyYAML's YAML 1.1 reads it as the
    `value` tag, which the CRDs of kube-prometheus-stack contain), and libyaml when available
    (those CRDs are megabytes)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if isinstance(doc, dict) and doc]


@functools.cache
def _file_documents(path: Path) -> tuple[dict[str, Any], ...]:
    """The documents of a chart file, parsed once per process (the CRDs alone are megabytes)."""
    return tuple(_documents(path.read_text(encoding="utf-8")))


def _load_yaml(path: Path) -> Any:
    documents = _file_documents(path)
    return copy.deepcopy(documents[0]) if documents else None


def crd_files(chart: Path, values: dict[str, Any]) -> list[Path]:
    """The files of the CRDs Helm would install: crds/ of the chart and of each subchart its
    values enable."""
    files = sorted((chart / "crds").glob("*.y*ml"))
    for dependency in _dependencies(chart):
        name = dependency.get("alias") or dependency["name"]
        if _enabled(dependency.get("condition"), values):
            sub_values = values.get(name)
            files += crd_files(chart / "charts" / dependency["name"], sub_values if isinstance(sub_values, dict) else {})
    return files


def crds_of(chart: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The CRDs Helm would install (parsed once per process; do not change them)."""
    return [doc for path in crd_files(chart, values) for doc in _file_documents(path)]


def render_releases(releases: list[dict[str, Any]]) -> list[RenderedRelease]:
    """Render the charts of the recorded Helm releases (their inputs), all in one worker process."""
    rendered = [
        RenderedRelease(name=r["name"], namespace=r["namespace"], chart=Path(r["chart"]), values=r.get("values") or {})
        for r in releases
    ]
    if not rendered:
        return []
    jobs = []
    for release in rendered:
        if not (release.chart / "Chart.yaml").is_file():
            raise ChartError(f"release {release.name}: {release.chart}: not a chart directory (only vendored charts render)")
        defaults = chart_defaults(release.chart)
        release.problems += [f"values: {problem}" for problem in value_problems(release.values, defaults)]
        release.crd_files = crd_files(release.chart, _merge(defaults, release.values))
        release.crds = [doc for path in release.crd_files for doc in _file_documents(path)]
        jobs.append({"chart": str(release.chart), "values": release.values, "name": release.name, "namespace": release.namespace})
    result = subprocess.run(
        [str(helm_python()), "-I", str(WORKER)], input=json.dumps(jobs), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ChartError(f"the Helm worker failed: {result.stderr.strip()[-2000:]}")
    for release, outcome in zip(rendered, json.loads(result.stdout), strict=True):
        if "error" in outcome:
            release.problems.append(f"render: {outcome['error']}")
            continue
        for template, text in sorted(outcome["templates"].items()):
            if not template.endswith("NOTES.txt"):
                release.objects += _documents(text)
    return rendered
