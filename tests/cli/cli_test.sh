#!/usr/bin/env bash
# Command-line contract of wxrecond (docs/interfaces.md §1): --version,
# check-config on the shipped example with generated keys, and the exit
# statuses for bad configuration (2) and an unreachable database (3).
set -uo pipefail
wxrecond=$1
source_dir=$2
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

expect 0 "--version" "$wxrecond" --version
expect_output "wxrecond " "--version prints the version"

# The shipped example, its key paths pointed at throw-away keys.
mkdir -p "$work/conf/keys"
cp "$source_dir/conf/wxrecond.toml" "$work/conf/wxrecond.toml"
keys="$work/conf/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$keys/apiclient_key.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$keys/wechatpay_key.pem" 2>/dev/null
openssl pkey -in "$keys/wechatpay_key.pem" -pubout -out "$keys/pub_key.pem" 2>/dev/null
openssl req -x509 -new -key "$keys/wechatpay_key.pem" -subj "/CN=Tenpay.com sign" -days 30 \
  -set_serial 0x5157F09EFDC096DE15EBE81A47057A72D1E6E3FD \
  -out "$keys/wechatpay_5157F09EFDC096DE15EBE81A47057A72D1E6E3FD.pem" 2>/dev/null
head -c 24 /dev/urandom | base64 | tr -d '\n' > "$keys/apiv3.key"       # 32 characters
head -c 24 /dev/urandom | base64 > "$keys/api.token"
cd /   # relative key paths resolve against the config's folder, not the working directory
expect 0 "check-config accepts conf/wxrecond.toml with generated keys" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config

cp "$keys/api.token" "$work/api.token.good"
printf 'short\n' > "$keys/api.token"
expect 2 "check-config refuses an API token shorter than 16 characters" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "api.token_file" "the message names the token's key"
cp "$work/api.token.good" "$keys/api.token"

# A trust file for the merchant's API host that TLS could not load: refused here, not at the first call.
cp "$work/conf/wxrecond.toml" "$work/conf.good"
sed -i 's|^# ca_file = .*|ca_file = "keys/bad-ca.pem"|' "$work/conf/wxrecond.toml"
printf 'not a certificate\n' > "$keys/bad-ca.pem"
expect 2 "check-config refuses a ca_file without a certificate" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "ca_file" "the message names the key"
expect_output "$keys/bad-ca.pem" "the message names the file"
cp "$keys/wechatpay_5157F09EFDC096DE15EBE81A47057A72D1E6E3FD.pem" "$keys/bad-ca.pem"
printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' >> "$keys/bad-ca.pem"
expect 2 "check-config refuses a ca_file whose second certificate is broken" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "certificate 2" "the message says which certificate"
cp "$keys/wechatpay_5157F09EFDC096DE15EBE81A47057A72D1E6E3FD.pem" "$keys/bad-ca.pem"
expect 0 "check-config accepts a ca_file of PEM certificates" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
cp "$work/conf.good" "$work/conf/wxrecond.toml"

printf 'short\n' > "$keys/apiv3.key"
expect 2 "check-config refuses a 6-byte APIv3 key" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "apiv3_key_file" "the message names the key"
expect_output "$keys/apiv3.key" "the message names the file"

sed -i 's/^max_body_bytes/max_body_byte/' "$work/conf/wxrecond.toml"
expect 2 "an unknown key is refused" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "max_body_byte" "the message names the unknown key"

sed -i 's/^max_body_byte/max_body_bytes/; s|^# tls_cert_file = .*|tls_cert_file = "keys/apiv3.key"|; s|^# tls_key_file = .*|tls_key_file = "keys/apiv3.key"|' "$work/conf/wxrecond.toml"
expect 2 "direct TLS is refused, not silently ignored" "$wxrecond" --config "$work/conf/wxrecond.toml" check-config
expect_output "tls_cert_file" "the message names the TLS key"

expect 2 "a missing config file is exit 2" "$wxrecond" --config "$work/nowhere.toml" check-config

cat > "$work/unreachable.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[database]
url = "postgresql://nobody@127.0.0.1:1/wxrecon?connect_timeout=2"
[[merchants]]
mchid = "1900000109"
appid = "wxd678efh567hg6787"
api_version = "v2"
apiv2_key_file = "conf/keys/api.token"
TOML
head -c 32 /dev/zero | tr '\0' 'k' > "$keys/api.token"
expect 3 "migrate against an unreachable database is exit 3" "$wxrecond" --config "$work/unreachable.toml" migrate
expect 3 "serve against an unreachable database is exit 3" "$wxrecond" --config "$work/unreachable.toml" serve
expect 1 "an unknown command is exit 1" "$wxrecond" frobnicate

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
