"""Stack configuration, validated without Pulumi: the real stack files and broken ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks import loader
from stacks.loader import ConfigError, RawConfig
from stacks.quantities import format_quantity, parse_quantity
from tests.conftest import STACKS, engine_config, stack_config

DEV = "Pulumi.sophia-ai-dev.yaml"
PROD = "Pulumi.sophia-ai-production.yaml"


def check(stack: str, changes: dict[str, Any]) -> list[str]:
    """The error lines for the stack file of `stack` with `changes` (None removes a key)."""
    config = copy.deepcopy(stack_config(stack))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises(ConfigError) as caught:
        loader.validate(RawConfig(f"Pulumi.{stack}.yaml", config, offline=True))
    return caught.value.lines


@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_files_are_valid(stack: str):
    loaded = loader.load_stack_file(Path(f"Pulumi.{stack}.yaml"))
    assert loaded.config.environment in stack
    assert "sophia-ai:snowflake.privateKey" in loaded.missing_secrets


def test_stack_values_are_those_of_the_plan():
    dev, staging, prod = (loader.load_stack_file(Path(f"Pulumi.{s}.yaml")).config for s in STACKS)
    assert (dev.replicas.orchestrator, dev.replicas.mcp_servers, dev.replicas.frontend) == (1, 1, 1)
    assert (staging.replicas.orchestrator, staging.replicas.mcp_servers, staging.replicas.frontend) == (2, 2, 2)
    assert min(prod.replicas.model_dump().values()) >= 2
    # The week-0 plan's sizes did not fit the host the three share (issue 11): production keeps two
    # replicas of everything with room to scale, the dashboard and MCP servers need a fraction.
    assert (dev.resources.cpu, dev.resources.memory, staging.resources.cpu, staging.resources.memory) == (
        "500m",
        "1Gi",
        "500m",
        "1Gi",
    )
    assert parse_quantity(prod.resources.cpu) > parse_quantity(staging.resources.cpu)
    for config in (dev, staging, prod):
        assert parse_quantity(config.resources.of("frontend").cpu) < parse_quantity(config.resources.of("mcpServers").cpu)
        assert parse_quantity(config.resources.of("mcpServers").cpu) < parse_quantity(config.resources.of("orchestrator").cpu)
    assert dev.features.model_dump() == {"monitoring": False, "tracing": True, "autoscaling": False}
    assert (
        staging.features.model_dump() == prod.features.model_dump() == {"monitoring": True, "tracing": True, "autoscaling": True}
    )
    assert dev.mcp_servers == ["ai_memory", "hubspot", "gong", "slack"]
    assert (dev.namespace, staging.namespace, prod.namespace) == ("sophia-dev", "sophia-staging", "sophia-prod")
    assert (prod.lambda_instance, prod.lambda_ip, prod.cluster_mode) == ("sophia-ai-production", "104.171.202.64", "provision")
    assert dev.cluster_mode == staging.cluster_mode == "stackReference"
    assert dev.cluster_stack == staging.cluster_stack == "sophia-ai-production"


BROKEN = [
    # (description, stack, changes, expected line)
    (
        "negative replicas",
        "sophia-ai-dev",
        {"sophia-ai:replicas": {"orchestrator": -1}},
        f"{DEV}: sophia-ai:replicas.orchestrator: must be >= 1, got -1",
    ),
    (
        "zero replicas",
        "sophia-ai-dev",
        {"sophia-ai:replicas": {"memory": 0}},
        f"{DEV}: sophia-ai:replicas.memory: must be >= 1, got 0",
    ),
    (
        "wrong type",
        "sophia-ai-dev",
        {"sophia-ai:replicas": {"frontend": "two"}},
        f"{DEV}: sophia-ai:replicas.frontend: must be a whole number, got 'two'",
    ),
    (
        "not a mapping",
        "sophia-ai-dev",
        {"sophia-ai:features": "all"},
        f"{DEV}: sophia-ai:features: must be a mapping of keys to values, got 'all'",
    ),
    (
        "unknown nested key",
        "sophia-ai-dev",
        {"sophia-ai:features": {"tracin": True}},
        f"{DEV}: sophia-ai:features.tracin: unknown key; did you mean 'tracing'?",
    ),
    (
        "unknown top key",
        "sophia-ai-dev",
        {"sophia-ai:replica": {}},
        f"{DEV}: sophia-ai:replica: unknown key; did you mean 'sophia-ai:replicas'?",
    ),
    (
        "unnamespaced key",
        "sophia-ai-dev",
        {"replicas": {}},
        f"{DEV}: replicas: unknown key; config keys are namespaced, did you mean 'sophia-ai:replicas'?",
    ),
    (
        "bad environment",
        "sophia-ai-dev",
        {"sophia-ai:environment": "prod"},
        f"{DEV}: sophia-ai:environment: must be one of 'dev', 'staging' or 'production', got 'prod'",
    ),
    (
        "bad quantity",
        "sophia-ai-dev",
        {"sophia-ai:resources": {"cpu": "half", "memory": "1Gi"}},
        f"{DEV}: sophia-ai:resources.cpu: must be a Kubernetes quantity such as 500m, 2, 512Mi or 4Gi, got 'half'",
    ),
    (
        "zero quantity",
        "sophia-ai-dev",
        {"sophia-ai:resources": {"cpu": "0", "memory": "1Gi"}},
        f"{DEV}: sophia-ai:resources.cpu: must be between 1m and 256, got '0'",
    ),
    (
        "bad ip",
        "sophia-ai-production",
        {"lambdaLabs:ip": "104.171.202"},
        f"{PROD}: lambdaLabs:ip: must be an IPv4 or IPv6 address, got '104.171.202'",
    ),
    (
        "shell in ip",
        "sophia-ai-production",
        {"lambdaLabs:ip": "1.2.3.4; reboot"},
        f"{PROD}: lambdaLabs:ip: must be an IPv4 or IPv6 address, got '1.2.3.4; reboot'",
    ),
    (
        "shell in instance",
        "sophia-ai-production",
        {"lambdaLabs:instance": "box$(id)"},
        f"{PROD}: lambdaLabs:instance: must be a DNS name (lower-case letters, digits, '-' and '.'), got 'box$(id)'",
    ),
    (
        "shell in k3s version",
        "sophia-ai-production",
        {"sophia-ai:k3s": {"version": "v1.33.5+k3s1 && curl x | sh"}},
        f"{PROD}: sophia-ai:k3s.version: must be at most 24 characters long, got 'v1.33.5+k3s1 && curl x | sh'",
    ),
    (
        "k3s channel",
        "sophia-ai-production",
        {"sophia-ai:k3s": {"version": "stable"}},
        f"{PROD}: sophia-ai:k3s.version: must be a full k3s release such as v1.33.5+k3s1 (not a channel), got 'stable'",
    ),
    (
        "shell in ssh user",
        "sophia-ai-production",
        {"sophia-ai:ssh": {"user": "ubuntu`id`"}},
        f"{PROD}: sophia-ai:ssh.user: must be a Unix user name, got 'ubuntu`id`'",
    ),
    (
        "bad agent host",
        "sophia-ai-production",
        {"sophia-ai:k3s": {"agents": ["gpu-2;rm -rf /"]}},
        f"{PROD}: sophia-ai:k3s.agents[0]: must be an IP address or a DNS name of another host, got 'gpu-2;rm -rf /'",
    ),
    (
        "bad node label",
        "sophia-ai-production",
        {"sophia-ai:k3s": {"nodeLabels": {"gpu": "yes please"}}},
        f"{PROD}: sophia-ai:k3s.nodeLabels.gpu: must be a label value (at most 63 letters, digits, '-', '_' and '.',"
        " starting and ending with a letter or digit), got 'yes please'",
    ),
    (
        "mutable tag in production",
        "sophia-ai-production",
        {"sophia-ai:images": {"tag": "latest"}},
        f"{PROD}: sophia-ai:images.tag: production refuses mutable tags (dev, edge, latest, main, master, nightly, stable);"
        " use a version or commit SHA, got 'latest'",
    ),
    (
        "one replica in production",
        "sophia-ai-production",
        {"sophia-ai:replicas": {"orchestrator": 1, "memory": 2, "mcpServers": 2}},
        f"{PROD}: sophia-ai:replicas.orchestrator: production needs at least 2 replicas, got 1",
    ),
    (
        "both cluster sources",
        "sophia-ai-dev",
        {"lambdaLabs:ip": "10.0.0.1", "lambdaLabs:instance": "box"},
        f"{DEV}: sophia-ai:clusterStack: set exactly one of lambdaLabs:ip, kubernetes:kubeconfig, sophia-ai:clusterStack,"
        " got lambdaLabs:ip and sophia-ai:clusterStack",
    ),
    (
        "no cluster source",
        "sophia-ai-dev",
        {"sophia-ai:clusterStack": None},
        f"{DEV}: kubernetes:kubeconfig: set exactly one of lambdaLabs:ip, kubernetes:kubeconfig, sophia-ai:clusterStack, got none of them",
    ),
    (
        "half a host",
        "sophia-ai-production",
        {"lambdaLabs:instance": None},
        f"{PROD}: lambdaLabs:instance: lambdaLabs:instance and lambdaLabs:ip go together",
    ),
    (
        "host settings without a host",
        "sophia-ai-dev",
        {"sophia-ai:k3s": {"version": "v1.33.5+k3s1"}},
        f"{DEV}: sophia-ai:k3s: only applies when this stack installs k3s (lambdaLabs:ip)",
    ),
    (
        "gpu operator chart that is not vendored",
        "sophia-ai-production",
        {"sophia-ai:gpuOperator": {"chartVersion": "v24.9.2"}},
        f"{PROD}: sophia-ai:gpuOperator.chartVersion: only the vendored chart can be deployed (charts/gpu-operator,"
        " v25.10.0); to change it, vendor the release into charts/ and pin it in stacks/compat.py, got 'v24.9.2'",
    ),
    (
        "duplicate mcp server",
        "sophia-ai-dev",
        {"sophia-ai:mcpServers": ["gong", "gong"]},
        f"{DEV}: sophia-ai:mcpServers: must not list a server twice",
    ),
    (
        "bad mcp name",
        "sophia-ai-dev",
        {"sophia-ai:mcpServers": ["Gong Server"]},
        f"{DEV}: sophia-ai:mcpServers[0]: must be a lower-case name of letters, digits and '_' (not at the end), got 'Gong Server'",
    ),
    (
        "unknown gpu service",
        "sophia-ai-dev",
        {"sophia-ai:gpuServices": ["frontend"]},
        f"{DEV}: sophia-ai:gpuServices[0]: must be orchestrator, memory or one of sophia-ai:mcpServers, got 'frontend'",
    ),
    ("missing required", "sophia-ai-dev", {"sophia-ai:images": None}, f"{DEV}: sophia-ai:images: is required"),
    (
        "ingress without host",
        "sophia-ai-dev",
        {"sophia-ai:ingress": {"enabled": True}},
        f"{DEV}: sophia-ai:ingress.host: is required when enabled is true",
    ),
    (
        "autoscaler below replicas",
        "sophia-ai-staging",
        {"sophia-ai:autoscaler": {"maxReplicas": 1}},
        "Pulumi.sophia-ai-staging.yaml: sophia-ai:autoscaler.maxReplicas: must be >= the largest count of sophia-ai:replicas, got 1",
    ),
    (
        "plain secret",
        "sophia-ai-dev",
        {"sophia-ai:snowflake": {**stack_config("sophia-ai-dev")["sophia-ai:snowflake"], "privateKey": "pem"}},
        f"{DEV}: sophia-ai:snowflake.privateKey: must be set as a secret (pulumi config set --secret --path 'sophia-ai:snowflake.privateKey' ...)",
    ),
]


@pytest.mark.parametrize(("stack", "changes", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_configuration_is_refused_with_file_key_and_reason(stack: str, changes: dict, expected: str):
    assert expected in check(stack, changes)


def test_every_problem_is_reported_at_once():
    lines = check("sophia-ai-dev", {"sophia-ai:replicas": {"orchestrator": -1, "frontend": "x"}, "sophia-ai:typo": 1})
    assert len(lines) == 3 and all(line.startswith(DEV) for line in lines)


def test_secret_values_are_never_echoed_in_errors():
    lines = check("sophia-ai-dev", {"sophia-ai:redis": {"password": {"not": "a string"}, "storageSize": "-1"}})
    assert not any("not" in line and "a string" in line for line in lines)
    assert any(line.startswith(f"{DEV}: sophia-ai:redis.password:") for line in lines)


def test_secure_values_in_the_file_become_placeholders(tmp_path: Path):
    config = stack_config("sophia-ai-dev")
    config["sophia-ai:snowflake"]["privateKey"] = {"secure": "v1:c2VjcmV0"}
    path = tmp_path / "Pulumi.sophia-ai-dev.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    loaded = loader.load_stack_file(path)
    assert loaded.missing_secrets == ()
    assert loaded.config.snowflake.private_key is not None
    assert loaded.config.snowflake.private_key.get_secret_value() == "[secret]"


def test_under_the_engine_a_missing_secret_is_an_error(monkeypatch: pytest.MonkeyPatch):
    config = stack_config("sophia-ai-production")
    monkeypatch.setenv("PULUMI_CONFIG", __import__("json").dumps(engine_config(config)))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(ConfigError) as caught:
        loader.validate(loader.read_runtime("sophia-ai-production"))
    assert f"{PROD}: sophia-ai:ssh.privateKey: a secret is required here" in "\n".join(caught.value.lines)


def test_under_the_engine_secret_keys_and_json_values_are_read(monkeypatch: pytest.MonkeyPatch):
    config = stack_config("sophia-ai-dev")
    config["sophia-ai:snowflake"]["privateKey"] = "pem"
    monkeypatch.setenv("PULUMI_CONFIG", __import__("json").dumps(engine_config(config)))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", '["sophia-ai:snowflake"]')
    loaded = loader.validate(loader.read_runtime("sophia-ai-dev"))
    assert loaded.config.replicas.orchestrator == 1 and loaded.config.features.tracing is True
    assert loaded.missing_secrets == ()


def test_broken_stack_files(tmp_path: Path):
    bad_yaml = tmp_path / "Pulumi.bad.yaml"
    bad_yaml.write_text("config: [unclosed")
    with pytest.raises(ConfigError, match=r"Pulumi.bad.yaml: not valid YAML"):
        loader.load_stack_file(bad_yaml)
    bad_top = tmp_path / "Pulumi.top.yaml"
    bad_top.write_text("confg: {}\n")
    with pytest.raises(ConfigError, match=r"Pulumi.top.yaml: confg: unknown top-level key"):
        loader.load_stack_file(bad_top)
    esc = tmp_path / "Pulumi.sophia-ai-dev.yaml"
    esc.write_text(yaml.safe_dump({"environment": ["sophia-ai/dev"], "config": stack_config("sophia-ai-dev")}))
    assert "not resolved offline" in loader.load_stack_file(esc).notes[0]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", "0.5"),
        ("2", "2"),
        ("1Gi", str(2**30)),
        ("512Mi", str(512 * 2**20)),
        ("1.5", "1.5"),
        ("2e3", "2E+3"),
        ("1k", "1E+3"),
    ],
)
def test_quantities(text: str, value: str):
    assert str(parse_quantity(text)) == value or parse_quantity(text) == parse_quantity(value)


def test_quantity_formatting_rounds_up():
    assert format_quantity(parse_quantity("1.0001"), "m") == "1001m"
    assert format_quantity(parse_quantity("1Gi"), "Mi") == "1024Mi"


@pytest.mark.parametrize(
    ("digests", "problem"),
    [
        ({"sophia-orchestrator": "sha256:" + "0" * 63}, "sophia-orchestrator: must be a sha256:<64 hex> digest"),
        ({"sophia-orchestrator": "sha256:" + "0" * 64 + "\n"}, "sophia-orchestrator: must be at most 71 characters"),
        ({"orchestrator": "sha256:" + "0" * 64}, "orchestrator: the key must be an image name sophia-<service>"),
    ],
)
def test_image_digests_must_be_sha256_of_sophia_images(digests: dict[str, str], problem: str):
    images = {**stack_config("sophia-ai-dev")["sophia-ai:images"], "digests": digests}
    [line] = check("sophia-ai-dev", {"sophia-ai:images": images})
    assert line.startswith(f"{DEV}: sophia-ai:images.digests.{problem}")
