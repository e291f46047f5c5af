#!/usr/bin/env bash
# check-alerts.sh — check systemd/kioskd-alerts.yml with promtool (Debian's
# prometheus package): the rules parse and lint clean, and the unit tests in
# systemd/kioskd-alerts.test.yml pass (each alert firing and not firing).
set -euo pipefail
cd "$(dirname "$0")/../systemd"

if ! command -v promtool >/dev/null; then
	echo "check-alerts: promtool is missing (apt-get install --no-install-recommends prometheus; scripts/install-deps.sh test does it)" >&2
	exit 1
fi
promtool --version 2>&1 | head -1
echo "check-alerts: promtool check rules kioskd-alerts.yml"
promtool check rules kioskd-alerts.yml
echo "check-alerts: promtool test rules kioskd-alerts.test.yml"
promtool test rules kioskd-alerts.test.yml
echo "check-alerts: ok"
