"""The stacks fit their host: the peak of every stack sharing a cluster against what its hosts
offer, checked by `check` and by the program alike; quotas that cap."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from infrastructure import capacity, sizing
from sophia_infra import cli
from stacks import loader
from stacks.hosts import GIB, INSTANCE_TYPES, NODE_RESERVE
from stacks.quantities import parse_quantity
from tests.conftest import HOST_KEY, PROJECT, STACKS, RunStack, stack_config

PROD, STAGING, DEV = "sophia-ai-production", "sophia-ai-staging", "sophia-ai-dev"
# The week-0 plan's production: 3 replicas of 2 CPUs / 4 GiB each, scaling to 8.
WEEK_0_PRODUCTION = {
    "sophia-ai:replicas": {"orchestrator": 3, "memory": 3, "mcpServers": 3, "frontend": 3},
    "sophia-ai:resources": {"cpu": "2000m", "memory": "4Gi"},
    "sophia-ai:autoscaler": {"maxReplicas": 8, "targetCpuUtilization": 70},
}


def project_with(tmp_path: Path, changes: dict[str, dict[str, Any]]) -> Path:
    """A copy of the project's stack files with some keys of some stacks changed."""
    for stack in [*STACKS, "sophia-ai-ci"]:
        document = yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())
        document["config"].update(copy.deepcopy(changes.get(stack, {})))
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def check(project: Path, stack: str) -> list[str]:
    loaded = loader.load_stack_file(project / f"Pulumi.{stack}.yaml", stack)
    return capacity.problems(stack, loaded.config, project)


def config_of(stack: str):
    return loader.load_stack_file(PROJECT / f"Pulumi.{stack}.yaml", stack).config


@pytest.mark.parametrize("stack", [*STACKS, "sophia-ai-ci"])
def test_the_stacks_fit_their_hosts(stack: str):
    assert check(PROJECT, stack) == []


def test_the_three_stacks_share_one_1_gpu_host_with_room_to_scale():
    owner, members = capacity.sharing(DEV, config_of(DEV), PROJECT)
    assert owner == PROD and set(members) == set(STACKS)
    host = capacity.cluster_capacity(members[PROD])
    assert host is not None and INSTANCE_TYPES[members[PROD].lambda_instance_type].vcpus == 30
    peaks = [sizing.peak(config) for config in members.values()]
    assert sum(p.cpu for p in peaks) <= host.cpu and sum(p.memory for p in peaks) <= host.memory
    production = members[PROD]
    # Production keeps at least two of everything and its autoscalers can add to it.
    assert min(production.replicas.model_dump().values()) >= 2
    assert production.features.autoscaling and production.autoscaler.max_replicas > max(production.replicas.model_dump().values())


def test_the_week_0_sizes_are_refused_naming_the_keys_and_the_numbers(tmp_path: Path):
    project = project_with(tmp_path, {PROD: WEEK_0_PRODUCTION})
    [line] = check(project, PROD)
    assert line.startswith(f"Pulumi.{PROD}.yaml: sophia-ai:resources: at their peak")
    for text in ("sophia-ai:autoscaler.maxReplicas", "sophia-ai:replicas", "lambdaLabs:instanceType gpu_1x_a10"):
        assert text in line
    # Production alone: 7 Deployments x 9 pods x 2 CPUs, Redis, its Jobs, 3 collectors.
    assert "sophia-ai-production 126.95 CPUs and 253.4 GiB" in line
    assert "offers 25 CPUs and 186.0 GiB after k3s and the OS (2 CPUs, 4.0 GiB)" in line


def test_a_stack_attached_to_the_shared_host_is_accounted_with_the_others(tmp_path: Path):
    bigger = {"sophia-ai:replicas": {"orchestrator": 20, "memory": 1, "mcpServers": 1, "frontend": 1}}
    project = project_with(tmp_path, {DEV: bigger})
    [line] = check(project, DEV)
    assert "(Pulumi.sophia-ai-production.yaml)" in line
    assert all(name in line for name in STACKS)
    # ...and production, whose own file did not change, no longer fits either: they share the host.
    assert check(project, PROD) and check(project, STAGING)


def test_a_pod_must_fit_one_node(tmp_path: Path):
    project = project_with(tmp_path, {STAGING: {"sophia-ai:resources": {"cpu": "29", "memory": "1Gi"}}})
    found = check(project, STAGING)
    assert any("a pod of 29 CPUs and 1.0 GiB fits no node: the largest offers 28 CPUs" in line for line in found), found


def test_gpus_requested_at_the_peak_against_the_gpus_present(tmp_path: Path):
    # Memory at its peak: 3 replicas (the autoscaler's maximum) and a surge pod, one GPU each.
    project = project_with(tmp_path, {PROD: {"sophia-ai:gpuServices": ["memory"]}})
    [line] = check(project, PROD)
    assert line == (
        f"Pulumi.{PROD}.yaml: sophia-ai:gpuServices: at their peak (replicas at their maximum plus a surge pod, one GPU"
        " each) the stacks on this cluster need 4 GPUs, but lambdaLabs:instanceType gpu_1x_a10 has 1"
    )
    larger = project_with(tmp_path, {PROD: {"sophia-ai:gpuServices": ["memory"], "lambdaLabs:instanceType": "gpu_8x_a100"}})
    assert check(larger, PROD) == []


