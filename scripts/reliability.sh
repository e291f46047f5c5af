#!/usr/bin/env bash
# reliability.sh — run kioskd's fault, bad-input and security end-to-end
# tests and regenerate docs/reliability.md from what they observed.
#
#   scripts/reliability.sh          the cases of make test (about two minutes)
#   scripts/reliability.sh --soak   the long SIGKILL run (KIOSKD_KILL_ROUNDS,
#                                   default 200) into the document's soak section
#
# The document is rewritten even when a case fails (it then says FAILED);
# the script exits non-zero in that case.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

pattern='TestServiceFaults|TestCameraUnplugged|TestCameraFolderRemoved|TestCameraStall|TestCameraSlow|TestCameraBlackAndEmptyFrames|TestDiskFaults|TestKillDuringBusyRun|TestBadImagesInTheCamera|TestBadImagesInSnapshot|TestHostileSecretFiles|TestNoSecretsOrImagesInOutput|TestDeferredAnswerNeverUnlocks|TestLatePassDoesNotUnlock|TestAttemptCapSurvivesRestart|TestLobbyIsNeverLockedOut|TestLatePassGetsItsWholePulse|TestGreetingWithoutANameObject|TestDrainerHonoursRetryAfter|TestDrainerOneRequestPerTry|TestHTTPSurfacesAreLocalAndGuarded|TestCameraRTSPNeverAnswers|TestDescriptorFloodKeepsTheDoor|TestKioskScreenNotStarved|TestQueueFileIsNotAWeapon|TestEventsOnLiveDaemonAndAfterSIGKILL|TestDeliveredFacesLeaveTheQueueFile|TestPanelOSDP'
command="scripts/reliability.sh"
timeout=15m
case "${1:-}" in
--soak)
	pattern='TestKillDuringBusyRun'
	export KIOSKD_KILL_ROUNDS="${KIOSKD_KILL_ROUNDS:-200}"
	command="scripts/reliability.sh --soak (KIOSKD_KILL_ROUNDS=$KIOSKD_KILL_ROUNDS)"
	timeout=3h
	;;
"") ;;
*)
	echo "usage: scripts/reliability.sh [--soak]" >&2
	exit 2
	;;
esac

obs=$(mktemp "${TMPDIR:-/tmp}/kioskd-reliability.XXXXXX")
trap 'rm -f "$obs"' EXIT
export KIOSKD_RELIABILITY_OUT="$obs"

start=$(date +%s)
status=0
go test -count=1 -timeout "$timeout" -run "^($pattern)\$" ./e2e/ || status=$?
seconds=$(($(date +%s) - start))

go run ./internal/reliability/render -in "$obs" -command "$command" -seconds "$seconds" \
	-commit "$(git describe --always --dirty 2>/dev/null || echo unknown)"
exit "$status"
