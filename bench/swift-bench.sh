# The start bench/s3.sh and bench/copy.sh share (sourced, not run). Before sourcing: `work` (the
# default work directory) and `port_base` (Swift's ports are taken from it, so the two can run at
# once). Afterwards: $size and $work from the command line, $corpus generated once per size, a Swift
# with s3api on loopback (test/helpers/swift.sh, stopped on exit), and the AWS variables that point
# the SDK (ckpt) at it.
size=small
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--size small|default|large] [--work DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
corpus=$work/corpus-$size
[ -d "$corpus" ] || node bench/corpus.mjs --size "$size" --out "$corpus" >/dev/null

export PROXY_PORT=${PROXY_PORT:-$((port_base + 80))} TLS_PORT=${TLS_PORT:-$((port_base + 43))} OBJECT_PORT=${OBJECT_PORT:-$port_base} \
  CONTAINER_PORT=${CONTAINER_PORT:-$((port_base + 1))} ACCOUNT_PORT=${ACCOUNT_PORT:-$((port_base + 2))} MEMCACHED_PORT=${MEMCACHED_PORT:-$((port_base + 11))}
rm -rf "$work/swift"
test/helpers/swift.sh start "$work/swift" >/dev/null
trap 'test/helpers/swift.sh stop "$work/swift"' EXIT

export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PROXY_PORT
export CKPT_CACHE_DIR=$work/ckpt-cache
