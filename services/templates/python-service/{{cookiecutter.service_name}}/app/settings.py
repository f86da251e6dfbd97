"""Settings from environment variables, as the infrastructure sets them."""

from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    service_name: str = "{{ cookiecutter.service_name }}"
    port: int = {{ cookiecutter.service_port }}
    sophia_environment: str = "dev"
{%- if cookiecutter.uses_redis == "yes" %}
    redis_url: str = "redis://localhost:6379/0"
    redis_password: str | None = None
{%- endif %}
