"""Where the stack's cluster comes from: one explicit Kubernetes provider for everything.

The stack files disable the default Kubernetes provider, so nothing can land on whatever cluster
a laptop's current kubeconfig points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from stacks.model import StackConfig


@dataclass
class Connection:
    provider: k8s.Provider
    # What GPU workloads must wait for (the GPU operator); empty when the cluster is not ours.
    gpu_ready: list[pulumi.Resource] = field(default_factory=list)
    # The kubeconfig this stack created (provision mode), exported as a secret.
    kubeconfig: pulumi.Output[str] | None = None


def connect(config: StackConfig) -> Connection:
    if config.cluster_mode == "kubeconfig":
        return Connection(_provider(config.kubeconfig, config))
    if config.cluster_mode == "stackReference":
        reference = pulumi.StackReference("cluster-stack", stack_name=config.cluster_stack)
        return Connection(_provider(reference.get_output("kubeconfig"), config))
    raise NotImplementedError("provision mode")


def _provider(kubeconfig: pulumi.Input[str] | None, config: StackConfig) -> k8s.Provider:
    return k8s.Provider(
        "cluster",
        kubeconfig=kubeconfig,
        context=config.kube_context,
        # Never fall back to the ambient kubeconfig or namespace of whoever runs `pulumi up`.
        namespace=config.namespace,
    )
