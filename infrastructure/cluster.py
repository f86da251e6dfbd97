"""Where the stack's cluster comes from: one explicit Kubernetes provider for everything.

The stack files disable the default Kubernetes provider, so nothing can land on whatever cluster
a laptop's current kubeconfig points at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_operator import GpuOperator, GpuOperatorArgs
from components.k3s import EtcdS3Args, K3sCluster, K3sClusterArgs
from components.monitoring import PrometheusStack, PrometheusStackArgs
from infrastructure.secrets import secret_output
from stacks.hosts import NODE_RESERVE
from stacks.model import StackConfig
from stacks.quantities import format_quantity


@dataclass
class Connection:
    provider: k8s.Provider
    # What GPU workloads must wait for (the GPU operator); empty when the cluster is not ours.
    gpu_ready: list[pulumi.Resource] = field(default_factory=list)
    # What ServiceMonitors must wait for (the Prometheus stack and its CRDs), likewise.
    monitoring_ready: list[pulumi.Resource] = field(default_factory=list)
    # The kubeconfig this stack created (provision mode), exported as a secret.
    kubeconfig: pulumi.Output[str] | None = None


def connect(config: StackConfig) -> Connection:
    if config.cluster_mode == "kubeconfig":
        # Contents of a kubeconfig are a secret (state, plan, logs); a path stays a path.
        return Connection(_provider(secret_output(config.kubeconfig_secret) or config.kubeconfig, config))
    if config.cluster_mode == "stackReference":
        reference = pulumi.StackReference("cluster-stack", stack_name=config.cluster_stack)
        # require_output fails when the referenced stack has no such output; get_output would
        # give None, and the provider would then load the ambient kubeconfig.
        kubeconfig = reference.require_output("kubeconfig")
        return Connection(_provider(kubeconfig, config, identifier=f"stack:{config.cluster_stack}"))
    return _provision(config)


def _provision(config: StackConfig) -> Connection:
    """Install k3s on the Lambda Labs host, then what the cluster itself needs."""
    assert config.lambda_ip is not None and config.lambda_instance is not None  # provision mode
    ssh_key = secret_output(config.ssh.private_key)
    assert ssh_key is not None  # required by the loader in provision mode
    k3s = config.k3s
    etcd_s3 = None
    if (s3 := k3s.etcd_s3) is not None:
        access_key, secret_key = secret_output(s3.access_key_id), secret_output(s3.secret_access_key)
        assert access_key is not None and secret_key is not None  # required by the loader with etcdS3
        etcd_s3 = EtcdS3Args(s3.bucket, access_key, secret_key, s3.endpoint, s3.region, s3.folder, s3.insecure)
    cluster = K3sCluster(
        "k3s",
        K3sClusterArgs(
            host=config.lambda_ip,
            node_name=config.lambda_instance,
            ssh_user=config.ssh.user,
            ssh_port=config.ssh.port,
            ssh_private_key=ssh_key,
            host_key=config.ssh.host_key,
            agent_host_keys=config.ssh.agent_host_keys,
            version=k3s.version,
            node_labels=k3s.node_labels,
            dns_name=k3s.dns_name,
            agents=k3s.agents,
            keep_on_destroy=k3s.keep_on_destroy,
            token=secret_output(k3s.token),
            agent_token=secret_output(k3s.agent_token),
            snapshot_dir=k3s.snapshot_dir,
            # Production's retained Redis volume lives there (components/redis.py).
            local_storage_path=config.redis.data_path,
            system_reserved=f"cpu={NODE_RESERVE.cpu},memory={format_quantity(NODE_RESERVE.memory, 'Mi')}",
            etcd_s3=etcd_s3,
        ),
        opts=pulumi.ResourceOptions(protect=config.environment == "production"),
    )
    # The cluster is the host: its kubeconfig may be unknown during a preview (a reinstall) or
    # change (a new token), and neither may plan to replace every object on it.
    provider = _provider(cluster.kubeconfig, config, identifier=f"k3s:{config.lambda_instance}@{config.lambda_ip}")
    on_cluster = pulumi.ResourceOptions(provider=provider)
    # k3s applies node-label only when a node registers; later changes arrive through the API,
    # once the node's install has seen it registered and Ready.
    for node, ready in cluster.nodes.items():
        k8s.core.v1.NodePatch(
            f"node-labels-{node}",
            metadata={"name": node, "labels": dict(k3s.node_labels), "annotations": {"pulumi.com/patchForce": "true"}},
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[ready]),
        )
    monitoring_ready: list[pulumi.Resource] = []
    if config.features.monitoring:
        prometheus = PrometheusStack("prometheus", PrometheusStackArgs(config.monitoring_stack.chart_version), opts=on_cluster)
        monitoring_ready.append(prometheus.release)
    gpu = GpuOperator(
        "gpu-operator",
        GpuOperatorArgs(
            chart_version=config.gpu_operator.chart_version,
            monitoring=config.features.monitoring,
            smoke_test=config.gpu_smoke_test,
        ),
        # The DCGM ServiceMonitor needs the Prometheus CRDs.
        opts=pulumi.ResourceOptions(provider=provider, depends_on=monitoring_ready),
    )
    return Connection(provider, gpu.ready, monitoring_ready, cluster.kubeconfig)


def _provider(kubeconfig: pulumi.Input[str] | None, config: StackConfig, identifier: str | None = None) -> k8s.Provider:
    return k8s.Provider(
        "cluster",
        # An empty kubeconfig makes the provider load the ambient one: refuse it in every mode.
        kubeconfig=pulumi.Output.from_input(kubeconfig).apply(_required_kubeconfig),
        context=config.kube_context,
        # Never fall back to the ambient kubeconfig or namespace of whoever runs `pulumi up`.
        namespace=config.namespace,
        # With an identifier, pulumi-kubernetes replaces the provider (and so every object on it)
        # only when the identifier changes, never because the kubeconfig changed or is unknown
        # during a preview (provider/pkg/provider/provider.go, DiffConfig).
        cluster_identifier=identifier,
    )


def _required_kubeconfig(kubeconfig: str | None) -> str:
    if not kubeconfig or not kubeconfig.strip():
        raise ValueError("the cluster's kubeconfig is empty: refusing to let the provider fall back to the ambient one")
    return kubeconfig
