"""Each service of the stack, as its rendered objects describe it: its probes answer, and Prometheus,
configured from its ServiceMonitor, scrapes it (`up == 1`)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.conftest import Target
from e2e.stack import wait_until

CONTRACT_METRICS = {"http_requests_total", "http_request_duration_seconds", "http_requests_in_flight"}


def container(target: Target, service: str) -> dict:
    return target.rendered.container(service)


def test_liveness_and_readiness_probes_answer(target: Target, service: str):
    url = target.url(service)
    probes = container(target, service)
    for probe in ("livenessProbe", "readinessProbe"):
        check = probes[probe]["httpGet"]
        assert check["port"] == "http", f"{service}: {probe} on port {check['port']}, the suite reaches only http"

        def answers(path: str = check["path"]) -> bool:
            try:
                return httpx.get(f"{url}{path}", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 30, f"{service} {probe} {check['path']}")


def test_metrics_are_served_where_the_service_monitor_looks(target: Target, service: str):
    target.url(service)
    monitors = [m for m, svc in target.rendered.monitored_services() if svc["metadata"]["name"] == service]
    if not monitors:
        pytest.skip(f"{target.rendered.stack} has monitoring off: no ServiceMonitor")
    local = target.control()
    metrics_url = local.services[service].metrics_url
    assert metrics_url is not None, "a ServiceMonitor, but no metrics port on the container"
    httpx.get(f"{local.services[service].url}/health", timeout=5)
    families = {family.name for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text)}
    # prometheus_client names a counter family without its `_total`.
    assert {"http_requests", "http_request_duration_seconds", "http_requests_in_flight"} <= families


def test_prometheus_reports_the_service_up(target: Target, service: str):
    target.url(service)
    if not [m for m, svc in target.rendered.monitored_services() if svc["metadata"]["name"] == service]:
        pytest.skip(f"{target.rendered.stack} has monitoring off: no ServiceMonitor")
    if target.prometheus_url is None:
        pytest.skip("no Prometheus to ask (E2E_PROMETHEUS_URL)")
    query = f'up{{namespace="{target.rendered.namespace}",service="{service}"}}'

    def up() -> list[dict]:
        answer = httpx.get(f"{target.prometheus_url}/api/v1/query", params={"query": query}, timeout=5).json()
        results = answer["data"]["result"]
        return results if results and all(r["value"][1] == "1" for r in results) else []

    results = wait_until(up, 30, f"Prometheus to report {query} == 1")
    assert results
