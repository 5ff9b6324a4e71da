#!/usr/bin/env bash
# `wxrecond discrepancies list|ack|resolve` (docs/interfaces.md §1.1, docs/finance.md "Working
# discrepancies") with the real binary against PostgreSQL: the table, CSV (RFC 4180, formulas
# neutralised) and JSON of a fixed set of rows, filters and the limit, acknowledge and resolve with
# their history, and the exit statuses (1 usage, 2 configuration, 3 database, 5 nothing changed).
#   discrepancies_test.sh <wxrecond>      with WXRECON_TEST_PG_URL set (scripts/pg-cluster.sh)
set -uo pipefail
wxrecond=$1
if [ -z "${WXRECON_TEST_PG_URL:-}" ]; then
  echo "FAIL: WXRECON_TEST_PG_URL is not set: run through scripts/test.sh (or source scripts/pg-cluster.sh)"
  exit 1
fi
work=$(mktemp -d)
db="wxrecon_cli_disc_$$"
admin_url=$WXRECON_TEST_PG_URL
db_url="${admin_url%/*}/$db"
psql_() { psql "$1" -X -q -v ON_ERROR_STOP=1 -At "${@:2}"; }
cleanup() {
  psql_ "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; sed 's/^/  out | /' "$work/out"; sed 's/^/  err | /' "$work/err"; failures=$((failures + 1)); }
run() {  # run <expected status> <description> <args...>: stdout in $work/out, stderr in $work/err
  local want=$1 what=$2; shift 2
  "$wxrecond" --config "$work/wxrecond.toml" "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then fail "$what: exit $got, expected $want"; return 1; fi
  echo "ok: $what"
}
stdout_is() {  # stdout_is <file with the exact bytes> <description>
  if cmp -s "$1" "$work/out"; then echo "ok: $2"; else fail "$2: stdout differs"; diff "$1" "$work/out" | sed 's/^/  diff | /'; fi
}
stdout_has() {
  if grep -qF -- "$1" "$work/out"; then echo "ok: $2"; else fail "$2 (no \"$1\" on stdout)"; fi
}
stderr_has() {
  if grep -qF -- "$1" "$work/err"; then echo "ok: $2"; else fail "$2 (no \"$1\" on stderr)"; fi
}
sql_is() {  # sql_is <expected> <description> <sql>
  local got
  got=$(psql_ "$db_url" -c "$3" 2>&1)
  if [ "$got" = "$1" ]; then echo "ok: $2"; else echo "FAIL: $2: got \"$got\", expected \"$1\""; failures=$((failures + 1)); fi
}

psql_ "$admin_url" -c "CREATE DATABASE $db" || { echo "FAIL: cannot create the database"; exit 1; }
head -c 32 /dev/zero | tr '\0' 'k' >"$work/apiv2.key"
cat >"$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[database]
url = "$db_url"
[[merchants]]
mchid = "1900000109"
appid = "wxd678efh567hg6787"
api_version = "v2"
apiv2_key_file = "apiv2.key"
TOML

run 0 "migrate" migrate
# Fixed rows: an amount mismatch, a cell a spreadsheet would run (with a comma and a quote), a bill
# kind of another merchant with a multi-line detail.
psql_ "$db_url" -c "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail, detected_at) VALUES
  ('1900000109', 'A1', 'amount_mismatch', '{\"reported_total\": 250, \"recorded_total\": 300}', '2026-11-26T02:00:01Z'),
  ('1900000109', '=HYPERLINK(\"http://x\",\"y\")', 'unknown_order', '{}', '2026-11-26T03:00:00Z')" ||
  { echo "FAIL: fixture rows"; exit 1; }
psql_ "$db_url" -c "INSERT INTO wxrecon.discrepancies (mchid, out_trade_no, kind, detail, detected_at, bill_date)
  VALUES ('1900000209', '2026-11-30', 'fee_mismatch', '{\"trade_fee_total\": \"0.63\", \"fund_fee_total\": \"0.60\"}',
          '2026-12-01T02:30:00Z', '2026-11-30')" || { echo "FAIL: fixture rows"; exit 1; }

# ---- list ----
cat >"$work/table" <<'TXT'
ID  STATUS  KIND             MCHID       OUT_TRADE_NO                DETECTED_AT                ACKED_BY  RESOLVED_BY  RESOLUTION
1   open    amount_mismatch  1900000109  A1                          2026-11-26T10:00:01+08:00
2   open    unknown_order    1900000109  =HYPERLINK("http://x","y")  2026-11-26T11:00:00+08:00
3   open    fee_mismatch     1900000209  2026-11-30                  2026-12-01T10:30:00+08:00
TXT
run 0 "list: the unresolved ones as a table" discrepancies list && stdout_is "$work/table" "aligned table"

printf '%s\r\n' \
  'id,mchid,out_trade_no,kind,status,detected_at,bill_date,acknowledged_at,acknowledged_by,resolved_at,resolved_by,resolution,detail' \
  '1,1900000109,A1,amount_mismatch,open,2026-11-26T10:00:01+08:00,,,,,,,"{""recorded_total"": 300, ""reported_total"": 250}"' \
  '2,1900000109,"'"'"'=HYPERLINK(""http://x"",""y"")",unknown_order,open,2026-11-26T11:00:00+08:00,,,,,,,{}' \
  '3,1900000209,2026-11-30,fee_mismatch,open,2026-12-01T10:30:00+08:00,2026-11-30,,,,,,"{""fund_fee_total"": ""0.60"", ""trade_fee_total"": ""0.63""}"' \
  >"$work/csv"
run 0 "list --format csv" discrepancies list --format csv && stdout_is "$work/csv" "RFC 4180 CSV, the formula cell neutralised"

cat >"$work/json" <<'TXT'
[
{"id":1,"mchid":"1900000109","out_trade_no":"A1","kind":"amount_mismatch","status":"open","detected_at":"2026-11-26T10:00:01+08:00","bill_date":null,"acknowledged_at":null,"acknowledged_by":null,"resolved_at":null,"resolved_by":null,"resolution":null,"detail":{"recorded_total": 300, "reported_total": 250}},
{"id":2,"mchid":"1900000109","out_trade_no":"=HYPERLINK(\"http://x\",\"y\")","kind":"unknown_order","status":"open","detected_at":"2026-11-26T11:00:00+08:00","bill_date":null,"acknowledged_at":null,"acknowledged_by":null,"resolved_at":null,"resolved_by":null,"resolution":null,"detail":{}},
{"id":3,"mchid":"1900000209","out_trade_no":"2026-11-30","kind":"fee_mismatch","status":"open","detected_at":"2026-12-01T10:30:00+08:00","bill_date":"2026-11-30","acknowledged_at":null,"acknowledged_by":null,"resolved_at":null,"resolved_by":null,"resolution":null,"detail":{"fund_fee_total": "0.60", "trade_fee_total": "0.63"}}
]
TXT
run 0 "list --format=json" discrepancies list --format=json && stdout_is "$work/json" "one JSON array"
run 0 "list --kind" discrepancies list --kind fee_mismatch --format csv && stdout_has "3,1900000209,2026-11-30,fee_mismatch" "only the fee mismatch" &&
  if [ "$(wc -l <"$work/out")" -eq 2 ]; then echo "ok: one row"; else fail "--kind: not one row"; fi
run 0 "list --mchid" discrepancies list --mchid=1900000109 --format csv &&
  if [ "$(wc -l <"$work/out")" -eq 3 ]; then echo "ok: two rows"; else fail "--mchid: not two rows"; fi
run 0 "list --limit 1" discrepancies list --limit 1 --format csv && stderr_has "showing the first 1; more match" "the cut is said" &&
  if [ "$(wc -l <"$work/out")" -eq 2 ]; then echo "ok: one row"; else fail "--limit: not one row"; fi
run 0 "an empty list is a header only" discrepancies list --status resolved &&
  if [ "$(wc -l <"$work/out")" -eq 1 ]; then echo "ok: header only"; else fail "not a header only"; fi
run 0 "an empty JSON list" discrepancies list --status resolved --format json && printf '[]\n' >"$work/empty" &&
  stdout_is "$work/empty" "[]"

# ---- ack and resolve ----
run 0 "ack" discrepancies ack 1 --by alice --note "checking with the shop" &&
  printf 'discrepancy 1 acknowledged by alice\n' >"$work/acked" && stdout_is "$work/acked" "says what it did"
run 5 "ack again changes nothing" discrepancies ack 1 --by alice &&
  stderr_has "discrepancy 1 is acknowledged, not open: nothing changed" "says why"
run 5 "ack of a missing id" discrepancies ack 999 --by alice && stderr_has "no discrepancy 999" "names the id"
run 0 "list --status acknowledged" discrepancies list --status acknowledged --format csv &&
  stdout_has ",acknowledged,2026-11-26T10:00:01+08:00,," "acknowledged" && stdout_has ",alice,,,," "by alice"
run 1 "resolve without --note" discrepancies resolve 1 --by bob && stderr_has "--note TEXT is required" "says so"
run 1 "resolve with a blank note" discrepancies resolve 1 --by bob --note "  " && stderr_has "--note TEXT is required" "says so"
run 0 "resolve" discrepancies resolve 1 --by bob --note "refunded by hand, ticket 881" &&
  printf 'discrepancy 1 resolved by bob\n' >"$work/resolved" && stdout_is "$work/resolved" "says what it did"
run 5 "resolve again changes nothing" discrepancies resolve 1 --by bob --note again &&
  stderr_has "discrepancy 1 is resolved, not open or acknowledged: nothing changed" "says why"
run 5 "ack of a resolved one" discrepancies ack 1 --by carol && stderr_has "discrepancy 1 is resolved, not open" "says why"
run 0 "resolve an open one directly" discrepancies resolve 3 --by=carol "--note=fees corrected by WeChat Pay"
run 0 "list --status resolved" discrepancies list --status resolved --format csv &&
  stdout_has ',resolved,2026-11-26T10:00:01+08:00,,' "resolved row" &&
  stdout_has ',bob,"refunded by hand, ticket 881",' "who and why, quoted" &&
  stdout_has ',carol,fees corrected by WeChat Pay,' "the second one"
run 0 "the table shows who" discrepancies list --status all && stdout_has "alice     bob          refunded by hand, ticket 881" "ack and resolution columns"
run 0 "the default list is what is left" discrepancies list --format csv &&
  if [ "$(wc -l <"$work/out")" -eq 2 ]; then echo "ok: one row left"; else fail "not one row left"; fi
sql_is "wxrecond - open -|alice open acknowledged checking with the shop|bob acknowledged resolved refunded by hand, ticket 881" \
  "the history of discrepancy 1" \
  "SELECT string_agg(by || ' ' || coalesce(from_status, '-') || ' ' || to_status || ' ' || coalesce(note, '-'), '|' ORDER BY id) FROM wxrecon.discrepancy_history WHERE discrepancy_id = 1"

# ---- usage, configuration and database errors ----
run 1 "ack without --by" discrepancies ack 2 && stderr_has "--by WHO is required" "says so"
run 1 "ack of a non-number" discrepancies ack abc --by alice && stderr_has 'not "abc"' "names it"
run 1 "ack of zero" discrepancies ack 0 --by alice
run 1 "ack of two ids" discrepancies ack 1 2 --by alice && stderr_has "exactly one discrepancy ID" "says so"
run 1 "a name the database refuses" discrepancies ack 2 --by "$(head -c 101 /dev/zero | tr '\0' x)" &&
  stderr_has "who must be at most 100 characters" "the database's words"
run 1 "an unknown --status" discrepancies list --status closed && stderr_has "--status must be open, acknowledged, resolved or all" "says so"
run 1 "an unknown --format" discrepancies list --format xml && stderr_has "--format must be table, csv or json" "says so"
run 1 "--limit 0" discrepancies list --limit 0 && stderr_has "--limit must be a number from 1 to 100000" "says so"
run 1 "--limit over the maximum" discrepancies list --limit 100001
run 1 "an unknown option" discrepancies list --since 2026-11-01 && stderr_has 'unexpected argument "--since"' "names it"
run 1 "an unknown subcommand" discrepancies close 1 && stderr_has 'unknown command "close"' "names it"
run 1 "no subcommand" discrepancies
run 0 "--help" discrepancies --help && stdout_has "discrepancies resolve ID --by WHO --note TEXT" "usage on stdout"
"$wxrecond" --config "$work/nowhere.toml" discrepancies list >"$work/out" 2>"$work/err"
[ $? -eq 2 ] && echo "ok: a missing configuration is exit 2" || fail "a missing configuration: not exit 2"
sed -e "s|^url = .*|url = \"postgresql://nobody@127.0.0.1:1/wxrecon?connect_timeout=2\"|" "$work/wxrecond.toml" >"$work/unreachable.toml"
"$wxrecond" --config "$work/unreachable.toml" discrepancies ack 2 --by alice >"$work/out" 2>"$work/err"
[ $? -eq 3 ] && echo "ok: an unreachable database is exit 3" || fail "an unreachable database: not exit 3"

if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
echo "discrepancies: all checks passed"
