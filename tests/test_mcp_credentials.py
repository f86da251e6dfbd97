"""Per-server MCP credentials (`sophia-ai:mcpCredentials`): validated, kept secret, delivered to
that server's pods only (a Secret per server, `envFrom`), and a change restarts those pods."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks import loader
from stacks.loader import ConfigError, RawConfig
from tests.conftest import STACKS, Run, RunStack, stack_config

KEY = "sophia-ai:mcpCredentials"
CREDENTIALS = {
    "hubspot": {"HUBSPOT_ACCESS_TOKEN": "SENTINEL-HUBSPOT-TOKEN"},
    "gong": {"GONG_ACCESS_KEY": "SENTINEL-GONG-KEY", "GONG_ACCESS_KEY_SECRET": "SENTINEL-GONG-SECRET"},
}
SENTINELS = ["SENTINEL-HUBSPOT-TOKEN", "SENTINEL-GONG-KEY", "SENTINEL-GONG-SECRET"]


def container(run: Run, name: str) -> dict[str, Any]:
    return run.get("Deployment", f"{name}-deployment").plain_inputs["spec"]["template"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_server_gets_its_own_credentials_as_a_secret_and_no_other(
    run_stack: RunStack, stack: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
):
    caplog.set_level(logging.DEBUG)
    run = run_stack(stack, {KEY: CREDENTIALS}, secret=(KEY,))
    secrets = {r.name: r for r in run.all("Secret") if r.name.startswith("mcp-")}
    assert set(secrets) == {"mcp-hubspot-credentials-secret", "mcp-gong-credentials-secret"}
    gong = secrets["mcp-gong-credentials-secret"]
    assert gong.plain_inputs["stringData"] == CREDENTIALS["gong"]
    assert gong.plain_inputs["metadata"]["name"] == "mcp-gong-credentials"
    for name, server in (("mcp-hubspot", "hubspot"), ("mcp-gong", "gong")):
        template = container(run, name)
        env_from = template["spec"]["containers"][0]["envFrom"]
        assert env_from == [{"secretRef": {"name": f"{name}-credentials"}}], "its own Secret, nothing else"
        assert len(template["metadata"]["annotations"]["sophia.ai/credentials-hash"]) == 64
        assert server in CREDENTIALS
    for name in ("mcp-slack", "mcp-ai-memory", "orchestrator", "memory"):
        template = container(run, name)
        assert not [e for e in template["spec"]["containers"][0]["envFrom"] if "credentials" in e["secretRef"]["name"]]
        assert "sophia.ai/credentials-hash" not in template["metadata"]["annotations"]
    # Secret everywhere but in the Secret's revealed values.
    plain = json.dumps([r.inputs for r in run.resources], default=str) + json.dumps(run.recording.outputs)
    revealed = json.dumps([r.plain_inputs for r in run.resources], default=str)
    captured = capsys.readouterr()
    for sentinel in SENTINELS:
        assert sentinel in revealed
        assert sentinel not in plain
        assert sentinel not in caplog.text + captured.out + captured.err


def test_a_changed_credential_restarts_that_servers_pods_only(run_stack: RunStack):
    def hashes(credentials: dict[str, Any]) -> dict[str, str]:
        run = run_stack("sophia-ai-dev", {KEY: credentials}, secret=(KEY,))
        return {
            name: container(run, name)["metadata"]["annotations"]["sophia.ai/credentials-hash"]
            for name in ("mcp-hubspot", "mcp-gong")
        }

    before = hashes(CREDENTIALS)
    assert hashes(copy.deepcopy(CREDENTIALS)) == before
    rotated = {**CREDENTIALS, "hubspot": {"HUBSPOT_ACCESS_TOKEN": "SENTINEL-HUBSPOT-TOKEN-2"}}
    after = hashes(rotated)
    assert after["mcp-hubspot"] != before["mcp-hubspot"]
    assert after["mcp-gong"] == before["mcp-gong"]


def test_no_credentials_no_secret(run_stack: RunStack):
    run = run_stack("sophia-ai-dev", {KEY: {}}, secret=(KEY,))
    assert not [r for r in run.all("Secret") if r.name.startswith("mcp-")]
    assert "sophia.ai/credentials-hash" not in container(run, "mcp-hubspot")["metadata"]["annotations"]


# --- validation, without Pulumi ---------------------------------------------------------------


def validate(credentials: Any, secret: bool = True) -> list[str]:
    config = {**copy.deepcopy(stack_config("sophia-ai-dev")), KEY: credentials}
    raw = RawConfig("Pulumi.sophia-ai-dev.yaml", config, frozenset({(KEY,)}) if secret else frozenset(), offline=True)
    with pytest.raises(ConfigError) as caught:
        loader.validate(raw)
    return caught.value.lines


def test_credentials_set_as_secrets_in_a_stack_file_are_valid_offline(tmp_path: Path):
    config = {**stack_config("sophia-ai-dev"), KEY: {"hubspot": {"HUBSPOT_ACCESS_TOKEN": {"secure": "v1:abc"}}}}
    path = tmp_path / "Pulumi.sophia-ai-dev.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    loaded = loader.load_stack_file(path)
    assert loaded.config.mcp_credentials["hubspot"]["HUBSPOT_ACCESS_TOKEN"].get_secret_value() == loader.SECRET_PLACEHOLDER


def test_credentials_in_plain_text_are_refused_naming_each_key():
    lines = validate(CREDENTIALS, secret=False)
    assert lines == [
        f"Pulumi.sophia-ai-dev.yaml: {KEY}.{server}.{name}: must be set as a secret (pulumi config set --secret --path"
        f" '{KEY}.{server}.{name}' ...)"
        for server, values in CREDENTIALS.items()
        for name in values
    ]


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({"notion": {"NOTION_TOKEN": "SENTINEL-X"}}, f"{KEY}.notion: is not one of sophia-ai:mcpServers"),
        ({"hubspot": {"SLACK_BOT_TOKEN": "SENTINEL-X"}}, f"{KEY}.hubspot.SLACK_BOT_TOKEN: must start with HUBSPOT_"),
        ({"hubspot": {"PORT": "SENTINEL-X"}}, f"{KEY}.hubspot.PORT: must start with HUBSPOT_"),
        (
            {"hubspot": {"hubspot_token": "SENTINEL-X"}},
            f"{KEY}.hubspot.hubspot_token: the key must be an environment variable name",
        ),
        ({"hubspot": {"HUBSPOT_TOKEN": "SENTINEL-X" * 2000}}, f"{KEY}.hubspot.HUBSPOT_TOKEN: must be at most 16384 characters"),
        ({"hubspot": {"HUBSPOT_TOKEN": ""}}, f"{KEY}.hubspot.HUBSPOT_TOKEN: must not be empty"),
        ({"hubspot": {f"HUBSPOT_{i}": "SENTINEL-X" for i in range(17)}}, f"{KEY}.hubspot: must be at most 16"),
        ({"hubspot": "SENTINEL-X"}, f"{KEY}.hubspot: must be a mapping"),
    ],
)
@pytest.mark.parametrize("secret", [True, False], ids=["as-secret", "in-plain-text"])
def test_bad_credentials_are_refused_without_echoing_a_secret(credentials: Any, expected: str, secret: bool):
    lines = validate(credentials, secret=secret)
    assert any(expected in line for line in lines), lines
    assert "SENTINEL" not in "\n".join(lines)
