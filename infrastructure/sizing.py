"""What a stack asks of its cluster at its peak, and its namespace's ResourceQuota, which is that
peak: every Deployment at its autoscaler's maximum plus one surge pod of a rolling update, Redis
and its administrative Jobs, the OpenTelemetry collector (and its surge pod). Requests equal
limits for every Sophia container, so the quota caps both."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from components.backup import HOST_CLAIM_SIZE
from components.redis import ADMIN_CPU, ADMIN_MEMORY
from components.telemetry import COLLECTOR_CPU, COLLECTOR_MEMORY
from infrastructure.catalog import ServiceSpec, services
from policies.workloads import pods_at_peak
from stacks.model import StackConfig
from stacks.quantities import format_quantity, parse_quantity


@dataclass(frozen=True)
class Quota:
    cpu: str
    memory: str
    pods: int
    storage: str
    gpus: int


@dataclass
class Peak:
    """CPU (cores) and memory (bytes) requested at once at the stack's peak, its pods and GPUs,
    and its largest pod (which must fit one node)."""

    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)
    pods: int = 0
    gpus: int = 0
    largest: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))
    # What the peak is made of, for messages: (what, pods, CPU, memory).
    parts: list[tuple[str, int, Decimal, Decimal]] = field(default_factory=list)

    def add(self, what: str, count: int, cpu: str, memory: str, gpus: int = 0) -> None:
        pod_cpu, pod_memory = parse_quantity(cpu), parse_quantity(memory)
        self.pods += count
        self.cpu += count * pod_cpu
        self.memory += count * pod_memory
        self.gpus += count * gpus
        self.largest = (max(self.largest[0], pod_cpu), max(self.largest[1], pod_memory))
        self.parts.append((what, count, count * pod_cpu, count * pod_memory))


def collector_replicas(config: StackConfig) -> int:
    """Production keeps tracing up through a node drain or a rollout."""
    return 2 if config.environment == "production" else 1


def peak(config: StackConfig, specs: list[ServiceSpec] | None = None) -> Peak:
    found = Peak()
    max_replicas = config.autoscaler.max_replicas if config.features.autoscaling else None
    for spec in services(config) if specs is None else specs:
        gpus = 1 if spec.config_name in config.gpu_services else 0
        found.add(spec.name, pods_at_peak(spec.replicas, max_replicas), spec.cpu, spec.memory, gpus)
    found.add("redis", 1, config.redis.resources.cpu, config.redis.resources.memory)
    # Redis's administrative pods: the ACL sync Job, and a backup that may run at the same time.
    found.add("redis jobs", 1 if config.redis.backup is None else 2, ADMIN_CPU, ADMIN_MEMORY)
    if config.features.tracing:
        found.add("otel-collector", pods_at_peak(collector_replicas(config), None), COLLECTOR_CPU, COLLECTOR_MEMORY)
    return found


def quota(config: StackConfig, specs: list[ServiceSpec]) -> Quota:
    at_peak = peak(config, specs)
    storage = config.redis.storage_size
    backup = config.redis.backup
    if backup is not None and backup.host_path is not None:
        storage = format_quantity(parse_quantity(storage) + parse_quantity(HOST_CLAIM_SIZE), "Mi")
    return Quota(format_quantity(at_peak.cpu, "m"), format_quantity(at_peak.memory, "Mi"), at_peak.pods, storage, at_peak.gpus)
