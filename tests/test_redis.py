"""Redis: bounded, retained, rotated without downtime, backed up off the host, as rendered and
against a real `redis-server` (Debian's package, 7.0; the stacks deploy 7.4, and the rendered
configuration uses only what both accept: see components/redis.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pulumi.runtime
import pytest
import redis as redis_py
import yaml
from moto.server import ThreadedMotoServer
from redis.backoff import NoBackoff
from redis.retry import Retry

from components import redis as component
from components.backup import RCLONE_IMAGE
from e2e.stack import free_port
from infrastructure import program
from sophia_infra import offline
from stacks import loader
from stacks.model import StackConfig
from stacks.quantities import parse_quantity
from tests.conftest import PROJECT, STACKS, Run, RunStack, engine_config, stack_config, with_secrets

SCRIPTS = PROJECT / "components/scripts"
S3_KEYS = {"accessKeyId": "SENTINEL-S3-ACCESS-KEY", "secretAccessKey": "SENTINEL-S3-SECRET-KEY"}


def pod_template(run: Run, name: str) -> dict:
    kind = "StatefulSet" if name == "redis" else "Deployment"
    return run.get(kind, f"{name}-{kind.lower()}").inputs["spec"]["template"]


def run_with_secrets(stack: str, key: str, values: dict) -> Run:
    """A run of `stack` whose secret mapping `key` (which the sentinels set) has `values` too."""
    config, secret_keys = with_secrets(stack_config(stack), provision=False)
    config[key] = {**config[key], **values}
    pulumi.runtime.set_all_config(engine_config(config), sorted(secret_keys))
    return Run(offline.run(program.main, stack=stack))


def acl_sync_job(run: Run):
    return run.get("batch/v1:Job", "redis-acl-sync")


# --- the rendered objects -----------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_redis_is_pinned_bounded_by_its_limit_and_reads_no_secret_from_its_config(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    template = pod_template(run, "redis")
    container = template["spec"]["containers"][0]
    assert container["image"] == "redis:7.4.2-alpine"
    assert container["command"] == ["redis-server", "/etc/redis/conf/redis.conf"]
    assert template["spec"]["securityContext"]["runAsUser"] == 10999
    limit = container["resources"]["limits"]["memory"]
    conf = run.get("core/v1:ConfigMap", "redis-config").inputs["data"]["redis.conf"]
    # The one derivation: what the ConfigMap holds is redis_conf of the container's limit.
    assert conf == component.redis_conf(int(parse_quantity(limit)))
    assert f"maxmemory {int(parse_quantity(limit)) // 2}\n" in conf
    assert "maxmemory-policy allkeys-lru\n" in conf and "appendonly yes\n" in conf
    assert "aclfile /etc/redis/acl/users.acl\n" in conf and "requirepass" not in conf
    assert "SENTINEL" not in conf
    # A new configuration restarts Redis: the template carries its hash.
    assert template["metadata"]["annotations"] == {"sophia.ai/config-hash": hashlib.sha256(conf.encode()).hexdigest()}


def test_maxmemory_leaves_half_the_limit_for_the_fork_fragmentation_and_a_backup():
    for limit in (16 * 2**20, 512 * 2**20, 4 * 2**30, 3 * 10**9 + 7):
        budget = component.memory_budget(limit)
        assert budget.maxmemory == limit // 2
        assert budget.maxmemory + budget.replica_buffer_hard <= limit * 9 // 16
        assert budget.replica_buffer_soft < budget.replica_buffer_hard


@pytest.mark.parametrize("stack", STACKS)
def test_production_data_is_retained_outside_k3s_and_found_again_by_the_same_claim(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    claim = run.get("PersistentVolumeClaim", "redis-data")
    # Retention is the StorageClass's, not Pulumi's: a destroy deletes the namespace, and the claim with it.
    assert claim.options["retainOnDelete"] is False
    if stack != "sophia-ai-production":
        assert claim.inputs["spec"]["storageClassName"] == "local-path"
        assert run.all("StorageClass") == []
        return
    storage = run.get("StorageClass", "redis-retained-storage").inputs
    assert claim.inputs["spec"]["storageClassName"] == storage["metadata"]["name"] == "sophia-prod-retained"
    assert storage["provisioner"] == "rancher.io/local-path"
    assert storage["reclaimPolicy"] == "Retain"
    assert storage["volumeBindingMode"] == "WaitForFirstConsumer"
    # <nodePath>/<namespace>/<claim>/: the same directory for the same claim, whatever the PV's name.
    assert storage["parameters"] == {
        "nodePath": "/var/lib/sophia/storage",
        "pathPattern": "{{ .PVC.Namespace }}/{{ .PVC.Name }}/",
    }
    assert not storage["parameters"]["nodePath"].startswith("/var/lib/rancher/k3s")


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/rancher/k3s",
        "/var/lib/rancher/k3s/storage",
        "/var/lib/kubelet/x",
        "/etc/rancher/k3s",
        "relative",
        "/a/../b",
        "/a b",
    ],
)
def test_a_data_path_the_k3s_uninstaller_deletes_is_refused(path: str):
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(
            loader.RawConfig(
                "Pulumi.sophia-ai-dev.yaml", {**stack_config("sophia-ai-dev"), "sophia-ai:redis": {"dataPath": path}}
            )
        )
    assert "sophia-ai:redis.dataPath" in str(error.value)


def test_a_new_password_restarts_the_clients_not_redis_and_only_after_redis_accepts_it(run_stack: RunStack):
    before = run_stack("sophia-ai-dev")
    after = run_with_secrets("sophia-ai-dev", "sophia-ai:redis", {"password": "SENTINEL-REDIS-PASSWORD-2"})
    assert pod_template(before, "redis") == pod_template(after, "redis")
    for service in ("orchestrator", "memory"):
        old = pod_template(before, service)["metadata"]["annotations"]["sophia.ai/redis-config-hash"]
        new = pod_template(after, service)["metadata"]["annotations"]["sophia.ai/redis-config-hash"]
        assert old != new and len(new) == 64 and "SENTINEL" not in new
        # The clients' Secret, hence the clients, wait for the Job that makes Redis accept it.
        assert "redis-acl-sync" in after.depends_on(f"{service}-deployment")
    assert "sophia.ai/redis-config-hash" not in pod_template(after, "mcp-gong")["metadata"]["annotations"]
    assert acl_sync_job(before).inputs["metadata"]["name"] != acl_sync_job(after).inputs["metadata"]["name"]
    assert "redis-acl-sync" in after.get("core/v1:Secret", "redis-secret").dependencies
    assert "redis-statefulset" in after.depends_on("redis-acl-sync")


def test_the_acl_file_holds_hashes_of_every_valid_password_and_clients_get_the_new_one():
    run = run_with_secrets("sophia-ai-dev", "sophia-ai:redis", {"password": "new pw", "previousPassword": "old pw"})
    acl = run.get("core/v1:Secret", "redis-acl")
    assert acl.secret_paths() == ["stringData"]
    values = acl.plain_inputs["stringData"]
    assert values["users.acl"] == component.acl_file(["new pw", "old pw"])
    assert "new pw" not in values["users.acl"] and "old pw" not in values["users.acl"]
    assert (values["password"], values["previous-password"]) == ("new pw", "old pw")
    clients = run.get("core/v1:Secret", "redis-secret")
    assert clients.secret_paths() == ["stringData"] and clients.plain_inputs["stringData"] == {"password": "new pw"}


def test_generated_passwords_are_one_resource_per_rotation_and_the_previous_one_is_kept_on_request(run_stack: RunStack):
    without = ("sophia-ai:redis",)
    one = run_stack("sophia-ai-dev", {"sophia-ai:redis": {"passwordRotation": 3}}, without=without)
    assert one.names("RandomPassword") >= {"redis-password-3"} and "redis-password-2" not in one.names("RandomPassword")
    assert one.get("RandomPassword", "redis-password-3").inputs["keepers"] == {"rotation": "3"}
    two = run_stack("sophia-ai-dev", {"sophia-ai:redis": {"passwordRotation": 3, "keepPreviousPassword": True}}, without=without)
    assert {"redis-password-2", "redis-password-3"} <= two.names("RandomPassword")
    assert two.get("core/v1:Secret", "redis-acl").plain_inputs["stringData"]["users.acl"].count("#") == 2


def test_the_oldest_generated_password_takes_over_the_one_made_before_generations_had_names(
    run_stack: RunStack, monkeypatch: pytest.MonkeyPatch
):
    """An upgrade must not change the password in use: `redis-password` becomes the oldest
    generation still accepted, with the same keepers (so the same value)."""
    aliases: dict[str, list] = {}
    original = component.random.RandomPassword

    def recording(name: str, *args, opts=None, **kwargs):
        aliases[name] = [alias.name for alias in (opts.aliases or [])] if opts else []
        return original(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(component.random, "RandomPassword", recording)
    redis = {"passwordRotation": 4, "keepPreviousPassword": True}
    run_stack("sophia-ai-dev", {"sophia-ai:redis": redis}, without=("sophia-ai:redis",))
    assert aliases["redis-password-3"] == ["redis-password"] and aliases["redis-password-4"] == []


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        ({"keepPreviousPassword": True}, "passwordRotation >= 1"),
        ({"previousPassword": "SENTINEL-PREVIOUS"}, "previousPassword: needs password"),
        ({"password": "line\nbreak"}, "control characters"),
        ({"password": "tab\there"}, "control characters"),
        ({"password": "SENTINEL" * 65}, "at most 512 characters"),
    ],
)
def test_passwords_that_cannot_be_kept_safely_are_refused_without_being_echoed(redis: dict, message: str):
    raw = loader.RawConfig(
        "Pulumi.sophia-ai-dev.yaml",
        {**stack_config("sophia-ai-dev"), "sophia-ai:redis": redis},
        frozenset({("sophia-ai:redis",)}),
    )
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(raw)
    text = str(error.value)
    assert "sophia-ai:redis" in text and message in text
    for value in redis.values():
        if isinstance(value, str):
            assert value not in text


@pytest.mark.parametrize("stack", STACKS)
def test_redis_admin_jobs_are_restricted_and_reach_only_redis(run_stack: RunStack, stack: str):
    run = run_stack(stack)
    job = acl_sync_job(run).inputs
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] == {"cpu": component.ADMIN_CPU, "memory": component.ADMIN_MEMORY}
    assert all("valueFrom" not in e and "SENTINEL" not in e["value"] for e in container["env"])
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert "app.kubernetes.io/part-of" not in labels  # not a Sophia pod: no egress to them
    # Redis takes the Job's connections; the Job may open Redis's port and nothing else (the whole
    # matrix: tests/test_traffic.py).
    policies = {r.name: r.inputs["spec"] for r in run.all("NetworkPolicy")}
    job_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis-acl-sync"}}}
    assert job_pods in policies["redis-network-policy"]["ingress"][0]["from"]
    assert policies["redis-acl-sync-network-policy"]["podSelector"] == job_pods["podSelector"]
    assert policies["redis-acl-sync-network-policy"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}],
        }
    ]


@pytest.mark.parametrize("field", ["privateKey", "privateKeyPassphrase"])
def test_a_new_snowflake_credential_restarts_its_consumers_only(run_stack: RunStack, field: str):
    before = run_stack("sophia-ai-dev")
    after = run_with_secrets("sophia-ai-dev", "sophia-ai:snowflake", {field: "SENTINEL-SNOWFLAKE-CREDENTIAL-2"})
    secret = after.get("Secret", "snowflake-secret")
    for service in ("orchestrator", "memory"):
        old = pod_template(before, service)["metadata"]["annotations"]["sophia.ai/snowflake-credential-hash"]
        assert len(old) == 64 and "SENTINEL" not in old
        assert pod_template(after, service)["metadata"]["annotations"]["sophia.ai/snowflake-credential-hash"] != old
        # The pods restart only once the Secret holds the new credential.
        deployment = after.get("Deployment", f"{service}-deployment")
        assert secret.name in deployment.dependencies, deployment.dependencies
    for service in ("mcp-gong", "frontend"):
        assert "sophia.ai/snowflake-credential-hash" not in pod_template(before, service)["metadata"]["annotations"]


# --- backups, as rendered -----------------------------------------------------------------------


def backup_config(destination: dict) -> dict:
    return {"sophia-ai:redis": {"backup": {"schedule": "15 */6 * * *", "keep": 5, **destination}}}


def test_no_backup_unless_configured(run_stack: RunStack):
    assert run_stack("sophia-ai-dev").all("CronJob") == []


def test_backups_to_s3_read_their_keys_from_a_secret_and_reach_only_redis_and_the_bucket(run_stack: RunStack):
    s3 = {"endpoint": "minio.example.com:9000", "bucket": "sophia-backups", "folder": "redis/dev", **S3_KEYS}
    run = run_stack("sophia-ai-dev", backup_config({"s3": s3}))
    cron = run.get("CronJob", "redis-backup-cronjob").inputs
    assert cron["spec"]["schedule"] == "15 */6 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [dump], [upload] = pod["initContainers"], pod["containers"]
    assert dump["image"] == "redis:7.4.2-alpine" and upload["image"] == RCLONE_IMAGE
    assert dump["command"][-1] == "dump" and upload["command"][-1] == "s3"
    env = {e["name"]: e["value"] for e in upload["env"]}
    assert env["S3_ENDPOINT"] == "minio.example.com:9000" and env["S3_FOLDER"] == "redis/dev" and env["KEEP"] == "5"
    assert {e["name"]: e["value"] for e in dump["env"]}["REDIS_HOST"] == "redis"
    for container in (dump, upload):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert all("valueFrom" not in e for e in container["env"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["redis-auth"]["secret"]["secretName"] == "redis"
    keys = run.get("core/v1:Secret", "redis-backup-s3")
    assert keys.secret_paths() == ["stringData"]
    assert keys.plain_inputs["stringData"] == {
        "access-key-id": S3_KEYS["accessKeyId"],
        "secret-access-key": S3_KEYS["secretAccessKey"],
    }
    assert volumes["s3-keys"]["secret"]["secretName"] == "redis-backup-s3"
    internet = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.42.0.0/16", "10.43.0.0/16"]}}
    assert run.get("NetworkPolicy", "redis-backup-network-policy").inputs["spec"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}],
        },
        {"to": [internet], "ports": [{"protocol": "TCP", "port": 9000}]},
    ]
    # Room in the quota for the backup pod beside the ACL sync Job.
    assert (
        int(run.get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]["pods"])
        == int(run_stack("sophia-ai-dev").get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]["pods"]) + 1
    )


def test_s3_backup_keys_are_required_secrets():
    s3 = {"endpoint": "s3.amazonaws.com", "bucket": "sophia-backups"}
    values = {**stack_config("sophia-ai-dev"), **backup_config({"s3": s3})}
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(loader.RawConfig("Pulumi.sophia-ai-dev.yaml", values))
    assert "sophia-ai:redis.backup.s3.accessKeyId: a secret is required" in str(error.value)
    values = {**stack_config("sophia-ai-dev"), **backup_config({"s3": {**s3, "accessKeyId": "AKIA-PLAIN"}})}
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(loader.RawConfig("Pulumi.sophia-ai-dev.yaml", values))
    assert "sophia-ai:redis.backup.s3.accessKeyId: must be set as a secret" in str(error.value)
    assert "AKIA-PLAIN" not in str(error.value)


@pytest.mark.parametrize(
    "backup",
    [
        {},
        {"hostPath": "/lambda/nfs/x", "s3": {"bucket": "sophia-backups"}},
        {"hostPath": "lambda/nfs"},
        {"hostPath": "/lambda/nfs/x", "schedule": "@hourly; reboot"},
        {"s3": {"bucket": "Not_A_Bucket"}},
        {"s3": {"bucket": "sophia-backups", "endpoint": "host:99999"}},
        {"s3": {"bucket": "sophia-backups", "folder": "../up"}},
    ],
)
def test_a_bad_backup_destination_is_refused(backup: dict):
    values = {**stack_config("sophia-ai-dev"), "sophia-ai:redis": {"backup": backup}}
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(loader.RawConfig("Pulumi.sophia-ai-dev.yaml", values))
    assert "sophia-ai:redis.backup" in str(error.value)


def test_backups_to_a_lambda_filesystem_use_a_retained_volume_of_that_directory(run_stack: RunStack):
    run = run_stack("sophia-ai-staging", backup_config({"hostPath": "/lambda/nfs/sophia-backups/redis"}))
    volume = run.get("core/v1:PersistentVolume", "redis-backup-target-volume").inputs
    assert volume["spec"]["hostPath"] == {"path": "/lambda/nfs/sophia-backups/redis", "type": "Directory"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["claimRef"] == {"namespace": "sophia-staging", "name": "redis-backup-target"}
    claim = run.get("PersistentVolumeClaim", "redis-backup-target").inputs
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"] == "sophia-staging-redis-backup-target"
    pod = run.get("CronJob", "redis-backup-cronjob").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    # The restricted Pod Security Standard admits no hostPath in a pod: only the claim.
    assert all("hostPath" not in v for v in pod["volumes"])
    assert pod["containers"][0]["command"][-1] == "copy"
    assert run.all("NetworkPolicy") and "redis-backup-egress" not in run.names("NetworkPolicy")
    hard = run.get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]
    assert parse_quantity(hard["requests.storage"]) == parse_quantity("8Gi") + parse_quantity("1Gi")


# --- a real redis-server ------------------------------------------------------------------------


@dataclass
class Server:
    """A redis-server started with the rendered configuration (paths and port moved to a temp dir)."""

    root: Path
    limit_bytes: int = 64 * 2**20
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def acl(self) -> Path:
        """What the Redis pod sees of the `redis-acl` Secret."""
        return self.root / "acl"

    def conf(self) -> str:
        return component.redis_conf(
            self.limit_bytes, data_dir=str(self.data), acl_file=str(self.acl / "users.acl"), port=self.port
        )

    def write_acl(self, passwords: list[str]) -> None:
        """As the kubelet refreshes a mounted Secret: the new file appears at once."""
        self.acl.mkdir(parents=True, exist_ok=True)
        staged = self.acl / ".users.acl.new"
        staged.write_text(component.acl_file(passwords))
        staged.replace(self.acl / "users.acl")

    def start(self, password: str, *extra: str) -> Server:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.root / "redis.conf").write_text(self.conf())
        self.process = subprocess.Popen(
            ["redis-server", str(self.root / "redis.conf"), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client(password).ping():
                    return self
            except (redis_py.exceptions.BusyLoadingError, redis_py.exceptions.ConnectionError):
                pass
            assert self.process.poll() is None, self.process.communicate()[0]
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def client(self, password: str) -> redis_py.Redis:
        # No retries: a client must not hide an error it met (redis-py retries connection errors).
        return redis_py.Redis(port=self.port, password=password, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def stop(self) -> str:
        """A pod's termination: SIGTERM, then Redis flushes its AOF and exits."""
        assert self.process is not None
        self.process.terminate()
        output = self.process.communicate(timeout=20)[0]
        self.process = None
        return output


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process is not None:
            server.process.kill()
            server.process.wait()


