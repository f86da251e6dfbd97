"""One Sophia AI service: Deployment, Service, NetworkPolicy, a PodDisruptionBudget when it runs
more than one replica and, with the features on, its HorizontalPodAutoscaler and ServiceMonitor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pods import (
    PART_OF,
    PINNED_BY_TAG,
    ROLLING_UPDATE,
    checkov_skips,
    disruption_budget,
    labels,
    network_policy,
    restricted_container,
    restricted_pod,
    selector,
)
from policies.workloads import peak_replicas

METRICS_PORT = 9090
SERVICE_UID = 10001
# The platform contract (README "The services"): liveness on /health, readiness on /ready.
HEALTH_PATH = "/health"
READY_PATH = "/ready"
# The services stop within it on SIGTERM (gunicorn's graceful timeout is 25 s).
GRACE_PERIOD_SECONDS = 30
# Worker processes: the container's CPU limit in whole CPUs. The kubelet rounds up
# (kubernetes pkg/api/v1/resource/helpers.go, convertResourceCPUToString: ceil(milli / divisor)),
# so 500m gives 1 and 2000m gives 2.
WEB_CONCURRENCY = {"name": "WEB_CONCURRENCY", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}}


@dataclass
class Autoscaling:
    max_replicas: int
    target_cpu_utilization: int


@dataclass
class Tracing:
    endpoint: pulumi.Input[str]
    environment: str


@dataclass
class ServiceArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    port: int
    replicas: int
    cpu: str
    memory: str
    component: str
    # Plain (non-secret) environment.
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Environment variable -> (Secret name, key): secrets reach pods only by reference.
    secret_env: Mapping[str, tuple[pulumi.Input[str], str]] = field(default_factory=dict)
    # Pod template annotations: a changed value restarts the pods (e.g. a new Redis password).
    pod_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Secrets whose every key becomes an environment variable.
    env_from_secrets: Sequence[pulumi.Input[str]] = ()
    # Its NetworkPolicy's rules: who may open a connection to it, and to what it may open one.
    ingress: Sequence[Mapping[str, Any]] = ()
    egress: Sequence[Mapping[str, Any]] = ()
    gpus: int = 0
    autoscaling: Autoscaling | None = None
    monitoring: bool = False
    tracing: Tracing | None = None
    image_pull_secret: pulumi.Input[str] | None = None
    # The image is a digest (built by this stack) rather than a pinned tag.
    image_is_digest: bool = False
    # What the ServiceMonitor waits for (the Prometheus CRDs, when this stack installs them).
    monitoring_ready: Sequence[pulumi.Resource] = ()


class Service(pulumi.ComponentResource):
    """A Sophia service running as a restricted, read-only, non-root Deployment behind a
    ClusterIP Service; liveness on `/health`, readiness on `/ready`; one worker process per CPU of
    its limit (WEB_CONCURRENCY); rolling updates that never go below the desired replicas
    (maxUnavailable 0).

    Outputs: `service_name`, `deployment_name`.
    """

    service_name: pulumi.Output[str]
    deployment_name: pulumi.Output[str]

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:Service", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = {"name": name, "namespace": args.namespace, "labels": labels(name, args.component)}
        skips = [] if args.image_is_digest else [PINNED_BY_TAG]
        if args.secret_env or args.env_from_secrets:
            skips.append(
                (
                    "CKV_K8S_35",
                    "the services read credentials from environment variables (their contract); the values are Secret references",
                )
            )
        ports = [{"name": "http", "containerPort": args.port}]
        service_ports = [{"name": "http", "port": args.port, "targetPort": "http"}]
        env: list[dict] = [{"name": "PORT", "value": str(args.port)}, WEB_CONCURRENCY]
        env += [{"name": key, "value": value} for key, value in args.env.items()]
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key_in_secret}}}
            for key, (secret, key_in_secret) in args.secret_env.items()
        ]
        if args.monitoring:
            ports.append({"name": "metrics", "containerPort": METRICS_PORT})
            service_ports.append({"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"})
            env.append({"name": "METRICS_PORT", "value": str(METRICS_PORT)})
        if args.tracing is not None:
            env += [
                {"name": "OTEL_SERVICE_NAME", "value": name},
                {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": args.tracing.endpoint},
                {
                    "name": "OTEL_RESOURCE_ATTRIBUTES",
                    "value": f"deployment.environment={args.tracing.environment},service.namespace={PART_OF}",
                },
            ]
        container = restricted_container(
            name,
            args.image,
            args.cpu,
            args.memory,
            ports=ports,
            env=env,
            envFrom=[{"secretRef": {"name": secret}} for secret in args.env_from_secrets],
            livenessProbe={
                "httpGet": {"path": HEALTH_PATH, "port": "http"},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
                "failureThreshold": 3,
            },
            readinessProbe={
                "httpGet": {"path": READY_PATH, "port": "http"},
                "initialDelaySeconds": 3,
                "periodSeconds": 5,
                # Each dependency check of /ready takes at most 1 s; they run concurrently.
                "timeoutSeconds": 3,
                "failureThreshold": 2,
            },
        )
        container_resources = container["resources"]
        pod_spec = restricted_pod(SERVICE_UID, [container], terminationGracePeriodSeconds=GRACE_PERIOD_SECONDS)
        if args.image_pull_secret is not None:
            pod_spec["imagePullSecrets"] = [{"name": args.image_pull_secret}]
        if args.gpus:
            for bound in ("requests", "limits"):
                container_resources[bound]["nvidia.com/gpu"] = str(args.gpus)
            pod_spec["nodeSelector"] = {"gpu": "true"}
            pod_spec["runtimeClassName"] = "nvidia"
        deployment_spec: dict = {
            "selector": {"matchLabels": selector(name)},
            "minReadySeconds": 5,
            "strategy": ROLLING_UPDATE,
            "template": {
                "metadata": {"labels": labels(name, args.component), "annotations": dict(args.pod_annotations)},
                "spec": pod_spec,
            },
        }
        # With an autoscaler the HPA owns the replica count; setting it here would fight it.
        if args.autoscaling is None:
            deployment_spec["replicas"] = args.replicas
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={**meta, "annotations": checkov_skips(*skips)},
            spec=deployment_spec,
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec={"selector": selector(name), "ports": service_ports},
            opts=child,
        )
        network_policy(name, args.namespace, args.ingress, args.egress, child)
        # A drain never takes more than one replica at a time, with or without an autoscaler.
        disruption_budget(name, meta, args.replicas, child)
        if args.autoscaling is not None:
            self._autoscaling(name, args, args.autoscaling, deployment, child)
        if args.monitoring:
            k8s.apiextensions.CustomResource(
                f"{name}-service-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata=meta,
                spec={
                    "selector": {"matchLabels": selector(name)},
                    "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[service, *args.monitoring_ready]),
            )
        self.service_name = service.metadata.name
        self.deployment_name = deployment.metadata.name
        self.register_outputs({"service_name": self.service_name, "deployment_name": self.deployment_name})

    @staticmethod
    def _autoscaling(
        name: str, args: ServiceArgs, scaling: Autoscaling, deployment: k8s.apps.v1.Deployment, child: pulumi.ResourceOptions
    ) -> None:
        meta = {"name": name, "namespace": args.namespace, "labels": labels(name, args.component)}
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=meta,
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name},
                "minReplicas": args.replicas,
                "maxReplicas": peak_replicas(args.replicas, scaling.max_replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                        },
                    }
                ],
            },
            opts=child,
        )
