"""The Helm charts vendored in `charts/` (what the plan renders is what `pulumi up` installs).

Paths are absolute, resolved from this file: under `pulumi up` the program's working directory is
`infrastructure/`, offline it is wherever `sophia-infra` runs.
"""

from __future__ import annotations

from pathlib import Path

CHARTS_DIR = Path(__file__).resolve().parent.parent / "charts"


def chart_path(name: str) -> str:
    """The directory of the vendored chart `name`; a missing one is an error before any resource."""
    path = CHARTS_DIR / name
    if not (path / "Chart.yaml").is_file():
        raise FileNotFoundError(f"{path}: no vendored chart {name!r} (see charts/*.provenance.yaml)")
    return str(path)
