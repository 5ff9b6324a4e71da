#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors, starts
# a throwaway PostgreSQL 15 and runs the whole suite with ctest; then, when
# WXRECON_SANITIZE_RUN is not 0, the unit, simulator and PostgreSQL tiers under ASan+UBSan
# (the soak with 2,000 orders instead of 10,000 there) and the concurrency tests under
# ThreadSanitizer. All three builds compile in unity batches (WXRECON_UNITY).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc)

"$root/scripts/bootstrap.sh"
# shellcheck source=pg-cluster.sh
source "$root/scripts/pg-cluster.sh"
trap pg_cluster_stop EXIT
pg_cluster_start

build="${WXRECON_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWXRECON_WERROR=ON -DWXRECON_UNITY=ON >/dev/null
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600

if [ "${WXRECON_SANITIZE_RUN:-1}" != 0 ]; then
  asan="${build}-asan"
  # -g1 keeps the line tables sanitizer reports need and skips the rest of the debug info.
  cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" \
    -DWXRECON_WERROR=ON -DWXRECON_SANITIZE=ON -DWXRECON_UNITY=ON >/dev/null
  cmake --build "$asan" -j "$jobs" --target unit_tests sim_tests pg_tests
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 WXRECON_SOAK_ORDERS=2000 WXRECON_PREPAY_ORDERS=200 WXRECON_APP_EVENT_ORDERS=200 \
    ctest --test-dir "$asan" --output-on-failure -j "$jobs" -L 'unit|sim|pg' --timeout 900

  tsan="${build}-tsan"
  cmake -S "$root" -B "$tsan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DWXRECON_WERROR=ON -DWXRECON_TSAN=ON -DWXRECON_UNITY=ON >/dev/null
  cmake --build "$tsan" -j "$jobs" --target tsan_tests
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" WXRECON_APP_EVENT_ORDERS=200 \
    ctest --test-dir "$tsan" --output-on-failure -j "$jobs" -L tsan --timeout 900
fi
echo "test: all suites passed"
