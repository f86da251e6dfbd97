{%- set redis = cookiecutter.uses_redis == "yes" -%}
{%- set callees = cookiecutter.calls.replace(" ", "").split(",") | select | list -%}
"""The platform contract, as the infrastructure uses it: the probes, the settings, metrics of every
worker on METRICS_PORT, JSON logs carrying trace ids, traces over OTLP, a clean stop on SIGTERM."""

from __future__ import annotations

import concurrent.futures
import gc
import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from app.server import GRACEFUL_TIMEOUT, Server
from app.settings import Settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Span, free_port, wait_until

LOG_FIELDS = {"timestamp", "level", "logger", "message", "service", "trace_id", "span_id"}


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def path_of(span: Span) -> str | None:
    """The request path of a server span (old or new HTTP semantic conventions)."""
    return span.attributes.get("http.target") or span.attributes.get("url.path")


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_health_answers_with_the_service_name(make_client):
    response = make_client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": "{{ cookiecutter.service_name }}"}


def test_settings_come_from_the_environment(monkeypatch):
    for key, text in {"PORT": "9999", "SOPHIA_ENVIRONMENT": "production", "WEB_CONCURRENCY": "2", "METRICS_PORT": "9090"}.items():
        monkeypatch.setenv(key, text)
    settings = Settings()
    assert (settings.port, settings.sophia_environment, settings.web_concurrency, settings.metrics_port) == (
        9999,
        "production",
        2,
        9090,
    )
    monkeypatch.delenv("PORT")
    monkeypatch.delenv("METRICS_PORT")
    assert (Settings().port, Settings().metrics_port) == ({{ cookiecutter.service_port }}, None)


def test_ready_when_every_dependency_answers(make_client, ready_environment):
    response = make_client(**ready_environment).get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert set(response.json()["checks"].values()) <= {"ok"}
{%- if redis %}


def test_not_ready_with_a_wrong_redis_password(make_client, ready_environment):
    response = make_client(**{**ready_environment, "REDIS_PASSWORD": "wrong"}).get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("unreachable")
    assert "wrong" not in response.text


def test_not_ready_when_redis_is_down(make_client, ready_environment):
    down = f"redis://127.0.0.1:{free_port()}/0"
    response = make_client(**{**ready_environment, "REDIS_URL": down}).get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["redis"] == "unreachable: ConnectionError"
{%- endif %}
{%- for callee in callees %}
{%- set variable = callee | upper | replace("-", "_") ~ "_URL" %}


def test_not_ready_while_{{ callee | replace("-", "_") }}_is_not(make_client, ready_environment, stand_in):
    other = stand_in()
    client = make_client(**{**ready_environment, "{{ variable }}": other.url})
    assert client.get("/ready").status_code == 200
    other.ready = False
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["{{ callee }}"] == "not ready: HTTP 503"
    other.server.shutdown()
    other.server.server_close()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["{{ callee }}"].startswith("unreachable")


def test_not_ready_without_{{ callee | replace("-", "_") }}_url(make_client, ready_environment):
    environment = {key: text for key, text in ready_environment.items() if key != "{{ variable }}"}
    response = make_client(**environment).get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["{{ callee }}"] == "not configured"
{%- endfor %}


