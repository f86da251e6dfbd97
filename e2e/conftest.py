"""How the suite reaches a stack.

By default (`make e2e`) it renders each stack of E2E_STACKS (sophia-ai-dev and sophia-ai-staging)
and runs it here, one at a time (e2e/stack.py). Given E2E_SERVICE_URLS it tests a stack running
elsewhere instead, e.g. through `kubectl port-forward` (README, "Tests and benchmarks"):

- E2E_STACKS: the one stack deployed there (its rendering says what to expect);
- E2E_SERVICE_URLS: a JSON object, service name -> base URL (at least orchestrator and memory);
- E2E_PROMETHEUS_URL: the Prometheus that scrapes the stack (optional);
- E2E_REDIS_URL and E2E_REDIS_PASSWORD: the stack's Redis (optional).

Tests that need control of the processes (stopping Redis) or the collector's place (traces) run
only on a stack run here; they skip, saying so, elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from e2e.stack import PROJECT, LocalStack, Rendered, TestSecrets, render_stack
from infrastructure import catalog
from stacks import loader

DEFAULT_STACKS = "sophia-ai-dev,sophia-ai-staging"


def stacks() -> list[str]:
    return [name.strip() for name in os.environ.get("E2E_STACKS", DEFAULT_STACKS).split(",") if name.strip()]


def deployed_urls() -> dict[str, str] | None:
    text = os.environ.get("E2E_SERVICE_URLS")
    return None if text is None else json.loads(text)


def service_names(stack: str) -> list[str]:
    """The catalog's services of a stack (configuration only: no rendering at collection time)."""
    config = loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml").config
    return [spec.name for spec in catalog.services(config)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    selected = stacks()
    if deployed_urls() is not None and len(selected) != 1:
        raise pytest.UsageError("E2E_SERVICE_URLS tests one deployed stack: set E2E_STACKS to it")
    # One stack parameter for every test, so that pytest runs all of a stack's tests with one instance
    # of it (and stops it before starting the next).
    if "stack" in metafunc.fixturenames:
        metafunc.parametrize("stack", selected, indirect=True, scope="session")
    if "service" in metafunc.fixturenames:
        names = list(dict.fromkeys(name for stack in selected for name in service_names(stack)))
        metafunc.parametrize("service", names)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Target:
    """A stack under test: its rendering, where its services answer, and (here only) its processes."""

    rendered: Rendered
    urls: dict[str, str]
    skipped: dict[str, str]
    prometheus_url: str | None = None
    redis_url: str | None = None
    redis_password: str | None = None
    local: LocalStack | None = None
    exit_codes: dict[str, int] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """Its base URL, or skip the test saying why it is not running."""
        if self.rendered.spec(service) is None:
            pytest.skip(f"{self.rendered.stack} has no {service}")
        if service in self.skipped:
            pytest.skip(self.skipped[service])
        return self.urls[service]

    def control(self) -> LocalStack:
        if self.local is None:
            pytest.skip("needs the stack's processes: runs on a stack run here (make e2e)")
        return self.local


@pytest.fixture(scope="session")
def target(stack: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp(stack)
    values = TestSecrets.generate()
    rendered = render_stack(stack, workdir / "plan", values)
    urls = deployed_urls()
    if urls is not None:
        names = [spec.name for spec in rendered.specs]
        yield Target(
            rendered,
            {name: url.rstrip("/") for name, url in urls.items()},
            {name: f"{name}: not in E2E_SERVICE_URLS" for name in names if name not in urls},
            os.environ.get("E2E_PROMETHEUS_URL"),
            os.environ.get("E2E_REDIS_URL"),
            os.environ.get("E2E_REDIS_PASSWORD"),
        )
        return
    redis_port = rendered.get("Service", "redis")["spec"]["ports"][0]["port"]
    with LocalStack(rendered, workdir, values) as local:
        result = Target(
            rendered,
            {name: service.url for name, service in local.services.items()},
            dict(local.skipped),
            local.prometheus_url,
            f"redis://127.0.0.1:{local.addresses[('redis', redis_port)]}/0",
            values.redis_password,
            local,
        )
        yield result
        result.exit_codes.update(local.stop())
    unclean = {name: code for name, code in result.exit_codes.items() if code != 0}
    assert not unclean, f"services that did not exit 0 on SIGTERM: {unclean}"


def pytest_report_header(config: pytest.Config) -> str:
    where = "deployed (E2E_SERVICE_URLS)" if deployed_urls() is not None else "run here"
    return f"e2e stacks: {', '.join(stacks())}, {where}"
