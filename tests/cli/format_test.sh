#!/usr/bin/env bash
# Formatting stays applied: every C++ source and header is as .clang-format makes it
# (clang-format from Debian 12). Fixtures under tests/data are left as they are.
set -euo pipefail
root=$1
cd "$root"
mapfile -t files < <(find core daemon tools tests bench -path tests/data -prune -o \
                       -type f \( -name '*.cpp' -o -name '*.hpp' \) -print | sort)
[ ${#files[@]} -gt 0 ] || { echo "FAIL: no sources found under $root" >&2; exit 1; }
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "FAIL: run: clang-format -i \$(the files named above)" >&2
  exit 1
fi
echo "format: ${#files[@]} files as .clang-format makes them"