def test_a_worker_freezes_what_it_imported_so_full_collections_skip_it(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    gc.unfreeze()
    try:
        app = Server(Settings()).load()  # what each worker runs after the fork
        frozen = gc.get_freeze_count()
        # The app and the libraries it imported are out of the collector's generations...
        assert all(tracked is not app for tracked in gc.get_objects())
        # ...so a full collection walks a small fraction of the worker's objects.
        assert frozen > 50_000
        assert len(gc.get_objects()) < frozen / 10
    finally:
        gc.unfreeze()


def test_served_by_workers_whose_metrics_add_up_on_the_metrics_port(serve, ready_environment, tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from a previous run")
    running = serve(
        WEB_CONCURRENCY="2", METRICS_PORT=str(free_port()), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **ready_environment
    )
    wait_until(lambda: len(running.workers()) == 2, what="two workers")

    def booted() -> set[str]:  # a worker's in-flight gauge file appears once it has loaded the app
        return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("gauge_livesum_*.db")}

    wait_until(lambda: booted() == {str(pid) for pid in running.workers()}, what="both workers to load the app")
    health_200 = {"method": "GET", "route": "/health", "status": "200"}

    def counted_probe() -> dict | None:
        # The start-up probe's /health is counted once its answer is sent: after the probe has it.
        scraped = scrape(running.metrics_url)
        return scraped if value(scraped, "http_requests_total", **health_200) >= 1 else None

    before = wait_until(counted_probe, what="the start-up probe's request to be counted")

    def health(_: int) -> int:
        # A new connection each time, so that the workers share them (httpx would keep one alive).
        connection = http.client.HTTPConnection(urlsplit(running.url).netloc, timeout=5)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status
        finally:
            connection.close()

    def writers() -> set[str]:  # the workers that counted a request
        return {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("counter_*.db")}

    # Which worker accepts a connection is the kernel's choice: send until both have answered
    # some (a busy machine may give the first hundreds to one), counting what was sent.
    sent = 0
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        while sent < 200 or (writers() != {str(pid) for pid in running.workers()} and sent < 5000):
            assert set(pool.map(health, range(100))) == {200}
            sent += 100
    assert httpx.get(f"{running.url}/no-such-route", timeout=5).status_code == 404
    after = scrape(running.metrics_url)

    assert value(after, "http_requests_total", **health_200) - value(before, "http_requests_total", **health_200) == sent
    assert value(after, "http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(after, "http_request_duration_seconds_count", method="GET", route="/health") >= sent
    assert value(after, "http_request_duration_seconds_bucket", method="GET", route="/health", le="+Inf") >= sent
    assert ("http_requests_in_flight", frozenset()) in after
    assert value(after, "http_requests_in_flight") == 0
    # Both workers counted requests: the sum above is over their files, the stale one is gone.
    assert writers() == {str(pid) for pid in running.workers()}


def test_logs_are_json_lines_with_the_contract_fields(serve, ready_environment):
    running = serve(**ready_environment)
    httpx.get(f"{running.url}/no-such-route", timeout=5)
    lines = wait_until(lambda: [line for line in running.logs() if line.get("route") == "unmatched"], what="the access line")
    logs = running.logs()
    assert logs, "no log line on stdout"
    for line in logs:
        assert set(line) >= LOG_FIELDS, line
        assert line["service"] == "{{ cookiecutter.service_name }}"
        assert "color_message" not in line
    assert lines[0]["status"] == 404 and lines[0]["level"] == "INFO"  # type: ignore[index]
    assert not [line for line in logs if line.get("route") in ("/health", "/ready")], "probes are not logged"
    assert any(line["logger"] == "gunicorn.error" for line in logs), "gunicorn's own lines are JSON too"


def test_a_request_is_traced_and_its_log_line_carries_the_trace_id(serve, ready_environment, otlp):
    endpoint, receiver = otlp
    running = serve(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="{{ cookiecutter.service_name }}",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,service.namespace=sophia-ai",
        OTEL_BSP_SCHEDULE_DELAY="200",  # export every 200 ms instead of 5 s: a quicker test
        **ready_environment,
    )
    assert httpx.get(f"{running.url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{running.url}/no-such-route", timeout=5).status_code == 404
    span = receiver.received(lambda span: path_of(span) == "/no-such-route")[0]
    assert span.service == "{{ cookiecutter.service_name }}"
    assert span.resource["deployment.environment"] == "test"
    access = [line for line in running.logs() if line.get("route") == "unmatched"]
    assert access and access[0]["trace_id"] == span.trace_id and len(span.trace_id) == 32
    assert not [s for s in receiver.spans if path_of(s) == "/health"], "probes are not traced"


def test_sigterm_stops_accepting_and_exits_zero_within_the_grace_period(serve, ready_environment, tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    running = serve(
        WEB_CONCURRENCY="2", METRICS_PORT=str(free_port()), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **ready_environment
    )
    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < GRACEFUL_TIMEOUT
    assert not metrics_dir.exists()
    try:
        httpx.get(f"{running.url}/health", timeout=1)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("still accepting after SIGTERM")
