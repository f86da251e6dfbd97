"""The NetworkPolicies of each stack allow exactly the catalog's flows: read back from the rendered
objects with an independent evaluator (tests/netpolicy.py), every pair of pods and every port,
against `infrastructure.traffic.flows`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infrastructure import catalog, traffic
from stacks import loader
from tests.conftest import PROJECT, STACKS, Run, RunStack
from tests.netpolicy import Cluster, Endpoint

NAME = "app.kubernetes.io/name"
POD_TEMPLATES = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# Pods outside the stack's namespace: the actors of the matrix, and bystanders that must get nothing.
OUTSIDE = [
    Endpoint(traffic.DNS, "kube-system", {"k8s-app": "kube-dns"}, {"dns-tcp": 53}, ip="10.42.0.2"),
    Endpoint(traffic.INGRESS_CONTROLLER, "kube-system", {NAME: "traefik"}, {"web": 8000}, ip="10.42.0.3"),
    Endpoint("metrics-server", "kube-system", {"k8s-app": "metrics-server"}, {"https": 10250}, ip="10.42.0.4"),
    Endpoint(traffic.PROMETHEUS, "monitoring", {NAME: "prometheus"}, {"web": 9090}, ip="10.42.0.5"),
    Endpoint("alertmanager", "monitoring", {NAME: "alertmanager"}, {"web": 9093}, ip="10.42.0.6"),
    # Another stack's orchestrator, on the same cluster.
    Endpoint(
        "other-orchestrator",
        "sophia-other",
        {NAME: "orchestrator", "app.kubernetes.io/part-of": "sophia-ai"},
        {"http": 8000},
        ip="10.42.0.7",
    ),
    Endpoint(traffic.INTERNET, ip="203.0.113.10"),
]
# Every port some rule could open, besides each pod's own: HTTPS, an exporter's, an S3 endpoint's,
# and ones nothing should answer on.
PROBE_PORTS = {22, 80, 443, 4317, 9000, 9999}
# Variants that switch every flow on: ingress, an exporter, backups to S3.
EVERYTHING = {
    "sophia-ai:ingress": {"enabled": True, "host": "sophia.example.com"},
    "sophia-ai:telemetry": {"exporterEndpoint": "tempo.example.com:4317"},
    "sophia-ai:redis": {
        "backup": {
            "s3": {
                "bucket": "sophia-backups",
                "endpoint": "minio.example.com:9000",
                # Secrets: the whole key is (the harness sets a Redis password in it).
                "accessKeyId": "test-key-id",
                "secretAccessKey": "test-key",
            }
        }
    },
}


def _dig(value: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        value = value[key]
    return value


def pods(run: Run, namespace: str) -> list[Endpoint]:
    found = []
    for resource in run.resources:
        if resource.type not in POD_TEMPLATES or resource.inputs["metadata"].get("namespace") != namespace:
            continue
        template = _dig(resource.inputs, POD_TEMPLATES[resource.type])
        labels = template["metadata"]["labels"]
        ports = {
            port.get("name", str(port["containerPort"])): port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        found.append(Endpoint(labels[NAME], namespace, labels, ports, ip=f"10.42.1.{len(found) + 1}"))
    return found


def allowed(run: Run, namespace: str, policies: list[dict[str, Any]] | None = None) -> set[traffic.Flow]:
    """Every (source, target, port) the rendered NetworkPolicies let through, one side at least in
    the stack's namespace."""
    inside = pods(run, namespace)
    labels = run.get("core/v1:Namespace", "sophia-namespace").inputs["metadata"]["labels"]
    namespaces = {
        namespace: labels,
        "kube-system": {},
        "monitoring": {},
        "sophia-other": {"app.kubernetes.io/part-of": "sophia-ai"},
    }
    if policies is None:
        policies = [r.inputs for r in run.all("NetworkPolicy")]
    cluster = Cluster(namespaces, [*inside, *OUTSIDE], policies)
    found = set()
    for source in [*inside, *OUTSIDE]:
        for target in [*inside, *OUTSIDE]:
            if source is target or (source.namespace != namespace and target.namespace != namespace):
                continue
            for port in {*target.ports.values(), *PROBE_PORTS}:
                if cluster.allows(source, target, port):
                    found.add(traffic.Flow(source.name, target.name, port))
    return found


def intended(stack: str, changes: dict[str, Any]) -> frozenset[traffic.Flow]:
    raw = loader.RawConfig(f"Pulumi.{stack}.yaml", _config(stack, changes), frozenset({("sophia-ai:redis",)}), offline=True)
    config = loader.validate(raw).config
    return traffic.flows(config, catalog.services(config))


