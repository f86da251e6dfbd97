"""The Sophia AI services: ports, what each one talks to, and where its image is built from."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from stacks.model import StackConfig

# The repository root: image build contexts are relative to it, whatever the working directory
# (under `pulumi up` the program runs in `infrastructure/`, Pulumi.yaml's `main`).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ORCHESTRATOR_PORT = 8000
MEMORY_PORT = 8001
MCP_PORT = 8080
FRONTEND_PORT = 8080


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # Kubernetes name, also the image `sophia-<name>`
    config_name: str  # how `sophia-ai:gpuServices` names it
    component: str
    port: int
    replicas: int
    # CPU and memory of each container (requests = limits), `sophia-ai:resources` with its override.
    cpu: str
    memory: str
    uses_redis: bool = False
    uses_snowflake: bool = False
    public: bool = False
    external_https: bool = False
    context: str = ""
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    # The services it calls, by `name`: each becomes a `<NAME>_URL` in its environment (MCP servers
    # together become MCP_SERVER_URLS), and the only service-to-service traffic it needs.
    calls: tuple[str, ...] = ()

    @property
    def image(self) -> str:
        return f"sophia-{self.name}"

    def url(self, namespace: str) -> str:
        """Its base URL inside the cluster, e.g. http://memory.sophia-dev.svc:8001."""
        return f"http://{self.name}.{namespace}.svc:{self.port}"


MCP_COMPONENT = "mcp-server"
# MCP servers that call a Sophia service themselves (the others call only external APIs).
MCP_CALLS: dict[str, tuple[str, ...]] = {"ai_memory": ("memory",)}


def mcp_name(server: str) -> str:
    return "mcp-" + server.replace("_", "-")


def services(config: StackConfig) -> list[ServiceSpec]:
    """Every service the stack runs; the frontend only when it has replicas."""
    replicas = config.replicas
    sized = {key: config.resources.of(key) for key in ("orchestrator", "memory", "mcpServers", "frontend")}

    specs = [
        ServiceSpec(
            "orchestrator",
            "orchestrator",
            "api",
            ORCHESTRATOR_PORT,
            replicas.orchestrator,
            cpu=sized["orchestrator"].cpu,
            memory=sized["orchestrator"].memory,
            uses_redis=True,
            uses_snowflake=True,
            public=True,
            external_https=True,
            context="services/orchestrator",
            calls=("memory", *(mcp_name(server) for server in config.mcp_servers)),
        ),
        ServiceSpec(
            "memory",
            "memory",
            "memory",
            MEMORY_PORT,
            replicas.memory,
            cpu=sized["memory"].cpu,
            memory=sized["memory"].memory,
            uses_redis=True,
            uses_snowflake=True,
            external_https=True,
            context="services/memory",
        ),
    ]
    specs += [
        ServiceSpec(
            mcp_name(server),
            server,
            MCP_COMPONENT,
            MCP_PORT,
            replicas.mcp_servers,
            cpu=sized["mcpServers"].cpu,
            memory=sized["mcpServers"].memory,
            external_https=True,
            calls=MCP_CALLS.get(server, ()),
            context="mcp-servers",
            dockerfile="docker/Dockerfile.mcp-server",
            build_args={"SERVICE": server},
        )
        for server in config.mcp_servers
    ]
    if replicas.frontend:
        specs.append(
            ServiceSpec(
                "frontend",
                "frontend",
                "frontend",
                FRONTEND_PORT,
                replicas.frontend,
                cpu=sized["frontend"].cpu,
                memory=sized["frontend"].memory,
                public=True,
                context="frontend",
                calls=("orchestrator",),
            )
        )
    return specs


def callee_env(spec: ServiceSpec, specs: list[ServiceSpec], namespace: str) -> dict[str, str]:
    """The environment telling `spec` where the services it calls are: `<NAME>_URL` per service
    (MEMORY_URL, ORCHESTRATOR_URL) and MCP_SERVER_URLS, a JSON object from each MCP server's name in
    the stack file (`ai_memory`) to its base URL."""
    by_name = {other.name: other for other in specs}
    env: dict[str, str] = {}
    mcp: dict[str, str] = {}
    for callee in spec.calls:
        target = by_name[callee]
        if target.component == MCP_COMPONENT:
            mcp[target.config_name] = target.url(namespace)
        else:
            env[f"{target.name.upper().replace('-', '_')}_URL"] = target.url(namespace)
    if mcp:
        env["MCP_SERVER_URLS"] = json.dumps(mcp)
    return env
