"""The dashboard as a person sees it: tests/browser/dashboard.mjs loads a URL in headless Chromium
(Debian's, or $CHROMIUM) and prints the service rows, the summary, the L1 latency and any alert."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "tests/browser/dashboard.mjs"


def browse(url: str, screenshot: Path | None = None) -> dict[str, Any]:
    command = ["node", str(SCRIPT), url, *([str(screenshot)] if screenshot else [])]
    run = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=90, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    shown: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return shown
