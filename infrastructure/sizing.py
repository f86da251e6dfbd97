"""The namespace's ResourceQuota, sized from what the stack runs (with room for one surge pod
per Deployment during a rolling update)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from components.telemetry import COLLECTOR_CPU, COLLECTOR_MEMORY
from infrastructure.catalog import ServiceSpec
from stacks.model import StackConfig
from stacks.quantities import format_quantity, parse_quantity


@dataclass(frozen=True)
class Quota:
    cpu: str
    memory: str
    pods: int
    storage: str


def collector_replicas(config: StackConfig) -> int:
    """Production keeps tracing up through a node drain or a rollout."""
    return 2 if config.environment == "production" else 1


def quota(config: StackConfig, specs: list[ServiceSpec]) -> Quota:
    per_pod = (parse_quantity(config.resources.cpu), parse_quantity(config.resources.memory))
    pods = 0
    cpu = memory = Decimal(0)

    def add(count: int, pod_cpu: Decimal, pod_memory: Decimal) -> None:
        nonlocal pods, cpu, memory
        pods += count
        cpu += count * pod_cpu
        memory += count * pod_memory

    for spec in specs:
        peak = max(spec.replicas, config.autoscaler.max_replicas) if config.features.autoscaling else spec.replicas
        add(peak + 1, *per_pod)
    add(1, parse_quantity(config.redis.resources.cpu), parse_quantity(config.redis.resources.memory))
    if config.features.tracing:
        add(collector_replicas(config) + 1, parse_quantity(COLLECTOR_CPU), parse_quantity(COLLECTOR_MEMORY))
    return Quota(format_quantity(cpu, "m"), format_quantity(memory, "Mi"), pods, config.redis.storage_size)
