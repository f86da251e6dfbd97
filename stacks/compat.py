"""What is known about k3s and NVIDIA GPU operator versions working together.

k3s moved its embedded containerd to 2.0 (config version 3, template `config-v3.toml.tmpl`) in
its March 2025 patch releases and in every release from 1.33 on. GPU operator charts before
v25.10 edit containerd's config through that template; from v25.10 the toolkit writes a drop-in
file and only needs the socket. The toolkit shipped before chart v25.3.0 cannot write a
containerd 2.0 configuration.
"""

from __future__ import annotations

import re

_CONTAINERD2_FROM = {29: (1, 29, 15), 30: (1, 30, 11), 31: (1, 31, 7), 32: (1, 32, 3)}
_FIRST_ALL_CONTAINERD2_MINOR = 33
DROP_IN_CHART = (25, 10, 0)
MIN_CHART_FOR_CONTAINERD2 = (25, 3, 0)
K3S_CONTAINERD_DIR = "/var/lib/rancher/k3s/agent/etc/containerd"
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


def k3s_has_containerd2(k3s_version: str) -> bool:
    version = version_tuple(k3s_version)
    if version[1] >= _FIRST_ALL_CONTAINERD2_MINOR:
        return True
    first = _CONTAINERD2_FROM.get(version[1])
    return first is not None and version >= first


def containerd_template(k3s_version: str, chart_version: str) -> str | None:
    """The containerd config template the toolkit must edit, or None when the chart uses a drop-in."""
    if version_tuple(chart_version) >= DROP_IN_CHART:
        return None
    name = "config-v3.toml.tmpl" if k3s_has_containerd2(k3s_version) else "config.toml.tmpl"
    return f"{K3S_CONTAINERD_DIR}/{name}"


def incompatibility(k3s_version: str, chart_version: str) -> str | None:
    """Why this pair is known not to work, or None."""
    if k3s_has_containerd2(k3s_version) and version_tuple(chart_version) < MIN_CHART_FOR_CONTAINERD2:
        return (
            f"gpu-operator chart {chart_version} cannot configure the containerd 2.0 of k3s {k3s_version};"
            f" use chart v{'.'.join(map(str, MIN_CHART_FOR_CONTAINERD2))} or newer"
        )
    return None
