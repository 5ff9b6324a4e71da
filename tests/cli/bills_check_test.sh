#!/usr/bin/env bash
# `wxrecond bills check FILE [--kind trade|fundflow]` (docs/interfaces.md §1.1): the exact JSON for
# each fixture, plain and gzip; exit 4 naming the line and column or the summary field; exit 1 for bad
# usage and unreadable files.
#   bills_check_test.sh <wxrecond> <tests/data/bills>
set -uo pipefail
wxrecond=$1
bills=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; sed 's/^/  out | /' "$work/out"; sed 's/^/  err | /' "$work/err"; failures=$((failures + 1)); }
run() {  # run <expected status> <description> <args...>: stdout in $work/out, stderr in $work/err
  local want=$1 what=$2; shift 2
  "$wxrecond" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then fail "$what: exit $got, expected $want"; return 1; fi
  echo "ok: $what"
}
stdout_is() {  # stdout_is <exact text> <description>
  if [ "$(cat "$work/out")" = "$1" ]; then echo "ok: $2"; else fail "$2: stdout is not $1"; fi
}
stderr_has() {  # stderr_has <fixed text> <description>
  if grep -qF -- "$1" "$work/err"; then echo "ok: $2"; else fail "$2 (no \"$1\" on stderr)"; fi
}
stdout_empty() {
  if [ ! -s "$work/out" ]; then echo "ok: $1"; else fail "$1: stdout is not empty"; fi
}

all_json='{"kind":"trade","bill_type":"ALL","rows":7,"payment_rows":5,"refund_rows":2,"settlement_total_fen":20291,"refund_total_fen":3990,"order_total_fen":20791,"refund_requested_total_fen":3990,"fee_total":"1.21746","summary_matches":true}'
success_json='{"kind":"trade","bill_type":"SUCCESS","rows":5,"payment_rows":5,"refund_rows":0,"settlement_total_fen":20291,"refund_total_fen":0,"order_total_fen":20791,"refund_requested_total_fen":0,"fee_total":"1.21746","summary_matches":true}'
refund_json='{"kind":"trade","bill_type":"REFUND","rows":2,"payment_rows":0,"refund_rows":2,"settlement_total_fen":0,"refund_total_fen":3990,"order_total_fen":0,"refund_requested_total_fen":3990,"fee_total":"0.00000","summary_matches":true}'
fundflow_json='{"kind":"fundflow","rows":12,"income_rows":5,"income_total_fen":20291,"expense_rows":7,"expense_total_fen":164112,"summary_matches":true}'

# The fixtures, each exactly.
run 0 "ALL trade bill (BOM, CRLF, 7.0 count)" bills check "$bills/trade_all.csv" && stdout_is "$all_json" "ALL JSON"
run 0 "SUCCESS trade bill with --kind trade" bills check "$bills/trade_success.csv" --kind trade &&
  stdout_is "$success_json" "SUCCESS JSON"
run 0 "REFUND trade bill with --kind=trade" bills check --kind=trade "$bills/trade_refund.csv" &&
  stdout_is "$refund_json" "REFUND JSON"
run 0 "fund-flow bill with --kind fundflow" bills check "$bills/fundflow_basic.csv" --kind fundflow &&
  stdout_is "$fundflow_json" "fund-flow JSON"
if [ ! -s "$work/err" ]; then echo "ok: a clean fund-flow bill warns about nothing"; else fail "unexpected stderr"; fi

# gzip, found by its magic bytes whatever the file is called.
gzip -c "$bills/trade_all.csv" >"$work/trade_all.bin"
run 0 "gzip ALL trade bill" bills check "$work/trade_all.bin" && stdout_is "$all_json" "gzip ALL JSON"
gzip -c "$bills/fundflow_basic.csv" >"$work/fundflow.csv.gz"
run 0 "gzip fund-flow bill" bills check "$work/fundflow.csv.gz" --kind fundflow && stdout_is "$fundflow_json" "gzip fund-flow JSON"
head -c $(($(wc -c <"$work/trade_all.bin") / 2)) "$work/trade_all.bin" >"$work/cut.gz"
run 4 "a truncated gzip file is exit 4" bills check "$work/cut.gz" && stderr_has "gzip: the data ends inside a member" "names the truncation" && stdout_empty "no JSON for a truncated file"

