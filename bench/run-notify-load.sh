#!/usr/bin/env bash
# Measures the notification path: a throwaway PostgreSQL, throw-away keys,
# wxrecond serving, and bench/notify_load sending N pre-signed APIv3
# notifications at a fixed concurrency. Prints the load program's figures.
#   bench/run-notify-load.sh [orders] [concurrency]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orders=${1:-20000}
concurrency=${2:-64}
build="${WXRECON_BUILD_DIR:-$root/build}"

"$root/scripts/bootstrap.sh"
# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -f "$work/daemon.log" ] && grep -E " (warning|error) " "$work/daemon.log" | sort | uniq -c | sort -rn | head -5 >&2
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond notify_load >/dev/null

mkdir -p "$work/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/apiclient_key.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/wechatpay_key.pem" 2>/dev/null
openssl pkey -in "$work/keys/wechatpay_key.pem" -pubout -out "$work/keys/pub_key.pem" 2>/dev/null
head -c 24 /dev/urandom | base64 | tr -d '\n' > "$work/keys/apiv3.key"
port=$(pg_cluster_free_port); admin=$((port + 1000))
serial=PUB_KEY_ID_0119000001092026112600000001
cat > "$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_connections = 4096
[admin]
listen = "127.0.0.1:$admin"
[database]
url = "$WXRECON_TEST_PG_URL"
pool_size = ${WXRECON_BENCH_POOL:-8}
[[merchants]]
mchid = "1900000109"
appid = "wxd678efh567hg6787"
api_version = "v3"
api_base = "http://127.0.0.1:1"
apiv3_key_file = "keys/apiv3.key"
merchant_private_key_file = "keys/apiclient_key.pem"
merchant_cert_serial = "3775B6A45ACD588826D15E583A95F5DD12345678"
wechatpay_public_key_file = "keys/pub_key.pem"
wechatpay_public_key_id = "$serial"
TOML
"$build/wxrecond" --config "$work/wxrecond.toml" serve >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
"$build/bench/notify_load" --port "$port" --apiv3-key-file "$work/keys/apiv3.key" \
  --wechatpay-key-file "$work/keys/wechatpay_key.pem" --serial "$serial" \
  --database-url "$WXRECON_TEST_PG_URL" --orders "$orders" --concurrency "$concurrency" --daemon-pid "$daemon_pid"
