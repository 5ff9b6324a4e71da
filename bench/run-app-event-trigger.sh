#!/usr/bin/env bash
# What app events cost inside a fact batch (issue 14, Performance), apart from the noise of a full run:
# on a throwaway PostgreSQL with ORDERS orders, one session runs BATCHES statements that each pay BATCH_ORDERS orders
# the way the fact batch's UPDATE does (one statement, so one call of the statement trigger), REPEAT times
# with wxrecon.app_events off and on in turn. Prints the time per statement and, from the difference, per
# event; then, from pg_stat_statements (nested statements tracked), the statements the trigger ran.
# Defaults: BATCHES=2000 BATCH_ORDERS=16 REPEAT=3 (ORDERS: enough for every run)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
batches=${BATCHES:-2000}
size=${BATCH_ORDERS:-16}
repeat=${REPEAT:-3}
orders=${ORDERS:-$((2 * repeat * batches * size))}
build="${WXRECON_BUILD_DIR:-$root/build}"

"$root/scripts/bootstrap.sh"
# shellcheck source=../scripts/pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
work=$(mktemp -d)
cleanup() {
  set +e
  pg_cluster_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_cluster_start
psql=(psql "$WXRECON_TEST_PG_URL" -X -q -At -v ON_ERROR_STOP=1)
"${psql[@]}" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
"$PG_CLUSTER_DIR/ctl" stop >/dev/null && "$PG_CLUSTER_DIR/ctl" start >/dev/null
"${psql[@]}" -c "CREATE EXTENSION pg_stat_statements" -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" \
             -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" \
             -c "SELECT pg_reload_conf()" >/dev/null

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target wxrecond >/dev/null
cat >"$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:1"
[admin]
listen = "127.0.0.1:2"
[database]
url = "$WXRECON_TEST_PG_URL"
[[merchants]]
mchid = "1900000109"
appid = "wxd678efh567hg6787"
api_version = "v3"
api_base = "http://127.0.0.1:1"
apiv3_key_file = "keys/apiv3.key"
merchant_private_key_file = "keys/apiclient_key.pem"
merchant_cert_serial = "3775B6A45ACD588826D15E583A95F5DD12345678"
wechatpay_public_key_file = "keys/pub_key.pem"
wechatpay_public_key_id = "PUB_KEY_ID_0000000000000000000000000000000"
TOML
"$build/wxrecond" --config "$work/wxrecond.toml" migrate >/dev/null 2>&1
echo "loading $orders orders"
"${psql[@]}" -c "INSERT INTO wxrecon.orders (mchid, out_trade_no, amount_total, appid, next_poll_at)
                 SELECT '1900000109', 'PERF-' || g, 100, 'wxd678efh567hg6787', now() + interval '1 day'
                 FROM generate_series(1, $orders) g" \
             -c "VACUUM ANALYZE wxrecon.orders" -c "CHECKPOINT"

# pay <first order> <app events: on|off>: BATCHES statements of 16 orders each; prints microseconds per statement.
pay() {
  "${psql[@]}" -c "SET wxrecon.app_events = '$2'" -c "
    DO \$\$
    DECLARE
      started timestamptz := clock_timestamp();
    BEGIN
      FOR i IN 0 .. $batches - 1 LOOP
        UPDATE wxrecon.orders o SET state = 'SUCCESS', state_source = 'notify', state_changed_at = now(),
               transaction_id = '4200' || o.out_trade_no, trade_type = 'JSAPI', bank_type = 'OTHERS',
               payer_openid = 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', payer_total = o.amount_total,
               success_time = now(), notified_at = now(), updated_at = now()
         WHERE o.mchid = '1900000109'
           AND o.out_trade_no = ANY (ARRAY(SELECT 'PERF-' || g FROM generate_series($1 + i * $size, $1 + i * $size + $size - 1) g));
      END LOOP;
      RAISE NOTICE 'us %', round(extract(epoch FROM clock_timestamp() - started) * 1e6 / $batches, 1);
    END \$\$" 2>&1 | sed -n 's/.*us \([0-9.]*\)/\1/p'
}

"${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
next=1
off=() on=()
for run in $(seq "$repeat"); do
  off+=("$(pay "$next" off)"); next=$((next + batches * size))
  on+=("$(pay "$next" on)"); next=$((next + batches * size))
  echo "pair $run: events off ${off[-1]} us, on ${on[-1]} us per statement of $size orders"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
m_off=$(median "${off[@]}") m_on=$(median "${on[@]}")
echo "median: off $m_off us, on $m_on us per statement; app events add $(awk -v a="$m_on" -v b="$m_off" -v n="$size" \
  'BEGIN {printf "%.1f", (a - b) / n}') us per event"
echo "app events written: $("${psql[@]}" -c "SELECT count(*) FROM wxrecon.app_events")"
echo "the trigger's statements (pg_stat_statements, per event):"
events=$("${psql[@]}" -c "SELECT greatest(count(*), 1) FROM wxrecon.app_events")
"${psql[@]}" -F ' | ' -c "SELECT round((total_exec_time * 1000 / $events)::numeric, 1) || ' us', calls, plans || ' plans '
                                 || round((total_plan_time * 1000 / $events)::numeric, 1) || ' us',
                                 left(regexp_replace(query, '\s+', ' ', 'g'), 100)
                          FROM pg_stat_statements WHERE NOT toplevel ORDER BY total_exec_time + total_plan_time DESC LIMIT 8" \
  | sed 's/^/  /'
