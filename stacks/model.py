"""The stack configuration model: every key a stack file may set, typed, defaulted and validated.

Field descriptions and `examples` feed the configuration reference (`sophia-infra reference`), so
they are written for the people who edit the stack files; the reference's example (examples and
defaults of every key) is itself a valid production stack file.

Every text value has a length its consumer accepts and, unless it is a secret, a pattern matched
whole and in ASCII only (`Text`). Numbers are strict: `true` is not a replica count. Rules that
involve more than one key are `CHECKS`, run on whatever part of a configuration is valid, so a
broken key never hides another key's problem.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, SecretStr
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

from policies.production import (
    ALLOWED_REGISTRIES,
    K3S_VERSION,
    MIN_PRODUCTION_REPLICAS,
    MUTABLE_TAGS,
    STACK_ENVIRONMENTS,
    is_allowed_registry,
    is_mutable_image,
)
from stacks.compat import (
    GPU_OPERATOR_CHART,
    PLAN_KUBERNETES_MINORS,
    PROMETHEUS_STACK_CHART,
    gpu_operator_problem,
    kubernetes_problem,
    monitoring_stack_problem,
)
from stacks.hosts import INSTANCE_TYPES
from stacks.quantities import (
    MAX_QUANTITY_LENGTH,
    host_address_problem,
    ip_address,
    is_dns_name,
    is_host_name,
    parse_quantity,
)

Environment = Literal["dev", "staging", "production"]
PROJECT = "sophia-ai"
NAMESPACES: dict[str, str] = {"dev": "sophia-dev", "staging": "sophia-staging", "production": "sophia-prod"}

# Per-container bounds: less than a millicore or a whole byte is not a Kubernetes amount, and no
# single GPU host we run on offers more than 256 cores or 2 TiB (a pod asking more never schedules).
MIN_CONTAINER_CPU, MAX_CONTAINER_CPU = Decimal("0.001"), Decimal(256)
MIN_CONTAINER_MEMORY, MAX_CONTAINER_MEMORY = Decimal(4 * 2**20), Decimal(2 * 2**40)
MIN_STORAGE, MAX_STORAGE = Decimal(2**20), Decimal(64 * 2**40)
MAX_REPLICAS = 100  # the HorizontalPodAutoscaler's bound, too
MAX_CLUSTER_CPU, MAX_CLUSTER_MEMORY = Decimal(100_000), Decimal(2**50)
MAX_AGENTS = 16
# Node names are `<instance>` and `<instance>-agent-<n>`; the kubelet labels each node with its
# name (kubernetes.io/hostname), and a label value has at most 63 characters.
MAX_INSTANCE_NAME = 63 - len(f"-agent-{MAX_AGENTS}")
# Label prefixes a kubelet may not set on its own node (NodeRestriction, KEP "Bounding
# Self-Labeling Kubelets"): k3s registers its node labels through the kubelet, which refuses to
# start on them. The few kubelet-owned exceptions (kubernetes.io/hostname, node.kubernetes.io/
# instance-type, topology...) describe the host itself and are the kubelet's to set, not ours.
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")
# What the k3s uninstaller deletes (k3s-io/k3s install.sh, create_uninstall and create_killall):
# data meant to outlive k3s lives elsewhere.
K3S_OWNED_PATHS = ("/var/lib/rancher/k3s", "/etc/rancher", "/var/lib/kubelet", "/run/k3s", "/run/flannel", "/var/lib/cni")


@dataclass(frozen=True)
class Text:
    """What a text key accepts: `min_length`..`max_length` characters, matching `pattern` as a
    whole in ASCII only (a `$` would also match before a trailing newline, `\\d` other scripts'
    digits), then passing `check` (which returns a problem or None). Its problems never quote the
    value: the loader adds ", got ..." unless the value may be a secret. `label` names the type in
    the configuration reference."""

    label: str
    max_length: int
    pattern: str | None = None
    what: str = ""
    check: Callable[[str], str | None] | None = None
    min_length: int = 1

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        regex = re.compile(self.pattern, re.ASCII) if self.pattern is not None else None

        def validate(value: str) -> str:
            if regex is not None and not regex.fullmatch(value):
                raise ValueError(f"must be {self.what}")
            if self.check is not None and (problem := self.check(value)) is not None:
                raise ValueError(problem)
            return value

        return core_schema.no_info_after_validator_function(
            validate, core_schema.str_schema(min_length=self.min_length, max_length=self.max_length)
        )


def _quantity(what: str, minimum: Decimal, maximum: Decimal, whole: Decimal, shown: tuple[str, str]) -> Text:
    def check(text: str) -> str | None:
        try:
            value = parse_quantity(text)
        except ValueError as exc:
            return str(exc)
        if not minimum <= value <= maximum:
            return f"must be between {shown[0]} and {shown[1]}"
        if value % whole:  # within the bounds, exact in Decimal's 28 digits
            return f"must be a whole number of {what}"
        return None

    return Text("Kubernetes quantity", MAX_QUANTITY_LENGTH, check=check)


def _dns_name(text: str) -> str | None:
    return None if is_dns_name(text) else "must be a DNS name (lower-case letters, digits, '-' and '.')"


def _agent_host(text: str) -> str | None:
    if ip_address(text) is not None or text.replace(".", "").isdigit() or ":" in text:
        return host_address_problem(text)
    return None if is_host_name(text) else "must be an IP address or a DNS name of another host"


def _label_key(text: str) -> str | None:
    prefix, _, name = text.rpartition("/")
    if prefix and not (len(prefix) <= 253 and is_dns_name(prefix)):
        return "must be a label key: its prefix a DNS name of at most 253 characters"
    if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", name, re.ASCII):
        return "must be a label key: a name of at most 63 letters, digits, '-', '_' and '.', after an optional DNS prefix and '/'"
    if any(prefix == domain or prefix.endswith(f".{domain}") for domain in _RESERVED_LABEL_DOMAINS):
        return "must not use the kubernetes.io or k8s.io prefixes: the kubelet may not set them on its own node"
    return None


def _in_plan_range(version: str) -> str | None:
    if int(version.split(".")[1]) in PLAN_KUBERNETES_MINORS:
        return None
    return (
        f"must be Kubernetes 1.{PLAN_KUBERNETES_MINORS.start} to 1.{PLAN_KUBERNETES_MINORS.stop - 1},"
        " the versions the offline plan validates against"
    )


def _ssh_host_key(text: str) -> str | None:
    """An OpenSSH public key line as `ssh-keyscan` prints it after the host (pulumi-command parses
    it with golang.org/x/crypto/ssh.ParseAuthorizedKey): its blob must start with its own type."""
    kind, _, rest = text.partition(" ")
    blob_text = rest.split(" ", 1)[0]
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except binascii.Error:
        blob = b""
    if blob[4 : 4 + int.from_bytes(blob[:4], "big")] != kind.encode():
        return "must be an OpenSSH public host key whose key data matches its type (`ssh-keyscan -t ed25519 HOST`)"
    return None


def _s3_endpoint(text: str) -> str | None:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not (is_host_name(host) or ip_address(host) is not None) or (port and not 0 < int(port) < 65536):
        return "must be a host name or IPv4 address with an optional :port and no scheme, such as s3.us-east-1.amazonaws.com"
    return None


def _outside_k3s(text: str) -> str | None:
    for owned in K3S_OWNED_PATHS:
        if text == owned or text.startswith(f"{owned}/"):
            return f"must be outside {owned}, which the k3s uninstaller deletes"
    return None


def _no_control_characters(value: SecretStr) -> SecretStr:
    # A newline would end the line a secret is read from (an env file, a client's config); the
    # message never shows the value.
    if any(ord(c) < 32 or ord(c) == 127 for c in value.get_secret_value()):
        raise ValueError("must not contain control characters (newline, tab, ...)")
    return value


def _port_in_range(text: str) -> str | None:
    return None if 1 <= int(text.rsplit(":", 1)[1]) <= 65535 else "must end with a port from 1 to 65535"


def is_kubeconfig_contents(text: str) -> bool:
    """What the Kubernetes provider reads as kubeconfig contents rather than a file path: YAML or
    JSON text (a path is one line; the provider reads a path only if that file exists)."""
    stripped = text.lstrip()
    return "\n" in text or stripped.startswith(("{", "apiVersion"))


def _kubeconfig(text: str) -> str | None:
    # Blank text is no cluster source: the provider would fall back to the ambient kubeconfig.
    if not text.strip():
        return "must not be empty"
    if is_kubeconfig_contents(text):
        return None
    if text != text.strip() or not re.fullmatch(r"[ -~]{1,4096}", text, re.ASCII):
        return "must be a kubeconfig file path (printable ASCII, no surrounding blanks) or the kubeconfig's contents"
    return None


CpuQuantity = Annotated[str, _quantity("millicores", MIN_CONTAINER_CPU, MAX_CONTAINER_CPU, Decimal("0.001"), ("1m", "256"))]
MemoryQuantity = Annotated[str, _quantity("bytes", MIN_CONTAINER_MEMORY, MAX_CONTAINER_MEMORY, Decimal(1), ("4Mi", "2Ti"))]
StorageQuantity = Annotated[str, _quantity("bytes", MIN_STORAGE, MAX_STORAGE, Decimal(1), ("1Mi", "64Ti"))]
DnsName = Annotated[str, Text("DNS name", 253, check=_dns_name)]
InstanceName = Annotated[str, Text("DNS name", MAX_INSTANCE_NAME, check=_dns_name)]


def _instance_type(text: str) -> str | None:
    shape = INSTANCE_TYPES.get(text)
    if shape is None:
        return f"must be a Lambda Labs instance type of stacks/hosts.py: {', '.join(INSTANCE_TYPES)}"
    if shape.arch != "x86_64":
        return f"is an {shape.arch} machine; the images this project builds are linux/amd64"
    return None


InstanceType = Annotated[str, Text("instance type", 40, r"[a-z0-9_]{1,40}", "a Lambda Labs instance type", check=_instance_type)]
ServerAddress = Annotated[str, Text("IP address", 45, check=host_address_problem)]
AgentHost = Annotated[str, Text("IP address or DNS name", 253, check=_agent_host)]
# Registry and namespace: `<registry>/sophia-mcp-<40>` stays within a repository name's 255.
Registry = Annotated[
    str,
    Text(
        "registry path",
        200,
        r"[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*",
        "a registry path such as scoobyjava15 or ghcr.io/org",
    ),
]
Tag = Annotated[
    str, Text("image tag", 128, r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "a Docker tag (letters, digits, '_', '.', '-')")
]
Image = Annotated[
    str,
    Text(
        "image:tag",
        255,
        r"[a-z0-9]+([._/:-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?",
        "an image reference with a version tag, e.g. redis:7.4.2-alpine",
    ),
]
LabelKey = Annotated[str, Text("label key", 253 + 1 + 63, check=_label_key)]
LabelValue = Annotated[
    str,
    Text(
        "label value",
        63,
        r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?",
        "a label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)",
        min_length=0,
    ),
]
ImageName = Annotated[
    str, Text("image name", 128, r"sophia-[a-z0-9]([a-z0-9-]{0,120}[a-z0-9])?", "an image name sophia-<service>")
]
Digest = Annotated[str, Text("digest", 71, r"sha256:[0-9a-f]{64}", "a sha256:<64 hex> digest")]
K3sVersion = Annotated[
    str, Text("k3s version", 24, K3S_VERSION, "a full k3s release such as v1.33.5+k3s1 (not a channel)", check=_in_plan_range)
]
ChartVersion = Annotated[
    str, Text("chart version", 16, r"v?[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}", "an exact chart version such as v25.10.0")
]
KubernetesVersion = Annotated[
    str, Text("Kubernetes version", 11, r"1\.[0-9]{1,3}\.[0-9]{1,3}", "a Kubernetes version such as 1.33.0", check=_in_plan_range)
]
UnixUser = Annotated[str, Text("user name", 32, r"[a-z_][a-z0-9_-]{0,31}", "a Unix user name")]
# `mcp-<server>` (with '_' as '-') is a Kubernetes name: a DNS label, so no '_' at the ends.
McpName = Annotated[
    str, Text("name", 40, r"[a-z]([a-z0-9_]{0,38}[a-z0-9])?", "a lower-case name of letters, digits and '_' (not at the end)")
]
# An MCP server's credentials are environment variables named after it (HUBSPOT_ACCESS_TOKEN).
CredentialVariable = Annotated[
    str, Text("variable", 64, r"[A-Z][A-Z0-9_]{0,63}", "an environment variable name (upper-case letters, digits, '_')")
]
ServiceName = Annotated[str, Text("service name", 40, r"[a-z][a-z0-9_]{0,39}", "a service name")]
# Snowflake's unquoted identifiers (letters, digits, '_', '$'; at most 255) and account names.
SnowflakeName = Annotated[
    str, Text("identifier", 255, r"[A-Za-z_][A-Za-z0-9_$]{0,254}", "a Snowflake identifier (letters, digits, '_', '$')")
]
SnowflakeAccount = Annotated[
    str, Text("account identifier", 255, r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,253}[A-Za-z0-9])?", "a Snowflake account identifier")
]
RegistryServer = Annotated[
    str, Text("host[:port]", 259, r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?", "a registry host such as docker.io")
]
RegistryUser = Annotated[str, Text("user name", 255, r"[!-~]{1,255}", "a user name of printable characters without blanks")]
SourceRoot = Annotated[
    str,
    Text("path", 255, r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", "a relative directory path (letters, digits, '.', '_', '-', '/')"),
]
Endpoint = Annotated[
    str,
    Text(
        "host:port",
        300,
        r"(https?://)?([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-fA-F:.]{2,45}\]):[0-9]{1,5}",
        "host:port, e.g. tempo.monitoring.svc:4317",
        check=_port_in_range,
    ),
]
StackReference = Annotated[
    str, Text("stack name", 302, r"[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100}){0,2}", "[org/][project/]stack")
]
ContextName = Annotated[str, Text("context name", 253, r"[!-~]{1,253}", "a context name of printable characters without blanks")]
# A path, or the kubeconfig's contents: the loader requires contents to be set as a secret.
Kubeconfig = Annotated[str, Text("path or contents", 256 * 1024, check=_kubeconfig)]
ProviderName = Annotated[str, Text("package", 64, r"\*|[A-Za-z0-9_-]{1,64}", "a provider package name or *")]
HostKey = Annotated[
    str,
    Text(
        "SSH host key",
        16384,
        r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521"
        r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{16,}={0,2}( [ -~]{1,200})?",
        "an OpenSSH public host key such as 'ssh-ed25519 AAAAC3Nza...' (`ssh-keyscan -t ed25519 HOST`, without the host)",
        check=_ssh_host_key,
        min_length=16,
    ),
]
# A directory of state that must outlive k3s (etcd snapshots, Redis backups): not one the k3s
# uninstaller deletes.
AbsolutePath = Annotated[
    str,
    Text(
        "absolute path",
        255,
        r"(/[A-Za-z0-9._-]+)+",
        "an absolute path such as /lambda/nfs/sophia",
        check=_outside_k3s,
        min_length=2,
    ),
]
BucketName = Annotated[str, Text("bucket name", 63, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name", min_length=3)]
Region = Annotated[str, Text("region", 32, r"[a-z0-9]+(-[a-z0-9]+)*", "a region such as us-east-1", min_length=2)]
Folder = Annotated[str, Text("folder", 255, r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", "a folder such as k3s/production")]
S3Endpoint = Annotated[
    str,
    Text(
        "S3 endpoint",
        259,
        r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?",
        "host[:port] without a scheme",
        check=_s3_endpoint,
    ),
]
DataDir = Annotated[
    str,
    Text(
        "absolute path",
        200,
        r"(/[A-Za-z0-9_][A-Za-z0-9._-]{0,63})+",
        "an absolute path such as /var/lib/sophia/storage",
        check=_outside_k3s,
        min_length=2,
    ),
]
Cron = Annotated[
    str,
    Text(
        "cron schedule",
        104,
        r"[0-9*/,-]{1,20}( [0-9*/,-]{1,20}){4}",
        "a cron schedule of five fields (digits, '*', '/', ',', '-')",
    ),
]
# Secrets: a PEM key fits in 16 KiB, a registry token (a JSON key file, a JWT) in 8 KiB.
Secret = Annotated[SecretStr, Field(min_length=1, max_length=1024)]
LongSecret = Annotated[SecretStr, Field(min_length=1, max_length=8192)]
KeySecret = Annotated[SecretStr, Field(min_length=1, max_length=16384)]
# Read back as one line (an environment value, a client's config): no control characters.
LineSecret = Annotated[SecretStr, Field(min_length=1, max_length=512), AfterValidator(_no_control_characters)]


class Model(BaseModel):
    """Frozen, strict (no `true` for 1, no "2" for 2), no unknown keys, camelCase in the stack files."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, alias_generator=to_camel, hide_input_in_errors=True)


