"""The configuration reference, generated from the model (README's "Configuration reference").

Its example sets every key (examples, else defaults) and is itself a valid production stack file;
the keys of the other ways to reach a cluster are shown as comments after it.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml
from annotated_types import Ge, Le
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from stacks.model import StackConfig, Text

# The keys of a stack attached to an existing cluster, instead of lambdaLabs:* and the host settings.
ATTACHED_KEYS = ("kubernetes:kubeconfig", "kubernetes:context", "sophia-ai:clusterStack", "sophia-ai:clusterCapacity")


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in typing.get_args(annotation))


def _type_name(info: FieldInfo | None, annotation: Any) -> str:
    if _is_secret(annotation):
        return "secret"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(None, args[0])}"
    if origin is dict:
        return f"map of {_type_name(None, args[0])} to {_type_name(None, args[1])}"
    metadata = list(info.metadata) if info else []
    if origin is typing.Annotated:
        annotation, metadata = args[0], [*metadata, *args[1:]]
    elif args:
        return _type_name(info, next(a for a in args if a is not type(None)))
    labels = [m.label for m in metadata if isinstance(m, Text)]
    bounds = [f">= {m.ge}" for m in metadata if isinstance(m, Ge)] + [f"<= {m.le}" for m in metadata if isinstance(m, Le)]
    name = labels[0] if labels else getattr(annotation, "__name__", str(annotation))
    return name + (f" ({', '.join(bounds)})" if bounds else "")


def _model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _example(info: FieldInfo, annotation: Any, default: Any) -> Any:
    model = _model(annotation)
    if model is not None and info.examples is not None:
        return info.examples[0]
    if model is not None:
        # A key whose example is None excludes another one the example sets: it is left out.
        found = {alias: _example(f, f.annotation, _nested_default(default, f)) for alias, f in _fields(model)}
        return {alias: value for alias, value in found.items() if value is not None}
    if info.examples is not None:
        return info.examples[0]
    if _is_secret(annotation):
        return {"secure": "v1:..."}
    if default not in (None, PydanticUndefined):
        return default
    return "..."


def _nested_default(parent_default: Any, info: FieldInfo) -> Any:
    """A nested key's default: from the parent's default object when it has one (redis.resources)."""
    if isinstance(parent_default, BaseModel):
        name = next(n for n, f in type(parent_default).model_fields.items() if f is info)
        return getattr(parent_default, name)
    return info.default


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return [(info.alias or name, info) for name, info in model.model_fields.items()]


def _default(default: Any) -> str:
    if default is PydanticUndefined:
        return "required"
    if isinstance(default, BaseModel):
        return "see below"
    if default is None:
        return "unset"
    return f"`{yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}`"


def rows(model: type[BaseModel] = StackConfig, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str, str]]:
    """(key path, type, default, description) for every key, nested keys included."""
    out = []
    for alias, info in _fields(model):
        key = f"{prefix}.{alias}" if prefix else alias
        default = _nested_default(defaults, info)
        nested = _model(info.annotation)
        kind = "mapping" if nested else _type_name(info, info.annotation)
        out.append((key, kind, _default(default), info.description or ""))
        if nested is not None:
            out.extend(rows(nested, key, default))
    return out


def example() -> tuple[dict[str, Any], dict[str, Any]]:
    """The example's keys of a production stack that installs k3s, and the attached stacks' keys."""
    keys = {alias: _example(info, info.annotation, info.default) for alias, info in _fields(StackConfig)}
    return {k: v for k, v in keys.items() if k not in ATTACHED_KEYS}, {k: keys[k] for k in ATTACHED_KEYS}


def markdown() -> str:
    provision, attached = example()
    lines = [
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
        *(f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows()),
        "",
        "Every key, with an example value: a valid `Pulumi.sophia-ai-production.yaml` (secrets are set with"
        " `pulumi config set --secret --path`). Exactly one of `lambdaLabs:ip`, `kubernetes:kubeconfig` and"
        " `sophia-ai:clusterStack` may be set; the keys of a stack attached to an existing cluster are the comments:",
        "",
        "```yaml",
        yaml.safe_dump({"config": provision}, sort_keys=False).rstrip(),
        "  # Attached to an existing cluster instead (no lambdaLabs:*, ssh, k3s, gpuOperator, monitoringStack):",
        *(f"  # {line}" for line in yaml.safe_dump(attached, sort_keys=False).splitlines()),
        "```",
        "",
    ]
    return "\n".join(lines)
