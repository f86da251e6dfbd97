# ruff: noqa: RUF001, S104 - look-alike characters and unusable addresses are the point of these tests
"""Issue 9's classes of broken stack files, each refused, none crashing, no secret shown: one test
(or a few) per class, with structural tests that cover keys added later."""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi.runtime
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure import catalog, cluster, program
from policies import production, rules
from sophia_infra import cli, offline
from stacks import loader, model, reference, stackfile
from stacks.loader import ConfigError, RawConfig
from stacks.quantities import is_dns_label, parse_quantity
from stacks.stackfile import describe_path
from tests.conftest import HOST_KEY, PROJECT, SENTINELS, engine_config, stack_config

DEV, STAGING, PROD = "sophia-ai-dev", "sophia-ai-staging", "sophia-ai-production"
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nSENTINEL-PEM-b3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def changed(stack: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The config of a real stack file with keys replaced (None removes one)."""
    config = copy.deepcopy(stack_config(stack))
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def file_lines(tmp_path: Path, stack: str, config: dict[str, Any] | str, name: str | None = None) -> list[str]:
    """Problems of a stack file holding `config` (a mapping, or the file's text), read offline."""
    path = tmp_path / (name or f"Pulumi.{stack}.yaml")
    path.write_text(config if isinstance(config, str) else yaml.safe_dump({"config": config}, sort_keys=False))
    try:
        loader.load_stack_file(path, stack)
    except ConfigError as exc:
        return exc.lines
    return []


def _secret_spots(config: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """The sentinel secrets `config`'s stack needs: (key, field, value)."""
    for (key, field), value in SENTINELS.items():
        if key in ("sophia-ai:ssh", "sophia-ai:k3s") and "lambdaLabs:ip" not in config:
            continue
        if key == "sophia-ai:registryAuth" and key not in config:
            continue
        if isinstance(config.get(key, {}), dict):
            yield key, field, value


def _with_host_key(config: dict[str, Any]) -> dict[str, Any]:
    """A provisioning stack as it is deployed: with its server's SSH host key (offline it is only
    a note, under the engine a production stack needs it)."""
    config = copy.deepcopy(config)
    ssh = config.get("sophia-ai:ssh", {})
    if "lambdaLabs:ip" in config and isinstance(ssh, dict) and "hostKey" not in ssh:
        config["sophia-ai:ssh"] = {**ssh, "hostKey": HOST_KEY}
    return config


def with_file_secrets(stack: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the secrets its stack needs, as a stack file holds them."""
    config = _with_host_key(config)
    for key, field, _ in _secret_spots(config):
        config[key] = {**config.get(key, {}), field: {"secure": "v1:c2VjcmV0"}}
    return config


def engine_secrets(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """`config` with the secrets its stack needs, as the engine hands them over."""
    config = _with_host_key(config)
    keys = set()
    for key, field, value in _secret_spots(config):
        config[key] = {**config.get(key, {}), field: value}
        keys.add(key)
    return engine_config(config), sorted(keys)


def engine_lines(monkeypatch: pytest.MonkeyPatch, stack: str, values: dict[str, str], secret_keys: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """Problems of the same configuration as the engine hands it to the program."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(list(secret_keys)))
    try:
        loader.validate(loader.read_runtime(stack))
    except ConfigError as exc:
        return exc.lines
    return []


def lines(stack: str, config: dict[str, Any]) -> list[str]:
    """Problems of `config` read offline (`{secure: ...}` values are secrets)."""
    secret_paths: set[tuple[str | int, ...]] = set()
    values = {key: loader._decode(stackfile.engine_text(value, (key,), secret_paths)) for key, value in config.items()}
    try:
        loader.validate(RawConfig(f"Pulumi.{stack}.yaml", values, frozenset(secret_paths), offline=True))
    except ConfigError as exc:
        return exc.lines
    return []


def example() -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference's example: a valid production configuration, and the keys of attached stacks."""
    provision, attached = reference.example()
    return provision, attached


# --- 1. patterns match whole strings, in ASCII ---------------------------------------------


def _string_slots(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every text in a configuration value: (path, "value" or "key")."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return
        for key, item in value.items():
            if len(path) > 0:
                yield (*path, key), "key"
            yield from _string_slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_slots(item, (*path, index))
    elif isinstance(value, str):
        yield path, "value"


def _full_width(text: str) -> str:
    digits = "".join(chr(ord(c) - ord("0") + ord("０")) if c.isdigit() else c for c in text)
    return digits if digits != text else text + "５"


def _homoglyph(text: str) -> str:
    for index, char in enumerate(text):
        if "a" <= char <= "z":
            return text[:index] + chr(ord(char) - ord("a") + ord("ａ")) + text[index + 1 :]
    return text + "ａ"


def _replace(config: dict[str, Any], path: tuple[Any, ...], kind: str, new: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    parent: Any = config
    for part in path[:-1]:
        parent = parent[part]
    if kind == "key":
        parent[new] = parent.pop(path[-1])
    else:
        parent[path[-1]] = new
    return config


def _example_configs() -> list[tuple[str, dict[str, Any]]]:
    provision, attached = example()
    staging = {k: v for k, v in provision.items() if not k.startswith("lambdaLabs:") and k not in model_host_keys()}
    staging["sophia-ai:environment"] = "staging"
    with_kubeconfig = {
        **staging,
        "kubernetes:kubeconfig": attached["kubernetes:kubeconfig"],
        "kubernetes:context": "sophia",
        "sophia-ai:clusterCapacity": attached["sophia-ai:clusterCapacity"],
    }
    with_reference = {**staging, "sophia-ai:clusterStack": attached["sophia-ai:clusterStack"]}
    return [(PROD, provision), (STAGING, with_kubeconfig), (STAGING, with_reference)]


def model_host_keys() -> set[str]:
    return {"sophia-ai:ssh", "sophia-ai:k3s", "sophia-ai:gpuOperator", "sophia-ai:monitoringStack"}


def test_every_text_key_refuses_a_trailing_newline_full_width_digits_and_homoglyphs(tmp_path: Path):
    """Structural: walks every text of the reference's example (every key the model has, keys
    added later included) and breaks it three ways; each must be refused at that key."""
    checked = 0
    for stack, config in _example_configs():
        assert lines(stack, config) == [], "the example must be valid to begin with"
        for path, kind in _string_slots(config, ()):
            original = path[-1] if kind == "key" else _at(config, path)
            for broken in (original + "\n", _full_width(original), _homoglyph(original)):
                found = lines(stack, _replace(config, path, kind, broken))
                where = f"Pulumi.{stack}.yaml: {describe_path(path[:-1] if kind == 'key' else path)}"
                assert any(line.startswith(where) for line in found), (path, broken, found)
                checked += 1
    assert checked > 150


def _at(config: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = config
    for part in path:
        value = value[part]
    return value


def test_the_quantity_and_version_patterns_are_ascii_and_whole():
    for text in ("５００m", "500m\n", "1Gi\n", "٣"):
        with pytest.raises(ValueError):
            parse_quantity(text)
    assert lines(DEV, changed(DEV, {"sophia-ai:kubernetesVersion": "1.3３.0"}))
    assert lines(DEV, changed(DEV, {"sophia-ai:kubernetesVersion": "1.33.0\n"}))


# --- 2. hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["fe80::1%$(reboot)", "fe80::1%eth0", "::", "0.0.0.0", "127.0.0.1", "::1", "224.0.0.1", "ff02::1", "169.254.10.1",
     "fe80::1", "255.255.255.255", "240.0.0.1", "::ffff:104.171.202.64", "１04.171.202.64", "104.171.202.64\n"],
)  # fmt: skip
def test_no_unusable_address_is_a_server_or_an_agent(address: str):
    server = lines(PROD, changed(PROD, {"lambdaLabs:ip": address}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: lambdaLabs:ip: must be") for line in server), server
    agent = lines(PROD, changed(PROD, {"sophia-ai:k3s": {"agents": [address]}}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:k3s.agents[0]: must be") for line in agent), agent


def test_agents_are_other_hosts_each_once():
    found = lines(PROD, changed(PROD, {"sophia-ai:k3s": {"agents": ["104.171.202.64", "10.0.0.5", "10.0.0.5"]}}))
    assert found == [
        f"Pulumi.{PROD}.yaml: sophia-ai:k3s.agents[0]: is the k3s server itself, got '104.171.202.64'",
        f"Pulumi.{PROD}.yaml: sophia-ai:k3s.agents[2]: is listed twice, got '10.0.0.5'",
    ]
    found = lines(
        PROD, changed(PROD, {"sophia-ai:k3s": {"agents": ["localhost", "gpu.localhost"], "dnsName": "k3s.example.com"}})
    )
    assert len(found) == 2 and all(": must be an IP address or a DNS name of another host" in line for line in found)
    ipv6 = {"lambdaLabs:ip": "2001:db8::10", "sophia-ai:k3s": {"agents": ["2001:DB8:0::10", "2001:db8::11", "gpu-2.example.com"]}}
    assert lines(PROD, changed(PROD, ipv6)) == [
        f"Pulumi.{PROD}.yaml: sophia-ai:k3s.agents[0]: is the k3s server itself, got '2001:DB8:0::10'"
    ]


# --- 3. the stack's name decides its environment ----------------------------------------------


@pytest.mark.parametrize(("stack", "claimed"), [(PROD, "staging"), (DEV, "production"), (STAGING, "dev")])
def test_the_stack_name_decides_the_environment(stack: str, claimed: str):
    expected = production.STACK_ENVIRONMENTS[stack]
    found = lines(stack, changed(stack, {"sophia-ai:environment": claimed}))
    assert (
        f"Pulumi.{stack}.yaml: sophia-ai:environment: must be {expected}: the stack {stack} is {expected}"
        f" whatever this key says, got '{claimed}'"
    ) in found


def test_a_production_stack_is_held_to_production_whatever_it_says():
    found = lines(PROD, changed(PROD, {"sophia-ai:environment": "staging", "sophia-ai:images": {"tag": "latest"}}))
    assert any("sophia-ai:images.tag: production refuses mutable tags" in line for line in found)


def test_an_unknown_stack_is_refused_under_the_engine(monkeypatch: pytest.MonkeyPatch):
    found = engine_lines(monkeypatch, "sophia-ai-qa", engine_config(stack_config(DEV)))
    assert "Pulumi.sophia-ai-qa.yaml: 'sophia-ai-qa' is not a stack of this project" in found[0]


def test_check_of_another_file_says_and_enforces_its_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    draft = tmp_path / "draft.yaml"
    draft.write_text(yaml.safe_dump({"config": stack_config(DEV)}))
    assert cli.main(["check", "--config-file", str(draft)]) == 2
    assert "which stack is this file for?" in capsys.readouterr().err
    assert cli.main(["check", DEV, "--config-file", str(draft)]) == 0
    assert "draft.yaml: valid as sophia-ai-dev (dev," in capsys.readouterr().out
    assert cli.main(["check", PROD, "--config-file", str(draft)]) == 1
    assert "draft.yaml: sophia-ai:environment: must be production" in capsys.readouterr().err


# --- 4. empty, blank and oversized text; names Kubernetes accepts ------------------------------


def _schema_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _schema_nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _schema_nodes(child, f"{path}/{index}")


def test_every_text_number_list_and_map_of_the_model_is_bounded():
    """Structural: a key added without bounds fails here until it has them."""
    schema = model.StackConfig.model_json_schema(by_alias=True)
    unbounded = []
    for where, node in _schema_nodes(schema):
        if "/default" in where or "/examples" in where:
            continue
        kind = node.get("type")
        if kind == "string" and "enum" not in node and "const" not in node:
            if (
                "minLength" not in node
                or "maxLength" not in node
                or (node["minLength"] < 1 and not where.endswith("/additionalProperties"))
            ):
                unbounded.append(where)
        elif (kind == "integer" and ("minimum" not in node or "maximum" not in node)) or (
            kind == "array" and "maxItems" not in node
        ):
            unbounded.append(where)
        elif kind == "object" and "additionalProperties" in node and node["additionalProperties"] is not False:
            names = node.get("propertyNames", {})
            if "maxProperties" not in node or "maxLength" not in names or names.get("minLength", 0) < 1:
                unbounded.append(where)
    assert unbounded == []


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("sophia-ai:snowflake", {**stack_config(DEV)["sophia-ai:snowflake"], "account": ""}, "sophia-ai:snowflake.account"),
        ("sophia-ai:snowflake", {**stack_config(DEV)["sophia-ai:snowflake"], "user": "   "}, "sophia-ai:snowflake.user"),
        ("sophia-ai:snowflake", {**stack_config(DEV)["sophia-ai:snowflake"], "role": "R" * 256}, "sophia-ai:snowflake.role"),
        ("sophia-ai:images", {"tag": "0.1.0", "registry": "a" * 201}, "sophia-ai:images.registry"),
        ("sophia-ai:redis", {"image": "redis:" + "7" * 250}, "sophia-ai:redis.image"),
        ("sophia-ai:mcpServers", ["gong_"], "sophia-ai:mcpServers[0]"),
        ("sophia-ai:mcpServers", ["x" * 41], "sophia-ai:mcpServers[0]"),
        ("sophia-ai:ingress", {"enabled": True, "host": "Sophia.example.com"}, "sophia-ai:ingress.host"),
        ("sophia-ai:ingress", {"tlsSecret": "tls_secret"}, "sophia-ai:ingress.tlsSecret"),
        ("sophia-ai:telemetry", {"exporterEndpoint": "tempo:99999"}, "sophia-ai:telemetry.exporterEndpoint"),
        ("sophia-ai:images", {"tag": "0.1.0", "sourceRoot": "/etc"}, "sophia-ai:images.sourceRoot"),
        ("kubernetes:kubeconfig", "", "kubernetes:kubeconfig"),
        ("kubernetes:kubeconfig", "   ", "kubernetes:kubeconfig"),
    ],
)
def test_empty_blank_and_oversized_text_is_refused(key: str, value: Any, where: str):
    found = lines(DEV, changed(DEV, {key: value}))
    assert any(line.startswith(f"Pulumi.{DEV}.yaml: {where}: ") for line in found), found


@pytest.mark.parametrize(
    "label",
    ["kubernetes.io/role", "node-role.kubernetes.io/gpu", "node.kubernetes.io/instance-type", "k8s.io/x", "x.k8s.io/y",
     "node-restriction.kubernetes.io/pool", "a" * 64, "example.com/" + "a" * 64, "UPPER.example.com/x"],
)  # fmt: skip
def test_node_labels_a_kubelet_may_not_set_or_kubernetes_refuses(label: str):
    found = lines(PROD, changed(PROD, {"sophia-ai:k3s": {"nodeLabels": {label: "true"}}}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:k3s.nodeLabels.") for line in found), found


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.from_regex(r"[a-z]([a-z0-9_]{0,38}[a-z0-9])?", fullmatch=True) | st.text(max_size=45))
def test_every_accepted_mcp_server_becomes_a_valid_kubernetes_name(server: str):
    if lines(DEV, changed(DEV, {"sophia-ai:mcpServers": [server]})):
        return
    name = catalog.mcp_name(server)
    assert is_dns_label(name) and name[0].isalpha(), name  # a Service name is a DNS-1035 label


# --- 5. numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sophia-ai:replicas", {"orchestrator": True}, "sophia-ai:replicas.orchestrator: must be a whole number, got true"),
        ("sophia-ai:replicas", {"memory": "2"}, "sophia-ai:replicas.memory: must be a whole number, got '2'"),
        ("sophia-ai:replicas", {"memory": 2.5}, "sophia-ai:replicas.memory: must be a whole number, got 2.5"),
        ("sophia-ai:replicas", {"memory": 101}, "sophia-ai:replicas.memory: must be <= 100, got 101"),
        ("sophia-ai:features", {"tracing": 1}, "sophia-ai:features.tracing: must be true or false, got 1"),
        ("sophia-ai:features", {"tracing": "yes"}, "sophia-ai:features.tracing: must be true or false, got 'yes'"),
        ("sophia-ai:redis", {"passwordRotation": 10**30}, "sophia-ai:redis.passwordRotation: must be <= 1000000"),
        ("sophia-ai:resources", {"memory": "1e5000"}, "sophia-ai:resources.memory: must be a Kubernetes quantity"),
        ("sophia-ai:resources", {"memory": "1e99"}, "sophia-ai:resources.memory: must be between 4Mi and 2Ti"),
        ("sophia-ai:resources", {"memory": "3Ti"}, "sophia-ai:resources.memory: must be between 4Mi and 2Ti"),
        ("sophia-ai:resources", {"memory": "4194304.5"}, "sophia-ai:resources.memory: must be a whole number of bytes"),
        ("sophia-ai:resources", {"cpu": "1.5m"}, "sophia-ai:resources.cpu: must be a whole number of millicores"),
        ("sophia-ai:resources", {"cpu": "0.5m"}, "sophia-ai:resources.cpu: must be between 1m and 256"),
        ("sophia-ai:resources", {"cpu": "1e-50"}, "sophia-ai:resources.cpu: must be between 1m and 256"),
        ("sophia-ai:resources", {"cpu": "1e-500"}, "sophia-ai:resources.cpu: must be a Kubernetes quantity"),
        ("sophia-ai:resources", {"cpu": "257"}, "sophia-ai:resources.cpu: must be between 1m and 256"),
        ("sophia-ai:resources", {"cpu": "100Ei"}, "sophia-ai:resources.cpu: must be between 1m and 256"),
        ("sophia-ai:redis", {"storageSize": "1048576500m"}, "sophia-ai:redis.storageSize: must be a whole number of bytes"),
        ("sophia-ai:redis", {"storageSize": "500m"}, "sophia-ai:redis.storageSize: must be between 1Mi and 64Ti"),
        ("sophia-ai:redis", {"storageSize": "65Ti"}, "sophia-ai:redis.storageSize: must be between 1Mi and 64Ti"),
    ],
)
def test_numbers_are_strict_and_bounded(key: str, value: Any, expected: str):
    found = lines(DEV, changed(DEV, {key: value}))
    assert any(line.startswith(f"Pulumi.{DEV}.yaml: {expected}") for line in found), found


def test_ssh_port_true_is_not_a_port():
    found = lines(PROD, changed(PROD, {"sophia-ai:ssh": {"port": True}}))
    assert f"Pulumi.{PROD}.yaml: sophia-ai:ssh.port: must be a whole number, got true" in found


def test_a_long_quantity_is_refused_at_once():
    def too_slow(*_: Any) -> None:
        raise TimeoutError("parsing a quantity took more than a second")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        for text in ("1" * 20000 + "x", "1." + "0" * 20000 + "x", "9" * 40):
            with pytest.raises(ValueError):
                parse_quantity(text)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- 6. where the cluster comes from ------------------------------------------------------------


@pytest.mark.parametrize("reference_", ["sophia-ai-dev", "sophia-ai/sophia-ai-dev", "acme/sophia-ai/sophia-ai-dev"])
def test_a_stack_is_not_its_own_cluster(reference_: str):
    found = lines(DEV, changed(DEV, {"kubernetes:kubeconfig": None, "sophia-ai:clusterStack": reference_}))
    assert any("sophia-ai:clusterStack: names this stack itself" in line for line in found), found
    other = changed(
        DEV,
        {
            "kubernetes:kubeconfig": None,
            "sophia-ai:clusterStack": "acme/other-project/sophia-ai-dev",
            # Another project's cluster: this one cannot size it.
            "sophia-ai:clusterCapacity": {"cpu": "4", "memory": "16Gi"},
        },
    )
    assert lines(DEV, other) == []


def test_context_has_no_meaning_when_provisioning():
    found = lines(PROD, changed(PROD, {"kubernetes:context": "default"}))
    assert f"Pulumi.{PROD}.yaml: kubernetes:context: has no meaning when this stack installs k3s (lambdaLabs:ip):" in found[0]


@pytest.mark.parametrize("providers", [None, [], ["aws"], "kubernetes"])
def test_the_default_kubernetes_provider_must_be_disabled(providers: Any):
    found = lines(STAGING, changed(STAGING, {"pulumi:disable-default-providers": providers}))
    assert any(line.startswith(f"Pulumi.{STAGING}.yaml: pulumi:disable-default-providers: must") for line in found), found
    assert lines(STAGING, changed(STAGING, {"pulumi:disable-default-providers": ["*"]})) == []


def test_an_empty_kubeconfig_never_reaches_the_provider():
    with pytest.raises(ValueError, match="kubeconfig is empty"):
        cluster._required_kubeconfig("  \n")
    assert cluster._required_kubeconfig("~/.kube/config") == "~/.kube/config"


# --- 7. production rules cover every image ----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("sophia-ai:redis", {"image": "redis:latest"}, "sophia-ai:redis.image: production refuses mutable tags"),
        ("sophia-ai:redis", {"image": "redis:Latest"}, "sophia-ai:redis.image: production refuses mutable tags"),
        ("sophia-ai:telemetry", {"collectorImage": "otel/opentelemetry-collector:latest"}, "sophia-ai:telemetry.collectorImage: production refuses"),
        ("sophia-ai:images", {"tag": "latest\n"}, "sophia-ai:images.tag: must be a Docker tag"),
        ("sophia-ai:images", {"tag": "ｌatest"}, "sophia-ai:images.tag: must be a Docker tag"),
        ("sophia-ai:images", {"tag": "0.1.0", "registry": "ghcr.io/sophia"}, "sophia-ai:images.registry: production pulls only from"),
        ("sophia-ai:redis", {"image": "docker.io/library/redis:7.4.2"}, "sophia-ai:redis.image: production pulls only from"),
    ],
)  # fmt: skip
def test_production_rules_cover_every_image(key: str, value: Any, where: str):
    found = lines(PROD, changed(PROD, {key: value}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: {where}") for line in found), found
    digest = "redis:7.4.2-alpine@sha256:" + "a" * 64
    assert lines(PROD, changed(PROD, {"sophia-ai:redis": {"image": digest, "storageSize": "20Gi"}})) == []


# --- 8. any file, however broken -------------------------------------------------------------


def _deep(depth: int) -> str:
    return "config:\n  sophia-ai:replicas: " + "[" * depth + "]" * depth + "\n"


BROKEN_FILES: dict[str, bytes] = {
    "binary": bytes(range(256)) * 4,
    "not utf-8": "config:\n  sophia-ai:environment: dév\n".encode("latin-1"),
    "nul byte": b"config:\n  sophia-ai:environment: d\x00ev\n",
    "empty": b"",
    "comments only": b"# nothing here\n",
    "alias bomb": (
        b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nconfig:\n  sophia-ai:mcpServers: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    ),
    "5000 deep": _deep(5000).encode(),
    "33 deep": _deep(33).encode(),
    "duplicate config key": b"config:\n  sophia-ai:environment: production\n  sophia-ai:environment: dev\n",
    "duplicate nested key": b"config:\n  sophia-ai:replicas:\n    memory: 2\n    memory: 1\n",
    "two documents": b"config: {}\n---\nconfig: {}\n",
    "a tag": b"config:\n  sophia-ai:environment: !!str dev\n",
    "a merge key": b"config:\n  sophia-ai:replicas:\n    <<: {memory: 2}\n",
    "a list": b"- config\n",
    "config a list": b"config: [1, 2]\n",
    "not yaml": b"config: [unclosed\n",
    "2 MiB": b"config:\n  sophia-ai:environment: dev\n" + b"#" * (2 << 20),
    "numeric key": b"config:\n  1: x\n",
    "unknown top-level key": b"confg: {}\n",
}


@pytest.mark.parametrize("content", BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_any_broken_file_is_one_clear_exit_1(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / f"Pulumi.{DEV}.yaml"
    path.write_bytes(content)
    assert cli.main(["check", "--config-file", str(path)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert err and all(line.startswith(f"Pulumi.{DEV}.yaml: ") for line in err), err


def test_duplicate_keys_are_refused_naming_the_key(tmp_path: Path):
    found = file_lines(tmp_path, PROD, BROKEN_FILES["duplicate config key"].decode())
    assert found == [
        f"Pulumi.{PROD}.yaml: sophia-ai:environment: listed twice in the same mapping (Pulumi refuses duplicate keys)"
    ]


# --- 9. secrets are never shown --------------------------------------------------------------


def test_a_secret_where_a_mapping_belongs_is_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = changed(PROD, {"sophia-ai:ssh": PEM, "sophia-ai:snowflake": PEM, "sophia-ai:registryAuth": PEM})
    offline_ = file_lines(tmp_path, PROD, config)
    engine = engine_lines(monkeypatch, PROD, engine_config(config))
    for found in (offline_, engine):
        assert f"Pulumi.{PROD}.yaml: sophia-ai:ssh: must be a mapping of keys to values" in found
        assert "SENTINEL-PEM" not in "\n".join(found) and "BEGIN" not in "\n".join(found)


def test_values_of_keys_the_engine_marks_secret_are_not_shown(monkeypatch: pytest.MonkeyPatch):
    config = changed(PROD, {"sophia-ai:k3s": {"version": "SENTINEL-1", "agents": ["SENTINEL-2"], "token": "t"}})
    config["sophia-ai:snowflake"] = {**config["sophia-ai:snowflake"], "account": "SENTINEL 3", "privateKey": "pem"}
    found = engine_lines(monkeypatch, PROD, engine_config(config), ["sophia-ai:k3s", "sophia-ai:snowflake"])
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:k3s.version: must be") for line in found), found
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:snowflake.account: must be") for line in found), found
    assert "SENTINEL" not in "\n".join(found)


def test_kubeconfig_contents_must_be_a_secret_and_stay_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    contents = offline.SAMPLE_KUBECONFIG
    config = changed(
        DEV,
        {
            "kubernetes:kubeconfig": contents,
            "sophia-ai:clusterStack": None,
            "sophia-ai:clusterCapacity": {"cpu": "4", "memory": "16Gi"},
        },
    )
    found = file_lines(tmp_path, DEV, with_file_secrets(DEV, config))
    assert found == [
        f"Pulumi.{DEV}.yaml: kubernetes:kubeconfig: must be set as a secret (pulumi config set --secret 'kubernetes:kubeconfig' ...)"
    ]
    assert engine_lines(monkeypatch, DEV, *engine_secrets(config)) == found
    config["sophia-ai:snowflake"]["privateKey"] = "pem"
    values = engine_config(config)
    pulumi.runtime.set_all_config(values, ["kubernetes:kubeconfig", "sophia-ai:snowflake"])
    provider = next(r for r in offline.run(program.main, stack=DEV).resources if r.name == "cluster")
    assert provider.inputs["kubeconfig"] == "[secret]" and provider.plain_inputs["kubeconfig"] == contents
    path_config = changed(
        DEV,
        {
            "kubernetes:kubeconfig": "~/.kube/config-dev",
            "sophia-ai:clusterStack": None,
            "sophia-ai:clusterCapacity": {"cpu": "4", "memory": "16Gi"},
        },
    )
    path_config["sophia-ai:snowflake"]["privateKey"] = "pem"
    pulumi.runtime.set_all_config(engine_config(path_config), ["sophia-ai:snowflake"])
    provider = next(r for r in offline.run(program.main, stack=DEV).resources if r.name == "cluster")
    assert provider.inputs["kubeconfig"] == "~/.kube/config-dev"


# --- 10. check and the engine agree -------------------------------------------------------------

# (file text of a key, what Pulumi hands the program for it: read off yaml.v3's resolve.go and
# Pulumi's config object/plaintext marshalling)
SPELLINGS = [
    ("sophia-ai:images: {tag: 1.10}", {"sophia-ai:images": '{"tag":1.1}'}),
    ("sophia-ai:images: {tag: 2024-01-01}", {"sophia-ai:images": '{"tag":"2024-01-01 00:00:00 +0000 UTC"}'}),
    ("sophia-ai:images: {tag: 0x1F}", {"sophia-ai:images": '{"tag":31}'}),
    ("sophia-ai:images: {tag: ~}", {"sophia-ai:images": '{"tag":null}'}),
    ("sophia-ai:images: {tag: yes}", {"sophia-ai:images": '{"tag":"yes"}'}),
    ("sophia-ai:images: {tag: 0o17}", {"sophia-ai:images": '{"tag":15}'}),
    ("sophia-ai:features: {tracing: on}", {"sophia-ai:features": '{"tracing":"on"}'}),
    ("sophia-ai:replicas: {orchestrator: 2.0, memory: 0x2, mcpServers: 1e0}",
     {"sophia-ai:replicas": '{"memory":2,"mcpServers":1,"orchestrator":2}'}),
    ("sophia-ai:resources: {cpu: 1e3, memory: 1Gi}", {"sophia-ai:resources": '{"cpu":1000,"memory":"1Gi"}'}),
    ("sophia-ai:kubernetesVersion: 1.30", {"sophia-ai:kubernetesVersion": "1.3"}),
    ("sophia-ai:kubernetesVersion: 2024-01-01", {"sophia-ai:kubernetesVersion": "2024-01-01 00:00:00 +0000 UTC"}),
    ("sophia-ai:kubernetesVersion: 1e-7", {"sophia-ai:kubernetesVersion": "1e-7"}),
    ("sophia-ai:kubernetesVersion:", {"sophia-ai:kubernetesVersion": "null"}),
    ("sophia-ai:environment: yes", {"sophia-ai:environment": "yes"}),
    ("sophia-ai:environment: 017", {"sophia-ai:environment": "15"}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "engine"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_check_and_the_engine_read_yaml_spellings_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, engine: dict[str, str]
):
    base = {k: v for k, v in stack_config(DEV).items() if k not in engine}
    body = yaml.safe_dump({"config": with_file_secrets(DEV, base)}, sort_keys=False) + "  " + text + "\n"
    offline_ = file_lines(tmp_path, DEV, body)
    values, secret_keys = engine_secrets(base)
    assert offline_ == engine_lines(monkeypatch, DEV, {**values, **engine}, secret_keys), text


def test_a_date_is_named_as_such_on_both_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    found = file_lines(
        tmp_path,
        DEV,
        yaml.safe_dump({"config": with_file_secrets(DEV, stack_config(DEV))}).replace("tag: 0.1.0", "tag: 2024-01-01"),
    )
    assert found == [f"Pulumi.{DEV}.yaml: sophia-ai:images.tag: is an unquoted YAML date or time; write it in quotes"]


# --- 11. all problems at once ------------------------------------------------------------------


def test_a_field_error_does_not_hide_the_rules_across_keys():
    found = lines(
        PROD,
        changed(
            PROD,
            {
                "sophia-ai:replicas": {"orchestrator": -1, "memory": 1, "mcpServers": 2, "frontend": 2},
                "sophia-ai:images": {"tag": "latest"},
                "sophia-ai:ingress": {"enabled": True, "tlsSecret": "Bad_Secret"},
                "kubernetes:context": "x",
                "sophia-ai:gpuServices": ["nope"],
            },
        ),
    )
    for expected in (
        "sophia-ai:replicas.orchestrator: must be >= 1, got -1",
        "sophia-ai:images.tag: production refuses mutable tags",
        "sophia-ai:ingress.tlsSecret: must be a DNS name",
        "sophia-ai:ingress.host: is required when enabled is true",
        "kubernetes:context: has no meaning",
        "sophia-ai:gpuServices[0]: must be orchestrator, memory or one of",
    ):
        assert any(line.startswith(f"Pulumi.{PROD}.yaml: {expected}") for line in found), (expected, found)
    # ...while a broken key gives no rule across keys a wrong value to complain about.
    assert not any("replicas.memory" in line or "exactly one of" in line for line in found), found
    broken_ip = lines(PROD, changed(PROD, {"lambdaLabs:ip": "nope"}))
    assert broken_ip == [f"Pulumi.{PROD}.yaml: lambdaLabs:ip: must be an IPv4 or IPv6 address, got 'nope'"]


# --- 12. one source for the production rules ----------------------------------------------------


def test_the_production_rules_are_defined_once():
    assert rules.PRODUCTION_STACK is production.PRODUCTION_STACK
    assert rules.is_mutable_image is production.is_mutable_image and model.is_mutable_image is production.is_mutable_image
    assert list(production.ALLOWED_REGISTRIES) == rules.DEFAULT_REGISTRIES
    for source in (PROJECT / "stacks", PROJECT / "policies"):
        for path in source.glob("*.py"):
            if path.name != "production.py":
                assert 'frozenset({"latest"' not in path.read_text(), path


@pytest.mark.parametrize("module", ["production.py", "workloads.py"])
def test_the_shared_rules_need_only_the_standard_library(module: str):
    tree = ast.parse((PROJECT / "policies" / module).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_policy_pack_imports_from_its_own_directory_alone(tmp_path: Path):
    """As the pack runtime runs it: `policies/` copied alone, no project package importable."""
    pack = tmp_path / "pack"
    shutil.copytree(PROJECT / "policies", pack, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'stacks', 'infrastructure', 'components', 'sophia_infra', 'policies', 'pydantic'}:\n"
        "            raise ImportError('the pack may not import ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.path.insert(0, '.')\n"
        "import rules, production\n"
        "print(len(rules.POLICIES), rules.PRODUCTION_STACK is production.PRODUCTION_STACK)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=pack,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(rules.POLICIES)), "True"]


def test_the_plan_s_kubernetes_versions_are_those_kubernetes_validate_ships():
    import kubernetes_validate.utils

    from stacks.compat import PLAN_KUBERNETES_MINORS

    minors = sorted({int(version.split(".")[1]) for version in kubernetes_validate.utils.all_versions()})
    assert range(minors[0], minors[-1] + 1) == PLAN_KUBERNETES_MINORS
    assert lines(DEV, changed(DEV, {"sophia-ai:kubernetesVersion": f"1.{minors[-1] + 1}.0"}))


# --- holes found by a second audit: each a class, each with its cases --------------------------


@pytest.mark.parametrize("blank", ["\n", " \n ", "\t\n", "\n\n"])
def test_a_blank_kubeconfig_is_no_cluster_source_whatever_its_newlines(blank: str):
    # Text with a newline reads as kubeconfig contents: a blank one must not pass as such, secret or not.
    for value in (blank, {"secure": "v1:blank"}):
        config = changed(DEV, {"kubernetes:kubeconfig": value, "sophia-ai:clusterStack": None})
        secret = isinstance(value, dict)
        found = lines_with_secret(DEV, config, "kubernetes:kubeconfig", blank) if secret else lines(DEV, config)
        assert any("kubernetes:kubeconfig: must not be empty" in line for line in found), found


def lines_with_secret(stack: str, config: dict[str, Any], key: str, plain: str) -> list[str]:
    """Problems of `config` as the engine gives it: `key` decrypted to `plain` and marked secret."""
    values = {k: loader._decode(stackfile.engine_text(v, (k,), set())) for k, v in config.items() if k != key}
    values[key] = plain
    try:
        loader.validate(RawConfig(f"Pulumi.{stack}.yaml", values, frozenset({(key,)})))
    except ConfigError as exc:
        return exc.lines
    return []


def test_an_unknown_top_level_key_does_not_hide_the_configs_problems(tmp_path: Path):
    config = changed(PROD, {"sophia-ai:replicas": {"orchestrator": -5}})
    text = "secretsprovidr: passphrase\n" + yaml.safe_dump({"config": config}, sort_keys=False)
    found = file_lines(tmp_path, PROD, text)
    assert any("secretsprovidr: unknown top-level key" in line for line in found), found
    assert any("sophia-ai:replicas.orchestrator" in line for line in found), found


def test_thousands_of_unknown_keys_give_a_bounded_report(tmp_path: Path):
    config = {**stack_config(DEV), **{f"sophia-ai:unknownKey{i}": "x" for i in range(5000)}}
    found = file_lines(tmp_path, DEV, config)
    assert len(found) == loader.MAX_REPORTED + 1, len(found)
    assert found[-1] == f"Pulumi.{DEV}.yaml: and {5000 - loader.MAX_REPORTED} more problems of the same file"


@pytest.mark.parametrize(
    "path", ["/var/lib/rancher/k3s/server/db/snapshots", "/var/lib/rancher/k3s", "/etc/rancher/k3s/snapshots"]
)
def test_snapshots_and_backups_may_not_live_where_the_k3s_uninstaller_deletes(path: str):
    k3s = {**stack_config(PROD).get("sophia-ai:k3s", {}), "snapshotDir": path}
    found = lines(PROD, changed(PROD, {"sophia-ai:k3s": k3s}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:k3s.snapshotDir: must be outside") for line in found), found
    redis = {**stack_config(PROD).get("sophia-ai:redis", {}), "backup": {"hostPath": path}}
    found = lines(PROD, changed(PROD, {"sophia-ai:redis": redis}))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:redis.backup.hostPath: must be outside") for line in found), found
