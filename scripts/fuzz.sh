#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] — run every Go fuzz target in the module briefly.
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# when -fuzztime runs out while a worker is mid-call, with no failing input
# (go.dev/issue/75804, fixed in Go 1.27). Such a run is tried again, up
# to three times in all; a failure that writes a reproducer under
# testdata/fuzz, or any other failure, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
found=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() {
	go test -tags matprofile -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$out"
	return "${PIPESTATUS[0]}"
}
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	corpus=$(dirname "$file")/testdata/fuzz/$name
	echo "fuzz: $name in $pkg for $fuzztime"
	before=$(find "$corpus" -type f 2>/dev/null | sort || true)
	for try in 1 2 3; do
		if run "$pkg" "$name"; then
			break
		fi
		after=$(find "$corpus" -type f 2>/dev/null | sort || true)
		if [ "$try" = 3 ] || [ "$before" != "$after" ] || ! grep -qx '    context deadline exceeded' "$out"; then
			echo "fuzz: $name failed" >&2
			exit 1
		fi
		echo "fuzz: $name: the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input; once more"
	done
	found=$((found + 1))
done < <(git ls-files '*_test.go' | xargs grep -oE '^func (Fuzz[A-Za-z0-9_]+)' | sed -E 's/func //')
echo "fuzz: ran $found targets"
