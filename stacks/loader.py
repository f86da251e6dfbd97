"""Reads a stack's configuration (from its stack file offline, from the engine under Pulumi) and
validates it into a `StackConfig`, reporting every problem at once with the file and key path."""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from stacks.model import StackConfig

SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - what secrets show as offline
PROJECT = "sophia-ai"
# Keys of a stack file besides `config` that Pulumi itself owns.
_STACK_FILE_KEYS = {"config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt"}
# Config namespaces that belong to the engine, not to this program.
_ENGINE_NAMESPACES = ("pulumi:",)

Path_ = tuple[str | int, ...]


class ConfigError(Exception):
    """A stack's configuration is invalid; `lines` name the file, the key and the problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class RawConfig:
    """Config values by full key (`sophia-ai:replicas`), and the paths that hold secrets."""

    source: str
    values: dict[str, Any]
    secret_paths: frozenset[Path_] = field(default_factory=frozenset)
    # True when the values come from a file whose secrets were not decrypted.
    offline: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedConfig:
    config: StackConfig
    # Secrets that the stack file does not hold and that `pulumi up` will ask for.
    missing_secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> RawConfig:
    """Read a stack file without decrypting anything: secure values become placeholders."""
    name = path.name
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{name}: not valid YAML: {exc}".replace("\n", " ")]) from exc
    if not isinstance(document, dict):
        raise ConfigError([f"{name}: must be a mapping with a `config:` section"])
    problems = [
        f"{name}: {key}: unknown top-level key; allowed: {', '.join(sorted(_STACK_FILE_KEYS))}"
        for key in document
        if key not in _STACK_FILE_KEYS
    ]
    config = document.get("config") or {}
    if not isinstance(config, dict):
        problems.append(f"{name}: config: must be a mapping of keys to values")
        config = {}
    if problems:
        raise ConfigError(problems)
    secret_paths: set[Path_] = set()
    values = {str(key): _strip_secure(value, (str(key),), secret_paths) for key, value in config.items()}
    notes: tuple[str, ...] = ()
    if document.get("environment"):
        notes = (f"{name}: imports Pulumi ESC environments {document['environment']}; they are not resolved offline",)
    return RawConfig(name, values, frozenset(secret_paths), offline=True, notes=notes)


def _strip_secure(value: Any, path: Path_, secret_paths: set[Path_]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            secret_paths.add(path)
            return SECRET_PLACEHOLDER
        return {k: _strip_secure(v, (*path, str(k)), secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secure(v, (*path, i), secret_paths) for i, v in enumerate(value)]
    return value


def read_runtime(stack: str) -> RawConfig:
    """The configuration the Pulumi engine gave this program (decrypted, with its secret keys)."""
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {key for key in values if runtime_config.is_config_secret(key)}
    return RawConfig(
        f"Pulumi.{stack}.yaml", {key: _decode(value) for key, value in values.items()}, frozenset((key,) for key in secret_keys)
    )


def _decode(value: Any) -> Any:
    """The engine passes objects and lists as JSON text and scalars as plain text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def validate(raw: RawConfig) -> LoadedConfig:
    """Validate `raw`; raise `ConfigError` listing every problem, each with file and key path."""
    values = {key: value for key, value in raw.values.items() if not key.startswith(_ENGINE_NAMESPACES)}
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError([f"{raw.source}: {line}" for line in _describe(exc, values, raw.secret_paths)]) from None
    problems = [
        f"{raw.source}: {_key(path)}: must be set as a secret (pulumi config set --secret --path '{_key(path)}')"
        for path in _secret_fields(config)
        if not _is_secret(path, raw.secret_paths)
    ]
    if problems:
        raise ConfigError(problems)
    missing = [path for path in required_secrets(config) if _get(config, path) is None]
    if missing and not raw.offline:
        raise ConfigError(
            [
                f"{raw.source}: {_key(path)}: a secret is required here"
                f" (pulumi config set --secret --path '{_key(path)}' ..., or from Pulumi ESC)"
                for path in missing
            ]
        )
    if missing:
        for path in missing:
            _set(values, path, SECRET_PLACEHOLDER)
        config = StackConfig.model_validate(values)
    return LoadedConfig(config, tuple(_key(path) for path in missing), raw.notes)


def load_stack_file(path: Path) -> LoadedConfig:
    return validate(read_stack_file(path))