def test_a_full_redis_evicts_and_keeps_serving(tmp_path: Path, servers: list[Server]):
    server = Server(tmp_path, limit_bytes=16 * 2**20)
    server.write_acl(["pw"])
    servers.append(server.start("pw"))
    client = server.client("pw")
    maxmemory = component.memory_budget(server.limit_bytes).maxmemory
    value = b"v" * 1024
    for batch in range(64):  # 64 MiB of writes into an 8 MiB bound: no write is refused
        pipe = client.pipeline(transaction=False)
        for i in range(1024):
            pipe.set(f"k{batch}:{i}", value)
        assert all(pipe.execute())
    info = client.info()
    assert info["maxmemory"] == maxmemory and info["maxmemory_policy"] == "allkeys-lru"
    assert info["evicted_keys"] > 0
    # Eviction keeps what Redis counts for it (used_memory less the AOF and replica buffers: INFO's
    # mem_not_counted_for_evict, evict.c) at the bound; the buffers are what the other half of the
    # limit is for (memory_budget), and the whole stays inside it.
    assert info["used_memory"] - info["mem_not_counted_for_evict"] <= maxmemory * 1.05
    assert info["used_memory"] < server.limit_bytes * 3 // 4
    assert client.get("k63:1023") == value  # the newest survive
    assert client.set("after", "full") and client.get("after") == b"full"


