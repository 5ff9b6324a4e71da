#!/usr/bin/env bash
# App events against notification ingestion (issue 14, Performance): a throwaway PostgreSQL with ORDERS
# registered orders; wxrecond fed genuine APIv3 payment notifications by bench/notify_load at RATE per second
# for RUN_SECONDS, REPEAT times [app_events] off then on (with wxpay-sim's receiver, which verifies every
# signature), alternating so that the machine's drift burdens both alike. Each run prints the notification
# latency (p50/p99), the CPU seconds of each process (the load generator's as it reports them), the seconds
# each spent runnable but waiting for a core, and PostgreSQL's costliest statements; with events on
# also the outbox lag: how long from an event's commit to its 2xx (p50/p99/max, from wxrecon.app_events),
# events delivered and signatures that failed. The summary compares the medians. Targets: lag p99 < 1 s,
# notification p99 with events on at most 1.2x with events off.
# Defaults: RATE=2000 RUN_SECONDS=30 REPEAT=3 CONCURRENCY=64 (ORDERS: enough for every run)
# RECEIVER_NICE (default 0): the receiver's nice value. The receiver stands for the application, which runs
# on machines of its own; at 19 it takes only what wxrecond, PostgreSQL and the load leave of this machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rate=${RATE:-2000}
seconds=${RUN_SECONDS:-30}
repeat=${REPEAT:-3}
per_run=$(awk -v r="$rate" -v s="$seconds" 'BEGIN {printf "%d", r * s * 1.05 + 1}')
orders=${ORDERS:-$(((2 * repeat + 1) * per_run))}
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
"${psql[@]}" -c "ALTER SYSTEM SET synchronous_commit = on" \
  -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'auto_explain'" >/dev/null
"$WXRECON_TEST_PG_CTL" stop >/dev/null && "$WXRECON_TEST_PG_CTL" start >/dev/null
"${psql[@]}" -c "CREATE EXTENSION pg_stat_statements"
# SLOW_PLANS_MS=N: the plan of every statement slower than N ms goes to the server log, printed at the end.
if [ -n "${SLOW_PLANS_MS:-}" ]; then
  "${psql[@]}" -c "ALTER SYSTEM SET auto_explain.log_min_duration = '${SLOW_PLANS_MS}ms'" \
    -c "ALTER SYSTEM SET auto_explain.log_analyze = on" -c "ALTER SYSTEM SET auto_explain.log_timing = off" \
    -c "ALTER SYSTEM SET log_autovacuum_min_duration = 0" -c "SELECT pg_reload_conf()" >/dev/null
fi

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
nice -n "${RECEIVER_NICE:-0}" "$build/wxpay-sim" serve --keys "$work/simkeys" --listen "127.0.0.1:$sim_port" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$sim_port/sim/stats" >/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$sim_port/sim/app-events-config" \
  -d "{\"secret\":\"$(cat "$work/app_events.key")\",\"status\":200}"

