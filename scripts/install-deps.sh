#!/usr/bin/env bash
# install-deps.sh [build|test|all] — install the Debian 12 packages kioskd needs.
#
#   build  what building kioskd and running the demo need (default)
#   test   build plus what `make test` needs (chromium, promtool, systemd-analyze)
#
# It installs only what is missing and prints what it installs; with nothing
# missing it does nothing. Works as root or through sudo.
set -euo pipefail

group=${1:-build}

build_pkgs=(gcc g++ make pkg-config git ca-certificates libopencv-dev opencv-data gstreamer1.0-plugins-base)
test_pkgs=(chromium prometheus systemd mosquitto socat lintian qemu-user-static crossbuild-essential-arm64 cage)

case "$group" in
build) want=("${build_pkgs[@]}") ;;
test | all) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*)
	echo "usage: $0 [build|test|all]" >&2
	exit 2
	;;
esac

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

go_ok() {
	command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || return 1
	local gobin v
	gobin=$(command -v go || echo /usr/local/go/bin/go)
	v=$("$gobin" env GOVERSION 2>/dev/null | sed 's/^go//')
	# Needs Go 1.26 or newer.
	[ "$(printf '%s\n1.26\n' "$v" | sort -V | head -n1)" = "1.26" ]
}
if ! go_ok; then
	echo "install-deps: Go 1.26 or newer is required (expected at /usr/local/go/bin or on PATH)." >&2
	echo "install-deps: Debian 12's golang package is too old; install Go from your usual source." >&2
	exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package installs from starting services (prometheus would start one).
policy_rc=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy_rc" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy_rc" >/dev/null
	"${SUDO[@]}" chmod 0755 "$policy_rc"
	created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy_rc"; fi; }
trap cleanup EXIT

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
