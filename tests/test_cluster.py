"""The cluster layer under mocks: K3sCluster's remote commands, the provider that talks to the
cluster, the GPU operator and kube-prometheus-stack; and the configuration that drives them."""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import json
import re
import shlex
import warnings
from typing import Any

import pytest
import yaml
from pulumi.runtime import settings

from components.gpu_operator import SMOKE_TEST_DEADLINE_SECONDS, GpuOperatorArgs, helm_values
from components.k3s import K3sClusterArgs, ServerSecrets, install_command, join_token, pulumi_kubeconfig, server_config
from components.monitoring import K3S_EMBEDDED_COMPONENTS
from sophia_infra import offline
from stacks import loader
from stacks.loader import ConfigError, RawConfig
from tests.conftest import HOST_KEY, RunStack, stack_config

PROD = "sophia-ai-production"
PROD_FILE = "Pulumi.sophia-ai-production.yaml"
AGENT = "104.171.202.65"
AGENT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
S3 = {
    "bucket": "sophia-etcd",
    "region": "us-west-2",
    "folder": "k3s/production",
    "accessKeyId": "SENTINEL-S3-ACCESS-KEY",
    "secretAccessKey": "SENTINEL-S3-SECRET-KEY",
}


def remote(run: Any) -> list[Any]:
    return [r for r in run.resources if r.type.startswith("command:remote:")]


def with_agent(**k3s: Any) -> dict[str, Any]:
    return {
        "sophia-ai:k3s": {"agents": [AGENT], "agentToken": "SENTINEL-AGENT-TOKEN", **k3s},
        "sophia-ai:ssh": {"hostKey": HOST_KEY, "agentHostKeys": {AGENT: AGENT_KEY}},
    }


# --- the hosts ---------------------------------------------------------------------------------


def test_server_install_runs_the_pinned_script_with_the_config_on_stdin(run_stack: RunStack):
    run = run_stack(PROD)
    install = run.get("command:remote:Command", "k3s-server-install")
    assert shlex.split(install.inputs["create"]) == [
        "sudo", "-n", "env", "SOPHIA_K3S_VERSION=v1.33.5+k3s1", "SOPHIA_K3S_ROLE=server",
        "SOPHIA_K3S_NODE_NAME=sophia-ai-production", "bash", "/home/ubuntu/.sophia-k3s/k3s-install.sh",
    ]  # fmt: skip
    assert set(install.secret_paths()) == {"stdin", "connection"}
    assert install.inputs["logging"] == "stderr"
    config = yaml.safe_load(install.plain_inputs["stdin"])
    assert config["token"] == "SENTINEL-K3S-TOKEN"
    assert config["write-kubeconfig-mode"] == "0600"
    assert config["secrets-encryption"] is True
    assert config["tls-san"] == ["104.171.202.64"]
    assert config["node-label"] == ["gpu=true", "node-role=worker", "storage=ssd"]
    assert install.plain_inputs["connection"]["privateKey"] == "SENTINEL-SSH-PRIVATE-KEY"
    # Re-run when the uploaded script changes: the trigger is its hash.
    upload = run.get("command:remote:CopyToRemote", "k3s-server-install-script")
    assert install.inputs["triggers"] == upload.inputs["triggers"] and len(install.inputs["triggers"][0]) == 64
    assert "k3s-server-install-script" in install.dependencies


def test_no_k3s_variable_is_set_for_the_host_scripts(run_stack: RunStack):
    """k3s's installer saves every K3S_* variable into k3s.service.env (finding 13)."""
    run = run_stack(PROD, with_agent(snapshotDir="/lambda/nfs/etcd"))
    for command in run.all("command:remote:Command"):
        words = shlex.split(command.inputs.get("create", "")) + shlex.split(command.inputs.get("delete", ""))
        assert not [w for w in words if re.match(r"^(K3S|CONTAINERD)_\w*=", w)], command.name


