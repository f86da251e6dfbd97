"""GpuOperator: NVIDIA's GPU operator (the chart vendored in charts/gpu-operator) on k3s, using the
host's driver and NVIDIA Container Toolkit."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_path
from components.pods import PINNED_BY_TAG, checkov_skips, restricted_container, restricted_pod

NAMESPACE = "gpu-operator"
# k3s ships a RuntimeClass `nvidia` (handler `nvidia`, k3s-io/k3s manifests/runtimes.yaml) and adds
# that handler to containerd when it finds the host's nvidia-container-runtime; the operator is
# told to use the same name, so there is one such class, not two.
RUNTIME_CLASS = "nvidia"
SMOKE_TEST_IMAGE = "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"
SMOKE_TEST_UID = 10001
# The smoke test's whole life (pull, schedule, retries) is bounded by the Job itself; Pulumi waits
# a little longer, so a failing test reports the Job's own failure, never Pulumi's timeout.
SMOKE_TEST_DEADLINE_SECONDS = 600
SMOKE_TEST_AWAIT = f"{SMOKE_TEST_DEADLINE_SECONDS + 120}s"
RELEASE_TIMEOUT_SECONDS = 900


@dataclass
class GpuOperatorArgs:
    chart_version: str  # the vendored chart's version (stacks/compat.py)
    monitoring: bool = False
    smoke_test: bool = False


def helm_values(args: GpuOperatorArgs) -> dict:
    """The chart values for k3s on a Lambda Stack host (keys checked against the chart's values.yaml
    by `sophia-infra render`)."""
    return {
        # Lambda Stack preinstalls the driver.
        "driver": {"enabled": False},
        # The host's NVIDIA Container Toolkit, found by k3s at start, runs GPU containers. The
        # operator's toolkit would rewrite k3s's containerd configuration and signal containerd,
        # which restarts the whole k3s process in the middle of `pulumi up` (see stacks/compat.py).
        "toolkit": {"enabled": False},
        # Without the operator's toolkit nothing generates CDI specs for containerd: the device
        # plugin passes GPUs through NVIDIA_VISIBLE_DEVICES to the `nvidia` runtime instead
        # (NVIDIA/gpu-operator controllers/object_controls.go, transformDevicePluginCtrForCDI).
        "cdi": {"enabled": False},
        "operator": {"runtimeClass": RUNTIME_CLASS},
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
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": NAMESPACE,
                # The device plugin, validator and DCGM exporter need host access.
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name="gpu-operator",
            chart=chart_path("gpu-operator"),
            version=args.chart_version,
            namespace=namespace.metadata.name,
            values=helm_values(args),
            atomic=True,
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ready = [release]
        if args.smoke_test:
            self.ready.append(self._smoke_test(name, release))
        self.register_outputs({})

    def _smoke_test(self, name: str, release: k8s.helm.v3.Release) -> k8s.batch.v1.Job:
        gpu_container = restricted_container("cuda-vectoradd", SMOKE_TEST_IMAGE, "500m", "512Mi")
        for bound in ("requests", "limits"):
            gpu_container["resources"][bound]["nvidia.com/gpu"] = "1"
        return k8s.batch.v1.Job(
            f"{name}-smoke-test",
            metadata={"name": "gpu-smoke-test", "namespace": release.namespace, "annotations": checkov_skips(PINNED_BY_TAG)},
            spec={
                "backoffLimit": 2,
                "activeDeadlineSeconds": SMOKE_TEST_DEADLINE_SECONDS,
                "template": {
                    "spec": restricted_pod(
                        SMOKE_TEST_UID,
                        [gpu_container],
                        restartPolicy="Never",
                        runtimeClassName=RUNTIME_CLASS,
                    )
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[release],
                # A Job is immutable: a changed one is deleted, then created (and run) again.
                delete_before_replace=True,
                # pulumi-kubernetes waits 10 minutes for a Job unless told otherwise
                # (provider/pkg/await/job.go, DefaultJobTimeoutMins): here, longer than the Job's
                # deadline. It watches through client-go informers, which re-watch after a short
                # API-server restart.
                custom_timeouts=pulumi.CustomTimeouts(create=SMOKE_TEST_AWAIT, update=SMOKE_TEST_AWAIT),
            ),
        )
