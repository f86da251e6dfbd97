"""Which connections a set of Kubernetes NetworkPolicies allows, evaluated from the objects alone.

An independent reading of the NetworkPolicy semantics (networking.k8s.io/v1): a pod is isolated
for a direction once any policy of its namespace selects it with that policy type; an isolated pod
accepts (or opens) a connection only when some selecting policy's rule matches both the peer and the
port. The flow matrix test compares what this finds in the rendered manifests with the catalog's
intended flows, so it must not share code with the component that writes the policies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace, labels, named container ports, its IP) or an address outside the cluster."""

    name: str
    namespace: str | None = None  # None: outside the cluster (ip is then set)
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports
    ip: str | None = None

    def __hash__(self) -> int:
        return hash(self.name)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: None/{} matches everything; matchLabels and matchExpressions are ANDed."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


class Cluster:
    """Namespaces with their labels, the pods in them, and the NetworkPolicies."""

    def __init__(self, namespaces: Mapping[str, Mapping[str, str]], pods: Iterable[Endpoint], policies: Iterable[dict]):
        # Every namespace carries kubernetes.io/metadata.name, as the API server sets it.
        self.namespaces = {name: {**labels, "kubernetes.io/metadata.name": name} for name, labels in namespaces.items()}
        self.pods = list(pods)
        self.policies = list(policies)

    def _selecting(self, pod: Endpoint, direction: str) -> list[dict]:
        if pod.namespace is None:
            return []
        found = []
        for policy in self.policies:
            spec = policy.get("spec") or {}
            if policy["metadata"].get("namespace") != pod.namespace:
                continue
            if not selector_matches(spec.get("podSelector"), pod.labels):
                continue
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
            if direction in types:
                found.append(policy)
        return found

    def _peer_matches(self, peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            if other.ip is None:
                return False
            block = peer["ipBlock"]
            address = ipaddress.ip_address(other.ip)
            if address not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])
        # ipBlock matched any address above, pods' included (kube-router, k3s's policy controller,
        # matches it against every IP); pod and namespace selectors select pods only.
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.namespaces.get(other.namespace, {})):
                return False
        elif other.namespace != policy_namespace:
            return False
        return "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(rule_ports: list[dict] | None, target: Endpoint, port: int) -> bool:
        if not rule_ports:
            return True
        for entry in rule_ports:
            if entry.get("protocol", "TCP") != "TCP":
                continue
            wanted = entry.get("port")
            if wanted is None:
                return True
            number = target.ports.get(wanted) if isinstance(wanted, str) else wanted
            if number is not None and number <= port <= entry.get("endPort", number):
                return True
        return False

    def allows(self, source: Endpoint, target: Endpoint, port: int) -> bool:
        """Whether `source` may open a TCP connection to `target` on `port`."""
        egress = self._selecting(source, "Egress")
        if egress and not any(
            (not rule.get("to") or any(self._peer_matches(p, source.namespace or "", target) for p in rule["to"]))
            and self._port_matches(rule.get("ports"), target, port)
            for policy in egress
            for rule in (policy["spec"].get("egress") or [])
        ):
            return False
        ingress = self._selecting(target, "Ingress")
        return not ingress or any(
            (not rule.get("from") or any(self._peer_matches(p, target.namespace or "", source) for p in rule["from"]))
            and self._port_matches(rule.get("ports"), target, port)
            for policy in ingress
            for rule in (policy["spec"].get("ingress") or [])
        )
