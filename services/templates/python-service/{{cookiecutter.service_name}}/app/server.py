"""`python -m app`, the container's command: gunicorn with WEB_CONCURRENCY uvicorn workers on $PORT,
Prometheus metrics of all workers on $METRICS_PORT, a clean stop on SIGTERM.

- Workers: one per CPU of the container's limit (the Deployment sets WEB_CONCURRENCY from it), so the
  service can use the CPU it requests and its autoscaler's CPU target can be reached.
- Metrics: prometheus_client's multiprocess mode. Workers write their samples to files under
  PROMETHEUS_MULTIPROC_DIR (a fresh directory under /tmp, the pod's only writable path, set here
  before anything imports prometheus_client, so the forked workers inherit it); the master serves
  their sum on its own listener and forgets a worker's live gauges when it exits (`child_exit`, as
  prometheus_client's documentation prescribes for gunicorn).
- SIGTERM: gunicorn stops accepting, lets the workers finish what is in flight for up to
  GRACEFUL_TIMEOUT (under the pod's 30 s grace period) and exits 0.
- Garbage collection: a worker freezes what it imported (`gc.freeze`), so that the collector's full
  passes walk only what requests allocate. The libraries (FastAPI, pydantic, OpenTelemetry, and
  redis-py and the Snowflake connector where used) leave some 130,000 tracked objects: a full pass
  over them stopped the memory service's and the orchestrator's workers for about 100 ms, every few
  thousand requests, on the 2-CPU machine where `make load` runs (after freezing: under 10 ms).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from app import logs
from app.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRACEFUL_TIMEOUT = 25


def metrics_directory() -> str:
    """An empty directory for the workers' metric files: the one configured (emptied), or a new one."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    else:
        path = tempfile.mkdtemp(prefix="prometheus-")
    os.environ[MULTIPROC_ENV] = path
    return path


def serve_metrics(port: int) -> None:
    """The metrics listener, in the master: the sum of every worker's files, read per scrape."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, addr="0.0.0.0", registry=registry)  # noqa: S104 - inside a container


def forget_worker(_server: Any, worker: Any) -> None:
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)


class Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics_dir = metrics_directory()
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings

        def when_ready(_server: Any) -> None:
            if settings.metrics_port is not None:
                serve_metrics(settings.metrics_port)

        def on_exit(_server: Any) -> None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

        options = {
            "bind": [f"0.0.0.0:{settings.port}"],
            "workers": settings.web_concurrency,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "keepalive": 5,
            "accesslog": None,
            "logconfig_dict": logs.config(settings.service_name),
            # gunicorn's control socket would go under $HOME, which is read-only in the pod.
            "control_socket_disable": True,
            "proc_name": f"sophia-{settings.service_name}",
            "when_ready": when_ready,
            "child_exit": forget_worker,
            "on_exit": on_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported in each worker after the fork: clients, threads and tracing are per worker.
        from app.main import app

        freeze_imported_objects()
        return app


def freeze_imported_objects() -> None:
    """Move every object alive now (modules, classes, the app) to the collector's permanent
    generation, after collecting the garbage of the imports so that none of it is kept for good.
    CPython's documentation of gc.freeze: https://docs.python.org/3/library/gc.html#gc.freeze"""
    gc.collect()
    gc.freeze()


def main() -> None:
    Server(Settings()).run()
