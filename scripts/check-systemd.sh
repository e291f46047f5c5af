#!/usr/bin/env bash
# check-systemd.sh [KIOSKD_BINARY] — check systemd/kioskd.service:
#   1. `systemd-analyze verify` prints nothing (a clean unit);
#   2. `systemd-analyze security --offline=true` rates it at most $MAX_EXPOSURE
#      (default 2.5); the score is printed;
#   3. `systemd-analyze verify` is clean for the kiosk screen's unit,
#      systemd/kioskd-kiosk.service (cage and chromium must be installed:
#      verify checks that ExecStart's programs exist).
# verify insists that ExecStart's binary exists, so it runs on a copy of the
# unit whose ExecStart points at KIOSKD_BINARY (default: bin/kioskd when
# built, else /bin/true). Exits non-zero on any failure. Runs unprivileged or
# as root, without a running systemd (as in a container or CI).
set -euo pipefail
cd "$(dirname "$0")/.."

unit=${UNIT:-systemd/kioskd.service}
max=${MAX_EXPOSURE:-2.5}

if ! command -v systemd-analyze >/dev/null; then
	echo "check-systemd: systemd-analyze is missing (apt-get install systemd; scripts/install-deps.sh test does it)" >&2
	exit 1
fi

bin=${1:-}
if [[ -z $bin ]]; then
	if [[ -x bin/kioskd ]]; then bin=$PWD/bin/kioskd; else bin=/bin/true; fi
fi
bin=$(readlink -f "$bin")
[[ -x $bin ]] || { echo "check-systemd: $bin is not executable" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Same file name, so the unit name in messages is kioskd.service.
sed -E "s|^ExecStart=/usr/local/bin/kioskd( .*)?$|ExecStart=$bin\\1|" "$unit" >"$tmp/kioskd.service"
if ! grep -q "^ExecStart=$bin" "$tmp/kioskd.service"; then
	echo "check-systemd: ExecStart=/usr/local/bin/kioskd ... not found in $unit" >&2
	exit 1
fi

status=0
echo "check-systemd: systemd-analyze verify $unit (ExecStart=$bin)"
# verify exits 0 on many warnings; anything it prints is a finding.
if ! out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$tmp/kioskd.service" 2>&1); then
	status=1
fi
if [[ -n $out ]]; then
	printf '%s\n' "$out" | sed "s|$tmp/|systemd/|g" >&2
	status=1
fi
if ((status)); then
	echo "check-systemd: verify FAILED" >&2
else
	echo "check-systemd: verify clean"
fi

kiosk=${KIOSK_UNIT:-systemd/kioskd-kiosk.service}
kiosk_abs=$(readlink -f "$kiosk")
echo "check-systemd: systemd-analyze verify $kiosk"
if ! kout=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$kiosk_abs" 2>&1) || [[ -n $kout ]]; then
	printf '%s\n' "$kout" >&2
	echo "check-systemd: verify of $kiosk FAILED" >&2
	status=1
else
	echo "check-systemd: verify of $kiosk clean"
fi

echo "check-systemd: systemd-analyze security --offline=true $unit"
sec=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
# The findings that still count against the unit, for the log.
printf '%s\n' "$sec" | grep '✗' || true
score=$(printf '%s\n' "$sec" | sed -nE 's/.*Overall exposure level for [^:]+: ([0-9]+\.[0-9]+).*/\1/p' | tail -1)
if [[ -z $score ]]; then
	printf '%s\n' "$sec" >&2
	echo "check-systemd: no exposure score in the output of systemd-analyze security" >&2
	exit 1
fi
if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	echo "check-systemd: exposure $score (limit $max): ok"
else
	echo "check-systemd: exposure $score is above the limit $max" >&2
	status=1
fi
exit $status
