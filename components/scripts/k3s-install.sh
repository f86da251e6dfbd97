#!/usr/bin/env bash
# Installs k3s at a pinned version, or reconfigures it, on this host; idempotent.
#
# Input: the desired /etc/rancher/k3s/config.yaml on standard input (it holds the cluster token,
# so it never travels on a command line). Environment:
#   K3S_VERSION    full k3s version, e.g. v1.33.5+k3s1 (never a channel)
#   K3S_ROLE       server or agent
#   K3S_NODE_NAME  the node name set in the config (servers wait for it to be Ready)
#   SOPHIA_ROOT    a directory to treat as / (tests only; empty on a real host)
#
# A run with the same version and config changes nothing; a new config restarts k3s once;
# a new version re-runs the installer, which verifies the download's checksum.
set -euo pipefail

: "${K3S_VERSION:?K3S_VERSION is required}"
: "${K3S_NODE_NAME:?K3S_NODE_NAME is required}"
K3S_ROLE="${K3S_ROLE:-server}"
ROOT="${SOPHIA_ROOT:-}"
CONFIG="$ROOT/etc/rancher/k3s/config.yaml"
K3S="$ROOT/usr/local/bin/k3s"
# The installer script of exactly this release: a version-pinned URL, not a moving channel.
INSTALLER_URL="https://raw.githubusercontent.com/k3s-io/k3s/${K3S_VERSION}/install.sh"
READY_ATTEMPTS="${READY_ATTEMPTS:-60}"
READY_INTERVAL="${READY_INTERVAL:-5}"

if [[ ! "$K3S_VERSION" =~ ^v1\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]]; then
  echo "k3s-install: K3S_VERSION must be a full release such as v1.33.5+k3s1, got '$K3S_VERSION'" >&2
  exit 2
fi
case "$K3S_ROLE" in
  server) SERVICE=k3s ;;
  agent) SERVICE=k3s-agent ;;
  *) echo "k3s-install: K3S_ROLE must be server or agent, got '$K3S_ROLE'" >&2; exit 2 ;;
esac

log() { echo "k3s-install: $*" >&2; }

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

current=$(installed_version)
if [ "$current" != "$K3S_VERSION" ]; then
  log "installing k3s $K3S_VERSION (found: ${current:-none})"
  curl --fail --silent --show-error --location --retry 3 --output "$workdir/install.sh" "$INSTALLER_URL"
  INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_EXEC="$K3S_ROLE" sh "$workdir/install.sh"
elif [ "$config_changed" = true ]; then
  log "configuration changed: restarting $SERVICE"
  systemctl restart "$SERVICE"
else
  log "k3s $K3S_VERSION already runs with this configuration: nothing to do"
fi

if [ "$K3S_ROLE" = agent ]; then
  systemctl is-active --quiet "$SERVICE"
  exit 0
fi

attempt=0
until "$K3S" kubectl get --raw=/readyz >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge "$READY_ATTEMPTS" ]; then
    log "API server not ready after $attempt attempts"
    exit 1
  fi
  sleep "$READY_INTERVAL"
done
"$K3S" kubectl wait --for=condition=Ready "node/$K3S_NODE_NAME" --timeout=300s >&2
log "API server and node $K3S_NODE_NAME are ready"
