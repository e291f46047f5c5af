#!/usr/bin/env bash
# bench.sh — every figure the issues ask for, as one table, written to
# bench/results.json (the previous one is shown alongside for comparison).
# Expects bin/kioskd and bin/incode-sim (make bench builds them first).
# Extra arguments go to benchrun, e.g. scripts/bench.sh -skip go,queue
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out/bench bench
prev=()
if [ -f bench/results.json ]; then
	cp bench/results.json out/bench/previous.json
	prev=(-compare out/bench/previous.json)
fi
go build -o out/bench/benchrun ./internal/benchrun
exec out/bench/benchrun bench -out bench/results.json "${prev[@]}" "$@"
