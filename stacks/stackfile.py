"""Reads a stack file the way Pulumi does, into what `pulumi up` would hand the program.

Pulumi reads stack files with Go's gopkg.in/yaml.v3 (sdk/go/common/encoding/marshal.go), keeps
each config value as an object (sdk/go/common/resource/config/object.go) and passes the program
one text per top-level key (`PULUMI_CONFIG`): strings as they are, numbers and booleans as JSON,
mappings and lists as JSON (config/plaintext.go `marshalText`). So a plain `1e3` is the number
1000, `yes` and `0o17x` are strings, `017` is 15, a nested `2.0` arrives as the integer 2, and an
unquoted date arrives as Go's `time.Time.String()` text. PyYAML's YAML 1.1 rules differ on every
one of these; this module resolves plain scalars as yaml.v3's `resolve` does instead, so that
`sophia-infra check` sees exactly what the program will see.

It reads any file in bounded time and memory: at most `MAX_FILE_BYTES`, values nested at most
`MAX_DEPTH` levels, and no anchors or aliases (an alias bomb expands exponentially). It also
refuses what Pulumi's own commands never write and a reader would misread: duplicate keys (yaml.v3
refuses them too; elsewhere the last would silently win), tags, merge keys and more than one
document.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20
# Nesting of one config value (a mapping inside a mapping... counts one level each).
MAX_DEPTH = 32
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 - what secrets show as offline

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# yaml.v3 resolve.go: the first character decides what a plain scalar may be.
_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", re.ASCII)
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", re.ASCII)
_OCTAL = re.compile(r"0[0-7]+", re.ASCII)
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?", re.ASCII)
_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# yaml.v3's timestamp layouts ("2006-1-2T15:4:5.999999999Z07:00", the same with "t", "2006-1-2
# 15:4:5.999999999", "2006-1-2"), tried only on plain scalars that start with four digits and '-'.
_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?:(?P<t>[Tt])|(?P<sp> ))(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:\.(?P<f>[0-9]{1,9}))?"
    r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2})?)?",
    re.ASCII,
)
# What Go's time.Time.String() prints: how an unquoted date reaches the program.
GO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})? [+-][0-9]{4} \S+", re.ASCII)


class StackFileError(Exception):
    """The file cannot be read as a stack file; `lines` are `file: [key: ]problem`."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


@dataclass(frozen=True)
class StackFile:
    """The top-level keys of a stack file besides `config`, and the config as the engine passes it."""

    document: dict[str, Any]
    # Full key -> text, as in PULUMI_CONFIG (secure values are placeholders).
    config: dict[str, str]
    # Where the secure values were, as key paths (`("sophia-ai:ssh", "privateKey")`).
    secret_paths: frozenset[tuple[str | int, ...]]


class _ReadError(Exception):
    def __init__(self, path: tuple[Any, ...], message: str):
        super().__init__(message)
        self.path, self.message = path, message


def describe_path(path: tuple[Any, ...]) -> str:
    """`("config", "sophia-ai:k3s", "agents", 0)` -> `sophia-ai:k3s.agents[0]` (config keys are
    named without `config`); any unusual key text is quoted and shortened, so it stays one line."""
    parts = list(path[1:] if path[:1] == ("config",) and len(path) > 1 else path)
    text = ""
    for index, part in enumerate(parts):
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        shown = part if re.fullmatch(r"[A-Za-z0-9_./:-]{1,80}", part, re.ASCII) else _short_repr(part)
        text += shown if index == 0 else f".{shown}"
    return text


def _short_repr(text: str, limit: int = 40) -> str:
    return repr(text[:limit] + "…" if len(text) > limit else text)


