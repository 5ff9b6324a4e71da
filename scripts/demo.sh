#!/usr/bin/env bash
# The demo: builds wxrecond and wxpay-sim, starts a throwaway PostgreSQL, the
# simulator (an APIv3 and an APIv2 merchant, with lost, duplicated and forged
# notifications and signature probes switched on) and the daemon; places
# orders through wxrecond's API with prepay (getting the wx.requestPayment
# parameters), pays most of them at the simulator, lets others expire, and
# shows how the ledger got to agree with the simulator's truth: by
# notification, by query, or closed; then fetches a day's bills (two days back, with a hand payment
# and a refund made only at WeChat Pay) and shows the day's reconciliation and statement. Everything it
# creates is removed on exit.
#   WXRECON_BUILD_DIR   build directory (default: build)
#   WXRECON_BUILD_JOBS  parallel compile jobs (default: all cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${WXRECON_BUILD_DIR:-$root/build}"
# shellcheck source=pg-cluster.sh
source "$root/scripts/pg-cluster.sh"

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

work="" daemon_pid="" sim_pid=""
cleanup() {
  local status=$?
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "$sim_pid" ]; then kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ] && [ -n "$work" ] && [ -s "$work/wxrecond.log" ]; then
    echo "demo: failed; last lines of the daemon log:" >&2
    tail -n 40 "$work/wxrecond.log" >&2
  fi
  pg_cluster_stop
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$root/scripts/bootstrap.sh"

say "building wxrecond and wxpay-sim in $build (minutes on the first run; output shown on failure)"
build_log=$(mktemp "${TMPDIR:-/tmp}/wxrecon-demo-build.XXXXXX")
if ! { cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" --target wxrecond wxpay-sim -j "${WXRECON_BUILD_JOBS:-$(nproc)}"; } \
     >"$build_log" 2>&1; then
  tail -n 60 "$build_log" >&2
  rm -f "$build_log"
  die "build failed"
fi
rm -f "$build_log"
wxrecond="$build/wxrecond" sim="$build/wxpay-sim"

pg_cluster_start
psql_() { psql "$WXRECON_TEST_PG_URL" -X -q -P pager=off "$@"; }

umask 077  # keys and config are readable by their owner only
work=$(mktemp -d "${TMPDIR:-/tmp}/wxrecon-demo.XXXXXX")

# The first free loopback port from $1 on; callers use disjoint ranges.
free_port() {
  local port
  for port in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port in $1..$(($1 + 200))"
}
server_port=$(free_port 18080)
admin_port=$(free_port 19476)
sim_port=$(free_port 18480)

say "wxpay-sim keys: two merchants (APIv3 with the WeChat Pay public key, APIv2)"
"$sim" keys --out "$work/keys" --merchants 2 --api-base "http://127.0.0.1:$sim_port"
v3=1900000101 v2=1900000102

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/api.token"
cat >"$work/wxrecond.toml" <<TOML
# Written by scripts/demo.sh; the [[merchants]] blocks come from wxpay-sim keys.
[server]
listen = "127.0.0.1:$server_port"
public_base_url = "http://127.0.0.1:$server_port"   # notify_url of the orders wxrecond places
shutdown_grace = "5s"

[api]
token_file = "api.token"

[admin]
listen = "127.0.0.1:$admin_port"

[database]
url = "$WXRECON_TEST_PG_URL"

[poller]                  # a compressed schedule, so the demo sees queries and closes within seconds
delays = ["2s", "4s"]
interval_after = "3s"
close_after_expire = "1s"
refund_delays = ["2s"]
refund_interval_after = "2s"

[app_events]             # the application's receiver: wxpay-sim plays it
url = "http://127.0.0.1:$sim_port/sim/app-events"
secret_file = "app_events.key"
TOML
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/app_events.key"
cat "$work/keys/wxrecond-merchants.toml" >>"$work/wxrecond.toml"

say "wxrecond check-config"
"$wxrecond" --config "$work/wxrecond.toml" check-config

say "starting wxpay-sim (retry schedule compressed 1000x) and wxrecond serve"
"$sim" serve --keys "$work/keys" --listen "127.0.0.1:$sim_port" --seed 7 --time-scale 0.001 \
  >"$work/wxpay-sim.log" 2>&1 &
sim_pid=$!
"$wxrecond" --config "$work/wxrecond.toml" serve >"$work/wxrecond.log" 2>&1 &
daemon_pid=$!
admin="http://127.0.0.1:$admin_port" simurl="http://127.0.0.1:$sim_port"
for i in $(seq 100); do
  curl -fsS -o /dev/null "$admin/readyz" 2>/dev/null && curl -fsS -o /dev/null "$simurl/sim/stats" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || die "wxrecond exited during start"
  kill -0 "$sim_pid" 2>/dev/null || die "wxpay-sim exited during start: $(cat "$work/wxpay-sim.log")"
  [ "$i" -lt 100 ] || die "not ready after 20 s: $(curl -s "$admin/readyz" || true)"
  sleep 0.2
done
echo "wxrecond ready: $(curl -s "$admin/readyz")"
control() { curl -fsS "$simurl$1" -d "$2"; echo; }
control /sim/app-events-config "{\"secret\":\"$(cat "$work/app_events.key")\",\"status\":200}" >/dev/null

api() { curl -sS -H "Authorization: Bearer $(cat "$work/api.token")" "http://127.0.0.1:$server_port$1" -d "$2" "${@:3}"; }

say "placing orders through wxrecond's API with prepay (POST /api/v1/orders, \"prepay\": true; payable for 65 s)"
echo "DEMO-V3-1..20 at the APIv3 merchant, DEMO-V2-1..16 at the APIv2 merchant, 100 fen each. The first reply:"
started=$(date +%s.%N)
# Each order payable for 65 s from its own placement: wxrecond refuses to place an order that expires within
# a minute, so one expiry shared by all would run out on a slow machine.
order_json() {
  printf '{"mchid":"%s","out_trade_no":"%s","amount_total":100,"description":"demo","payer_openid":"oDemoPayer0001","expire_at":"%s","prepay":true}' \
    "$1" "$2" "$(date -u -d '+65 seconds' +%Y-%m-%dT%H:%M:%SZ)"
}
api /api/v1/orders "$(order_json "$v3" DEMO-V3-1)" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d[k] for k in ("mchid","out_trade_no","state","placed_at","request_payment")}, indent=1))'
placed=1
for i in $(seq 2 20); do
  api /api/v1/orders "$(order_json "$v3" "DEMO-V3-$i")" | grep -q '"paySign"' && placed=$((placed + 1))
