"""The Sophia AI guardrails as Pulumi CrossGuard policies.

Only this module's policies; the pack (`__main__.py`) constructs the PolicyPack, which starts a
server. Self-contained (pulumi-policy and the standard-library `production.py` beside it): the pack
runs in a virtualenv of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

if __package__:  # imported as `policies.rules` (the tests, the project's tooling)
    from .production import (
        ALLOWED_REGISTRIES,
        K3S_VERSION,
        MIN_PRODUCTION_REPLICAS,
        PRODUCTION_STACK,
        is_allowed_registry,
        is_mutable_image,
    )
    from .workloads import DISRUPTION_BUDGET, needs_disruption_budget
else:  # the pack runtime runs `policies/` itself: `from rules import POLICIES`
    from production import (  # type: ignore[no-redef]
        ALLOWED_REGISTRIES,
        K3S_VERSION,
        MIN_PRODUCTION_REPLICAS,
        PRODUCTION_STACK,
        is_allowed_registry,
        is_mutable_image,
    )
    from workloads import DISRUPTION_BUDGET, needs_disruption_budget  # type: ignore[no-redef]

DEFAULT_REGISTRIES = list(ALLOWED_REGISTRIES)
_POD_TEMPLATES = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
}
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL|PASSPHRASE", re.IGNORECASE)
_K3S_VERSION = re.compile(rf"K3S_VERSION=['\"]?{K3S_VERSION}['\"]?(\s|$)")
_KUBECONFIG_644 = re.compile(r"write-kubeconfig-mode[\"']?\s*[:=]?\s*[\"']?0?644")
_CHART_VERSION = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?")


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::...` -> `<stack>`."""
    return urn.split("::")[0].rsplit(":", 1)[-1]


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if resource_type not in _POD_TEMPLATES:
        return None
    return ((props.get("spec") or {}).get("template") or {}).get("spec") or {}


def containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def _text(value: Any) -> str:
    """A property as text, secret or not (a policy sees secrets unwrapped, or as `.value`)."""
    return str(getattr(value, "value", value) or "")


# --- resource policies --------------------------------------------------------------------------


def _container_requirements(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = pod_spec(args.resource_type, args.props)
    if pod is None:
        return
    pod_security = pod.get("securityContext") or {}
    for container in containers(pod):
        name = container.get("name", "?")
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (resources.get(bound) or {})]
            if missing:
                report(f"container {name}: {bound} must set {' and '.join(missing)}", None)
        if args.resource_type != "kubernetes:batch/v1:Job":
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    report(f"container {name}: needs a {probe}", None)
        security = container.get("securityContext") or {}
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
            report(f"container {name}: must run as non-root (runAsNonRoot: true)", None)
        if security.get("allowPrivilegeEscalation") is not False:
            report(f"container {name}: must set allowPrivilegeEscalation: false", None)
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            report(f"container {name}: must drop ALL capabilities", None)
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            report(f"container {name}: needs the RuntimeDefault seccomp profile", None)


