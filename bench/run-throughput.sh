#!/usr/bin/env bash
# Throughput of the notification path against PostgreSQL's own one-transaction-per-fact figure, in one run:
#   1. a throwaway PostgreSQL (synchronous_commit = on) with ORDERS registered orders;
#   2. pgbench, CLIENTS clients for PGBENCH_SECONDS, with bench/pgbench_fact.sql (one insert + one update);
#   3. wxrecond, with bench/notify_load sending pre-signed APIv3 notifications at CONCURRENCY for SECONDS;
# then prints both rates, their ratio, p50/p99 latency and the daemon's peak RSS; and two paced runs of
# RUN_SECONDS_PACED: genuine notifications alone at PACED_RATE, then genuine ones at FLOOD_RATE with FORGERIES
# forged ones per genuine one (a 10x flood at 2,500/s would be 27,500 requests/s, more than one generator next to
# the daemon and PostgreSQL can send on two cores, so the flood runs at a lower genuine rate with the full ratio).
# HISTORY=N first loads N historical payment events (a year of them, rows of the size a notification leaves,
# analysed) so the hot path runs against a table of production size; the fast run also prints PostgreSQL's
# CPU per notification (all its processes' CPU time over the run, divided by the notifications).
# API_ORDERS of the orders are registered through POST /api/v1/orders (the rest by SQL) and are the first notified.
# The fast run prints its rate every REPORT_EVERY seconds (decay shows there), the batch-size distribution
# (wxrecon_fact_batch_size) and, from pg_stat_statements, the statements' execution time per notification.
# A production-size run: HISTORY=2000000 RUN_SECONDS=300 NOTIFICATIONS=2400000 (signing those takes minutes).
# Defaults: ORDERS=1000000 API_ORDERS=20000 HISTORY=0 NOTIFICATIONS=160000 RUN_SECONDS=30 REPORT_EVERY=10
#           CONCURRENCY=64 CLIENTS=16 PGBENCH_SECONDS=60 PACED_RATE=2500 RUN_SECONDS_PACED=20 FLOOD_RATE=1000
#           FORGERIES=10; PostgreSQL's defaults PG_SHARED_BUFFERS=128MB PG_MAX_WAL_SIZE=1GB PG_WAL_COMPRESSION=off
# The flood (issue 16, Prove 3) is measured against a baseline at the same genuine rate without forgeries:
# the p99 ratio, the daemon's CPU per forgery (the four kinds in turn: another key's signature, a stale
# timestamp, an unknown serial, the probe) and the rows rejected_notifications kept. FLOOD_ONLY=1 runs only
# that pair.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orders=${ORDERS:-1000000}
api_orders=${API_ORDERS:-20000}
report_every=${REPORT_EVERY:-10}
history=${HISTORY:-0}
notifications=${NOTIFICATIONS:-160000}
seconds=${RUN_SECONDS:-30}
concurrency=${CONCURRENCY:-64}
clients=${CLIENTS:-16}
pgbench_seconds=${PGBENCH_SECONDS:-60}
paced_rate=${PACED_RATE:-2500}
paced_seconds=${RUN_SECONDS_PACED:-20}
flood_rate=${FLOOD_RATE:-1000}
forgeries=${FORGERIES:-10}
build="${WXRECON_BUILD_DIR:-$root/build}"
flood_only=${FLOOD_ONLY:-0}
# Every run pays orders that exist and that no run before it paid (an unknown order is a discrepancy, a
# heavier path): the fast run 1..NOTIFICATIONS, the paced run after it, the two flood runs the last ones.
paced=$(awk -v r="$paced_rate" -v s="$paced_seconds" 'BEGIN {printf "%d", r * s * 1.05}')
flood=$(awk -v r="$flood_rate" -v s="$paced_seconds" 'BEGIN {printf "%d", r * s * 1.05}')
paced_first=$((notifications > 200000 ? notifications + 1 : 200001))
flood_first=$((orders - 2 * flood + 1))
if [ "$flood_first" -le "$((flood_only == 1 ? api_orders : paced_first + paced - 1))" ]; then
  echo "ORDERS=$orders is too few for the runs asked for (NOTIFICATIONS=$notifications): raise ORDERS" >&2
  exit 2
fi