done
for i in $(seq 1 16); do
  api /api/v1/orders "$(order_json "$v2" "DEMO-V2-$i")" | grep -q '"paySign"' && placed=$((placed + 1))
done
echo "$placed of 36 orders placed at WeChat Pay (the simulator), each with signed wx.requestPayment parameters"
[ "$placed" -eq 36 ] || die "prepay failed; see $work/wxrecond.log"

say "four more APIv2 orders registered by SQL (DEMO-V2-17..20), placed at the simulator by another system"
echo "(dated 10 minutes back: WeChat Pay closes no APIv2 order within 5 minutes of its creation)"
psql_ -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, created_at, expire_at, placed_at)
          SELECT '$v2', 'DEMO-V2-' || g, 100, now() - interval '10 minutes', now() + interval '10 seconds', now()
          FROM generate_series(17, 20) g"
control /sim/orders "{\"mchid\":\"$v2\",\"prefix\":\"DEMO-V2-\",\"first\":17,\"count\":4,\"amount\":100,\"notify_url\":\"http://127.0.0.1:$server_port/wxpay/v2/notify/$v2\"}"
control /sim/orders "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-UNKNOWN-1\",\"amount\":500,\"notify_url\":\"http://127.0.0.1:$server_port/wxpay/v3/notify/$v3\"}"

say "faults on: 20% of notifications lost, 20% duplicated, 10% sent twice at once, reordering, 10% forged, 10% probes"
control /sim/faults '{"drop":0.2,"duplicate":0.2,"concurrent":0.1,"reorder":true,"reorder_window_ms":300,"forged":0.1,"probe":0.1}'

