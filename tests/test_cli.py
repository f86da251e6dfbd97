"""`sophia-infra`: check, render and reference, as people and CI call it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sophia_infra import cli, render
from stacks import reference
from tests.conftest import PROJECT, STACKS, stack_config


@pytest.fixture(autouse=True)
def in_project(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(PROJECT)


@pytest.mark.parametrize("stack", STACKS)
def test_check_accepts_the_real_stacks(stack: str, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["check", stack]) == 0
    assert "valid" in capsys.readouterr().out


def test_check_reports_a_broken_file_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = stack_config("sophia-ai-dev")
    config["sophia-ai:replicas"]["orchestrator"] = -1
    path = tmp_path / "Pulumi.sophia-ai-dev.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    assert cli.main(["check", "--config-file", str(path)]) == 1
    assert "Pulumi.sophia-ai-dev.yaml: sophia-ai:replicas.orchestrator: must be >= 1, got -1" in capsys.readouterr().err


def test_check_can_require_the_secrets(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["check", "sophia-ai-production", "--require-secrets"]) == 1
    assert "sophia-ai:ssh.privateKey: a secret is required here" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "sophia-ai-dev", "--config-file", "x.yaml"],
        # A file named for one stack, checked as another: which rules hold is ambiguous.
        ["check", "sophia-ai-dev", "--config-file", "Pulumi.sophia-ai-production.yaml"],
        ["check", "sophia-ai-nope"],
        ["check", "--config-file", "Pulumi.yaml"],
        ["render", "sophia-ai-dev"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]):
    try:
        assert cli.main(argv) == 2
    except SystemExit as exc:  # argparse's own usage errors
        assert exc.code == 2


def test_render_writes_manifests_resources_and_graph(tmp_path: Path):
    assert cli.main(["render", "sophia-ai-production", "--out", str(tmp_path)]) == 0
    root = tmp_path / "sophia-ai-production"
    manifests = {p.name: yaml.safe_load(p.read_text()) for p in (root / "manifests").glob("*.yaml")}
    deployment = manifests["deployment-sophia-prod-orchestrator.yaml"]
    assert (deployment["apiVersion"], deployment["kind"], deployment["metadata"]["namespace"]) == (
        "apps/v1",
        "Deployment",
        "sophia-prod",
    )
    assert manifests["secret-sophia-prod-snowflake.yaml"]["stringData"]["SNOWFLAKE_PRIVATE_KEY"] == "[secret]"
    resources = json.loads((root / "resources.json").read_text())
    by_name = {r["name"]: r for r in resources}
    assert by_name["k3s-server-install"]["inputs"]["stdin"] == "[secret]"
    assert by_name["gpu-operator-release"]["inputs"]["values"]["driver"] == {"enabled": False}
    assert "k3s-server-install" in by_name["k3s-kubeconfig"]["dependencies"]
    assert by_name["orchestrator-deployment"]["parent"] == "orchestrator"

    # resources.json shows that nothing of the workload waits for the GPU operator.
    def waits_for(name: str) -> set[str]:
        entry = by_name[name]
        direct = {*entry["dependencies"], *([entry["parent"]] if entry["parent"] else [])}
        return direct.union(*(waits_for(d) for d in direct)) if direct else set()

    gpu = {"gpu-operator", *(r["name"] for r in resources if r["parent"] == "gpu-operator")}
    for entry in resources:
        workload = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:Namespace")
        if entry["type"] in workload and entry["name"] not in gpu:
            assert not waits_for(entry["name"]) & gpu, entry["name"]
    graph = (root / "graph.mmd").read_text()
    assert graph.startswith("graph LR") and "subgraph" in graph and "-->" in graph


def test_render_refuses_an_invalid_manifest_naming_object_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    real = render.manifest

    def broken(inputs: dict) -> dict:
        obj = real(inputs)
        if obj["kind"] == "Service":
            obj["spec"]["ports"][0]["port"] = "eighty"
        return obj

    monkeypatch.setattr(render, "manifest", broken)
    assert cli.main(["render", "sophia-ai-dev", "--out", str(tmp_path)]) == 1
    assert (
        "invalid manifest: Service/sophia-dev/frontend: spec.ports.0.port: 'eighty' is not of type 'integer'"
        in capsys.readouterr().err
    )


def test_readme_holds_the_current_configuration_reference():
    readme = (PROJECT / "README.md").read_text()
    start, end = cli.REFERENCE_START, cli.REFERENCE_END
    assert readme[readme.index(start) + len(start) : readme.index(end)] == reference.markdown(), "run: make reference"


def test_reference_update_rewrites_only_its_section(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{cli.REFERENCE_START}stale\n{cli.REFERENCE_END}\noutro\n")
    assert cli.main(["reference", "--update", str(readme)]) == 0
    assert readme.read_text() == f"intro\n{cli.REFERENCE_START}{reference.markdown()}{cli.REFERENCE_END}\noutro\n"


def _reference_example(text: str) -> tuple[str, dict]:
    block = text[text.index("```yaml") + 7 : text.rindex("```")]
    commented = block[block.index("  # Attached") :].splitlines()[1:]
    attached = "\n".join(line.removeprefix("  # ") for line in commented if line.startswith("  # "))
    return block, yaml.safe_load(attached)


def test_reference_documents_every_key_with_an_example(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["reference"]) == 0
    text = capsys.readouterr().out
    for key, *_ in reference.rows():
        assert f"`{key}`" in text
    block, attached = _reference_example(text)
    example = yaml.safe_load(block)["config"]
    assert set(example) | set(attached) == {key for key, *_ in reference.rows() if "." not in key.split(":", 1)[1]}


def test_the_reference_example_is_a_valid_production_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    block, attached = _reference_example(reference.markdown())
    path = tmp_path / "Pulumi.sophia-ai-production.yaml"
    path.write_text(block)
    assert cli.main(["check", "--config-file", str(path)]) == 0, capsys.readouterr().err
    # Each way of attaching to a cluster instead is a valid staging file too.
    config = yaml.safe_load(block)["config"]
    for key in (
        "lambdaLabs:ip",
        "lambdaLabs:instance",
        "lambdaLabs:instanceType",
        "sophia-ai:ssh",
        "sophia-ai:k3s",
        "sophia-ai:gpuOperator",
        "sophia-ai:monitoringStack",
    ):
        config.pop(key)
    config.update(
        {
            "sophia-ai:environment": "staging",
            "kubernetes:kubeconfig": attached["kubernetes:kubeconfig"],
            "sophia-ai:clusterCapacity": attached["sophia-ai:clusterCapacity"],
        }
    )
    staging = tmp_path / "Pulumi.sophia-ai-staging.yaml"
    staging.write_text(yaml.safe_dump({"config": config}))
    assert cli.main(["check", "--config-file", str(staging)]) == 0, capsys.readouterr().err


HOST_ONLY = (
    "sophia-ai:redis.backup: not set: Redis's data is only on the host's disk and is lost with the instance",
    "sophia-ai:k3s.etcdS3: not set, nor sophia-ai:k3s.snapshotDir: the etcd snapshots are only on the host's disk",
)


@pytest.mark.parametrize("stack", STACKS)
def test_check_says_when_productions_state_would_not_survive_the_instance(stack: str, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["check", stack]) == 0
    err = capsys.readouterr().err
    # Only the stack that installs the cluster holds its state; dev and staging use production's.
    assert all((note in err) == (stack == "sophia-ai-production") for note in HOST_ONLY), err


def test_the_state_notes_go_once_the_state_leaves_the_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = stack_config("sophia-ai-production")
    config["sophia-ai:redis"] = {**config.get("sophia-ai:redis", {}), "backup": {"hostPath": "/lambda/nfs/sophia/redis"}}
    config["sophia-ai:k3s"] = {**config.get("sophia-ai:k3s", {}), "snapshotDir": "/lambda/nfs/sophia/etcd"}
    path = tmp_path / "Pulumi.sophia-ai-production.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    assert cli.main(["check", "--config-file", str(path)]) == 0
    err = capsys.readouterr().err
    assert not any(note.split(":")[1] in err for note in HOST_ONLY), err


def test_the_engine_shows_the_state_notes_as_warnings(run_stack, monkeypatch: pytest.MonkeyPatch):
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    run_stack("sophia-ai-production")
    assert [w.split(": ", 1)[1] for w in warned] == list(HOST_ONLY)
