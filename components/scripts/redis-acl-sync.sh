#!/bin/sh
# Makes a running Redis apply the ACL file of its Secret without a restart, and waits until it
# has: the Job `pulumi up` runs before clients are given a new password (components/redis.py).
#
# The kubelet refreshes the Secret's files in the Redis pod some time after the Secret changes
# (a mounted Secret is updated, not frozen), so this loops: `ACL LOAD` (Redis re-reads its copy
# of the file), then compare the password hashes Redis holds with those of the file this Job was
# started with, until they are the same or the deadline passes.
#
# It authenticates with any password of the Secret that Redis still accepts: the old one while a
# new one is added, the new one when the old one is removed. No password is ever printed.
#   ACL_DIR           the Secret's files: users.acl, password, previous-password (optional)
#   REDIS_HOST        Redis's Service
#   REDIS_PORT        its port
#   DEADLINE_SECONDS  how long to wait (the kubelet's refresh takes up to a minute or two)
set -eu

acl_dir="${ACL_DIR:-/etc/redis/acl}"
deadline=$(($(date +%s) + ${DEADLINE_SECONDS:-240}))
want=$(grep -o '#[0-9a-f]*' "$acl_dir/users.acl" | tr -d '#' | sort)

cli() {
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning "$@" 2>/dev/null
}

accepted=false
while :; do
  for file in "$acl_dir/password" "$acl_dir/previous-password"; do
    [ -f "$file" ] || continue
    REDISCLI_AUTH=$(cat "$file")
    export REDISCLI_AUTH
    if [ "$(cli ACL LOAD || true)" = OK ]; then
      accepted=true
      have=$(cli ACL GETUSER default | grep -x '[0-9a-f]\{64\}' | sort || true)
      if [ "$have" = "$want" ]; then
        echo "redis-acl-sync: Redis accepts exactly the passwords of its ACL file"
        exit 0
      fi
      break
    fi
  done
  if [ "$(date +%s)" -ge "$deadline" ]; then
    if [ "$accepted" = false ]; then
      echo "redis-acl-sync: Redis accepts none of the passwords in its Secret: a new password must be added" \
        "while the old one stays valid (docs/runbook.md, Rotating secrets)" >&2
    else
      echo "redis-acl-sync: Redis did not load the new ACL file in time (the kubelet has not refreshed the" \
        "Secret in the Redis pod); run pulumi up again" >&2
    fi
    exit 1
  fi
  sleep 2
done
