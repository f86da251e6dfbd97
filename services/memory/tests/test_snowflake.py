"""Snowflake settings exactly as the `snowflake` Secret provides them, connecting for real (the
Snowflake connector) to an emulator (fakesnow); /ready reports Snowflake without requiring it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from app.settings import Settings
from app.snowflake import SnowflakeConfigError, connect, connect_args
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import wait_until

PASSPHRASE = "test-passphrase"


@pytest.fixture(scope="module")
def pem() -> str:
    """A PKCS#8 key encrypted with PASSPHRASE, as `sophia-ai:snowflake.privateKey` holds it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def secret(pem: str, **changes: str) -> dict[str, str]:
    """The keys components/snowflake.py puts in the Secret for key-pair authentication."""
    return {
        "SNOWFLAKE_ACCOUNT": "sophiaai-dev",
        "SNOWFLAKE_USER": "SOPHIA_APP_DEV",
        "SNOWFLAKE_ROLE": "SOPHIA_APP",
        "SNOWFLAKE_WAREHOUSE": "SOPHIA_WH_XS",
        "SNOWFLAKE_DATABASE": "SOPHIA_AI_DEV",
        "SNOWFLAKE_SCHEMA": "MEMORY",
        "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE_JWT",
        "SNOWFLAKE_PRIVATE_KEY": pem,
        "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
        **changes,
    }


def emulator(connection: dict[str, object]) -> dict[str, str]:
    return {"SNOWFLAKE_HOST": str(connection["host"]), "SNOWFLAKE_PORT": str(connection["port"]), "SNOWFLAKE_PROTOCOL": "http"}


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    return Settings()


def test_key_pair_settings_connect_and_query(monkeypatch, pem, fakesnow_server):
    settings = settings_from(monkeypatch, secret(pem) | emulator(fakesnow_server))
    connection = connect(settings)
    try:
        row = connection.cursor().execute("SELECT current_database(), current_schema(), 1").fetchone()
    finally:
        connection.close()
    assert row == ("SOPHIA_AI_DEV", "MEMORY", 1)


def test_password_settings_connect(monkeypatch, fakesnow_server):
    env = {
        "SNOWFLAKE_ACCOUNT": "sophiaai-dev",
        "SNOWFLAKE_USER": "SOPHIA_APP_DEV",
        "SNOWFLAKE_DATABASE": "SOPHIA_AI_DEV",
        "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE",
        "SNOWFLAKE_PASSWORD": "not-a-real-password",
    }
    settings = settings_from(monkeypatch, env | emulator(fakesnow_server))
    assert "private_key" not in connect_args(settings)
    connect(settings).close()


def test_the_key_is_loaded_with_its_passphrase(monkeypatch, pem):
    args = connect_args(settings_from(monkeypatch, secret(pem)))
    assert args["private_key"].key_size == 2048
    assert args["authenticator"] == "SNOWFLAKE_JWT"
    assert "host" not in args  # <account>.snowflakecomputing.com, chosen by the connector


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "wrong-passphrase"}, "SNOWFLAKE_PRIVATE_KEY cannot be loaded"),
        ({"SNOWFLAKE_PRIVATE_KEY": "not a key"}, "SNOWFLAKE_PRIVATE_KEY cannot be loaded"),
        ({"SNOWFLAKE_USER": ""}, "SNOWFLAKE_USER not set"),
        ({"SNOWFLAKE_AUTHENTICATOR": "OAUTH"}, "SNOWFLAKE_AUTHENTICATOR must be"),
    ],
)
def test_bad_settings_are_named_without_their_values(monkeypatch, pem, changes, named):
    with pytest.raises(SnowflakeConfigError) as raised:
        connect_args(settings_from(monkeypatch, secret(pem, **changes)))
    assert named in str(raised.value)
    for value in (PASSPHRASE, "wrong-passphrase", pem.splitlines()[1]):
        assert value not in str(raised.value)


def test_ready_reports_snowflake_when_configured(make_client, ready_environment, pem, fakesnow_server):
    client = make_client(**ready_environment, **secret(pem), **emulator(fakesnow_server))
    body = wait_until(lambda: (r := client.get("/ready").json()) and r["snowflake"] != "pending" and r, what="a Snowflake check")
    assert body["snowflake"] == "ok"  # type: ignore[index]


def test_a_failing_snowflake_is_reported_but_does_not_make_the_service_unready(make_client, ready_environment, pem):
    class Refuses(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    refusing = {"SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(server.server_address[1]), "SNOWFLAKE_PROTOCOL": "http"}
    try:
        client = make_client(**ready_environment, **secret(pem), **refusing)
        response = wait_until(lambda: (r := client.get("/ready")) and r.json()["snowflake"] != "pending" and r, what="a check")
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200  # type: ignore[union-attr]
    assert response.json()["snowflake"] == "unreachable: ForbiddenError"  # type: ignore[union-attr]


def test_not_configured_means_not_reported(make_client, ready_environment):
    assert "snowflake" not in make_client(**ready_environment).get("/ready").json()
