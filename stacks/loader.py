"""Reads a stack's configuration (from its stack file offline, from the engine under Pulumi) and
validates it into a `StackConfig`, reporting every problem at once, one line each, with the file
and key path.

Both sources end in the same form, the one `pulumi up` hands the program (one text per key,
mappings and lists as JSON: `stacks/stackfile.py` reads a file as Pulumi does), and go through
the same `validate`, so `sophia-infra check` and the program accept and refuse the same
configurations with the same lines. No line ever shows a value that is or may be a secret
(`_got`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from stacks import model, stackfile
from stacks.model import PROJECT, StackConfig
from stacks.stackfile import GO_TIME, MAX_DEPTH, SECRET_PLACEHOLDER, StackFileError, describe_path

__all__ = ["PROJECT", "SECRET_PLACEHOLDER", "ConfigError", "LoadedConfig", "RawConfig"]

# Keys of a stack file besides `config` that Pulumi itself owns.
_STACK_FILE_KEYS = {"config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt"}
# Config keys of the engine's own namespace that this program reads; the others are Pulumi's.
_ENGINE_KEYS_READ = {"pulumi:disable-default-providers"}

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
    # Offline: each secure value's path; under the engine: the keys it marks secret.
    secret_paths: frozenset[Path_] = field(default_factory=frozenset)
    # True when the values come from a file whose secrets were not decrypted.
    offline: bool = False
    notes: tuple[str, ...] = ()
    # The stack these values are for; None takes it from `source` (`Pulumi.<stack>.yaml`).
    stack: str | None = None
    # Problems of the file around the values (unknown top-level keys), reported with theirs.
    problems: tuple[str, ...] = ()

    @property
    def stack_name(self) -> str | None:
        return self.stack or stack_of_file(self.source)


@dataclass(frozen=True)
class LoadedConfig:
    config: StackConfig
    # Secrets that the stack file does not hold and that `pulumi up` will ask for.
    missing_secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def stack_of_file(name: str) -> str | None:
    """`Pulumi.sophia-ai-dev.yaml` -> `sophia-ai-dev`; None for a file not named so."""
    match = re.fullmatch(r"Pulumi\.(.+)\.yaml", name)
    return match[1] if match else None


def read_stack_file(path: Path, stack: str | None = None) -> RawConfig:
    """Read a stack file without decrypting anything: secure values become placeholders."""
    name = path.name
    try:
        with path.open("rb") as file:
            data = file.read(stackfile.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror}"]) from None
    try:
        parsed = stackfile.read(name, data)
    except StackFileError as exc:
        raise ConfigError(exc.lines) from None
    problems = tuple(
        f"{name}: {describe_path((key,))}: unknown top-level key; allowed: {', '.join(sorted(_STACK_FILE_KEYS))}"
        for key in parsed.document
        if key not in _STACK_FILE_KEYS
    )
    notes: tuple[str, ...] = ()
    if parsed.document.get("environment"):
        notes = (f"{name}: imports Pulumi ESC environments; they are not resolved offline",)
    values = {key: _decode(text) for key, text in parsed.config.items()}
    return RawConfig(name, values, parsed.secret_paths, offline=True, notes=notes, stack=stack, problems=problems)


def read_runtime(stack: str) -> RawConfig:
    """The configuration the Pulumi engine gave this program (decrypted, with its secret keys)."""
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {key for key in values if runtime_config.is_config_secret(key)}
    return RawConfig(
        f"Pulumi.{stack}.yaml",
        {key: _decode(value) for key, value in values.items()},
        frozenset((key,) for key in secret_keys),
        stack=stack,
    )


# Problems reported at most (then how many more): a report is read by a person.
MAX_REPORTED = 100


class _TooDeep:
    """A value nested deeper than a stack file may be (Python's JSON reader gives up first)."""


def _decode(value: Any) -> Any:
    """The engine passes objects and lists as JSON text, scalars as plain text (a YAML null as
    the text `null`)."""
    if value == "null":
        return None
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except RecursionError:
            return _TooDeep()
        except json.JSONDecodeError:
            return value
    return value


def _depth(value: Any) -> int:
    """Nesting of mappings and lists (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        current, level = todo.pop()
        if isinstance(current, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                todo.extend((child, level) for child in (current.values() if isinstance(current, dict) else current))
    return deepest


def load_stack_file(path: Path, stack: str | None = None) -> LoadedConfig:
    return validate(read_stack_file(path, stack))


def validate(raw: RawConfig) -> LoadedConfig:
    """Validate `raw`; raise `ConfigError` listing every problem, each with file and key path."""
    stack = raw.stack_name
    if stack is None:
        raise ConfigError([f"{raw.source}: cannot tell which stack this is for; name it Pulumi.<stack>.yaml"])
    values: dict[str, Any] = {}
    early: list[model.Problem] = []
    for key, value in raw.values.items():
        if key.startswith("pulumi:") and key not in _ENGINE_KEYS_READ:
            continue
        if value is None:
            early.append(model.Problem((key,), "has no value; give it one or remove the key"))
        elif isinstance(value, _TooDeep) or _depth(value) > MAX_DEPTH:
            early.append(model.Problem((key,), f"nested deeper than {MAX_DEPTH} levels"))
        else:
            values[key] = value
    lines = [*raw.problems, *(_line(raw, problem) for problem in early)]
    try:
        config: StackConfig | None = StackConfig.model_validate(values)
        errors: list[Any] = []
    except ValidationError as exc:
        config, errors = None, exc.errors()
    preempted = {problem.path for problem in early}
    errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in preempted)]
    # Each description may look for the closest key: a file of thousands of unknown keys is
    # described up to the report's bound, and the rest counted.
    lines += [_describe(raw, error) for error in errors[:MAX_REPORTED]]
    hidden = len(errors[MAX_REPORTED:])
    invalid = frozenset({tuple(e["loc"]) for e in errors} | preempted)
    view = config if config is not None else cast(StackConfig, Partial(StackConfig, values, (), invalid))
    lines += [_line(raw, problem) for problem in model.problems(view, stack)]
    lines += [
        f"{raw.source}: {describe_path(path)}: must be set as a secret"
        f" (pulumi config set --secret{' --path' if len(path) > 1 else ''} '{describe_path(path)}' ...)"
        for path in _secret_fields(view)
        if not _is_secret(path, raw.secret_paths)
    ]
    missing = _missing_secrets(view)
    if missing and not raw.offline:
        lines += [
            f"{raw.source}: {describe_path(path)}: a secret is required here"
            f" (pulumi config set --secret --path '{describe_path(path)}' ..., or from Pulumi ESC)"
            for path in missing
        ]
    unset = _unset_settings(view, stack)
    if unset and not raw.offline:
        lines += [f"{raw.source}: {key}: {why}" for key, why in unset]
    if lines or hidden:
        lines = list(dict.fromkeys(lines))
        hidden += len(lines[MAX_REPORTED:])
        lines = lines[:MAX_REPORTED]
        if hidden:
            lines.append(f"{raw.source}: and {hidden} more problems of the same file")
        raise ConfigError(lines)
    assert config is not None
    if missing:
        for path in missing:
            _set(values, path, SECRET_PLACEHOLDER)
        config = StackConfig.model_validate(values)
    notes = (
        *raw.notes,
        *(f"{raw.source}: {key}: not set; `pulumi up` requires it: {why}" for key, why in unset),
        *(f"{raw.source}: {key}: {why}" for key, why in state_on_the_host(config, stack)),
    )
    return LoadedConfig(config, tuple(describe_path(path) for path in missing), notes)


def required_secrets(config: StackConfig) -> list[Path_]:
    """Secrets this configuration needs, by alias path."""
    needed: list[Path_] = []
    snowflake = "privateKey" if config.snowflake.auth == "keypair" else "password"
    needed.append(("sophia-ai:snowflake", snowflake))
    if config.cluster_mode == "provision":
        needed.append(("sophia-ai:ssh", "privateKey"))
        if config.k3s.etcd_s3 is not None:
            needed.extend(("sophia-ai:k3s", "etcdS3", key) for key in ("accessKeyId", "secretAccessKey"))
    if config.registry_auth is not None:
        needed.append(("sophia-ai:registryAuth", "password"))
    if config.redis.backup is not None and config.redis.backup.s3 is not None:
        needed.extend(("sophia-ai:redis", "backup", "s3", key) for key in ("accessKeyId", "secretAccessKey"))
    return needed


def _installs_production_cluster(config: StackConfig, stack: str) -> bool:
    return config.cluster_mode == "provision" and model.environment_of(config, stack) == "production"


def required_settings(config: StackConfig, stack: str) -> list[tuple[str, str]]:
    """Plain settings a stack file may leave out offline but `pulumi up` needs: the SSH host keys
    of a production cluster's hosts (known only once the instances exist)."""
    if not _installs_production_cluster(config, stack):
        return []
    hint = "required in production, every SSH connection checks it (ssh-keyscan -t ed25519 {} | cut -d' ' -f2-)"
    unset = [("sophia-ai:ssh.hostKey", hint.format(config.lambda_ip))] if config.ssh.host_key is None else []
    unset += [
        (f"sophia-ai:ssh.agentHostKeys.{agent}", hint.format(agent))
        for agent in config.k3s.agents
        if agent not in config.ssh.agent_host_keys
    ]
    return unset


def state_on_the_host(config: StackConfig, stack: str) -> list[tuple[str, str]]:
    """What a production stack that installs its cluster keeps only on the host's local disk, which
    a Lambda instance loses when it is terminated (it has no stopped state): notes, not errors,
    since keeping it there may be a choice (docs/runbook.md, "What survives what")."""
    if not _installs_production_cluster(config, stack):
        return []
    notes = []
    if config.redis.backup is None:
        notes.append(("sophia-ai:redis.backup", "not set: Redis's data is only on the host's disk and is lost with the instance"))
    if config.k3s.etcd_s3 is None and config.k3s.snapshot_dir is None:
        notes.append(
            ("sophia-ai:k3s.etcdS3", "not set, nor sophia-ai:k3s.snapshotDir: the etcd snapshots are only on the host's disk")
        )
    return notes


def _unset_settings(view: StackConfig, stack: str) -> list[tuple[str, str]]:
    try:
        return required_settings(view, stack)
    except model.Unknown:
        return []


def _missing_secrets(view: StackConfig) -> list[Path_]:
    try:
        return [path for path in required_secrets(view) if _get(view, path) is None]
    except model.Unknown:
        return []


# --- the valid part of an invalid configuration ---------------------------------------------


class Partial:
    """What did validate of a configuration that did not, read like the model: a field that failed
    (or sits inside one that failed) raises `model.Unknown`, so that the checks across keys run on
    everything else and a broken key hides no other key's problem."""

    def __init__(self, model_type: type[BaseModel], data: Any, path: Path_, invalid: frozenset[Path_]):
        self.model_type, self._data, self._path, self._invalid = model_type, data, path, invalid

    @property
    def model_fields_set(self) -> set[str]:
        return {name for name, info in self.model_type.model_fields.items() if (info.alias or name) in self._data}

    def __getattr__(self, name: str) -> Any:
        info = self.model_type.model_fields.get(name)
        if info is None:
            member = getattr(self.model_type, name, None)
            if isinstance(member, property) and member.fget is not None:
                return member.fget(self)  # the model's properties read the fields through here
            raise AttributeError(name)
        alias = info.alias or name
        path = (*self._path, alias)
        broken = [bad for bad in self._invalid if bad[: len(path)] == path or path[: len(bad)] == bad]
        value = self._data.get(alias) if isinstance(self._data, dict) else None
        if broken:
            nested = _models_in(info.annotation)
            if nested and isinstance(value, dict) and all(len(bad) > len(path) for bad in broken):
                return Partial(nested[0], value, path, self._invalid)
            raise model.Unknown(path)
        if alias not in self._data:
            return info.get_default(call_default_factory=True)
        return _adapter(self.model_type, name).validate_python(value)


@functools.cache
def _adapter(model_type: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model_type.model_fields[name]
    annotation: Any = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return TypeAdapter(annotation)


# --- helpers over alias paths ---------------------------------------------------------------


def _is_secret(path: Path_, secret_paths: frozenset[Path_]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in secret_paths)


def _fields_by_alias(model_type: type[BaseModel]) -> dict[str, tuple[str, Any]]:
    return {(info.alias or name): (name, info.annotation) for name, info in model_type.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _is_secret_type(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret_type(arg) for arg in typing.get_args(annotation))


def _may_hold_secret(annotation: Any) -> bool:
    """A secret, a kubeconfig (its contents are one), or a mapping with secrets inside: a secret
    given where such a key expected a mapping is still a secret."""
    if _is_secret_type(annotation) or annotation == model.Kubeconfig:
        return True
    if any(_may_hold_secret(arg) for arg in typing.get_args(annotation) if typing.get_origin(annotation) is not typing.Annotated):
        return True
    return any(_may_hold_secret(info.annotation) for nested in _models_in(annotation) for info in nested.model_fields.values())


def _annotation_at(path: Path_) -> Any:
    """The annotation of the key at `path`, or None for a key the model does not have."""
    annotation: Any = StackConfig
    for part in path:
        if isinstance(part, int) or part == "[key]":
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[-1] if args else None
            continue
        if (value_type := _mapping_value(annotation)) is not None:
            annotation = value_type  # a key of a mapping-valued key (sophia-ai:mcpCredentials.<server>)
            continue
        models = _models_in(annotation)
        found = _fields_by_alias(models[0]).get(part) if models else None
        if found is None:
            return None
        annotation = found[1]
    return annotation


def _mapping_value(annotation: Any) -> Any:
    """The value type of a mapping annotation (through Annotated and Optional), else None."""
    origin = typing.get_origin(annotation)
    if origin is dict:
        return typing.get_args(annotation)[1]
    if origin in (typing.Annotated, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _mapping_value(arg)) is not None:
                return found
    return None


def _secret_fields(view: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Alias paths of the keys that hold a secret (kubeconfig contents included)."""
    model_type = view.model_type if isinstance(view, Partial) else type(view)
    for name, info in model_type.model_fields.items():
        path = (*prefix, info.alias or name)
        try:
            value = getattr(view, name)
        except model.Unknown:
            continue
        if isinstance(value, SecretStr) or (name == "kubeconfig" and value and model.is_kubeconfig_contents(value)):
            yield path
        elif isinstance(value, BaseModel | Partial):
            yield from _secret_fields(value, path)
        elif isinstance(value, dict):
            yield from _secrets_in_mapping(value, path)


def _secrets_in_mapping(mapping: dict[str, Any], prefix: Path_) -> Iterator[Path_]:
    """Alias paths of the secrets inside a mapping-valued key (sophia-ai:mcpCredentials)."""
    for key, value in mapping.items():
        if isinstance(value, SecretStr):
            yield (*prefix, key)
        elif isinstance(value, dict):
            yield from _secrets_in_mapping(value, (*prefix, key))


def _get(view: Any, path: Path_) -> Any:
    value = view
    for alias in path:
        value = getattr(value, _fields_by_alias(value.model_type if isinstance(value, Partial) else type(value))[str(alias)][0])
    return value


def _set(values: dict[str, Any], path: Path_, value: Any) -> None:
    for part in path[:-1]:
        values = values.setdefault(str(part), {})
    values[str(path[-1])] = value


# --- messages -------------------------------------------------------------------------------


def _line(raw: RawConfig, problem: model.Problem) -> str:
    where = f"{describe_path(problem.path)}: " if problem.path else ""
    got = _got(raw, problem.path, problem.got) if problem.has_got else ""
    return f"{raw.source}: {where}{problem.message}{got}"


def _got(raw: RawConfig, path: Path_, value: Any) -> str:
    """The one rule for showing a value: never one that is, or may be, a secret (a key holding a
    secret, offline or as the engine marks it, anything inside it, or a key whose type is or holds
    a secret), and only a short, one-line form of the others."""
    hidden = {secret[:1] for secret in raw.secret_paths} | set(raw.secret_paths)
    if _is_secret(path, frozenset(hidden)) or _may_hold_secret(_annotation_at(path)):
        return ""
    if isinstance(value, str):
        return f", got {stackfile._short_repr(value, 60)}"
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list):
        return ", got a list"
    return f", got {json.dumps(value)}"


def _describe(raw: RawConfig, error: Any) -> str:
    loc: Path_ = tuple(error["loc"])
    path = loc[:-1] if loc[-1:] == ("[key]",) else loc
    message = _message(error, loc)
    value = error.get("input")
    if isinstance(value, str) and GO_TIME.fullmatch(value) and error["type"] != "missing":
        message, show = "is an unquoted YAML date or time; write it in quotes", False
    else:
        show = "input" in error and error["type"] not in ("missing", "extra_forbidden")
    got = _got(raw, path, value) if show else ""
    return f"{raw.source}: {describe_path(path)}: {message}{got}"


def _message(error: Any, loc: Path_) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    key = "the key " if loc[-1:] == ("[key]",) else ""
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind in ("greater_than_equal", "less_than_equal"):
        op = ">=" if kind == "greater_than_equal" else "<="
        return f"must be {op} {ctx['ge' if op == '>=' else 'le']}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind.startswith("int_"):
        return "must be a whole number"
    if kind.startswith("bool_"):
        return "must be true or false"
    if kind in ("string_type", "model_type", "model_attributes_type", "dict_type", "list_type"):
        wanted = {"string_type": "text", "list_type": "a list"}.get(kind, "a mapping of keys to values")
        return f"must be {key}{wanted}"
    if kind == "string_too_short":
        return f"{key}must not be empty"
    if kind == "string_too_long" or (kind == "too_long" and _is_secret_type(_annotation_at(loc))):
        return f"{key}must be at most {ctx['max_length']} characters long"
    if kind == "too_short" and _is_secret_type(_annotation_at(loc)):
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        return f"must have {bound} {ctx.get('min_length', ctx.get('max_length'))} entries"
    if kind == "value_error":
        return f"{key}{ctx['error']}"
    return f"{key}{error['msg']}"


def _unknown_key(path: Path_) -> str:
    key = str(path[-1])
    parent = _models_in(_annotation_at(path[:-1]))
    allowed = sorted(_fields_by_alias(parent[0])) if parent else []
    if len(path) == 1 and ":" not in key and f"{PROJECT}:{key}" in allowed:
        return f"unknown key; config keys are namespaced, did you mean '{PROJECT}:{key}'?"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if len(key) <= 64 else []
    hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
    return f"unknown key; {hint}"
