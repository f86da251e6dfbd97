"""The stack configuration model: every key a stack file may set, typed, defaulted and validated.

Field descriptions and `examples` feed the configuration reference (`sophia-infra reference`), so
they are written for the people who edit the stack files.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.alias_generators import to_camel

from stacks.compat import incompatibility
from stacks.quantities import is_dns_name, is_host, is_ip, parse_quantity

Environment = Literal["dev", "staging", "production"]

NAMESPACES: dict[str, str] = {"dev": "sophia-dev", "staging": "sophia-staging", "production": "sophia-prod"}

# Tags that name a moving target: a rollout with them is not reproducible.
MUTABLE_TAGS = frozenset({"latest", "main", "master", "stable", "edge", "nightly", "dev"})

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REGISTRY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$")
_MCP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_STACK_REF = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")
_K3S_VERSION = re.compile(r"^v1\.\d+\.\d+\+k3s\d+$")
_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _label(text: str):
    """Name a validator's type for the configuration reference."""

    def mark(func):
        func.label = text
        return func

    return mark


@_label("Kubernetes quantity")
def _quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f"must be a positive Kubernetes quantity, got {value!r}")
    return value


@_label("DNS name")
def _dns_name(value: str) -> str:
    if not is_dns_name(value):
        raise ValueError(f"must be a DNS name (lower-case letters, digits, '-' and '.'), got {value!r}")
    return value


@_label("IP address")
def _ip(value: str) -> str:
    if not is_ip(value):
        raise ValueError(f"must be an IPv4 or IPv6 address, got {value!r}")
    return value


@_label("IP address or DNS name")
def _host(value: str) -> str:
    if not is_host(value):
        raise ValueError(f"must be an IP address or a DNS name, got {value!r}")
    return value


@_label("label map")
def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(text):
            raise ValueError(f"must be Kubernetes label keys and values, got {key!r}: {text!r}")
    return value


def _pattern(regex: re.Pattern[str], what: str, label: str):
    @_label(label)
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"must be {what}, got {value!r}")
        return value

    return check


