"""What every Sophia pod shares: labels, the restricted security settings, the disruption budget."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from policies.workloads import DISRUPTION_BUDGET, MAX_SURGE, MAX_UNAVAILABLE, needs_disruption_budget

PART_OF = "sophia-ai"
# A NetworkPolicy peer: every Sophia pod of the namespace.
SOPHIA_PODS = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}


def labels(name: str, component: str) -> dict[str, str]:
    """Labels of a workload; `selector(name)` is the stable subset used to select its pods."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def pod_security_context(uid: int, gid: int | None = None) -> dict[str, Any]:
    """Pod-level settings that satisfy the `restricted` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid or uid,
        "fsGroup": gid or uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

TMP_VOLUME = {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - a private emptyDir


# Pull on every start: a pod may only run an image its pull credentials still grant, and a
# pinned tag or digest makes the pull a cheap manifest check.
PULL_POLICY = "Always"

PINNED_BY_TAG = (
    "CKV_K8S_43",
    "pinned by an exact version tag from validated configuration (production refuses mutable tags);"
    " images this stack builds are deployed by digest",
)


def checkov_skips(*skips: tuple[str, str]) -> dict[str, str]:
    """Annotations telling checkov that a check does not apply to this object, and why."""
    return {f"checkov.io/skip{number}": f"{check}={reason}" for number, (check, reason) in enumerate(skips, start=1)}


def resources(cpu: str, memory: str) -> dict[str, dict[str, str]]:
    """Requests equal to limits: Guaranteed QoS, so a busy neighbour cannot starve the service."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


# How a workload rolls out (policies/workloads.py keeps the rules, the policy pack checks them).
ROLLING_UPDATE = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": MAX_UNAVAILABLE, "maxSurge": MAX_SURGE}}


def disruption_budget(
    name: str, meta: dict[str, Any], replicas: int, opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget | None:
    """At most one pod of `name` down at a time through voluntary disruptions (drains, evictions),
    once it has more than one; a pod that is not Ready never blocks a drain."""
    if not needs_disruption_budget(replicas):
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-disruption-budget",
        metadata=meta,
        spec={**DISRUPTION_BUDGET, "selector": {"matchLabels": selector(name)}},
        opts=opts,
    )
