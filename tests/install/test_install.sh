#!/usr/bin/env bash
# make install / uninstall into temporary directories, the unit file through
# `systemd-analyze verify`, and the man pages through groff and man with
# warnings on.  Run from the source root (tests/run.sh does) after `make all`
# (from `make test`, the sub-make inherits the flavour: O=build/asan installs
# the sanitized binaries);
# appends "passed failed" to $TAILOR_TEST_COUNTS like the CUnit programs.
set -u
MAKE=${MAKE:-make}
. tests/install/check.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expected="usr/local/bin/tailorctl
usr/local/lib/systemd/system/tailord.service
usr/local/sbin/tailord
usr/local/share/doc/tailor/examples/tailord.env
usr/local/share/doc/tailor/examples/tailord.yaml
usr/local/share/man/man1/tailorctl.1
usr/local/share/man/man5/tailord.yaml.5
usr/local/share/man/man8/tailord.8
usr/local/share/tailor/schemas/interaction_event.avsc
usr/local/share/tailor/schemas/trigger.avsc"

# 1. The file list under DESTDIR with the default PREFIX, and uninstall.
stage=$tmp/stage
install_list() {
  $MAKE -s install DESTDIR="$stage" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; return 1; }
  local got
  got=$(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
  [ "$got" = "$expected" ] || { echo "installed:"; echo "$got"; echo "expected:"; echo "$expected"; return 1; }
}
check "make install DESTDIR: the full file list" install_list
modes() {
  [ "$(stat -c %a "$stage/usr/local/sbin/tailord")" = 755 ] &&
  [ "$(stat -c %a "$stage/usr/local/share/man/man8/tailord.8")" = 644 ] &&
  [ "$(stat -c %a "$stage/usr/local/lib/systemd/system/tailord.service")" = 644 ]
}
check "modes" modes
unit_paths() {
  local u=$stage/usr/local/lib/systemd/system/tailord.service
  grep -qx 'ExecStart=/usr/local/sbin/tailord -c /etc/tailor/tailord.yaml' "$u" &&
  grep -qx 'EnvironmentFile=-/etc/tailor/tailord.env' "$u" &&
  ! grep -q '@SBINDIR@\|@SYSCONFDIR@' "$u" &&
  grep -qx '  schema: /usr/local/share/tailor/schemas/interaction_event.avsc' \
    "$stage/usr/local/share/doc/tailor/examples/tailord.yaml"
}
check "installed paths in the unit and the example config" unit_paths
uninstall_all() {
  touch "$stage/usr/local/bin/other-tool"
  $MAKE -s uninstall DESTDIR="$stage" >/dev/null 2>&1 || return 1
  local left
  left=$(cd "$stage" && find . -type f | sed 's|^\./||' | sort)
  # Exactly what install wrote is gone, the rest stays.
  [ "$left" = "usr/local/bin/other-tool" ] || { echo "left: $left"; return 1; }
  [ ! -e "$stage/usr/local/share/tailor" ] && [ ! -e "$stage/usr/local/share/doc/tailor" ]
}
check "make uninstall removes exactly those" uninstall_all

# 2. systemd-analyze verify needs the unit's paths to exist: install for real
# into a prefix inside tmp (no DESTDIR), with the configuration there too.
real=$tmp/real
verify_unit() {
  $MAKE -s install PREFIX="$real/usr" SYSCONFDIR="$real/etc" >/dev/null 2>&1 || return 1
  mkdir -p "$real/etc/tailor"
  cp "$real/usr/share/doc/tailor/examples/tailord.yaml" "$real/etc/tailor/"
  local unit=$real/usr/lib/systemd/system/tailord.service out
  # Documentation=man:... is checked too: against the pages just installed.
  out=$(MANPATH="$real/usr/share/man" systemd-analyze verify "$unit" 2>&1)
  local rc=$?
  # Complaints about other units (none here, but the host's may show) are
  # not ours; any line naming tailord.service is.
  if [ $rc -ne 0 ] || echo "$out" | grep -q 'tailord\.service'; then
    echo "$out"; return 1
  fi
  "$real/usr/sbin/tailord" --check -c "$real/etc/tailor/tailord.yaml" >/dev/null
}
check "systemd-analyze verify tailord.service; installed example config checks" verify_unit
verify_can_fail() {
  # The same unit with an ExecStart that does not exist must fail, or the
  # check above proves nothing.
  local unit=$real/usr/lib/systemd/system/tailord.service bad=$tmp/bad/tailord.service
  mkdir -p "$tmp/bad"
  sed "s|^ExecStart=.*|ExecStart=$tmp/nowhere/tailord|" "$unit" > "$bad"
  ! systemd-analyze verify "$bad" >/dev/null 2>&1
}
check "systemd-analyze verify fails on a broken unit" verify_can_fail
hardening() {
  local u=$real/usr/lib/systemd/system/tailord.service k
  for k in Type=notify WatchdogSec=30s 'ExecReload=/bin/kill -HUP $MAINPID' \
           DynamicUser=yes ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes \
           PrivateTmp=yes CapabilityBoundingSet= SystemCallFilter=@system-service; do
    grep -qxF "$k" "$u" || { echo "missing: $k"; return 1; }
  done
}
check "unit: notify, watchdog, reload, hardening" hardening

# 3. Man pages render without warnings.
for page in man/tailord.8 man/tailorctl.1 man/tailord.yaml.5; do
  man_ok() {
    local w
    w=$(groff -ww -z -man "$1" 2>&1; MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null)
    [ -z "$w" ] || { echo "$w"; return 1; }
    # Every command and option of the help is documented.
    return 0
  }
  check "$page renders without warnings" man_ok "$page"
done
documented() {
  local c
  for c in check produce tail show forget reload lag stats; do
    grep -q "^\.BI\? *\"\?$c\b\|^\.BR \"$c \|^\.BI \"$c " man/tailorctl.1 || { echo "tailorctl.1: $c"; return 1; }
    "${TAILOR_BIN_DIR:-daemon}/tailorctl" "$c" --help | grep -q "^usage: tailorctl $c" || { echo "--help: $c"; return 1; }
  done
}
check "every tailorctl command: man entry and --help" documented

finish install
