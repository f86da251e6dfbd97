"""Redis's data off the host: a CronJob that takes a snapshot over the network and copies it to
an S3-compatible bucket or to a directory on a Lambda persistent filesystem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pods import PINNED_BY_TAG, checkov_skips, network_policy
from components.redis import PORT, admin_container, admin_labels, admin_pod, script

# Pinned: rclone's own image (Alpine, with a shell); it signs S3 requests itself.
RCLONE_IMAGE = "rclone/rclone:1.69.1"
# A claim on a host directory has no real size; this is what the namespace's quota counts.
HOST_CLAIM_SIZE = "1Gi"
SNAPSHOT_DIR = "/backup"
KEYS_DIR = "/etc/backup/s3"
AUTH_DIR = "/etc/backup/redis"
TARGET_DIR = "/target"


@dataclass
class S3Target:
    endpoint: str
    bucket: str
    region: str
    folder: str | None
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    insecure: bool = False
    # The endpoint's TCP port: the only one the backup's pods may open outside the namespace.
    port: int = 443


@dataclass
class RedisBackupArgs:
    namespace: pulumi.Input[str]
    # Redis's Service, and the Secret with the password (key `password`) clients use.
    redis_host: pulumi.Input[str]
    password_secret: pulumi.Input[str]
    redis_image: str
    schedule: str
    keep: int
    # Room for one snapshot (at most Redis's memory limit).
    snapshot_size: str
    # Exactly one destination.
    s3: S3Target | None = None
    host_path: str | None = None
    # What its pods may open (Redis, the bucket): its NetworkPolicy's egress rules.
    egress: Sequence[Mapping[str, Any]] = ()


class RedisBackup(pulumi.ComponentResource):
    """Every `schedule`, a Job whose first container (the Redis image) takes a snapshot with
    `redis-cli --rdb` and checks it, and whose second copies it to the destination and keeps
    the newest `keep` (components/scripts/redis-backup.sh). The pods are restricted, reach only
    Redis and the bucket's port, and read every credential from a mounted Secret.

    Outputs: `cronjob_name`.
    """

    cronjob_name: pulumi.Output[str]

    def __init__(self, name: str, args: RedisBackupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sophia:index:RedisBackup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if (args.s3 is None) == (args.host_path is None):
            raise ValueError("RedisBackup needs exactly one of s3 and host_path")
        code = script("redis-backup.sh")
        snapshot_mount = {"name": "snapshot", "mountPath": SNAPSHOT_DIR}
        volumes: list[dict[str, Any]] = [
            {"name": "snapshot", "emptyDir": {"sizeLimit": args.snapshot_size}},
            {
                "name": "redis-auth",
                "secret": {
                    "secretName": args.password_secret,
                    "items": [{"key": "password", "path": "password"}],
                    "defaultMode": 0o440,
                },
            },
        ]
        dump = admin_container(
            "dump",
            args.redis_image,
            ["sh", "-c", code, "redis-backup", "dump"],
            {
                "BACKUP_DIR": SNAPSHOT_DIR,
                "REDIS_HOST": args.redis_host,
                "REDIS_PORT": str(PORT),
                "REDIS_AUTH_FILE": f"{AUTH_DIR}/password",
            },
            [snapshot_mount, {"name": "redis-auth", "mountPath": AUTH_DIR, "readOnly": True}],
        )
        if args.s3 is not None:
            s3 = args.s3
            keys = k8s.core.v1.Secret(
                f"{name}-s3",
                metadata={"name": f"{name}-s3", "namespace": args.namespace, "labels": admin_labels(name)},
                type="Opaque",
                string_data={
                    "access-key-id": pulumi.Output.secret(s3.access_key_id),
                    "secret-access-key": pulumi.Output.secret(s3.secret_access_key),
                },
                opts=child,
            )
            volumes.append({"name": "s3-keys", "secret": {"secretName": keys.metadata.name, "defaultMode": 0o440}})
            upload = admin_container(
                "upload",
                RCLONE_IMAGE,
                ["sh", "-c", code, "redis-backup", "s3"],
                {
                    "BACKUP_DIR": SNAPSHOT_DIR,
                    "S3_ENDPOINT": s3.endpoint,
                    "S3_INSECURE": "true" if s3.insecure else "false",
                    "S3_REGION": s3.region,
                    "S3_BUCKET": s3.bucket,
                    "S3_FOLDER": s3.folder or "",
                    "S3_KEYS_DIR": KEYS_DIR,
                    "KEEP": str(args.keep),
                },
                [snapshot_mount, {"name": "s3-keys", "mountPath": KEYS_DIR, "readOnly": True}],
            )
        else:
            # The restricted Pod Security Standard admits no hostPath volume in a pod: the
            # directory is a PersistentVolume of its own, bound to this claim alone.
            claim_name = f"{name}-target"
            volume = k8s.core.v1.PersistentVolume(
                f"{name}-target-volume",
                metadata={"name": pulumi.Output.concat(args.namespace, "-", claim_name), "labels": admin_labels(name)},
                spec={
                    "capacity": {"storage": HOST_CLAIM_SIZE},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    # `Directory`: a filesystem that is not mounted fails the pod, instead of
                    # silently filling the node's own disk.
                    "hostPath": {"path": args.host_path, "type": "Directory"},
                    "claimRef": {"namespace": args.namespace, "name": claim_name},
                },
                opts=child,
            )
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-target",
                metadata={"name": claim_name, "namespace": args.namespace, "labels": admin_labels(name)},
                spec={
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": volume.metadata.name,
                    "resources": {"requests": {"storage": HOST_CLAIM_SIZE}},
                },
                opts=child,
            )
            volumes.append({"name": "target", "persistentVolumeClaim": {"claimName": claim.metadata.name}})
            upload = admin_container(
                "copy",
                args.redis_image,
                ["sh", "-c", code, "redis-backup", "copy"],
                {"BACKUP_DIR": SNAPSHOT_DIR, "TARGET_DIR": TARGET_DIR, "KEEP": str(args.keep)},
                [snapshot_mount, {"name": "target", "mountPath": TARGET_DIR}],
            )
        cron = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata={
                "name": name,
                "namespace": args.namespace,
                "labels": admin_labels(name),
                "annotations": checkov_skips(PINNED_BY_TAG),
            },
            spec={
                "schedule": args.schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "activeDeadlineSeconds": 3600,
                        "template": {
                            "metadata": {"labels": admin_labels(name)},
                            "spec": admin_pod([upload], volumes, init=[dump]),
                        },
                    }
                },
            },
            opts=child,
        )
        network_policy(name, args.namespace, (), args.egress, child)
        self.cronjob_name = cron.metadata.name
        self.register_outputs({"cronjob_name": self.cronjob_name})
