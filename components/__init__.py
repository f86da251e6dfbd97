"""Reusable Pulumi component resources of the Sophia AI infrastructure.

Conventions: `Name(name, args, opts=None)` with type token `sophia:index:Name`, args a dataclass of
inputs, children named `f"{name}-part"` with `parent=self`, providers passed in by the caller's
options (inherited from the parent), one `register_outputs` at the end.
"""
