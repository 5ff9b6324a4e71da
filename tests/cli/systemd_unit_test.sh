#!/usr/bin/env bash
# The systemd unit (systemd/wxrecond.service): it passes `systemd-analyze verify`
# with the built wxrecond at its ExecStart path, its sandbox scores an exposure of
# at most 2.0 in `systemd-analyze security`, and it keeps the lifecycle settings the
# daemon relies on (notify, watchdog, reload by SIGHUP, restart on failure).
# Works on unit files only, so it needs no running systemd; it fails, never skips,
# when systemd-analyze is missing.
#   systemd_unit_test.sh <source dir> <wxrecond binary>
set -uo pipefail
source_dir=$1
wxrecond=$2
unit=$source_dir/systemd/wxrecond.service
max_exposure=2.0
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

command -v systemd-analyze >/dev/null ||
  { echo "FAIL: systemd-analyze not found; install Debian's systemd package to run this test"; exit 1; }
[ -f "$unit" ] || { echo "FAIL: no unit at $unit"; exit 1; }
[ -x "$wxrecond" ] || { echo "FAIL: no wxrecond binary at $wxrecond"; exit 1; }
host_units=/usr/lib/systemd/system
[ -f "$host_units/sysinit.target" ] ||
  { echo "FAIL: $host_units/sysinit.target missing; verify needs the host's systemd units"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The settings the daemon's lifecycle depends on, each as a whole line of the unit.
has_line() {  # has_line <extended regex for the whole line> <description>
  if grep -Eqx -- "$1" "$unit"; then ok "$2"; else fail "$2 (no line matching /$1/)"; fi
}
has_line 'Type=notify' "Type=notify: READY=1 after migrations and listeners"
has_line 'NotifyAccess=main' "NotifyAccess=main"
has_line 'WatchdogSec=[1-9][0-9]*(s|min)?' "WatchdogSec is set"
has_line 'ExecReload=(/bin/kill -HUP|/bin/kill -s HUP|/usr/bin/kill -HUP|/usr/bin/kill -s HUP) \$MAINPID' \
  "ExecReload sends SIGHUP to the main process"
has_line 'Restart=on-failure' "Restart=on-failure"
has_line 'User=wxrecon' "runs as user wxrecon"
has_line 'Group=wxrecon' "runs as group wxrecon"

# A root with the unit where the package installs it, the built wxrecond at the unit's
# ExecStart path, the other programs the unit runs, and the host's own units (verify
# loads sysinit.target and the rest of the unit's dependencies from the root too).
# The layout follows Debian 12's merged /usr: /bin and /lib are links into /usr.
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/systemd"
for d in bin sbin lib; do ln -s "usr/$d" "$root/$d"; done
cp -r "$host_units" "$root/usr/lib/systemd/system"
staged_unit=$root/usr/lib/systemd/system/wxrecond.service
cp "$unit" "$staged_unit"
exec_start=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$unit")
[ "$exec_start" = /usr/bin/wxrecond ] || fail "ExecStart runs $exec_start, not /usr/bin/wxrecond where the package puts it"
install -m 0755 "$wxrecond" "$root$exec_start"
for program in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | sort -u); do
  [ -e "$root$program" ] && continue
  if [ -x "$program" ]; then cp "$program" "$root$program"; else fail "the unit runs $program, which this machine lacks"; fi
done

# verify reports problems on stderr and may still exit 0 (an unknown key is only a
# warning): any output at all is a failure.
systemd-analyze verify --root="$root" wxrecond.service >"$work/verify.out" 2>&1
status=$?
if [ "$status" -ne 0 ] || [ -s "$work/verify.out" ]; then
  fail "systemd-analyze verify: exit $status"; sed 's/^/  | /' "$work/verify.out"
else
  ok "systemd-analyze verify, with wxrecond at $exec_start"
fi
# The check above is only worth something if verify looks for ExecStart in the root.
rm "$root$exec_start"
systemd-analyze verify --root="$root" wxrecond.service >"$work/verify.out" 2>&1
if grep -q "$exec_start" "$work/verify.out"; then
  ok "verify notices a missing $exec_start in the root"
else
  fail "verify did not notice a missing $exec_start in the root"; sed 's/^/  | /' "$work/verify.out"
fi

# --threshold takes the exposure times ten; the exit status and the printed figure
# are both checked.
systemd-analyze security --offline=true --threshold=20 "$staged_unit" >"$work/security.out" 2>&1
status=$?
exposure=$(sed -n 's/^.*Overall exposure level for wxrecond\.service: \([0-9][0-9.]*\).*$/\1/p' "$work/security.out")
if [ -z "$exposure" ]; then
  fail "systemd-analyze security printed no overall exposure level (exit $status)"; sed 's/^/  | /' "$work/security.out"
elif [ "$status" -ne 0 ] || ! awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }'; then
  fail "exposure level $exposure (exit $status), more than $max_exposure"
  grep '✗' "$work/security.out" | sed 's/^/  | /'
else
  ok "exposure level $exposure (at most $max_exposure)"
  echo "settings left open:"; grep '✗' "$work/security.out" | sed 's/  */ /g; s/^/  /'
fi

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
