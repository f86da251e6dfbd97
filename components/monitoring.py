"""PrometheusStack: kube-prometheus-stack, installed by the stack that owns the cluster, so the
ServiceMonitors of every stack on it are scraped."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

CHART_REPO = "https://prometheus-community.github.io/helm-charts"
NAMESPACE = "monitoring"


@dataclass
class PrometheusStackArgs:
    chart_version: str


class PrometheusStack(pulumi.ComponentResource):
    """Outputs: `release` (what ServiceMonitors need: the CRDs come with it)."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: PrometheusStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:PrometheusStack", name, None, opts)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            # node-exporter needs the host's network and PID namespace.
            metadata={"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="kube-prometheus-stack",
            chart="kube-prometheus-stack",
            version=args.chart_version,
            repository_opts={"repo": CHART_REPO},
            namespace=namespace.metadata.name,
            values={
                # Scrape every ServiceMonitor and PodMonitor, not only the chart's own.
                "prometheus": {
                    "prometheusSpec": {
                        "serviceMonitorSelectorNilUsesHelmValues": False,
                        "podMonitorSelectorNilUsesHelmValues": False,
                    }
                },
                # Grafana's chart default admin password is public; dashboards are added separately.
                "grafana": {"enabled": False},
            },
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release": self.release.status})
