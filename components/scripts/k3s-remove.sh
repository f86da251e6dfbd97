#!/usr/bin/env bash
# Removes k3s from this host (pulumi destroy): runs the uninstaller that the k3s installer left,
# then deletes the configuration this project wrote. Does nothing where k3s is not installed, or
# when the stack says to keep it. The uninstaller deletes /var/lib/rancher/k3s, with the etcd
# snapshots kept there; a snapshot directory elsewhere (etcd-snapshot-dir) and S3 copies stay.
#   SOPHIA_K3S_KEEP_ON_DESTROY  true: leave k3s installed (sophia-ai:k3s.keepOnDestroy)
#   SOPHIA_K3S_REMOVE_TIMEOUT   seconds the uninstaller may take (default 600)
#   SOPHIA_ROOT                 a directory to treat as / (tests only; empty on a real host)
set -euo pipefail

ROOT="${SOPHIA_ROOT:-}"
TIMEOUT="${SOPHIA_K3S_REMOVE_TIMEOUT:-600}"
if [ "${SOPHIA_K3S_KEEP_ON_DESTROY:-false}" = true ]; then
  echo "k3s-remove: keepOnDestroy is set: k3s stays installed" >&2
  exit 0
fi
removed=false
for uninstaller in "$ROOT/usr/local/bin/k3s-uninstall.sh" "$ROOT/usr/local/bin/k3s-agent-uninstall.sh"; do
  if [ -x "$uninstaller" ]; then
    timeout "$TIMEOUT" "$uninstaller" >&2 || {
      echo "k3s-remove: $uninstaller did not finish within ${TIMEOUT}s" >&2
      exit 1
    }
    removed=true
  fi
done
rm -f "$ROOT/etc/rancher/k3s/config.yaml"
if [ "$removed" = true ]; then
  echo "k3s-remove: k3s uninstalled" >&2
else
  echo "k3s-remove: k3s is not installed: nothing to do" >&2
fi
