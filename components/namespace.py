"""Namespace: one per stack, with Pod Security labels, quota, default limits and default-deny traffic."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pods import PART_OF


@dataclass
class NamespaceArgs:
    name: str
    environment: str
    # Totals for the ResourceQuota (requests = limits for every Sophia container).
    quota_cpu: str
    quota_memory: str
    quota_pods: int
    quota_storage: str
    # GPUs (nvidia.com/gpu) its pods may request together; 0 caps a namespace without GPU services.
    quota_gpus: int
    # Defaults of the LimitRange, for containers that set none.
    default_cpu: str
    default_memory: str


class Namespace(pulumi.ComponentResource):
    """A namespace that enforces the `restricted` Pod Security Standard and denies all traffic but
    DNS, unless a workload's own NetworkPolicy allows more (infrastructure/traffic.py).

    Outputs: `name` (the namespace name).
    """

    name: pulumi.Output[str]

    def __init__(self, name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:Namespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.name,
                "labels": {
                    "app.kubernetes.io/part-of": PART_OF,
                    "sophia.ai/environment": args.environment,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=child,
        )
        ns = namespace.metadata.name
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": "sophia-quota", "namespace": ns},
            spec={
                "hard": {
                    "requests.cpu": args.quota_cpu,
                    "limits.cpu": args.quota_cpu,
                    "requests.memory": args.quota_memory,
                    "limits.memory": args.quota_memory,
                    "requests.storage": args.quota_storage,
                    "pods": str(args.quota_pods),
                    # Extended resources are capped by their requests. quota only (no limits.).
                    "requests.nvidia.com/gpu": str(args.quota_gpus),
                }
            },
            opts=child,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata={"name": "sophia-defaults", "namespace": ns},
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": args.default_cpu, "memory": args.default_memory},
                        "defaultRequest": {"cpu": args.default_cpu, "memory": args.default_memory},
                    }
                ]
            },
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata={"name": "default-deny", "namespace": ns},
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-dns",
            metadata={"name": "allow-dns", "namespace": ns},
            spec={
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
            opts=child,
        )
        self.name = ns
        self.register_outputs({"name": ns})
