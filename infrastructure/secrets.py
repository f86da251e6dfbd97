"""Configured secrets enter the program as Pulumi secret outputs, never as plain strings."""

from __future__ import annotations

import pulumi
from pydantic import SecretStr


def secret_output(value: SecretStr | None) -> pulumi.Output[str] | None:
    return None if value is None else pulumi.Output.secret(value.get_secret_value())