"$root/scripts/bootstrap.sh"
# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
daemon_pid=""
cleanup() {
  set +e  # every step runs, whatever the one before it returned (a grep finding nothing included)
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -f "$work/daemon.log" ] && grep -E " (warning|error) " "$work/daemon.log" | sort | uniq -c | sort -rn | head -5 >&2
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start
psql=(psql "$WXRECON_TEST_PG_URL" -X -q -v ON_ERROR_STOP=1)
"${psql[@]}" -c "ALTER SYSTEM SET synchronous_commit = on" \
             -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" \
             -c "ALTER SYSTEM SET shared_buffers = '${PG_SHARED_BUFFERS:-128MB}'" \
             -c "ALTER SYSTEM SET max_wal_size = '${PG_MAX_WAL_SIZE:-1GB}'" \
             -c "ALTER SYSTEM SET wal_compression = '${PG_WAL_COMPRESSION:-off}'" >/dev/null
"$PG_CLUSTER_DIR/ctl" stop >/dev/null && "$PG_CLUSTER_DIR/ctl" start >/dev/null
"${psql[@]}" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
# PGSS_NESTED=1: pg_stat_statements also counts the statements of triggers and functions, and planning.
if [ "${PGSS_NESTED:-0}" = 1 ]; then
  "${psql[@]}" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" \
               -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" -c "SELECT pg_reload_conf()" >/dev/null
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond notify_load >/dev/null

mkdir -p "$work/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/apiclient_key.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/keys/wechatpay_key.pem" 2>/dev/null
openssl pkey -in "$work/keys/wechatpay_key.pem" -pubout -out "$work/keys/pub_key.pem" 2>/dev/null
head -c 24 /dev/urandom | base64 | tr -d '\n' > "$work/keys/apiv3.key"
head -c 24 /dev/urandom | base64 | tr -d '\n' > "$work/keys/api.token"
port=$(pg_cluster_free_port); admin=$((port + 1000)); api=$((port + 2000))
serial=PUB_KEY_ID_0119000001092026112600000001
cat > "$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_connections = 4096
max_connections_per_address = 4096
[admin]
listen = "127.0.0.1:$admin"
[api]
listen = "127.0.0.1:$api"
token_file = "keys/api.token"
[database]
url = "$WXRECON_TEST_PG_URL"
pool_size = ${WXRECON_BENCH_POOL:-8}
[poller]
# The orders registered through the API are notified in the run, up to 20 s after they were registered
# (registration comes first): queried at 5 s, as by default, most of them would be queried first, at a
# WeChat Pay that is not there (api_base below), and every failed query retried. Like the orders loaded by
# SQL, none is due in the run: this measures notifications; bench/run-poller.sh measures the poller.
delays = ["10m"]
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
"$build/wxrecond" --config "$work/wxrecond.toml" migrate 2>/dev/null
echo "loading $((orders - api_orders)) orders by SQL"
# Their first query is a day away: the benchmark measures notifications, not the poller.
"${psql[@]}" -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, next_poll_at)
                 SELECT '1900000109', 'PERF-' || g, 100, 'wxd678efh567hg6787', now() + interval '1 day'
                 FROM generate_series($((api_orders + 1)), $orders) g" \
             -c "VACUUM ANALYZE wxrecon.orders"
if [ "$history" -gt 0 ]; then
  echo "loading $history historical payment events (a year of them)"
  # In pieces: the statement trigger that records the facts' identities holds each statement's rows.
  for ((from = 1; from <= history; from += 250000)); do
    to=$((from + 249999 < history ? from + 249999 : history))
    "${psql[@]}" -c "INSERT INTO wxrecon.payment_events (mchid, out_trade_no, source, notify_id, event_type, trade_state,
                       transaction_id, amount_total, payer_total, occurred_at, received_at, payload, raw_body, raw_headers)
                     SELECT '1900000109', 'HIST-' || g, 'notify_v3', 'hist-' || md5(g::text), 'TRANSACTION.SUCCESS',
                            'SUCCESS', '4200' || lpad(g::text, 24, '0'), 100, 100, t, t,
                            jsonb_build_object('out_trade_no', 'HIST-' || g, 'pad', repeat('x', 700)),
                            repeat('y', 900), jsonb_build_object('pad', repeat('z', 700))
                     FROM generate_series($from, $to) g,
                          LATERAL (SELECT now() - (g % 365) * interval '1 day' AS t) d"
  done
  "${psql[@]}" -c "VACUUM ANALYZE wxrecon.payment_events, wxrecon.fact_identities"
