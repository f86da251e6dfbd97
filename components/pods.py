"""What every Sophia pod shares: labels, the restricted security settings, the disruption budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from policies.workloads import DISRUPTION_BUDGET, MAX_SURGE, MAX_UNAVAILABLE, needs_disruption_budget

PART_OF = "sophia-ai"
# Every pod of a workload carries its name under this label, unique in the namespace: what the
# NetworkPolicies select it by (infrastructure/traffic.py).
NAME_LABEL = "app.kubernetes.io/name"


def labels(name: str, component: str) -> dict[str, str]:
    """Labels of a workload; `selector(name)` is the stable subset used to select its pods."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(name: str) -> dict[str, str]:
    return {NAME_LABEL: name, "app.kubernetes.io/part-of": PART_OF}


def network_policy(
    name: str,
    namespace: pulumi.Input[str],
    ingress: Sequence[Mapping[str, Any]],
    egress: Sequence[Mapping[str, Any]],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """What the pods of workload `name` may accept and open, beyond the namespace's default deny
    and DNS: exactly these rules (infrastructure/traffic.py derives them from the catalog)."""
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-network-policy",
        metadata={"name": name, "namespace": namespace},
        spec={
            "podSelector": {"matchLabels": {NAME_LABEL: name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": list(ingress),
            "egress": list(egress),
        },
        opts=opts,
    )


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


def restricted_pod(
    uid: int, containers: list[dict[str, Any]], volumes: Sequence[Mapping[str, Any]] = (), *, gid: int | None = None, **spec: Any
) -> dict[str, Any]:
    """A pod spec the `restricted` Pod Security Standard admits: non-root with the RuntimeDefault
    seccomp profile, no service-account token, a private /tmp (the only writable path of its
    read-only containers); `spec` adds the rest (restartPolicy, initContainers...)."""
    return {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(uid, gid),
        **spec,
        "containers": containers,
        "volumes": [*volumes, TMP_VOLUME],
    }


def restricted_container(
    name: str, image: pulumi.Input[str], cpu: str, memory: str, mounts: Sequence[Mapping[str, Any]] = (), **container: Any
) -> dict[str, Any]:
    """A container of such a pod: read-only root, no privilege, every capability dropped, pulled
    on every start, requests equal to limits, /tmp mounted; `container` adds the rest."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": PULL_POLICY,
        **container,
        "resources": resources(cpu, memory),
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "volumeMounts": [*mounts, TMP_MOUNT],
    }


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
