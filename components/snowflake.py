"""The Snowflake connection (long-term memory, L2/L3) as a Kubernetes Secret for the services."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.pods import labels
from components.redis import keyed_hash


@dataclass
class SnowflakeArgs:
    namespace: pulumi.Input[str]
    account: pulumi.Input[str]
    user: pulumi.Input[str]
    role: pulumi.Input[str]
    warehouse: pulumi.Input[str]
    database: pulumi.Input[str]
    schema: pulumi.Input[str]
    # Exactly one of private_key (key-pair auth, preferred) and password.
    private_key: pulumi.Input[str] | None = None
    private_key_passphrase: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None


class SnowflakeConnection(pulumi.ComponentResource):
    """A Secret whose keys are the SNOWFLAKE_* environment variables the services read
    (`envFrom`). Every value is a Pulumi secret, so none is stored or shown in plain text.

    Outputs: `secret_name`, `credential_hash` (a keyed hash of every value: consumers put it on
    their pods, so a new key or password restarts them; environment from a Secret is read only
    when a container starts).
    """

    secret_name: pulumi.Output[str]
    credential_hash: pulumi.Output[str]

    def __init__(self, name: str, args: SnowflakeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:SnowflakeConnection", name, None, opts)
        values: dict[str, pulumi.Input[str] | None] = {
            "SNOWFLAKE_ACCOUNT": args.account,
            "SNOWFLAKE_USER": args.user,
            "SNOWFLAKE_ROLE": args.role,
            "SNOWFLAKE_WAREHOUSE": args.warehouse,
            "SNOWFLAKE_DATABASE": args.database,
            "SNOWFLAKE_SCHEMA": args.schema,
            "SNOWFLAKE_AUTHENTICATOR": "SNOWFLAKE_JWT" if args.private_key is not None else "SNOWFLAKE",
            "SNOWFLAKE_PRIVATE_KEY": args.private_key,
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": args.private_key_passphrase,
            "SNOWFLAKE_PASSWORD": args.password,
        }
        present = {key: value for key, value in values.items() if value is not None}
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "connection")},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in present.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Keyed, so the hash in the (plain) pod templates reveals nothing of the key or password.
        hash_key = random.RandomPassword(
            f"{name}-credential-hash-key", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        ).result
        self.credential_hash = pulumi.Output.unsecret(
            pulumi.Output.all(hash_key, pulumi.Output.all(**present)).apply(
                lambda kv: keyed_hash(kv[0], json.dumps(kv[1], sort_keys=True))
            )
        )
        self.secret_name = secret.metadata.name
        self.register_outputs({"secret_name": self.secret_name, "credential_hash": self.credential_hash})