fi
# What the loading wrote goes to disk now (a checkpoint, then the kernel's write-back), not during a
# measured run, where its writes would queue before the commits' WAL flushes.
"${psql[@]}" -c "CHECKPOINT" && sync
# CPU ticks of this cluster's server processes (the daemon's connections stay open through a run).
pg_ticks() {
  local total=0 pid postmaster
  postmaster=$(head -1 "$PG_CLUSTER_DIR/data/postmaster.pid")
  for pid in $postmaster $(pgrep -P "$postmaster" || true); do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

if [ "$flood_only" = 0 ]; then
echo "pgbench: $clients clients, ${pgbench_seconds}s, bench/pgbench_fact.sql"
pgbench_tps=$("$PG_CLUSTER_BIN/pgbench" -n -c "$clients" -j 2 -T "$pgbench_seconds" -f "$root/bench/pgbench_fact.sql" \
  "$WXRECON_TEST_PG_URL" 2>/dev/null | awk '/^tps = / {print int($3); exit}')
echo "pgbench: $pgbench_tps transactions/s"
fi

SPDLOG_LEVEL=${SPDLOG_LEVEL:-info} "$build/wxrecond" --config "$work/wxrecond.toml" serve >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
load() {  # load <first order> <count> <extra options...>
  local first=$1 count=$2; shift 2
  "$build/bench/notify_load" --port "$port" --apiv3-key-file "$work/keys/apiv3.key" \
    --wechatpay-key-file "$work/keys/wechatpay_key.pem" --serial "$serial" --database-url "$WXRECON_TEST_PG_URL" \
    --prefix PERF- --register 0 --first "$first" --orders "$count" --concurrency "$concurrency" \
    --daemon-pid "$daemon_pid" "$@"
}
if [ "$flood_only" = 0 ]; then
echo "== wxrecond, as fast as it answers, ${seconds}s"
batch_sizes() { curl -fs "http://127.0.0.1:$admin/metrics" | grep '^wxrecon_fact_batch_size'; }
batch_sizes > "$work/batches0.txt"
"${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
# The load signs first (minutes for a long run), so PostgreSQL's ticks are taken when it starts sending.
load 1 "$notifications" --seconds "$seconds" --report-every "$report_every" --api-register "$api_orders" \
  --api-port "$api" --api-token-file "$work/keys/api.token" | while IFS= read -r line; do
  case "$line" in pre-signed*|registered*API*)
    pg_ticks > "$work/p0"; "${psql[@]}" -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" \
      -c "SELECT pg_stat_reset_shared('bgwriter')" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null ;;
  esac
  echo "$line"
done | tee "$work/load.txt"
p1=$(pg_ticks); p0=$(cat "$work/p0")
batch_sizes > "$work/batches1.txt"
echo "facts per batch (wxrecon_fact_batch_size during the run):"
join <(sed -n 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/p' "$work/batches0.txt") \
     <(sed -n 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/p' "$work/batches1.txt") 2>/dev/null \
  | awk '{n = $3 - $2; printf "  <= %-5s %8d batches (%d in this bucket)\n", $1, n, n - prev; prev = n}'
awk 'FNR == 1 {f++} /_sum / {s[f] = $2} /_count / {c[f] = $2}
     END {if (c[2] > c[1]) printf "  mean %.1f facts per batch over %d batches\n", (s[2] - s[1]) / (c[2] - c[1]), c[2] - c[1]}' \
  "$work/batches0.txt" "$work/batches1.txt"
sent_now=$(awk '/^notifications:/ {print $2}' "$work/load.txt")
echo "statements, execution time per notification (pg_stat_statements):"
"${psql[@]}" -At -F ' ' -c "SELECT round(sum(total_exec_time)::numeric * 1000 / $sent_now, 1) FROM pg_stat_statements WHERE toplevel" \
  | sed 's/^/  all statements: /; s/$/ us/'
# Pages a notification's statements found in shared buffers, had to read in (from the kernel's cache or the
# disk) and wrote out to make room: a working set larger than shared_buffers shows here.
"${psql[@]}" -At -c "SELECT '  shared buffers per notification: ' || round(sum(shared_blks_hit)::numeric / $sent_now, 1)
                            || ' hit, ' || round(sum(shared_blks_read)::numeric / $sent_now, 2) || ' read, '
                            || round(sum(shared_blks_dirtied)::numeric / $sent_now, 2) || ' dirtied, '
                            || round(sum(shared_blks_written)::numeric / $sent_now, 2) || ' written by the statements'
                     FROM pg_stat_statements WHERE toplevel"
