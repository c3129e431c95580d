#!/usr/bin/env bash
# ckpt against restic, both with their S3 backends on the same loopback Swift (s3api), in one run:
# first snapshot, unchanged snapshot, restore; and ckpt's unchanged snapshot into a local
# repository for comparison. restic's S3 client (minio-go) uses aws-chunked over plain HTTP,
# which Swift refuses, so restic talks to the server's TLS port (self-signed, --cacert).
#
#   bench/s3.sh [--size small|default|large] [--work DIR]     (needs `npm run build`, restic, Swift)
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/ckpt-bench-s3
port_base=18400
# shellcheck source=bench/swift-bench.sh
. bench/swift-bench.sh
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$work/restic-cache

swift_cpu() { # CPU centiseconds used so far by the Swift servers (the wall time moves with the machine's load; this does not)
  local t=0 p q
  for f in "$work"/swift/pids/*.pid; do
    p=$(cat "$f")
    for q in $p $(pgrep -P "$p" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null || echo 0))); done
  done
  echo $t
}
t() { # label, command...: wall seconds, CPU seconds, peak RSS, and the server's CPU seconds
  local label=$1 before
  shift
  before=$(swift_cpu)
  /usr/bin/time -f "$label %e s wall, %U+%S s CPU, %M KB" "$@" >/dev/null 2>"$work/time.txt" || { cat "$work/time.txt" >&2; exit 1; }
  echo "$(tail -1 "$work/time.txt"), server $(( $(swift_cpu) - before ))0 ms CPU"
}
du -sb "$corpus" | awk '{printf "corpus %s: %.1f MiB\n", "'"$size"'", $1 / 1048576}'
rm -rf "$work/restore-"* "$work/local" "$RESTIC_CACHE_DIR" "$CKPT_CACHE_DIR"
sync
t 'ckpt   init         ' node bin/run.js init -q --repo s3://bench/ckpt
t 'ckpt   first        ' node bin/run.js snapshot -q "$corpus" --repo s3://bench/ckpt
t 'ckpt   unchanged    ' node bin/run.js snapshot -q "$corpus" --repo s3://bench/ckpt
t 'ckpt   restore      ' node bin/run.js restore -q latest --target "$work/restore-ckpt" --repo s3://bench/ckpt
t 'ckpt   restore, no read-ahead' env CKPT_S3_READ_AHEAD=0 node bin/run.js restore -q latest --target "$work/restore-ckpt-nora" --repo s3://bench/ckpt
t 'ckpt   local unchanged (after a first)' sh -c "node bin/run.js init -q --repo '$work/local' && node bin/run.js snapshot -q '$corpus' --repo '$work/local' && exec /usr/bin/time -f '%e' node bin/run.js snapshot -q '$corpus' --repo '$work/local' 2>'$work/local-unchanged.txt'"
echo "ckpt   local unchanged        $(tail -1 "$work/local-unchanged.txt") s wall"
r=(restic -r "s3:https://127.0.0.1:$TLS_PORT/restic-bench/repo" --cacert "$work/swift/etc/cert.pem" -q)
t 'restic init         ' "${r[@]}" init
t 'restic first        ' "${r[@]}" backup "$corpus"
t 'restic unchanged    ' "${r[@]}" backup "$corpus"
t 'restic restore      ' "${r[@]}" restore latest --target "$work/restore-restic"