class Replicas(Model):
    orchestrator: int = Field(
        1, ge=1, le=MAX_REPLICAS, description="Replicas of the FastAPI orchestrator (port 8000).", examples=[2]
    )
    memory: int = Field(1, ge=1, le=MAX_REPLICAS, description="Replicas of the memory service (port 8001).", examples=[2])
    mcp_servers: int = Field(1, ge=1, le=MAX_REPLICAS, description="Replicas of each MCP server.", examples=[2])
    frontend: int = Field(
        1, ge=0, le=MAX_REPLICAS, description="Replicas of the dashboard; 0 when it is hosted elsewhere.", examples=[2]
    )


class Resources(Model):
    cpu: CpuQuantity = Field("500m", description="CPU request and limit of each container (1m to 256).")
    memory: MemoryQuantity = Field("1Gi", description="Memory request and limit of each container (4Mi to 2Ti, whole bytes).")


class Override(Model):
    cpu: CpuQuantity | None = Field(None, description="CPU request and limit; unset takes the stack's default.")
    memory: MemoryQuantity | None = Field(None, description="Memory request and limit; unset takes the stack's default.")


class PerService(Model):
    orchestrator: Override | None = Field(None, description="The orchestrator's resources.", examples=[None])
    memory: Override | None = Field(None, description="The memory service's resources.", examples=[None])
    mcp_servers: Override | None = Field(
        None, description="Each MCP server's resources.", examples=[{"cpu": "250m", "memory": "512Mi"}]
    )
    frontend: Override | None = Field(
        None, description="The dashboard's resources.", examples=[{"cpu": "100m", "memory": "256Mi"}]
    )


