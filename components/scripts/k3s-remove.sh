#!/usr/bin/env bash
# Removes k3s from this host (pulumi destroy): runs the uninstaller that the k3s installer left,
# then deletes the configuration this project wrote. Does nothing where k3s is not installed.
#   SOPHIA_ROOT  a directory to treat as / (tests only; empty on a real host)
set -euo pipefail

ROOT="${SOPHIA_ROOT:-}"
removed=false
for uninstaller in "$ROOT/usr/local/bin/k3s-uninstall.sh" "$ROOT/usr/local/bin/k3s-agent-uninstall.sh"; do
  if [ -x "$uninstaller" ]; then
    "$uninstaller"
    removed=true
  fi
done
rm -f "$ROOT/etc/rancher/k3s/config.yaml"
if [ "$removed" = true ]; then
  echo "k3s-remove: k3s uninstalled" >&2
else
  echo "k3s-remove: k3s is not installed: nothing to do" >&2
fi
