"""Locust users for `make load` (loadtests/__main__.py runs them headless against the orchestrator).

Each user but the paced one sends its next request as soon as the last one is answered, so a
scenario measures what the stack sustains with that many clients in flight. Every request's time is also written, unrounded,
to $LOAD_SAMPLES when Locust quits (its own percentiles round to whole milliseconds)."""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, events, task

from loadtests.entries import KEYS, TTL_SECONDS, VALUE

samples: list[tuple[str, float, bool]] = []


@events.request.add_listener
def record(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
    samples.append((name, response_time, exception is None))


@events.quitting.add_listener
def write_samples(**_: Any) -> None:
    path = os.environ.get("LOAD_SAMPLES")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(samples, out)


def read_key() -> str:
    return f"load-{random.randrange(KEYS)}"  # noqa: S311 - a load pattern, not a secret


class L1Write(FastHttpUser):
    """Writes new entries (PUT /api/memory/{key}) through the orchestrator."""

    wait_time = constant(0)

    @task
    def write(self) -> None:
        key = f"load-w-{uuid.uuid4().hex[:12]}"
        self.client.put(f"/api/memory/{key}", json={"value": VALUE, "ttl_seconds": TTL_SECONDS}, name="PUT /api/memory/{key}")


class L1Read(FastHttpUser):
    """Reads existing entries (GET /api/memory/{key})."""

    wait_time = constant(0)

    @task
    def read(self) -> None:
        self.client.get(f"/api/memory/{read_key()}", name="GET /api/memory/{key}")


class L1ReadPaced(L1Read):
    """Reads at 5 per second per user: latency below saturation, where ADR-001's target applies."""

    wait_time = constant_throughput(5)


class Mixed(FastHttpUser):
    """Mostly reads, some writes, a few deletes of its own entries: a conversation's working set."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.written: list[str] = []

    @task(14)
    def read(self) -> None:
        self.client.get(f"/api/memory/{read_key()}", name="GET /api/memory/{key}")

    @task(5)
    def write(self) -> None:
        key = f"load-m-{uuid.uuid4().hex[:12]}"
        self.client.put(f"/api/memory/{key}", json={"value": VALUE, "ttl_seconds": TTL_SECONDS}, name="PUT /api/memory/{key}")
        self.written.append(key)

    @task(1)
    def forget(self) -> None:
        if self.written:
            self.client.delete(f"/api/memory/{self.written.pop()}", name="DELETE /api/memory/{key}")
