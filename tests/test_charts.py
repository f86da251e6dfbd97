"""The vendored charts: where they come from, that they are the pinned versions, and what the plan
renders from them with the values the program passes (validated against the Kubernetes schema and
the charts' CRDs)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components import gpu_operator, monitoring
from components.charts import CHARTS_DIR, chart_path
from sophia_infra import charts, cli, render
from sophia_infra.crds import CrdIndex, _strict
from stacks import loader
from stacks.compat import VENDORED_CHARTS
from tests.conftest import PROJECT

PROD = "sophia-ai-production"
K3S_EMBEDDED_ALERTS = {"KubeControllerManagerDown", "KubeSchedulerDown", "KubeProxyDown", "etcdMembersDown"}


def chart_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / "Chart.yaml").read_text())


@pytest.fixture(scope="module")
def plan() -> render.Plan:
    return render.plan(PROD, loader.load_stack_file(PROJECT / f"Pulumi.{PROD}.yaml"))


def release(plan_: render.Plan, name: str) -> charts.RenderedRelease:
    return next(r for r in plan_.releases if r.name == name)


def objects(release_: charts.RenderedRelease, kind: str) -> list[dict[str, Any]]:
    return [o for o in release_.objects if o["kind"] == kind]


# --- what is vendored --------------------------------------------------------------------------


@pytest.mark.parametrize("chart", VENDORED_CHARTS, ids=lambda c: c.name)
def test_each_vendored_chart_is_the_pinned_version_with_its_provenance(chart):
    path = CHARTS_DIR / chart.name
    metadata = chart_yaml(path)
    provenance = yaml.safe_load((CHARTS_DIR / f"{chart.name}.provenance.yaml").read_text())
    assert metadata["name"] == provenance["chart"] == chart.name
    assert metadata["version"] == provenance["version"] == chart.version
    assert provenance["upstream"].startswith("https://github.com/") and len(provenance["commit"]) == 40
    assert "Apache License" in (path / "LICENSE").read_text()
    # Every dependency Chart.yaml declares is vendored (Helm refuses the chart otherwise), at the
    # version the provenance records, with its licence.
    recorded = {sub["name"]: sub for sub in provenance["subcharts"]}
    for dependency in metadata.get("dependencies") or []:
        sub = path / "charts" / dependency["name"]
        assert chart_yaml(sub)["version"] == recorded[dependency["name"]]["version"], dependency["name"]
        # In the range Chart.yaml declares ("4.47.3", "0.12.*"): same major and minor.
        assert chart_yaml(sub)["version"].lstrip("v").split(".")[:2] == dependency["version"].lstrip("v").split(".")[:2]
        if "upstream" in recorded[dependency["name"]]:
            assert (sub / "LICENSE").is_file(), dependency["name"]
    # Its kubeVersion is what stacks/compat.py refuses older k3s releases by.
    lowest = ".".join(map(str, chart.min_kubernetes))
    assert metadata["kubeVersion"].replace(" ", "") == f">={lowest}-0"


def test_the_gpu_operator_chart_carries_the_release_as_its_app_version():
    """The templates take the operator's and validator's image tags from appVersion."""
    metadata = chart_yaml(CHARTS_DIR / "gpu-operator")
    assert metadata["appVersion"] == metadata["version"] == "v25.10.0"


def test_the_program_deploys_the_vendored_chart_from_any_working_directory(monkeypatch: pytest.MonkeyPatch):
    """Under `pulumi up` the working directory is infrastructure/."""
    monkeypatch.chdir(PROJECT / "infrastructure")
    assert Path(chart_path("gpu-operator")) == CHARTS_DIR / "gpu-operator"
    assert Path(chart_path("gpu-operator")).is_absolute()
    with pytest.raises(FileNotFoundError, match="no vendored chart 'nope'"):
        chart_path("nope")


# --- what the plan renders ---------------------------------------------------------------------


def test_the_plan_renders_both_releases_with_the_programs_values(plan: render.Plan):
    assert render.validate(plan) == []
    recorded = {r.inputs["name"]: r.inputs for r in plan.recording.resources if r.type == charts.RELEASE_TYPE}
    assert set(recorded) == {r.name for r in plan.releases} == {"gpu-operator", "kube-prometheus-stack"}
    for rendered in plan.releases:
        assert rendered.values == recorded[rendered.name]["values"]
        assert str(rendered.chart) == recorded[rendered.name]["chart"]
        assert rendered.namespace == recorded[rendered.name]["namespace"]
        assert rendered.objects and rendered.crds


def test_the_cluster_policy_uses_the_hosts_toolkit(plan: render.Plan):
    (policy,) = objects(release(plan, "gpu-operator"), "ClusterPolicy")
    spec = policy["spec"]
    assert (spec["toolkit"]["enabled"], spec["driver"]["enabled"], spec["cdi"]["enabled"]) == (False, False, False)
    assert spec["operator"]["runtimeClass"] == "nvidia"
    assert spec["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    # The operator's image is the release's, through appVersion.
    (operator,) = [o for o in objects(release(plan, "gpu-operator"), "Deployment") if o["metadata"]["name"] == "gpu-operator"]
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/gpu-operator:v25.10.0"


def alerts(release_: charts.RenderedRelease) -> set[str]:
    return {
        rule["alert"]
        for obj in objects(release_, "PrometheusRule")
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_nothing_scrapes_or_alerts_on_what_k3s_runs_inside_its_own_process(plan: render.Plan):
    stack = release(plan, "kube-prometheus-stack")
    names = {o["metadata"]["name"] for o in stack.objects if o["kind"] in ("Service", "ServiceMonitor")}
    for component in ("kube-controller-manager", "kube-scheduler", "kube-proxy", "kube-etcd"):
        assert not [name for name in names if component in name], component
    assert not alerts(stack) & K3S_EMBEDDED_ALERTS
    assert {"KubeletDown", "KubeAPIDown"} <= alerts(stack)


def test_the_charts_defaults_would_alert_forever_on_k3s():
    """What the values above turn off: without them the chart ships those targets and alerts."""
    values = {k: v for k, v in monitoring.helm_values().items() if k not in monitoring.K3S_EMBEDDED_COMPONENTS}
    (stack,) = charts.render_releases(
        [
            {
                "name": "kube-prometheus-stack",
                "namespace": "monitoring",
                "chart": chart_path("kube-prometheus-stack"),
                "values": values,
            }
        ]
    )
    assert alerts(stack) >= K3S_EMBEDDED_ALERTS


def test_the_plan_writes_each_releases_objects_and_graph(plan: render.Plan, tmp_path: Path):
    root = render.write(plan, tmp_path)
    written = {p.relative_to(root / "manifests").as_posix() for p in (root / "manifests").rglob("*.yaml")}
    assert "gpu-operator/clusterpolicy-cluster-cluster-policy.yaml" in written
    assert "gpu-operator/crds/gpu-operator-nvidia.com_clusterpolicies.yaml" in written
    assert "kube-prometheus-stack/crds/crds-crd-servicemonitors.yaml" in written
    assert len([w for w in written if w.startswith("kube-prometheus-stack/") and "/crds/" not in w]) > 50
    graph = (root / "graph.mmd").read_text()
    assert '["ClusterPolicy/cluster-policy"]' in graph and '["Prometheus/kube-prometheus-stack-prometheus"]' in graph
    resources = json.loads((root / "resources.json").read_text())
    (gpu,) = [r for r in resources if r["name"] == "gpu-operator-release"]
    assert gpu["inputs"]["chart"] == "charts/gpu-operator"


# --- a wrong value fails the plan --------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"toolkit": {"enabld": False}},
            "release gpu-operator: values: toolkit.enabld: not a key of the chart's values.yaml (did you mean toolkit.enabled?)",
        ),
        (
            {"driver": {"enabled": "false"}},
            "release gpu-operator: values: driver.enabled: must be a boolean like the chart's default True, got 'false'",
        ),
        (
            {"toolkit": {"enabled": False, "env": {"CONTAINERD_SOCKET": "/run/k3s/containerd/containerd.sock"}}},
            "release gpu-operator: ClusterPolicy/-/cluster-policy: spec.toolkit.env: {'CONTAINERD_SOCKET':",
        ),
    ],
    ids=["misspelled key", "wrong type", "wrong shape"],
)
def test_a_wrong_value_fails_render_naming_the_release_and_key(
    values: dict[str, Any], expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    right = gpu_operator.helm_values
    monkeypatch.setattr(gpu_operator, "helm_values", lambda args: {**right(args), **values})
    monkeypatch.chdir(PROJECT)
    assert cli.main(["render", PROD, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{PROD}: invalid manifest: {expected}" in err, err


def test_custom_resources_are_checked_as_the_api_server_checks_them(plan: render.Plan):
    """Nulls in fields that are not nullable are pruned and defaults applied before validation;
    without that, the rendered ClusterPolicy would fail on defaultRuntime and cdi.default."""
    gpu = release(plan, "gpu-operator")
    (policy,) = objects(gpu, "ClusterPolicy")
    index = CrdIndex.of(gpu.crds)
    assert index.problems(policy) == []
    crd = index.crds[("nvidia.com", "ClusterPolicy")]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raw = [e.message for e in jsonschema.Draft7Validator(_strict(schema)).iter_errors(policy)]
    assert any("defaultRuntime" in m for m in raw) and any("None is not of type" in m for m in raw)
    # And a field the CRD does not know is an error, not silently dropped.
    unknown = copy.deepcopy(policy)
    unknown["spec"]["toolkit"]["enabeld"] = True
    assert any("enabeld" in problem for problem in index.problems(unknown))


def test_the_projects_own_custom_resources_are_checked_against_the_vendored_crds(plan: render.Plan):
    monitors = [o for o in plan.manifests if o["kind"] == "ServiceMonitor"]
    assert monitors
    broken = copy.deepcopy(monitors[0])
    broken["spec"]["endpoints"][0]["interval"] = 30
    problems = render.object_problems(broken, plan.kubernetes_version, render.vendored_crds())
    assert problems and "spec.endpoints.0.interval" in problems[0]


def test_render_says_how_to_get_the_helm_virtualenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SOPHIA_HELM_PYTHON", str(tmp_path / "missing" / "python"))
    with pytest.raises(charts.ChartError, match=r"make \.venv-helm/\.installed"):
        charts.helm_python()
    monkeypatch.delenv("SOPHIA_HELM_PYTHON")
    assert os.path.exists(charts.helm_python())
