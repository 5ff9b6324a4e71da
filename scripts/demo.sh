#!/usr/bin/env bash
# The demo: builds wxrecond and wxrecon-send, starts a throwaway PostgreSQL and a
# daemon with throwaway keys, plays WeChat Pay's notifier against it (payments,
# a duplicate, mismatches, a refund, a forgery, a probe, an APIv2 payment) and
# shows what landed in the ledger. Everything it creates is removed on exit.
#   WXRECON_BUILD_DIR   build directory (default: build)
#   WXRECON_BUILD_JOBS  parallel compile jobs (default: all cores)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${WXRECON_BUILD_DIR:-$root/build}"
# shellcheck source=pg-cluster.sh
source "$root/scripts/pg-cluster.sh"

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

work="" daemon_pid=""
cleanup() {
  local status=$?
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
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

say "building wxrecond and wxrecon-send in $build (minutes on the first run; output shown on failure)"
build_log=$(mktemp "${TMPDIR:-/tmp}/wxrecon-demo-build.XXXXXX")
if ! { cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" --target wxrecond wxrecon-send -j "${WXRECON_BUILD_JOBS:-$(nproc)}"; } \
     >"$build_log" 2>&1; then
  tail -n 60 "$build_log" >&2
  rm -f "$build_log"
  die "build failed"
fi
rm -f "$build_log"
wxrecond="$build/wxrecond" send_bin="$build/wxrecon-send"

pg_cluster_start
psql_() { psql "$WXRECON_TEST_PG_URL" -X -q -P pager=off "$@"; }

umask 077  # keys and config are readable by their owner only
work=$(mktemp -d "${TMPDIR:-/tmp}/wxrecon-demo.XXXXXX")
mkdir "$work/keys"

# The first free loopback port from $1 on; callers use disjoint ranges.
free_port() {
  local port
  for port in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port in $1..$(($1 + 200))"
}
# n random characters from [A-Za-z0-9].
alnum() { local s; s=$(openssl rand -base64 96 | tr -dc 'A-Za-z0-9'); printf '%s' "${s:0:$1}"; }

say "generating throw-away keys in $work/keys"
keys="$work/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$keys/apiclient_key.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$keys/wechatpay_private.pem" 2>/dev/null
openssl pkey -in "$keys/wechatpay_private.pem" -pubout -out "$keys/pub_key.pem"
alnum 32 >"$keys/apiv3.key"
alnum 32 >"$keys/apiv2.key"
merchant_serial=$(openssl rand -hex 20 | tr a-f A-F)
pub_key_id=PUB_KEY_ID_0119000001092026112600000001
mchid=1900000109 appid=wxd678efh567hg6787
ls -l "$keys"

server_port=$(free_port 18080)
admin_port=$(free_port 19476)
cat >"$work/wxrecond.toml" <<TOML
# Written by scripts/demo.sh; paths are relative to this file.
[server]
listen = "127.0.0.1:$server_port"
shutdown_grace = "5s"

[admin]
listen = "127.0.0.1:$admin_port"

[database]
url = "$WXRECON_TEST_PG_URL"

[[merchants]]
mchid = "$mchid"
appid = "$appid"
api_version = "v3"
api_base = "http://127.0.0.1:1"          # nothing listens there: the demo plays WeChat Pay itself
apiv3_key_file = "keys/apiv3.key"
apiv2_key_file = "keys/apiv2.key"
merchant_private_key_file = "keys/apiclient_key.pem"
merchant_cert_serial = "$merchant_serial"
wechatpay_public_key_file = "keys/pub_key.pem"
wechatpay_public_key_id = "$pub_key_id"
TOML

say "wxrecond check-config"
"$wxrecond" --config "$work/wxrecond.toml" check-config

say "starting wxrecond serve (server 127.0.0.1:$server_port, admin 127.0.0.1:$admin_port)"
"$wxrecond" --config "$work/wxrecond.toml" serve >"$work/wxrecond.log" 2>&1 &
daemon_pid=$!
admin="http://127.0.0.1:$admin_port"
for i in $(seq 100); do
  curl -fsS -o /dev/null "$admin/readyz" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || die "wxrecond exited during start"
  [ "$i" -lt 100 ] || die "wxrecond not ready after 20 s: $(curl -s "$admin/readyz" || true)"
  sleep 0.2
done
echo "ready: $(curl -s "$admin/readyz")"

say "registering three orders by SQL"
psql_ -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid) VALUES
  ('$mchid', 'DEMO-0001', 100, '$appid'),
  ('$mchid', 'DEMO-0002', 200, '$appid'),
  ('$mchid', 'DEMO-0003', 300, '$appid')"
echo "DEMO-0001 100 fen, DEMO-0002 200 fen, DEMO-0003 300 fen"

# send EXPECTED_STATUS EXPLANATION wxrecon-send-command-and-options...
unexpected=0
send() {
  local expect=$1 why=$2 out
  shift 2
  echo
  echo "-- $why"
  out=$("$send_bin" --url "http://127.0.0.1:$server_port" --mchid "$mchid" --appid "$appid" \
          --apiv3-key-file "$keys/apiv3.key" --wechatpay-key-file "$keys/wechatpay_private.pem" \
          --serial "$pub_key_id" "$@")
  echo "$out"
  case "$out" in
    *"-> HTTP $expect"*) ;;
    *) echo "   UNEXPECTED: wanted HTTP $expect"; unexpected=$((unexpected + 1)) ;;
  esac
}
# WeChat-style 28-digit transaction ids; the first payment's ids are reused for its duplicate and refund.
transaction_id() { printf '420000000%s%s%010d' "$1" "$(date +%Y%m%d)" $((RANDOM * 32768 + RANDOM)); }
tx1=$(transaction_id 1)
id1=$(cat /proc/sys/kernel/random/uuid)

