"""`make load`: L1 memory through the orchestrator, against the floor of raw Redis, with CPU.

The staging stack is rendered and run here exactly as the end-to-end suite runs it (e2e/stack.py:
its Deployments' environment, one worker per CPU of the limit, tracing on, Redis with the rendered
redis.conf). Then, in one run:

1. the floor: `GET` of an L1 entry with redis-py straight to that Redis, one at a time;
2. Locust, headless, bounded in users and time (loadtests/locustfile.py): L1 reads at 50 per second
   (Poisson arrivals), the same reads in bursts (all users at once), L1 writes and reads as fast as
   answered, and a mixed scenario, each through the orchestrator (`/api/memory/{key}` -> memory
   service -> Redis);
3. meanwhile, the CPU time of the orchestrator's and the memory service's process trees (gunicorn and
   its workers): per request, and the orchestrator's against the CPU its container requests, next to
   its autoscaler's target; and how long their threads waited for a CPU (the machine is shared: the
   table says how much other work ran). Below saturation a request costs its CPU time and its waits;
   a burst of n requests on one worker costs each of them up to n times that.

It prints a Markdown table and writes build/load/results.md and results.json. A benchmark: it fails
only when requests fail, never on a time.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil
from redis import Redis

from e2e.stack import PROJECT, LocalStack, Rendered, TestSecrets, render_stack, wait_until
from loadtests.entries import KEYS, VALUE
from stacks.quantities import parse_quantity

STACK = "sophia-ai-staging"
L1_TARGET_MS = 50.0  # ADR-001
# (scenario, Locust user class, users)
SCENARIOS = [
    ("L1 read, 50/s (Poisson arrivals)", "L1ReadRate", 10),
    ("L1 read, bursts (10 at once, 5 times a second)", "L1ReadBurst", 10),
    ("L1 write", "L1Write", 10),
    ("L1 read", "L1Read", 10),
    ("mixed (70% read, 25% write, 5% delete)", "Mixed", 20),
]
RUN_SECONDS = int(os.environ.get("LOAD_SECONDS", "15"))
# CPU is averaged after the users have started and before they stop.
WARM_UP_SECONDS = 3.0
FLOOR_SAMPLES = 5000
OUT = PROJECT / "build/load"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (sorted)."""
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


@dataclass
class Result:
    scenario: str
    users: int
    requests: int
    failures: int
    throughput: float  # requests per second
    p50: float  # milliseconds
    p95: float
    p99: float
    cpu: float | None = None  # orchestrator CPU, fraction of its request
    cpu_peak: float | None = None
    memory_cpu: float | None = None  # the memory service's, fraction of its request
    # CPU time per request (milliseconds), of the orchestrator's and the memory service's processes,
    # and time their threads waited for a CPU, per request.
    orchestrator_cpu_ms: float | None = None
    memory_cpu_ms: float | None = None
    orchestrator_wait_ms: float | None = None
    memory_wait_ms: float | None = None
    # CPUs used by other work on the host meanwhile (other processes than this run's).
    other_cpus: float | None = None


def latencies(times: list[float]) -> tuple[float, float, float]:
    ordered = sorted(times)
    return percentile(ordered, 50), percentile(ordered, 95), percentile(ordered, 99)


def floor(redis: Redis) -> Result:
    """redis-py GET of one L1 entry, one at a time: what no request through the services can beat."""
    redis.set("l1:load-floor", VALUE)
    for _ in range(200):
        redis.get("l1:load-floor")
    times = []
    started = time.perf_counter()
    for _ in range(FLOOR_SAMPLES):
        start = time.perf_counter()
        redis.get("l1:load-floor")
        times.append((time.perf_counter() - start) * 1000)
    elapsed = time.perf_counter() - started
    return Result("Redis GET, redis-py (the floor)", 1, FLOOR_SAMPLES, 0, FLOOR_SAMPLES / elapsed, *latencies(times))


