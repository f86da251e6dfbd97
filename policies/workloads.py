"""How Sophia workloads roll out and live through disruptions: one source for the Service
component, the quota and capacity sizing, and the policy pack.

Standard library only, like `production.py`: the pack imports it from its own directory.
"""

from __future__ import annotations

# A rolling update adds one pod before it removes one, and never goes below the desired replicas.
MAX_SURGE = 1
MAX_UNAVAILABLE = 0

# Voluntary disruptions (drains, evictions) take one pod at a time. A pod that is not Ready may
# always be evicted (Kubernetes' `unhealthyPodEvictionPolicy`, policy/v1): a crash-looping replica
# never holds a drain up; on a one-node cluster, maintenance reboots in place (docs/runbook.md).
DISRUPTION_BUDGET = {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def peak_replicas(replicas: int, max_replicas: int | None) -> int:
    """The most replicas a Deployment runs: its autoscaler's maximum when it has one."""
    return replicas if max_replicas is None else max(replicas, max_replicas)


def pods_at_peak(replicas: int, max_replicas: int | None) -> int:
    """Pods a Deployment may hold at once: its peak, plus the surge pod of a rolling update."""
    return peak_replicas(replicas, max_replicas) + MAX_SURGE


def needs_disruption_budget(replicas: int) -> bool:
    """A budget makes sense once one pod can go while another serves."""
    return replicas > 1
