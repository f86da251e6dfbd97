"""The policy pack: every policy passes on the three real stacks and catches a broken resource."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.rules import POLICIES
from sophia_infra.offline import Recorded
from tests.conftest import STACKS, RunStack

BY_NAME = {policy.name: policy for policy in POLICIES}


def violations(resources: list[Recorded], policy_names: list[str] | None = None) -> list[str]:
    """Run the policies (all by default) over recorded resources as the analyzer would."""
    found: list[str] = []
    for policy in POLICIES if policy_names is None else [BY_NAME[n] for n in policy_names]:

        def report(message: str, urn: str | None = None, policy_name: str = policy.name) -> None:
            found.append(f"{policy_name}: {message}")

        validate: Callable[..., Any] = policy.validate  # type: ignore[assignment]
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                validate(ResourceValidationArgs(r.type, r.plain_inputs, r.urn, r.name, None, None, {}), report)  # type: ignore[arg-type]
        elif isinstance(policy, StackValidationPolicy):
            stack = [PolicyResource(r.type, r.plain_inputs, r.urn, r.name, None, None, None, [], {}) for r in resources]  # type: ignore[arg-type]
            validate(StackValidationArgs(stack, {}), report)
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_policy_passes_on_the_real_stacks(run_stack: RunStack, stack: str):
    resources = run_stack(stack).resources
    assert violations(resources) == []


def _edit(run_stack: RunStack, stack: str, name: str, change: Callable[[dict], None]) -> list[Recorded]:
    resources = run_stack(stack).resources
    target = next(r for r in resources if r.name == name)
    inputs = copy.deepcopy(target.plain_inputs)
    change(inputs)
    broken = Recorded(target.type, target.name, target.urn, target.parent, target.dependencies, target.options, inputs)
    return [broken if r is target else r for r in resources]


def _container(inputs: dict) -> dict:
    return inputs["spec"]["template"]["spec"]["containers"][0]


BROKEN: list[tuple[str, str, str, Callable[[dict], None], str]] = [
    ("container-requirements", "sophia-ai-dev", "memory-deployment",
     lambda i: _container(i)["resources"].pop("limits"), "container memory: limits must set cpu and memory"),
    ("container-requirements", "sophia-ai-dev", "memory-deployment",
     lambda i: _container(i).pop("readinessProbe"), "container memory: needs a readinessProbe"),
    ("container-requirements", "sophia-ai-dev", "redis-statefulset",
     lambda i: _container(i)["securityContext"].update(allowPrivilegeEscalation=True), "must set allowPrivilegeEscalation: false"),
    ("image-provenance", "sophia-ai-production", "orchestrator-deployment",
     lambda i: _container(i).update(image="scoobyjava15/sophia-orchestrator:latest"), "production needs an immutable tag or digest"),
    ("image-provenance", "sophia-ai-dev", "orchestrator-deployment",
     lambda i: _container(i).update(image="evil.example.com/miner:1.0"), "is not from an allowed registry"),
    ("no-plain-secret-env", "sophia-ai-dev", "memory-deployment",
     lambda i: _container(i)["env"].append({"name": "REDIS_PASSWORD", "value": "hunter2"}), "REDIS_PASSWORD must come from a Secret"),
    ("k3s-install-pinned", "sophia-ai-production", "k3s-server-install",
     lambda i: i.update(create=i["create"].replace("K3S_VERSION=v1.33.5+k3s1", "K3S_VERSION=stable")), "must pin a full version"),
    ("k3s-install-pinned", "sophia-ai-production", "k3s-server-install",
     lambda i: i.update(stdin=i["stdin"].replace("write-kubeconfig-mode: '0600'", "write-kubeconfig-mode: '644'")), "world-readable kubeconfig"),
    ("helm-chart-pinned", "sophia-ai-production", "gpu-operator-release",
     lambda i: i.pop("version"), "must pin an exact version, got 'none'"),
    ("production-availability", "sophia-ai-production", "orchestrator-autoscaler",
     lambda i: i["spec"].update(minReplicas=1), "production needs at least 2 replicas, has 1"),
    ("production-availability", "sophia-ai-production", "memory-disruption-budget",
     lambda i: i["spec"].update(selector={"matchLabels": {"app.kubernetes.io/name": "other"}}), "memory: production needs a PodDisruptionBudget"),
    ("namespace-isolation", "sophia-ai-dev", "sophia-namespace",
     lambda i: i["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce"), "needs a pod-security.kubernetes.io/enforce label"),
    ("namespace-isolation", "sophia-ai-dev", "sophia-default-deny",
     lambda i: i["spec"].update(policyTypes=["Ingress"]), "needs a default-deny NetworkPolicy"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "stack", "name", "change", "message"), BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)]
)
def test_each_policy_catches_a_broken_resource(run_stack: RunStack, policy: str, stack: str, name: str, change, message: str):
    found = violations(_edit(run_stack, stack, name, change), [policy])
    assert any(message in line for line in found), found


def test_every_policy_has_a_broken_case():
    assert {case[0] for case in BROKEN} == set(BY_NAME)