def test_every_ssh_connection_checks_the_host_key(run_stack: RunStack):
    run = run_stack(PROD, with_agent())
    keys = {r.name: r.plain_inputs["connection"].get("hostKey") for r in remote(run)}
    assert keys and all(keys.values()), keys
    for name, key in keys.items():
        assert key == (AGENT_KEY if name.startswith("k3s-agent-1-") else HOST_KEY), name


def test_the_provider_identity_does_not_follow_the_kubeconfig(run_stack: RunStack, monkeypatch: pytest.MonkeyPatch):
    """A reinstall makes the kubeconfig unknown during the preview, a new token changes it: with a
    cluster identifier pulumi-kubernetes updates the provider instead of replacing it."""
    first = run_stack(PROD).get("pulumi:providers:kubernetes", "cluster")
    secret = json.loads(offline.SAMPLE_TOKEN_SECRET)
    secret["data"]["token"] = base64.b64encode(b"another-token").decode()
    monkeypatch.setattr(offline, "SAMPLE_TOKEN_SECRET", json.dumps(secret))
    second = run_stack(PROD).get("pulumi:providers:kubernetes", "cluster")
    assert first.plain_inputs["kubeconfig"] != second.plain_inputs["kubeconfig"]
    assert first.inputs["clusterIdentifier"] == second.inputs["clusterIdentifier"] == "k3s:sophia-ai-production@104.171.202.64"


