"""The credentials of one MCP server (its SaaS API keys) as a Kubernetes Secret for `envFrom`."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.pods import labels


@dataclass
class McpCredentialsArgs:
    namespace: pulumi.Input[str]
    # Environment variable -> value; every value a Pulumi secret.
    values: Mapping[str, pulumi.Input[str]]


class McpCredentials(pulumi.ComponentResource):
    """A Secret `<name>` whose keys are the environment variables the server reads, and a keyed
    hash of its content (`config_hash`) for the server's pod template: environment from a Secret
    is read when a container starts, so a changed credential must restart the pods; the key
    (generated, secret) keeps the hash in the plain pod template from revealing anything.

    Outputs: `secret_name`, `config_hash`.
    """

    secret_name: pulumi.Output[str]
    config_hash: pulumi.Output[str]

    def __init__(self, name: str, args: McpCredentialsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:McpCredentials", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "credentials")},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in args.values.items()},
            opts=child,
        )
        hash_key = random.RandomPassword(f"{name}-hash-key", length=32, special=False, opts=child).result
        content = pulumi.Output.all(**dict(args.values)).apply(lambda values: json.dumps(values, sort_keys=True))
        self.config_hash = pulumi.Output.unsecret(
            pulumi.Output.all(hash_key, content).apply(lambda kc: hmac.new(kc[0].encode(), kc[1].encode(), "sha256").hexdigest())
        )
        self.secret_name = secret.metadata.name
        self.register_outputs({"secret_name": self.secret_name, "config_hash": self.config_hash})
