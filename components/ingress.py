"""Public entry to the Sophia AI API and dashboard through k3s's Traefik ingress controller."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pods import labels


@dataclass
class Route:
    path: str
    service: pulumi.Input[str]
    port: int


@dataclass
class IngressArgs:
    namespace: pulumi.Input[str]
    host: str
    routes: list[Route]
    # An existing TLS Secret in the namespace; None serves plain HTTP.
    tls_secret: str | None = None


class Ingress(pulumi.ComponentResource):
    """Outputs: `host`."""

    host: pulumi.Output[str]

    def __init__(self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:Ingress", name, None, opts)
        spec: dict = {
            "ingressClassName": "traefik",
            "rules": [
                {
                    "host": args.host,
                    "http": {
                        "paths": [
                            {
                                "path": route.path,
                                "pathType": "Prefix",
                                "backend": {"service": {"name": route.service, "port": {"number": route.port}}},
                            }
                            for route in args.routes
                        ]
                    },
                }
            ],
        }
        if args.tls_secret:
            spec["tls"] = [{"hosts": [args.host], "secretName": args.tls_secret}]
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "ingress")},
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.host = pulumi.Output.from_input(args.host)
        self.register_outputs({"host": self.host})
