"""The shell that runs on the hosts, run here in a sandbox: a temporary root, and `curl`,
`systemctl` and the k3s binary stubbed so that every call is recorded."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from components.k3s import INSTALL_SCRIPT, REMOVE_SCRIPT

VERSION = "v1.33.5+k3s1"
CONFIG = "node-name: gpu-1\ntoken: SENTINEL-K3S-TOKEN\nwrite-kubeconfig-mode: '0600'\n"

# The installer that the stubbed curl "downloads": it installs a stub k3s of the requested version.
FAKE_INSTALLER = r"""#!/bin/sh
echo "installer $INSTALL_K3S_VERSION $INSTALL_K3S_EXEC" >> "$CALLS"
mkdir -p "$SOPHIA_ROOT/usr/local/bin"
cat > "$SOPHIA_ROOT/usr/local/bin/k3s" <<STUB
#!/bin/sh
if [ "\$1" = --version ]; then echo "k3s version $INSTALL_K3S_VERSION (stub)"; exit 0; fi
echo "k3s \$*" >> "$CALLS"
[ -z "\$STUB_NOT_READY" ]
STUB
printf '#!/bin/sh\necho uninstall >> "$CALLS"\nrm -f "$SOPHIA_ROOT/usr/local/bin/k3s" "$0"\n' > "$SOPHIA_ROOT/usr/local/bin/k3s-uninstall.sh"
chmod +x "$SOPHIA_ROOT/usr/local/bin/k3s" "$SOPHIA_ROOT/usr/local/bin/k3s-uninstall.sh"
"""
STUBS = {
    "curl": 'echo "curl $*" >> "$CALLS"\nwhile [ $# -gt 0 ]; do [ "$1" = --output ] && out=$2; shift; done\n'
    'cat "$FAKE_INSTALLER" > "$out"\n',
    "systemctl": 'echo "systemctl $*" >> "$CALLS"\n',
    "sleep": "exit 0\n",
}


class Sandbox:
    def __init__(self, tmp: Path):
        self.root = tmp / "root"
        self.root.mkdir()
        self.calls = tmp / "calls.log"
        self.calls.touch()
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, body in STUBS.items():
            path = bin_dir / name
            path.write_text(f"#!/bin/sh\n{body}")
            path.chmod(0o755)
        installer = tmp / "installer.sh"
        installer.write_text(FAKE_INSTALLER)
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SOPHIA_ROOT": str(self.root),
            "CALLS": str(self.calls),
            "FAKE_INSTALLER": str(installer),
            "READY_ATTEMPTS": "3",
            "READY_INTERVAL": "0",
        }

    def run(self, script: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        self.calls.write_text("")
        return subprocess.run(
            ["bash", str(script)], input=stdin, env={**self.env, **env}, capture_output=True, text=True, check=False
        )

    def install(self, config: str = CONFIG, version: str = VERSION, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(INSTALL_SCRIPT, config, K3S_VERSION=version, K3S_ROLE="server", K3S_NODE_NAME="gpu-1", **env)

    def calls_list(self) -> list[str]:
        return self.calls.read_text().splitlines()

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
    assert "curl --fail --silent --show-error --location --retry 3 --output" in calls[0]
    assert calls[0].endswith(f"https://raw.githubusercontent.com/k3s-io/k3s/{VERSION}/install.sh")
    assert f"installer {VERSION} server" in calls
    assert "k3s kubectl get --raw=/readyz" in calls
    assert "k3s kubectl wait --for=condition=Ready node/gpu-1 --timeout=300s" in calls
    assert sandbox.config.read_text() == CONFIG
    assert stat.S_IMODE(sandbox.config.stat().st_mode) == 0o600
    assert "SENTINEL-K3S-TOKEN" not in result.stdout + result.stderr


def test_second_run_with_the_same_input_changes_nothing(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install()
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr
    calls = sandbox.calls_list()
    assert not [c for c in calls if c.startswith(("installer", "curl", "systemctl"))]


def test_a_changed_config_is_written_and_restarts_k3s_once(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install(config=CONFIG + "tls-san: [k3s.example.com]\n")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls_list()
    assert [c for c in calls if c.startswith("systemctl")] == ["systemctl restart k3s"]
    assert not [c for c in calls if c.startswith("installer")]
    assert "k3s.example.com" in sandbox.config.read_text()


def test_a_new_version_reruns_the_installer(sandbox: Sandbox):
    sandbox.install()
    result = sandbox.install(version="v1.33.6+k3s1")
    assert result.returncode == 0, result.stderr
    assert "installer v1.33.6+k3s1 server" in sandbox.calls_list()
    assert not [c for c in sandbox.calls_list() if c.startswith("systemctl")]


def test_an_api_server_that_never_gets_ready_fails_the_run(sandbox: Sandbox):
    result = sandbox.install(STUB_NOT_READY="1")
    assert result.returncode == 1
    assert "not ready after 3 attempts" in result.stderr


@pytest.mark.parametrize("version", ["stable", "latest", "v1.33", "v1.33.5+k3s1; reboot"])
def test_channels_and_junk_versions_are_refused(sandbox: Sandbox, version: str):
    result = sandbox.install(version=version)
    assert result.returncode == 2
    assert sandbox.calls_list() == []


def test_agents_wait_for_their_service(sandbox: Sandbox):
    result = sandbox.run(INSTALL_SCRIPT, CONFIG, K3S_VERSION=VERSION, K3S_ROLE="agent", K3S_NODE_NAME="gpu-2")
    assert result.returncode == 0, result.stderr
    calls = sandbox.calls_list()
    assert f"installer {VERSION} agent" in calls and "systemctl is-active --quiet k3s-agent" in calls


def test_remove_uninstalls_and_is_a_no_op_afterwards(sandbox: Sandbox):
    sandbox.install()
    first = sandbox.run(REMOVE_SCRIPT)
    assert first.returncode == 0 and sandbox.calls_list() == ["uninstall"]
    assert not sandbox.config.exists()
    second = sandbox.run(REMOVE_SCRIPT)
    assert second.returncode == 0 and "nothing to do" in second.stderr and sandbox.calls_list() == []
