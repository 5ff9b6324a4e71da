#!/usr/bin/env bash
# The Prometheus alerting rules in conf/alerts: promtool checks their syntax and
# runs their unit tests (every alert firing once and staying quiet once).
# Usage: alert_rules_test.sh <source dir>
set -uo pipefail
source_dir=${1:?usage: alert_rules_test.sh <source dir>}
rules="$source_dir/conf/alerts/wxrecon.rules.yml"
tests="$source_dir/conf/alerts/wxrecon.rules.test.yml"

if ! command -v promtool >/dev/null 2>&1; then
  echo "FAIL: promtool not found: install Debian package prometheus"
  exit 1
fi

failures=0
run() {  # run <description> <command...>
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then
    echo "ok: $what"
  else
    echo "FAIL: $what"; printf '%s\n' "$out" | sed 's/^/  | /'; failures=$((failures + 1))
  fi
}

run "promtool check rules" promtool check rules "$rules"
run "promtool test rules" promtool test rules "$tests"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
