#!/usr/bin/env bash
# Builds wxrecon's libFuzzer targets with clang (ASan + UBSan, coverage on the whole pure layer) and runs
# each on its seed corpus (tests/data/fuzz/<target>, the bill fixtures for the bill parser). Any crash,
# sanitizer report, hang (10 s), memory over 512 MiB or broken round trip fails.
#
# Usage: fuzz.sh <source dir> <work dir> <budget> [target ...]
#   budget: seconds per target (the short run in the test command), or runs=N executions per target
#           (the long campaign: runs=10000000)
#   targets: bill_parser notification_v3 notification_v2 config http_head (default: all)
# Prints one summary line per target: executions, speed, corpus size, and the result.
set -euo pipefail
usage="usage: fuzz.sh <source dir> <work dir> <seconds|runs=N> [target ...]"
source_dir=$(cd "${1:?$usage}" && pwd)
work_dir=${2:?$usage}
budget=${3:?$usage}
shift 3
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bill_parser notification_v3 notification_v2 config http_head)
case "$budget" in
  runs=*) limit=(-runs="${budget#runs=}") ;;
  *) limit=(-max_total_time="$budget") ;;
esac

cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "FAIL: clang++ not found: install Debian packages clang-14 libclang-rt-14-dev"; exit 1; }
mkdir -p "$work_dir/obj"
work_dir=$(cd "$work_dir" && pwd)
flags=(-std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all
       -DTOML_HEADER_ONLY=0 -DTOML_SHARED_LIB=1 -I "$source_dir/core")
libs=(-lcrypto -lsimdjson -lpugixml -ltomlplusplus -lz)

# The pure layer once for every target; all of it again when anything under core/ changed since.
stamp="$work_dir/obj/.built"
if [ ! -e "$stamp" ] || [ -n "$(find "$source_dir/core" -newer "$stamp" -print -quit)" ]; then
  rm -f "$work_dir"/obj/*.o
  (cd "$source_dir" && ls core/base/*.cpp core/crypto/*.cpp core/protocol/*.cpp core/domain/*.cpp \
      core/config/*.cpp core/net/http_request_head.cpp) |
    xargs -P "$(nproc)" -I{} sh -c 'o="$1/obj/$(echo "$2" | tr / _).o"; shift 2; exec "$@" -c "$0" -o "$o"' \
      "$source_dir/{}" "$work_dir" {} "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link
  touch "$stamp"
fi

failed=0
for target in "${targets[@]}"; do
  binary="$work_dir/$target"
  "$cxx" "${flags[@]}" -fsanitize=fuzzer "$source_dir/tests/fuzz/${target}_fuzz.cpp" "$work_dir"/obj/*.o \
    "${libs[@]}" -o "$binary"
  corpus="$work_dir/corpus/$target"
  mkdir -p "$corpus"
  if [ "$target" = bill_parser ]; then
    # Each fixture behind a first byte that picks whole-file parsing with no expected kind.
    for f in "$source_dir"/tests/data/bills/*.csv; do
      { printf '\x80'; cat "$f"; } > "$corpus/seed-$(basename "$f")"
    done
  else
    cp "$source_dir/tests/data/fuzz/$target"/* "$corpus/"
  fi
  log="$work_dir/$target.log"
  set +e
  "$binary" "${limit[@]}" -timeout=10 -rss_limit_mb=512 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$work_dir/$target-" "$corpus" > "$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "ok: $target: ${runs:-?} executions, ${speed:-?}/s, corpus $files files, no findings"
  else
    failed=1
    tail -n 40 "$log"
    echo "FAIL: $target: the fuzzer found an input that breaks it; see $work_dir/$target-* and $log"
  fi
done
exit "$failed"
