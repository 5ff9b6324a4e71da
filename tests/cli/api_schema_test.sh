#!/usr/bin/env bash
# The internal API against its OpenAPI document (docs/api.yaml): the document is checked on its own
# (references, schemas against the JSON Schema 2020-12 metaschema), then wxpay-sim and wxrecond serve
# run on loopback with a scratch database and api_schema_check.py calls every documented operation,
# for its successes and its errors, failing on a status the document does not give for that
# operation, a body its schema refuses, or the router's "no such API endpoint" for a documented one.
#   api_schema_test.sh <wxpay-sim> <wxrecond> <source dir>   with WXRECON_TEST_PG_URL set
#                                                              (scripts/pg-cluster.sh)
# Needs python3 with jsonschema and yaml (Debian: python3-jsonschema python3-yaml).
set -uo pipefail
sim=$1
wxrecond=$2
source_dir=$3
if [ -z "${WXRECON_TEST_PG_URL:-}" ]; then
  echo "FAIL: WXRECON_TEST_PG_URL is not set: run through scripts/test.sh (or source scripts/pg-cluster.sh)"
  exit 1
fi
python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import jsonschema, yaml' 2>/dev/null; then python=$candidate; break; fi
done
if [ -z "$python" ]; then
  echo "FAIL: no python3 with jsonschema and yaml: apt-get install python3-jsonschema python3-yaml"
  exit 1
fi

work=$(mktemp -d)
db="wxrecon_cli_api_$$"
admin_url=$WXRECON_TEST_PG_URL
db_url="${admin_url%/*}/$db"
sim_pid="" daemon_pid=""
psql_() { psql "$1" -X -q -v ON_ERROR_STOP=1 -At "${@:2}"; }
stop() {  # stop <pid>: SIGTERM, a few seconds' grace, then SIGKILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
cleanup() {
  stop "$daemon_pid"
  stop "$sim_pid"
  psql_ "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() {
  echo "FAIL: $*"
  for log in wxpay-sim.log wxrecond.log; do
    [ -s "$work/$log" ] && { echo "last lines of $log:"; tail -n 30 "$work/$log" | sed 's/^/  | /'; }
  done
  exit 1
}

"$python" "$source_dir/tests/cli/api_schema_check.py" "$source_dir/docs/api.yaml" || exit 1

psql_ "$admin_url" -c "CREATE DATABASE $db" || die "cannot create the database"

# Loopback ports nobody listens on: wxrecond's three listeners (the public one is written into the
# notify_url of the orders it places, so it is fixed before the start) and one left closed, for a
# mini program login service that does not answer.
read -r public_port api_port admin_port dead_port < <("$python" -c '
import socket
held = [socket.socket() for _ in range(4)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')

# Three merchants: APIv3 (1900000101), APIv2 (1900000102, without app_secret_file and
# merchant_cert_file, for the 500 answers), APIv3 (1900000103, its jscode2session unreachable).
"$sim" keys --out "$work/keys" --merchants 3 >"$work/keys.log" 2>&1 ||
  die "wxpay-sim keys: $(cat "$work/keys.log")"
"$sim" serve --keys "$work/keys" --listen 127.0.0.1:0 --seed 14 >"$work/wxpay-sim.log" 2>&1 &
sim_pid=$!
sim_addr=""
for _ in $(seq 100); do
  sim_addr=$(sed -n 's/^wxpay-sim listening on //p' "$work/wxpay-sim.log")
  [ -n "$sim_addr" ] && break
  kill -0 "$sim_pid" 2>/dev/null || die "wxpay-sim exited during start"
  sleep 0.1
done
[ -n "$sim_addr" ] || die "wxpay-sim did not start within 10 s"

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/api.token"
cat >"$work/wxrecond.toml" <<TOML
[server]
listen = "127.0.0.1:$public_port"
public_base_url = "http://127.0.0.1:$public_port"
max_body_bytes = 8192
shutdown_grace = "2s"
[api]
token_file = "api.token"
listen = "127.0.0.1:$api_port"
[admin]
listen = "127.0.0.1:$admin_port"
[database]
url = "$db_url"
[app_events]
url = "http://$sim_addr/sim/app-events"
secret_file = "app_events.key"
TOML
app_events_secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$app_events_secret" >"$work/app_events.key"
curl -fsS -o /dev/null "http://$sim_addr/sim/app-events-config" \
  -d "{\"secret\":\"$app_events_secret\",\"status\":200}" || die "cannot configure the app-event receiver"
# The [[merchants]] blocks pointed at the simulator, edited as above; their appids for the checker.
"$python" - "$work/keys/wxrecond-merchants.toml" "$sim_addr" "$dead_port" "$work/appids.json" \
  >>"$work/wxrecond.toml" <<'PY' || die "cannot write the merchants"
import json, re, sys
path, sim_addr, dead_port, appids = sys.argv[1:]
text = open(path).read().replace("http://127.0.0.1:8480", "http://" + sim_addr)
blocks = text.split("[[merchants]]")
for i, block in enumerate(blocks):
    if 'mchid = "1900000102"' in block:
        blocks[i] = re.sub(r"^(app_secret_file|merchant_cert_file) = .*\n", "", block, flags=re.M)
    if 'mchid = "1900000103"' in block:
        blocks[i] = re.sub(r"^mp_api_base = .*$", f'mp_api_base = "http://127.0.0.1:{dead_port}"', block,
                           flags=re.M)
print("[[merchants]]".join(blocks))
json.dump(dict(re.findall(r'mchid = "(\d+)"\nappid = "(\w+)"', text)), open(appids, "w"))
PY
"$wxrecond" --config "$work/wxrecond.toml" check-config >"$work/check.log" 2>&1 ||
  die "check-config: $(cat "$work/check.log")"
"$wxrecond" --config "$work/wxrecond.toml" serve >"$work/wxrecond.log" 2>&1 &
daemon_pid=$!
for i in $(seq 150); do
  curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || die "wxrecond exited during start"
  [ "$i" -lt 150 ] || die "wxrecond not ready within 30 s"
  sleep 0.2
done

cat >"$work/setup.json" <<JSON
{"api": "http://127.0.0.1:$api_port", "token_file": "$work/api.token", "sim": "http://$sim_addr",
 "db_url": "$db_url", "appids": $(cat "$work/appids.json"),
 "merchants": {"v3": "1900000101", "v2": "1900000102", "unreachable_login": "1900000103"}}
JSON
"$python" "$source_dir/tests/cli/api_schema_check.py" "$source_dir/docs/api.yaml" "$work/setup.json"
status=$?
[ "$status" -eq 0 ] || die "the API does not answer as docs/api.yaml says (above)"
echo "all passed"
