"""Redis, the fast (L1) memory: one pinned official-image instance with append-only persistence,
bounded in memory, whose passwords rotate without a restart and whose data outlives the stack.

Compatibility: the configuration below uses only directives and ACL rules that Redis 7.0 (Debian's
package, which the tests start) and 7.4 (the image the stacks deploy) both accept, with the same
meaning: `aclfile`, `maxmemory`, `maxmemory-policy`, `client-output-buffer-limit`,
`repl-diskless-sync-delay`, `save`, `appendonly`, and ACL `#<sha256>` passwords (redis/redis,
src/config.c and src/acl.c at 7.0.15 and 7.4.1).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.pods import (
    PINNED_BY_TAG,
    checkov_skips,
    labels,
    network_policy,
    restricted_container,
    restricted_pod,
    selector,
)

PORT = 6379
# A high UID of our own (no clash with host users); the official image's `redis` group owns /data.
REDIS_UID = 10999
REDIS_GID = 999
DATA_DIR = "/data"
CONF_DIR = "/etc/redis/conf"
ACL_DIR = "/etc/redis/acl"
# An L1 cache of L2/L3 (ADR-001): any key may go, the least recently used first; writes never fail.
EVICTION_POLICY = "allkeys-lru"
# Each administrative pod (the ACL sync Job, a backup): the namespace's quota counts them.
ADMIN_CPU = "100m"
ADMIN_MEMORY = "128Mi"
# Pods that may open an administrative connection to Redis (ACL LOAD, a replica's sync).
ADMIN_LABEL = "sophia.ai/redis-admin"
SCRIPTS = Path(__file__).parent / "scripts"
# The directory of a retained volume under the StorageClass's nodePath: the same for the same
# claim, so a claim made again (after a destroy, a namespace deletion, a k3s reinstall) finds the
# data. local-path-provisioner >= v0.0.33 requires this prefix (rancher/local-path-provisioner,
# provisioner.go, pathFromPattern); k3s bundles >= v0.0.29, which has pathPattern and nodePath.
PATH_PATTERN = "{{ .PVC.Namespace }}/{{ .PVC.Name }}/"


@dataclass(frozen=True)
class MemoryBudget:
    """How a container memory limit is shared. Redis counts the dataset and client buffers
    against `maxmemory` and evicts to stay below it; outside it are the copy-on-write pages of
    the child that rewrites the AOF (a fork: every page written during the rewrite is copied),
    allocator fragmentation, and a replica's output buffer (a backup's `--rdb` stream), which
    Redis deliberately does not count (redis.conf, MEMORY MANAGEMENT)."""

    maxmemory: int
    replica_buffer_hard: int
    replica_buffer_soft: int


def memory_budget(limit_bytes: int) -> MemoryBudget:
    """The one place maxmemory comes from: half the limit, the other half for the fork's
    copies, fragmentation and a backup's stream (a sixteenth, beyond which the backup is
    disconnected rather than Redis killed)."""
    return MemoryBudget(limit_bytes // 2, limit_bytes // 16, limit_bytes // 32)


def redis_conf(limit_bytes: int, *, data_dir: str = DATA_DIR, acl_file: str = f"{ACL_DIR}/users.acl", port: int = PORT) -> str:
    """redis.conf: nothing secret in it (passwords are in the ACL file, as hashes)."""
    budget = memory_budget(limit_bytes)
    return "\n".join(
        [
            "bind 0.0.0.0",
            f"port {port}",
            "protected-mode yes",
            f"dir {data_dir}",
            f"aclfile {acl_file}",
            "appendonly yes",
            "appendfsync everysec",
            # The AOF is the persistence; RDB snapshots would only add forks.
            'save ""',
            f"maxmemory {budget.maxmemory}",
            f"maxmemory-policy {EVICTION_POLICY}",
            f"client-output-buffer-limit replica {budget.replica_buffer_hard} {budget.replica_buffer_soft} 60",
            # The only replica is a backup: no reason to wait for others before the snapshot.
            "repl-diskless-sync-delay 0",
            "",
        ]
    )


def acl_file(passwords: Sequence[str]) -> str:
    """The ACL file: the one `default` user, with every valid password as its SHA-256.

    Only hashes are written, so any password is safe here (Redis splits ACL lines on spaces
    and knows no quoting) and none can appear in a log line about this file. Only `default` is
    used: `ACL LOAD` copies the new rules into the existing default user, keeping its clients
    connected, while Redis 7.0 disconnects every client of any other user (src/acl.c,
    ACLLoadFromFile). A file without a `default` line would leave Redis open: there is always one.
    """
    if not passwords:
        raise ValueError("Redis needs at least one password")
    hashes = " ".join(f"#{hashlib.sha256(p.encode()).hexdigest()}" for p in passwords)
    return f"user default on {hashes} ~* &* +@all\n"


def keyed_hash(key: str, text: str) -> str:
    """A hash to put in plain sight (pod annotations, names) that reveals nothing of `text`."""
    return hmac.new(key.encode(), text.encode(), "sha256").hexdigest()


def script(name: str) -> str:
    return (SCRIPTS / name).read_text(encoding="utf-8")


def admin_pod(
    containers: list[dict[str, Any]], volumes: list[dict[str, Any]], *, init: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The pod of a Job that talks to Redis as its administrator: restricted, no token, no restart."""
    return restricted_pod(
        REDIS_UID, containers, volumes, gid=REDIS_GID, restartPolicy="Never", **({"initContainers": init} if init else {})
    )


