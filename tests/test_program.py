"""The program of each real stack, run under mocks as the engine would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT, STACKS, Run, RunStack, stack_config

EXPECTED = {
    # stack: (namespace, replicas orchestrator/memory/mcp/frontend, cpu, memory, monitoring, tracing, autoscaling)
    "sophia-ai-dev": ("sophia-dev", (1, 1, 1, 1), "500m", "1Gi", False, True, False),
    "sophia-ai-staging": ("sophia-staging", (2, 2, 2, 2), "500m", "1Gi", True, True, True),
    "sophia-ai-production": ("sophia-prod", (2, 2, 2, 2), "1000m", "2Gi", True, True, True),
}
# The per-service overrides of `sophia-ai:resources` (the orchestrator and memory take the default).
OVERRIDES = {
    "sophia-ai-dev": {"mcp": ("100m", "256Mi"), "frontend": ("50m", "128Mi")},
    "sophia-ai-staging": {"mcp": ("100m", "256Mi"), "frontend": ("50m", "128Mi")},
    "sophia-ai-production": {"mcp": ("250m", "512Mi"), "frontend": ("100m", "256Mi")},
}
SERVICES = ["orchestrator", "memory", "mcp-ai-memory", "mcp-hubspot", "mcp-gong", "mcp-slack", "frontend"]


def deployment(run: Run, name: str) -> dict:
    return run.get("apps/v1:Deployment", f"{name}-deployment").inputs


def container(run: Run, name: str) -> dict:
    return deployment(run, name)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_lands_in_the_stack_namespace_through_the_one_provider(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    namespace = EXPECTED[stack][0]
    assert run.get("core/v1:Namespace", "sophia-namespace").inputs["metadata"]["name"] == namespace
    assert [p.name for p in run.all("pulumi:providers:kubernetes")] == ["cluster"]
    for resource in run.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.options["provider"] == "cluster", resource.name
        if resource.type.startswith("kubernetes:") and "metadata" in resource.inputs:
            meta = resource.inputs["metadata"]
            if resource.parent not in ("gpu-operator", "prometheus") and resource.type not in (
                "kubernetes:core/v1:Namespace",
                "kubernetes:core/v1:NodePatch",
                # Cluster-scoped: Redis's retained StorageClass, a backup's host directory.
                "kubernetes:storage.k8s.io/v1:StorageClass",
                "kubernetes:core/v1:PersistentVolume",
            ):
                assert meta["namespace"] == namespace, resource.name


@pytest.mark.parametrize("stack", STACKS)
def test_replicas_and_resources_come_from_the_stack(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    _, replicas, cpu, memory, _, _, autoscaling = EXPECTED[stack]
    wanted = dict(zip(["orchestrator", "memory", "mcp", "frontend"], replicas, strict=True))
    for service in SERVICES:
        group = "mcp" if service.startswith("mcp-") else service
        count = wanted[group]
        cpu_, memory_ = OVERRIDES[stack].get(group, (cpu, memory))
        if autoscaling:
            # The HPA owns the count: the Deployment leaves it out, the HPA's minimum is the count.
            assert "replicas" not in deployment(run, service)["spec"]
            assert run.get("HorizontalPodAutoscaler", f"{service}-autoscaler").inputs["spec"]["minReplicas"] == count
        else:
            assert deployment(run, service)["spec"]["replicas"] == count
        resources = container(run, service)["resources"]
        assert resources["requests"] == {"cpu": cpu_, "memory": memory_} == resources["limits"]


@pytest.mark.parametrize("stack", STACKS)
def test_features_leave_a_trace_exactly_when_on(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    _, replicas, _, _, monitoring, tracing, autoscaling = EXPECTED[stack]
    assert run.names("HorizontalPodAutoscaler") == ({f"{s}-autoscaler" for s in SERVICES} if autoscaling else set())
    expect_pdb = autoscaling and min(replicas) > 1
    budgets = {f"{s}-disruption-budget" for s in SERVICES} if expect_pdb else set()
    if stack == "sophia-ai-production":  # two collectors there, kept through a drain
        budgets.add("otel-collector-disruption-budget")
    assert run.names("PodDisruptionBudget") == budgets
    monitors = {f"{s}-service-monitor" for s in SERVICES}
    assert run.names("ServiceMonitor") == (monitors if monitoring else set())
    assert ("otel-collector" in {r.name for r in run.all("sophia:index:OtelCollector")}) is tracing
    env = {e["name"]: e.get("value") for e in container(run, "orchestrator")["env"]}
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT" in env) is tracing
    assert ("METRICS_PORT" in env) is monitoring
    if tracing:
        assert env["OTEL_SERVICE_NAME"] == "orchestrator"
        assert f"deployment.environment={stack_config(stack)['sophia-ai:environment']}" in env["OTEL_RESOURCE_ATTRIBUTES"]


def test_features_off_leave_nothing(run_stack: RunStack):
    run = run_stack("sophia-ai-staging", {"sophia-ai:features": {"monitoring": False, "tracing": False, "autoscaling": False}})
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor", "sophia:index:OtelCollector", "ConfigMap"):
        # Redis's own configuration is no feature.
        assert [r for r in run.all(kind) if r.parent != "redis"] == [], kind


@pytest.mark.parametrize("stack", STACKS)
def test_selectors_match_pod_labels_and_services_select_their_pods(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    for service in SERVICES:
        spec = deployment(run, service)["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
        selector = run.get("core/v1:Service", f"{service}-service").inputs["spec"]["selector"]
        assert selector.items() <= pod_labels.items()


@pytest.mark.parametrize("stack", STACKS)
def test_pods_are_restricted_probed_and_read_only(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    for service in SERVICES:
        pod = deployment(run, service)["spec"]["template"]["spec"]
        c = container(run, service)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert pod["terminationGracePeriodSeconds"] == 30
        strategy = deployment(run, service)["spec"]["strategy"]
        assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_reach_pods_by_reference_only(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    for service in ("orchestrator", "memory"):
        env = {e["name"]: e for e in container(run, service)["env"]}
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "password"}
        assert "value" not in env["REDIS_PASSWORD"]
        assert env["REDIS_URL"]["value"].startswith("redis://redis.")
        assert container(run, service)["envFrom"] == [{"secretRef": {"name": "snowflake"}}]
    assert "envFrom" not in container(run, "frontend") or container(run, "frontend")["envFrom"] == []
    snowflake = run.get("core/v1:Secret", "snowflake-secret")
    assert snowflake.secret_paths() == ["stringData"]
    assert set(snowflake.plain_inputs["stringData"]) >= {"SNOWFLAKE_ACCOUNT", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_AUTHENTICATOR"}
    assert snowflake.plain_inputs["stringData"]["SNOWFLAKE_PRIVATE_KEY"] == "SENTINEL-SNOWFLAKE-PRIVATE-KEY"


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_deny_by_default_and_allow_dns(run_stack: RunStack, stack: str):
    # What each workload may reach beyond this: tests/test_traffic.py, as a matrix.
    run = run_stack(stack)
    policies = {r.name: r.inputs["spec"] for r in run.all("NetworkPolicy")}
    assert policies["sophia-default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = policies["sophia-allow-dns"]["egress"][0]
    assert {"protocol": "UDP", "port": 53} in dns["ports"] and {"protocol": "TCP", "port": 53} in dns["ports"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_enforces_restricted_pod_security_with_quota(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    labels = run.get("core/v1:Namespace", "sophia-namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    hard = run.get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]
    assert int(hard["pods"]) > len(SERVICES)
    assert hard["requests.cpu"].endswith("m") and hard["requests.memory"].endswith("Mi")
    production = stack == "sophia-ai-production"
    assert run.get("core/v1:Namespace", "sophia-namespace").options["protect"] is production


@pytest.mark.parametrize("stack", STACKS)
def test_images_are_tagged_from_the_registry(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    assert container(run, "mcp-ai-memory")["image"] == "scoobyjava15/sophia-mcp-ai-memory:0.1.0"
    assert run.all("docker:index/image:Image") == []


def test_built_images_are_deployed_by_digest_with_the_shared_mcp_dockerfile(run_stack: RunStack):
    run = run_stack(
        "sophia-ai-staging",
        {
            "sophia-ai:images": {"registry": "scoobyjava15", "tag": "abc123", "build": True},
            "sophia-ai:registryAuth": {"username": "ci"},
        },
    )
    gong = run.get("docker:index/image:Image", "images-sophia-mcp-gong").inputs
    assert gong["build"]["dockerfile"] == str(PROJECT / "mcp-servers/docker/Dockerfile.mcp-server")
    assert gong["build"]["args"] == {"SERVICE": "gong"}
    assert gong["registry"]["password"] == "[secret]"
    assert container(run, "mcp-gong")["image"] == f"scoobyjava15/sophia-mcp-gong:abc123@sha256:{'0' * 64}"
    pull = run.get("core/v1:Secret", "images-pull-secret")
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson" and pull.secret_paths() == ["stringData"]
    assert deployment(run, "orchestrator")["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_build_contexts_resolve_from_the_project_root_whatever_the_working_directory(
    run_stack: RunStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # `pulumi up` runs the program in infrastructure/ (Pulumi.yaml's `main`), not the project root.
    monkeypatch.chdir(tmp_path)
    build = {"registry": "scoobyjava15", "tag": "abc123", "build": True}
    run = run_stack("sophia-ai-dev", {"sophia-ai:images": build, "sophia-ai:registryAuth": {"username": "ci"}})
    builds = {r.name: r.inputs["build"] for r in run.all("docker:index/image:Image")}
    assert len(builds) == len(SERVICES)
    for name, inputs in builds.items():
        context, dockerfile = Path(inputs["context"]), Path(inputs["dockerfile"])
        assert context.is_absolute() and context.is_relative_to(PROJECT), name
        assert dockerfile.is_relative_to(context), name
    for service in ("orchestrator", "memory"):
        inputs = builds[f"images-sophia-{service}"]
        assert Path(inputs["context"]) == PROJECT / "services" / service
        assert Path(inputs["context"]).is_dir() and Path(inputs["dockerfile"]).is_file()


def test_digests_from_ci_pin_exactly_the_images_that_were_built(run_stack: RunStack):
    # The deploy job sets images.tag and images.digests from the build job's outputs; an image
    # without a digest (none built for it) is pulled by its tag.
    tag, digest = "3f2c1ab" * 5 + "3f2c1", "sha256:" + "ab" * 32
    images = {**stack_config("sophia-ai-production")["sophia-ai:images"], "tag": tag}
    images["digests"] = {"sophia-orchestrator": digest, "sophia-not-deployed-here": digest}
    run = run_stack("sophia-ai-production", {"sophia-ai:images": images})
    assert container(run, "orchestrator")["image"] == f"scoobyjava15/sophia-orchestrator:{tag}@{digest}"
    assert container(run, "memory")["image"] == f"scoobyjava15/sophia-memory:{tag}"
    skips = {
        name: " ".join(deployment(run, name)["metadata"].get("annotations", {}).values()) for name in ("orchestrator", "memory")
    }
    assert "CKV_K8S_43" not in skips["orchestrator"] and "CKV_K8S_43" in skips["memory"]


def test_adding_an_mcp_server_is_one_line_of_configuration(run_stack: RunStack):
    servers = [*stack_config("sophia-ai-dev")["sophia-ai:mcpServers"], "notion"]
    run = run_stack("sophia-ai-dev", {"sophia-ai:mcpServers": servers})
    assert "mcp-notion-deployment" in run.names("Deployment")
    assert container(run, "mcp-notion")["ports"][0]["containerPort"] == 8080


def test_frontend_zero_replicas_turns_it_off(run_stack: RunStack):
    run = run_stack("sophia-ai-dev", {"sophia-ai:replicas": {"orchestrator": 1, "memory": 1, "mcpServers": 1, "frontend": 0}})
    assert not any(r.name.startswith("frontend") for r in run.resources)


def test_ingress_routes_api_and_dashboard(run_stack: RunStack):
    run = run_stack(
        "sophia-ai-dev", {"sophia-ai:ingress": {"enabled": True, "host": "sophia.example.com", "tlsSecret": "sophia-tls"}}
    )
    spec = run.get("networking.k8s.io/v1:Ingress", "ingress-ingress").inputs["spec"]
    paths = {p["path"]: p["backend"]["service"] for p in spec["rules"][0]["http"]["paths"]}
    assert paths == {
        "/api": {"name": "orchestrator", "port": {"number": 8000}},
        "/": {"name": "frontend", "port": {"number": 8080}},
    }
    assert spec["tls"] == [{"hosts": ["sophia.example.com"], "secretName": "sophia-tls"}]


@pytest.mark.parametrize("stack", ["sophia-ai-dev", "sophia-ai-staging"])
def test_attached_stacks_touch_no_host(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    assert not [r for r in run.resources if r.type.startswith(("command:", "kubernetes:helm"))]
    # They reach the cluster through production's kubeconfig output, never a path on a runner.
    assert (
        run.get("pulumi:pulumi:StackReference", "cluster-stack").inputs["name"] == stack_config(stack)["sophia-ai:clusterStack"]
    )
    provider = run.get("pulumi:providers:kubernetes", "cluster").inputs
    assert provider["kubeconfig"] == "[secret]"
    assert provider["namespace"] == EXPECTED[stack][0]


def test_a_stack_reference_supplies_the_kubeconfig(run_stack: RunStack):
    reference = "acme/sophia-ai/sophia-ai-production"
    run = run_stack("sophia-ai-dev", {"kubernetes:kubeconfig": None, "sophia-ai:clusterStack": reference})
    assert run.get("pulumi:pulumi:StackReference", "cluster-stack").inputs["name"] == reference
    provider = run.get("pulumi:providers:kubernetes", "cluster")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert provider.dependencies == ["cluster-stack"]


def test_no_service_waits_for_the_gpu_operator_but_gpu_services_do(run_stack: RunStack):
    # Memory at its peak (3 replicas and a surge pod) needs 4 GPUs: an 8-GPU host.
    run = run_stack("sophia-ai-production", {"sophia-ai:gpuServices": ["memory"], "lambdaLabs:instanceType": "gpu_8x_a100"})
    gpu = {r.name for r in run.resources if r.parent == "gpu-operator"} | {"gpu-operator"}
    for service in SERVICES:
        waits = run.depends_on(f"{service}-deployment")
        if service == "memory":
            assert "gpu-operator-smoke-test" in waits
            assert container(run, "memory")["resources"]["limits"]["nvidia.com/gpu"] == "1"
        else:
            assert not waits & gpu, service
    for name in ("sophia-namespace", "redis-statefulset"):
        assert not run.depends_on(name) & gpu


@pytest.mark.parametrize("stack", STACKS)
def test_stack_outputs(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    outputs = run.recording.outputs
    assert outputs["namespace"] == EXPECTED[stack][0]
    assert outputs["services"]["orchestrator"] == 8000 and outputs["services"]["memory"] == 8001
    assert ("kubeconfig" in outputs) is (stack == "sophia-ai-production")
    if stack == "sophia-ai-production":
        assert outputs["kubeconfig"] == "[secret]"


@pytest.mark.parametrize("stack", STACKS)
def test_workers_follow_the_cpu_limit_through_the_downward_api(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    for service in SERVICES:
        env = {e["name"]: e for e in container(run, service)["env"]}
        assert env["WEB_CONCURRENCY"] == {
            "name": "WEB_CONCURRENCY",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}},
        }


@pytest.mark.parametrize("stack", STACKS)
def test_each_service_is_told_where_its_callees_are(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    namespace = EXPECTED[stack][0]

    def env(service: str) -> dict:
        return {e["name"]: e.get("value") for e in container(run, service)["env"]}

    orchestrator = env("orchestrator")
    assert orchestrator["MEMORY_URL"] == f"http://memory.{namespace}.svc:8001"
    assert json.loads(orchestrator["MCP_SERVER_URLS"]) == {
        server: f"http://mcp-{server.replace('_', '-')}.{namespace}.svc:8080"
        for server in ("ai_memory", "hubspot", "gong", "slack")
    }
    assert env("mcp-ai-memory")["MEMORY_URL"] == f"http://memory.{namespace}.svc:8001"
    assert env("frontend")["ORCHESTRATOR_URL"] == f"http://orchestrator.{namespace}.svc:8000"
    for service in ("memory", "mcp-gong"):
        assert not [name for name in env(service) if (name.endswith("_URL") and name != "REDIS_URL") or name == "MCP_SERVER_URLS"]
    # Every callee URL names a Service this stack creates, on that Service's port.
    services = {r.inputs["metadata"]["name"]: r.inputs["spec"]["ports"][0]["port"] for r in run.all("core/v1:Service")}
    for url in [orchestrator["MEMORY_URL"], *json.loads(orchestrator["MCP_SERVER_URLS"]).values()]:
        host, port = url.removeprefix("http://").split(":")
        assert services[host.split(".")[0]] == int(port)


@pytest.mark.parametrize(
    ("telemetry", "tls"),
    [
        ({"exporterEndpoint": "tempo.monitoring.svc:4317"}, {"insecure": False}),
        ({"exporterEndpoint": "http://tempo.monitoring.svc:4317"}, {"insecure": True}),
        ({"exporterEndpoint": "https://otlp.example.com:443"}, {"insecure": False}),
        ({"exporterEndpoint": "tempo.monitoring.svc:4317", "exporterInsecure": True}, {"insecure": True}),
    ],
)
def test_the_collector_exports_in_plaintext_or_tls_as_configured(run_stack: RunStack, telemetry: dict, tls: dict):
    run = run_stack("sophia-ai-staging", {"sophia-ai:telemetry": telemetry})
    config = yaml.safe_load(run.get("core/v1:ConfigMap", "otel-collector-config").inputs["data"]["config.yaml"])
    assert config["exporters"] == {"otlp": {"endpoint": telemetry["exporterEndpoint"], "tls": tls}}
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp"]


def test_a_tls_setting_that_contradicts_the_endpoint_is_refused(run_stack: RunStack):
    telemetry = {"exporterEndpoint": "https://otlp.example.com:443", "exporterInsecure": True}
    with pytest.raises(Exception, match=r"exporterInsecure: contradicts the https:// of sophia-ai:telemetry\.exporterEndpoint"):
        run_stack("sophia-ai-staging", {"sophia-ai:telemetry": telemetry})