def test_the_runbook_restore_reads_back_the_data_of_the_retained_directory(tmp_path: Path, servers: list[Server]):
    first = Server(tmp_path)
    first.write_acl(["pw"])
    servers.append(first.start("pw"))
    first.client("pw").mset({f"key{i}": f"value{i}" for i in range(1000)})
    first.stop()
    # A new claim finds the same directory (the StorageClass's pathPattern): a new Redis on it.
    second = Server(tmp_path)
    servers.append(second.start("pw"))
    assert second.client("pw").get("key999") == b"value999"
    assert second.client("pw").dbsize() == 1000


def run_acl_sync(server: Server, job_view: dict[str, str], deadline: int = 20) -> subprocess.CompletedProcess[str]:
    """The Job, with its own (fresh) view of the `redis-acl` Secret."""
    view = server.root / f"job-{time.monotonic_ns()}"
    view.mkdir()
    for name, text in job_view.items():
        (view / name).write_text(text)
    env = {
        **os.environ,
        "ACL_DIR": str(view),
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(server.port),
        "DEADLINE_SECONDS": str(deadline),
    }
    return subprocess.run(
        ["sh", str(SCRIPTS / "redis-acl-sync.sh")], env=env, capture_output=True, text=True, timeout=deadline + 30
    )


def secret_view(current: str, previous: str | None = None) -> dict[str, str]:
    """The `redis-acl` Secret's files for these passwords, as the component writes them."""
    passwords = [current] if previous is None else [current, previous]
    view = {"users.acl": component.acl_file(passwords), "password": current}
    if previous is not None:
        view["previous-password"] = previous
    return view