class CpuMeter:
    """Samples, twice a second, the CPU time (user + system) of process trees and how long their
    threads waited for a CPU while ready to run (on a shared machine, part of every latency)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def tree_seconds(pid: int) -> float:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    @staticmethod
    def tree_waited(pid: int) -> float:
        """Seconds the threads of a process tree spent runnable but not running: the second field
        of Linux's /proc/<pid>/task/<tid>/schedstat (Documentation/scheduler/sched-stats.rst)."""
        root = psutil.Process(pid)
        total = 0
        for process in [root, *root.children(recursive=True)]:
            try:
                tasks = list(Path(f"/proc/{process.pid}/task").iterdir())
            except OSError:
                continue
            for task in tasks:
                try:
                    total += int((task / "schedstat").read_text().split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        return total / 1e9

    @staticmethod
    def host_seconds() -> float:
        """CPU time the whole host spent busy (every process, this run's and others')."""
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = {name: self.tree_seconds(pid) for name, pid in self.pids.items()}
            sample |= {f"{name} waited": self.tree_waited(pid) for name, pid in self.pids.items()}
            sample["host"] = self.host_seconds()
            sample["this run"] = self.tree_seconds(os.getpid())
            self.samples.append((time.monotonic(), sample))
            self._stop.wait(0.5)

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def usage(self, name: str, start: float, end: float) -> tuple[float, float]:
        """(mean, highest 2-second) CPUs used by `name` between `start` and `end`."""
        window = [(t, s[name]) for t, s in self.samples if start <= t <= end]
        if len(window) < 2:
            return math.nan, math.nan
        mean = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        peaks = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(window, window[4:], strict=False)]
        return mean, max(peaks, default=mean)


def aggregated_throughput(csv_prefix: Path) -> float:
    with open(f"{csv_prefix}_stats.csv", encoding="utf-8") as stats:
        for row in csv.DictReader(stats):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"])
    raise AssertionError(f"no Aggregated row in {csv_prefix}_stats.csv")


def run_scenario(local: LocalStack, scenario: str, user_class: str, users: int, requests: dict[str, float]) -> Result:
    samples = OUT / f"{user_class}.samples.json"
    prefix = OUT / user_class
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(PROJECT / "loadtests/locustfile.py"),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{RUN_SECONDS}s",
        "--stop-timeout",
        "5",
        "--host",
        local.services["orchestrator"].url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        user_class,
    ]
    env = dict(os.environ) | {"LOAD_SAMPLES": str(samples)}
    pids = {name: local.services[name].process.popen.pid for name in requests}
    with CpuMeter(pids) as meter:
        started = time.monotonic()
        locust = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
        ended = time.monotonic()
    if not samples.exists():
        raise AssertionError(f"locust wrote no samples ({locust.returncode}): {locust.stderr[-3000:]}")
    recorded = json.loads(samples.read_text())
    times = [elapsed for _, elapsed, ok in recorded if ok]
    failures = sum(1 for _, _, ok in recorded if not ok)
    window = (started + WARM_UP_SECONDS, min(ended, started + RUN_SECONDS))
    cpu, cpu_peak = meter.usage("orchestrator", *window)
    memory_cpu, _ = meter.usage("memory", *window)
    host, _ = meter.usage("host", *window)
    ours, _ = meter.usage("this run", *window)
    waited = {name: meter.usage(f"{name} waited", *window)[0] for name in requests}
    throughput = aggregated_throughput(prefix)
    return Result(
        scenario,
        users,
        len(times),
        failures,
        throughput,
        *latencies(times),
        cpu=cpu / requests["orchestrator"],
        cpu_peak=cpu_peak / requests["orchestrator"],
        memory_cpu=memory_cpu / requests["memory"],
        orchestrator_cpu_ms=1000 * cpu / throughput,
        memory_cpu_ms=1000 * memory_cpu / throughput,
        orchestrator_wait_ms=1000 * waited["orchestrator"] / throughput,
        memory_wait_ms=1000 * waited["memory"] / throughput,
        other_cpus=max(0.0, host - ours),
    )


