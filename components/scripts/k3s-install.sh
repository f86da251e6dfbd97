#!/usr/bin/env bash
# Installs k3s at a pinned version, or reconfigures it, on this GPU host; idempotent.
#
# Input: the desired /etc/rancher/k3s/config.yaml on standard input (it holds the join tokens, so
# it never travels on a command line). Environment, SOPHIA_* on purpose: k3s's installer saves
# every K3S_* and CONTAINERD_* variable it sees into k3s.service.env, where k3s reads K3S_* as flags:
#   SOPHIA_K3S_VERSION       full k3s version, e.g. v1.33.5+k3s1 (never a channel)
#   SOPHIA_K3S_ROLE          server or agent
#   SOPHIA_K3S_NODE_NAME     the node name set in the config (waited for until Ready)
#   SOPHIA_K3S_SNAPSHOT_DIR  the etcd snapshot directory of a server, checked first (optional)
#   SOPHIA_ROOT              a directory to treat as / (tests only; empty on a real host)
#
# A run with the same version and config changes nothing; a new config restarts k3s once; a new
# version re-runs the installer, which verifies the download's checksum.
#
# Nothing here waits forever: pulumi-command gives a remote command no deadline, and k3s's unit
# has TimeoutStartSec=0. Every wait is bounded (SOPHIA_K3S_*_TIMEOUT, seconds) and its failure
# says what was waited for.
set -euo pipefail

: "${SOPHIA_K3S_VERSION:?SOPHIA_K3S_VERSION is required}"
: "${SOPHIA_K3S_NODE_NAME:?SOPHIA_K3S_NODE_NAME is required}"
VERSION="$SOPHIA_K3S_VERSION"
NODE="$SOPHIA_K3S_NODE_NAME"
ROLE="${SOPHIA_K3S_ROLE:-server}"
SNAPSHOT_DIR="${SOPHIA_K3S_SNAPSHOT_DIR:-}"
ROOT="${SOPHIA_ROOT:-}"
CONFIG="$ROOT/etc/rancher/k3s/config.yaml"
K3S="$ROOT/usr/local/bin/k3s"
# Where k3s looks for the NVIDIA container runtime a package installed (k3s-io/k3s
# pkg/agent/containerd/runtimes.go), and the containerd configuration it generates at start.
NVIDIA_RUNTIME="$ROOT/usr/bin/nvidia-container-runtime"
CONTAINERD_CONFIG="$ROOT/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
# The kubelet's own credentials: on an agent, the way to ask the API server about its node.
KUBELET_KUBECONFIG="$ROOT/var/lib/rancher/k3s/agent/kubelet.kubeconfig"
# The installer script of exactly this release: a version-pinned URL, not a moving channel.
INSTALLER_URL="https://raw.githubusercontent.com/k3s-io/k3s/${VERSION}/install.sh"
DOWNLOAD_TIMEOUT="${SOPHIA_K3S_DOWNLOAD_TIMEOUT:-120}"
INSTALL_TIMEOUT="${SOPHIA_K3S_INSTALL_TIMEOUT:-900}"
START_TIMEOUT="${SOPHIA_K3S_START_TIMEOUT:-300}"
READY_TIMEOUT="${SOPHIA_K3S_READY_TIMEOUT:-300}"
POLL_INTERVAL="${SOPHIA_K3S_POLL_INTERVAL:-5}"

log() { echo "k3s-install: $*" >&2; }
fail() {
  log "$*"
  exit 1
}

if [[ ! "$VERSION" =~ ^v1\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]]; then
  log "SOPHIA_K3S_VERSION must be a full release such as v1.33.5+k3s1, got '$VERSION'"
  exit 2
fi
case "$ROLE" in
  server) SERVICE=k3s ;;
  agent) SERVICE=k3s-agent ;;
  *) log "SOPHIA_K3S_ROLE must be server or agent, got '$ROLE'"; exit 2 ;;
esac

# wait_for WHAT SECONDS COMMAND...: run COMMAND every POLL_INTERVAL seconds until it succeeds,
# at most SECONDS seconds (counted in attempts, so a slow attempt cannot stretch it much).
wait_for() {
  local what=$1 seconds=$2 attempt=0 attempts
  shift 2
  attempts=$((seconds / POLL_INTERVAL > 0 ? seconds / POLL_INTERVAL : 1))
  until "$@" >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    if [ "$attempt" -ge "$attempts" ]; then
      fail "timed out after ${seconds}s waiting for $what"
    fi
    sleep "$POLL_INTERVAL"
  done
}