say "playing WeChat Pay"
send 204 "DEMO-0001 paid in full (100 fen): accepted, the order becomes SUCCESS" \
  payment --out-trade-no DEMO-0001 --total 100 --transaction-id "$tx1" --id "$id1"
send 204 "the same notification again, as WeChat Pay retries: a duplicate, nothing changes" \
  payment --out-trade-no DEMO-0001 --total 100 --transaction-id "$tx1" --id "$id1"
send 204 "DEMO-0002 paid 150 fen instead of 200: applied, and an amount_mismatch discrepancy" \
  payment --out-trade-no DEMO-0002 --total 150
send 204 "money for DEMO-0404, an order nobody registered: applied, origin notify, unknown_order" \
  payment --out-trade-no DEMO-0404 --total 500
send 204 "DEMO-0001 refunded 30 of 100 fen: the refund is recorded, the order becomes REFUND" \
  refund --out-trade-no DEMO-0001 --out-refund-no DEMO-0001-R1 --refund 30 --total 100 --status SUCCESS \
  --transaction-id "$tx1"
send 401 "a payment for DEMO-0003 signed with somebody else's key: refused, a rejected row" \
  forged --out-trade-no DEMO-0003 --total 300
send 401 "WeChat Pay's signature probe (WECHATPAY/SIGNTEST/...): refused, reason probe" \
  probe --out-trade-no DEMO-0003 --total 300
send 200 "DEMO-0003 paid through the APIv2 notification (XML, MD5 sign): accepted" \
  v2-payment --apiv2-key-file "$keys/apiv2.key" --out-trade-no DEMO-0003 --total 300 \
  --transaction-id "$(transaction_id 3)"

say "wxrecon.orders"
psql_ -c "SELECT mchid, out_trade_no, state, amount_total, payer_total, state_source, origin
          FROM wxrecon.orders ORDER BY out_trade_no"
say "wxrecon.payment_events"
psql_ -c "SELECT id, out_trade_no, source, event_type, trade_state, refund_status, amount_total
          FROM wxrecon.payment_events ORDER BY id"
say "wxrecon.discrepancies"
psql_ -c "SELECT out_trade_no, kind, resolved_at FROM wxrecon.discrepancies ORDER BY id"
say "wxrecon.rejected_notifications"
psql_ -c "SELECT id, reason, mchid FROM wxrecon.rejected_notifications ORDER BY id"
say "metrics: wxrecon_notifications_total"
curl -s "$admin/metrics" | grep '^wxrecon_notifications_total' || echo "(none)"

say "stopping wxrecond (SIGTERM)"
kill -TERM "$daemon_pid"
daemon_status=0
wait "$daemon_pid" || daemon_status=$?
daemon_pid=""
echo "wxrecond exited with status $daemon_status"

[ "$unexpected" -eq 0 ] || die "$unexpected notification(s) got an unexpected reply (see UNEXPECTED above)"
[ "$daemon_status" -eq 0 ] || die "wxrecond exited with status $daemon_status after SIGTERM"
echo
echo "demo: done"
