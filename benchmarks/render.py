"""How long the offline plan takes, next to how long importing the Pulumi SDKs takes.

Budgets: a stack renders (program under mocks + schema validation) in at most 2.5x the SDK
import time, and every additional MCP server adds at most 30 ms. Exit 1 when one is exceeded.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sophia_infra import render
from stacks import loader

PROJECT = Path(__file__).resolve().parent.parent
STACKS = ["sophia-ai-dev", "sophia-ai-staging", "sophia-ai-production"]
SDKS = "pulumi, pulumi_kubernetes, pulumi_command, pulumi_docker, pulumi_random, kubernetes_validate"
RENDER_BUDGET = 2.5
# What an added MCP server may cost, as a fraction of the same run's import time (the floor): a
# budget in milliseconds would pass or fail with the machine's speed, not the program's.
PER_MCP_BUDGET = 0.1
ROUNDS = 5


def median_seconds(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def import_seconds() -> float:
    """Median time a fresh interpreter takes to import the SDKs the program uses."""
    code = f"import time; t = time.perf_counter(); import {SDKS}; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(ROUNDS)
    ]
    return statistics.median(runs)


def render_seconds(stack: str, loaded: loader.LoadedConfig) -> float:
    def once() -> None:
        plan = render.plan(stack, loaded)
        problems = render.validate(plan)
        assert not problems, problems

    once()  # warm: schema files and modules loaded once, as in a long render of all stacks
    return median_seconds(once)


def with_mcp_servers(count: int) -> loader.LoadedConfig:
    raw = loader.read_stack_file(PROJECT / "Pulumi.sophia-ai-dev.yaml")
    servers = ["ai_memory", "hubspot", "gong", "slack"] + [f"server_{i}" for i in range(count - 4)]
    return loader.validate(
        loader.RawConfig(raw.source, {**raw.values, "sophia-ai:mcpServers": servers}, raw.secret_paths, offline=True)
    )


def main() -> int:
    imports = import_seconds()
    print(f"SDK import time: {imports * 1000:.0f} ms (median of {ROUNDS} fresh interpreters)")
    failed = False
    for stack in STACKS:
        seconds = render_seconds(stack, loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml"))
        ratio = seconds / imports
        failed |= ratio > RENDER_BUDGET
        print(f"{stack}: render {seconds * 1000:.0f} ms = {ratio:.2f}x import (budget {RENDER_BUDGET}x)")
    four, thirty_one = (render_seconds("sophia-ai-dev", with_mcp_servers(n)) for n in (4, 31))
    per_server = (thirty_one - four) / 27
    failed |= per_server / imports > PER_MCP_BUDGET
    print(
        f"MCP servers 4 -> 31: {four * 1000:.0f} ms -> {thirty_one * 1000:.0f} ms,"
        f" {per_server * 1000:.1f} ms = {per_server / imports:.3f}x import per added server (budget {PER_MCP_BUDGET}x),"
        f" {thirty_one / four:.2f}x for {31 / 4:.2f}x the servers"
    )
    print("over budget" if failed else "within budget")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
