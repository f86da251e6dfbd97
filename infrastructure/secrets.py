"""Configured secrets enter the program as Pulumi secret outputs, never as plain strings."""

from __future__ import annotations

from typing import overload

import pulumi
from pydantic import SecretStr


@overload
def secret_output(value: SecretStr) -> pulumi.Output[str]: ...
@overload
def secret_output(value: SecretStr | None) -> pulumi.Output[str] | None: ...
def secret_output(value: SecretStr | None) -> pulumi.Output[str] | None:
    return None if value is None else pulumi.Output.secret(value.get_secret_value())
