# kioskd — make demo | make test | make bench | make soak
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin
GO_TEST_TIMEOUT ?= 25m
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.6.1
FUZZTIME ?= 5s
DURATION ?= 30m
OUT ?= out
# Screenshots of the kiosk page and other artefacts of the end-to-end tests.
KIOSKD_TEST_OUT ?= $(abspath $(OUT))/test

.PHONY: all deps deps-test build demo test unit race lint fuzz check-systemd check-alerts bench soak reliability screens deb package-test clean

all: build

# Install only what is missing (idempotent; root or sudo).
deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

build: deps
	@mkdir -p $(BIN)
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/kioskd ./cmd/kioskd
	go build -ldflags "$(LDFLAGS)" -o $(BIN)/incode-sim ./cmd/incode-sim

# Run the whole agent against the bundled emulator on the bundled clip, or
# at a desk: make demo CAMERA=/dev/video0 ENROLL=DIR (a folder of selfies).
demo: build
	@CAMERA=$(CAMERA) ENROLL=$(ENROLL) scripts/demo.sh

# Every test: unit, end-to-end, browser, fuzz (briefly), lint, systemd and alert rules.
test: deps-test lint unit race fuzz check-systemd check-alerts
	@echo "make test: all checks passed"

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet -tags matprofile ./...
	go run $(STATICCHECK) -tags matprofile ./...

unit:
	KIOSKD_TEST_OUT=$(KIOSKD_TEST_OUT) go test -tags matprofile -count=1 -timeout $(GO_TEST_TIMEOUT) ./...

# The race detector over the packages with goroutines of their own, in
# short mode to keep make test fast. The headless-browser test of the kiosk
# page is left to the plain run: under the race detector Chromium's timing,
# not kioskd's code, decides it.
RACE_PKGS := ./agent/ ./decision/ ./queue/ ./uploader/ ./actuator/ ./display/ ./internal/httpserve/ ./internal/backoff/ ./panel/... ./credentials/
race:
	go test -race -short -tags matprofile -count=1 -timeout $(GO_TEST_TIMEOUT) -skip '^TestBrowser' $(RACE_PKGS)

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

check-systemd:
	@scripts/check-systemd.sh

check-alerts:
	@scripts/check-alerts.sh

# Debian packages for amd64 and arm64 into out/deb (arm64 is cross-built
# against a sysroot cached in ~/.cache/kioskd/arm64-sysroot; see README "Installing").
deb: deps-test
	@scripts/deb.sh amd64 $(OUT)/deb
	@scripts/deb.sh arm64 $(OUT)/deb

# Build both packages, lintian, arm64 under qemu-user, and install, upgrade,
# downgrade, remove and purge on this machine (root). CI runs it after make test.
package-test: deps-test
	@scripts/package-test.sh

# docs/screens.md and its pictures, from the browser test of every screen.
screens: deps-test
	KIOSKD_TEST_OUT=$(KIOSKD_TEST_OUT) KIOSKD_SCREENS_DOCS=$(abspath docs) go test -tags matprofile -count=1 -run 'TestScreens$$' ./display/

# Benchmarks: prints the tables the issues ask for and writes bench/results.json.
bench: build
	@scripts/bench.sh

soak: build
	@scripts/soak.sh $(DURATION)

# The fault, bad-input and security matrix: reruns those end-to-end tests and
# rewrites docs/reliability.md (scripts/reliability.sh --soak for the long run).
reliability: deps-test
	@scripts/reliability.sh

clean:
	rm -rf $(BIN) $(OUT)
