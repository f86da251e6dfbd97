"""e2e/forward.py, the bridge from a deployed stack to the end-to-end suite, run with a stub kubectl
that answers like the API server and listens where `kubectl port-forward` would."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

PASSWORD = "s3cret-redis-password-for-the-test"
SERVICES = {
    "items": [
        {"metadata": {"name": name}, "spec": {"ports": ports}}
        for name, ports in [
            ("orchestrator", [{"name": "http", "port": 8000}]),
            ("memory", [{"name": "http", "port": 8001}]),
            ("mcp-gong", [{"name": "http", "port": 8080}]),
            ("redis", [{"name": "redis", "port": 6379}]),
            ("otel-collector", [{"name": "otlp-grpc", "port": 4317}]),
        ]
    ]
}
DEPLOYMENT = {
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "env": [
                            {"name": "REDIS_URL", "value": "redis://redis.sophia-dev.svc:6379/0"},
                            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}},
                        ]
                    }
                ]
            }
        }
    }
}
SECRET = {"data": {"password": base64.b64encode(PASSWORD.encode()).decode()}}

# The stub: `get services|deployment orchestrator|secret redis` print JSON; `port-forward
# service/NAME LOCAL:REMOTE` records itself and listens on LOCAL until terminated, unless NAME is in
# $BROKEN, where it fails as kubectl does when a Service has no running pod.
STUB = f"""#!{sys.executable}
import json, os, socket, sys, time
args = sys.argv[1:]
answers = {{"services": {json.dumps(SERVICES)!r}, "deployment": {json.dumps(DEPLOYMENT)!r}, "secret": {json.dumps(SECRET)!r}}}
assert args[:2] == ["--namespace", "sophia-dev"], args
if args[2] == "get":
    print(answers[args[3]])
elif args[2] == "port-forward":
    service, (local, remote) = args[3], args[4].split(":")
    if service.split("/")[1] in os.environ.get("BROKEN", "").split():
        sys.exit("error: unable to forward port because pod is not running")
    with open(os.environ["FORWARDS"], "a") as log:
        log.write(f"{{service}} {{remote}}\\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", int(local)))
    listener.listen()
    time.sleep(300)
"""


def run(tmp_path: Path, *command: str, broken: str = "") -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    stub = tmp_path / "kubectl"
    stub.write_text(STUB)
    stub.chmod(0o755)
    seen = tmp_path / "env.json"
    dump = (
        f"import json, os; json.dump({{k: v for k, v in os.environ.items() if k.startswith('E2E_')}}, open({str(seen)!r}, 'w'))"
    )
    child = command or (sys.executable, "-c", dump)
    env = os.environ | {"FORWARDS": str(tmp_path / "forwards"), "BROKEN": broken}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "e2e.forward",
            "--stack",
            "sophia-ai-ci",
            "--namespace",
            "sophia-dev",
            "--kubectl",
            str(stub),
            "--",
            *child,
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, json.loads(seen.read_text()) if seen.exists() else {}


def refuses(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_every_http_service_and_redis_reach_the_suite_and_the_password_is_never_printed(tmp_path: Path):
    result, seen = run(tmp_path)
    assert result.returncode == 0, result.stderr
    urls = json.loads(seen["E2E_SERVICE_URLS"])
    assert sorted(urls) == ["mcp-gong", "memory", "orchestrator"]  # the collector serves no http port
    assert seen["E2E_STACKS"] == "sophia-ai-ci"
    assert seen["E2E_REDIS_URL"].startswith("redis://127.0.0.1:") and seen["E2E_REDIS_PASSWORD"] == PASSWORD
    assert PASSWORD not in result.stdout + result.stderr
    forwarded = sorted((tmp_path / "forwards").read_text().split("\n")[:-1])
    assert forwarded == ["service/mcp-gong 8080", "service/memory 8001", "service/orchestrator 8000", "service/redis 6379"]
    # The forwards end with the command.
    addresses = [url.removeprefix("http://") for url in urls.values()] + [seen["E2E_REDIS_URL"][len("redis://") : -len("/0")]]
    assert all(refuses(address) for address in addresses)


def test_the_commands_exit_code_is_its_own(tmp_path: Path):
    result, _ = run(tmp_path, sys.executable, "-c", "raise SystemExit(3)")
    assert result.returncode == 3


def test_a_forward_that_fails_stops_the_run_naming_the_service(tmp_path: Path):
    result, seen = run(tmp_path, broken="memory")
    assert result.returncode == 2 and seen == {}
    assert "kubectl port-forward service/memory exited: error: unable to forward port because pod is not running" in result.stderr
