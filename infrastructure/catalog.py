"""The Sophia AI services: ports, what each one talks to, and where its image is built from."""

from __future__ import annotations

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
    uses_redis: bool = False
    uses_snowflake: bool = False
    public: bool = False
    external_https: bool = False
    context: str = ""
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def image(self) -> str:
        return f"sophia-{self.name}"


def mcp_name(server: str) -> str:
    return "mcp-" + server.replace("_", "-")


def services(config: StackConfig) -> list[ServiceSpec]:
    """Every service the stack runs; the frontend only when it has replicas."""
    replicas = config.replicas
    specs = [
        ServiceSpec(
            "orchestrator",
            "orchestrator",
            "api",
            ORCHESTRATOR_PORT,
            replicas.orchestrator,
            uses_redis=True,
            uses_snowflake=True,
            public=True,
            external_https=True,
            context="services/orchestrator",
        ),
        ServiceSpec(
            "memory",
            "memory",
            "memory",
            MEMORY_PORT,
            replicas.memory,
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
            "mcp-server",
            MCP_PORT,
            replicas.mcp_servers,
            external_https=True,
            context="mcp-servers",
            dockerfile="docker/Dockerfile.mcp-server",
            build_args={"SERVICE": server},
        )
        for server in config.mcp_servers
    ]
    if replicas.frontend:
        specs.append(
            ServiceSpec("frontend", "frontend", "frontend", FRONTEND_PORT, replicas.frontend, public=True, context="frontend")
        )
    return specs
