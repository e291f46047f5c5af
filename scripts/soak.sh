#!/usr/bin/env bash
# soak.sh DURATION — run kioskd on a looping clip against the emulator with
# scripted answers and faults for DURATION (e.g. 30m) and report memory,
# goroutines, file descriptors and queue file size at start, after warm-up
# and at the end (bench/soak.json). Expects bin/kioskd and bin/incode-sim.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30m}
mkdir -p out/bench bench
go build -o out/bench/benchrun ./internal/benchrun
exec out/bench/benchrun soak -duration "$duration" -out bench/soak.json
