"""What this project can deploy: the Helm charts vendored in `charts/` and the k3s releases they
accept. The single source of the pinned chart versions (the model's defaults come from here, and
tests/test_charts.py checks the vendored Chart.yaml files against it).

The GPU path: k3s finds the NVIDIA container runtime that the host's NVIDIA Container Toolkit
(shipped by Lambda Stack) installs at /usr/bin/nvidia-container-runtime when it starts, and adds
an `nvidia` runtime to the containerd configuration it generates (k3s-io/k3s
pkg/agent/containerd/runtimes.go, `findNvidiaContainerRuntimes`). The GPU operator's own toolkit
is disabled: before chart v25.10 it rewrites k3s's containerd template, from v25.10 it writes a
drop-in k3s does not read, and either way it signals containerd, which takes k3s down with it.
So the only supported operator is the vendored chart, configured with `toolkit.enabled: false`
and the host's driver (`driver.enabled: false`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class VendoredChart:
    name: str  # the directory under charts/
    version: str  # Chart.yaml `version`
    # The lowest Kubernetes version its Chart.yaml `kubeVersion` accepts (Helm refuses older ones).
    min_kubernetes: tuple[int, int, int]


# deployments/gpu-operator of NVIDIA/gpu-operator at v25.10.0 (kubeVersion ">= 1.16.0-0").
GPU_OPERATOR_CHART = VendoredChart("gpu-operator", "v25.10.0", (1, 16, 0))
# charts/kube-prometheus-stack of prometheus-community/helm-charts at 75.15.0 (kubeVersion ">=1.25.0-0").
PROMETHEUS_STACK_CHART = VendoredChart("kube-prometheus-stack", "75.15.0", (1, 25, 0))
VENDORED_CHARTS = (GPU_OPERATOR_CHART, PROMETHEUS_STACK_CHART)
# Kubernetes minor versions the offline plan can validate manifests against: those whose schemas
# the pinned kubernetes-validate ships (a test keeps the two in step).
PLAN_KUBERNETES_MINORS = range(25, 38)


def version_tuple(version: str) -> tuple[int, int, int]:
    """`v1.33.5+k3s1` -> (1, 33, 5); `v25.10.0` -> (25, 10, 0)."""
    match = re.match(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)", version, re.ASCII)
    if not match:
        raise ValueError(f"not a version: {version!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _vendored_only(chart: VendoredChart, version: str) -> str | None:
    if version == chart.version:
        return None
    return (
        f"only the vendored chart can be deployed (charts/{chart.name}, {chart.version});"
        " to change it, vendor the release into charts/ and pin it in stacks/compat.py"
    )


def gpu_operator_problem(chart_version: str) -> str | None:
    return _vendored_only(GPU_OPERATOR_CHART, chart_version)


def monitoring_stack_problem(chart_version: str) -> str | None:
    return _vendored_only(PROMETHEUS_STACK_CHART, chart_version)


def kubernetes_problem(chart: VendoredChart, k3s_version: str) -> str | None:
    """Why the chart would refuse this k3s release (its Chart.yaml kubeVersion), or None."""
    if version_tuple(k3s_version) >= chart.min_kubernetes:
        return None
    lowest = ".".join(map(str, chart.min_kubernetes))
    return f"chart {chart.name} {chart.version} needs Kubernetes >= {lowest}; this k3s release is older"