def read(name: str, data: bytes) -> StackFile:
    """Read the bytes of the stack file called `name`; raise `StackFileError` naming the file."""
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError([f"{name}: larger than {MAX_FILE_BYTES >> 20} MiB; not a stack file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StackFileError([f"{name}: not UTF-8 text (byte {exc.start}); not a stack file"]) from None
    try:
        document = _Reader(yaml.parse(text, Loader=_Parser)).document()
    except yaml.YAMLError as exc:
        raise StackFileError([f"{name}: not valid YAML: {_yaml_problem(exc)}"]) from None
    except _ReadError as problem:
        where = f"{describe_path(problem.path)}: " if problem.path else ""
        raise StackFileError([f"{name}: {where}{problem.message}"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise StackFileError([f"{name}: must be a mapping with a `config:` section"])
    config = document.pop("config", None) or {}
    if not isinstance(config, dict):
        raise StackFileError([f"{name}: config: must be a mapping of keys to values"])
    secret_paths: set[tuple[str | int, ...]] = set()
    values = {key: engine_text(value, (key,), secret_paths) for key, value in config.items()}
    return StackFile(document, values, frozenset(secret_paths))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(str(problem).split())[:120] + where


class _Reader:
    """Builds the document from parser events, refusing what a stack file must not hold."""

    def __init__(self, events: Iterator[yaml.Event]):
        self._events = events

    def _next(self) -> yaml.Event:
        return next(self._events)

    def document(self) -> Any:
        self._next()  # StreamStartEvent
        event = self._next()
        if isinstance(event, yaml.StreamEndEvent):
            return None
        value = self._node(self._next(), ())
        self._next()  # DocumentEndEvent
        if not isinstance(self._next(), yaml.StreamEndEvent):
            raise _ReadError((), "holds more than one YAML document")
        return value

    def _node(self, event: yaml.Event, path: tuple[Any, ...]) -> Any:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _ReadError(path, "YAML anchors and aliases are not supported in stack files")
        if (tag := getattr(event, "tag", None)) not in (None, "!"):
            raise _ReadError(path, f"YAML tags ({tag}) are not supported in stack files; quote the value instead")
        if isinstance(event, yaml.ScalarEvent):
            return event.value if event.style else _resolve(event.value, path)
        level = len(path) - 1 if path[:1] == ("config",) else len(path) + 1
        if level > MAX_DEPTH:
            raise _ReadError(path[:2], f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[Any] = []
            while not isinstance(event := self._next(), yaml.SequenceEndEvent):
                items.append(self._node(event, (*path, len(items))))
            return items
        mapping: dict[str, Any] = {}
        while not isinstance(event := self._next(), yaml.MappingEndEvent):
            key = self._key(event, path)
            if key in mapping:
                raise _ReadError((*path, key), "listed twice in the same mapping (Pulumi refuses duplicate keys)")
            mapping[key] = self._node(self._next(), (*path, key))
        return mapping

    @staticmethod
    def _key(event: yaml.Event, path: tuple[Any, ...]) -> str:
        if not isinstance(event, yaml.ScalarEvent) or event.anchor or event.tag not in (None, "!"):
            raise _ReadError(path, "every key must be plain text")
        if not event.style and event.value == "<<":
            raise _ReadError(path, "YAML merge keys (<<) are not supported in stack files")
        if not event.style and not isinstance(_resolve(event.value, path), str):
            raise _ReadError(path, f"key {_short_repr(event.value)} is not text; quote it")
        return event.value


def _resolve(text: str, path: tuple[Any, ...]) -> Any:
    """A plain scalar as yaml.v3's resolve() reads it."""
    if text in _CONSTANTS:
        value = _CONSTANTS[text]
        if isinstance(value, float) and not math.isfinite(value):
            raise _ReadError(path, f"{text} is not a value Pulumi can pass to a program")
        return value
    first = text[:1]
    if first == ".":
        return float(text) if _DOT_FLOAT.fullmatch(text) else text
    if not (first.isascii() and (first.isdigit() or first in "+-")):
        return text
    if (stamp := _timestamp(text)) is not None:
        return stamp
    plain = text.replace("_", "")
    if _INT.fullmatch(plain):
        digits = plain.lstrip("+-")
        # Go's base prefixes (0x, 0o, 0b); a leading 0 alone means octal, as in YAML 1.1.
        number = int(digits, 8) if _OCTAL.fullmatch(digits) else int(digits, 0)
        number = -number if plain[0] == "-" else number
        # int64, then (without a sign) uint64; beyond both yaml.v3 reads a float.
        if -(2**63) <= number < 2**63 or (plain[0] not in "+-" and number < 2**64):
            return number
    if _FLOAT.fullmatch(plain):
        real = float(plain)
        if math.isfinite(real):
            return real
    return text


def _timestamp(text: str) -> GoTime | None:
    match = _TIMESTAMP.fullmatch(text)
    if not match or (match["sp"] and match["z"]) or (match["t"] and not match["z"]):
        return None
    year, month, day = int(match["y"]), int(match["mo"]), int(match["d"])
    hour, minute, second = (int(match[k] or 0) for k in ("h", "mi", "s"))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60 and second < 60):
        return None
    fraction = (match["f"] or "").rstrip("0")
    zone = match["z"] or "Z"
    offset = "+0000 UTC" if zone in ("Z", "+00:00", "-00:00") else f"{zone[:3]}{zone[4:]} {zone[:3]}{zone[4:]}"
    return GoTime(
        f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}{'.' + fraction if fraction else ''} {offset}"
    )


class GoTime(str):
    """An unquoted date or time, as the text Pulumi makes of it (Go's time.Time.String(); an
    offset other than UTC prints as a zone of its own unless it is the local zone of whoever runs
    Pulumi, which no offline reader can know)."""


def go_float_text(number: float) -> str:
    """How Go's encoding/json writes a float64: the shortest digits that read back the same, in
    fixed notation from 1e-6 up to 1e21 (`2` for 2.0), else as `1e+21` or `1.5e-7`."""
    if number == 0 or 1e-6 <= abs(number) < 1e21:
        text = format(Decimal(repr(number)), "f")  # repr: Python's shortest round-trip digits too
        return text.rstrip("0").rstrip(".") if "." in text else text
    return re.sub(r"e-0([0-9])$", r"e-\1", repr(number))


def _engine_value(value: Any, path: tuple[str | int, ...], secret_paths: set[tuple[str | int, ...]]) -> Any:
    """A nested value after Pulumi's JSON round trip: integral floats become integers, secure
    values placeholders, dates Go's text."""
    if isinstance(value, dict):
        if set(value) == {"secure"} and isinstance(value["secure"], str):
            secret_paths.add(path)
            return SECRET_PLACEHOLDER
        return {k: _engine_value(v, (*path, k), secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_engine_value(v, (*path, i), secret_paths) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, GoTime):
        return str(value)
    return value


def engine_text(value: Any, path: tuple[str | int, ...], secret_paths: set[tuple[str | int, ...]]) -> str:
    """The text the engine passes for one top-level key (config/plaintext.go `marshalText`)."""
    if isinstance(value, float):
        return go_float_text(value)
    value = _engine_value(value, path, secret_paths)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
