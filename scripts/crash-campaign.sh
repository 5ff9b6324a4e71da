#!/usr/bin/env bash
# The crash campaign at length: wxrecond SIGKILLed at a random moment in each of
# N cycles (default 100), PostgreSQL crashed in every fifth, then every
# acknowledged notification, order, lease and outbox row checked. Uses its own
# throwaway PostgreSQL cluster. Prints the campaign's figures at the end.
#   scripts/crash-campaign.sh [CYCLES] [SEED]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$root/scripts/bootstrap.sh"
# shellcheck source=pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
trap pg_cluster_stop EXIT
pg_cluster_start

build="${WXRECON_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWXRECON_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target wxrecond disruptive_tests

export WXRECON_CRASH_CYCLES="${1:-100}"
[ -n "${2:-}" ] && export WXRECON_CRASH_SEED="$2"
"$build/tests/disruptive_tests" --gtest_filter='CrashCampaign.*'
