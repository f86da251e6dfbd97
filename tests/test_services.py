"""The service template and the services generated from it, with their own tests: they start the
service as its container does (`python -m app`), a real Redis, an OTLP receiver and, for Snowflake
users, a Snowflake emulator."""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from infrastructure import catalog
from infrastructure.catalog import MCP_COMPONENT, ServiceSpec
from stacks import loader
from tests.conftest import PROJECT

TEMPLATE = PROJECT / "services/templates/python-service"
# What each service's own suite counts when it passes.
OWN_TESTS = {"memory": 29, "orchestrator": 28}


def python_services() -> dict[str, ServiceSpec]:
    """The catalog's services built from `services/` (the others have sources of their own)."""
    config = loader.load_stack_file(PROJECT / "Pulumi.sophia-ai-dev.yaml").config
    return {spec.name: spec for spec in catalog.services(config) if spec.context.startswith("services/")}


def template_options(spec: ServiceSpec) -> dict[str, str]:
    """The cookiecutter options that make `spec` from the template, from what the catalog says of it."""
    config = loader.load_stack_file(PROJECT / "Pulumi.sophia-ai-dev.yaml").config
    by_name = {other.name: other for other in catalog.services(config)}
    callees = [by_name[name] for name in spec.calls]
    return {
        "service_name": spec.name,
        "service_port": str(spec.port),
        "uses_redis": "yes" if spec.uses_redis else "no",
        "uses_snowflake": "yes" if spec.uses_snowflake else "no",
        "calls": ",".join(callee.name for callee in callees if callee.component != MCP_COMPONENT),
        "calls_mcp_servers": "yes" if any(callee.component == MCP_COMPONENT for callee in callees) else "no",
    }


def generate(out: Path, **context: str) -> Path:
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out), extra_context=context))


@pytest.fixture
def in_project() -> Iterator[Path]:
    """A scratch directory inside the project, so the project's lint configuration applies to it."""
    (PROJECT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=PROJECT / "build") as scratch:
        yield Path(scratch)


def own_tests(directory: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=directory,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )


def passed(result: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"(\d+) passed", result.stdout)
    return int(found.group(1)) if found else 0


def differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__", ".pytest_cache"])
    found = [f"{left.name}/{n}" for n in comparison.left_only + comparison.right_only + comparison.diff_files]
    for sub in comparison.common_dirs:
        found += differences(left / sub, right / sub)
    return found


def lint(directory: Path) -> str:
    ruff = PROJECT / ".venv/bin/ruff"
    problems = ""
    for command in ([str(ruff), "check", str(directory)], [str(ruff), "format", "--check", str(directory)]):
        result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, check=False)
        problems += result.stdout if result.returncode else ""
    return problems


def test_the_template_renders_a_service_without_dependencies_whose_tests_pass(in_project: Path):
    service = generate(in_project, service_name="notes", service_port="8123", uses_redis="no")
    dockerfile = (service / "Dockerfile").read_text()
    assert dockerfile.count("USER 10001:10001") == 1
    assert "EXPOSE 8123" in dockerfile
    hadolint = subprocess.run(
        [str(PROJECT / ".venv/bin/hadolint"), "Dockerfile"], cwd=service, capture_output=True, text=True, check=False
    )
    assert hadolint.returncode == 0, hadolint.stdout
    assert not (service / "app/snowflake.py").exists()
    assert lint(service) == ""
    result = own_tests(service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed(result) == 9


@pytest.mark.parametrize(
    "options",
    [
        {"uses_redis": "yes", "uses_snowflake": "no"},
        {"uses_redis": "no", "uses_snowflake": "yes", "calls": "memory, search"},
        {"uses_redis": "yes", "calls_mcp_servers": "yes", "calls": "memory"},
    ],
    ids=["redis", "snowflake-and-two-callees", "redis-callee-and-mcp"],
)
def test_every_combination_of_options_renders_clean_python(in_project: Path, options: dict[str, str]):
    service = generate(in_project, service_name="notes", service_port="8123", **options)
    assert lint(service) == ""
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(service)], capture_output=True, text=True, check=False
    )
    assert compiled.returncode == 0, compiled.stdout
    settings = (service / "app/settings.py").read_text()
    for callee in options.get("calls", "").replace(" ", "").split(","):
        assert not callee or f"{callee}_url: str | None = None" in settings


@pytest.mark.parametrize("options", [{"service_name": "Not A Name"}, {"calls": "memory,Bad Name"}, {"service_port": "99999"}])
def test_bad_options_are_refused_naming_the_option(tmp_path: Path, options: dict[str, str]):
    with pytest.raises(Exception, match="Hook script failed"):
        generate(tmp_path, **{"service_name": "notes", **options})


def test_the_catalog_drives_the_template_options():
    assert template_options(python_services()["memory"]) == {
        "service_name": "memory",
        "service_port": "8001",
        "uses_redis": "yes",
        "uses_snowflake": "yes",
        "calls": "",
        "calls_mcp_servers": "no",
    }
    orchestrator = template_options(python_services()["orchestrator"])
    assert (orchestrator["calls"], orchestrator["calls_mcp_servers"]) == ("memory", "yes")


@pytest.mark.parametrize("name", ["memory", "orchestrator"])
def test_committed_services_are_what_the_template_generates_from_the_catalog(tmp_path: Path, name: str):
    options = template_options(python_services()[name])
    fresh = generate(tmp_path, **options)
    command = "cookiecutter --no-input -o services services/templates/python-service " + " ".join(
        f"{key}={value}" for key, value in options.items()
    )
    assert differences(PROJECT / "services" / name, fresh) == [], f"regenerate it: rm -rf services/{name} && {command}"


@pytest.mark.parametrize("name", ["memory", "orchestrator"])
def test_services_own_tests_pass(name: str):
    result = own_tests(PROJECT / "services" / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert passed(result) == OWN_TESTS[name]


def test_a_failing_service_test_is_reported(tmp_path: Path):
    service = generate(tmp_path, service_name="broken", uses_redis="no")
    (service / "tests/test_broken.py").write_text("def test_fails():\n    assert False\n")
    # Under the generated project's own configuration (its conftest and pyproject), the one file.
    assert own_tests(service, "tests/test_broken.py").returncode == 1


def constant(path: Path, name: str) -> float:
    """A module-level number of a source file, as written."""
    import ast

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            value = ast.literal_eval(node.value)
            assert isinstance(value, int | float)
            return float(value)
    raise AssertionError(f"{path}: no {name}")


def test_each_readiness_caller_waits_longer_than_its_callee(run_stack):
    """A /ready that asks another service's /ready must wait longer than that one's own checks, or
    a slow dependency reads as an unready one up the chain: Redis's ping (memory) < ai_memory's
    check of memory < the orchestrator's check of a service < the kubelet's readiness probe."""
    services = PROJECT / "services"
    leaf = {name: constant(services / name / "app/dependencies.py", "CHECK_TIMEOUT") for name in ("memory", "orchestrator")}
    callers = {name: constant(services / name / "app/dependencies.py", "SERVICE_CHECK_TIMEOUT") for name in leaf}
    ai_memory = constant(PROJECT / "mcp-servers/sophia_mcp/servers/ai_memory.py", "READY_TIMEOUT_SECONDS")
    run = run_stack("sophia-ai-dev")
    probes = {
        name: run.get("Deployment", f"{name}-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
            "timeoutSeconds"
        ]
        for name in ("orchestrator", "memory", "mcp-ai-memory")
    }
    assert max(leaf.values()) < ai_memory < min(callers.values()) < min(probes.values()), (leaf, ai_memory, callers, probes)
