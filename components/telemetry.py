"""The OpenTelemetry Collector of a namespace: receives OTLP from the services and exports it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.pods import (
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
    # Its NetworkPolicy's rules: the services that send it traces, the backend it exports to.
    ingress: Sequence[Mapping[str, Any]] = ()
    egress: Sequence[Mapping[str, Any]] = ()


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
                    "spec": restricted_pod(
                        COLLECTOR_UID,
                        [
                            restricted_container(
                                "collector",
                                args.image,
                                COLLECTOR_CPU,
                                COLLECTOR_MEMORY,
                                [{"name": "config", "mountPath": "/conf", "readOnly": True}],
                                args=["--config=/conf/config.yaml"],
                                ports=[
                                    {"name": "otlp-grpc", "containerPort": OTLP_GRPC},
                                    {"name": "otlp-http", "containerPort": OTLP_HTTP},
                                ],
                                livenessProbe=probe,
                                readinessProbe=probe,
                            )
                        ],
                        [{"name": "config", "configMap": {"name": config.metadata.name}}],
                    ),
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
        network_policy(name, args.namespace, args.ingress, args.egress, child)
        self.endpoint = pulumi.Output.concat(
            "http://", service.metadata.name, ".", service.metadata.namespace, ".svc:", str(OTLP_GRPC)
        )
        self.register_outputs({"endpoint": self.endpoint})
