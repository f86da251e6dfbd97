"""The shell that runs on the hosts, run here in a sandbox: a temporary root, and `curl`,
`systemctl`, `nvidia-smi`, `modprobe`, k3s's installer and the k3s binary stubbed so that every
call is recorded. The k3s stub behaves like k3s and kubectl where it matters: the API server
answers /readyz before the node is registered, and `kubectl wait` fails at once on a node that
does not exist yet (kubernetes/kubectl pkg/cmd/wait/wait.go ignores NotFound only for delete)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from components.k3s import INSTALL_SCRIPT, REMOVE_SCRIPT, TOKEN_SCRIPT, pulumi_kubeconfig

VERSION = "v1.33.5+k3s1"
CONFIG = "node-name: gpu-1\ntoken: SENTINEL-K3S-TOKEN\nwrite-kubeconfig-mode: '0600'\n"

# The k3s binary the fake installer installs. State lives in $STATE; STUB_* variables shape it.
K3S_STUB = r"""#!/bin/sh
if [ "$1" = --version ]; then echo "k3s version @VERSION@ (stub)"; exit 0; fi
echo "k3s $*" >> "$CALLS"
args=" $* "
count() { n=$(cat "$STATE/$1" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/$1"; echo "$n"; }
registered() { [ "$(cat "$STATE/node-gets" 2>/dev/null || echo 0)" -ge "${STUB_NODE_REGISTERS_AFTER:-0}" ]; }
case "$args" in
  *" get --raw=/readyz "*) [ -z "$STUB_NOT_READY" ] ;;
  *" get node "*)
    if [ "$(count node-gets)" -lt "${STUB_NODE_REGISTERS_AFTER:-0}" ]; then
      echo "Error from server (NotFound): nodes not found" >&2; exit 1
    fi ;;
  *" wait "*)
    if ! registered; then echo "Error from server (NotFound): nodes not found" >&2; exit 1; fi
    [ -z "$STUB_NEVER_READY" ] ;;
  *" apply -f - "*) cat >> "$STATE/applied.yaml" ;;
  *" jsonpath={.data.token} "*)
    if [ "$(count token-gets)" -ge "${STUB_TOKEN_AFTER:-0}" ] && [ -z "$STUB_NO_TOKEN" ]; then printf 'dG9rZW4='; fi ;;
  *" get secret sophia-pulumi-token -o json "*)
    printf '{"kind": "Secret", "data": {"token": "c2VydmljZS1hY2NvdW50LXRva2Vu", "ca.crt": "Y2E="}}\n' ;;
esac
"""

# k3s's installer, reduced to what matters here: it saves every K3S_*/CONTAINERD_* variable it
# sees into the service's environment file (k3s-io/k3s install.sh, create_env_file), installs
# the binary, and k3s adds the nvidia runtime to containerd when the toolkit is on the host.
FAKE_INSTALLER = r"""#!/bin/sh
echo "installer $INSTALL_K3S_VERSION $INSTALL_K3S_EXEC" >> "$CALLS"
mkdir -p "$SOPHIA_ROOT/usr/local/bin" "$SOPHIA_ROOT/etc/systemd/system" "$SOPHIA_ROOT/var/lib/rancher/k3s/agent/etc/containerd"
env | grep -E '^(K3S|CONTAINERD)_' > "$SOPHIA_ROOT/etc/systemd/system/k3s.service.env" || true
sed "s/@VERSION@/$INSTALL_K3S_VERSION/" "$STUB_K3S_BINARY" > "$SOPHIA_ROOT/usr/local/bin/k3s"
containerd="$SOPHIA_ROOT/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
echo 'version = 3' > "$containerd"
if [ -x "$SOPHIA_ROOT/usr/bin/nvidia-container-runtime" ]; then
  echo "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia']" >> "$containerd"
