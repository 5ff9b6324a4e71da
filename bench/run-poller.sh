#!/usr/bin/env bash
# The outbound half against wxpay-sim and a throwaway PostgreSQL, in one run:
#   1. convergence: ORDERS orders placed with prepay through wxrecond's API by PLACERS clients at once, half
#      at an APIv3 merchant and half at an APIv2 one, paid at the simulator with 30 % of notifications dropped
#      and 10 % duplicated; 15 % of the APIv3 orders are left to expire 65 s after placement (the shortest
#      expiry a prepay accepts; APIv2 orders are all paid, as WeChat Pay closes none within 5 minutes of
#      creation); the time from the first placement until no order is open, and how each was settled;
#   2. query throughput: QUERY_ORDERS orders registered by SQL and paid at the simulator with every notification
#      dropped, all due at once: the poller's queries per second until every one is SUCCESS (poller
#      concurrency 64, no rate limit in the way);
#   3. idle cost: IDLE_ORDERS open orders, none due for an hour: wxrecond's CPU time over IDLE_SECONDS, as a
#      share of one core (target: under 2 %).
# Defaults: ORDERS=2000 PLACERS=8 QUERY_ORDERS=20000 IDLE_ORDERS=100000 IDLE_SECONDS=60 PHASES="1 2 3"
# (KEEP=dir copies the daemon logs there before the work folder is removed)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orders=${ORDERS:-2000}
placers=${PLACERS:-8}
query_orders=${QUERY_ORDERS:-20000}
idle_orders=${IDLE_ORDERS:-100000}
idle_seconds=${IDLE_SECONDS:-60}
phases=" ${PHASES:-1 2 3} "
build="${WXRECON_BUILD_DIR:-$root/build}"