def table(results: list[Result], base: Result, target: int, cpu_request: str) -> str:
    lines = [
        f"| scenario | users | requests | req/s | p50 ms | p95 ms | p99 ms | p99 vs L1 target ({L1_TARGET_MS:.0f} ms)"
        f" | p50 vs Redis GET p50 | CPU ms per request (orchestrator + memory)"
        f" | waited for a CPU, ms per request (orchestrator + memory)"
        f" | orchestrator CPU vs request ({cpu_request}; HPA target {target}%) | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {base.scenario} | 1 | {base.requests} | {base.throughput:.0f} | {base.p50:.3f} | {base.p95:.3f} | {base.p99:.3f}"
        f" | {base.p99 / L1_TARGET_MS:.3f}x | 1x | | | | 0 |",
    ]
    for r in results:
        cpu = "" if r.cpu is None else f"{r.cpu:.0%} (2 s peak {r.cpu_peak:.0%})"
        per_request = "" if r.orchestrator_cpu_ms is None else f"{r.orchestrator_cpu_ms:.1f} + {r.memory_cpu_ms:.1f}"
        waited = "" if r.orchestrator_wait_ms is None else f"{r.orchestrator_wait_ms:.1f} + {r.memory_wait_ms:.1f}"
        lines.append(
            f"| {r.scenario} | {r.users} | {r.requests} | {r.throughput:.0f} | {r.p50:.2f} | {r.p95:.2f} | {r.p99:.2f}"
            f" | {r.p99 / L1_TARGET_MS:.2f}x | {r.p50 / base.p50:.0f}x | {per_request} | {waited} | {cpu} | {r.failures} |"
        )
    return "\n".join(lines) + "\n"


def cpu_request(rendered: Rendered, name: str) -> str:
    return rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def main() -> int:
    load_before = os.getloadavg()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    values = TestSecrets.generate()
    rendered = render_stack(STACK, OUT / "plan", values)
    cpu_requests = {name: cpu_request(rendered, name) for name in ("orchestrator", "memory")}
    requests = {name: float(parse_quantity(cpu)) for name, cpu in cpu_requests.items()}
    hpa = rendered.get("HorizontalPodAutoscaler", "orchestrator")
    target = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
    with LocalStack(rendered, OUT / "stack", values) as local:
        for name in ("orchestrator", "memory"):
            url = f"{local.services[name].url}/ready"
            wait_until(lambda url=url: httpx.get(url, timeout=5).status_code == 200, 30, f"{name} ready")
        redis_port = local.addresses[("redis", rendered.get("Service", "redis")["spec"]["ports"][0]["port"])]
        redis = Redis(host="127.0.0.1", port=redis_port, password=values.redis_password, decode_responses=True)
        with redis.pipeline(transaction=False) as pipe:
            for index in range(KEYS):
                pipe.set(f"l1:load-{index}", VALUE, ex=3600)
            pipe.execute()
        base = floor(redis)
        print(f"{STACK} run here; workers per service: {local.services['orchestrator'].env['WEB_CONCURRENCY']}", flush=True)
        results = []
        for scenario, user_class, users in SCENARIOS:
            print(f"running {scenario}: {users} users for {RUN_SECONDS} s", flush=True)
            results.append(run_scenario(local, scenario, user_class, users, requests))
        redis.close()
        codes = local.stop()
    text = table(results, base, target, cpu_requests["orchestrator"])
    others = ", ".join(f"{r.other_cpus:.2f}" for r in results)
    text += (
        f"\nHost: {psutil.cpu_count()} CPUs; CPUs used by other work during each scenario: {others};"
        f" load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}.\n"
    )
    (OUT / "results.md").write_text(text, encoding="utf-8")
    report = {
        "stack": STACK,
        "seconds": RUN_SECONDS,
        "cpus": psutil.cpu_count(),
        "load_average_before": load_before,
        "floor": asdict(base),
        "scenarios": [asdict(r) for r in results],
    }
    (OUT / "results.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(text)
    failed = sum(r.failures for r in results)
    if failed or any(codes.values()):
        print(f"failed requests: {failed}; exit codes on SIGTERM: {codes}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
