#!/usr/bin/env bash
# A single-node OpenStack Swift with the s3api middleware on loopback, for the S3 backend's
# tests and benchmarks (Debian packages: swift swift-proxy swift-object swift-container
# swift-account memcached).
#
#   test/helpers/swift.sh start DIR   start (ports from PROXY_PORT, OBJECT_PORT, CONTAINER_PORT,
#                                     ACCOUNT_PORT, MEMCACHED_PORT; TLS_PORT adds an https proxy)
#                                     and wait until healthy; prints the endpoint(s)
#   test/helpers/swift.sh stop DIR    stop exactly the processes start recorded in DIR/pids
#
# S3 credentials: access key test:tester, secret testing; region us-east-1. Everything lives in
# DIR, except /etc/swift/swift.conf, which Swift reads from that fixed path (written if absent).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
  [ -d "$dir/pids" ] || return 0
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    # Each server runs in its own session (setsid): its process group is its pid.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

for prog in swift-proxy-server swift-object-server swift-container-server swift-account-server memcached curl; do
  command -v "$prog" >/dev/null || { echo "swift.sh: $prog not found (apt-get install swift swift-proxy swift-object swift-container swift-account memcached)" >&2; exit 3; }
done

proxy=${PROXY_PORT:-8080}
object=${OBJECT_PORT:-6200}
container=${CONTAINER_PORT:-6201}
account=${ACCOUNT_PORT:-6202}
mc=${MEMCACHED_PORT:-11211}
tls=${TLS_PORT:-}

mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/pids" "$dir/log"
etc=$dir/etc
if [ ! -f /etc/swift/swift.conf ]; then
  mkdir -p /etc/swift
  printf '[swift-hash]\nswift_hash_path_suffix = ckpt-test\nswift_hash_path_prefix = ckpt-test\n\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' >/etc/swift/swift.conf
fi

common() {
  printf '[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = %s\nworkers = 0\nuser = %s\nswift_dir = %s\ndevices = %s\nmount_check = false\nlog_level = WARNING\n\n' \
    "$1" "$(id -un)" "$etc" "$dir/srv"
}
for kind in object container account; do
  port_var=$kind
  port=${!port_var}
  { common "$port"; printf '[pipeline:main]\npipeline = %s-server\n\n[app:%s-server]\nuse = egg:swift#%s\n\n[%s-replicator]\n[%s-updater]\n[%s-auditor]\n' "$kind" "$kind" "$kind" "$kind" "$kind" "$kind"; } >"$etc/$kind-server.conf"
done
# The three rings (one device, one replica), built in one Python process: swift-ring-builder
# is a Python start-up per call, nine calls, tens of seconds on a loaded machine.
# Swift's own interpreter (the first python3 on PATH may be another one, without swift).
py=$(sed -n '1s/^#! *//p' "$(command -v swift-proxy-server)")
$py - "$etc" "$object" "$container" "$account" <<'PY'
import os, sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, port in zip(('object', 'container', 'account'), sys.argv[2:]):
    if os.path.exists(os.path.join(etc, kind + '.ring.gz')):
        continue
    b = RingBuilder(8, 1, 1)
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 1})
    b.rebalance()
    b.get_ring().save(os.path.join(etc, kind + '.ring.gz'))
PY

proxy_conf() {
  common "$1"
  cat <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOF
}
proxy_conf "$proxy" >"$etc/proxy-server.conf"
if [ -n "$tls" ]; then
  if [ ! -f "$etc/cert.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$etc/key.pem" -out "$etc/cert.pem" 2>/dev/null
  fi
  proxy_conf "$tls" | sed "s#^log_level = .*#&\ncert_file = $etc/cert.pem\nkey_file = $etc/key.pem#" >"$etc/proxy-tls-server.conf"
fi

launch() {
  local name=$1
  shift
  setsid "$@" >"$dir/log/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/pids/$name.pid"
}
launch memcached memcached -l 127.0.0.1 -p "$mc" -U 0 -u "$(id -un)" -m 64
launch object swift-object-server "$etc/object-server.conf"
launch container swift-container-server "$etc/container-server.conf"
launch account swift-account-server "$etc/account-server.conf"
launch proxy swift-proxy-server "$etc/proxy-server.conf"
[ -n "$tls" ] && launch proxy-tls swift-proxy-server "$etc/proxy-tls-server.conf"

# Healthy when the proxy answers and an authenticated account request goes through the whole chain.
for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$proxy/healthcheck" >/dev/null 2>&1 \
    && curl -fsS -o /dev/null -H 'X-Storage-User: test:tester' -H 'X-Storage-Pass: testing' "http://127.0.0.1:$proxy/auth/v1.0" 2>/dev/null; then
    echo "http://127.0.0.1:$proxy"
    [ -n "$tls" ] && echo "https://127.0.0.1:$tls"
    exit 0
  fi
  for f in "$dir"/pids/*.pid; do
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "swift.sh: $(basename "$f" .pid) exited; its log:" >&2
      tail -20 "$dir/log/$(basename "$f" .pid).log" >&2
      stop
      exit 1
    fi
  done
  sleep 0.1
done
echo "swift.sh: not healthy after 60 s (logs in $dir/log)" >&2
stop
exit 1