class ServiceResources(Resources):
    per_service: PerService = Field(
        PerService(),
        description="Overrides by service, keyed like `sophia-ai:replicas` (a dashboard or an MCP server needs a"
        " fraction of what the orchestrator does).",
    )

    def of(self, service: str) -> Resources:
        """The CPU and memory of `service` (`orchestrator`, `memory`, `mcpServers`, `frontend`)."""
        field = next(name for name, info in PerService.model_fields.items() if (info.alias or name) == service)
        override: Override | None = getattr(self.per_service, field)
        return Resources(
            cpu=override.cpu if override and override.cpu else self.cpu,
            memory=override.memory if override and override.memory else self.memory,
        )


class ClusterCapacity(Model):
    cpu: Annotated[
        str, _quantity("millicores", MIN_CONTAINER_CPU, MAX_CLUSTER_CPU, Decimal("0.001"), ("1m", str(MAX_CLUSTER_CPU)))
    ] = Field(description="CPUs the cluster can give this project's namespaces.", examples=["16"])
    memory: Annotated[str, _quantity("bytes", MIN_CONTAINER_MEMORY, MAX_CLUSTER_MEMORY, Decimal(1), ("4Mi", "1Pi"))] = Field(
        description="Memory the cluster can give this project's namespaces.", examples=["64Gi"]
    )
    gpus: int = Field(0, ge=0, le=1024, description="NVIDIA GPUs the cluster can give them.", examples=[4])


