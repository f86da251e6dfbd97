"""Settings from environment variables, as the rendered Deployment sets them (the platform contract)."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    service_name: str = "orchestrator"
    port: int = 8000
    sophia_environment: str = "dev"
    # Prometheus metrics get a listener of their own on this port, only when it is set.
    metrics_port: int | None = None
    # Worker processes: the container's CPU limit rounded up (the downward API sets it).
    web_concurrency: int = Field(1, ge=1, le=64)
    # Traces are exported over OTLP/gRPC only when this is set; the SDK reads the other OTEL_* variables.
    otel_exporter_otlp_endpoint: str | None = None
    redis_url: str = "redis://localhost:6379/0"
    redis_password: SecretStr | None = None
    # Base URL of the memory service, which /ready requires.
    memory_url: str | None = None
    # MCP server name (as the stack file names it) -> base URL; a JSON object.
    mcp_server_urls: dict[str, str] = {}
    # The keys of the `snowflake` Secret (components/snowflake.py); unset ACCOUNT means not configured.
    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_role: str | None = None
    snowflake_warehouse: str | None = None
    snowflake_database: str | None = None
    snowflake_schema: str | None = None
    snowflake_authenticator: str = "SNOWFLAKE_JWT"
    snowflake_private_key: SecretStr | None = None
    snowflake_private_key_passphrase: SecretStr | None = None
    snowflake_password: SecretStr | None = None
    # Not in the Secret: where Snowflake answers when not at <account>.snowflakecomputing.com
    # (PrivateLink, or an emulator in tests).
    snowflake_host: str | None = None
    snowflake_port: int | None = None
    snowflake_protocol: str = "https"
