"""Renders Helm charts offline with helm-python-sdk (the Helm SDK as a native library).

Runs in its own virtualenv (`.venv-helm`, made by `make plan`): the wheel is 75 MB, and neither
`pulumi up` nor the preview jobs need it. Standard library and helm_python only; it reads a JSON
list of {chart, values, name, namespace} on stdin and writes a JSON list of {templates} or
{error} on stdout, one entry per chart, in order.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    import helm_python as helm

    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        try:
            with helm.Chart.load(job["chart"]) as chart:
                templates = chart.render(job["values"], name=job["name"], namespace=job["namespace"], is_install=True)
            results.append({"templates": templates})
        except helm.HelmError as exc:
            results.append({"error": str(exc)})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