class Features(Model):
    monitoring: bool = Field(False, description="ServiceMonitors and a metrics port for every service.")
    tracing: bool = Field(False, description="OpenTelemetry environment and a collector in the namespace.")
    autoscaling: bool = Field(False, description="A HorizontalPodAutoscaler per service.")


class Autoscaler(Model):
    max_replicas: int = Field(6, ge=1, le=MAX_REPLICAS, description="Upper bound of every HorizontalPodAutoscaler.")
    target_cpu_utilization: int = Field(70, ge=10, le=100, description="Average CPU utilization (percent of requests) to hold.")


class Images(Model):
    registry: Registry = Field(
        "scoobyjava15", description="Registry and namespace of the Sophia images, `<registry>/sophia-<service>:<tag>`."
    )
    tag: Tag = Field(description="Image tag of every Sophia service, e.g. the git commit SHA that CI built.", examples=["0.1.0"])
    build: bool = Field(False, description="Build and push the images with pulumi-docker and deploy them by digest.")
    source_root: SourceRoot = Field(
        ".", description="Directory (relative to the project) holding `services/` and `mcp-servers/`."
    )
    digests: dict[ImageName, Digest] = Field(
        {},
        max_length=256,
        description="Digest of each image (`sophia-<service>`) built for `tag`, set by CI's deploy: the Deployments pull"
        " `<registry>/<image>:<tag>@<digest>`, exactly what was built. Images without one are pulled by tag.",
        examples=[{"sophia-orchestrator": "sha256:" + "0" * 64}],
    )


class RegistryAuth(Model):
    server: RegistryServer = Field("docker.io", description="Registry host the credentials are for.")
    username: RegistryUser = Field(description="Registry user.", examples=["scoobyjava15"])
    password: LongSecret | None = Field(None, description="Registry token. Secret.")


class S3Destination(Model):
    """An S3-compatible bucket: where Redis's backups and k3s's etcd snapshots go."""

    endpoint: S3Endpoint = Field(
        "s3.amazonaws.com", description="Host (and `:port`) of the S3 API, no scheme.", examples=["s3.us-east-1.amazonaws.com"]
    )
    bucket: BucketName = Field(description="Bucket, which must exist.", examples=["sophia-backups"])
    region: Region = Field("us-east-1", description="Region of the bucket.")
    folder: Folder | None = Field(None, description="Folder (key prefix) inside the bucket.", examples=["production"])
    access_key_id: LineSecret | None = Field(None, description="Access key id. Secret; required.")
    secret_access_key: LineSecret | None = Field(None, description="Secret access key. Secret; required.")
    insecure: bool = Field(False, description="Plain HTTP instead of HTTPS (e.g. a MinIO inside the cluster).")

    @property
    def port(self) -> int:
        """The TCP port of the endpoint: its own, or HTTP's or HTTPS's."""
        _, _, port = self.endpoint.partition(":")
        return int(port) if port else (80 if self.insecure else 443)


class RedisBackup(Model):
    schedule: Cron = Field("0 */6 * * *", description="When to copy a snapshot of Redis off the host (cron, UTC).")
    keep: int = Field(28, ge=1, le=1000, description="Copies kept at the destination; older ones are deleted.")
    s3: S3Destination | None = Field(None, description="Copy to an S3-compatible bucket (exactly one of s3 and hostPath).")
    host_path: AbsolutePath | None = Field(
        None,
        description="Copy to this directory of every node (e.g. `/lambda/nfs/sophia-backups/redis`): a Lambda"
        " persistent filesystem, writable by UID 10999.",
        examples=[None],
    )