def _config(stack: str, changes: dict[str, Any]) -> dict[str, Any]:
    import yaml

    config = yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {**config, **copy.deepcopy(changes)}


NAMESPACES = {"sophia-ai-dev": "sophia-dev", "sophia-ai-staging": "sophia-staging", "sophia-ai-production": "sophia-prod"}


@pytest.mark.parametrize("variant", ["as configured", "every flow on"])
@pytest.mark.parametrize("stack", STACKS)
def test_the_policies_allow_exactly_the_catalogs_flows(run_stack: RunStack, stack: str, variant: str):
    changes = {} if variant == "as configured" else EVERYTHING
    run = run_stack(stack, changes)
    assert allowed(run, NAMESPACES[stack]) == intended(stack, changes)


def test_the_matrix_says_who_talks_to_whom():
    flows = intended("sophia-ai-production", EVERYTHING)
    assert traffic.Flow("orchestrator", "memory", 8001) in flows
    assert traffic.Flow("orchestrator", "mcp-gong", 8080) in flows
    assert traffic.Flow("mcp-ai-memory", "memory", 8001) in flows
    assert traffic.Flow("frontend", "orchestrator", 8000) in flows
    assert traffic.Flow(traffic.INGRESS_CONTROLLER, "frontend", 8080) in flows
    assert traffic.Flow(traffic.PROMETHEUS, "mcp-slack", 9090) in flows
    assert traffic.Flow("redis-backup", traffic.INTERNET, 9000) in flows
    assert traffic.Flow("otel-collector", traffic.INTERNET, 4317) in flows
    redis_clients = {f.source for f in flows if f.target == "redis"}
    assert redis_clients == {"orchestrator", "memory", "redis-acl-sync", "redis-backup"}
    # What must not flow: the dashboard to Redis, an MCP server to the orchestrator, the internet
    # for the dashboard, Redis or the memory service for anyone but their callers.
    for forbidden in (
        traffic.Flow("frontend", "redis", 6379),
        traffic.Flow("mcp-gong", "orchestrator", 8000),
        traffic.Flow("mcp-gong", "memory", 8001),
        traffic.Flow("frontend", traffic.INTERNET, 443),
        traffic.Flow(traffic.INGRESS_CONTROLLER, "memory", 8001),
    ):
        assert forbidden not in flows


SOPHIA_PODS = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "sophia-ai"}}}


def _widened(policies: list[dict[str, Any]], changes: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    changed = copy.deepcopy(policies)
    for name, direction, rule in changes:
        policy = next(p for p in changed if p["metadata"]["name"] == name)
        policy["spec"][direction].append(rule)
    return changed


@pytest.mark.parametrize(
    "changes",
    [
        # Every Sophia pod to Redis, as the policies allowed before (both sides opened).
        [("redis", "ingress", {"from": [SOPHIA_PODS]}), ("frontend", "egress", {"to": [SOPHIA_PODS]})],
        # All of kube-system to the orchestrator, as before: kube-system's pods are not isolated.
        [
            (
                "orchestrator",
                "ingress",
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]},
            )
        ],
        # The dashboard to anything on 443, in the cluster too.
        [("frontend", "egress", {"ports": [{"protocol": "TCP", "port": 443}]})],
    ],
    ids=["sophia pods to redis", "kube-system to the orchestrator", "dashboard to 443"],
)
def test_a_widened_policy_fails_the_comparison(run_stack: RunStack, changes: list[tuple[str, str, dict[str, Any]]]):
    run = run_stack("sophia-ai-staging")
    policies = [r.inputs for r in run.all("NetworkPolicy")]
    assert allowed(run, "sophia-staging", policies) == intended("sophia-ai-staging", {})
    extra = allowed(run, "sophia-staging", _widened(policies, changes)) - intended("sophia-ai-staging", {})
    assert extra, "the widened policies allow nothing more"


def test_a_narrowed_policy_fails_the_comparison(run_stack: RunStack):
    run = run_stack("sophia-ai-staging")
    policies = copy.deepcopy([r.inputs for r in run.all("NetworkPolicy")])
    memory = next(p for p in policies if p["metadata"]["name"] == "memory")
    memory["spec"]["ingress"] = []
    missing = intended("sophia-ai-staging", {}) - allowed(run, "sophia-staging", policies)
    assert traffic.Flow("orchestrator", "memory", 8001) in missing
