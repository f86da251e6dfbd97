"""Locust users for `make load` (loadtests/__main__.py runs them headless against the orchestrator).

Three kinds of arrivals:

- open, at a rate (`L1ReadRate`): each user requests at the times of a Poisson process of its own,
  whatever the answers take, so that the users together are a Poisson process of the sum of their
  rates, as independent clients are; a user that falls behind catches up without waiting;
- bursts (`L1ReadBurst`): every user requests at the same instants, 5 times a second, as users of
  Locust's `constant_throughput` do when they start together (it keeps each user's phase: locust's
  user/wait_time.py), which is what the first "paced" scenario measured unawares;
- closed (the others): each user sends its next request as soon as the last one is answered, so a
  scenario measures what the stack sustains with that many clients in flight.

Every request's time is also written, unrounded, to $LOAD_SAMPLES when Locust quits (its own
percentiles round to whole milliseconds)."""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task

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


class L1ReadRate(L1Read):
    """Reads at 5 per second per user, at random (Poisson) times: latency below saturation, where
    ADR-001's target applies."""

    rate = 5.0  # requests per second per user

    def on_start(self) -> None:
        # Not at spawn time: the first request is the first arrival of the user's own process.
        self.next_arrival = time.monotonic()
        gevent.sleep(self.wait_time())

    def wait_time(self) -> float:
        self.next_arrival += random.expovariate(self.rate)
        return max(0.0, self.next_arrival - time.monotonic())


class L1ReadBurst(L1Read):
    """Reads at 5 per second per user, every user at the same instants: the multiples of 200 ms of
    the clock (a user whose answer comes later than the next one skips it)."""

    period = 1 / 5  # seconds

    def on_start(self) -> None:
        self.tick = math.ceil(time.time() / self.period) * self.period
        gevent.sleep(self.tick - time.time())

    def wait_time(self) -> float:
        now = time.time()
        self.tick += self.period * max(1, math.ceil((now - self.tick) / self.period))
        return self.tick - now


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