class Clients:
    """Clients that keep working with one password, opening new connections all the time (a
    pod's pool reconnects), recording every error."""

    def __init__(self, server: Server, password: str):
        self.server, self.password = server, password
        self.errors: list[str] = []
        self.operations = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            client = self.server.client(self.password)
            try:
                for _ in range(20):
                    client.set(f"c:{self.password}", self.operations)
                    client.get(f"c:{self.password}")
                    self.operations += 1
            except redis_py.exceptions.RedisError as exc:
                self.errors.append(type(exc).__name__)
            finally:
                client.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def test_a_rotation_adds_rolls_and_removes_without_an_error_or_a_restart(tmp_path: Path, servers: list[Server]):
    old, new = "old password", "new password"
    server = Server(tmp_path)
    server.write_acl([old])
    servers.append(server.start(old))
    run_id = server.client(old).info("server")["run_id"]
    old_clients = Clients(server, old)
    time.sleep(0.2)

    # (a) pulumi up: the Secret has both; the kubelet refreshes Redis's copy a while later.
    threading.Timer(1.5, server.write_acl, [[new, old]]).start()
    with pytest.raises(redis_py.exceptions.AuthenticationError):
        server.client(new).ping()  # what a client given the new password too early would see
    synced = run_acl_sync(server, secret_view(new, old))
    assert synced.returncode == 0, synced.stderr
    # (b) only now do the clients get the new password; the old ones still work.
    new_clients = Clients(server, new)
    time.sleep(0.5)
    old_clients.stop()
    # (c) pulumi up: the old password goes.
    threading.Timer(1.0, server.write_acl, [[new]]).start()
    synced = run_acl_sync(server, secret_view(new))
    assert synced.returncode == 0, synced.stderr
    time.sleep(0.3)
    new_clients.stop()

    assert old_clients.errors == [] and new_clients.errors == []
    assert old_clients.operations > 100 and new_clients.operations > 100
    with pytest.raises(redis_py.exceptions.AuthenticationError):
        server.client(old).ping()
    assert server.client(new).info("server")["run_id"] == run_id  # never restarted
    for output in (synced.stdout, synced.stderr):
        assert old not in output and new not in output