def test_the_kubeconfig_holds_a_service_account_token_not_a_client_certificate(run_stack: RunStack):
    """k3s's client certificates last a year and are renewed on the host: a copy goes stale."""
    run = run_stack(PROD)
    read = run.get("command:remote:Command", "k3s-kubeconfig")
    assert read.inputs["create"] == "sudo -n bash /home/ubuntu/.sophia-k3s/k3s-pulumi-token.sh"
    assert read.inputs["logging"] == "none" and read.inputs["addPreviousOutputInEnv"] is False
    assert "stdout" in read.options["additionalSecretOutputs"]
    # Read again when the server is reinstalled or the script changes, not on every reconfiguration.
    server = run.get("command:remote:Command", "k3s-server-install")
    upload = run.get("command:remote:CopyToRemote", "k3s-token-script")
    assert read.inputs["triggers"] == ["k3s-server-install-id", upload.inputs["triggers"][0]]
    assert {"k3s-server-install", "k3s-token-script"} <= set(read.dependencies)
    assert server.name in run.depends_on("cluster")
    provider = run.get("pulumi:providers:kubernetes", "cluster")
    assert provider.inputs["kubeconfig"] == "[secret]"
    kubeconfig = yaml.safe_load(provider.plain_inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://104.171.202.64:6443"
    assert kubeconfig["users"][0]["user"] == {"token": "sample-service-account-token"}
    assert run.recording.outputs["kubeconfig"] == "[secret]"


def test_a_kubeconfig_without_a_token_is_refused():
    with pytest.raises(ValueError, match="no token"):
        pulumi_kubeconfig(json.dumps({"data": {"ca.crt": "Y2E="}}), "https://k3s:6443")


def test_the_dns_name_is_the_kubeconfig_server(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:k3s": {"dnsName": "k3s.sophia.example.com"}})
    kubeconfig = yaml.safe_load(run.get("pulumi:providers:kubernetes", "cluster").plain_inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://k3s.sophia.example.com:6443"


def test_keep_on_destroy_changes_the_uninstall_in_place(run_stack: RunStack):
    """Removing the uninstall resource would run its delete, i.e. uninstall k3s during an ordinary
    update: it always exists, and only its `delete` (an in-place change) carries the flag."""
    runs = {keep: run_stack(PROD, {"sophia-ai:k3s": {"keepOnDestroy": keep}}) for keep in (False, True)}
    names = {keep: {(r.type, r.name) for r in run.resources} for keep, run in runs.items()}
    assert names[False] == names[True]
    guards = {keep: run.get("command:remote:Command", "k3s-server-uninstall-on-destroy") for keep, run in runs.items()}
    # pulumi-command replaces a Command only when `triggers` change (common/inputs.go).
    assert guards[False].inputs.get("triggers") == guards[True].inputs.get("triggers") is None
    assert {k: v for k, v in guards[False].inputs.items() if k != "delete"} == {
        k: v for k, v in guards[True].inputs.items() if k != "delete"
    }
    script = "/home/ubuntu/.sophia-k3s/k3s-remove.sh"
    assert guards[False].inputs["delete"] == f"sudo -n env SOPHIA_K3S_KEEP_ON_DESTROY=false bash {script}"
    assert guards[True].inputs["delete"] == f"sudo -n env SOPHIA_K3S_KEEP_ON_DESTROY=true bash {script}"
    assert "k3s-server-uninstall-on-destroy" in runs[False].get("command:remote:Command", "k3s-server-install").dependencies


def test_a_k3s_upgrade_changes_only_the_installs(run_stack: RunStack):
    """What the runbook promises the preview of an upgrade shows: the installs update in place
    (no trigger changes), the kubeconfig is not read again and the provider does not change."""
    runs = [run_stack(PROD, with_agent(version=version)) for version in ("v1.33.5+k3s1", "v1.33.6+k3s1")]
    # Assets compare by their path (a FileAsset object is new in every run).
    inputs = [
        {r.name: json.dumps(r.plain_inputs, default=lambda v: str(v.path), sort_keys=True) for r in run.resources} for run in runs
    ]
    changed = {name for name in inputs[0] if inputs[0][name] != inputs[1][name]}
    assert changed == {"k3s-server-install", "k3s-agent-1-install"}
    for name in changed:
        assert json.loads(inputs[0][name])["triggers"] == json.loads(inputs[1][name])["triggers"]


def test_production_cluster_is_protected(run_stack: RunStack):
    assert run_stack(PROD).get("sophia:index:K3sCluster", "k3s").options["protect"] is True


def test_agents_join_with_their_own_token_pinning_the_server_ca(run_stack: RunStack):
    run = run_stack(PROD, with_agent(dnsName="k3s.sophia.example.com"))
    server = yaml.safe_load(run.get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"])
    assert server["agent-token"] == "SENTINEL-AGENT-TOKEN"
    assert server["tls-san"] == ["104.171.202.64", "k3s.sophia.example.com"]
    agent = run.get("command:remote:Command", "k3s-agent-1-install")
    assert agent.inputs["stdin"] == "[secret]"
    config = yaml.safe_load(agent.plain_inputs["stdin"])
    assert config["server"] == "https://104.171.202.64:6443"
    assert config["token"] == f"{offline.SAMPLE_CA_HASH}::node:SENTINEL-AGENT-TOKEN"
    assert "SENTINEL-K3S-TOKEN" not in agent.plain_inputs["stdin"]
    assert "SOPHIA_K3S_ROLE=agent" in agent.inputs["create"]
    # The CA hash is read from the server's agent-token file (k3s computes it); nothing secret leaves the host.
    ca_hash = run.get("command:remote:Command", "k3s-server-ca-hash")
    assert ca_hash.inputs["create"] == "sudo -n cut -d: -f1 /var/lib/rancher/k3s/server/agent-token"
    assert "k3s-server-install" in ca_hash.dependencies
    assert {"k3s-server-install", "k3s-server-ca-hash"} <= run.depends_on("k3s-agent-1-install")


def test_agent_node_labels_are_patched_once_the_agent_is_registered(run_stack: RunStack):
    run = run_stack(PROD, with_agent())
    assert run.names("NodePatch") == {"node-labels-sophia-ai-production", "node-labels-sophia-ai-production-agent-1"}
    assert "k3s-agent-1-install" in run.get("NodePatch", "node-labels-sophia-ai-production-agent-1").dependencies
    assert "k3s-server-install" in run.get("NodePatch", "node-labels-sophia-ai-production").dependencies


def test_flannel_is_encrypted_from_the_first_node_on(run_stack: RunStack):
    for changes in ({}, with_agent()):
        server = yaml.safe_load(
            run_stack(PROD, changes).get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"]
        )
        assert server["flannel-backend"] == "wireguard-native"


def test_generated_tokens_when_none_are_configured(run_stack: RunStack):
    run = run_stack(
        PROD,
        {"sophia-ai:k3s": {"agents": [AGENT]}, "sophia-ai:ssh": {"hostKey": HOST_KEY, "agentHostKeys": {AGENT: AGENT_KEY}}},
        without=("sophia-ai:k3s",),
    )
    assert run.get("RandomPassword", "k3s-token").inputs["length"] == 48
    assert run.get("RandomPassword", "k3s-agent-token").inputs["length"] == 48
    server = yaml.safe_load(run.get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"])
    assert server["token"] != server["agent-token"]
    assert run.get("command:remote:Command", "k3s-server-install").inputs["stdin"] == "[secret]"


def test_etcd_snapshots_go_to_the_snapshot_dir_and_s3_with_secret_keys(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:k3s": {"snapshotDir": "/lambda/nfs/etcd", "etcdS3": S3}})
    install = run.get("command:remote:Command", "k3s-server-install")
    config = yaml.safe_load(install.plain_inputs["stdin"])
    assert config["etcd-snapshot-dir"] == "/lambda/nfs/etcd"
    assert (config["cluster-init"], config["etcd-snapshot-schedule-cron"], config["etcd-snapshot-retention"]) == (
        True,
        "0 */6 * * *",
        28,
    )
    assert {k: v for k, v in config.items() if k.startswith("etcd-s3")} == {
        "etcd-s3": True,
        "etcd-s3-endpoint": "s3.amazonaws.com",
        "etcd-s3-bucket": "sophia-etcd",
        "etcd-s3-region": "us-west-2",
        "etcd-s3-folder": "k3s/production",
        "etcd-s3-access-key": "SENTINEL-S3-ACCESS-KEY",
        "etcd-s3-secret-key": "SENTINEL-S3-SECRET-KEY",
    }
    assert "SOPHIA_K3S_SNAPSHOT_DIR=/lambda/nfs/etcd" in shlex.split(install.inputs["create"])
    plain = json.dumps([r.inputs for r in run.resources], default=str) + json.dumps(run.recording.outputs, default=str)
    assert "SENTINEL-S3" not in plain


def test_volumes_are_created_where_a_k3s_uninstall_leaves_them(run_stack: RunStack):
    # Production's Redis volume is retained in a class whose directory must be the provisioner's
    # own (components/redis.py): k3s's default-local-storage-path, outside /var/lib/rancher/k3s.
    run = run_stack(PROD, {"sophia-ai:redis": {"dataPath": "/lambda/nfs/sophia/storage"}})
    config = yaml.safe_load(run.get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"])
    assert config["default-local-storage-path"] == "/lambda/nfs/sophia/storage"
    default = yaml.safe_load(run_stack(PROD).get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"])
    assert default["default-local-storage-path"] == "/var/lib/sophia/storage"


def test_server_config_is_stable_for_the_same_inputs():
    args = K3sClusterArgs(
        host="1.2.3.4", node_name="n", ssh_user="ubuntu", ssh_private_key="k", version="v1.33.5+k3s1", node_labels={"a": "b"}
    )
    assert server_config(args, ServerSecrets("t", "a")) == server_config(args, ServerSecrets("t", "a"))


def test_values_reach_the_shell_quoted():
    command = install_command("v1.33.5+k3s1", "server", "node a'b", "/home/u/x y.sh", "/mnt/a b")
    assert shlex.split(command)[-4:] == [
        "SOPHIA_K3S_NODE_NAME=node a'b",
        "SOPHIA_K3S_SNAPSHOT_DIR=/mnt/a b",
        "bash",
        "/home/u/x y.sh",
    ]


@pytest.mark.parametrize("text", ["", "K10abc", "K10" + "g" * 64, "secret-token"])
def test_a_ca_hash_that_is_not_one_is_refused(text: str):
    with pytest.raises(ValueError, match="K10<sha256>"):
        join_token(text, "t")


# --- the provider ------------------------------------------------------------------------------


def failure(run_stack: RunStack, *args: Any) -> Exception:
    """The error of a program run that must fail. What it left behind is dropped, so that it cannot
    surface in the next run: the runtime awaits every output in a global set that set_mocks does
    not reset, and the tasks still on the loop."""
    with pytest.raises(Exception) as caught:
        run_stack(*args)
    settings.SETTINGS.outputs.clear()
    loop = asyncio.get_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # The run's abandoned coroutines go now, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()
    return caught.value


def test_a_stack_reference_must_hold_a_kubeconfig(run_stack: RunStack, monkeypatch: pytest.MonkeyPatch):
    """get_output gives None for a missing output, and the provider would load the ambient
    kubeconfig: the program fails instead."""
    new_resource = offline.RecordingMocks.new_resource

    def without_outputs(self: offline.RecordingMocks, args: Any) -> tuple[str | None, dict]:
        name, outputs = new_resource(self, args)
        if args.typ == "pulumi:pulumi:StackReference":
            outputs["outputs"], outputs["secretOutputNames"] = {}, []
        return name, outputs

    monkeypatch.setattr(offline.RecordingMocks, "new_resource", without_outputs)
    reference = "organization/sophia-ai/sophia-ai-production"
    error = failure(run_stack, "sophia-ai-dev", {"kubernetes:kubeconfig": None, "sophia-ai:clusterStack": reference})
    assert "kubeconfig" in str(error)


def test_an_empty_kubeconfig_never_reaches_the_provider(run_stack: RunStack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(offline, "SAMPLE_KUBECONFIG", "  \n")
    reference = "organization/sophia-ai/sophia-ai-production"
    error = failure(run_stack, "sophia-ai-dev", {"kubernetes:kubeconfig": None, "sophia-ai:clusterStack": reference})
    assert "the cluster's kubeconfig is empty" in str(error)
    # A blank configured one is refused before anything is registered.
    error = failure(run_stack, "sophia-ai-dev", {"kubernetes:kubeconfig": "", "sophia-ai:clusterStack": None})
    assert "kubernetes:kubeconfig: must not be empty" in str(error)


def test_a_stack_reference_provider_is_identified_by_the_stack(run_stack: RunStack):
    reference = "organization/sophia-ai/sophia-ai-production"
    run = run_stack("sophia-ai-dev", {"kubernetes:kubeconfig": None, "sophia-ai:clusterStack": reference})
    assert run.get("pulumi:providers:kubernetes", "cluster").inputs["clusterIdentifier"] == f"stack:{reference}"


# --- the GPU operator and the Prometheus stack -------------------------------------------------


def test_the_gpu_operator_is_the_vendored_chart_with_the_hosts_toolkit(run_stack: RunStack):
    run = run_stack(PROD)
    release = run.get("kubernetes:helm.sh/v3:Release", "gpu-operator-release").inputs
    assert (release["version"], release["namespace"]) == ("v25.10.0", "gpu-operator")
    assert release["chart"].endswith("/charts/gpu-operator") and "repositoryOpts" not in release
    values = release["values"]
    assert values["toolkit"] == {"enabled": False} and values["driver"] == {"enabled": False}
    assert values["cdi"] == {"enabled": False}
    assert values["operator"] == {"runtimeClass": "nvidia"}
    assert values["dcgmExporter"]["serviceMonitor"] == {"enabled": True}
    assert "prometheus-release" in run.depends_on("gpu-operator-release")


def test_the_gpu_smoke_test_job_ends_before_pulumi_stops_waiting(run_stack: RunStack):
    run = run_stack(PROD)
    smoke = run.get("kubernetes:batch/v1:Job", "gpu-operator-smoke-test")
    assert smoke.inputs["spec"]["activeDeadlineSeconds"] == SMOKE_TEST_DEADLINE_SECONDS
    assert smoke.inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    timeouts = smoke.options["customTimeouts"]
    for operation in ("create", "update"):
        assert int(timeouts[operation].removesuffix("s")) > SMOKE_TEST_DEADLINE_SECONDS
    assert "gpu-operator-release" in smoke.dependencies


def test_smoke_test_can_be_turned_off(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:gpuOperator": {"smokeTest": False}})
    assert [job.name for job in run.all("kubernetes:batch/v1:Job")] == ["redis-acl-sync"]  # Redis's own


def test_kube_prometheus_stack_does_not_scrape_what_k3s_runs_inside_itself(run_stack: RunStack):
    release = run_stack(PROD).get("kubernetes:helm.sh/v3:Release", "prometheus-release").inputs
    assert release["chart"].endswith("/charts/kube-prometheus-stack") and release["version"] == "75.15.0"
    for component in ("kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd"):
        assert release["values"][component] == {"enabled": False}
    assert set(K3S_EMBEDDED_COMPONENTS) == {"kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd"}


def test_helm_values_name_no_toolkit_environment():
    """The toolkit would rewrite k3s's containerd configuration: no CONTAINERD_* pointing at it."""
    assert "env" not in helm_values(GpuOperatorArgs(chart_version="v25.10.0"))["toolkit"]


# --- configuration -----------------------------------------------------------------------------


def check(changes: dict[str, Any], offline_: bool = True, secret_keys: tuple[str, ...] = ()) -> list[str]:
    config = copy.deepcopy(stack_config(PROD))
    config.update(changes)
    raw = RawConfig(PROD_FILE, config, frozenset((key,) for key in secret_keys), offline=offline_)
    with pytest.raises(ConfigError) as caught:
        loader.validate(raw)
    return caught.value.lines


def test_production_needs_every_hosts_ssh_key_to_deploy():
    base = {
        "sophia-ai:ssh": {"privateKey": "k"},
        "sophia-ai:snowflake": {**stack_config(PROD)["sophia-ai:snowflake"], "privateKey": "p"},
    }
    lines = check(
        {**base, "sophia-ai:k3s": {"agents": [AGENT]}}, offline_=False, secret_keys=("sophia-ai:ssh", "sophia-ai:snowflake")
    )
    assert lines[0].startswith(f"{PROD_FILE}: sophia-ai:ssh.hostKey: required in production, every SSH connection checks it")
    assert "ssh-keyscan -t ed25519 104.171.202.64" in lines[0]
    assert lines[1].startswith(f"{PROD_FILE}: sophia-ai:ssh.agentHostKeys.{AGENT}: required in production")
    # Offline (a stack file cannot know it before the instance exists) it is a note, not an error.
    loaded = loader.validate(RawConfig(PROD_FILE, stack_config(PROD), offline=True))
    assert any("sophia-ai:ssh.hostKey: not set; `pulumi up` requires it" in note for note in loaded.notes)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"sophia-ai:ssh": {"hostKey": "ssh-ed25519 not-base64!"}},
            "sophia-ai:ssh.hostKey: must be an OpenSSH public host key such as 'ssh-ed25519 AAAAC3Nza...'",
        ),
        (
            # An RSA blob announced as ed25519: what ssh.ParseAuthorizedKey refuses.
            {"sophia-ai:ssh": {"hostKey": "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ"}},
            "sophia-ai:ssh.hostKey: must be an OpenSSH public host key",
        ),
        (
            {"sophia-ai:ssh": {"hostKey": HOST_KEY + "\nssh-rsa AAAA"}},
            "sophia-ai:ssh.hostKey: must be an OpenSSH public host key",
        ),
        (
            {"sophia-ai:ssh": {"agentHostKeys": {"104.171.202.99": AGENT_KEY}}},
            "sophia-ai:ssh.agentHostKeys.104.171.202.99: is not one of sophia-ai:k3s.agents",
        ),
        ({"sophia-ai:k3s": {"snapshotDir": "relative/dir"}}, "sophia-ai:k3s.snapshotDir: must be an absolute path"),
        ({"sophia-ai:k3s": {"snapshotDir": "/mnt/a b"}}, "sophia-ai:k3s.snapshotDir: must be an absolute path"),
        ({"sophia-ai:k3s": {"etcdS3": {"bucket": "Bad_Bucket"}}}, "sophia-ai:k3s.etcdS3.bucket: must be an S3 bucket name"),
        (
            {"sophia-ai:k3s": {"etcdS3": {"bucket": "b-1", "endpoint": "https://s3.example.com"}}},
            "sophia-ai:k3s.etcdS3.endpoint: must be host[:port] without a scheme",
        ),
        (
            {"sophia-ai:k3s": {"etcdS3": {"bucket": "b-1", "accessKeyId": "AKIA", "secretAccessKey": "x"}}},
            "sophia-ai:k3s.etcdS3.accessKeyId: must be set as a secret",
        ),
        ({"sophia-ai:gpuOperator": {"driverEnabled": True}}, "sophia-ai:gpuOperator.driverEnabled: must be false"),
        (
            {"sophia-ai:monitoringStack": {"chartVersion": "75.16.0"}},
            "sophia-ai:monitoringStack.chartVersion: only the vendored chart can be deployed (charts/kube-prometheus-stack, 75.15.0)",
        ),
        (
            {"sophia-ai:k3s": {"version": "v1.24.17+k3s1"}},
            "sophia-ai:k3s.version: must be Kubernetes 1.25 to 1.37",
        ),
    ],
    ids=[
        "host key junk",
        "host key type mismatch",
        "host key two lines",
        "unknown agent",
        "relative snapshot dir",
        "snapshot dir with space",
        "bucket",
        "endpoint with scheme",
        "plain s3 keys",
        "operator driver",
        "monitoring chart",
        "k3s too old for the chart",
    ],
)
def test_broken_cluster_configuration_is_refused(changes: dict[str, Any], expected: str):
    lines = check(changes)
    assert any(line.startswith(f"{PROD_FILE}: {expected}") for line in lines), lines


def test_s3_snapshot_keys_are_required_secrets():
    loaded = loader.validate(
        RawConfig(PROD_FILE, {**stack_config(PROD), "sophia-ai:k3s": {"etcdS3": {"bucket": "b-1"}}}, offline=True)
    )
    assert {"sophia-ai:k3s.etcdS3.accessKeyId", "sophia-ai:k3s.etcdS3.secretAccessKey"} <= set(loaded.missing_secrets)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("104.171.202.64", "https://104.171.202.64:6443"),
        ("2001:db8::10", "https://[2001:db8::10]:6443"),
        ("k3s.sophia.example.com", "https://k3s.sophia.example.com:6443"),
    ],
)
def test_an_ipv6_server_is_bracketed_in_every_url(run_stack: RunStack, host: str, url: str):
    agent = "104.171.202.65"
    changes = {
        "lambdaLabs:ip": host if ":" in host or host[0].isdigit() else "104.171.202.64",
        "sophia-ai:k3s": {"agents": [agent], **({"dnsName": host} if host[0].isalpha() else {})},
        "sophia-ai:ssh": {"hostKey": HOST_KEY, "agentHostKeys": {agent: AGENT_KEY}},
    }
    run = run_stack(PROD, changes)
    agent_config = yaml.safe_load(run.get("command:remote:Command", "k3s-agent-1-install").plain_inputs["stdin"])
    server = url if host[0] != "k" else "https://104.171.202.64:6443"
    assert agent_config["server"] == server
    kubeconfig = yaml.safe_load(run.get("pulumi:providers:kubernetes", "cluster").plain_inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == url
