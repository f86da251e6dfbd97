"""Run the end-to-end suite against a deployed stack: port-forward every Service of its namespace to
this machine, then run a command (`make e2e`) with the suite's variables pointing at them.

    python -m e2e.forward --stack sophia-ai-ci --namespace sophia-dev [--kubectl 'k3s kubectl'] -- make e2e

Each Service with a port named `http` becomes an entry of E2E_SERVICE_URLS under its name (the
catalog's names: `orchestrator`, `mcp-gong`, ...); Redis becomes E2E_REDIS_URL, with the password
its clients get (the orchestrator's REDIS_PASSWORD, read from the Secret it references) in
E2E_REDIS_PASSWORD, passed to the command's environment only and never printed. `kubectl
port-forward` reaches a pod through the kubelet, not the pod network, so the namespace's
NetworkPolicies do not stand in the way. The forwards stop when the command ends; its exit code is
this one's."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from e2e.stack import LOOPBACK, free_port

READY_TIMEOUT = 60.0
# The Deployment whose Redis credentials the suite borrows (every Redis user gets the same Secret).
REDIS_CLIENT = "orchestrator"


class ForwardError(Exception):
    pass


class Cluster:
    def __init__(self, kubectl: Sequence[str], namespace: str) -> None:
        self.kubectl = [*kubectl, "--namespace", namespace]
        self.forwards: list[subprocess.Popen[bytes]] = []

    def get(self, *what: str) -> Any:
        run = subprocess.run([*self.kubectl, "get", *what, "--output", "json"], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise ForwardError(f"kubectl get {' '.join(what)} failed: {run.stderr.strip()}")
        return json.loads(run.stdout)

    def forward(self, service: str, port: int) -> str:
        """Forward a free local port to `service`:`port`; its address once it accepts connections."""
        local = free_port()
        process = subprocess.Popen(
            [*self.kubectl, "port-forward", f"service/{service}", f"{local}:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.forwards.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
                raise ForwardError(f"kubectl port-forward service/{service} exited: {error}")
            with socket.socket() as sock:
                if sock.connect_ex((LOOPBACK, local)) == 0:
                    return f"{LOOPBACK}:{local}"
            time.sleep(0.2)
        raise ForwardError(f"kubectl port-forward service/{service} did not listen within {READY_TIMEOUT:.0f} s")

    def redis_password(self) -> str:
        deployment = self.get("deployment", REDIS_CLIENT)
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", []):
                reference = item.get("valueFrom", {}).get("secretKeyRef")
                if item["name"] == "REDIS_PASSWORD" and reference:
                    secret = self.get("secret", reference["name"])
                    return base64.b64decode(secret["data"][reference["key"]]).decode()
        raise ForwardError(f"deployment/{REDIS_CLIENT} has no REDIS_PASSWORD from a Secret")

    def stop(self) -> None:
        for process in self.forwards:
            process.terminate()
        for process in self.forwards:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def suite_environment(cluster: Cluster, stack: str) -> dict[str, str]:
    urls: dict[str, str] = {}
    env = {"E2E_STACKS": stack}
    for service in cluster.get("services")["items"]:
        name = service["metadata"]["name"]
        ports = {port.get("name"): port["port"] for port in service["spec"]["ports"]}
        if "http" in ports:
            urls[name] = f"http://{cluster.forward(name, ports['http'])}"
        elif name == "redis":
            env["E2E_REDIS_URL"] = f"redis://{cluster.forward(name, ports['redis'])}/0"
            env["E2E_REDIS_PASSWORD"] = cluster.redis_password()
    if not urls:
        raise ForwardError("the namespace has no Service with a port named http")
    env["E2E_SERVICE_URLS"] = json.dumps(urls, sort_keys=True)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.forward", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the deployed stack (its rendering is what the suite expects)")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl command, e.g. 'k3s kubectl' (default: kubectl)")
    parser.add_argument("command", nargs="+", help="what to run with the suite's variables, after --")
    args = parser.parse_args(argv)
    cluster = Cluster(shlex.split(args.kubectl), args.namespace)
    try:
        env = suite_environment(cluster, args.stack)
        shown = {key: value for key, value in env.items() if key != "E2E_REDIS_PASSWORD"}
        print(f"e2e.forward: {json.dumps(shown, sort_keys=True)}", flush=True)
        return subprocess.run(args.command, env=os.environ | env, check=False).returncode
    except ForwardError as error:
        print(f"e2e.forward: {error}", file=sys.stderr)
        return 2
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