config() {  # config <with app events: 0|1>
  cat <<TOML
[server]
listen = "127.0.0.1:$port"
max_connections = 4096
max_connections_per_address = 4096
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
                 SELECT '1900000109', 'PERF-' || g, 100, 'wxd678efh567hg6787', now() + interval '1 day'
                 FROM generate_series(1, $orders) g" \
             -c "VACUUM ANALYZE wxrecon.orders"

# CPU seconds per command name (utime + stime of live processes), to show where the load goes.
cpu_snapshot() {
  local f line rest
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue  # a process gone since the glob
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    line=${line#*(}
    echo "${line%%)*} $((${12} + ${13}))"
  done | awk '{s[$1] += $2} END {for (c in s) print c, s[c]}'
}
cpu_report() {  # cpu_report <before> <after>
  awk -v hz="$(getconf CLK_TCK)" 'NR == FNR {b[$1] = $2; next} {d[$1] = $2 - b[$1]}
    END {printf "cpu seconds:"; n = split("postgres wxrecond wxpay-sim notify_load python3", c, " ")
         for (i = 1; i <= n; i++) printf " %s %.1f", c[i], d[c[i]] / hz; print ""}' <(echo "$1") <(echo "$2")
}

# Seconds spent runnable but waiting for a core, per command name (the second field of each thread's
# schedstat): how long the processes queued behind one another on this machine's two cores.
queue_snapshot() {
  local dir comm stat wait
  for dir in /proc/[0-9]*; do
    { read -r comm <"$dir/comm"; } 2>/dev/null || continue
    for stat in "$dir"/task/[0-9]*/schedstat; do
      { read -r _ wait _ <"$stat"; } 2>/dev/null && echo "$comm $wait"
    done
  done | awk '{s[$1] += $2} END {for (c in s) print c, s[c]}'
}
queue_report() {  # queue_report <before> <after>
  awk 'NR == FNR {b[$1] = $2; next} {d[$1] = $2 - b[$1]}
    END {printf "waiting for a core, seconds:"; n = split("postgres wxrecond wxpay-sim", c, " ")
         for (i = 1; i <= n; i++) printf " %s %.1f", c[i], d[c[i]] / 1e9; print ""}' <(echo "$1") <(echo "$2")
}

# Autovacuum runs so far per table of wxrecon, sorted by name (for join).
autovacuums() {
  "${psql[@]}" -F ' ' -c "SELECT relname, autovacuum_count + autoanalyze_count FROM pg_stat_user_tables
                          WHERE schemaname = 'wxrecon' ORDER BY 1"
}

run() {  # run <app events 0|1> <first order>
  config "$1" >"$work/wxrecond.toml"
  "$build/wxrecond" --config "$work/wxrecond.toml" serve >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done
  # The daemon's first count of orders by state (a scan of every order, then once a minute) belongs to its
  # start, not to the run: it pruned the pages the run before had updated and wrote them whole to the WAL
  # (13 MB in 0.3-0.4 s, which the commits behind it waited for). Measured from readiness, it fell inside
  # the window of every run with events on and of none with them off.
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$admin/metrics" | grep -q '^wxrecon_orders{' && break; sleep 0.1
  done
  local count
  count=$(awk -v r="$rate" -v s="$seconds" 'BEGIN {printf "%d", r * s * 1.05}')
  local before
  "${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
  before=$(cpu_snapshot)
  local queued_before
  queued_before=$(queue_snapshot)
  local vacuums_before
  vacuums_before=$(autovacuums)
  "$build/bench/notify_load" --port "$port" --apiv3-key-file "$work/keys/apiv3.key" \
    --wechatpay-key-file "$work/keys/wechatpay_key.pem" --serial "$serial" --database-url "$WXRECON_TEST_PG_URL" \
    --prefix PERF- --register 0 --first "$2" --orders "$count" --concurrency "$concurrency" --seconds "$seconds" \
    --rate "$rate" --daemon-pid "$daemon_pid" | grep -E "^(notifications|latency|daemon|generator)"
  cpu_report "$before" "$(cpu_snapshot)"
  queue_report "$queued_before" "$(queue_snapshot)"
  echo "autovacuum runs: $(join -a 2 <(echo "$vacuums_before") <(autovacuums) | awk '{n = $NF - (NF == 3 ? $2 : 0); if (n > 0) printf "%s %d ", $1, n}')"
  # Where PostgreSQL's time went: the statements that took most of it, and the WAL each wrote (a commit waits
  # for the flush of all WAL before it, the pusher's too).
  "${psql[@]}" -F ' | ' -c "SELECT round(total_exec_time)::text || ' ms', calls, round((1000 * total_exec_time / calls)::numeric, 1) || ' us/call',
                                   round(wal_bytes / calls) || ' WAL bytes/call', left(regexp_replace(query, '\s+', ' ', 'g'), 90)
                            FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time DESC LIMIT 8"
  if [ "$1" = 1 ]; then
    for _ in $(seq 600); do
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
# BURN_PERCENT=N (a control): the second run of each pair keeps [app_events] off and runs a process that
# keeps N % of one core busy in 1 ms slices instead: does any load of the events' size raise p99 as much?
burn() {
  exec python3 -c 'import sys, time
busy = float(sys.argv[1]) / 100 * 0.01
while True:
    end = time.perf_counter() + busy
    while time.perf_counter() < end: pass
    time.sleep(0.01 - busy)' "$1"
}
# A warm-up fills payment_events before anything is measured: a daemon whose statements were first planned
# against an empty table keeps plans that degrade as it grows (issue 15), which would burden whichever run
# came first. Each measured run starts a new daemon, so its statements are planned against this table.
echo "== warm-up: ${rate}/s for 10s"
seconds_measured=$seconds; seconds=10
run 0 1 >/dev/null
seconds=$seconds_measured
"${psql[@]}" -c "VACUUM ANALYZE wxrecon.payment_events"
first=$((per_run + 1))
for i in $(seq "$repeat"); do
  for events in 0 1; do
    # Each run starts with everything before it on disk (a checkpoint, then the kernel's write-back): no run
    # pays for the writes of the one before, which would queue before its commits' WAL flushes.
    "${psql[@]}" -c "TRUNCATE wxrecon.app_events" -c "CHECKPOINT" && sync
    if [ "$events" = 1 ] && [ -n "${BURN_PERCENT:-}" ]; then
      echo "== run $i, [app_events] off, a burner at ${BURN_PERCENT} % of a core: ${rate}/s for ${seconds}s"
      burn "$BURN_PERCENT" & burner_pid=$!
      run 0 "$first" | tee "$work/run-$events-$i.txt"
      kill "$burner_pid"; wait "$burner_pid" 2>/dev/null || true
    else
      echo "== run $i, [app_events] $([ "$events" = 1 ] && echo on || echo off): ${rate}/s for ${seconds}s"
      run "$events" "$first" | tee "$work/run-$events-$i.txt"
    fi
    first=$((first + per_run))
  done
done
if [ -n "${SLOW_PLANS_MS:-}" ]; then
  echo "== plans slower than ${SLOW_PLANS_MS} ms of statements on app_events, and its autovacuums"
  # A log entry is a line with a timestamp and the tab-indented lines after it.
  awk '/^[0-9][0-9][0-9][0-9]-/ {if (keep) printf "%s", entry; entry = ""; keep = 0}
       {entry = entry substr($0, 1, 220) "\n"}
       /app_events/ {keep = keep || entry ~ /duration: |automatic (vacuum|analyze)/}
       END {if (keep) printf "%s", entry}' "$PG_CLUSTER_DIR/log" | head -600
fi
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
p99_off=$(cat "$work"/run-0-*.txt | awk '/^latency ms:/ {print $6}' | median)
p99_on=$(cat "$work"/run-1-*.txt | awk '/^latency ms:/ {print $6}' | median)
lag_p99=$(cat "$work"/run-1-*.txt | awk '/^app events:/ {print $12}' | median)
echo "== summary over $repeat runs each (receiver at nice ${RECEIVER_NICE:-0}): notification p99 ms (median) off $p99_off," \
  "$([ -n "${BURN_PERCENT:-}" ] && echo "off with the burner" || echo on) $p99_on," \
  "ratio $(awk -v a="$p99_on" -v b="$p99_off" 'BEGIN {printf "%.2f", a / b}'); outbox lag p99 ms (median) $lag_p99"
