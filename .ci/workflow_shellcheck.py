"""Runs shellcheck over every `run:` block of the GitHub workflows given as arguments.

GitHub runs them with `bash -e {0}`; `${{ ... }}` expressions (which actionlint checks) are
replaced by a plain word so that shellcheck sees the shell around them. Exit 1 on findings.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def run_blocks(path: Path) -> list[tuple[str, str]]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    blocks = []
    for job_name, job in (workflow.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps") or [], start=1):
            if "run" in step:
                blocks.append((f"{path}: job {job_name}, step {index} ({step.get('name', 'unnamed')})", step["run"]))
    return blocks


def main(paths: list[str]) -> int:
    failed = checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in map(Path, paths):
            for where, script in run_blocks(path):
                checked += 1
                target = Path(tmp) / "run.sh"
                target.write_text("#!/usr/bin/env bash\nset -e\n" + EXPRESSION.sub("GHA_EXPRESSION", script), encoding="utf-8")
                result = subprocess.run(["shellcheck", "--shell=bash", str(target)], capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    failed += 1
                    print(f"{where}:\n{result.stdout}")
    print(f"workflow shellcheck: {checked} run blocks, {failed} with findings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
