#!/usr/bin/env bash
# The layer check (scripts/check-layers.cmake): the source tree keeps to its layers, and a tree with
# planted violations is refused with every one of them named.
set -euo pipefail
root=$1
check="$root/scripts/check-layers.cmake"

cmake -DROOT="$root" -P "$check"

planted="$root/tests/data/layer_violations"
if out=$(cmake -DROOT="$planted" -P "$check" 2>&1); then
  echo "FAIL: the planted violations passed the check" >&2
  echo "$out" >&2
  exit 1
fi
expect=(
  'core/store/reaches_up.cpp:3: the store layer may not include "workflow/poller.hpp"'
  'core/workflow/builds_transactions.cpp:2: names libpqxx outside core/store'
  'core/workflow/builds_transactions.cpp:6: names libpqxx outside core/store'
  'core/domain/does_io.hpp:2: the pure layer may not include <boost/asio/awaitable.hpp>'
  'tools/wxrecon-send.cpp:3: the send layer may not include "store/ledger.hpp"'
  'include cycle: core/domain/cycle_a.hpp -> core/domain/cycle_b.hpp -> core/domain/cycle_a.hpp'
  'check-layers: 6 violation(s) in 7 files'
)
for e in "${expect[@]}"; do
  if ! grep -qF -- "$e" <<<"$out"; then
    echo "FAIL: expected in the check's output: $e" >&2
    echo "$out" >&2
    exit 1
  fi
done
echo "layers: the tree keeps to its layers; 6 planted violations named"
