"""The OpenTelemetry Collector of a namespace: receives OTLP from the services and exports it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.pods import (
    CONTAINER_SECURITY_CONTEXT,
    PINNED_BY_TAG,
    PULL_POLICY,
    ROLLING_UPDATE,
    SOPHIA_PODS,
    TMP_MOUNT,
    TMP_VOLUME,
    checkov_skips,
    disruption_budget,
    labels,
    pod_security_context,
    resources,
    selector,
)

OTLP_GRPC = 4317
OTLP_HTTP = 4318
HEALTH = 13133
COLLECTOR_UID = 10001
COLLECTOR_CPU = "200m"
COLLECTOR_MEMORY = "256Mi"


@dataclass
class CollectorArgs:
    namespace: pulumi.Input[str]
    image: str
    environment: str
    # OTLP/gRPC endpoint to export to; None logs spans (debug exporter) instead.
    exporter_endpoint: str | None = None
    # Export in plaintext; otherwise TLS with the system's CAs (the collector's default).
    exporter_insecure: bool = False
    # More than one (production) also gets a PodDisruptionBudget.
    replicas: int = 1


def collector_config(args: CollectorArgs) -> dict:
    # The otlp exporter uses TLS unless `tls.insecure` is set, even for an http:// endpoint
    # (opentelemetry-collector config/configgrpc: only LoadTLSConfig's nil result means plaintext).
    exporter: dict = (
        {"otlp": {"endpoint": args.exporter_endpoint, "tls": {"insecure": args.exporter_insecure}}}
        if args.exporter_endpoint
        else {"debug": {"verbosity": "basic"}}
    )
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC}"},
                    "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP}"},
                }
            }
        },
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
            "resource": {"attributes": [{"key": "deployment.environment", "value": args.environment, "action": "upsert"}]},
            "batch": {},
        },
        "exporters": exporter,
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH}"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "resource", "batch"],
                    "exporters": list(exporter),
                }
            },
        },
    }


class OtelCollector(pulumi.ComponentResource):
    """A single collector Deployment with its config in a ConfigMap, reachable from Sophia pods.

    Outputs: `endpoint` (http://host:4317, for OTEL_EXPORTER_OTLP_ENDPOINT).
    """

    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: CollectorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:OtelCollector", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = {"name": name, "namespace": args.namespace, "labels": labels(name, "telemetry")}
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta,
            data={"config.yaml": yaml.safe_dump(collector_config(args), sort_keys=True)},
            opts=child,
        )
        probe = {"httpGet": {"path": "/", "port": HEALTH}, "periodSeconds": 10}
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={**meta, "annotations": checkov_skips(PINNED_BY_TAG)},
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": selector(name)},
                "strategy": ROLLING_UPDATE,
                "template": {
                    "metadata": {"labels": labels(name, "telemetry")},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(COLLECTOR_UID),
                        "containers": [
                            {
                                "name": "collector",
                                "image": args.image,
                                "imagePullPolicy": PULL_POLICY,
                                "args": ["--config=/conf/config.yaml"],
                                "ports": [
                                    {"name": "otlp-grpc", "containerPort": OTLP_GRPC},
                                    {"name": "otlp-http", "containerPort": OTLP_HTTP},
                                ],
                                "resources": resources(COLLECTOR_CPU, COLLECTOR_MEMORY),
                                "securityContext": CONTAINER_SECURITY_CONTEXT,
                                "livenessProbe": probe,
                                "readinessProbe": probe,
                                "volumeMounts": [{"name": "config", "mountPath": "/conf", "readOnly": True}, TMP_MOUNT],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": config.metadata.name}}, TMP_VOLUME],
                    },
                },
            },
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec={
                "selector": selector(name),
                "ports": [
                    {"name": "otlp-grpc", "port": OTLP_GRPC, "targetPort": "otlp-grpc"},
                    {"name": "otlp-http", "port": OTLP_HTTP, "targetPort": "otlp-http"},
                ],
            },
            opts=child,
        )
        disruption_budget(name, meta, args.replicas, child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": name, "namespace": args.namespace},
            spec={
                "podSelector": {"matchLabels": selector(name)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [SOPHIA_PODS],
                        "ports": [{"protocol": "TCP", "port": OTLP_GRPC}, {"protocol": "TCP", "port": OTLP_HTTP}],
                    }
                ],
                # The exporter's backend may live anywhere; OTLP/gRPC or HTTPS.
                "egress": [{"ports": [{"protocol": "TCP", "port": OTLP_GRPC}, {"protocol": "TCP", "port": 443}]}],
            },
            opts=child,
        )
        self.endpoint = pulumi.Output.concat(
            "http://", service.metadata.name, ".", service.metadata.namespace, ".svc:", str(OTLP_GRPC)
        )
        self.register_outputs({"endpoint": self.endpoint})