def admin_container(
    name: str, image: str, command: list[str], env: dict[str, pulumi.Input[str]], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return restricted_container(
        name,
        image,
        ADMIN_CPU,
        ADMIN_MEMORY,
        mounts,
        command=command,
        env=[{"name": key, "value": value} for key, value in env.items()],
    )


def acl_sync_name(name: str) -> str:
    """The name of the Job (and its pods' workload) that applies Redis `name`'s passwords live."""
    return f"{name}-acl-sync"


def admin_labels(name: str) -> dict[str, str]:
    """Not part of the Sophia pods (which may call each other): only Redis, by its own policy."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "pulumi", ADMIN_LABEL: "true"}


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    image: str
    storage_size: str
    # The StorageClass of a volume that is not retained.
    storage_class: str
    cpu: str
    memory: str
    # The same memory limit in bytes: maxmemory is derived from it (memory_budget).
    memory_bytes: int
    # A configured password (a secret); when None one is generated, renewed when `rotation` changes.
    password: pulumi.Input[str] | None = None
    rotation: int = 0
    # Redis still accepts the generated password of rotation - 1 (while clients roll).
    keep_previous_password: bool = False
    # A configured password Redis still accepts (while clients roll to `password`).
    previous_password: pulumi.Input[str] | None = None
    # Keep the data through a destroy, a namespace deletion and a k3s uninstall (production):
    # a StorageClass of its own, reclaimPolicy Retain, under `data_path` on the node.
    retain_data: bool = False
    data_path: str = "/var/lib/sophia/storage"
    # NetworkPolicy rules: who may reach Redis, and what its password Job may reach (Redis).
    ingress: Sequence[Mapping[str, Any]] = ()
    admin_egress: Sequence[Mapping[str, Any]] = ()


class Redis(pulumi.ComponentResource):
    """A single Redis with its data on a PersistentVolumeClaim, reachable only from Sophia pods
    (and its own administrative Jobs).

    Passwords: the `redis-acl` Secret holds the ACL file Redis reads (every valid password, as a
    hash) and the plain passwords for Redis's own probe and Jobs; a changed file is applied live
    by a Job (`ACL LOAD`, components/scripts/redis-acl-sync.sh) that completes only once Redis
    accepts exactly its passwords. Only then is the clients' Secret (`secret_name`) given the new
    password, so no client ever holds a password Redis does not accept, and Redis never restarts
    for a password.

    Outputs: `url` (redis://host:port/0, no credentials), `secret_name` (the clients' Secret,
    key `password`), `config_hash` (a keyed hash of the clients' password: clients put it on
    their pods to restart with a new one), `service_name`.
    """

    url: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    config_hash: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        current, previous = self._passwords(name, args)
        valid = [current] if previous is None else [current, previous]
        # Secret, as its inputs are.
        acl: pulumi.Output[str] = pulumi.Output.all(*valid).apply(acl_file)
        hash_key = random.RandomPassword(f"{name}-config-hash-key", length=32, special=False, opts=child).result

        acl_values: dict[str, pulumi.Input[str]] = {"users.acl": acl, "password": current}
        if previous is not None:
            acl_values["previous-password"] = previous
        acl_secret = k8s.core.v1.Secret(
            f"{name}-acl",
            metadata={"name": f"{name}-acl", "namespace": args.namespace, "labels": labels(name, "cache")},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in acl_values.items()},
            opts=child,
        )
        conf = redis_conf(args.memory_bytes)
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": f"{name}-config", "namespace": args.namespace, "labels": labels(name, "cache")},
            data={"redis.conf": conf},
            opts=child,
        )
        claim_class: pulumi.Input[str] = args.storage_class
        if args.retain_data:
            retained = k8s.storage.v1.StorageClass(
                f"{name}-retained-storage",
                metadata={
                    "name": pulumi.Output.concat(args.namespace, "-retained"),
                    "labels": labels(name, "cache"),
                    # The type k3s's own local-path class uses: the kubelet applies fsGroup to it.
                    "annotations": {"defaultVolumeType": "local"},
                },
                provisioner="rancher.io/local-path",
                # Deleting the claim (a destroy deletes the namespace, and it) keeps the directory.
                reclaim_policy="Retain",
                volume_binding_mode="WaitForFirstConsumer",
                # nodePath must be a path of the provisioner's configuration (k3s's
                # default-local-storage-path); another one fails provisioning, loudly.
                parameters={"nodePath": args.data_path, "pathPattern": PATH_PATTERN},
                opts=child,
            )
            claim_class = retained.metadata.name
        volume = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata={"name": f"{name}-data", "namespace": args.namespace, "labels": labels(name, "cache")},
            spec={
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": claim_class,
                "resources": {"requests": {"storage": args.storage_size}},
            },
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "cache")},
            spec={"selector": selector(name), "ports": [{"name": "redis", "port": PORT, "targetPort": "redis"}]},
            opts=child,
        )
        statefulset = k8s.apps.v1.StatefulSet(
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
                        # A new redis.conf restarts Redis; a new password does not (it is live).
                        "annotations": {"sophia.ai/config-hash": hashlib.sha256(conf.encode()).hexdigest()},
                    },
                    "spec": restricted_pod(
                        REDIS_UID,
                        [
                            restricted_container(
                                "redis",
                                args.image,
                                args.cpu,
                                args.memory,
                                [
                                    {"name": "data", "mountPath": DATA_DIR},
                                    {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
                                    # The whole Secret, not items and not subPath: the kubelet then
                                    # refreshes its files in place when the Secret changes.
                                    {"name": "acl", "mountPath": ACL_DIR, "readOnly": True},
                                ],
                                command=["redis-server", f"{CONF_DIR}/redis.conf"],
                                ports=[{"name": "redis", "containerPort": PORT}],
                                livenessProbe={
                                    "tcpSocket": {"port": "redis"},
                                    "initialDelaySeconds": 10,
                                    "periodSeconds": 10,
                                },
                                readinessProbe={
                                    # Authenticated, so that a Redis still loading its AOF is not
                                    # ready; with either password while one is being added.
                                    "exec": {
                                        "command": [
                                            "sh",
                                            "-c",
                                            f"for f in {ACL_DIR}/password {ACL_DIR}/previous-password; do"
                                            ' [ -f "$f" ] && REDISCLI_AUTH="$(cat "$f")" redis-cli ping 2>/dev/null'
                                            " | grep -qx PONG && exit 0; done; exit 1",
                                        ]
                                    },
                                    "initialDelaySeconds": 5,
                                    "periodSeconds": 5,
                                },
                            )
                        ],
                        [
                            {"name": "data", "persistentVolumeClaim": {"claimName": volume.metadata.name}},
                            {"name": "config", "configMap": {"name": config_map.metadata.name}},
                            {"name": "acl", "secret": {"secretName": acl_secret.metadata.name, "defaultMode": 0o440}},
                        ],
                        gid=REDIS_GID,
                        terminationGracePeriodSeconds=30,
                    ),
                },
            },
            opts=child,
        )
        sync_script = script("redis-acl-sync.sh")
        # A new name (so a new Job) whenever the ACL file or the script changes.
        sync_hash = pulumi.Output.unsecret(
            pulumi.Output.all(hash_key, acl).apply(lambda ka: keyed_hash(ka[0], ka[1] + sync_script))
        )
        sync = k8s.batch.v1.Job(
            acl_sync_name(name),
            metadata={
                "name": sync_hash.apply(lambda h: f"{acl_sync_name(name)}-{h[:10]}"),
                "namespace": args.namespace,
                "labels": admin_labels(acl_sync_name(name)),
                "annotations": checkov_skips(PINNED_BY_TAG),
            },
            spec={
                "backoffLimit": 0,
                # Longer than the script's own deadline, shorter than Pulumi's wait for a Job.
                "activeDeadlineSeconds": 300,
                "template": {
                    "metadata": {"labels": admin_labels(acl_sync_name(name))},
                    "spec": admin_pod(
                        [
                            admin_container(
                                "acl-sync",
                                args.image,
                                ["sh", "-c", sync_script, "redis-acl-sync"],
                                {"ACL_DIR": ACL_DIR, "REDIS_HOST": name, "REDIS_PORT": str(PORT), "DEADLINE_SECONDS": "240"},
                                [{"name": "acl", "mountPath": ACL_DIR, "readOnly": True}],
                            )
                        ],
                        [{"name": "acl", "secret": {"secretName": acl_secret.metadata.name, "defaultMode": 0o440}}],
                    ),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[statefulset]),
        )
        # The clients' password changes only once Redis accepts it.
        client_secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": name, "namespace": args.namespace, "labels": labels(name, "cache")},
            type="Opaque",
            string_data={"password": current},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[sync]),
        )
        network_policy(name, args.namespace, args.ingress, (), child)
        network_policy(acl_sync_name(name), args.namespace, (), args.admin_egress, child)
        self.config_hash = pulumi.Output.unsecret(pulumi.Output.all(hash_key, current).apply(lambda kp: keyed_hash(kp[0], kp[1])))
        self.service_name = service.metadata.name
        self.url = pulumi.Output.concat(
            "redis://", service.metadata.name, ".", service.metadata.namespace, ".svc:", str(PORT), "/0"
        )
        self.secret_name = client_secret.metadata.name
        self.register_outputs(
            {"url": self.url, "secret_name": self.secret_name, "config_hash": self.config_hash, "service_name": self.service_name}
        )

    def _passwords(self, name: str, args: RedisArgs) -> tuple[pulumi.Output[str], pulumi.Output[str] | None]:
        """The password clients use, and the previous one Redis still accepts (or None)."""
        if args.password is not None:
            previous = None if args.previous_password is None else pulumi.Output.secret(args.previous_password)
            return pulumi.Output.secret(args.password), previous
        generations = [args.rotation - 1, args.rotation] if args.keep_previous_password and args.rotation > 0 else [args.rotation]
        passwords = [
            random.RandomPassword(
                f"{name}-password-{generation}",
                length=40,
                special=False,
                keepers={"rotation": str(generation)},
                # Before generations had names, the one password was `<name>-password`: the
                # oldest generation still in use takes it over, with the same value.
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=f"{name}-password")] if index == 0 else None),
            ).result
            for index, generation in enumerate(generations)
        ]
        current = pulumi.Output.secret(passwords[-1])
        return current, (pulumi.Output.secret(passwords[0]) if len(passwords) == 2 else None)
