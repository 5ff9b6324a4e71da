#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian 12's own
# packages only. Does nothing when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git openssl curl ca-certificates procps
  clang-format   # tests/cli/format_test.sh
  clang-14 libclang-rt-14-dev   # libFuzzer targets (tests/fuzz)
  libboost1.81-dev libssl-dev libsimdjson-dev libpqxx-dev libspdlog-dev libfmt-dev
  libtomlplusplus-dev libpugixml-dev libsystemd-dev libgtest-dev
  zlib1g-dev   # gzip bill downloads (core/base/gzip)
  postgresql-15 postgresql-client-15
  prometheus   # for promtool (tests/cli/alert_rules_test.sh)
  dpkg-dev systemd   # the package and unit tests: cpack's dpkg-shlibdeps, systemd-analyze
  python3-jsonschema python3-yaml   # tests/cli/api_schema_test.sh checks docs/api.yaml
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt_get=(apt-get)
else
  apt_get=(sudo apt-get)
fi
export DEBIAN_FRONTEND=noninteractive
"${apt_get[@]}" update -qq
"${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