fi
printf '#!/bin/sh\necho uninstall >> "$CALLS"\nrm -f "$SOPHIA_ROOT/usr/local/bin/k3s" "$0"\n' > "$SOPHIA_ROOT/usr/local/bin/k3s-uninstall.sh"
chmod +x "$SOPHIA_ROOT/usr/local/bin/k3s" "$SOPHIA_ROOT/usr/local/bin/k3s-uninstall.sh"
"""
STUBS = {
    "curl": 'echo "curl $*" >> "$CALLS"\nwhile [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
    'cat "$FAKE_INSTALLER" > "$out"\n',
    # `systemctl restart` of a Type=notify unit waits for k3s to report ready, with no limit of its
    # own (TimeoutStartSec=0): STUB_HANG_RESTART makes it hang like a k3s that never gets ready.
    "systemctl": 'echo "systemctl $*" >> "$CALLS"\n'
    'if [ "$1" = restart ] && [ -n "$STUB_HANG_RESTART" ]; then exec /bin/sleep 30; fi\n'
    'if [ "$1" = is-active ] && [ -n "$STUB_INACTIVE" ]; then exit 3; fi\n',
    "nvidia-smi": '[ -z "$STUB_NO_DRIVER" ]\n',
    "modprobe": 'echo "modprobe $*" >> "$CALLS"\n[ -z "$STUB_NO_WIREGUARD" ]\n',
    "sleep": "exit 0\n",
}


class Sandbox:
    def __init__(self, tmp: Path):
        self.root = tmp / "root"
        self.state = tmp / "state"
        self.state.mkdir()
        self.calls = tmp / "calls.log"
        self.calls.touch()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, body in STUBS.items():
            path = bin_dir / name
            path.write_text(f"#!/bin/sh\n{body}")
            path.chmod(0o755)
        for name, body in (("installer.sh", FAKE_INSTALLER), ("k3s-stub", K3S_STUB)):
            (tmp / name).write_text(body)
        # A Lambda Stack host: the NVIDIA Container Toolkit's runtime is installed.
        self.toolkit = self.root / "usr/bin/nvidia-container-runtime"
        self.toolkit.parent.mkdir(parents=True)
        self.toolkit.write_text("#!/bin/sh\n")
        self.toolkit.chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SOPHIA_ROOT": str(self.root),
            "CALLS": str(self.calls),
            "STATE": str(self.state),
            "FAKE_INSTALLER": str(tmp / "installer.sh"),
            "STUB_K3S_BINARY": str(tmp / "k3s-stub"),
            "SOPHIA_K3S_READY_TIMEOUT": "3",
            "SOPHIA_K3S_START_TIMEOUT": "3",
            "SOPHIA_K3S_POLL_INTERVAL": "1",
        }

    def run(self, script: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        self.calls.write_text("")
        for counter in self.state.glob("*-gets"):
            counter.unlink()
        return subprocess.run(
            ["bash", str(script)], input=stdin, env={**self.env, **env}, capture_output=True, text=True, check=False
        )

    def install(self, config: str = CONFIG, version: str = VERSION, **env: str) -> subprocess.CompletedProcess[str]:
        env = {"SOPHIA_K3S_VERSION": version, "SOPHIA_K3S_ROLE": "server", "SOPHIA_K3S_NODE_NAME": "gpu-1", **env}
        return self.run(INSTALL_SCRIPT, config, **env)

    def calls_list(self) -> list[str]:
        return self.calls.read_text().splitlines()

    def kubectl_calls(self) -> list[str]:
        return [call.split(" kubectl ", 1)[1] for call in self.calls_list() if call.startswith("k3s ")]

    @property
    def config(self) -> Path:
        return self.root / "etc/rancher/k3s/config.yaml"


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def test_first_run_installs_the_pinned_version_and_writes_the_config(sandbox: Sandbox):
    result = sandbox.install()
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls_list()
    assert "curl --fail --silent --show-error --location --retry 3 --max-time 120 --output" in calls[1]
    assert calls[1].endswith(f"https://raw.githubusercontent.com/k3s-io/k3s/{VERSION}/install.sh")
    assert f"installer {VERSION} server" in calls
    assert "--request-timeout=10s get --raw=/readyz" in sandbox.kubectl_calls()
    assert "wait --for=condition=Ready node/gpu-1 --timeout=3s" in sandbox.kubectl_calls()
    assert sandbox.config.read_text() == CONFIG
    assert stat.S_IMODE(sandbox.config.stat().st_mode) == 0o600
    assert "SENTINEL-K3S-TOKEN" not in result.stdout + result.stderr


def test_the_node_is_waited_for_until_it_registers_then_until_ready(sandbox: Sandbox):
    """The first-install race: /readyz passes while the kubelet has not registered the node yet."""
    result = sandbox.install(STUB_NODE_REGISTERS_AFTER="2")
    assert result.returncode == 0, result.stderr
    kubectl = sandbox.kubectl_calls()
    gets = [i for i, call in enumerate(kubectl) if call.endswith("get node gpu-1")]
    waits = [i for i, call in enumerate(kubectl) if call.startswith("wait ")]
    assert len(gets) == 3 and len(waits) == 1
    assert kubectl.index("--request-timeout=10s get --raw=/readyz") < gets[0] and gets[-1] < waits[0]


@pytest.mark.parametrize(
    ("stub", "message"),
    [
        ({"STUB_NOT_READY": "1"}, "timed out after 3s waiting for the API server to answer /readyz"),
        ({"STUB_NODE_REGISTERS_AFTER": "100"}, "timed out after 3s waiting for node gpu-1 to register with the API server"),
        ({"STUB_NEVER_READY": "1"}, "timed out after 3s waiting for node gpu-1 to be Ready"),
        ({"STUB_INACTIVE": "1"}, "timed out after 3s waiting for the k3s service to be active"),
    ],
    ids=["readyz", "registration", "ready", "service"],
)
def test_every_wait_is_bounded_and_says_what_it_waited_for(sandbox: Sandbox, stub: dict[str, str], message: str):
    result = sandbox.install(**stub)
    assert result.returncode == 1
    assert f"k3s-install: {message}" in result.stderr


def test_a_restart_that_never_returns_is_cut_off(sandbox: Sandbox):
    sandbox.install()
    started = time.monotonic()
    result = sandbox.install(config=CONFIG + "tls-san: [k3s.example.com]\n", STUB_HANG_RESTART="1", SOPHIA_K3S_START_TIMEOUT="1")
    assert result.returncode == 1
    assert "timed out after 1s waiting for systemctl restart k3s" in result.stderr
    assert time.monotonic() - started < 20  # the stub hangs for 30 s


def test_an_installer_that_never_returns_is_cut_off(sandbox: Sandbox):
    assert sandbox.install().returncode == 0
    # An upgrade whose installer hangs (its own `systemctl restart`, a stalled download).
    Path(sandbox.env["FAKE_INSTALLER"]).write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    result = sandbox.install(version="v1.33.6+k3s1", SOPHIA_K3S_INSTALL_TIMEOUT="1")
    assert result.returncode == 1
    assert "the k3s installer did not finish within 1s" in result.stderr


def test_no_k3s_variable_reaches_the_service_environment(sandbox: Sandbox):
    """k3s's installer writes every K3S_*/CONTAINERD_* variable it sees into k3s.service.env, where
    k3s reads them as flags: neither the script's inputs nor the caller's may get there."""
    result = sandbox.install(K3S_TOKEN="leaked-from-the-caller", CONTAINERD_ADDRESS="/tmp/x")
    assert result.returncode == 0, result.stderr
    assert (sandbox.root / "etc/systemd/system/k3s.service.env").read_text() == ""


@pytest.mark.parametrize(
    ("stub", "message"),
    [
        ({"STUB_NO_DRIVER": "1"}, "the NVIDIA driver does not answer"),
        ({"STUB_NO_WIREGUARD": "1"}, "the wireguard kernel module is missing"),
        ({"SOPHIA_K3S_SNAPSHOT_DIR": "/lambda/nfs/etcd"}, "the etcd snapshot directory /lambda/nfs/etcd is missing"),
    ],
    ids=["driver", "wireguard", "snapshot-dir"],
)
def test_a_host_without_what_it_needs_is_refused_before_anything_changes(sandbox: Sandbox, stub: dict, message: str):
    result = sandbox.install(**stub)
    assert result.returncode == 1 and message in result.stderr
    assert not sandbox.config.exists()
    assert not [c for c in sandbox.calls_list() if c.startswith(("curl", "installer", "systemctl"))]


def test_a_host_without_the_nvidia_container_toolkit_is_refused(sandbox: Sandbox):
    sandbox.toolkit.unlink()
    result = sandbox.install()
    assert result.returncode == 1
    assert "install the NVIDIA Container Toolkit" in result.stderr
    assert sandbox.calls_list() == []


def test_a_k3s_that_did_not_pick_up_the_nvidia_runtime_fails_the_run(sandbox: Sandbox):
    """The toolkit arrived after k3s started: k3s looks for it only when it starts."""
    assert sandbox.install().returncode == 0
    (sandbox.root / "var/lib/rancher/k3s/agent/etc/containerd/config.toml").write_text("version = 3\n")
    result = sandbox.install()
    assert result.returncode == 1
    assert "k3s did not add the nvidia runtime" in result.stderr and "restart k3s" in result.stderr


def test_a_snapshot_directory_that_exists_is_accepted(sandbox: Sandbox):
    (sandbox.root / "lambda/nfs/etcd").mkdir(parents=True)
    assert sandbox.install(SOPHIA_K3S_SNAPSHOT_DIR="/lambda/nfs/etcd").returncode == 0


def test_second_run_with_the_same_input_changes_nothing(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install()
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr
    calls = sandbox.calls_list()
    assert not [c for c in calls if c.startswith(("installer", "curl", "systemctl restart"))]


def test_a_changed_config_is_written_and_restarts_k3s_once(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install(config=CONFIG + "tls-san: [k3s.example.com]\n")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls_list()
    assert [c for c in calls if c.startswith("systemctl restart")] == ["systemctl restart k3s"]
    assert not [c for c in calls if c.startswith("installer")]
    assert "k3s.example.com" in sandbox.config.read_text()


def test_a_new_version_reruns_the_installer(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install(version="v1.33.6+k3s1")
    assert result.returncode == 0, result.stderr
    assert "installer v1.33.6+k3s1 server" in sandbox.calls_list()
    assert not [c for c in sandbox.calls_list() if c.startswith("systemctl restart")]


@pytest.mark.parametrize("version", ["stable", "latest", "v1.33", "v1.33.5+k3s1; reboot"])
def test_channels_and_junk_versions_are_refused(sandbox: Sandbox, version: str):
    result = sandbox.install(version=version)
    assert result.returncode == 2
    assert sandbox.calls_list() == []


def test_an_agent_waits_until_the_server_sees_its_node_ready(sandbox: Sandbox):
    """Through the kubelet's own credentials: the node is registered before the install returns,
    so the label patch that depends on it finds the node."""
    result = sandbox.install(SOPHIA_K3S_ROLE="agent", SOPHIA_K3S_NODE_NAME="gpu-2", STUB_NODE_REGISTERS_AFTER="1")
    assert result.returncode == 0, result.stderr
    kubeconfig = f"--kubeconfig {sandbox.root}/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
    assert f"installer {VERSION} agent" in sandbox.calls_list()
    assert "systemctl is-active --quiet k3s-agent" in sandbox.calls_list()
    kubectl = sandbox.kubectl_calls()
    assert kubectl[-3:] == [
        f"{kubeconfig} --request-timeout=10s get node gpu-2",
        f"{kubeconfig} --request-timeout=10s get node gpu-2",
        f"{kubeconfig} wait --for=condition=Ready node/gpu-2 --timeout=3s",
    ]
    assert not [c for c in kubectl if "readyz" in c]


def test_remove_uninstalls_and_is_a_no_op_afterwards(sandbox: Sandbox):
    sandbox.install()
    first = sandbox.run(REMOVE_SCRIPT, SOPHIA_K3S_KEEP_ON_DESTROY="false")
    assert first.returncode == 0 and sandbox.calls_list() == ["uninstall"]
    assert not sandbox.config.exists()
    second = sandbox.run(REMOVE_SCRIPT, SOPHIA_K3S_KEEP_ON_DESTROY="false")
    assert second.returncode == 0 and "nothing to do" in second.stderr and sandbox.calls_list() == []


def test_an_uninstaller_that_never_returns_is_cut_off(sandbox: Sandbox):
    sandbox.install()
    # pulumi destroy must fail saying why, not wait forever on a stuck uninstall (a hung unmount).
    (sandbox.root / "usr/local/bin/k3s-uninstall.sh").write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    result = sandbox.run(REMOVE_SCRIPT, SOPHIA_K3S_KEEP_ON_DESTROY="false", SOPHIA_K3S_REMOVE_TIMEOUT="1")
    assert result.returncode == 1
    assert f"{sandbox.root}/usr/local/bin/k3s-uninstall.sh did not finish within 1s" in result.stderr


def test_remove_keeps_k3s_when_the_stack_says_so(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.run(REMOVE_SCRIPT, SOPHIA_K3S_KEEP_ON_DESTROY="true")
    assert result.returncode == 0 and "stays installed" in result.stderr
    assert sandbox.calls_list() == [] and sandbox.config.exists()


def test_the_pulumi_token_is_created_waited_for_and_printed_alone(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.run(TOKEN_SCRIPT, STUB_TOKEN_AFTER="2")
    assert result.returncode == 0, result.stderr
    applied = (sandbox.state / "applied.yaml").read_text()
    assert "kind: ServiceAccount" in applied and "name: cluster-admin" in applied
    assert "type: kubernetes.io/service-account-token" in applied
    assert "kubernetes.io/service-account.name: sophia-pulumi" in applied
    # Only the Secret, on stdout: the kubeconfig is built from it.
    kubeconfig = pulumi_kubeconfig(result.stdout, "https://104.171.202.64:6443")
    assert "token: service-account-token" in kubeconfig
    assert json.loads(result.stdout)["kind"] == "Secret"


def test_a_token_that_never_comes_is_a_bounded_failure(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.run(TOKEN_SCRIPT, STUB_NO_TOKEN="1", SOPHIA_K3S_READY_TIMEOUT="3")
    assert result.returncode == 1 and result.stdout == ""
    assert "timed out after 3s waiting for the token controller" in result.stderr