def test_agents_add_their_capacity():
    production = config_of(PROD)
    alone = capacity.cluster_capacity(production)
    k3s = production.k3s.model_copy(update={"agents": ["104.171.202.65"], "agent_instance_type": "gpu_8x_a100"})
    joined = capacity.cluster_capacity(production.model_copy(update={"k3s": k3s}))
    assert alone is not None and joined is not None
    agent = INSTANCE_TYPES["gpu_8x_a100"]
    # The agent's shape, less what it keeps for k3s and the GPU operator's pods on it.
    assert joined.cpu - alone.cpu == agent.cpu - NODE_RESERVE.cpu - 1
    assert joined.gpus == alone.gpus + 8
    assert joined.node == (agent.cpu - NODE_RESERVE.cpu, agent.memory - NODE_RESERVE.memory)


def test_a_cluster_of_another_origin_says_what_it_offers(tmp_path: Path):
    ci = config_of("sophia-ai-ci")
    declared = capacity.cluster_capacity(ci)
    assert declared is not None and (declared.cpu, declared.memory) == (Decimal(3), 10 * GIB)
    project = project_with(tmp_path, {"sophia-ai-ci": {"sophia-ai:clusterCapacity": {"cpu": "2", "memory": "10Gi"}}})
    [line] = check(project, "sophia-ai-ci")
    assert "but sophia-ai:clusterCapacity offers 2 CPUs and 10.0 GiB" in line


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"lambdaLabs:instanceType": "gpu_9x_z900"}, "lambdaLabs:instanceType: must be a Lambda Labs instance type of"),
        ({"lambdaLabs:instanceType": "gpu_1x_gh200"}, "lambdaLabs:instanceType: is an aarch64 machine"),
        (
            {"sophia-ai:clusterCapacity": {"cpu": "8", "memory": "16Gi"}},
            "sophia-ai:clusterCapacity: only applies to a cluster this project does not provision",
        ),
    ],
)
def test_host_keys_are_checked(changes: dict, expected: str):
    config = {**stack_config(PROD), **changes}
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(loader.RawConfig(f"Pulumi.{PROD}.yaml", config, offline=True))
    assert any(line.startswith(f"Pulumi.{PROD}.yaml: {expected}") for line in error.value.lines), error.value.lines


def test_an_attached_cluster_must_say_its_capacity():
    config = {**stack_config(DEV), "sophia-ai:clusterStack": None, "kubernetes:kubeconfig": "~/.kube/other"}
    config = {key: value for key, value in config.items() if value is not None}
    with pytest.raises(loader.ConfigError) as error:
        loader.validate(loader.RawConfig(f"Pulumi.{DEV}.yaml", config, offline=True))
    assert f"Pulumi.{DEV}.yaml: sophia-ai:clusterCapacity: is required for a cluster this project does not provision" in (
        "\n".join(error.value.lines)
    )


def test_check_and_the_engine_refuse_alike(tmp_path: Path, run_stack: RunStack, capsys: pytest.CaptureFixture[str]):
    project = project_with(tmp_path, {PROD: WEEK_0_PRODUCTION})
    assert cli.main(["check", "--config-file", str(project / f"Pulumi.{PROD}.yaml")]) == 1
    refused = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(Exception, match="invalid stack configuration") as error:
        run_stack(PROD, WEEK_0_PRODUCTION)
    assert refused in str(error.value)


@pytest.mark.parametrize("stack", STACKS)
def test_each_quota_is_its_peak_and_together_they_fit_the_host(run_stack: RunStack, stack: str):
    hard = run_stack(stack).get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]
    at_peak = sizing.peak(config_of(stack))
    assert parse_quantity(hard["requests.cpu"]) == parse_quantity(hard["limits.cpu"]) == at_peak.cpu
    assert parse_quantity(hard["requests.memory"]) == at_peak.memory
    assert int(hard["pods"]) == at_peak.pods
    # No GPU service: the namespace may take no GPU (an extended resource is capped by its requests.).
    assert hard["requests.nvidia.com/gpu"] == "0"
    host = capacity.cluster_capacity(config_of(PROD))
    assert host is not None
    total = sum((sizing.peak(config_of(s)).cpu for s in STACKS), Decimal(0))
    assert total <= host.cpu


def test_a_gpu_stacks_quota_caps_its_gpus_at_its_peak(run_stack: RunStack):
    overrides = {"sophia-ai:gpuServices": ["memory"], "lambdaLabs:instanceType": "gpu_8x_a100"}
    hard = run_stack(PROD, overrides).get("ResourceQuota", "sophia-quota").inputs["spec"]["hard"]
    # memory: 3 replicas at the autoscaler's maximum and a surge pod, one GPU each.
    assert hard["requests.nvidia.com/gpu"] == "4"


def test_every_node_keeps_what_k3s_and_the_os_need(run_stack: RunStack):
    agent = "104.171.202.65"
    run = run_stack(
        PROD,
        {"sophia-ai:k3s": {"agents": [agent]}, "sophia-ai:ssh": {"hostKey": HOST_KEY, "agentHostKeys": {agent: HOST_KEY}}},
    )
    for name in ("k3s-server-install", "k3s-agent-1-install"):
        config = yaml.safe_load(run.get("command:remote:Command", name).plain_inputs["stdin"])
        assert config["kubelet-arg"] == ["system-reserved=cpu=2,memory=4096Mi"]
