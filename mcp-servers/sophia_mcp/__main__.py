"""`python -m sophia_mcp [SERVER]`: serve the MCP server SERVER (default: $SERVICE, which the
image sets from its SERVICE build argument) on $PORT with $WEB_CONCURRENCY worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

import uvicorn

from sophia_mcp import servers, telemetry
from sophia_mcp.settings import PlatformSettings

# Under the pod's grace period (30 s): in-flight requests get this long to finish on SIGTERM.
GRACEFUL_SHUTDOWN_SECONDS = 25


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    name = argv[0] if argv else os.environ.get("SERVICE", "")
    if not servers.NAME.match(name) or name not in servers.available():
        print(f"unknown MCP server {name!r}; this image holds: {', '.join(servers.available())}", file=sys.stderr)
        return 2
    settings = PlatformSettings()
    os.environ["SERVICE"] = name
    # prometheus_client's multiprocess mode: every worker writes its metrics under this directory
    # (in /tmp, the only writable path), the supervising process sums them on METRICS_PORT.
    metrics_dir = tempfile.mkdtemp(prefix="sophia-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # uvicorn drains on SIGTERM, then raises the signal again for the handler it found: this one
    # makes that a clean exit (0), as the platform contract asks, instead of death by signal.
    signal.signal(signal.SIGTERM, _stopped)
    try:
        if settings.metrics_port is not None:
            telemetry.serve_metrics(settings.metrics_port)
        uvicorn.run(
            "sophia_mcp.app:from_environment",
            factory=True,
            host="0.0.0.0",  # noqa: S104 - inside a container
            port=settings.port,
            workers=settings.web_concurrency,
            log_config=telemetry.log_config(name),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            proxy_headers=False,
            server_header=False,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
