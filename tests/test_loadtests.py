"""make load's workload (loadtests/locustfile.py), run by Locust as `make load` runs it, against a
server that notes when each request arrives: the users of the rate scenario request at independent
times, those of the burst scenario all at once (what the first "paced" scenario did unawares)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import PROJECT

USERS = 10
RATE = 5.0  # per user, as both scenarios request
SECONDS = 4
# Two requests "coincide" when they arrive this close: a Poisson process of 50/s puts a neighbour
# that close to some 18% of its arrivals (2 x (1 - e^(-50 x 0.002))); users in lock-step, to all.
COINCIDENT = 0.002


class Arrivals(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.times: list[float] = []
        super().__init__(("127.0.0.1", 0), Answer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the orchestrator answers

    def do_GET(self) -> None:
        self.server.times.append(time.monotonic())  # type: ignore[attr-defined]
        key = self.path.rsplit("/", 1)[-1]
        body = json.dumps({"key": key, "value": "v"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def arrivals() -> Iterator[dict[str, Arrivals]]:
    servers = {name: Arrivals() for name in ("L1ReadRate", "L1ReadBurst")}
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers.values():
        server.shutdown()
        server.server_close()


def locust(user_class: str, host: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--headless", "--users", str(USERS)]
    command += ["--spawn-rate", str(USERS), "--run-time", f"{SECONDS}s", "--host", host, "--only-summary", user_class]
    return subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def coinciding(times: list[float]) -> float:
    """The share of arrivals with another one within COINCIDENT seconds."""
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    near = [
        (index > 0 and gaps[index - 1] < COINCIDENT) or (index < len(gaps) and gaps[index] < COINCIDENT)
        for index in range(len(ordered))
    ]
    return sum(near) / len(near)


def test_the_rate_scenario_requests_at_independent_times_and_the_burst_one_at_once(arrivals):
    runs = {name: locust(name, server.url) for name, server in arrivals.items()}
    for name, run in runs.items():
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 0, f"{name}: {output[-3000:]}"
    rate, burst = arrivals["L1ReadRate"].times, arrivals["L1ReadBurst"].times
    for times in (rate, burst):
        per_second = (len(times) - 1) / (max(times) - min(times))
        assert 0.6 * USERS * RATE < per_second < 1.4 * USERS * RATE, per_second
    assert coinciding(rate) < 0.4, f"{coinciding(rate):.0%} of the rate scenario's requests arrive together"
    assert coinciding(burst) > 0.8, f"only {coinciding(burst):.0%} of the burst scenario's requests arrive together"
