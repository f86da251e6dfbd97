#!/usr/bin/env bash
# Prints, on standard output (which Pulumi keeps as a secret and never logs), the Secret holding
# the long-lived token of the ServiceAccount Pulumi uses, creating the account, its cluster-admin
# binding and the token Secret when missing. Runs on the server.
#
# Why not k3s's admin kubeconfig: its client certificate lasts a year and k3s renews it on the
# host (docs.k3s.io, advanced: certificate management), so a copy in Pulumi's state goes stale.
# A ServiceAccount token Secret is valid until the Secret is deleted (the way to revoke it).
#   SOPHIA_K3S_READY_TIMEOUT  seconds to wait for the token controller (default 120)
#   SOPHIA_ROOT               a directory to treat as / (tests only; empty on a real host)
set -euo pipefail

ROOT="${SOPHIA_ROOT:-}"
K3S="$ROOT/usr/local/bin/k3s"
TIMEOUT="${SOPHIA_K3S_READY_TIMEOUT:-120}"
POLL_INTERVAL="${SOPHIA_K3S_POLL_INTERVAL:-2}"
NAMESPACE=kube-system
ACCOUNT=sophia-pulumi
SECRET=sophia-pulumi-token

fail() {
  echo "k3s-pulumi-token: $*" >&2
  exit 1
}
kubectl() { "$K3S" kubectl --request-timeout=30s "$@"; }

# The account first: the token controller fills a Secret only for an existing account.
kubectl apply -f - >/dev/null <<MANIFEST || fail "could not create ServiceAccount $NAMESPACE/$ACCOUNT and its binding"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: $ACCOUNT
  namespace: $NAMESPACE
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: $ACCOUNT
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - kind: ServiceAccount
    name: $ACCOUNT
    namespace: $NAMESPACE
MANIFEST
kubectl apply -f - >/dev/null <<MANIFEST || fail "could not create Secret $NAMESPACE/$SECRET"
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: $SECRET
  namespace: $NAMESPACE
  annotations:
    kubernetes.io/service-account.name: $ACCOUNT
MANIFEST

attempts=$((TIMEOUT / POLL_INTERVAL > 0 ? TIMEOUT / POLL_INTERVAL : 1))
for ((attempt = 1; ; attempt++)); do
  token=$(kubectl -n "$NAMESPACE" get secret "$SECRET" -o 'jsonpath={.data.token}' 2>/dev/null || true)
  [ -n "$token" ] && break
  [ "$attempt" -lt "$attempts" ] || fail "timed out after ${TIMEOUT}s waiting for the token controller to fill Secret $NAMESPACE/$SECRET"
  sleep "$POLL_INTERVAL"
done
unset token
kubectl -n "$NAMESPACE" get secret "$SECRET" -o json
