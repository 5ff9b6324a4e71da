#!/usr/bin/env bash
# App events against notification ingestion (issue 14, Performance): a throwaway PostgreSQL with ORDERS
# registered orders; wxrecond fed genuine APIv3 payment notifications by bench/notify_load at RATE per second
# for SECONDS, twice — [app_events] off, then on with wxpay-sim's receiver (which verifies every signature) —
# and prints for each run the notification latency (p50/p99) and, with events on, the outbox lag: how long
# from an event's commit to its 2xx (p50/p99/max, from wxrecon.app_events), events delivered and signatures
# that failed. Targets: lag p99 < 1 s, notification p99 with events on at most 1.2x with events off.
# Defaults: ORDERS=200000 RATE=2000 RUN_SECONDS=30 CONCURRENCY=64
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orders=${ORDERS:-200000}
rate=${RATE:-2000}
seconds=${RUN_SECONDS:-30}
concurrency=${CONCURRENCY:-64}
build="${WXRECON_BUILD_DIR:-$root/build}"

"$root/scripts/bootstrap.sh"
# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
daemon_pid="" sim_pid=""
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start
psql=(psql "$WXRECON_TEST_PG_URL" -X -q -At -v ON_ERROR_STOP=1)
"${psql[@]}" -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond wxpay-sim notify_load >/dev/null

mkdir -p "$work/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/apiclient_key.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/wechatpay_key.pem" 2>/dev/null
openssl pkey -in "$work/keys/wechatpay_key.pem" -pubout -out "$work/keys/pub_key.pem" 2>/dev/null
head -c 24 /dev/urandom | base64 | tr -d '\n' >"$work/keys/apiv3.key"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/app_events.key"
port=$(pg_cluster_free_port); admin=$((port + 1000)); sim_port=$((port + 2000))
serial=PUB_KEY_ID_0119000001092026112600000001

# The receiver: wxpay-sim's /sim/app-events (its own merchants are not used).
"$build/wxpay-sim" keys --out "$work/simkeys" --merchants 1 >/dev/null
"$build/wxpay-sim" serve --keys "$work/simkeys" --listen "127.0.0.1:$sim_port" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$sim_port/sim/stats" >/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$sim_port/sim/app-events-config" \
  -d "{\"secret\":\"$(cat "$work/app_events.key")\",\"status\":200}"

config() {  # config <with app events: 0|1>
  cat <<TOML
[server]
listen = "127.0.0.1:$port"
max_connections = 4096
[admin]
listen = "127.0.0.1:$admin"
[database]
url = "$WXRECON_TEST_PG_URL"
TOML
  if [ "$1" = 1 ]; then
    printf '[app_events]\nurl = "http://127.0.0.1:%s/sim/app-events"\nsecret_file = "app_events.key"\nconcurrency = 32\n' \
      "$sim_port"
  fi
  cat <<TOML
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
}
config 0 >"$work/wxrecond.toml"
"$build/wxrecond" --config "$work/wxrecond.toml" migrate 2>/dev/null
echo "loading $orders orders"
"${psql[@]}" -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, next_poll_at)
                 SELECT '1900000109', 'P' || g, 100, 'wxd678efh567hg6787', now() + interval '1 day'
                 FROM generate_series(1, $orders) g" \
             -c "VACUUM ANALYZE wxrecon.orders"

run() {  # run <app events 0|1> <first order>
  config "$1" >"$work/wxrecond.toml"
  "$build/wxrecond" --config "$work/wxrecond.toml" serve >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
  local count
  count=$(awk -v r="$rate" -v s="$seconds" 'BEGIN {printf "%d", r * s * 1.05}')
  "$build/bench/notify_load" --port "$port" --apiv3-key-file "$work/keys/apiv3.key" \
    --wechatpay-key-file "$work/keys/wechatpay_key.pem" --serial "$serial" --database-url "$WXRECON_TEST_PG_URL" \
    --prefix P --register 0 --first "$2" --orders "$count" --concurrency "$concurrency" --seconds "$seconds" \
    --rate "$rate" --daemon-pid "$daemon_pid" | grep -E "^(notifications|latency|daemon)"
  if [ "$1" = 1 ]; then
    for _ in $(seq 300); do
      [ "$("${psql[@]}" -c "SELECT count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL")" = 0 ] && break
      sleep 0.1
    done
    "${psql[@]}" -F ' ' -c "SELECT 'app events: ' || count(*) || ' written, ' || count(delivered_at) || ' delivered;'
             || ' lag ms p50 ' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lag))::numeric, 1)
             || '  p99 ' || round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lag))::numeric, 1)
             || '  max ' || round(max(lag)::numeric, 1)
             FROM (SELECT delivered_at, 1000 * extract(epoch FROM delivered_at - created_at) AS lag
                   FROM wxrecon.app_events) t"
    curl -fsS "http://127.0.0.1:$sim_port/sim/app-events?limit=1" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print("receiver:", d["received"], "received,", d.get("signature_failures", 0), "bad signatures")'
  fi
  kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
}
echo "== [app_events] off: ${rate}/s for ${seconds}s"
run 0 1
echo "== [app_events] on: ${rate}/s for ${seconds}s"
run 1 100001
