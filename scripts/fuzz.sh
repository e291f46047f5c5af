#!/usr/bin/env bash
# fuzz.sh [FUZZTIME] — run every Go fuzz target in the module briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
found=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "fuzz: $name in $pkg for $fuzztime"
	go test -tags matprofile -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
	found=$((found + 1))
done < <(git ls-files '*_test.go' | xargs grep -oE '^func (Fuzz[A-Za-z0-9_]+)' | sed -E 's/func //')
echo "fuzz: ran $found targets"
