#!/bin/sh
# A copy of Redis's data off the host (the backup CronJob of components/backup.py), in two steps,
# each run by its own container:
#   redis-backup.sh dump     (Redis image)  a point-in-time snapshot over the network
#                            (`redis-cli --rdb`, a replica's full sync), checked by redis-check-rdb
#   redis-backup.sh s3       (rclone image) uploads it to an S3-compatible bucket, keeps the newest KEEP
#   redis-backup.sh copy     (Redis image)  copies it into a directory (a Lambda persistent
#                            filesystem), keeps the newest KEEP
# No secret is ever printed; secrets are read from files, never from the command line.
#   BACKUP_DIR      where the snapshot is written and read (an emptyDir shared by the steps)
#   REDIS_HOST, REDIS_PORT, REDIS_AUTH_FILE     (dump)
#   S3_ENDPOINT (host[:port]), S3_INSECURE (true|false), S3_REGION, S3_BUCKET, S3_FOLDER,
#   S3_KEYS_DIR (access-key-id, secret-access-key)                     (s3)
#   TARGET_DIR                                                                (copy)
#   KEEP            copies to keep at the destination                         (s3, copy)
set -eu

snapshot="$BACKUP_DIR/dump.rdb"
stamp_file="$BACKUP_DIR/name"

dump() {
  REDISCLI_AUTH=$(cat "$REDIS_AUTH_FILE")
  export REDISCLI_AUTH
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning --rdb "$snapshot" >&2
  redis-check-rdb "$snapshot" >/dev/null
  # Names sort by time, so the oldest are the first ones listed.
  echo "redis-$(date -u +%Y%m%dT%H%M%SZ).rdb" >"$stamp_file"
  echo "redis-backup: snapshot of $(wc -c <"$snapshot") bytes taken and checked"
}

# The names to delete: all but the newest KEEP of those listed on stdin.
expired() {
  grep -x 'redis-[0-9]\{8\}T[0-9]\{6\}Z\.rdb' | sort -r | tail -n +"$((KEEP + 1))"
}

s3() {
  export HOME=/tmp RCLONE_CONFIG=/tmp/rclone.conf
  RCLONE_S3_ACCESS_KEY_ID=$(cat "$S3_KEYS_DIR/access-key-id")
  RCLONE_S3_SECRET_ACCESS_KEY=$(cat "$S3_KEYS_DIR/secret-access-key")
  export RCLONE_S3_ACCESS_KEY_ID RCLONE_S3_SECRET_ACCESS_KEY
  scheme=https
  [ "${S3_INSECURE:-false}" = true ] && scheme=http
  export RCLONE_S3_PROVIDER=Other RCLONE_S3_ENDPOINT="$scheme://$S3_ENDPOINT" RCLONE_S3_REGION="$S3_REGION"
  # The bucket must exist: no permission to create buckets is needed.
  export RCLONE_S3_NO_CHECK_BUCKET=true
  remote=":s3:$S3_BUCKET"
  [ -n "${S3_FOLDER:-}" ] && remote="$remote/$S3_FOLDER"
  name=$(cat "$stamp_file")
  rclone copyto "$snapshot" "$remote/$name"
  echo "redis-backup: uploaded $name to $S3_BUCKET"
  rclone lsf --files-only "$remote" | expired | while read -r old; do
    rclone deletefile "$remote/$old"
    echo "redis-backup: deleted $old"
  done
}

copy() {
  name=$(cat "$stamp_file")
  # Written under a temporary name, then renamed: a copy with its final name is complete.
  cp "$snapshot" "$TARGET_DIR/.$name.partial"
  mv "$TARGET_DIR/.$name.partial" "$TARGET_DIR/$name"
  echo "redis-backup: copied $name to $TARGET_DIR"
  (cd "$TARGET_DIR" && for file in redis-*.rdb; do [ -e "$file" ] && echo "$file"; done) | expired | while read -r old; do
    rm -f "$TARGET_DIR/$old"
    echo "redis-backup: deleted $old"
  done
}

case "${1:-}" in
  dump) dump ;;
  s3) s3 ;;
  copy) copy ;;
  *)
    echo "usage: redis-backup.sh dump|s3|copy" >&2
    exit 2
    ;;
esac
