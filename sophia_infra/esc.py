"""What a stack's Pulumi ESC environments add to its stack file, read the way CI can read it:
`pulumi env get ENV pulumiConfig --value json` prints the environment's stack configuration with
every secret redacted to `[secret]` (and values only known when opened to `[unknown]`), so the
check learns which secrets are set, and where, without a single secret value leaving ESC.

Pulumi merges them as the engine will: imports in order (later wins, objects merged), then the
stack file's own values over them (a JSON merge patch; pkg/workspace/config.go, mergeConfig).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from stacks.loader import PROJECT, SECRET_PLACEHOLDER, ConfigError, Path_, RawConfig

# What `pulumi env get --value json` prints for a secret, and for a value known only when opened.
REDACTED = frozenset({"[secret]", "[unknown]"})
_ENVIRONMENT = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}(@[A-Za-z0-9_.-]+)?\Z")


def imports(path: Path) -> list[str]:
    """The ESC environments the stack file imports (`environment: [project/env, ...]`)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    names = (document.get("environment") or []) if isinstance(document, dict) else []
    if not isinstance(names, list) or not all(isinstance(n, str) and _ENVIRONMENT.match(n) for n in names):
        raise ConfigError([f"{path.name}: environment: must be a list of ESC environment names such as sophia-ai/dev"])
    return names


def pulumi_config(name: str, source: str) -> dict[str, Any]:
    """The `pulumiConfig` of environment `name`, secrets redacted (never `--show-secrets`)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ConfigError([f"{source}: environment: reading {name} needs the Pulumi CLI, logged in to Pulumi Cloud"])
    result = subprocess.run(
        [pulumi, "env", "get", name, "pulumiConfig", "--value", "json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no error message"])[-1]
        raise ConfigError([f"{source}: environment: {name}: `pulumi env get` failed: {reason}"])
    try:
        value = json.loads(result.stdout or "null")
    except json.JSONDecodeError:
        raise ConfigError([f"{source}: environment: {name}: `pulumi env get` printed no JSON"]) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError([f"{source}: environment: {name}: pulumiConfig must be a mapping of config keys"])
    return {key if ":" in key else f"{PROJECT}:{key}": item for key, item in value.items()}


def merge(raw: RawConfig, layers: list[dict[str, Any]], names: list[str]) -> RawConfig:
    """`raw` (a stack file) over the environments' `pulumiConfig` layers, in import order."""
    environment: dict[str, Any] = {}
    for layer in layers:
        environment = _merged(environment, layer)
    secret_paths = set(raw.secret_paths)
    values = _merged(_redacted(environment, (), secret_paths), raw.values)
    note = f"{raw.source}: ESC environments {', '.join(names)} read with their secrets redacted"
    return RawConfig(raw.source, values, frozenset(secret_paths), offline=True, notes=(*raw.notes, note), stack=raw.stack)


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{key: _merged(base.get(key), value) for key, value in over.items()}}
    return over


def _redacted(value: Any, path: Path_, secret_paths: set[Path_]) -> Any:
    """ESC's redacted values become the offline secret placeholder, at a secret path."""
    if isinstance(value, dict):
        return {key: _redacted(item, (*path, key), secret_paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, (*path, index), secret_paths) for index, item in enumerate(value)]
    if isinstance(value, str) and value in REDACTED:
        secret_paths.add(path)
        return SECRET_PLACEHOLDER
    return value


def resolve(path: Path, raw: RawConfig) -> RawConfig:
    """The stack file `path` (read as `raw`) with the ESC environments it imports."""
    names = imports(path)
    if not names:
        return raw
    return merge(raw, [pulumi_config(name, raw.source) for name in names], names)