def test_acl_sync_refuses_a_rotation_that_drops_the_password_redis_knows(tmp_path: Path, servers: list[Server]):
    old, new = "SENTINEL-OLD", "SENTINEL-NEW"
    server = Server(tmp_path)
    server.write_acl([old])
    servers.append(server.start(old))
    server.write_acl([new])  # Redis would only see it on a restart
    synced = run_acl_sync(server, secret_view(new), deadline=2)
    assert synced.returncode == 1
    assert "accepts none of the passwords" in synced.stderr and "SENTINEL" not in synced.stdout + synced.stderr
    assert server.client(old).ping()  # clients holding the old password keep working


NASTY = [
    'with "quotes" and \\ backslashes',
    "spaces >plus <minus #hash ~key &chan +@all",
    "  leading and trailing  ",
    "$(reboot) `id` ${HOME} ;|&",
    "ünïcødé ✓ 密码",
    "x" * 512,
    "%s%n%x",
]


def test_any_password_the_configuration_accepts_works_and_reaches_no_file_or_log(tmp_path: Path, servers: list[Server]):
    for index, password in enumerate(NASTY):
        values = {**stack_config("sophia-ai-dev"), "sophia-ai:redis": {"password": password}}
        config = loader.validate(
            loader.RawConfig("Pulumi.sophia-ai-dev.yaml", values, frozenset({("sophia-ai:redis",)}), offline=True)
        ).config
        assert isinstance(config, StackConfig) and config.redis.password is not None
        server = Server(tmp_path / str(index))
        server.write_acl([config.redis.password.get_secret_value()])
        servers.append(server.start(password))
        assert server.client(password).set("k", "v")
        with pytest.raises(redis_py.exceptions.AuthenticationError):
            server.client(password + "x").ping()
        files = server.conf() + (server.acl / "users.acl").read_text()
        log = server.stop()
        assert password not in files and password not in log