# --- What the host must have, checked before anything changes -------------------------------
timeout 60 nvidia-smi -L >/dev/null 2>&1 ||
  fail "the NVIDIA driver does not answer (nvidia-smi -L): this host needs the driver Lambda Stack installs"
[ -x "$NVIDIA_RUNTIME" ] ||
  fail "$NVIDIA_RUNTIME not found: install the NVIDIA Container Toolkit (package nvidia-container-toolkit," \
    "part of Lambda Stack) before k3s starts; k3s adds its nvidia runtime only for a toolkit present at start"
modprobe wireguard >/dev/null 2>&1 ||
  fail "the wireguard kernel module is missing: flannel's wireguard-native backend encrypts traffic between nodes"
if [ -n "$SNAPSHOT_DIR" ] && { [ ! -d "$ROOT$SNAPSHOT_DIR" ] || [ ! -w "$ROOT$SNAPSHOT_DIR" ]; }; then
  fail "the etcd snapshot directory $SNAPSHOT_DIR is missing or not writable: mount it (e.g. the Lambda filesystem) first"
fi

umask 077
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
cat > "$workdir/config.yaml"

installed_version() {
  if [ -x "$K3S" ]; then
    "$K3S" --version 2>/dev/null | awk 'NR == 1 { print $3 }'
  fi
}

config_changed=false
if ! cmp -s "$workdir/config.yaml" "$CONFIG"; then
  mkdir -p "$(dirname "$CONFIG")"
  install -m 0600 "$workdir/config.yaml" "$CONFIG"
  config_changed=true
  log "wrote $CONFIG"
fi

# Neither our variables nor the caller's K3S_*/CONTAINERD_* reach the installer (see above).
scrub=()
for name in $(compgen -e); do
  case "$name" in K3S_* | CONTAINERD_*) scrub+=(-u "$name") ;; esac
done

current=$(installed_version)
if [ "$current" != "$VERSION" ]; then
  log "installing k3s $VERSION (found: ${current:-none})"
  curl --fail --silent --show-error --location --retry 3 --max-time "$DOWNLOAD_TIMEOUT" \
    --output "$workdir/install.sh" "$INSTALLER_URL"
  # The installer downloads k3s and runs `systemctl restart`, which waits for k3s to report ready.
  timeout "$INSTALL_TIMEOUT" env "${scrub[@]}" INSTALL_K3S_VERSION="$VERSION" INSTALL_K3S_EXEC="$ROLE" \
    sh "$workdir/install.sh" >&2 ||
    fail "the k3s installer did not finish within ${INSTALL_TIMEOUT}s (download, checksum, systemctl restart $SERVICE); see journalctl -u $SERVICE"
elif [ "$config_changed" = true ]; then
  log "configuration changed: restarting $SERVICE"
  timeout "$START_TIMEOUT" systemctl restart "$SERVICE" ||
    fail "timed out after ${START_TIMEOUT}s waiting for systemctl restart $SERVICE; see journalctl -u $SERVICE"
else
  log "k3s $VERSION already runs with this configuration: nothing to do"
fi

wait_for "the $SERVICE service to be active" "$START_TIMEOUT" systemctl is-active --quiet "$SERVICE"
if [ "$ROLE" = server ]; then
  kubectl=("$K3S" kubectl)
  wait_for "the API server to answer /readyz" "$READY_TIMEOUT" "${kubectl[@]}" --request-timeout=10s get --raw=/readyz
else
  kubectl=("$K3S" kubectl --kubeconfig "$KUBELET_KUBECONFIG")
fi
# The API server answers before the kubelet has registered the node, and `kubectl wait` fails at
# once on a missing object (it ignores NotFound only for --for=delete: kubernetes/kubectl
# pkg/cmd/wait/wait.go). So: first the node object, then its Ready condition.
wait_for "node $NODE to register with the API server" "$READY_TIMEOUT" "${kubectl[@]}" --request-timeout=10s get node "$NODE"
"${kubectl[@]}" wait --for=condition=Ready "node/$NODE" --timeout="${READY_TIMEOUT}s" >/dev/null 2>&1 ||
  fail "timed out after ${READY_TIMEOUT}s waiting for node $NODE to be Ready"
grep -Eq "runtimes\.[\"']?nvidia[\"']?\]" "$CONTAINERD_CONFIG" ||
  fail "k3s did not add the nvidia runtime to $CONTAINERD_CONFIG: it looks for the toolkit only when it starts; restart $SERVICE"
log "node $NODE is Ready, with the nvidia runtime"