"$root/scripts/bootstrap.sh"
# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
daemon_pid="" sim_pid=""
stop_daemon() {
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  daemon_pid=""
}
cleanup() {
  set +e
  stop_daemon
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$work"/*.log "$KEEP"/ 2>/dev/null
  for log in "$work"/daemon-*.log; do
    [ -f "$log" ] && grep -E " (warning|error) " "$log" | cut -c27- | sort | uniq -c | sort -rn | head -3 >&2
  done
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond wxpay-sim >/dev/null
pg_cluster_start

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_line() {  # wait_for_line <file> <pattern>
  for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}

"$build/wxpay-sim" keys --out "$work/keys" --merchants 2 --api-base "http://127.0.0.1:1" >/dev/null
v3=1900000101 v2=1900000102
"$build/wxpay-sim" serve --keys "$work/keys" --listen 127.0.0.1:0 --time-scale 0.001 --seed 11 \
  --max-orders 500000 >"$work/sim.log" 2>&1 &
sim_pid=$!
wait_for_line "$work/sim.log" "wxpay-sim listening"
sim_port=$(awk '/wxpay-sim listening/ {split($4, a, ":"); print a[2]}' "$work/sim.log")
simurl="http://127.0.0.1:$sim_port"
control() { curl -fsS "$simurl$1" -d "$2" >/dev/null; }
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/api.token"

# start_daemon <phase> <database> <[poller] body>: wxrecond on a fresh database, waits until it is ready.
start_daemon() {
  local phase=$1 db=$2 poller=$3 port admin
  port=$(free_port) admin=$(free_port)
  psql "$WXRECON_TEST_PG_URL" -X -q -c "CREATE DATABASE $db"
  db_url="${WXRECON_TEST_PG_URL%/*}/$db"
  cat >"$work/$phase.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
public_base_url = "http://127.0.0.1:$port"
max_connections = 4096
max_connections_per_address = 4096
[admin]
listen = "127.0.0.1:$admin"
[api]
token_file = "api.token"
[database]
url = "$db_url"
[poller]
$poller
TOML
  sed "s#http://127.0.0.1:1#$simurl#g" "$work/keys/wxrecond-merchants.toml" >>"$work/$phase.toml"
  cp "$work/api.token" "$work/keys/api.token" 2>/dev/null || true
  (cd "$work" && exec "$build/wxrecond" --config "$work/$phase.toml" serve) >"$work/daemon-$phase.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$admin/readyz" 2>/dev/null && break; sleep 0.05; done
  api_port=$port admin_port=$admin
}
sql() { psql "$db_url" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
wait_until_settled() {  # wait_until_settled <limit seconds>
  local limit=$1 open
  for _ in $(seq $((limit * 4))); do
    open=$(sql "SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING')")
    [ "$open" = 0 ] && return 0
    sleep 0.25
  done
  echo "still $open orders open after $limit s" >&2; return 1
}

if [[ "$phases" == *" 1 "* ]]; then
echo "== 1. convergence: $orders orders placed with prepay, 85 % paid, 30 % of notifications dropped, 10 % duplicated"
start_daemon converge converge 'delays = ["5s", "15s"]
interval_after = "10s"
close_after_expire = "1s"
concurrency = 32
rate_per_second = 500'
control /sim/faults '{"drop":0.3,"duplicate":0.1}'
per_merchant=$((orders / 2)) paid_each=$((orders / 2 * 17 / 20))
start=$(date +%s.%N)
python3 - "$api_port" "$work/api.token" "$placers" "$v3" "$v2" "$per_merchant" <<'PY'
import datetime, http.client, json, sys, threading
port, token_file, placers, v3, v2, per = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
token = open(token_file).read().strip()
work = [(m, i) for m in (v3, v2) for i in range(1, per + 1)]
failures = []
def place(chunk):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for mchid, i in chunk:
        expire = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=65)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"mchid": mchid, "out_trade_no": f"BENCH-PREPAY-{i}", "amount_total": 100 + i,
                           "description": "bench", "payer_openid": "oBenchPayer", "expire_at": expire, "prepay": True})
        conn.request("POST", "/api/v1/orders", body, {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        if r.status != 201 or b"paySign" not in text:
            failures.append((mchid, i, r.status, text[:200]))
threads = [threading.Thread(target=place, args=(work[k::placers],)) for k in range(placers)]
for t in threads: t.start()
for t in threads: t.join()
if failures:
    print("prepay failures:", len(failures), failures[:3]); sys.exit(1)
PY
placed=$(date +%s.%N)
echo "placed $orders orders in $(awk -v a="$start" -v b="$placed" 'BEGIN {printf "%.1f", b - a}') s ($(awk -v n="$orders" -v a="$start" -v b="$placed" 'BEGIN {printf "%d", n / (b - a)}') prepays/s)"
control /sim/pay "{\"mchid\":\"$v3\",\"prefix\":\"BENCH-PREPAY-\",\"count\":$paid_each}"
control /sim/pay "{\"mchid\":\"$v2\",\"prefix\":\"BENCH-PREPAY-\",\"count\":$per_merchant}"
wait_until_settled 600
end=$(date +%s.%N)
echo "converged in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s from the first placement"
sql "SELECT format('  %s: %s orders, %s by notification, %s by query, %s closed; discrepancies %s',
            mchid, count(*), count(*) FILTER (WHERE state = 'SUCCESS' AND state_source = 'notify'),
            count(*) FILTER (WHERE state = 'SUCCESS' AND state_source = 'query'), count(*) FILTER (WHERE state = 'CLOSED'),
            (SELECT count(*) FROM wxrecon.discrepancies d WHERE d.mchid = o.mchid))
     FROM wxrecon.orders o GROUP BY mchid ORDER BY mchid"
paid_settled=$(sql "SELECT extract(epoch FROM max(state_changed_at) - min(created_at))::numeric(10,1) FROM wxrecon.orders
                    WHERE state = 'SUCCESS'")
echo "  the last paid order was settled $paid_settled s after the first order was created"
stop_daemon
fi

if [[ "$phases" == *" 2 "* ]]; then
echo "== 2. query throughput: $query_orders orders paid at the simulator, every notification dropped, all due at once"
control /sim/faults '{"drop":1,"duplicate":0}'
control /sim/orders "{\"mchid\":\"$v3\",\"prefix\":\"BENCH-QUERY-\",\"count\":$query_orders,\"amount\":100,\"notify_url\":\"http://127.0.0.1:1/x\"}"
control /sim/pay "{\"mchid\":\"$v3\",\"prefix\":\"BENCH-QUERY-\",\"count\":$query_orders}"
start_daemon query query 'delays = ["0s"]
interval_after = "1h"
concurrency = 64
rate_per_second = 100000'
sql "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at, placed_at)
     SELECT '$v3', 'BENCH-QUERY-' || g, 100, now() + interval '2 hours', now() FROM generate_series(1, $query_orders) g"
start=$(date +%s.%N)
wait_until_settled 600
end=$(date +%s.%N)
echo "$query_orders orders settled by query in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s:" \
     "$(awk -v n="$query_orders" -v a="$start" -v b="$end" 'BEGIN {printf "%d", n / (b - a)}') queries/s (signed, verified, applied)"
curl -fsS "http://127.0.0.1:$admin_port/metrics" | grep '^wxrecon_queries_total' || true
stop_daemon
fi

if [[ "$phases" == *" 3 "* ]]; then
echo "== 3. idle: $idle_orders open orders, none due for an hour, ${idle_seconds} s"
start_daemon idle idle 'delays = ["1h"]'
sql "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, expire_at, next_poll_at)
     SELECT '$v3', 'BENCH-IDLE-' || g, 100, now() + interval '2 hours', now() + interval '1 hour'
     FROM generate_series(1, $idle_orders) g"
sql "ANALYZE wxrecon.orders"
sleep 2
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
before=$(cpu)
sleep "$idle_seconds"
after=$(cpu)
awk -v a="$before" -v b="$after" -v t="$ticks" -v s="$idle_seconds" \
  'BEGIN {printf "wxrecond CPU: %.2f s in %d s = %.2f %% of one core\n", (b - a) / t, s, 100 * (b - a) / t / s}'
echo "the claim query (EXPLAIN): $(sql "EXPLAIN SELECT mchid, out_trade_no FROM wxrecon.orders
     WHERE next_poll_at <= now() AND (poll_lease_until IS NULL OR poll_lease_until < now())
     ORDER BY next_poll_at LIMIT 16 FOR UPDATE SKIP LOCKED" | tr '\n' ' ' | tr -s ' ')"
stop_daemon
fi
