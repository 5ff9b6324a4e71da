#!/usr/bin/env bash
# Command line of wxpay-sim: --help documents every flag and control endpoint,
# `keys` writes a set that wxrecond accepts as it is (check-config), its key
# files agree with each other (openssl CLI), and bad usage exits 2.
set -uo pipefail
sim=$1
wxrecond=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
expect() {  # expect <status> <description> <command...>
  local want=$1 what=$2; shift 2
  "$@" >"$work/out" 2>&1
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' "$work/out"; failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
expect_output() {  # expect_output <pattern> <description>
  if grep -q -- "$1" "$work/out"; then echo "ok: $2"; else echo "FAIL: $2 (no \"$1\")"; sed 's/^/  | /' "$work/out"; failures=$((failures + 1)); fi
}

expect 0 "--help" "$sim" --help
for item in --out --merchants --api-base --keys --listen --tls --seed --time-scale --faults --concurrency \
            --signing-threads --max-orders --max-deliveries \
            /sim/orders /sim/pay /sim/expire /sim/refund /sim/faults /sim/rotate-certificate /sim/login-code \
            /sim/ledger /sim/deliveries /sim/stats /sim/calls /sim/merchants \
            /v3/pay/transactions/jsapi /v3/certificates /pay/unifiedorder /pay/orderquery /pay/closeorder \
            /secapi/pay/refund /pay/refundquery /sns/jscode2session \
            /sim/hand-payment /sim/fee-rate /sim/bill-style /sim/bill-creating /sim/bill-corrupt \
            /v3/bill/tradebill /v3/bill/fundflowbill /v3/billdownload/file /pay/downloadbill /pay/downloadfundflow \
            /sim/refund-plan /sim/app-events /sim/app-events-config reply_slow refund_processing_ms \
            refund_abnormal refund_closed CERT_ERROR; do
  expect_output "$item" "--help documents $item"
done
expect 0 "--version" "$sim" --version
expect_output "wxpay-sim " "--version prints the version"
expect 2 "no command" "$sim"
expect 2 "unknown command" "$sim" frobnicate
expect 2 "serve without --keys" "$sim" serve
expect 2 "keys without --out" "$sim" keys
expect 2 "keys with 0 merchants" "$sim" keys --out "$work/none" --merchants 0

expect 0 "keys --merchants 4" "$sim" keys --out "$work/keys" --merchants 4 --api-base http://127.0.0.1:18480
expect_output "merchant 1900000102 .* api v2" "the second merchant is an APIv2 merchant"
expect 2 "keys refuses to overwrite a key set" "$sim" keys --out "$work/keys"
expect_output "exists" "the refusal says why"
for m in 1900000101 1900000104; do
  d="$work/keys/$m"
  # The merchant certificate and platform certificate match their private keys.
  expect 0 "$m: merchant certificate matches its key" bash -c \
    "[ \"\$(openssl x509 -in $d/apiclient_cert.pem -noout -pubkey)\" = \"\$(openssl pkey -in $d/apiclient_key.pem -pubout)\" ]"
  expect 0 "$m: platform certificate chains to the CA" \
    openssl verify -CAfile "$work/keys/ca/ca_cert.pem" "$d/wechatpay_platform_cert.pem"
  expect 0 "$m: public key matches the simulator's private half" bash -c \
    "[ \"\$(cat $d/wechatpay_pub_key.pem)\" = \"\$(openssl pkey -in $d/wechatpay_pub_key_private.pem -pubout)\" ]"
  expect 0 "$m: APIv3 key is 32 bytes" test "$(wc -c <"$d/apiv3.key")" -eq 32
  expect 0 "$m: APIv2 key is 32 characters" test "$(wc -c <"$d/apiv2.key")" -eq 32
  expect 0 "$m: private keys are readable by their owner only" test "$(stat -c %a "$d/apiclient_key.pem")" = 600
done
expect 0 "the server certificate names localhost and 127.0.0.1" bash -c \
  "openssl x509 -in $work/keys/ca/server_cert.pem -noout -ext subjectAltName | grep -q 'DNS:localhost, IP Address:127.0.0.1'"

# The [[merchants]] fragment makes a configuration wxrecond accepts as it is.
{ printf '[server]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n[database]\nurl = "postgresql://127.0.0.1:1/none"\n'
  cat "$work/keys/wxrecond-merchants.toml"; } >"$work/wxrecond.toml"
expect 0 "wxrecond check-config accepts the generated merchants" "$wxrecond" --config "$work/wxrecond.toml" check-config
expect_output "4 merchants" "all four merchants are loaded"
expect 2 "serve with an unknown fault" "$sim" serve --keys "$work/keys" --listen 127.0.0.1:0 --faults '{"gremlins":1}'
expect_output "unknown key gremlins" "the refusal names the key"

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "all passed"
