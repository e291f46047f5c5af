#!/usr/bin/env bash
# demo.sh — run kioskd on the bundled clip against the bundled Incode emulator.
# Expects bin/kioskd and bin/incode-sim (make demo builds them first).
set -euo pipefail
cd "$(dirname "$0")/.."

state=$(mktemp -d "${TMPDIR:-/tmp}/kioskd-demo.XXXXXX")
sim_pid=""
cleanup() {
	if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
	rm -rf "$state"
}
trap cleanup EXIT

# The emulator enrols the astronaut: she passes, and "person B" (the same
# picture with red and blue swapped) is not enrolled and fails.
export KIOSKD_API_KEY=demo-api-key
export KIOSKD_HARDWARE_ID=demo-device-token
bin/incode-sim --listen 127.0.0.1:0 --api-key "$KIOSKD_API_KEY" --device-token "$KIOSKD_HARDWARE_ID" \
	--enroll testdata/enroll >"$state/sim.out" 2>"$state/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do
	grep -q "listening on" "$state/sim.out" 2>/dev/null && break
	sleep 0.1
done
base_url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$state/sim.out" | head -n1)
if [ -z "$base_url" ]; then
	echo "demo: the emulator did not start:" >&2
	cat "$state/sim.log" >&2
	exit 1
fi
echo "demo: Incode emulator at $base_url"

sed -e "s|@BASE_URL@|$base_url|" -e "s|@STATE@|$state|g" scripts/demo.yaml >"$state/kioskd.yaml"
bin/kioskd check-config --config "$state/kioskd.yaml"
echo "demo: running kioskd on testdata/clips/demo.avi"

bin/kioskd run --config "$state/kioskd.yaml" 2>"$state/kioskd.log" &
kioskd_pid=$!
tail -n +1 -f "$state/kioskd.log" --pid "$kioskd_pid" | grep --line-buffered -E '"msg":"(decision|starting|listening|unlock|stopped)' || true
rc=0
wait "$kioskd_pid" || rc=$?

passes=$(grep -c '"msg":"decision".*"result":"PASS"' "$state/kioskd.log" || true)
fails=$(grep -c '"msg":"decision".*"result":"FAIL"' "$state/kioskd.log" || true)
echo "demo: kioskd exited with $rc: $passes PASS, $fails FAIL"
if [ "$rc" -ne 0 ] || [ "$passes" -lt 1 ] || [ "$fails" -lt 1 ]; then
	echo "demo: expected at least one PASS and one FAIL; the full log:" >&2
	cat "$state/kioskd.log" >&2
	exit 1
fi

# The access events of the run, as an integrator would export them.
echo "demo: the access events of this run (kioskd events export):"
bin/kioskd events export --config "$state/kioskd.yaml" | tee "$state/events.jsonl"
recorded=$(grep -c '"kind":"decision"' "$state/events.jsonl" || true)
if [ "$recorded" -lt $((passes + fails)) ]; then
	echo "demo: $((passes + fails)) decisions but $recorded access events" >&2
	exit 1
fi
