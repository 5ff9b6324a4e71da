#!/usr/bin/env bash
# Builds the bill parser's libFuzzer target with clang (ASan + UBSan) and runs it for a short while on a
# corpus seeded from tests/data/bills. Any crash, sanitizer report or whole-versus-pieces difference fails.
# Usage: bill_parser_fuzz.sh <source dir> <work dir> [seconds]
set -euo pipefail
source_dir=${1:?usage: bill_parser_fuzz.sh <source dir> <work dir> [seconds]}
work_dir=${2:?usage: bill_parser_fuzz.sh <source dir> <work dir> [seconds]}
seconds=${3:-20}

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "FAIL: clang++ not found: install Debian packages clang-14 libclang-rt-14-dev"; exit 1; }

mkdir -p "$work_dir/corpus"
binary="$work_dir/bill_parser_fuzz"
sources=(core/protocol/bill.cpp core/protocol/bill_values.cpp core/base/encoding.cpp core/base/time.cpp
         core/base/json_writer.cpp core/base/result.cpp core/base/utf8.cpp tests/fuzz/bill_parser_fuzz.cpp)
(cd "$source_dir" && "$cxx" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I core "${sources[@]}" -lcrypto -o "$binary")

# Seeds: the bill fixtures, each behind a first byte that picks whole-file parsing with no expected kind.
for f in "$source_dir"/tests/data/bills/*.csv; do
  { printf '\x80'; cat "$f"; } > "$work_dir/corpus/seed-$(basename "$f")"
done

# -timeout: one input over 10 s is a hang; -rss_limit_mb: memory must stay flat.
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=512 -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$work_dir/" "$work_dir/corpus" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "FAIL: the fuzzer found an input that breaks the parser; it is in $work_dir (crash-*, timeout-*, oom-*)"
  exit 1
fi
echo "ok: bill parser fuzzed for ${seconds}s"