# Malformed or self-contradicting files: exit 4, the message names where.
sed 's/`0,`POS-01,`4200002301202603141234567801/`0,POS-01,`4200002301202603141234567801/' "$bills/trade_all.csv" >"$work/no_tick.csv"
run 4 "a value without its back-tick is exit 4" bills check "$work/no_tick.csv" &&
  stderr_has "no_tick.csv: line 2, column 5 (设备号): the value does not start with a back-tick" "names line 2, column 5" &&
  stdout_empty "no JSON for a malformed file"
gzip -c "$work/no_tick.csv" >"$work/no_tick.csv.gz"
run 4 "the same inside gzip is exit 4" bills check "$work/no_tick.csv.gz" &&
  stderr_has "line 2, column 5 (设备号)" "names line 2, column 5 inside gzip"
sed 's/`128.00,`0.00,`0,/`128.001,`0.00,`0,/' "$bills/trade_all.csv" >"$work/three_decimals.csv"
run 4 "an amount with 3 decimals is exit 4" bills check "$work/three_decimals.csv" &&
  stderr_has 'line 2, column 13 (应结订单金额): "128.001" has more than 2 decimals' "names the amount's line and column"
sed 's/`1\.22,/`1.25,/' "$bills/trade_all.csv" >"$work/fee_total.csv"
run 4 "a summary total that disagrees is exit 4" bills check "$work/fee_total.csv" &&
  stderr_has "summary field 手续费总金额 (line 10, column 5): the bill says 1.25, its detail lines add up to 1.21746" "names the summary field"
sed 's/^`12\.0,/`11.0,/' "$bills/fundflow_basic.csv" >"$work/count.csv"
run 4 "a summary count that disagrees is exit 4" bills check "$work/count.csv" &&
  stderr_has "summary field 资金流水总笔数 (line 15, column 1)" "names the count field"
head -n 6 "$bills/trade_success.csv" >"$work/truncated.csv"
run 4 "a bill without its summary is exit 4" bills check "$work/truncated.csv" && stderr_has "without a summary" "says the summary is missing"
run 4 "--kind fundflow on a trade bill is exit 4" bills check "$bills/trade_all.csv" --kind fundflow &&
  stderr_has "this is a trade bill, not the fund-flow bill asked for" "says which kind it is"
printf 'hello,world\n' >"$work/not_a_bill.csv"
run 4 "a file that is no bill is exit 4" bills check "$work/not_a_bill.csv" && stderr_has "line 1: not a WeChat Pay bill header" "says so"

# A broken balance chain is reported, not fatal.
sed 's/`45\.00,`1702\.42/`45.00,`1702.43/' "$bills/fundflow_basic.csv" >"$work/chain.csv"
run 0 "a broken balance chain still exits 0" bills check "$work/chain.csv" && stdout_is "$fundflow_json" "same JSON" &&
  stderr_has "warning: line 6: 账户结余 1702.43 does not follow from line 5" "warns naming the line"

# Bad usage and unreadable files: exit 1, as for any other bad argument.
run 1 "a missing file is exit 1" bills check "$work/nowhere.csv" && stderr_has "nowhere.csv" "names the file"
run 1 "a directory is exit 1" bills check "$work"
run 1 "no FILE is exit 1" bills check && stderr_has "usage: wxrecond bills check FILE" "prints the usage"
run 1 "an unknown --kind is exit 1" bills check "$bills/trade_all.csv" --kind all && stderr_has "--kind must be trade or fundflow" "says what --kind takes"
run 1 "two files are exit 1" bills check "$bills/trade_all.csv" "$bills/trade_success.csv"
run 1 "bills without a command is exit 1" bills
run 1 "an unknown bills command is exit 1" bills frobnicate && stderr_has "frobnicate" "names the command"
run 2 "bills fetch without a readable config is exit 2" --config "$work/none.toml" bills fetch --date 2026-03-14
run 1 "bills load of a day not over yet is exit 1" --config "$work/none.toml" bills load --mchid 1900000101 --date 2999-01-01 --no-trade-bill \
  && stderr_has "a day before today" "says which days"

run 0 "--help" --help
if grep -qF "wxrecond bills check FILE [--kind trade|fundflow]" "$work/out"; then echo "ok: --help names bills check"; else fail "--help does not name bills check"; fi

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "bills check: all checks passed"
