"""Who talks to whom in a stack's namespace, as a matrix of flows, and the NetworkPolicy rules
that allow exactly those flows and nothing else (the namespace denies everything by default).

The flows follow from the service catalog (`calls`, `uses_redis`, `external_https`, `public`)
and the stack's features; tests/test_traffic.py reads the rendered NetworkPolicies back into a
matrix and compares it with `flows`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from components.pods import NAME_LABEL
from components.redis import PORT as REDIS_PORT
from components.redis import acl_sync_name
from components.service import METRICS_PORT
from components.telemetry import OTLP_GRPC
from infrastructure.catalog import ServiceSpec
from stacks.model import StackConfig

# Actors outside the namespace.
DNS = "dns"
INGRESS_CONTROLLER = "ingress-controller"
PROMETHEUS = "prometheus"
INTERNET = "internet"

# The workloads besides the services, by the names the program gives their components.
REDIS = "redis"
ACL_SYNC = acl_sync_name(REDIS)
COLLECTOR = "otel-collector"
BACKUP = "redis-backup"
DNS_PORT = 53
HTTPS = 443


def _in_namespace(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": labels},
    }


# The pods of the actors outside the namespace. k3s runs CoreDNS (k8s-app: kube-dns) and Traefik
# (app.kubernetes.io/name: traefik, from its chart) in kube-system; kube-prometheus-stack's
# Prometheus pods carry app.kubernetes.io/name: prometheus (the chart's own NetworkPolicy selects
# them so: charts/kube-prometheus-stack/templates/prometheus/networkpolicy.yaml).
PEERS: dict[str, dict[str, Any]] = {
    DNS: _in_namespace("kube-system", {"k8s-app": "kube-dns"}),
    INGRESS_CONTROLLER: _in_namespace("kube-system", {"app.kubernetes.io/name": "traefik"}),
    PROMETHEUS: _in_namespace("monitoring", {"app.kubernetes.io/name": "prometheus"}),
}


@dataclass(frozen=True, order=True)
class Flow:
    """`source` may open a TCP connection to `target` on `port` (workloads by name)."""

    source: str
    target: str
    port: int


def workloads(config: StackConfig, specs: list[ServiceSpec]) -> list[str]:
    """Every workload of the namespace whose pods talk: the services, Redis and its Jobs, the collector."""
    found = [spec.name for spec in specs] + [REDIS, ACL_SYNC]
    if config.redis.backup is not None:
        found.append(BACKUP)
    if config.features.tracing:
        found.append(COLLECTOR)
    return found


def exporter_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def flows(config: StackConfig, specs: list[ServiceSpec]) -> frozenset[Flow]:
    by_name = {spec.name: spec for spec in specs}
    found = {Flow(workload, DNS, DNS_PORT) for workload in workloads(config, specs)}
    for spec in specs:
        found |= {Flow(spec.name, callee, by_name[callee].port) for callee in spec.calls}
        if spec.uses_redis:
            found.add(Flow(spec.name, REDIS, REDIS_PORT))
        if spec.external_https:
            found.add(Flow(spec.name, INTERNET, HTTPS))
        if spec.public and config.ingress.enabled:
            found.add(Flow(INGRESS_CONTROLLER, spec.name, spec.port))
        if config.features.monitoring:
            found.add(Flow(PROMETHEUS, spec.name, METRICS_PORT))
        if config.features.tracing:
            found.add(Flow(spec.name, COLLECTOR, OTLP_GRPC))
    found.add(Flow(ACL_SYNC, REDIS, REDIS_PORT))
    backup = config.redis.backup
    if backup is not None:
        found.add(Flow(BACKUP, REDIS, REDIS_PORT))
        if backup.s3 is not None:
            found.add(Flow(BACKUP, INTERNET, backup.s3.port))
    if config.features.tracing and config.telemetry.exporter_endpoint:
        found.add(Flow(COLLECTOR, INTERNET, exporter_port(config.telemetry.exporter_endpoint)))
    return frozenset(found)


# k3s's pod and service networks (its --cluster-cidr and --service-cidr defaults): "the internet" is
# every address but these, so that a rule for an API on the internet opens no pod of the cluster.
CLUSTER_CIDRS = ("10.42.0.0/16", "10.43.0.0/16")
PEERS[INTERNET] = {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(CLUSTER_CIDRS)}}


def peer(actor: str) -> dict[str, Any]:
    """The NetworkPolicy peer of `actor`."""
    return PEERS.get(actor) or {"podSelector": {"matchLabels": {NAME_LABEL: actor}}}


def _rules(pairs: Iterable[tuple[str, int]], direction: str) -> list[dict[str, Any]]:
    """One rule per port, its peers sorted."""
    by_port: dict[int, set[str]] = defaultdict(set)
    for actor, port in pairs:
        by_port[port].add(actor)
    return [
        {direction: [peer(actor) for actor in sorted(actors)], "ports": [{"protocol": "TCP", "port": port}]}
        for port, actors in sorted(by_port.items())
    ]


def ingress(workload: str, matrix: frozenset[Flow]) -> list[dict[str, Any]]:
    """The ingress rules of `workload`'s NetworkPolicy: exactly the flows that reach it."""
    return _rules(((f.source, f.port) for f in matrix if f.target == workload), "from")


def egress(workload: str, matrix: frozenset[Flow]) -> list[dict[str, Any]]:
    """Its egress rules: exactly the flows it opens (DNS is the namespace's own policy)."""
    return _rules(((f.target, f.port) for f in matrix if f.source == workload and f.target != DNS), "to")
