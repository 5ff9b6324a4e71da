#!/usr/bin/env bash
# The Debian package: cpack builds it from an already built tree, and it holds
# exactly the installed files (the programs, the unit, migrations, alert rules, the
# example configuration and the documentation; no tests, headers or live
# configuration), depends on adduser and libpqxx, has maintainer scripts that never
# enable or start the service, and its wxrecond runs.
#   package_test.sh <build dir> <source dir>
set -uo pipefail
build_dir=$1
source_dir=$2
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null ||
    { echo "FAIL: $tool not found; install cmake and dpkg-dev (scripts/bootstrap.sh)"; exit 1; }
done
[ -f "$build_dir/CPackConfig.cmake" ] || { echo "FAIL: no CPackConfig.cmake in $build_dir"; exit 1; }
# Packaging installs what was built and builds nothing itself (CMAKE_SKIP_INSTALL_ALL_DEPENDENCY).
for program in wxrecond wxpay-sim wxrecon-send; do
  [ -x "$build_dir/$program" ] || { echo "FAIL: $build_dir/$program is not built; build before packaging"; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.out" 2>&1; then
  echo "FAIL: cpack"; sed 's/^/  | /' "$work/cpack.out"; exit 1
fi
debs=("$work"/out/*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] ||
  { echo "FAIL: cpack made ${#debs[@]} .deb files, expected one"; ls -l "$work/out"; exit 1; }
deb=${debs[0]}

version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg --print-architecture)
if [ "$(basename "$deb")" = "wxrecon_${version}_${arch}.deb" ]; then
  ok "file name $(basename "$deb")"
else
  fail "file name $(basename "$deb"), expected wxrecon_${version}_${arch}.deb"
fi
[ "$(dpkg-deb -f "$deb" Package)" = wxrecon ] && ok "package name wxrecon" || fail "package name $(dpkg-deb -f "$deb" Package)"

# The expected contents, worked out from the source tree: the migrations, alert rules
# and documents present there, each at its installed path, and every parent folder.
{
  echo ./usr/bin/wxrecond
  echo ./usr/bin/wxpay-sim
  echo ./usr/bin/wxrecon-send
  echo ./usr/lib/systemd/system/wxrecond.service
  echo ./usr/share/doc/wxrecon/README.md
  echo ./usr/share/doc/wxrecon/examples/wxrecond.toml
  for f in "$source_dir"/migrations/*.sql; do echo "./usr/share/wxrecon/migrations/${f##*/}"; done
  [ -d "$source_dir/conf/alerts" ] && echo ./usr/share/wxrecon/alerts/
  for f in "$source_dir"/conf/alerts/*.yml; do [ -f "$f" ] && echo "./usr/share/wxrecon/alerts/${f##*/}"; done
  for f in "$source_dir"/docs/*.md; do [ -f "$f" ] && echo "./usr/share/doc/wxrecon/${f##*/}"; done
} >"$work/files"
awk '{ p = $0; while (sub(/[^\/]*\/?$/, "", p) && p != "./") print p; print $0 }' "$work/files" |
  sort -u >"$work/expected"
dpkg-deb -c "$deb" >"$work/listing"
awk '{ print $6 }' "$work/listing" | sort -u >"$work/actual"
if diff -u "$work/expected" "$work/actual" >"$work/diff"; then
  ok "contents: exactly $(grep -vc '/$' "$work/actual") files"
else
  fail "contents differ from the expected list (- missing, + unexpected)"; sed 's/^/  | /' "$work/diff"
fi
# Owner and modes: everything root's, programs 0755, other files 0644, nothing setuid.
bad_modes=$(awk '$2 != "root/root" ||
                 ($6 ~ /\/$/ && $1 != "drwxr-xr-x") ||
                 ($6 ~ /^\.\/usr\/bin\/[^\/]+$/ && $1 != "-rwxr-xr-x") ||
                 ($6 !~ /\/$/ && $6 !~ /^\.\/usr\/bin\// && $1 != "-rw-r--r--")' "$work/listing")
if [ -z "$bad_modes" ]; then ok "owners and modes"; else fail "owners or modes:"; echo "$bad_modes" | sed 's/^/  | /'; fi
exec_start=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$source_dir/systemd/wxrecond.service")
grep -qx "\.$exec_start" "$work/actual" && ok "the unit's ExecStart $exec_start is in the package" ||
  fail "the unit runs $exec_start, which the package does not hold"

# Dependencies: dpkg-shlibdeps's (libpqxx among them), adduser for the postinst, ca-certificates for HTTPS.
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
grep -Eq '(^|, )adduser( |,|$)' <<<"$depends" && ok "depends on adduser" || fail "no adduser in Depends"
grep -Eq '(^|, )ca-certificates( |,|$)' <<<"$depends" && ok "depends on ca-certificates" ||
  fail "no ca-certificates in Depends (WeChat Pay's HTTPS needs the system CAs)"
grep -Eq '(^|, )libpqxx-[0-9.]+( |,|$)' <<<"$depends" && ok "depends on libpqxx" || fail "no libpqxx in Depends"
for field in Maintainer Section Description; do
  [ -n "$(dpkg-deb -f "$deb" "$field")" ] && ok "$field is set" || fail "no $field"
done

# Maintainer scripts: present, executable, valid sh; none enables, starts or restarts
# the service (text inside double quotes, such as the postinst's hint, does not count).
dpkg-deb -e "$deb" "$work/control"
for script in postinst prerm postrm; do
  f=$work/control/$script
  if [ ! -f "$f" ]; then fail "no $script in the package"; continue; fi
  [ "$(stat -c %a "$f")" = 755 ] && ok "$script is 0755" || fail "$script has mode $(stat -c %a "$f")"
  sh -n "$f" && ok "$script is valid sh" || fail "$script: sh -n"
  starts=$(sed 's/"[^"]*"//g' "$f" |
           grep -En '(systemctl|deb-systemd-invoke|deb-systemd-helper|invoke-rc\.d|service)[^#]*[[:space:]](enable|start|restart|try-restart|reload-or-restart|unmask)([[:space:]]|$)')
  [ -z "$starts" ] && ok "$script never enables or starts wxrecond" || { fail "$script enables or starts:"; echo "$starts" | sed 's/^/  | /'; }
done
grep -q 'adduser' "$work/control/postinst" && ok "postinst creates the user with adduser" || fail "postinst does not call adduser"

# The packaged binary runs (stripped, with its libraries from the system).
dpkg-deb -x "$deb" "$work/root"
out=$("$work/root/usr/bin/wxrecond" --version 2>&1)
status=$?
if [ "$status" -eq 0 ] && [ "$out" = "wxrecond $version" ]; then
  ok "packaged wxrecond --version: $out"
else
  fail "packaged wxrecond --version: exit $status, \"$out\", expected \"wxrecond $version\""
fi
out=$("$work/root/usr/bin/wxpay-sim" --help 2>&1)
[ $? -eq 0 ] && ok "packaged wxpay-sim --help" || fail "packaged wxpay-sim --help: $out"

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