say "users pay 16 orders of each merchant (DEMO-V3-2 pays 80 fen instead of 100), and an order nobody registered"
echo "DEMO-V3-17..20 and DEMO-V2-17..20 stay unpaid: they expire and wxrecon closes them"
control /sim/pay "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-V3-2\",\"amount\":80}" >/dev/null
control /sim/pay "{\"mchid\":\"$v3\",\"prefix\":\"DEMO-V3-\",\"first\":3,\"count\":14}" >/dev/null
control /sim/pay "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-V3-1\"}" >/dev/null
control /sim/pay "{\"mchid\":\"$v2\",\"prefix\":\"DEMO-V2-\",\"count\":16}" >/dev/null
control /sim/pay "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-UNKNOWN-1\"}" >/dev/null
echo "paid"
control /sim/faults '{"drop":0,"duplicate":0,"concurrent":0,"forged":0,"probe":0}' >/dev/null

say "waiting for the notifications (retries included), the poller's queries and the closes"
for i in $(seq 600); do
  stats=$(curl -fsS "$simurl/sim/stats")
  open=$(psql_ -At -c "SELECT count(*) FROM wxrecon.orders WHERE state IN ('NOTPAY', 'USERPAYING')")
  case "$stats" in *'"pending":0,'*) [ "$open" = 0 ] && break ;; esac
  [ "$i" -lt 600 ] || die "not settled after 120 s: $open orders open, simulator: $stats"
  sleep 0.2
done
echo "simulator: $stats"
converged=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
echo "converged: every order settled $converged s after the first was placed"

say "refunds through wxrecond's API (POST /api/v1/refunds): 30 fen of DEMO-V3-1, all 100 fen of DEMO-V2-1"
echo "DEMO-V3-1's refund notification is lost at the simulator: the refund tracker's query finds the refund"
control /sim/refund-plan "{\"mchid\":\"$v3\",\"out_refund_no\":\"DEMO-V3-1-R1\",\"status\":\"SUCCESS\",\"after_ms\":1000,\"notify\":false}" >/dev/null
api /api/v1/refunds "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-V3-1\",\"out_refund_no\":\"DEMO-V3-1-R1\",\"amount\":30,\"reason\":\"demo\"}" | head -c 300; echo
api /api/v1/refunds "{\"mchid\":\"$v2\",\"out_trade_no\":\"DEMO-V2-1\",\"out_refund_no\":\"DEMO-V2-1-R1\",\"amount\":100}" | head -c 300; echo
echo "the same request again answers 200 with the same refund, never a second one:"
api /api/v1/refunds "{\"mchid\":\"$v2\",\"out_trade_no\":\"DEMO-V2-1\",\"out_refund_no\":\"DEMO-V2-1-R1\",\"amount\":100}" -o /dev/null -w '%{http_code}\n'
for i in $(seq 150); do
  [ "$(psql_ -At -c "SELECT count(*) FROM wxrecon.refunds WHERE status = 'SUCCESS' AND out_refund_no LIKE 'DEMO-V%-R1'")" = 2 ] && break
  [ "$i" -lt 150 ] || die "refunds not settled after 30 s: $(psql_ -At -c "SELECT out_refund_no, status FROM wxrecon.refunds")"
  sleep 0.2
done
psql_ -c "SELECT r.out_refund_no, r.status, r.amount_refund, o.state AS order_state,
                 (SELECT string_agg(e.source, ', ' ORDER BY e.id) FROM wxrecon.payment_events e
                   WHERE e.out_refund_no = r.out_refund_no) AS learned_from
          FROM wxrecon.refunds r JOIN wxrecon.orders o USING (mchid, out_trade_no)
          WHERE r.out_refund_no LIKE 'DEMO-V%-R1' ORDER BY 1"
echo "(a partial refund leaves its order SUCCESS with refunded_total; a full one makes it REFUND)"

