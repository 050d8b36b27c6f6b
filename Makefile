# Makefile of gin-sse-progress. Run `make` for the list of targets.

GO            ?= go
ADDR          ?= 127.0.0.1:3000
BIN           := bin/gin-sse-progress
GOBIN         := $(shell $(GO) env GOPATH)/bin
LINT_VERSION  := v2.15.0
LINT          := $(GOBIN)/golangci-lint

.DEFAULT_GOAL := help
.PHONY: help run build test e2e screenshot bench microbench cover fuzz fmt fmt-check vet lint tidy check

# help: list the targets
help:
	@awk '/^# [a-z0-9-]+: /{i = index($$0, ": "); printf "  %-10s %s\n", substr($$0, 3, i - 3), substr($$0, i + 2)}' $(MAKEFILE_LIST)

# run: serve the page at http://$(ADDR) (override: make run ADDR=:8080)
run:
	$(GO) run . -addr $(ADDR)

# build: build the binary into bin/
build:
	$(GO) build -o $(BIN) .

# test: gofmt and vet checks, then every test with the race detector (installs redis-server if missing)
test: fmt-check vet
	@sh scripts/apt-install.sh redis-server
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'StackStaysSmall' ./handlers # measured without -race, see handlers/stack_test.go

# e2e: the page in headless Chromium against the real server (installs chromium, redis-server if missing)
e2e:
	@sh scripts/apt-install.sh chromium redis-server
	$(GO) test -tags e2e -race -count=1 ./e2e

# screenshot: refresh docs/screenshot.png from the e2e run (a CJK font draws the 中文 button)
screenshot:
	$(GO) test -tags e2e -count=1 -run '^TestScreenshot$$' ./e2e -args -screenshot=$(CURDIR)/docs/screenshot.png

# bench: load test: CLIENTS streams with a run each, on this server, two of it on Redis, and a bare net/http one
CLIENTS ?= 1000 10000
SERVERS ?= gin-sse-progress redis2 baseline
RATE    ?= 1000
TICK    ?= 1s
bench:
	CLIENTS="$(CLIENTS)" SERVERS="$(SERVERS)" RATE="$(RATE)" TICK="$(TICK)" GO="$(GO)" sh scripts/bench.sh

# microbench: Go benchmarks of the hot paths, with allocations
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./sse

# cover: tests with coverage, summary per function
cover:
	$(GO) test -race -count=1 -coverprofile=cover.out ./...
	$(GO) tool cover -func=cover.out | tail -n 1

# fuzz: fuzz each target for FUZZTIME (default 30s); the corpus in sse/testdata runs in make test
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzEventRoundTrip$$' -fuzztime $(FUZZTIME) ./sse
	$(GO) test -run '^$$' -fuzz '^FuzzCommentAndRetry$$' -fuzztime $(FUZZTIME) ./sse

# fmt: format the code
fmt:
	gofmt -s -w .

# fmt-check: fail if any file needs gofmt
fmt-check:
	@out=$$(gofmt -s -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# vet: go vet, the e2e tests included
vet:
	$(GO) vet -tags e2e ./...

# lint: golangci-lint (installed into GOPATH/bin on first use)
lint: $(LINT)
	$(LINT) run ./...

$(LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)

# tidy: tidy go.mod and go.sum
tidy:
	$(GO) mod tidy

# check: everything CI runs
check: lint test