"${psql[@]}" -At -c "SELECT '  checkpoints: ' || checkpoints_timed + checkpoints_req || ', pages written per notification by'
                            || ' checkpoints ' || round(buffers_checkpoint::numeric / $sent_now, 2)
                            || ', the background writer ' || round(buffers_clean::numeric / $sent_now, 2)
                            || ', backends ' || round(buffers_backend::numeric / $sent_now, 2) FROM pg_stat_bgwriter"
# After a checkpoint the first change to a page logs the whole page (a full-page image): with updates spread
# over millions of orders, most updates are such a first change when checkpoints come often.
"${psql[@]}" -At -c "SELECT '  WAL per notification: ' || round(wal_bytes / $sent_now) || ' bytes, '
                            || round(wal_records::numeric / $sent_now, 1) || ' records, '
                            || round(wal_fpi::numeric / $sent_now, 2) || ' full-page images' FROM pg_stat_wal"
"${psql[@]}" -At -F ' | ' -c "SELECT round((total_exec_time * 1000 / $sent_now)::numeric, 1) || ' us', calls,
                                     CASE WHEN plans > 0 THEN plans || ' plans, '
                                          || round((total_plan_time * 1000 / $sent_now)::numeric, 1) || ' us planning' END,
                                     CASE WHEN NOT toplevel THEN 'nested' END,
                                     left(regexp_replace(query, '\s+', ' ', 'g'), 90)
                              FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC
                              LIMIT ${PGSS_TOP:-8}" | sed 's/^/  /; s/ |  | / | /g; s/ |  | / | /g'
# An order update that changes no indexed column and finds room on its page is HOT: no index entries.
"${psql[@]}" -At -c "SELECT 'orders: ' || n_tup_upd || ' row updates, ' || round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1), 1)
                            || ' % HOT' FROM pg_stat_user_tables WHERE relid = 'wxrecon.orders'::regclass" | sed 's/^/  /'
rate=$(awk '/^notifications:/ {sub("/s,", "", $7); print $7}' "$work/load.txt")
sent=$(awk '/^notifications:/ {print $2}' "$work/load.txt")
echo "PostgreSQL CPU per notification: $(awk -v t=$((p1 - p0)) -v n="$sent" -v hz="$(getconf CLK_TCK)" \
  'BEGIN {printf "%.0f", (n > 0 ? t / hz / n * 1e6 : 0)}') us ($((p1 - p0)) ticks over $sent notifications)"
echo "ratio: wxrecond $rate/s / pgbench $pgbench_tps/s = $(awk -v a="$rate" -v b="$pgbench_tps" 'BEGIN {printf "%.2f", a / b}')"
echo "== wxrecond paced at ${paced_rate}/s, ${paced_seconds}s"
load "$paced_first" "$paced" --seconds "$paced_seconds" --rate "$paced_rate" | grep -E "^(notifications|latency)"
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon_pid/stat"; }
echo "== baseline: wxrecond paced at ${flood_rate}/s without forgeries, ${paced_seconds}s"
c0=$(cpu_ticks)
load "$flood_first" "$flood" --seconds "$paced_seconds" --rate "$flood_rate" | tee "$work/baseline.txt" \
  | grep -E "^(notifications|latency|generator)"
c1=$(cpu_ticks)
echo "== wxrecond paced at ${flood_rate}/s with ${forgeries}x forgeries, ${paced_seconds}s"
load "$((flood_first + flood))" "$flood" --seconds "$paced_seconds" --rate "$flood_rate" --forgeries "$forgeries" \
  | tee "$work/flood.txt" | grep -E "^(notifications|latency|forgeries|daemon|generator)"
c2=$(cpu_ticks)
base_p99=$(awk '/^latency/ {print $6}' "$work/baseline.txt")
flood_p99=$(awk '/^latency/ {print $6}' "$work/flood.txt")
forged=$(awk '/^forgeries:/ {print $2}' "$work/flood.txt")
echo "flood: genuine p99 $flood_p99 ms vs $base_p99 ms without = $(awk -v a="$flood_p99" -v b="$base_p99" 'BEGIN {printf "%.2f", a / b}')x"
echo "flood: daemon CPU per forgery $(awk -v f="$forged" -v a=$((c1 - c0)) -v b=$((c2 - c1)) -v hz="$(getconf CLK_TCK)" \
  'BEGIN {printf "%.1f", (f > 0 ? (b - a) / hz / f * 1e6 : 0)}') us (flood run minus baseline, over $forged forgeries)"
echo "flood: rejected_notifications rows kept: $("${psql[@]}" -At -c "SELECT count(*) FROM wxrecon.rejected_notifications")"

