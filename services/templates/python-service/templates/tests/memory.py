"""The L1 API over a real Redis, and a request in flight surviving SIGTERM."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import httpx
import pytest
from redis import Redis

from tests.conftest import REDIS_PASSWORD, free_port, wait_until


@pytest.fixture
def l1(make_client, ready_environment):
    return make_client(**ready_environment)


@pytest.fixture
def redis_client(redis_server):
    client = Redis.from_url(redis_server, password=REDIS_PASSWORD, decode_responses=True)
    yield client
    client.close()


def test_put_get_delete(l1, redis_client):
    assert l1.put("/l1/deal:42", json={"value": "Acme renewal, Q3"}).status_code == 204
    assert l1.get("/l1/deal:42").json() == {"key": "deal:42", "value": "Acme renewal, Q3"}
    assert redis_client.get("l1:deal:42") == "Acme renewal, Q3"
    assert l1.delete("/l1/deal:42").status_code == 204
    assert l1.get("/l1/deal:42").status_code == 404
    assert redis_client.exists("l1:deal:42") == 0


def test_entries_expire_after_their_ttl_or_the_default(l1, redis_client):
    l1.put("/l1/short", json={"value": "x", "ttl_seconds": 30})
    l1.put("/l1/default", json={"value": "y"})
    assert 0 < redis_client.ttl("l1:short") <= 30
    assert 30 < redis_client.ttl("l1:default") <= 3600
    l1.put("/l1/gone", json={"value": "z", "ttl_seconds": 1})
    wait_until(lambda: l1.get("/l1/gone").status_code == 404, 5, "the entry to expire")


@pytest.mark.parametrize(
    "body",
    [{"value": "x", "ttl_seconds": 0}, {"value": "x", "ttl_seconds": 31 * 24 * 3600}, {"ttl_seconds": 5}, {"value": 7}],
)
def test_bad_bodies_are_refused(l1, body):
    assert l1.put("/l1/k", json=body).status_code == 422


def test_keys_are_bounded(l1):
    assert l1.put("/l1/" + "k" * 257, json={"value": "x"}).status_code == 422


def test_unavailable_while_redis_is_down(make_client):
    client = make_client(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_PASSWORD=REDIS_PASSWORD)
    response = client.get("/l1/k")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("redis unavailable")


def test_a_request_in_flight_finishes_after_sigterm(serve, own_redis):
    running = serve(REDIS_URL=own_redis.url, REDIS_PASSWORD=REDIS_PASSWORD)
    assert httpx.get(f"{running.url}/ready", timeout=5).status_code == 200
    own_redis.process.send_signal(signal.SIGSTOP)  # the next write waits for Redis
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        write = pool.submit(httpx.put, f"{running.url}/l1/late", json={"value": "kept"}, timeout=20)
        time.sleep(0.5)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert running.process.poll() is None, "exited with a request in flight"
        own_redis.process.send_signal(signal.SIGCONT)
        assert write.result().status_code == 204
    assert running.process.wait(30) == 0
    check = Redis.from_url(own_redis.url, password=REDIS_PASSWORD, decode_responses=True)
    assert check.get("l1:late") == "kept"
    check.close()
