"""`sophia-infra check --esc`: the secrets a stack's ESC environments hold, read as CI reads them,
against a stub `pulumi` that answers `pulumi env get ENV pulumiConfig --value json` as ESC does."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

BIN = PROJECT / ".venv/bin"
STUB = """#!/usr/bin/env bash
# Records its arguments; answers `env get NAME pulumiConfig --value json` from $ESC_DIR/NAME.json.
printf '%s\\n' "$*" >> "$ESC_DIR/calls"
[ "$1 $2 $4 $5 $6" = "env get pulumiConfig --value json" ] || { echo "unexpected: $*" >&2; exit 2; }
file="$ESC_DIR/${3//\\//_}.json"
[ -f "$file" ] || { echo "error: environment $3 not found" >&2; exit 1; }
cat "$file"
"""


@pytest.fixture
def esc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write environments (name -> the JSON ESC prints), get the stub's recorded calls."""
    bin_dir, data = tmp_path / "bin", tmp_path / "esc"
    bin_dir.mkdir()
    data.mkdir()
    stub = bin_dir / "pulumi"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("ESC_DIR", str(data))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def environments(**envs: object) -> Path:
        for name, value in envs.items():
            (data / f"{name.replace('/', '_')}.json").write_text(json.dumps(value))
        return data / "calls"

    return environments


def check(tmp_path: Path, stack: str, *flags: str, environment: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sophia-infra check --esc` on a copy of the real stack file, importing `environment`."""
    document = yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())
    if environment is not None:
        document["environment"] = environment
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document))
    cli = shutil.which("sophia-infra", path=str(BIN))
    assert cli is not None
    return subprocess.run(
        [cli, "check", "--config-file", str(path), "--esc", *flags], capture_output=True, text=True, check=False
    )


SNOWFLAKE_KEY = {"sophia-ai:snowflake": {"privateKey": "[secret]"}}


def test_secrets_held_in_esc_satisfy_require_secrets_without_being_read(tmp_path: Path, esc):
    calls = esc(**{"sophia-ai/dev": SNOWFLAKE_KEY})
    result = check(tmp_path, "sophia-ai-dev", "--require-secrets")
    assert result.returncode == 0, result.stderr
    assert "valid as sophia-ai-dev (dev" in result.stdout
    assert calls.read_text() == "env get sophia-ai/dev pulumiConfig --value json\n"  # never --show-secrets


def test_missing_secrets_are_listed_one_per_line(tmp_path: Path, esc):
    esc(**{"sophia-ai/production": {"sophia-ai:snowflake": {"warehouse": "SOPHIA_WH_L"}}})
    result = check(tmp_path, "sophia-ai-production", "--require-secrets")
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if not line.startswith("note:")] == [
        "Pulumi.sophia-ai-production.yaml: sophia-ai:snowflake.privateKey: a secret is required here",
        "Pulumi.sophia-ai-production.yaml: sophia-ai:ssh.privateKey: a secret is required here",
    ]


def test_a_secret_set_in_plain_text_in_esc_is_refused_without_echoing_it(tmp_path: Path, esc):
    esc(**{"sophia-ai/dev": {"sophia-ai:snowflake": {"privateKey": "PLAIN-KEY-SENTINEL"}}})
    result = check(tmp_path, "sophia-ai-dev")
    assert result.returncode == 1
    assert "sophia-ai:snowflake.privateKey: must be set as a secret" in result.stderr
    assert "PLAIN-KEY-SENTINEL" not in result.stdout + result.stderr


def test_imports_merge_in_order_and_the_stack_file_wins(tmp_path: Path, esc):
    # A later import overrides an earlier one; the stack file's own values override both.
    esc(
        **{
            "sophia-ai/common": {"sophia-ai:snowflake": {"privateKey": "[secret]", "role": "OTHER"}},
            "sophia-ai/dev": {"sophia-ai:replicas": {"orchestrator": -1}, "snowflake": {"password": "[unknown]"}},
        }
    )
    result = check(tmp_path, "sophia-ai-dev", "--require-secrets", environment=["sophia-ai/common", "sophia-ai/dev"])
    # The file's replicas.orchestrator (1) wins over ESC's -1; the un-namespaced key is the project's.
    assert result.returncode == 0, result.stderr
    esc(**{"sophia-ai/dev": {"sophia-ai:features": {"tracing": "yes"}}})
    result = check(tmp_path, "sophia-ai-dev", environment=["sophia-ai/common", "sophia-ai/dev"])
    assert result.returncode == 0, result.stderr  # the file sets features.tracing: true
    esc(**{"sophia-ai/dev": {"sophia-ai:autoscaler": {"maxReplicas": 0}}})
    result = check(tmp_path, "sophia-ai-dev", environment=["sophia-ai/common", "sophia-ai/dev"])
    assert result.returncode == 1 and "sophia-ai:autoscaler.maxReplicas: must be >= 1, got 0" in result.stderr


def test_an_environment_esc_cannot_read_is_a_clear_error(tmp_path: Path, esc):
    esc()
    result = check(tmp_path, "sophia-ai-staging", "--require-secrets")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Pulumi.sophia-ai-staging.yaml: environment: sophia-ai/staging: `pulumi env get` failed:"
        " error: environment sophia-ai/staging not found"
    )


def test_environment_names_reach_pulumi_only_when_they_are_names(tmp_path: Path, esc):
    calls = esc()
    result = check(tmp_path, "sophia-ai-dev", environment=["sophia-ai/dev; rm -rf /"])
    assert result.returncode == 1 and "environment: must be a list of ESC environment names" in result.stderr
    assert not calls.exists()


def test_a_stack_file_without_imports_is_checked_alone(tmp_path: Path, esc):
    calls = esc()
    result = check(tmp_path, "sophia-ai-dev", "--require-secrets", environment=[])
    assert result.returncode == 1 and "sophia-ai:snowflake.privateKey: a secret is required here" in result.stderr
    assert not calls.exists()