say "wxrecon.orders: how each order was settled"
psql_ -c "SELECT mchid, state, CASE state_source WHEN 'notify' THEN 'by notification' WHEN 'query' THEN 'by query'
                 WHEN 'close' THEN 'closed after expiry' ELSE state_source END AS settled, count(*),
                 sum(payer_total) AS paid_fen
          FROM wxrecon.orders GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
say "wxrecon.payment_events by source and type"
psql_ -c "SELECT source, event_type, count(*) FROM wxrecon.payment_events GROUP BY 1, 2 ORDER BY 1, 2"
say "wxrecon.discrepancies"
psql_ -c "SELECT mchid, out_trade_no, kind, detail FROM wxrecon.discrepancies ORDER BY id"
say "wxrecon.rejected_notifications by reason (forgeries and probes)"
psql_ -c "SELECT reason, count(*) FROM wxrecon.rejected_notifications GROUP BY 1 ORDER BY 1"

say "the ledger against the simulator's truth, order by order"
curl -fsS "$simurl/sim/ledger" >"$work/truth.json"
psql_ -At -F ' ' -c "SELECT mchid, out_trade_no, state, coalesce(transaction_id, '-'), coalesce(payer_total, 0)
                     FROM wxrecon.orders" >"$work/ledger.txt"
python3 - "$work/truth.json" "$work/ledger.txt" <<'PY'
import json, sys
truth = {(o["mchid"], o["out_trade_no"]): o for o in json.load(open(sys.argv[1]))["orders"]}
ledger = {}
for line in open(sys.argv[2]):
    mchid, no, state, tid, paid = line.split()
    ledger[(mchid, no)] = (state, "" if tid == "-" else tid, int(paid))
agree = disagree = 0
for key, t in sorted(truth.items()):
    state, tid, paid = ledger.get(key, ("missing", "", 0))
    if t["trade_state"] in ("SUCCESS", "REFUND"):
        ok = state in ("SUCCESS", "REFUND") and tid == t["transaction_id"] and paid == t["payer_total"]
    else:
        ok = state == t["trade_state"]
    agree += ok
    disagree += not ok
    if not ok:
        print("DISAGREE", key, "ledger", (state, tid, paid), "WeChat", t["trade_state"], t.get("transaction_id"))
print(f"{len(truth)} orders at the simulator: {agree} agree with the ledger, {disagree} disagree")
sys.exit(1 if disagree else 0)
PY

say "summary"
psql_ -At -c "SELECT format('%s orders: %s reconciled by notification, %s by query, %s closed; %s discrepancies open',
                     count(*), count(*) FILTER (WHERE state IN ('SUCCESS', 'REFUND') AND state_source = 'notify'),
                     count(*) FILTER (WHERE state IN ('SUCCESS', 'REFUND') AND state_source = 'query'),
                     count(*) FILTER (WHERE state = 'CLOSED'),
                     (SELECT count(*) FROM wxrecon.discrepancies WHERE resolved_at IS NULL))
              FROM wxrecon.orders"
echo "time to converge: $converged s (orders payable for 65 s, closed after their expiry)"

say "finance: wxrecon.daily_summary and wxrecon.open_discrepancies (docs/finance.md)"
psql_ -c "SELECT * FROM wxrecon.daily_summary ORDER BY day, mchid"
psql_ -c "SELECT kind, mchid, out_trade_no, state, amount_total, payer_total FROM wxrecon.open_discrepancies ORDER BY id"

say "the daily reconciliation: a Beijing day two days back, matched against WeChat Pay's bills"
day=$(TZ=Asia/Shanghai date -d '2 days ago' +%F)
echo "$day at the APIv3 merchant: 12 orders registered and paid (notified as usual), a payment nobody"
echo "registered and no notification announced (DEMO-HAND-1), a refund made only at WeChat Pay (DEMO-DAY-3)"
psql_ -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total)
          SELECT '$v3', 'DEMO-DAY-' || g, 1990 FROM generate_series(1, 12) g" >/dev/null