def test_a_broken_configuration_does_not_echo_a_password(tmp_path: Path):
    password = "SENTINEL password"
    server = Server(tmp_path)
    server.write_acl([password])
    # Redis prints the offending line of a bad redis.conf, and the reason of a bad ACL file.
    (tmp_path / "data").mkdir()
    for broken_conf, broken_acl in (("no-such-directive yes\n", None), ("", "user default on >pw-typed-in-by-hand\nbogus\n")):
        (tmp_path / "redis.conf").write_text(server.conf() + broken_conf)
        if broken_acl is not None:
            (server.acl / "users.acl").write_text(component.acl_file([password]) + broken_acl)
        result = subprocess.run(["redis-server", str(tmp_path / "redis.conf")], capture_output=True, text=True, timeout=20)
        assert result.returncode != 0
        assert password not in result.stdout + result.stderr
        assert ("no-such-directive" if broken_acl is None else "ACL") in result.stdout + result.stderr


# --- backups against a real Redis and an S3-compatible server -----------------------------------


@pytest.fixture
def s3_server() -> Iterator[tuple[str, int]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server.get_host_and_port()
    server.stop()


BACKUP_PASSWORD = "SENTINEL-REDIS-PASSWORD"


def backup_env(tmp_path: Path, server: Server, **extra: str) -> dict[str, str]:
    auth = tmp_path / "auth"
    auth.mkdir(exist_ok=True)
    (auth / "password").write_text(BACKUP_PASSWORD)
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir(exist_ok=True)
    # As in the pod: no AWS_* settings of this machine (e.g. AWS_CA_BUNDLE) for rclone to pick up.
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
        "BACKUP_DIR": str(snapshot),
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(server.port),
        "REDIS_AUTH_FILE": str(auth / "password"),
        **extra,
    }