def required_secrets(config: StackConfig) -> list[Path_]:
    """Secrets this configuration needs, by alias path."""
    needed: list[Path_] = []
    snowflake = "privateKey" if config.snowflake.auth == "keypair" else "password"
    needed.append(("sophia-ai:snowflake", snowflake))
    if config.cluster_mode == "provision":
        needed.append(("sophia-ai:ssh", "privateKey"))
    if config.registry_auth is not None:
        needed.append(("sophia-ai:registryAuth", "password"))
    if config.redis.backup is not None and config.redis.backup.s3 is not None:
        needed.extend(("sophia-ai:redis", "backup", "s3", key) for key in ("accessKeyId", "secretAccessKey"))
    return needed


# --- helpers over alias paths ---------------------------------------------------------------


def _key(path: Path_) -> str:
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _is_secret(path: Path_, secret_paths: frozenset[Path_]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in secret_paths)


def _fields_by_alias(model: type[BaseModel]) -> dict[str, tuple[str, Any]]:
    return {(info.alias or name): (name, info.annotation) for name, info in model.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _is_secret_type(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret_type(arg) for arg in typing.get_args(annotation))


def _model_at(path: Path_) -> type[BaseModel] | None:
    model: type[BaseModel] | None = StackConfig
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        found = _fields_by_alias(model).get(part)
        models = _models_in(found[1]) if found else []
        model = models[0] if models else None
    return model


def _secret_fields(config: BaseModel, prefix: Path_ = ()) -> list[Path_]:
    """Alias paths of the secret fields that hold a value."""
    paths: list[Path_] = []
    for alias, (name, annotation) in _fields_by_alias(type(config)).items():
        value = getattr(config, name)
        if value is None:
            continue
        if _is_secret_type(annotation):
            paths.append((*prefix, alias))
        elif isinstance(value, BaseModel):
            paths.extend(_secret_fields(value, (*prefix, alias)))
    return paths


def _get(config: BaseModel, path: Path_) -> Any:
    value: Any = config
    for alias in path:
        value = getattr(value, _fields_by_alias(type(value))[str(alias)][0])
    return value


def _set(values: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(str(part), {})
    values[str(path[-1])] = value


def _describe(exc: ValidationError, values: dict[str, Any], secret_paths: frozenset[Path_]) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        path: Path_ = tuple(error["loc"])
        if error["type"] == "value_error" and not path:
            # Cross-field checks report "key: message" lines of their own.
            lines.extend(str(error["ctx"]["error"]).splitlines())
            continue
        is_secret = _is_secret(path, secret_paths) or _names_secret(path)
        lines.append(f"{_key(path)}: {_message(error, path, show_input=not is_secret)}")
    return lines


def _names_secret(path: Path_) -> bool:
    parent = _model_at(path[:-1])
    found = _fields_by_alias(parent).get(str(path[-1])) if parent else None
    return bool(found and _is_secret_type(found[1]))


def _message(error: Any, path: Path_, show_input: bool) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    got = f", got {error['input']!r}" if show_input and "input" in error else ""
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(path)
    if kind in ("greater_than_equal", "less_than_equal"):
        op = ">=" if kind == "greater_than_equal" else "<="
        return f"must be {op} {ctx['ge' if op == '>=' else 'le']}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if kind.startswith("int_"):
        return f"must be a whole number{got}"
    if kind.startswith("bool_"):
        return f"must be true or false{got}"
    if kind in ("string_type", "model_type", "model_attributes_type", "dict_type", "list_type"):
        wanted = {"string_type": "a string", "list_type": "a list"}.get(kind, "a mapping of keys to values")
        return f"must be {wanted}{got}"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        count = ctx.get("min_length", ctx.get("max_length"))
        return f"must have {bound} {count} entries"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}{got}"
    if kind == "value_error":
        return str(ctx["error"])
    return f"{error['msg']}{got}"


def _unknown_key(path: Path_) -> str:
    key = str(path[-1])
    parent = _model_at(path[:-1])
    allowed = sorted(_fields_by_alias(parent)) if parent else []
    if len(path) == 1 and ":" not in key and f"{PROJECT}:{key}" in allowed:
        return f"unknown key; config keys are namespaced, did you mean '{PROJECT}:{key}'?"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown key; {hint}"