def _image_provenance(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = pod_spec(args.resource_type, args.props)
    if pod is None:
        return
    registries = list(args.get_config().get("allowedRegistries") or DEFAULT_REGISTRIES)
    production = stack_of(args.urn) == PRODUCTION_STACK
    for container in containers(pod):
        image = str(container.get("image", ""))
        if not is_allowed_registry(image, registries):
            report(f"container {container.get('name')}: image {image!r} is not from an allowed registry {registries}", None)
        if production and is_mutable_image(image):
            report(f"container {container.get('name')}: production needs an immutable tag or digest, got {image!r}", None)


def _no_plain_secret_env(args: ResourceValidationArgs, report: ReportViolation) -> None:
    pod = pod_spec(args.resource_type, args.props)
    if pod is None:
        return
    for container in containers(pod):
        for env in container.get("env") or []:
            if "value" in env and _SECRET_NAME.search(str(env.get("name", ""))):
                report(
                    f"container {container.get('name')}: {env['name']} must come from a Secret (valueFrom), not a plain value",
                    None,
                )


def _k3s_install_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "command:remote:Command":
        return
    create, stdin = _text(args.props.get("create")), _text(args.props.get("stdin"))
    if not any(marker in create for marker in ("k3s-install", "get.k3s.io", "INSTALL_K3S")):
        return
    if not _K3S_VERSION.search(create):
        report("the k3s install must pin a full version (K3S_VERSION=v1.x.y+k3sN)", None)
    if "get.k3s.io" in create or "INSTALL_K3S_CHANNEL" in create:
        report("k3s must not be installed from a moving channel (get.k3s.io, INSTALL_K3S_CHANNEL)", None)
    if _KUBECONFIG_644.search(create) or _KUBECONFIG_644.search(stdin):
        report("k3s must not write a world-readable kubeconfig (write-kubeconfig-mode 644)", None)


def _helm_chart_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.resource_type.startswith("kubernetes:helm.sh/"):
        return
    version = str(args.props.get("version") or "")
    if not _CHART_VERSION.fullmatch(version):
        report(f"Helm chart {args.props.get('chart')!r} must pin an exact version, got {version or 'none'!r}", None)


# --- stack policies -----------------------------------------------------------------------------


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _production_availability(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    if not any(stack_of(r.urn) == PRODUCTION_STACK for r in resources):
        return
    by_type: dict[str, list] = {}
    for r in resources:
        by_type.setdefault(r.resource_type, []).append(r)
    for deployment in by_type.get("kubernetes:apps/v1:Deployment", []):
        meta, spec = deployment.props.get("metadata") or {}, deployment.props.get("spec") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        pod_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        scalers = [
            h.props["spec"]
            for h in by_type.get("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", [])
            if (h.props.get("spec") or {}).get("scaleTargetRef", {}).get("name") == name
            and (h.props.get("metadata") or {}).get("namespace") == namespace
        ]
        replicas = scalers[0].get("minReplicas", 1) if scalers else spec.get("replicas", 1)
        if replicas < MIN_PRODUCTION_REPLICAS:
            report(
                f"Deployment {namespace}/{name}: production needs at least {MIN_PRODUCTION_REPLICAS} replicas, has {replicas}",
                deployment.urn,
            )
        budgets = [
            p
            for p in by_type.get("kubernetes:policy/v1:PodDisruptionBudget", [])
            if (p.props.get("metadata") or {}).get("namespace") == namespace
            and _matches((p.props.get("spec") or {}).get("selector"), pod_labels)
        ]
        if needs_disruption_budget(replicas) and not budgets:
            report(f"Deployment {namespace}/{name}: production needs a PodDisruptionBudget", deployment.urn)
        for budget in budgets:
            spec_ = budget.props.get("spec") or {}
            if {key: spec_.get(key) for key in DISRUPTION_BUDGET} != DISRUPTION_BUDGET:
                report(
                    f"PodDisruptionBudget {namespace}/{(budget.props.get('metadata') or {}).get('name')}: must be"
                    f" {DISRUPTION_BUDGET} so that a drain is never blocked for good",
                    budget.urn,
                )


def _namespace_isolation(args: StackValidationArgs, report: ReportViolation) -> None:
    policies = [r for r in args.resources if r.resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    for namespace in (r for r in args.resources if r.resource_type == "kubernetes:core/v1:Namespace"):
        meta = namespace.props.get("metadata") or {}
        labels = meta.get("labels") or {}
        if "pod-security.kubernetes.io/enforce" not in labels:
            report(f"Namespace {meta.get('name')}: needs a pod-security.kubernetes.io/enforce label", namespace.urn)
        if labels.get("app.kubernetes.io/part-of") != "sophia-ai":
            continue  # the operators' own namespaces (GPU operator, monitoring) need host access
        default_deny = any(
            (p.props.get("metadata") or {}).get("namespace") == meta.get("name")
            and (p.props.get("spec") or {}).get("podSelector") in ({}, None)
            and {"Ingress", "Egress"} <= set((p.props.get("spec") or {}).get("policyTypes") or [])
            and not (p.props.get("spec") or {}).get("ingress")
            and not (p.props.get("spec") or {}).get("egress")
            for p in policies
        )
        if not default_deny:
            report(f"Namespace {meta.get('name')}: needs a default-deny NetworkPolicy", namespace.urn)


POLICIES = [
    ResourceValidationPolicy(
        name="container-requirements",
        description="Every container has CPU and memory requests and limits, probes and a restricted security context.",
        validate=_container_requirements,
    ),
    ResourceValidationPolicy(
        name="image-provenance",
        description="Images come from the allowed registries; production uses no mutable tags.",
        validate=_image_provenance,
        config_schema=PolicyConfigSchema(
            properties={"allowedRegistries": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_REGISTRIES}}
        ),
    ),
    ResourceValidationPolicy(
        name="no-plain-secret-env",
        description="Secrets reach containers through Secret references, never as plain environment values.",
        validate=_no_plain_secret_env,
    ),
    ResourceValidationPolicy(
        name="k3s-install-pinned",
        description="The k3s remote commands pin a version and never make the kubeconfig world-readable.",
        validate=_k3s_install_pinned,
    ),
    ResourceValidationPolicy(
        name="helm-chart-pinned",
        description="Helm releases pin an exact chart version.",
        validate=_helm_chart_pinned,
    ),
    StackValidationPolicy(
        name="production-availability",
        description=(
            "Production Deployments run at least 2 replicas and have a PodDisruptionBudget that never blocks a drain for good."
        ),
        validate=_production_availability,
    ),
    StackValidationPolicy(
        name="namespace-isolation",
        description="Namespaces carry Pod Security labels; each Sophia namespace has a default-deny NetworkPolicy.",
        validate=_namespace_isolation,
    ),
]
