"""The namespace's ResourceQuota, sized from what the stack runs (with room for one surge pod
per Deployment during a rolling update)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from components.backup import HOST_CLAIM_SIZE
from components.redis import ADMIN_CPU, ADMIN_MEMORY
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
    # Redis's administrative pods: the ACL sync Job, and a backup that may run at the same time.
    backup = config.redis.backup
    add(1 if backup is None else 2, parse_quantity(ADMIN_CPU), parse_quantity(ADMIN_MEMORY))
    if config.features.tracing:
        add(collector_replicas(config) + 1, parse_quantity(COLLECTOR_CPU), parse_quantity(COLLECTOR_MEMORY))
    storage = config.redis.storage_size
    if backup is not None and backup.host_path is not None:
        storage = format_quantity(parse_quantity(storage) + parse_quantity(HOST_CLAIM_SIZE), "Mi")
    return Quota(format_quantity(cpu, "m"), format_quantity(memory, "Mi"), pods, storage)
