"""GpuOperator: NVIDIA's GPU operator Helm chart, configured for k3s's embedded containerd."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pods import CONTAINER_SECURITY_CONTEXT, PINNED_BY_TAG, PULL_POLICY, checkov_skips, pod_security_context
from stacks.compat import containerd_template, incompatibility

CHART_REPO = "https://helm.ngc.nvidia.com/nvidia"
NAMESPACE = "gpu-operator"
K3S_CONTAINERD_SOCKET = "/run/k3s/containerd/containerd.sock"
# k3s creates a RuntimeClass `nvidia` (handler `nvidia`) once it finds the NVIDIA runtime; the
# operator is told to use that very name, so there is one such class, not two.
RUNTIME_CLASS = "nvidia"
SMOKE_TEST_IMAGE = "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"
SMOKE_TEST_UID = 10001


@dataclass
class GpuOperatorArgs:
    chart_version: str
    k3s_version: str
    driver_enabled: bool = False
    monitoring: bool = False
    smoke_test: bool = False


def helm_values(args: GpuOperatorArgs) -> dict:
    """The chart values k3s needs; raises ValueError for a pair of versions known not to work."""
    reason = incompatibility(args.k3s_version, args.chart_version)
    if reason:
        raise ValueError(reason)
    env = [{"name": "CONTAINERD_SOCKET", "value": K3S_CONTAINERD_SOCKET}]
    template = containerd_template(args.k3s_version, args.chart_version)
    if template is not None:
        env.append({"name": "CONTAINERD_CONFIG", "value": template})
    return {
        "driver": {"enabled": args.driver_enabled},
        "operator": {"runtimeClass": RUNTIME_CLASS},
        "toolkit": {"env": env},
        "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": args.monitoring}},
    }


class GpuOperator(pulumi.ComponentResource):
    """The operator in its own (privileged) namespace and, optionally, a CUDA smoke test that must
    pass for the deployment to succeed.

    Outputs: `ready` (what GPU workloads must wait for: the release and the smoke test).
    """

    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:GpuOperator", name, None, opts)
        values = helm_values(args)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": NAMESPACE,
                # The driver/toolkit daemonsets need host access.
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name="gpu-operator",
            chart="gpu-operator",
            version=args.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=namespace.metadata.name,
            values=values,
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ready = [release]
        if args.smoke_test:
            self.ready.append(self._smoke_test(name, release))
        self.register_outputs({})

    def _smoke_test(self, name: str, release: k8s.helm.v3.Release) -> k8s.batch.v1.Job:
        return k8s.batch.v1.Job(
            f"{name}-smoke-test",
            metadata={"name": "gpu-smoke-test", "namespace": release.namespace, "annotations": checkov_skips(PINNED_BY_TAG)},
            spec={
                "backoffLimit": 2,
                "activeDeadlineSeconds": 900,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "runtimeClassName": RUNTIME_CLASS,
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(SMOKE_TEST_UID),
                        "containers": [
                            {
                                "name": "cuda-vectoradd",
                                "image": SMOKE_TEST_IMAGE,
                                "imagePullPolicy": PULL_POLICY,
                                "resources": {
                                    bound: {"nvidia.com/gpu": "1", "cpu": "500m", "memory": "512Mi"}
                                    for bound in ("requests", "limits")
                                },
                                "securityContext": CONTAINER_SECURITY_CONTEXT,
                            }
                        ],
                    }
                },
            },
            # A Job is immutable: a changed one is deleted, then created (and run) again.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[release], delete_before_replace=True),
        )