class Redis(Model):
    image: Image = Field("redis:7.4.2-alpine", description="Official Redis image, pinned.")
    storage_size: StorageQuantity = Field("8Gi", description="Size of the append-only-file volume (1Mi to 64Ti, whole bytes).")
    storage_class: DnsName = Field(
        "local-path", description="StorageClass of the volume where it is not retained (production has a class of its own)."
    )
    data_path: DataDir = Field(
        "/var/lib/sophia/storage",
        description="Node directory of production's retained volume, outside k3s's own directories; the cluster's"
        " k3s `default-local-storage-path` (set by the stack that provisions it) must be the same.",
    )
    resources: Resources = Field(Resources(cpu="250m", memory="512Mi"), description="CPU and memory request and limit of Redis.")
    password: LineSecret | None = Field(None, description="Redis password. Secret; generated when unset.")
    password_rotation: int = Field(0, ge=0, le=1_000_000, description="Bump to generate a new Redis password (when generated).")
    keep_previous_password: bool = Field(
        False, description="Redis still accepts the generated password of the previous rotation (while clients roll)."
    )
    previous_password: LineSecret | None = Field(
        None, description="A configured password Redis still accepts (while clients roll to `password`). Secret."
    )
    backup: RedisBackup | None = Field(None, description="Periodic copies of Redis's data off the host.")


class Snowflake(Model):
    account: SnowflakeAccount = Field(description="Snowflake account identifier.", examples=["sophiaai-prod"])
    user: SnowflakeName = Field(description="Service user.", examples=["SOPHIA_APP"])
    role: SnowflakeName = Field(description="Role of the service user.", examples=["SOPHIA_APP"])
    warehouse: SnowflakeName = Field(description="Warehouse for queries.", examples=["SOPHIA_WH"])
    database: SnowflakeName = Field(description="Database of the long-term memory.", examples=["SOPHIA_AI"])
    schema_name: SnowflakeName = Field(alias="schema", description="Schema of the long-term memory.", examples=["MEMORY"])
    auth: Literal["keypair", "password"] = Field("keypair", description="Key-pair authentication (preferred) or password.")
    private_key: KeySecret | None = Field(None, description="PEM private key for key-pair auth. Secret.")
    private_key_passphrase: Secret | None = Field(None, description="Passphrase of the private key, if any. Secret.")
    password: Secret | None = Field(None, description="Password for password auth. Secret.")


class Ingress(Model):
    enabled: bool = Field(False, description="Expose the orchestrator and the dashboard through Traefik.")
    host: DnsName | None = Field(None, description="Public host name; required when enabled.", examples=["sophia.example.com"])
    tls_secret: DnsName | None = Field(
        None, description="Name of an existing TLS Secret in the namespace.", examples=["sophia-tls"]
    )


