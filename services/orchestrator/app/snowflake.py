"""Snowflake, the long-term memory: connection settings exactly as the `snowflake` Secret gives them
(SNOWFLAKE_ACCOUNT, USER, ROLE, WAREHOUSE, DATABASE, SCHEMA, AUTHENTICATOR=SNOWFLAKE_JWT with
PRIVATE_KEY (PEM) and PRIVATE_KEY_PASSPHRASE, or SNOWFLAKE with PASSWORD), and a monitor that keeps
one connection and checks it in the background.

/ready reports Snowflake but does not require it: the serving path (L1) must not go down with an
external service, and a login can take longer than the readiness probe waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import snowflake.connector
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from app.settings import Settings

# The login's platform detection probes cloud metadata endpoints (169.254.169.254 ...) only to
# describe the client to Snowflake; the pods' egress policy blocks them anyway.
os.environ.setdefault("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")

KEY_PAIR = "SNOWFLAKE_JWT"
PASSWORD = "SNOWFLAKE"  # noqa: S105 - the authenticator's name
CHECK_INTERVAL = 30.0
TIMEOUT = 10  # seconds, for the login and each query

log = logging.getLogger(__name__)


class SnowflakeConfigError(ValueError):
    """The settings cannot make a connection; the message names the variable, never its value."""


def connect_args(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `snowflake.connector.connect` from the settings."""
    required = {
        "SNOWFLAKE_ACCOUNT": settings.snowflake_account,
        "SNOWFLAKE_USER": settings.snowflake_user,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise SnowflakeConfigError(f"{', '.join(missing)} not set")
    args: dict[str, Any] = {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
        "role": settings.snowflake_role,
        "warehouse": settings.snowflake_warehouse,
        "database": settings.snowflake_database,
        "schema": settings.snowflake_schema,
        "authenticator": settings.snowflake_authenticator,
        "application": f"sophia-{settings.service_name}",
        "login_timeout": TIMEOUT,
        "network_timeout": TIMEOUT,
    }
    if settings.snowflake_authenticator == KEY_PAIR:
        args["private_key"] = private_key(settings)
    elif settings.snowflake_authenticator == PASSWORD:
        if settings.snowflake_password is None:
            raise SnowflakeConfigError("SNOWFLAKE_PASSWORD not set (SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE)")
        args["password"] = settings.snowflake_password.get_secret_value()
    else:
        raise SnowflakeConfigError(f"SNOWFLAKE_AUTHENTICATOR must be {KEY_PAIR} or {PASSWORD}")
    if settings.snowflake_host:
        args.update(host=settings.snowflake_host, protocol=settings.snowflake_protocol)
        if settings.snowflake_port:
            args["port"] = settings.snowflake_port
    return {key: value for key, value in args.items() if value is not None}


def private_key(settings: Settings) -> Any:
    """The key-pair key: PEM text (PKCS#8, encrypted when a passphrase is set), loaded once here so a
    bad key is reported by name instead of failing inside the driver."""
    if settings.snowflake_private_key is None:
        raise SnowflakeConfigError("SNOWFLAKE_PRIVATE_KEY not set (SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE_JWT)")
    passphrase = settings.snowflake_private_key_passphrase
    try:
        return load_pem_private_key(
            settings.snowflake_private_key.get_secret_value().encode(),
            password=passphrase.get_secret_value().encode() if passphrase else None,
        )
    except (ValueError, TypeError) as exc:
        # cryptography's messages say what is wrong (bad passphrase, not PEM) without the key.
        raise SnowflakeConfigError(f"SNOWFLAKE_PRIVATE_KEY cannot be loaded: {type(exc).__name__}") from None


def connect(settings: Settings) -> snowflake.connector.SnowflakeConnection:
    # Looked up at call time, as `snowflake.connector.connect`, so tests can stand in an emulator.
    return snowflake.connector.connect(**connect_args(settings))


class SnowflakeMonitor:
    """Keeps one connection and runs `SELECT 1` every CHECK_INTERVAL seconds in a thread;
    `state` is "ok", "pending" (no answer yet) or why not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = "pending"
        self._connection: snowflake.connector.SnowflakeConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._connection is not None:
            await asyncio.to_thread(self._drop)

    async def refresh(self) -> str:
        self.state = await asyncio.to_thread(self._check)
        return self.state

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(CHECK_INTERVAL)

    def _check(self) -> str:
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = connect(self.settings)
            with self._connection.cursor() as cursor:
                row = cursor.execute("SELECT 1").fetchone()
        except SnowflakeConfigError as exc:
            return f"misconfigured: {exc}"
        except Exception as exc:  # the driver raises many kinds; report and reconnect next time
            log.warning("snowflake check failed: %s", type(exc).__name__)
            self._drop()
            return f"unreachable: {type(exc).__name__}"
        return "ok" if row == (1,) else "unexpected answer"

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