control /sim/orders "{\"mchid\":\"$v3\",\"prefix\":\"DEMO-DAY-\",\"count\":12,\"amount\":1990,\"notify_url\":\"http://127.0.0.1:$server_port/wxpay/v3/notify/$v3\"}" >/dev/null
control /sim/pay "{\"mchid\":\"$v3\",\"prefix\":\"DEMO-DAY-\",\"count\":12,\"at\":\"${day}T14:00:00+08:00\"}" >/dev/null
control /sim/hand-payment "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-HAND-1\",\"amount\":3300,\"at\":\"${day}T15:00:00+08:00\"}" >/dev/null
control /sim/refund "{\"mchid\":\"$v3\",\"out_trade_no\":\"DEMO-DAY-3\",\"amount\":500,\"at\":\"${day}T16:00:00+08:00\",\"notify\":false}" >/dev/null
for i in $(seq 300); do
  paid=$(psql_ -At -c "SELECT count(*) FROM wxrecon.orders WHERE out_trade_no LIKE 'DEMO-DAY-%' AND state = 'SUCCESS'")
  [ "$paid" = 12 ] && break
  [ "$i" -lt 300 ] || die "the day's 12 payments did not arrive: $paid"
  sleep 0.2
done
echo "the 12 payments are in the ledger; now: wxrecond bills fetch --date $day (both merchants)"
"$wxrecond" --config "$work/wxrecond.toml" bills fetch --date "$day" >"$work/bills.json" \
  || die "bills fetch failed: $(cat "$work/bills.json")"
python3 - "$work/bills.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    d = r["reconciliation"]
    files = ", ".join(f'{f["outcome"]} ({f["rows"]} rows)' for f in r.get("files", []))
    print(f'{d["mchid"]} {d["bill_date"]}: {d["status"]}; bill {d["bill_payments"]} payments {d["bill_paid_fen"]} fen, '
          f'ledger {d["ledger_payments"]} payments {d["ledger_paid_fen"]} fen; fees {d.get("trade_fee_total")} (trade bill) '
          f'{d.get("fund_fee_total")} (fund flow); {d["differences"]} difference(s); files: {files or "none (no bill)"}')
PY
psql_ -c "SELECT id, kind, out_trade_no, status, detail->>'transaction_id' AS transaction_id
          FROM wxrecon.discrepancies WHERE bill_date = '$day' ORDER BY id"
psql_ -c "SELECT out_trade_no, origin, state, state_source, amount_total FROM wxrecon.orders WHERE out_trade_no = 'DEMO-HAND-1'"
echo "the day's statement for finance (wxrecond report --date $day --mchid $v3), first lines:"
"$wxrecond" --config "$work/wxrecond.toml" report --date "$day" --mchid "$v3" | head -4
"$wxrecond" --config "$work/wxrecond.toml" report --date "$day" --mchid "$v3" | grep -E '^[0-9]+,DEMO-(HAND|DAY-3,)'

say "app events the application received (wxpay-sim's receiver), by type"
for i in $(seq 100); do
  [ "$(psql_ -At -c "SELECT count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL")" = 0 ] && break
  sleep 0.2
done
curl -fsS "$simurl/sim/app-events?limit=10000" | python3 -c '
import collections, json, sys
events = json.load(sys.stdin)["events"]
by_type = collections.Counter(e["type"] for e in events if e["status"] == 200)
bad = sum(1 for e in events if not e["signature_ok"])
for t, n in sorted(by_type.items()):
    print(f"{t:20} {n}")
print(f"{len(events)} deliveries, {bad} with a bad signature")
'
psql_ -At -c "SELECT 'undelivered app events: ' || count(*) FROM wxrecon.app_events WHERE delivered_at IS NULL"

say "metrics: wxrecon_notifications_total"
curl -s "$admin/metrics" | grep '^wxrecon_notifications_total' | grep -v ' 0$' || echo "(none)"

say "stopping wxrecond (SIGTERM)"
kill -TERM "$daemon_pid"
daemon_status=0
wait "$daemon_pid" || daemon_status=$?
daemon_pid=""
echo "wxrecond exited with status $daemon_status"
[ "$daemon_status" -eq 0 ] || die "wxrecond exited with status $daemon_status after SIGTERM"
echo
echo "demo: done"