class Telemetry(Model):
    collector_image: Image = Field("otel/opentelemetry-collector:0.119.0", description="OpenTelemetry Collector image, pinned.")
    exporter_endpoint: Endpoint | None = Field(
        None,
        description="OTLP/gRPC endpoint the collector exports to (host:port, or with http:// or https://);"
        " unset exports to the collector's log.",
        examples=["tempo.monitoring.svc:4317"],
    )
    exporter_insecure: bool | None = Field(
        None,
        examples=[False],
        description="Export in plaintext (no TLS), e.g. to an in-cluster Tempo."
        " Unset: plaintext for an http:// endpoint, TLS (system CAs) otherwise.",
    )

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
    private_key: KeySecret | None = Field(None, description="SSH private key (OpenSSH PEM). Secret; required to provision.")
    host_key: HostKey | None = Field(
        None,
        description="Public host key of the server (`ssh-keyscan -t ed25519 HOST`, without the host); every SSH"
        " connection checks it. Required in production.",
        examples=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2ZXXfT2XFKgsTEW4GyKOwRFaWVKfj0ZyfXvh5o5yZ"],
    )
    agent_host_keys: dict[AgentHost, HostKey] = Field(
        {},
        max_length=MAX_AGENTS,
        description="Public host key of each agent, by its address in `k3s.agents`. Required in production.",
        examples=[{"104.171.202.65": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQ2ZXXfT2XFKgsTEW4GyKOwRFaWVKfj0ZyfXvh5o5yZ"}],
    )


class K3s(Model):
    version: K3sVersion = Field("v1.33.5+k3s1", description="k3s release to install; bump it to upgrade.")
    dns_name: DnsName | None = Field(
        None,
        description="DNS name of the server, added to the API certificate and used in the kubeconfig.",
        examples=["k3s.sophia.example.com"],
    )
    node_labels: dict[LabelKey, LabelValue] = Field(
        {"node-role": "worker", "gpu": "true", "storage": "ssd"},
        max_length=64,
        description="Labels of every node (set at registration, reconciled through the API afterwards);"
        " not under kubernetes.io or k8s.io, which a kubelet may not set on itself.",
    )
    agents: list[AgentHost] = Field(
        [],
        max_length=MAX_AGENTS,
        description="Extra GPU hosts that join as k3s agents (not the server, none twice).",
        examples=[["104.171.202.65"]],
    )
    keep_on_destroy: bool = Field(False, description="Leave k3s installed when the stack is destroyed.")
    token: Secret | None = Field(None, description="Cluster join token. Secret; generated when unset.")
    agent_token: Secret | None = Field(
        None, description="Join token of agents only (k3s `agent-token`). Secret; generated when unset."
    )
    snapshot_dir: AbsolutePath | None = Field(
        None,
        description="Directory of the etcd snapshots (k3s `etcd-snapshot-dir`), e.g. a Lambda persistent"
        " filesystem that outlives the instance; unset keeps k3s's default on the host's disk.",
        examples=["/lambda/nfs/sophia-etcd"],
    )
    agent_instance_type: InstanceType | None = Field(
        None,
        description="Lambda Labs instance type of the agents; unset: the server's (`lambdaLabs:instanceType`).",
        examples=["gpu_1x_a10"],
    )
    etcd_s3: S3Destination | None = Field(None, description="Copy every etcd snapshot to an S3-compatible bucket too.")


class GpuOperator(Model):
    chart_version: ChartVersion = Field(
        GPU_OPERATOR_CHART.version,
        description="Version of NVIDIA's `gpu-operator` Helm chart; must be the one vendored in `charts/gpu-operator`.",
    )
    driver_enabled: bool = Field(
        False, description="Let the operator install the driver; refused (the host's container toolkit needs the host's driver)."
    )
    smoke_test: bool | None = Field(
        None, description="Run a cuda-vectoradd Job that must succeed; unset means on in production only.", examples=[True]
    )


class MonitoringStack(Model):
    chart_version: ChartVersion = Field(
        PROMETHEUS_STACK_CHART.version,
        description="Version of the `kube-prometheus-stack` chart this cluster-owning stack installs; must be the one"
        " vendored in `charts/kube-prometheus-stack`.",
    )


class StackConfig(Model):
    """Everything a stack file sets. Keys are the full Pulumi config keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, hide_input_in_errors=True)

    disable_default_providers: list[ProviderName] | None = Field(
        None,
        alias="pulumi:disable-default-providers",
        max_length=64,
        description="Pulumi's own key; must list `kubernetes`, so that every object goes through the stack's one provider.",
        examples=[["kubernetes"]],
    )
    environment: Environment = Field(
        alias="sophia-ai:environment",
        description="Which environment this stack is; must be the one its name says.",
        examples=["production"],
    )
    replicas: Replicas = Field(Replicas(), alias="sophia-ai:replicas", description="Replicas per service.")
    resources: ServiceResources = Field(
        ServiceResources(), alias="sophia-ai:resources", description="Per-container resources of the Sophia services."
    )
    features: Features = Field(Features(), alias="sophia-ai:features", description="Optional features.")
    mcp_servers: list[McpName] = Field(
        ["ai_memory", "hubspot", "gong", "slack"],
        alias="sophia-ai:mcpServers",
        min_length=1,
        max_length=64,
        description="MCP servers to run, one Deployment each (`mcp-<name>`, '_' as '-').",
    )
    mcp_credentials: dict[McpName, Annotated[dict[CredentialVariable, KeySecret], Field(max_length=16)]] = Field(
        {},
        alias="sophia-ai:mcpCredentials",
        max_length=64,
        description="Credentials of MCP servers: per server, environment variables named `<SERVER>_...`, which reach"
        " its pods from a Secret `mcp-<server>-credentials`. Secrets; a SaaS server without them only dry-runs.",
        examples=[{"hubspot": {"HUBSPOT_ACCESS_TOKEN": {"secure": "v1:..."}}}],
    )
    gpu_services: list[ServiceName] = Field(
        [],
        alias="sophia-ai:gpuServices",
        max_length=66,
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
    kubernetes_version: KubernetesVersion = Field(
        "1.33.0",
        alias="sophia-ai:kubernetesVersion",
        description="Kubernetes version of an attached cluster, for schema validation of the plan.",
    )
    cluster_stack: StackReference | None = Field(
        None,
        alias="sophia-ai:clusterStack",
        description="Stack whose `kubeconfig` output is the cluster (instead of kubernetes:kubeconfig); not this stack.",
        examples=["organization/sophia-ai/sophia-ai-production"],
    )
    kubeconfig: Kubeconfig | None = Field(
        None,
        alias="kubernetes:kubeconfig",
        description="Path to the kubeconfig of an existing cluster, or its contents (then a secret).",
        examples=["~/.kube/config-dev"],
    )
    kube_context: ContextName | None = Field(
        None,
        alias="kubernetes:context",
        description="Context in that kubeconfig (not with lambdaLabs:ip).",
        examples=["sophia-dev"],
    )
    lambda_instance: InstanceName | None = Field(
        None,
        alias="lambdaLabs:instance",
        description="Name of the Lambda Labs instance that becomes the k3s server (its node name).",
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
    lambda_instance_type: InstanceType = Field(
        "gpu_1x_a10",
        examples=["gpu_2x_h100_sxm5"],
        alias="lambdaLabs:instanceType",
        description="Lambda Labs instance type of that instance (its vCPUs, memory and GPUs: `stacks/hosts.py`); the"
        " capacity of the cluster this stack provisions.",
    )
    cluster_capacity: ClusterCapacity | None = Field(
        None,
        alias="sophia-ai:clusterCapacity",
        description="What an existing cluster can give this project (after what its own software holds); required"
        " with kubernetes:kubeconfig or a clusterStack of another project, refused otherwise.",
    )
    lambda_ip: ServerAddress | None = Field(
        None,
        alias="lambdaLabs:ip",
        description="Public IP of that instance (a host's unicast address, no IPv6 zone).",
        examples=["104.171.202.64"],
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

    @property
    def kubeconfig_secret(self) -> SecretStr | None:
        """The configured kubeconfig when it holds contents (a secret), not a path."""
        if self.kubeconfig is not None and is_kubeconfig_contents(self.kubeconfig):
            return SecretStr(self.kubeconfig)
        return None


# --- rules across keys ----------------------------------------------------------------------


class Unknown(Exception):  # noqa: N818 - a signal, not an error
    """A check needs a value that did not validate: the check does not apply."""


@dataclass(frozen=True)
class Problem:
    """A problem at a key path (aliases; empty for the whole stack). `got` is the offending
    value, shown by the loader unless it may be a secret."""

    path: tuple[str | int, ...]
    message: str
    got: Any = None
    has_got: bool = False


def _problem(path: tuple[str | int, ...], message: str, *got: Any) -> Problem:
    return Problem(path, message, got[0] if got else None, bool(got))


Check = Callable[[StackConfig, str], Iterator[Problem]]
CHECKS: list[Check] = []


def _check(func: Check) -> Check:
    CHECKS.append(func)
    return func


def problems(config: StackConfig, stack: str) -> list[Problem]:
    """Every rule across keys that `config` (or the valid part of it) breaks, for `stack`."""
    found: list[Problem] = []
    for check in CHECKS:
        try:
            found.extend(list(check(config, stack)))
        except Unknown:
            continue
    return found


def environment_of(config: StackConfig, stack: str) -> str:
    """The stack's name decides its environment; a stack of another name goes by its key."""
    return STACK_ENVIRONMENTS.get(stack) or config.environment


@_check
def _stack_and_environment(c: StackConfig, stack: str) -> Iterator[Problem]:
    if stack not in STACK_ENVIRONMENTS:
        yield _problem((), f"{stack!r} is not a stack of this project; its stacks are {', '.join(STACK_ENVIRONMENTS)}")
    elif c.environment != STACK_ENVIRONMENTS[stack]:
        yield _problem(
            ("sophia-ai:environment",),
            f"must be {STACK_ENVIRONMENTS[stack]}: the stack {stack} is {STACK_ENVIRONMENTS[stack]} whatever this key says",
            c.environment,
        )


@_check
def _default_provider_disabled(c: StackConfig, stack: str) -> Iterator[Problem]:
    if not {"kubernetes", "*"} & set(c.disable_default_providers or []):
        yield _problem(
            ("pulumi:disable-default-providers",),
            "must list kubernetes, so that no object can reach the cluster of an ambient kubeconfig",
        )


@_check
def _one_cluster_source(c: StackConfig, stack: str) -> Iterator[Problem]:
    sources = [
        name
        for name, value in (
            ("lambdaLabs:ip", c.lambda_ip),
            ("kubernetes:kubeconfig", c.kubeconfig),
            ("sophia-ai:clusterStack", c.cluster_stack),
        )
        if value is not None
    ]
    if len(sources) != 1:
        got = " and ".join(sources) if sources else "none of them"
        key = sources[-1] if sources else "kubernetes:kubeconfig"
        yield _problem((key,), f"set exactly one of lambdaLabs:ip, kubernetes:kubeconfig, sophia-ai:clusterStack, got {got}")


@_check
def _host_settings_need_a_host(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.lambda_ip is None:
        for attr in ("ssh", "k3s", "gpu_operator", "monitoring_stack", "lambda_instance_type"):
            if attr in c.model_fields_set:
                yield _problem(
                    (StackConfig.model_fields[attr].alias or attr,), "only applies when this stack installs k3s (lambdaLabs:ip)"
                )
    if (c.lambda_ip is None) != (c.lambda_instance is None):
        yield _problem(("lambdaLabs:instance",), "lambdaLabs:instance and lambdaLabs:ip go together")


def owning_stack(c: StackConfig) -> str | None:
    """The stack of this project whose cluster `c` attaches to through `clusterStack`, or None."""
    if c.cluster_stack is None:
        return None
    parts = c.cluster_stack.split("/")
    project = parts[-2] if len(parts) > 1 else PROJECT
    return parts[-1] if project == PROJECT and parts[-1] in STACK_ENVIRONMENTS else None


@_check
def _capacity_of_an_attached_cluster(c: StackConfig, stack: str) -> Iterator[Problem]:
    # Where the cluster is ours (provisioned here, or another stack of this project provisions it),
    # its capacity follows from the instance types; any other cluster must say what it offers.
    known = c.lambda_ip is not None or owning_stack(c) is not None
    if known and c.cluster_capacity is not None:
        yield _problem(
            ("sophia-ai:clusterCapacity",),
            "only applies to a cluster this project does not provision: its capacity comes from lambdaLabs:instanceType",
        )
    elif not known and c.cluster_capacity is None and (c.kubeconfig is not None or c.cluster_stack is not None):
        yield _problem(
            ("sophia-ai:clusterCapacity",),
            "is required for a cluster this project does not provision: the CPUs, memory and GPUs it can give this stack",
        )


@_check
def _context_needs_a_kubeconfig(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.lambda_ip is not None and c.kube_context is not None:
        yield _problem(
            ("kubernetes:context",), "has no meaning when this stack installs k3s (lambdaLabs:ip): it uses k3s's own kubeconfig"
        )


@_check
def _cluster_stack_is_another(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.cluster_stack is not None:
        parts = c.cluster_stack.split("/")
        project = parts[-2] if len(parts) > 1 else PROJECT
        if parts[-1] == stack and project == PROJECT:
            yield _problem(
                ("sophia-ai:clusterStack",), "names this stack itself; the cluster must come from another stack", c.cluster_stack
            )


@_check
def _charts_are_the_vendored_ones(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.lambda_ip is None:
        return
    if reason := gpu_operator_problem(c.gpu_operator.chart_version):
        yield _problem(("sophia-ai:gpuOperator", "chartVersion"), reason, c.gpu_operator.chart_version)
    if reason := monitoring_stack_problem(c.monitoring_stack.chart_version):
        yield _problem(("sophia-ai:monitoringStack", "chartVersion"), reason, c.monitoring_stack.chart_version)
    if c.gpu_operator.driver_enabled:
        yield _problem(
            ("sophia-ai:gpuOperator", "driverEnabled"),
            "must be false: k3s uses the host's NVIDIA container toolkit, which needs the host's driver",
        )
    for chart in [GPU_OPERATOR_CHART, *([PROMETHEUS_STACK_CHART] if c.features.monitoring else [])]:
        if reason := kubernetes_problem(chart, c.k3s.version):
            yield _problem(("sophia-ai:k3s", "version"), reason)


@_check
def _one_backup_destination(c: StackConfig, stack: str) -> Iterator[Problem]:
    backup = c.redis.backup
    if backup is not None and (backup.s3 is None) == (backup.host_path is None):
        yield _problem(("sophia-ai:redis", "backup"), "set exactly one of s3 and hostPath")


@_check
def _previous_redis_password(c: StackConfig, stack: str) -> Iterator[Problem]:
    redis = c.redis
    if redis.keep_previous_password and (redis.password is not None or redis.password_rotation == 0):
        yield _problem(
            ("sophia-ai:redis", "keepPreviousPassword"),
            "needs a generated password rotated at least once (no password, passwordRotation >= 1)",
        )
    if redis.previous_password is not None and redis.password is None:
        yield _problem(("sophia-ai:redis", "previousPassword"), "needs password (a configured password)")


@_check
def _exporter_tls_matches_its_scheme(c: StackConfig, stack: str) -> Iterator[Problem]:
    telemetry = c.telemetry
    scheme = (telemetry.exporter_endpoint or "").partition("://")[0]
    says_plaintext = {"http": True, "https": False}.get(scheme)
    if None not in (telemetry.exporter_insecure, says_plaintext) and telemetry.exporter_insecure != says_plaintext:
        yield _problem(
            ("sophia-ai:telemetry", "exporterInsecure"),
            f"contradicts the {scheme}:// of sophia-ai:telemetry.exporterEndpoint",
            telemetry.exporter_insecure,
        )


@_check
def _host_keys_of_agents(c: StackConfig, stack: str) -> Iterator[Problem]:
    agents = {_host_key(agent) for agent in c.k3s.agents}
    for address in c.ssh.agent_host_keys:
        if _host_key(address) not in agents:
            yield _problem(("sophia-ai:ssh", "agentHostKeys", address), "is not one of sophia-ai:k3s.agents")


@_check
def _agents_are_other_hosts(c: StackConfig, stack: str) -> Iterator[Problem]:
    server = {_host_key(c.lambda_ip)} if c.lambda_ip is not None else set()
    server |= {c.k3s.dns_name} if c.k3s.dns_name else set()
    seen: set[str] = set()
    for index, agent in enumerate(c.k3s.agents):
        key = _host_key(agent)
        if key in server:
            yield _problem(("sophia-ai:k3s", "agents", index), "is the k3s server itself", agent)
        elif key in seen:
            yield _problem(("sophia-ai:k3s", "agents", index), "is listed twice", agent)
        seen.add(key)


def _host_key(host: str) -> str:
    address = ip_address(host)
    return address.compressed if address is not None else host


@_check
def _mcp_servers_once(c: StackConfig, stack: str) -> Iterator[Problem]:
    if len(set(c.mcp_servers)) != len(c.mcp_servers):
        yield _problem(("sophia-ai:mcpServers",), "must not list a server twice")


@_check
def _mcp_credentials_of_known_servers(c: StackConfig, stack: str) -> Iterator[Problem]:
    for server, variables in c.mcp_credentials.items():
        if server not in c.mcp_servers:
            yield _problem(("sophia-ai:mcpCredentials", server), "is not one of sophia-ai:mcpServers")
        prefix = server.upper() + "_"
        for variable in variables:
            # Named after its server: no credential can shadow the platform's own variables (PORT...).
            if not variable.startswith(prefix):
                yield _problem(("sophia-ai:mcpCredentials", server, variable), f"must start with {prefix}")


@_check
def _gpu_services_known(c: StackConfig, stack: str) -> Iterator[Problem]:
    allowed = ["orchestrator", "memory", *c.mcp_servers]
    for index, service in enumerate(c.gpu_services):
        if service not in allowed:
            yield _problem(
                ("sophia-ai:gpuServices", index), "must be orchestrator, memory or one of sophia-ai:mcpServers", service
            )
        elif service in c.gpu_services[:index]:
            yield _problem(("sophia-ai:gpuServices", index), "is listed twice", service)


@_check
def _autoscaler_above_replicas(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.features.autoscaling:
        top = max(c.replicas.orchestrator, c.replicas.memory, c.replicas.mcp_servers, c.replicas.frontend)
        if c.autoscaler.max_replicas < top:
            yield _problem(
                ("sophia-ai:autoscaler", "maxReplicas"),
                "must be >= the largest count of sophia-ai:replicas",
                c.autoscaler.max_replicas,
            )


@_check
def _build_needs_credentials(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.images.build and c.registry_auth is None:
        yield _problem(("sophia-ai:registryAuth",), "is required when images.build is true (to push)")


@_check
def _ingress_needs_a_host(c: StackConfig, stack: str) -> Iterator[Problem]:
    if c.ingress.enabled and not c.ingress.host:
        yield _problem(("sophia-ai:ingress", "host"), "is required when enabled is true")


@_check
def _production_replicas(c: StackConfig, stack: str) -> Iterator[Problem]:
    if environment_of(c, stack) == "production":
        for name, info in Replicas.model_fields.items():
            service, count = info.alias or name, getattr(c.replicas, name)
            if count < MIN_PRODUCTION_REPLICAS and not (service == "frontend" and count == 0):
                yield _problem(
                    ("sophia-ai:replicas", service), f"production needs at least {MIN_PRODUCTION_REPLICAS} replicas", count
                )


@_check
def _production_images(c: StackConfig, stack: str) -> Iterator[Problem]:
    if environment_of(c, stack) != "production":
        return
    service_image = f"{c.images.registry}/sophia-orchestrator:{c.images.tag}"
    images = (
        (("sophia-ai:images", "tag"), service_image, c.images.tag),
        (("sophia-ai:redis", "image"), c.redis.image, c.redis.image),
        (("sophia-ai:telemetry", "collectorImage"), c.telemetry.collector_image, c.telemetry.collector_image),
    )
    for path, image, shown in images:
        if is_mutable_image(image):
            yield _problem(
                path, f"production refuses mutable tags ({', '.join(sorted(MUTABLE_TAGS))}); use a version or commit SHA", shown
            )
    registry = ("sophia-ai:images", "registry"), service_image, c.images.registry
    for path, image, shown in (registry, *images[1:]):
        if not is_allowed_registry(image):
            yield _problem(
                path,
                f"production pulls only from {', '.join(ALLOWED_REGISTRIES)} (the policy pack's list, policies/production.py)",
                shown,
            )
