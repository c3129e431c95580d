#!/usr/bin/env bash
# ckpt copy against the loopback Swift (s3api): a local repository's snapshot copied into S3, the
# same copy again (nothing to send), a changed snapshot copied (only its new blobs), and the copy
# back from S3 into a new local repository; beside them, the same snapshot taken straight into S3.
#
#   bench/copy.sh [--size small|default|large] [--work DIR]     (needs `npm run build`, Swift)
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/ckpt-bench-copy
port_base=18500
# shellcheck source=bench/swift-bench.sh
. bench/swift-bench.sh

t() { # label, command...: wall seconds, CPU seconds, peak RSS
  local label=$1
  shift
  /usr/bin/time -f "$label %e s wall, %U+%S s CPU, %M KB" "$@" >"$work/out.json" 2>"$work/time.txt" || { cat "$work/time.txt" >&2; exit 1; }
  tail -1 "$work/time.txt"
}
sent() { node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`    ${d.copied.length} copied, ${d.skipped.length} skipped, ${d.blobs} blobs, ${(d.bytesSent / 1048576).toFixed(1)} MiB sent${d.verify ? `, of which the destination check ${d.verify.durationMs} ms` : ""}`)' "$work/out.json"; }
du -sb "$corpus" | awk '{printf "corpus %s: %.1f MiB\n", "'"$size"'", $1 / 1048576}'
rm -rf "$work/local" "$work/back" "$work/restore-"* "$CKPT_CACHE_DIR" "$work/changed"
sync
node bin/run.js init -q --repo "$work/local"
t 'local snapshot              ' node bin/run.js snapshot -q "$corpus" --repo "$work/local"
t 'snapshot straight into S3   ' sh -c "node bin/run.js init -q --repo s3://bench/direct && exec node bin/run.js snapshot -q '$corpus' --repo s3://bench/direct"
node bin/run.js init -q --repo s3://bench/copy
t 'copy local -> S3            ' node bin/run.js copy --all --json --from "$work/local" --to s3://bench/copy
sent
t 'copy again (nothing to send)' node bin/run.js copy --all --json --from "$work/local" --to s3://bench/copy
sent
# A changed snapshot: one file in ten rewritten.
cp -a "$corpus" "$work/changed"
find "$work/changed" -type f | awk 'NR % 10 == 0' | while read -r f; do head -c 65536 /dev/urandom | dd of="$f" conv=notrunc status=none; done
node bin/run.js snapshot -q "$work/changed" --repo "$work/local"
t 'copy a changed snapshot     ' node bin/run.js copy latest --json --from "$work/local" --to s3://bench/copy
sent
t 'copy --read-data (again: 0) ' node bin/run.js copy --all --json --read-data --from "$work/local" --to s3://bench/copy
node bin/run.js init -q --repo "$work/back"
t 'copy S3 -> new local        ' node bin/run.js copy --all --json --from s3://bench/copy --to "$work/back"
sent
t 'verify --read-data (S3)     ' node bin/run.js verify -q --read-data --json --repo s3://bench/copy
