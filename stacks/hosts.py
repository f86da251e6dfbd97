"""The hosts a cluster runs on: Lambda Labs' published instance shapes, and what a node keeps for
itself before any Sophia pod is scheduled.

The shapes are those Lambda's API lists under `/instance-types` (`specs`: vcpus, memory_gib,
gpus) for its on-demand Linux instances. A type missing here is refused by `check`; add it with the
numbers Lambda publishes for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

GIB = Decimal(2**30)


@dataclass(frozen=True)
class Shape:
    vcpus: int
    memory_gib: int
    gpus: int
    # The arm64 Grace Hopper machines cannot run the amd64 images this project builds.
    arch: str = "x86_64"

    @property
    def cpu(self) -> Decimal:
        return Decimal(self.vcpus)

    @property
    def memory(self) -> Decimal:
        return self.memory_gib * GIB


INSTANCE_TYPES: dict[str, Shape] = {
    "gpu_1x_rtx6000": Shape(14, 46, 1),
    "gpu_1x_a10": Shape(30, 200, 1),
    "gpu_1x_a100": Shape(30, 200, 1),
    "gpu_1x_a100_pcie": Shape(30, 200, 1),
    "gpu_1x_a100_sxm4": Shape(30, 200, 1),
    "gpu_1x_h100_pcie": Shape(26, 200, 1),
    "gpu_1x_h100_sxm5": Shape(26, 225, 1),
    "gpu_1x_b200_sxm6": Shape(26, 360, 1),
    "gpu_1x_gh200": Shape(64, 432, 1, arch="aarch64"),
    "gpu_2x_h100_sxm5": Shape(52, 450, 2),
    "gpu_2x_b200_sxm6": Shape(52, 720, 2),
    "gpu_4x_h100_sxm5": Shape(104, 900, 4),
    "gpu_8x_a100": Shape(124, 1800, 8),
    "gpu_8x_a100_80gb_sxm4": Shape(240, 1800, 8),
    "gpu_8x_h100_sxm5": Shape(208, 1800, 8),
    "gpu_8x_b200_sxm6": Shape(208, 2900, 8),
}


@dataclass(frozen=True)
class Reserve:
    """CPU and memory a node's own software holds, so Sophia's pods never count on them."""

    what: str
    cpu: Decimal
    memory: Decimal


# k3s (server, embedded etcd, containerd, flannel, CoreDNS, Traefik, metrics-server, local-path) and
# the OS: the k3s server's config reserves it from the kubelet's allocatable on every node
# (kube-reserved and system-reserved), so the scheduler never places pods on it.
NODE_RESERVE = Reserve("k3s and the OS", Decimal(2), 4 * GIB)
# The GPU operator's pods on each GPU node (operator, feature discovery, device plugin, DCGM
# exporter, validator) and kube-prometheus-stack (Prometheus with its retention, the operator,
# kube-state-metrics, node exporters), on the cluster that installs them.
GPU_OPERATOR_RESERVE = Reserve("the GPU operator", Decimal(1), 2 * GIB)
MONITORING_RESERVE = Reserve("kube-prometheus-stack", Decimal(2), 8 * GIB)
