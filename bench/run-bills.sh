#!/usr/bin/env bash
# The daily reconciliation at production size (issue 13): a trade bill of ROWS payments (default 1,000,000).
#   1. the bill parser alone, in memory (bench/bill_parse): rows per second;
#   2. wxpay-sim with ROWS orders paid on a Beijing day two days back, a throwaway PostgreSQL whose ledger
#      already holds them as paid (as the notifications would have left it), and
#      `wxrecond bills fetch --date DAY --kind trade` under /usr/bin/time: download (gzip) and SHA-1 check,
#      parse, COPY, match — wall time, peak RSS, and the simulator's own time to make the file (WeChat Pay
#      makes its bills ahead of time; the simulator makes them when asked).
# Knobs: ROWS, WXRECON_BUILD_DIR, PROFILE=1 (auto_explain of slow statements into PROFILE_LOG),
# KEEP=1 (leave the PostgreSQL cluster running afterwards, to look at the plans; its URL is printed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rows=${ROWS:-1000000}
build="${WXRECON_BUILD_DIR:-$root/build}"

# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
sim_pid=""
cleanup() {
  set +e
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: WXRECON_TEST_PG_URL=$WXRECON_TEST_PG_URL"; else pg_cluster_stop; fi
  rm -rf "$work"
}
trap cleanup EXIT

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond wxpay-sim bill_parse >/dev/null

echo "== 1. the parser alone"
"$build/bench/bill_parse" "$rows"

echo "== 2. bills fetch against wxpay-sim and PostgreSQL"
pg_cluster_start >/dev/null
"$build/wxpay-sim" keys --out "$work/keys" --merchants 1 --api-base "http://127.0.0.1:1" >/dev/null
"$build/wxpay-sim" serve --keys "$work/keys" --listen 127.0.0.1:0 --seed 1 >"$work/sim.txt" 2>&1 &
sim_pid=$!
for _ in $(seq 200); do grep -q "wxpay-sim listening" "$work/sim.txt" && break; sleep 0.05; done
sim_port=$(awk '/wxpay-sim listening/ {split($4, a, ":"); print a[2]}' "$work/sim.txt")
mchid=1900000101
control() { curl -fsS "http://127.0.0.1:$sim_port$1" -d "$2" >/dev/null; }
day=$(TZ=Asia/Shanghai date -d '2 days ago' +%F)

control /sim/faults '{"drop":1}'  # no notifications: the ledger is loaded below, as they would have left it
for ((first = 1; first <= rows; first += 100000)); do
  count=$((rows - first + 1 < 100000 ? rows - first + 1 : 100000))
  control /sim/orders "{\"mchid\":\"$mchid\",\"prefix\":\"BENCH-\",\"first\":$first,\"count\":$count,\"amount\":1990,\"notify_url\":\"http://127.0.0.1:9/n\"}"
  control /sim/pay "{\"mchid\":\"$mchid\",\"prefix\":\"BENCH-\",\"first\":$first,\"count\":$count,\"at\":\"${day}T12:00:00+08:00\"}"
done
echo "wxpay-sim: $rows orders paid on $day"

sed "s|http://127.0.0.1:1|http://127.0.0.1:$sim_port|" "$work/keys/wxrecond-merchants.toml" >"$work/merchants.toml"
cat >"$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[database]
url = "$WXRECON_TEST_PG_URL"
TOML
cat "$work/merchants.toml" >>"$work/wxrecond.toml"
"$build/wxrecond" --config "$work/wxrecond.toml" migrate >/dev/null 2>&1
if [ "${PROFILE:-0}" = 1 ]; then  # the plans of the slow statements, those inside reconcile_bill_day included
  psql -q "$WXRECON_TEST_PG_URL" -c "LOAD 'auto_explain'" -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER SYSTEM SET auto_explain.log_min_duration = '200ms'" -c "ALTER SYSTEM SET auto_explain.log_analyze = on" \
    -c "ALTER SYSTEM SET auto_explain.log_nested_statements = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
curl -fsS "http://127.0.0.1:$sim_port/sim/ledger" | python3 -c '
import json, sys
day = sys.argv[1]
for o in json.load(sys.stdin)["orders"]:
    if o["trade_state"] == "SUCCESS":
        print("\t".join([o["mchid"], o["out_trade_no"], "1990", "SUCCESS", "notify", o["transaction_id"],
                         str(o["payer_total"]), day + " 12:00:00+08"]))
' "$day" >"$work/orders.tsv"
psql -q "$WXRECON_TEST_PG_URL" -c "\\copy wxrecon.orders (mchid, out_trade_no, amount_total, state, state_source, transaction_id, payer_total, success_time) FROM '$work/orders.tsv'"
psql -q "$WXRECON_TEST_PG_URL" -c "VACUUM ANALYZE wxrecon.orders"
echo "ledger: $(psql -At "$WXRECON_TEST_PG_URL" -c "SELECT count(*) FROM wxrecon.orders") paid orders"

/usr/bin/time -v "$build/wxrecond" --config "$work/wxrecond.toml" bills fetch --date "$day" --kind trade \
  >"$work/result.json" 2>"$work/time.txt" || { cat "$work/time.txt"; exit 1; }
grep -v "^\s" "$work/time.txt" | grep -v "^Command" | sed "s/^/  log: /" || true
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$work/time.txt")
cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "user %.2f s, system %.2f s", u, s}' "$work/time.txt")
sim_ms=$(awk -F'ms=' '/sim: bill made/ {print $2}' "$work/sim.txt" | tail -1)
[ "${PROFILE:-0}" = 1 ] && cp "$PG_CLUSTER_DIR/log" "${PROFILE_LOG:-/tmp/run-bills-pg.log}"
python3 - "$work/result.json" "$rows" "$wall" "$rss" "${sim_ms:-0}" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
rows, wall, rss, sim_ms = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
d = r["reconciliation"]
own = wall - sim_ms / 1000
print(f"bills fetch: status {d['status']}, {d['bill_payments']} bill payments, {d['differences']} differences, "
      f"files {[f['outcome'] for f in r['files']]}")
print(f"wall {wall:.2f} s, of which the simulator making the file {sim_ms / 1000:.2f} s: "
      f"wxrecond {own:.2f} s = {rows / own:,.0f} rows/s (download, SHA-1, parse, COPY, match)")
print(f"wxrecond peak RSS {rss} MiB")
PY
echo "wxrecond CPU: $cpu (the rest of its wall time is PostgreSQL's and the simulator's)"
