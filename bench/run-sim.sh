#!/usr/bin/env bash
# wxpay-sim throughput, in one run, next to what OpenSSL signs on this machine:
#   1. `openssl speed -multi 2 rsa2048`: RSA-2048 signatures per second on two processes;
#   2. notifications: NOTIFICATIONS paid orders whose signed, encrypted APIv3 notifications go to a sink that
#      answers 204 (bench/sim_load sink) — delivered per second, from the first to the last arrival;
#   3. queries: QUERIES pre-signed APIv3 order queries at CONCURRENCY — signed answers per second.
# Defaults: NOTIFICATIONS=30000 QUERIES=20000 CONCURRENCY=32 SIGNING_THREADS=2
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
notifications=${NOTIFICATIONS:-30000}
queries=${QUERIES:-20000}
concurrency=${CONCURRENCY:-32}
signing_threads=${SIGNING_THREADS:-2}
build="${WXRECON_BUILD_DIR:-$root/build}"

work=$(mktemp -d)
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxpay-sim sim_load >/dev/null

echo "openssl speed -multi 2 rsa2048"
openssl_signs=$(openssl speed -seconds 5 -multi 2 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print int($6)}')
echo "openssl: $openssl_signs RSA-2048 signatures/s on 2 processes"

"$build/wxpay-sim" keys --out "$work/keys" --merchants 1 >/dev/null
mchid=1900000101
serial=$(awk -F'"' '/^merchant_cert_serial/ {print $2; exit}' "$work/keys/sim.toml")

wait_for_line() {  # wait_for_line <file> <pattern>
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
"$build/bench/sim_load" sink --port 0 --expect "$notifications" >"$work/sink.txt" 2>&1 &
pids+=($!); sink_pid=$!
wait_for_line "$work/sink.txt" "sink listening"
sink_port=$(awk '/sink listening/ {split($4, a, ":"); print a[2]}' "$work/sink.txt")
"$build/wxpay-sim" serve --keys "$work/keys" --listen 127.0.0.1:0 --signing-threads "$signing_threads" \
  --concurrency 64 >"$work/sim.txt" 2>&1 &
pids+=($!); sim_pid=$!
wait_for_line "$work/sim.txt" "wxpay-sim listening"
sim_port=$(awk '/wxpay-sim listening/ {split($4, a, ":"); print a[2]}' "$work/sim.txt")
control() { curl -fsS "http://127.0.0.1:$sim_port$1" -d "$2" >/dev/null; }

control /sim/orders "{\"mchid\":\"$mchid\",\"prefix\":\"BENCH-N-\",\"count\":$notifications,\"amount\":100,\"notify_url\":\"http://127.0.0.1:$sink_port/wxpay/v3/notify/$mchid\"}"
echo "== notifications: $notifications paid orders, each notified to a sink answering 204"
start=$(date +%s.%N)
control /sim/pay "{\"mchid\":\"$mchid\",\"prefix\":\"BENCH-N-\",\"count\":$notifications}"
wait "$sink_pid" 2>/dev/null || true  # the sink stops once every notification has arrived
end=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$sim_port/sim/stats" | grep -q '"pending":0,' || echo "warning: deliveries still pending" >&2
grep "^sink:" "$work/sink.txt"
rate=$(awk -v n="$notifications" -v a="$start" -v b="$end" 'BEGIN {printf "%d", n / (b - a)}')
echo "notifications: $notifications delivered and acknowledged in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s = $rate/s (from the pay call to the last arrival)"
sink_rate=$(awk '/^sink:/ {sub("/s", "", $NF); print $NF}' "$work/sink.txt")
echo "ratio to openssl: $(awk -v a="$rate" -v b="$openssl_signs" 'BEGIN {printf "%.2f", a / b}') end to end, $(awk -v a="$sink_rate" -v b="$openssl_signs" 'BEGIN {printf "%.2f", a / b}') at the sink"

echo "== queries: $queries pre-signed APIv3 order queries at concurrency $concurrency"
control /sim/orders "{\"mchid\":\"$mchid\",\"prefix\":\"BENCH-Q-\",\"count\":$queries,\"amount\":100,\"notify_url\":\"http://127.0.0.1:9/unused\"}"
"$build/bench/sim_load" queries --port "$sim_port" --keys "$work/keys" --mchid "$mchid" --serial "$serial" \
  --prefix BENCH-Q- --orders "$queries" --concurrency "$concurrency" | tee "$work/queries.txt"
query_rate=$(awk '/^queries:/ {sub("/s,", "", $10); print $10}' "$work/queries.txt")
echo "ratio to openssl: $(awk -v a="$query_rate" -v b="$openssl_signs" 'BEGIN {printf "%.2f", a / b}')"
echo "simulator peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$sim_pid/status")"