Quantity = Annotated[str, AfterValidator(_quantity)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
IpAddress = Annotated[str, AfterValidator(_ip)]
Registry = Annotated[
    str, AfterValidator(_pattern(_REGISTRY, "a registry path such as scoobyjava15 or ghcr.io/org", "registry path"))
]
Tag = Annotated[str, AfterValidator(_pattern(_TAG, "a Docker tag (letters, digits, '_', '.', '-')", "image tag"))]
Image = Annotated[
    str, AfterValidator(_pattern(_IMAGE, "an image reference with a version tag, e.g. redis:7.4.2-alpine", "image:tag"))
]
Host = Annotated[str, AfterValidator(_host)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
K3sVersion = Annotated[
    str, AfterValidator(_pattern(_K3S_VERSION, "a full k3s release such as v1.33.5+k3s1 (not a channel)", "k3s version"))
]
ChartVersion = Annotated[
    str, AfterValidator(_pattern(_CHART_VERSION, "an exact chart version such as v25.10.0", "chart version"))
]
UnixUser = Annotated[str, AfterValidator(_pattern(_UNIX_USER, "a Unix user name", "user name"))]
McpName = Annotated[str, AfterValidator(_pattern(_MCP_NAME, "a lower-case name of letters, digits and '_'", "name"))]


class Model(BaseModel):
    """Frozen, strict about unknown keys, camelCase in the stack files."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, hide_input_in_errors=True)


class Replicas(Model):
    orchestrator: int = Field(1, ge=1, description="Replicas of the FastAPI orchestrator (port 8000).")
    memory: int = Field(1, ge=1, description="Replicas of the memory service (port 8001).")
    mcp_servers: int = Field(1, ge=1, description="Replicas of each MCP server.")
    frontend: int = Field(1, ge=0, description="Replicas of the dashboard; 0 when it is hosted elsewhere.")


class Resources(Model):
    cpu: Quantity = Field("500m", description="CPU request and limit of each container.")
    memory: Quantity = Field("1Gi", description="Memory request and limit of each container.")


class Features(Model):
    monitoring: bool = Field(False, description="ServiceMonitors and a metrics port for every service.")
    tracing: bool = Field(False, description="OpenTelemetry environment and a collector in the namespace.")
    autoscaling: bool = Field(
        False, description="A HorizontalPodAutoscaler per service, a PodDisruptionBudget when replicas > 1."
    )


class Autoscaler(Model):
    max_replicas: int = Field(6, ge=1, le=100, description="Upper bound of every HorizontalPodAutoscaler.")
    target_cpu_utilization: int = Field(70, ge=10, le=100, description="Average CPU utilization (percent of requests) to hold.")


class Images(Model):
    registry: Registry = Field(
        "scoobyjava15",
        description="Registry and namespace of the Sophia images, `<registry>/sophia-<service>:<tag>`.",
        examples=["ghcr.io/sophia-ai"],
    )
    tag: Tag = Field(description="Image tag of every Sophia service, e.g. the git commit SHA that CI built.", examples=["0.1.0"])
    build: bool = Field(False, description="Build and push the images with pulumi-docker and deploy them by digest.")
    source_root: str = Field(".", description="Directory (relative to the project) holding `services/` and `mcp-servers/`.")


class RegistryAuth(Model):
    server: str = Field("docker.io", description="Registry host the credentials are for.")
    username: str = Field(description="Registry user.", examples=["scoobyjava15"])
    password: SecretStr | None = Field(None, description="Registry token. Secret.")


class Redis(Model):
    image: Image = Field("redis:7.4.2-alpine", description="Official Redis image, pinned.")
    storage_size: Quantity = Field("8Gi", description="Size of the append-only-file volume.")
    storage_class: DnsName = Field("local-path", description="StorageClass of the volume (k3s ships local-path).")
    resources: Resources = Field(Resources(cpu="250m", memory="512Mi"), description="CPU and memory request and limit of Redis.")
    password: SecretStr | None = Field(None, description="Redis password. Secret; generated when unset.")
    password_rotation: int = Field(0, ge=0, description="Bump to generate a new Redis password (when generated).")


class Snowflake(Model):
    account: str = Field(description="Snowflake account identifier.", examples=["sophiaai-prod"])
    user: str = Field(description="Service user.", examples=["SOPHIA_APP"])
    role: str = Field(description="Role of the service user.", examples=["SOPHIA_APP"])
    warehouse: str = Field(description="Warehouse for queries.", examples=["SOPHIA_WH"])
    database: str = Field(description="Database of the long-term memory.", examples=["SOPHIA_AI"])
    schema_name: str = Field(alias="schema", description="Schema of the long-term memory.", examples=["MEMORY"])
    auth: Literal["keypair", "password"] = Field("keypair", description="Key-pair authentication (preferred) or password.")
    private_key: SecretStr | None = Field(None, description="PEM private key for key-pair auth. Secret.")
    private_key_passphrase: SecretStr | None = Field(None, description="Passphrase of the private key, if any. Secret.")
    password: SecretStr | None = Field(None, description="Password for password auth. Secret.")


class Ingress(Model):
    enabled: bool = Field(False, description="Expose the orchestrator and the dashboard through Traefik.")
    host: DnsName | None = Field(None, description="Public host name.", examples=["sophia.example.com"])
    tls_secret: DnsName | None = Field(
        None, description="Name of an existing TLS Secret in the namespace.", examples=["sophia-tls"]
    )

    @model_validator(mode="after")
    def _host_when_enabled(self) -> Ingress:
        if self.enabled and not self.host:
            raise ValueError("host is required when enabled is true")
        return self


class Telemetry(Model):
    collector_image: Image = Field("otel/opentelemetry-collector:0.119.0", description="OpenTelemetry Collector image, pinned.")
    exporter_endpoint: str | None = Field(
        None,
        max_length=512,
        description="OTLP/gRPC endpoint the collector exports to (host:port, or with http:// or https://);"
        " unset exports to the collector's log.",
        examples=["tempo.monitoring.svc:4317"],
    )
    exporter_insecure: bool | None = Field(
        None,
        description="Export in plaintext (no TLS), e.g. to an in-cluster Tempo."
        " Unset: plaintext for an http:// endpoint, TLS (system CAs) otherwise.",
    )

    @model_validator(mode="after")
    def _tls_matches_scheme(self) -> Telemetry:
        scheme = (self.exporter_endpoint or "").partition("://")[0]
        says_plaintext = {"http": True, "https": False}.get(scheme)
        if None not in (self.exporter_insecure, says_plaintext) and self.exporter_insecure != says_plaintext:
            flag = str(self.exporter_insecure).lower()
            raise ValueError(f"exporterInsecure: {flag} contradicts the {scheme}:// exporterEndpoint")
        return self

    @property
    def exporter_plaintext(self) -> bool:
        """Whether the collector exports without TLS (the collector uses TLS unless told otherwise,
        whatever the endpoint's scheme: opentelemetry-collector config/configgrpc)."""
        if self.exporter_insecure is not None:
            return self.exporter_insecure
        return (self.exporter_endpoint or "").startswith("http://")


class Ssh(Model):
    user: UnixUser = Field("ubuntu", description="SSH user on the hosts (Lambda Stack images use `ubuntu`, with sudo).")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    private_key: SecretStr | None = Field(None, description="SSH private key (OpenSSH PEM). Secret; required to provision.")


class K3s(Model):
    version: K3sVersion = Field("v1.33.5+k3s1", description="k3s release to install; bump it to upgrade.")
    dns_name: DnsName | None = Field(
        None,
        description="DNS name of the server, added to the API certificate and used in the kubeconfig.",
        examples=["k3s.sophia.example.com"],
    )
    node_labels: Labels = Field(
        {"node-role": "worker", "gpu": "true", "storage": "ssd"},
        description="Labels of every node (set at registration, reconciled through the API afterwards).",
    )
    agents: list[Host] = Field([], description="Extra GPU hosts that join as k3s agents.", examples=[["104.171.202.65"]])
    keep_on_destroy: bool = Field(False, description="Leave k3s installed when the stack is destroyed.")
    token: SecretStr | None = Field(None, description="Cluster join token. Secret; generated when unset.")


class GpuOperator(Model):
    chart_version: ChartVersion = Field("v25.10.0", description="Version of NVIDIA's `gpu-operator` Helm chart.")
    driver_enabled: bool = Field(False, description="Let the operator install the driver (false: Lambda Stack preinstalls it).")
    smoke_test: bool | None = Field(
        None, description="Run a cuda-vectoradd Job that must succeed; unset means on in production only."
    )


class MonitoringStack(Model):
    chart_version: ChartVersion = Field(
        "75.15.0", description="Version of the `kube-prometheus-stack` chart this cluster-owning stack installs."
    )


class StackConfig(BaseModel):
    """Everything a stack file sets. Keys are the full Pulumi config keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    environment: Environment = Field(
        alias="sophia-ai:environment", description="Which environment this stack is.", examples=["production"]
    )
    replicas: Replicas = Field(Replicas(), alias="sophia-ai:replicas", description="Replicas per service.")
    resources: Resources = Field(Resources(), alias="sophia-ai:resources", description="Per-container resources.")
    features: Features = Field(Features(), alias="sophia-ai:features", description="Optional features.")
    mcp_servers: list[McpName] = Field(
        ["ai_memory", "hubspot", "gong", "slack"],
        alias="sophia-ai:mcpServers",
        min_length=1,
        max_length=64,
        description="MCP servers to run, one Deployment each.",
    )
    gpu_services: list[str] = Field(
        [],
        alias="sophia-ai:gpuServices",
        description="Services that get one NVIDIA GPU each (`orchestrator`, `memory` or an MCP server);"
        " only they wait for the GPU operator.",
        examples=[["memory"]],
    )
    autoscaler: Autoscaler = Field(Autoscaler(), alias="sophia-ai:autoscaler", description="Autoscaling bounds.")
    images: Images = Field(alias="sophia-ai:images", description="Where the Sophia images come from.")
    registry_auth: RegistryAuth | None = Field(
        None, alias="sophia-ai:registryAuth", description="Registry credentials, for pushing and pulling."
    )
    redis: Redis = Field(Redis(), alias="sophia-ai:redis", description="Redis, the fast (L1) memory.")
    snowflake: Snowflake = Field(alias="sophia-ai:snowflake", description="Snowflake, the long-term (L2/L3) memory.")
    ingress: Ingress = Field(Ingress(), alias="sophia-ai:ingress", description="Optional Traefik ingress.")
    telemetry: Telemetry = Field(Telemetry(), alias="sophia-ai:telemetry", description="Tracing pipeline.")
    kubernetes_version: str = Field(
        "1.33.0",
        alias="sophia-ai:kubernetesVersion",
        pattern=r"^1\.\d+\.\d+$",
        description="Kubernetes version of an attached cluster, for schema validation of the plan.",
    )
    cluster_stack: str | None = Field(
        None,
        alias="sophia-ai:clusterStack",
        description="Stack whose `kubeconfig` output is the cluster (instead of kubernetes:kubeconfig).",
        examples=["organization/sophia-ai/sophia-ai-production"],
    )
    kubeconfig: str | None = Field(
        None,
        alias="kubernetes:kubeconfig",
        description="Path to (or contents of) the kubeconfig of an existing cluster.",
        examples=["~/.kube/config-dev"],
    )
    kube_context: str | None = Field(
        None, alias="kubernetes:context", description="Context in that kubeconfig.", examples=["sophia-dev"]
    )
    lambda_instance: DnsName | None = Field(
        None,
        alias="lambdaLabs:instance",
        description="Name of the Lambda Labs instance that becomes the k3s server.",
        examples=["sophia-ai-production"],
    )
    ssh: Ssh = Field(Ssh(), alias="sophia-ai:ssh", description="How to reach the hosts (provision mode).")
    k3s: K3s = Field(K3s(), alias="sophia-ai:k3s", description="The k3s cluster (provision mode).")
    gpu_operator: GpuOperator = Field(
        GpuOperator(), alias="sophia-ai:gpuOperator", description="NVIDIA GPU operator (provision mode)."
    )
    monitoring_stack: MonitoringStack = Field(
        MonitoringStack(), alias="sophia-ai:monitoringStack", description="Prometheus stack (provision mode, monitoring on)."
    )
    lambda_ip: IpAddress | None = Field(
        None, alias="lambdaLabs:ip", description="Public IP of that instance.", examples=["104.171.202.64"]
    )

    @property
    def namespace(self) -> str:
        return NAMESPACES[self.environment]

    @property
    def gpu_smoke_test(self) -> bool:
        smoke = self.gpu_operator.smoke_test
        return self.environment == "production" if smoke is None else smoke

    @property
    def cluster_mode(self) -> Literal["provision", "kubeconfig", "stackReference"]:
        if self.lambda_ip is not None:
            return "provision"
        return "kubeconfig" if self.kubeconfig is not None else "stackReference"

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        problems: list[tuple[str, str]] = []
        sources = [
            name
            for name, value in (
                ("lambdaLabs:ip", self.lambda_ip),
                ("kubernetes:kubeconfig", self.kubeconfig),
                ("sophia-ai:clusterStack", self.cluster_stack),
            )
            if value is not None
        ]
        if len(sources) != 1:
            got = " and ".join(sources) if sources else "none of them"
            key = sources[-1] if sources else "kubernetes:kubeconfig"
            problems.append((key, f"set exactly one of lambdaLabs:ip, kubernetes:kubeconfig, sophia-ai:clusterStack, got {got}"))
        if self.lambda_ip is None:
            for attr in ("ssh", "k3s", "gpu_operator", "monitoring_stack"):
                if attr in self.model_fields_set:
                    key = type(self).model_fields[attr].alias or attr
                    problems.append((key, "only applies when this stack installs k3s (lambdaLabs:ip)"))
        elif reason := incompatibility(self.k3s.version, self.gpu_operator.chart_version):
            problems.append(("sophia-ai:gpuOperator.chartVersion", reason))
        if (self.lambda_ip is None) != (self.lambda_instance is None):
            problems.append(("lambdaLabs:instance", "lambdaLabs:instance and lambdaLabs:ip go together"))
        if self.cluster_stack is not None and not _STACK_REF.match(self.cluster_stack):
            problems.append(("sophia-ai:clusterStack", f"must be [org/][project/]stack, got {self.cluster_stack!r}"))
        if len(set(self.mcp_servers)) != len(self.mcp_servers):
            problems.append(("sophia-ai:mcpServers", "must not list a server twice"))
        allowed = ["orchestrator", "memory", *self.mcp_servers]
        for service in self.gpu_services:
            if service not in allowed:
                problems.append(("sophia-ai:gpuServices", f"unknown service {service!r}; allowed: {', '.join(allowed)}"))
        if self.features.autoscaling:
            top = max(self.replicas.orchestrator, self.replicas.memory, self.replicas.mcp_servers, self.replicas.frontend)
            if self.autoscaler.max_replicas < top:
                problems.append(
                    (
                        "sophia-ai:autoscaler.maxReplicas",
                        f"must be >= the largest replica count ({top}), got {self.autoscaler.max_replicas}",
                    )
                )
        if self.images.build and self.registry_auth is None:
            problems.append(("sophia-ai:registryAuth", "is required when images.build is true (to push)"))
        if self.environment == "production":
            for service, count in self.replicas.model_dump(by_alias=True).items():
                if count == 1:
                    problems.append((f"sophia-ai:replicas.{service}", f"production needs at least 2 replicas, got {count}"))
            if self.images.tag in MUTABLE_TAGS:
                problems.append(
                    (
                        "sophia-ai:images.tag",
                        f"production refuses the mutable tag {self.images.tag!r}; use a version or commit SHA",
                    )
                )
        if problems:
            raise ValueError("\n".join(f"{key}: {message}" for key, message in problems))
        return self
