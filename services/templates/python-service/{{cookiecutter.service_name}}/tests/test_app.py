"""The service's probes and settings, as the infrastructure uses them."""

from __future__ import annotations

from app.settings import Settings
{%- if cookiecutter.uses_redis == "yes" %}

from tests.conftest import REDIS_PASSWORD, free_port
{%- endif %}


def test_health_answers_with_the_service_name(make_client):
    response = make_client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": "{{ cookiecutter.service_name }}"}


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("SOPHIA_ENVIRONMENT", "production")
    settings = Settings()
    assert (settings.port, settings.sophia_environment) == (9999, "production")
    monkeypatch.delenv("PORT")
    assert Settings().port == {{ cookiecutter.service_port }}
{%- if cookiecutter.uses_redis == "yes" %}


def test_ready_when_redis_answers(make_client, redis_server):
    response = make_client(REDIS_URL=redis_server, REDIS_PASSWORD=REDIS_PASSWORD).get("/ready")
    assert response.status_code == 200
    assert response.json()["redis"] == "ok"


def test_not_ready_with_a_wrong_redis_password(make_client, redis_server):
    response = make_client(REDIS_URL=redis_server, REDIS_PASSWORD="wrong").get("/ready")
    assert response.status_code == 503


def test_not_ready_when_redis_is_down(make_client):
    response = make_client(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_PASSWORD=REDIS_PASSWORD).get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
{%- else %}


def test_ready(make_client):
    assert make_client().get("/ready").status_code == 200
{%- endif %}
