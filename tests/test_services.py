"""The service template and the services generated from it, with their own tests (real Redis)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from infrastructure.catalog import MEMORY_PORT, ORCHESTRATOR_PORT
from tests.conftest import PROJECT

TEMPLATE = PROJECT / "services/templates/python-service"
SERVICES = {"orchestrator": ORCHESTRATOR_PORT, "memory": MEMORY_PORT}


def generate(out: Path, **context: str) -> Path:
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(out), extra_context=context))


def own_tests(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORT", "REDIS_", "SOPHIA_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__", ".pytest_cache"])
    found = [f"{left.name}/{n}" for n in comparison.left_only + comparison.right_only + comparison.diff_files]
    for sub in comparison.common_dirs:
        found += differences(left / sub, right / sub)
    return found


@pytest.mark.parametrize("uses_redis", ["yes", "no"])
def test_the_template_renders_a_service_whose_tests_pass(tmp_path: Path, uses_redis: str):
    service = generate(tmp_path, service_name="notes", service_port="8123", uses_redis=uses_redis)
    assert (service / "Dockerfile").read_text().count("USER 10001:10001") == 1
    assert "EXPOSE 8123" in (service / "Dockerfile").read_text()
    hadolint = subprocess.run(
        [str(PROJECT / ".venv/bin/hadolint"), "Dockerfile"], cwd=service, capture_output=True, text=True, check=False
    )
    assert hadolint.returncode == 0, hadolint.stdout
    result = own_tests(service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("5 passed" if uses_redis == "yes" else "3 passed") in result.stdout


@pytest.mark.parametrize(("name", "port"), SERVICES.items())
def test_committed_services_are_what_the_template_generates(tmp_path: Path, name: str, port: int):
    fresh = generate(tmp_path, service_name=name, service_port=str(port))
    assert differences(PROJECT / "services" / name, fresh) == []


@pytest.mark.parametrize("name", SERVICES)
def test_services_own_tests_pass_against_a_real_redis(name: str):
    result = own_tests(PROJECT / "services" / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_a_failing_service_test_is_reported(tmp_path: Path):
    service = generate(tmp_path, service_name="broken", uses_redis="no")
    (service / "tests/test_broken.py").write_text("def test_fails():\n    assert False\n")
    assert own_tests(service).returncode == 1
