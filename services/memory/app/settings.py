"""Settings from environment variables, as the infrastructure sets them."""

from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    service_name: str = "memory"
    port: int = 8001
    sophia_environment: str = "dev"
    redis_url: str = "redis://localhost:6379/0"
    redis_password: str | None = None
