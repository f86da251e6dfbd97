"""Whether the stacks that share a cluster fit it at their peak.

A cluster this project provisions offers what its instance types have (`stacks/hosts.py`) less
what each node keeps for k3s and the OS, the GPU operator's pods on every node, and
kube-prometheus-stack when the cluster-owning stack installs it. The stacks of this project that
attach to it (`sophia-ai:clusterStack`) are accounted with it: by default the three namespaces
share the production host. A cluster of another origin offers `sophia-ai:clusterCapacity`.

`check` and the program under `pulumi up` both run `problems`: a stack whose peak does not fit is
refused before anything is registered, naming the keys and the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from infrastructure.sizing import Peak, peak
from policies.production import STACK_ENVIRONMENTS
from stacks import loader
from stacks.hosts import GIB, GPU_OPERATOR_RESERVE, INSTANCE_TYPES, MONITORING_RESERVE, NODE_RESERVE, Reserve
from stacks.model import StackConfig, owning_stack
from stacks.quantities import parse_quantity


@dataclass(frozen=True)
class Capacity:
    """What a cluster gives the Sophia namespaces, and how that was worked out."""

    source: str  # the keys it comes from, for messages
    cpu: Decimal
    memory: Decimal
    gpus: int
    # Allocatable CPU and memory of its largest node (a pod must fit one node).
    node: tuple[Decimal, Decimal]
    reserves: tuple[Reserve, ...] = ()


def cluster_capacity(config: StackConfig) -> Capacity | None:
    """The capacity of the cluster `config` provisions or declares; None when it attaches to
    another stack of this project, which provisions it."""
    if config.lambda_ip is not None:
        server = INSTANCE_TYPES[config.lambda_instance_type]
        agent = INSTANCE_TYPES[config.k3s.agent_instance_type or config.lambda_instance_type]
        shapes = [server] + [agent] * len(config.k3s.agents)
        reserves = [NODE_RESERVE] * len(shapes) + [GPU_OPERATOR_RESERVE] * len(shapes)
        if config.features.monitoring:
            reserves.append(MONITORING_RESERVE)
        node = max((shape.cpu - NODE_RESERVE.cpu, shape.memory - NODE_RESERVE.memory) for shape in shapes)
        source = f"lambdaLabs:instanceType {config.lambda_instance_type}"
        if config.k3s.agents:
            source += f" and {len(config.k3s.agents)} agent(s) of {config.k3s.agent_instance_type or config.lambda_instance_type}"
        return Capacity(
            source,
            sum((shape.cpu for shape in shapes), Decimal(0)) - sum((r.cpu for r in reserves), Decimal(0)),
            sum((shape.memory for shape in shapes), Decimal(0)) - sum((r.memory for r in reserves), Decimal(0)),
            sum(shape.gpus for shape in shapes),
            node,
            _merged(reserves),
        )
    declared = config.cluster_capacity
    if declared is not None:
        cpu, memory = parse_quantity(declared.cpu), parse_quantity(declared.memory)
        return Capacity("sophia-ai:clusterCapacity", cpu, memory, declared.gpus, (cpu, memory))
    return None


def _merged(reserves: list[Reserve]) -> tuple[Reserve, ...]:
    """One entry per kind of reserve, summed over the nodes."""
    totals: dict[str, Reserve] = {}
    for reserve in reserves:
        seen = totals.get(reserve.what)
        totals[reserve.what] = (
            reserve if seen is None else Reserve(reserve.what, seen.cpu + reserve.cpu, seen.memory + reserve.memory)
        )
    return tuple(totals.values())


def sharing(stack: str, config: StackConfig, project_dir: Path) -> tuple[str, dict[str, StackConfig]]:
    """The stack that owns the cluster `stack` runs on, and every stack of this project on it
    (this one as `config`, the others read from their stack files; one that does not validate is
    left out, its own check reports it)."""
    owner = stack if config.lambda_ip is not None else owning_stack(config)
    members = {stack: config}
    if owner is None:
        return stack, members
    for name in sorted(STACK_ENVIRONMENTS, key=lambda other: other != owner):
        path = loader.stack_file(project_dir, name)
        if name == stack or not path.is_file():
            continue
        try:
            other = loader.load_stack_file(path, name).config
        except loader.ConfigError:
            continue
        if name == owner or owning_stack(other) == owner:
            members[name] = other
    return owner, members


def _cpus(value: Decimal) -> str:
    number = f"{value.normalize():f}" if value == value.to_integral() else f"{value:.2f}"
    return f"{number} CPU" if value == 1 else f"{number} CPUs"


def _gib(value: Decimal) -> str:
    return f"{value / GIB:.1f} GiB"


def check(stack: str, config: StackConfig, project_dir: Path) -> None:
    """Raise `loader.ConfigError` when the stacks sharing `stack`'s cluster do not fit it."""
    lines = problems(stack, config, project_dir)
    if lines:
        raise loader.ConfigError(lines)


def problems(stack: str, config: StackConfig, project_dir: Path) -> list[str]:
    """`file: key: message` lines for a cluster the stacks sharing it do not fit."""
    source = f"Pulumi.{stack}.yaml"
    owner, members = sharing(stack, config, project_dir)
    capacity = cluster_capacity(members[owner]) if owner in members else None
    if capacity is None:
        return []  # attached to a stack whose file is not here or does not validate: nothing to add up
    if owner != stack:
        capacity = replace(capacity, source=f"{capacity.source} (Pulumi.{owner}.yaml)")
    peaks: dict[str, Peak] = {name: peak(member) for name, member in members.items()}
    lines: list[str] = []
    mine = peaks[stack]
    largest_cpu, largest_memory = mine.largest
    if largest_cpu > capacity.node[0] or largest_memory > capacity.node[1]:
        lines.append(
            f"{source}: sophia-ai:resources: a pod of {_cpus(largest_cpu)} and {_gib(largest_memory)} fits no node:"
            f" the largest offers {_cpus(capacity.node[0])} and {_gib(capacity.node[1])} ({capacity.source},"
            f" after {NODE_RESERVE.what})"
        )
    need_cpu = sum((p.cpu for p in peaks.values()), Decimal(0))
    need_memory = sum((p.memory for p in peaks.values()), Decimal(0))
    if need_cpu > capacity.cpu or need_memory > capacity.memory:
        shares = ", ".join(f"{name} {_cpus(p.cpu)} and {_gib(p.memory)}" for name, p in peaks.items())
        reserved = ", ".join(f"{r.what} ({_cpus(r.cpu)}, {_gib(r.memory)})" for r in capacity.reserves)
        lines.append(
            f"{source}: sophia-ai:resources: at their peak (every Deployment at sophia-ai:autoscaler.maxReplicas, or"
            f" sophia-ai:replicas, plus a surge pod; Redis; the collector) the stacks on this cluster need"
            f" {_cpus(need_cpu)} and {_gib(need_memory)} ({shares}), but {capacity.source} offers"
            f" {_cpus(capacity.cpu)} and {_gib(capacity.memory)}"
            + (f" after {reserved}" if reserved else "")
            + "; lower sophia-ai:replicas, sophia-ai:autoscaler.maxReplicas or sophia-ai:resources, or use a larger host"
        )
    need_gpus = sum(p.gpus for p in peaks.values())
    if need_gpus > capacity.gpus:
        lines.append(
            f"{source}: sophia-ai:gpuServices: at their peak (replicas at their maximum plus a surge pod, one GPU each)"
            f" the stacks on this cluster need {need_gpus} GPUs, but {capacity.source} has {capacity.gpus}"
        )
    return lines
