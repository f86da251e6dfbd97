"""Redis, the fast (L1) memory: one pinned official-image instance with append-only persistence."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.pods import (
    CONTAINER_SECURITY_CONTEXT,
    PINNED_BY_TAG,
    PULL_POLICY,
    SOPHIA_PODS,
    TMP_MOUNT,
    TMP_VOLUME,
    checkov_skips,
    labels,
    pod_security_context,
    resources,
    selector,
)

PORT = 6379
# A high UID of our own (no clash with host users); the official image's `redis` group owns /data.
REDIS_UID = 10999
REDIS_GID = 999


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    image: str
    storage_size: str
    storage_class: str
    cpu: str
    memory: str
    # A configured password (a secret); when None one is generated, renewed when `rotation` changes.
    password: pulumi.Input[str] | None = None
    rotation: int = 0
    # Keep the data volume when the stack is destroyed (production).
    retain_data: bool = False


def redis_quote(text: str) -> str:
    """Escape a value for a double-quoted string of redis.conf (a configured password may hold
    quotes or backslashes)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Redis(pulumi.ComponentResource):
    """A single Redis with its data on a PersistentVolumeClaim, reachable only from Sophia pods.

    Outputs: `url` (redis://host:port/0, no credentials), `secret_name` (Secret holding
    `password`), `config_hash` (changes with the password: clients put it on their pods to restart
    with it).
    """

    url: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    config_hash: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.password is None:
            password: pulumi.Input[str] = random.RandomPassword(
                f"{name}-password",
                length=40,
                special=False,
                keepers={"rotation": str(args.rotation)},
                opts=child,
            ).result
        else:
            password = args.password
        password = pulumi.Output.secret(password)
        config = password.apply(
            lambda pw: "\n".join(
                [
                    "bind 0.0.0.0",
                    f"port {PORT}",
                    "dir /data",
                    "appendonly yes",
                    "appendfsync everysec",
                    "protected-mode yes",
                    f'requirepass "{redis_quote(pw)}"',
                    "",
                ]
            )
        )
        # Keyed, so the hash in the (plain) pod template reveals nothing of the password.
        hash_key = random.RandomPassword(f"{name}-config-hash-key", length=32, special=False, opts=child).result
        config_hash = pulumi.Output.unsecret(
            pulumi.Output.all(hash_key, config).apply(lambda kc: hmac.new(kc[0].encode(), kc[1].encode(), "sha256").hexdigest())
        )
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "cache")},
            type="Opaque",
            string_data={"password": password, "redis.conf": config},
            opts=child,
        )
        volume = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata={"name": f"{name}-data", "namespace": args.namespace, "labels": labels(name, "cache")},
            spec={
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": args.storage_class,
                "resources": {"requests": {"storage": args.storage_size}},
            },
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain_data),
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "cache")},
            spec={"selector": selector(name), "ports": [{"name": "redis", "port": PORT, "targetPort": "redis"}]},
            opts=child,
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={
                "name": name,
                "namespace": args.namespace,
                "labels": labels(name, "cache"),
                "annotations": checkov_skips(PINNED_BY_TAG),
            },
            spec={
                "serviceName": service.metadata.name,
                "replicas": 1,
                "selector": {"matchLabels": selector(name)},
                "template": {
                    "metadata": {
                        "labels": labels(name, "cache"),
                        # A new password or config restarts Redis.
                        "annotations": {"sophia.ai/config-hash": config_hash},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": pod_security_context(REDIS_UID, REDIS_GID),
                        "terminationGracePeriodSeconds": 30,
                        "containers": [
                            {
                                "name": "redis",
                                "image": args.image,
                                "imagePullPolicy": PULL_POLICY,
                                "command": ["redis-server", "/etc/redis/redis.conf"],
                                "ports": [{"name": "redis", "containerPort": PORT}],
                                "resources": resources(args.cpu, args.memory),
                                "securityContext": CONTAINER_SECURITY_CONTEXT,
                                "livenessProbe": {
                                    "tcpSocket": {"port": "redis"},
                                    "initialDelaySeconds": 10,
                                    "periodSeconds": 10,
                                },
                                "readinessProbe": {
                                    # The password comes from the mounted Secret file, not the environment.
                                    "exec": {
                                        "command": [
                                            "sh",
                                            "-c",
                                            'REDISCLI_AUTH="$(cat /etc/redis/password)" redis-cli ping | grep -q PONG',
                                        ]
                                    },
                                    "initialDelaySeconds": 5,
                                    "periodSeconds": 5,
                                },
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/data"},
                                    {"name": "config", "mountPath": "/etc/redis", "readOnly": True},
                                    TMP_MOUNT,
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "data", "persistentVolumeClaim": {"claimName": volume.metadata.name}},
                            {
                                "name": "config",
                                "secret": {
                                    "secretName": secret.metadata.name,
                                    "items": [
                                        {"key": "redis.conf", "path": "redis.conf"},
                                        {"key": "password", "path": "password"},
                                    ],
                                },
                            },
                            TMP_VOLUME,
                        ],
                    },
                },
            },
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": name, "namespace": args.namespace},
            spec={
                "podSelector": {"matchLabels": selector(name)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [SOPHIA_PODS], "ports": [{"protocol": "TCP", "port": PORT}]}],
            },
            opts=child,
        )
        self.config_hash = config_hash
        self.url = pulumi.Output.concat(
            "redis://", service.metadata.name, ".", service.metadata.namespace, ".svc:", str(PORT), "/0"
        )
        self.secret_name = secret.metadata.name
        self.register_outputs({"url": self.url, "secret_name": self.secret_name, "config_hash": self.config_hash})