def backup(step: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["sh", str(SCRIPTS / "redis-backup.sh"), step], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SENTINEL" not in result.stdout + result.stderr
    return result


def restore_into(directory: Path, snapshot: Path) -> None:
    """The runbook's restore: the snapshot becomes the base of a fresh append-only directory."""
    aof = directory / "appendonlydir"
    if aof.exists():
        aof.rename(directory / "appendonlydir.before-restore")
    aof.mkdir(parents=True)
    shutil.copy(snapshot, aof / "appendonly.aof.1.base.rdb")
    (aof / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")


def test_a_backup_goes_to_s3_keeps_the_newest_and_restores(tmp_path: Path, servers: list[Server], s3_server: tuple[str, int]):
    server = Server(tmp_path / "redis")
    server.write_acl([BACKUP_PASSWORD])
    servers.append(server.start(BACKUP_PASSWORD))
    server.client(BACKUP_PASSWORD).mset({f"key{i}": f"value{i}" for i in range(500)})
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "access-key-id").write_text("SENTINEL-KEY-ID")
    (keys / "secret-access-key").write_text("SENTINEL-SECRET-KEY")
    host, port = s3_server
    env = backup_env(
        tmp_path,
        server,
        S3_ENDPOINT=f"{host}:{port}",
        S3_INSECURE="true",
        S3_REGION="us-east-1",
        S3_BUCKET="sophia-backups",
        S3_FOLDER="redis/test",
        S3_KEYS_DIR=str(keys),
        KEEP="2",
    )
    rclone_env = {
        **env,
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_S3_PROVIDER": "Other",
        "RCLONE_S3_ENDPOINT": f"http://{host}:{port}",
        "RCLONE_S3_ACCESS_KEY_ID": "SENTINEL-KEY-ID",
        "RCLONE_S3_SECRET_ACCESS_KEY": "SENTINEL-SECRET-KEY",
    }

    def rclone(*args: str) -> str:
        return subprocess.run(["rclone", *args], env=rclone_env, capture_output=True, text=True, check=True, timeout=60).stdout

    rclone("mkdir", ":s3:sophia-backups")
    for old in ("redis-20200101T000000Z.rdb", "redis-20210101T000000Z.rdb", "unrelated.txt"):
        (tmp_path / old).write_text("old")
        rclone("copyto", str(tmp_path / old), f":s3:sophia-backups/redis/test/{old}")

    dumped = backup("dump", env)
    assert "taken and checked" in dumped.stdout
    uploaded = backup("s3", env)
    assert "uploaded" in uploaded.stdout and "deleted redis-20200101T000000Z.rdb" in uploaded.stdout
    names = sorted(rclone("lsf", ":s3:sophia-backups/redis/test").split())
    newest = (tmp_path / "snapshot" / "name").read_text().strip()
    assert names == sorted(["redis-20210101T000000Z.rdb", newest, "unrelated.txt"])

    # The host is gone: a new Redis on an empty volume, restored from the bucket.
    rclone("copyto", f":s3:sophia-backups/redis/test/{newest}", str(tmp_path / "restored.rdb"))
    fresh = Server(tmp_path / "new-host")
    restore_into(fresh.data, tmp_path / "restored.rdb")
    fresh.write_acl([BACKUP_PASSWORD])
    servers.append(fresh.start(BACKUP_PASSWORD))
    assert fresh.client(BACKUP_PASSWORD).dbsize() == 500 and fresh.client(BACKUP_PASSWORD).get("key499") == b"value499"
    # ... and it keeps what is written next in its append-only file, as any Redis does.
    fresh.client(BACKUP_PASSWORD).set("after", "restore")
    fresh.stop()
    again = Server(tmp_path / "new-host")
    servers.append(again.start(BACKUP_PASSWORD))
    assert again.client(BACKUP_PASSWORD).dbsize() == 501


def test_a_backup_to_a_directory_keeps_the_newest(tmp_path: Path, servers: list[Server]):
    server = Server(tmp_path / "redis")
    server.write_acl([BACKUP_PASSWORD])
    servers.append(server.start(BACKUP_PASSWORD))
    server.client(BACKUP_PASSWORD).set("only", "key")
    target = tmp_path / "lambda-fs"
    target.mkdir()
    for old in ("redis-20200101T000000Z.rdb", "redis-20210101T000000Z.rdb", "redis-20220101T000000Z.rdb", "notes.txt"):
        (target / old).write_text("old")
    env = backup_env(tmp_path, server, TARGET_DIR=str(target), KEEP="2")
    backup("dump", env)
    backup("copy", env)
    newest = (tmp_path / "snapshot" / "name").read_text().strip()
    assert sorted(p.name for p in target.iterdir()) == sorted(["notes.txt", "redis-20220101T000000Z.rdb", newest])
    assert (target / newest).read_bytes() == (tmp_path / "snapshot" / "dump.rdb").read_bytes()


# --- the rotation workflow, with stubbed pulumi and gh ------------------------------------------

PULUMI_STUB = """#!/usr/bin/env python3
import json, sys
state = json.load(open(sys.argv[0] + ".json"))
args = sys.argv[1:]
stack, key = args[args.index("--stack") + 1], args[args.index("--path") + 1]
values = state.setdefault(stack, {})
if args[:2] == ["config", "get"]:
    if key not in values:
        sys.exit(1)
    print(values[key])
elif args[:2] == ["config", "set"]:
    values[key] = args[-1]
    json.dump(state, open(sys.argv[0] + ".json", "w"))
"""


def rotation_run(tmp_path: Path, state: dict, open_pull_requests: int = 0) -> tuple[str, dict]:
    """The workflow's decide and change steps, as GitHub would run them (bash, $GITHUB_OUTPUT)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pulumi").write_text(PULUMI_STUB)
    (bin_dir / "pulumi.json").write_text(json.dumps(state))
    (bin_dir / "gh").write_text(f"#!/bin/sh\necho {open_pull_requests}\n")
    for stub in ("pulumi", "gh"):
        (bin_dir / stub).chmod(0o755)
    workflow = yaml.safe_load((PROJECT / ".github/workflows/secret-rotation.yml").read_text())
    job = workflow["jobs"]["rotate"]
    output = tmp_path / "output"
    output.write_text("")
    env = {**os.environ, **job["env"], "PATH": f"{bin_dir}:{os.environ['PATH']}", "GITHUB_OUTPUT": str(output)}
    step = ""
    for entry in job["steps"]:
        condition = entry.get("if", "")
        # The rotation's own steps: deciding, then changing the stack files (not the token or git).
        if entry.get("id") != "step" and not entry.get("name", "").startswith("Step "):
            continue
        if condition and f"== '{step}'" not in condition:
            continue
        subprocess.run(["bash", "-e", "-c", entry["run"]], env=env, check=True, capture_output=True, text=True)
        step = output.read_text().partition("step=")[2].strip()
    return step, json.loads((bin_dir / "pulumi.json").read_text())


def test_the_rotation_workflow_adds_then_retires_and_waits_while_a_pull_request_is_open(tmp_path: Path):
    keep, rotation, password = (
        "sophia-ai:redis.keepPreviousPassword",
        "sophia-ai:redis.passwordRotation",
        "sophia-ai:redis.password",
    )
    state = {"sophia-ai-dev": {}, "sophia-ai-staging": {rotation: "2"}, "sophia-ai-production": {password: "[secret]"}}
    step, after = rotation_run(tmp_path, state)
    assert step == "rotate"
    assert after["sophia-ai-dev"] == {rotation: "1", keep: "true"}
    assert after["sophia-ai-staging"] == {rotation: "3", keep: "true"}
    assert after["sophia-ai-production"] == {password: "[secret]"}  # configured: by hand
    step, retired = rotation_run(tmp_path, after)
    assert step == "retire"
    assert retired["sophia-ai-dev"] == {rotation: "1", keep: "false"}
    assert retired["sophia-ai-staging"] == {rotation: "3", keep: "false"}
    step, unchanged = rotation_run(tmp_path, after, open_pull_requests=1)
    assert step == "wait" and unchanged == after
