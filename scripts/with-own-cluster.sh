#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster of its own (pg-cluster.sh): the tests that
# stop or crash the server run beside the others instead of alone, and the shared cluster stays up.
#   scripts/with-own-cluster.sh COMMAND [ARG...]
set -euo pipefail
# shellcheck source=pg-cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/pg-cluster.sh"
trap pg_cluster_stop EXIT
pg_cluster_start 2>/dev/null
"$@"
