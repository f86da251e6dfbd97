"""Custom resources checked against the CustomResourceDefinitions that define them, the way the API
server checks them: nulls in fields that are not `nullable` are pruned, then the schema's defaults
are applied, then the object is validated against the version's `openAPIV3Schema`. Stricter than
the API server in one respect, like the built-in objects' check (kubernetes-validate, strict):
a field the schema does not know is an error, not silently pruned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import jsonschema

_PRESERVE = "x-kubernetes-preserve-unknown-fields"


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` where objects with declared properties accept no others."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {key: _strict(value) for key, value in schema["properties"].items()}
        if not schema.get(_PRESERVE) and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_strict(part) for part in schema[key]]
    return schema


def structural_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with nulls pruned (where the schema does not allow them) and defaults applied,
    as the API server does before validation."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        out = {}
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if item is None and sub is not None and not sub.get("nullable"):
                continue
            out[key] = structural_defaults(sub or {}, item)
        for key, sub in properties.items():
            if key not in out and "default" in sub:
                out[key] = structural_defaults(sub, copy.deepcopy(sub["default"]))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [structural_defaults(schema["items"], item) for item in value]
    return value


@dataclass
class CrdIndex:
    """The CRDs that define custom resources, by (group, kind)."""

    crds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _validators: dict[tuple[str, str, str], jsonschema.protocols.Validator] = field(default_factory=dict)

    @classmethod
    def of(cls, crds: list[dict[str, Any]]) -> CrdIndex:
        index = cls()
        for crd in crds:
            spec = crd.get("spec") or {}
            index.crds[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = crd
        return index

    def defines(self, api_version: str, kind: str) -> bool:
        group = api_version.rpartition("/")[0]
        return (group, kind) in self.crds

    def problems(self, obj: dict[str, Any]) -> list[str]:
        """What is wrong with the custom resource `obj` (its CRD must be in the index)."""
        group, _, version = obj["apiVersion"].rpartition("/")
        crd = self.crds[(group, obj["kind"])]
        served = {v["name"]: v for v in crd["spec"].get("versions", [])}
        if version not in served:
            return [f"apiVersion {obj['apiVersion']}: the CRD serves {', '.join(sorted(served))}"]
        schema = (served[version].get("schema") or {}).get("openAPIV3Schema") or {}
        key = (group, obj["kind"], version)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft7Validator(_strict(schema))
        defaulted = structural_defaults(schema, obj)
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(object)'}: {error.message}"
            for error in sorted(self._validators[key].iter_errors(defaulted), key=lambda e: list(map(str, e.absolute_path)))
        ]
