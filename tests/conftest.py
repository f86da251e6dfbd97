"""Test harness: run the real program of a stack file under Pulumi's mock runtime, fed the way the
engine feeds it (JSON config values, secret keys), and find what it registered."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi.runtime
import pytest
import yaml

from infrastructure import program
from sophia_infra import offline
from sophia_infra.offline import Recorded

# Fixtures for running the services for real (processes, Redis, an OTLP receiver).
pytest_plugins = ["tests.platform"]

PROJECT = Path(__file__).resolve().parent.parent
STACKS = ["sophia-ai-dev", "sophia-ai-staging", "sophia-ai-production"]

# Recognisable values for every secret the stacks take; tests prove none of them leaks.
SENTINELS = {
    ("sophia-ai:snowflake", "privateKey"): "SENTINEL-SNOWFLAKE-PRIVATE-KEY",
    ("sophia-ai:ssh", "privateKey"): "SENTINEL-SSH-PRIVATE-KEY",
    ("sophia-ai:k3s", "token"): "SENTINEL-K3S-TOKEN",
    ("sophia-ai:redis", "password"): "SENTINEL-REDIS-PASSWORD",
    ("sophia-ai:registryAuth", "password"): "SENTINEL-REGISTRY-PASSWORD",
}


# The public SSH host key a provisioning stack checks (`pulumi up` of production requires one; a
# stack file cannot hold it before the instance exists).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` section of a real stack file."""
    return yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())["config"]


def with_secrets(config: dict[str, Any], *, provision: bool, without: tuple[str, ...] = ()) -> tuple[dict[str, Any], set[str]]:
    """Add the sentinel secrets that apply to `config` (but those of the keys `without`); return it
    and the keys that hold secrets."""
    config = copy.deepcopy(config)
    secret_keys = set()
    for (key, field), value in SENTINELS.items():
        if key in without or (key in ("sophia-ai:ssh", "sophia-ai:k3s") and not provision):
            continue
        if key == "sophia-ai:registryAuth" and key not in config:
            continue
        config.setdefault(key, {})[field] = value
        secret_keys.add(key)
    return config, secret_keys


def engine_config(config: dict[str, Any]) -> dict[str, str]:
    """What the Pulumi engine hands a program: objects as JSON text, scalars as text."""
    return {
        key: json.dumps(value)
        if isinstance(value, dict | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
        for key, value in config.items()
    }


@dataclass
class Run:
    """One run of the program: every registered resource, and the stack's outputs."""

    recording: offline.Recording

    @property
    def resources(self) -> list[Recorded]:
        return self.recording.resources

    def all(self, type_: str) -> list[Recorded]:
        """Resources whose type is `type_` or ends with `:Kind` (e.g. `Deployment`)."""
        return [r for r in self.resources if r.type == type_ or r.type.endswith(f":{type_}")]

    def get(self, type_: str, name: str) -> Recorded:
        found = [r for r in self.all(type_) if r.name == name]
        assert len(found) == 1, f"expected one {type_} named {name}, found {[r.name for r in self.all(type_)]}"
        return found[0]

    def names(self, type_: str) -> set[str]:
        return {r.name for r in self.all(type_)}

    def depends_on(self, name: str) -> set[str]:
        """Everything `name` waits for, directly or through others (parents count)."""
        by_name = {r.name: r for r in self.resources}
        seen: set[str] = set()
        todo = [name]
        while todo:
            current = by_name[todo.pop()]
            for dep in [*current.dependencies, *([current.parent] if current.parent else [])]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen


RunStack = Callable[..., Run]


@pytest.fixture(autouse=True)
def fresh_runtime_config():
    """No test sees the configuration a previous test gave the runtime."""
    pulumi.runtime.set_all_config({}, [])
    yield
    pulumi.runtime.set_all_config({}, [])


@pytest.fixture
def run_stack() -> RunStack:
    """`run_stack(stack, **changes)`: a fresh run of the program for that stack file, with its
    keys changed by `changes` ({"sophia-ai:replicas": {...}}; None removes a key), and the
    sentinel secrets (but those of the keys `without`) set as secrets, as are the keys `secret`."""

    def run(
        stack: str, changes: dict[str, Any] | None = None, without: tuple[str, ...] = (), secret: tuple[str, ...] = ()
    ) -> Run:
        merged = {**stack_config(stack), **(changes or {})}
        config = {key: value for key, value in merged.items() if value is not None}
        if "lambdaLabs:ip" in config:
            config["sophia-ai:ssh"] = {"hostKey": HOST_KEY, **config.get("sophia-ai:ssh", {})}
        config, secret_keys = with_secrets(config, provision="lambdaLabs:ip" in config, without=without)
        pulumi.runtime.set_all_config(engine_config(config), sorted(secret_keys | set(secret)))
        return Run(offline.run(program.main, stack=stack))

    return run
