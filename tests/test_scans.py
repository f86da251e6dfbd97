"""The scanners `make test` relies on work offline here and fail on what they should catch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sophia_infra import render
from stacks import loader
from tests.conftest import PROJECT, STACKS

CHECKOV = PROJECT / ".venv-scan/bin/checkov"
BIN = PROJECT / ".venv/bin"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, cwd=PROJECT)


@pytest.mark.skipif(not CHECKOV.exists(), reason="make test creates .venv-scan before the unit tests")
def test_checkov_fails_a_privileged_pod(tmp_path: Path):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "sophia-dev"},
        "spec": {"containers": [{"name": "bad", "image": "busybox:latest", "securityContext": {"privileged": True}}]},
    }
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    result = run(CHECKOV, "--directory", tmp_path, "--framework", "kubernetes", "--skip-download", "--quiet", "--compact")
    assert result.returncode != 0
    assert "CKV_K8S_16" in result.stdout  # "Container should not be privileged"


def test_checkov_skips_are_few_and_justified(tmp_path: Path):
    """Skips live on the objects (never a blanket --skip-check), each with a reason."""
    for stack in STACKS:
        render.write(render.plan(stack, loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml")), tmp_path)
    skipped: set[str] = set()
    for path in tmp_path.glob("*/manifests/*.yaml"):
        annotations = (yaml.safe_load(path.read_text()).get("metadata") or {}).get("annotations") or {}
        for key, value in annotations.items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert len(reason) > 40, f"{path.name}: {check} needs a reason"
                skipped.add(check)
    assert skipped == {"CKV_K8S_43", "CKV_K8S_35"}
    assert "--skip-check" not in (PROJECT / "Makefile").read_text()


def test_hadolint_fails_a_bad_dockerfile_and_passes_a_good_one(tmp_path: Path):
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    assert run(BIN / "hadolint", bad).returncode != 0
    good = tmp_path / "Dockerfile.good"
    good.write_text('FROM python:3.12.8-slim\nUSER 10001\nCMD ["python", "-V"]\n')
    assert run(BIN / "hadolint", good).returncode == 0


def test_shellcheck_fails_an_unquoted_variable(tmp_path: Path):
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $TARGET/*\n")
    result = run(BIN / "shellcheck", "--severity=style", script)
    assert result.returncode != 0 and "SC2086" in result.stdout
