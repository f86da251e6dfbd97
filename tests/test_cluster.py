"""The cluster layer: K3sCluster's remote commands and the GPU operator's values, under mocks."""

from __future__ import annotations

import shlex

import pytest
import yaml

from components.gpu_operator import GpuOperatorArgs, helm_values
from components.k3s import K3sClusterArgs, install_command, rewrite_kubeconfig, server_config
from sophia_infra.offline import SAMPLE_KUBECONFIG
from stacks.compat import containerd_template
from tests.conftest import RunStack

PROD = "sophia-ai-production"


def test_server_install_runs_the_pinned_script_with_the_config_on_stdin(run_stack: RunStack):
    run = run_stack(PROD)
    install = run.get("command:remote:Command", "k3s-server-install")
    assert shlex.split(install.inputs["create"]) == [
        "sudo", "-n", "env", "K3S_VERSION=v1.33.5+k3s1", "K3S_ROLE=server", "K3S_NODE_NAME=sophia-ai-production",
        "bash", "/home/ubuntu/.sophia-k3s/k3s-install.sh",
    ]  # fmt: skip
    assert install.secret_paths() == ["stdin", "connection"] or set(install.secret_paths()) == {"stdin", "connection"}
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


def test_kubeconfig_is_read_back_secret_and_unlogged(run_stack: RunStack):
    run = run_stack(PROD)
    read = run.get("command:remote:Command", "k3s-kubeconfig")
    assert read.inputs["logging"] == "none"
    assert "stdout" in read.options["additionalSecretOutputs"]
    assert read.dependencies == ["k3s-server-install"]
    provider = run.get("pulumi:providers:kubernetes", "cluster")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert (
        yaml.safe_load(provider.plain_inputs["kubeconfig"])["clusters"][0]["cluster"]["server"] == "https://104.171.202.64:6443"
    )
    assert run.recording.outputs["kubeconfig"] == "[secret]"


def test_production_cluster_is_protected_and_uninstalled_on_destroy(run_stack: RunStack):
    run = run_stack(PROD)
    assert run.get("sophia:index:K3sCluster", "k3s").options["protect"] is True
    guard = run.get("command:remote:Command", "k3s-server-uninstall-on-destroy")
    assert guard.inputs["delete"] == "sudo -n bash /home/ubuntu/.sophia-k3s/k3s-remove.sh"
    assert "k3s-server-uninstall-on-destroy" in run.get("command:remote:Command", "k3s-server-install").dependencies


def test_keep_on_destroy_leaves_k3s_installed(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:k3s": {"keepOnDestroy": True}})
    assert not [r for r in run.all("command:remote:Command") if r.inputs.get("delete")]


def test_agents_join_the_server_with_the_token(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:k3s": {"agents": ["104.171.202.65"], "dnsName": "k3s.sophia.example.com"}})
    agent = run.get("command:remote:Command", "k3s-agent-1-install")
    config = yaml.safe_load(agent.plain_inputs["stdin"])
    assert config["server"] == "https://104.171.202.64:6443" and config["token"] == "SENTINEL-K3S-TOKEN"
    assert "K3S_ROLE=agent" in agent.inputs["create"]
    assert "k3s-server-install" in agent.dependencies
    assert run.names("NodePatch") == {"node-labels-sophia-ai-production", "node-labels-sophia-ai-production-agent-1"}
    server = yaml.safe_load(run.get("command:remote:Command", "k3s-server-install").plain_inputs["stdin"])
    assert server["tls-san"] == ["104.171.202.64", "k3s.sophia.example.com"]


def test_generated_token_when_none_is_configured(run_stack: RunStack):
    run = run_stack(PROD, without=("sophia-ai:k3s",))
    assert run.get("RandomPassword", "k3s-token").inputs["length"] == 48
    assert run.get("command:remote:Command", "k3s-server-install").inputs["stdin"] == "[secret]"


def test_node_labels_are_reconciled_through_the_api(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:k3s": {"nodeLabels": {"gpu": "true", "pool": "a100"}}})
    patch = run.get("NodePatch", "node-labels-sophia-ai-production")
    assert patch.inputs["metadata"]["labels"] == {"gpu": "true", "pool": "a100"}
    assert patch.options["provider"] == "cluster"


def test_gpu_operator_release_is_pinned_with_k3s_values(run_stack: RunStack):
    run = run_stack(PROD)
    release = run.get("kubernetes:helm.sh/v3:Release", "gpu-operator-release").inputs
    assert (release["chart"], release["version"], release["namespace"]) == ("gpu-operator", "v25.10.0", "gpu-operator")
    assert release["repositoryOpts"] == {"repo": "https://helm.ngc.nvidia.com/nvidia"}
    assert release["values"]["driver"] == {"enabled": False}
    assert release["values"]["dcgmExporter"]["serviceMonitor"] == {"enabled": True}
    smoke = run.get("kubernetes:batch/v1:Job", "gpu-operator-smoke-test")
    assert smoke.inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "gpu-operator-release" in smoke.dependencies
    assert "prometheus-release" in run.depends_on("gpu-operator-release")


def test_smoke_test_can_be_turned_off(run_stack: RunStack):
    run = run_stack(PROD, {"sophia-ai:gpuOperator": {"smokeTest": False}})
    assert [job.name for job in run.all("kubernetes:batch/v1:Job")] == ["redis-acl-sync"]  # Redis's own


@pytest.mark.parametrize(
    ("k3s", "chart", "template"),
    [
        ("v1.33.5+k3s1", "v25.10.0", None),
        ("v1.33.5+k3s1", "v25.3.4", "config-v3.toml.tmpl"),
        ("v1.32.2+k3s1", "v25.3.4", "config.toml.tmpl"),
        ("v1.32.3+k3s1", "v25.3.4", "config-v3.toml.tmpl"),
        ("v1.30.5+k3s1", "v24.9.2", "config.toml.tmpl"),
    ],
)
def test_toolkit_values_per_chart_and_k3s_version(k3s: str, chart: str, template: str | None):
    env = helm_values(GpuOperatorArgs(chart_version=chart, k3s_version=k3s))["toolkit"]["env"]
    assert env[0] == {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}
    if template is None:
        assert len(env) == 1 and containerd_template(k3s, chart) is None
    else:
        assert env[1] == {"name": "CONTAINERD_CONFIG", "value": f"/var/lib/rancher/k3s/agent/etc/containerd/{template}"}


def test_known_broken_versions_are_refused():
    with pytest.raises(ValueError, match=r"cannot configure the containerd 2\.0"):
        helm_values(GpuOperatorArgs(chart_version="v24.9.2", k3s_version="v1.33.5+k3s1"))


def test_kubeconfig_rewrite_parses_yaml():
    rewritten = yaml.safe_load(rewrite_kubeconfig(SAMPLE_KUBECONFIG, "https://10.1.2.3:6443"))
    assert rewritten["clusters"][0]["cluster"]["server"] == "https://10.1.2.3:6443"
    assert rewritten["users"] == yaml.safe_load(SAMPLE_KUBECONFIG)["users"]


def test_values_reach_the_shell_quoted():
    command = install_command("v1.33.5+k3s1", "server", "node a'b", "/home/u/x y.sh")
    assert shlex.split(command)[-3:] == ["K3S_NODE_NAME=node a'b", "bash", "/home/u/x y.sh"]


def test_server_config_is_stable_for_the_same_inputs():
    args = K3sClusterArgs(
        host="1.2.3.4", node_name="n", ssh_user="ubuntu", ssh_private_key="k", version="v1.33.5+k3s1", node_labels={"a": "b"}
    )
    assert server_config(args, "t") == server_config(args, "t")
