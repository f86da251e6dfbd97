"""PrometheusStack: kube-prometheus-stack (the chart vendored in charts/kube-prometheus-stack),
installed by the stack that owns the cluster, so the ServiceMonitors of every stack on it are
scraped."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_path

NAMESPACE = "monitoring"
RELEASE_TIMEOUT_SECONDS = 900
# k3s runs the controller manager, scheduler, kube-proxy and etcd inside its one k3s process: the
# pods the chart's ServiceMonitors select do not exist, and their `absent(...)` alerts
# (KubeControllerManagerDown, KubeSchedulerDown, KubeProxyDown, etcd members) would fire forever.
# Disabling a component drops its Service, ServiceMonitor and alert rules together (the chart's
# templates/prometheus/rules-1.14/*.yaml are conditioned on `<component>.enabled`).
K3S_EMBEDDED_COMPONENTS = ("kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd")


@dataclass
class PrometheusStackArgs:
    chart_version: str  # the vendored chart's version (stacks/compat.py)


def helm_values() -> dict:
    """The chart values for k3s (keys checked against the chart's values.yaml by `sophia-infra render`)."""
    return {
        # Scrape every ServiceMonitor and PodMonitor, not only the chart's own.
        "prometheus": {
            "prometheusSpec": {
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
            }
        },
        # Grafana's chart default admin password is public; dashboards are added separately.
        "grafana": {"enabled": False},
        **{component: {"enabled": False} for component in K3S_EMBEDDED_COMPONENTS},
    }


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
            chart=chart_path("kube-prometheus-stack"),
            version=args.chart_version,
            namespace=namespace.metadata.name,
            values=helm_values(),
            atomic=True,
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release": self.release.status})
