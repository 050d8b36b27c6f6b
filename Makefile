# Makefile of gin-sse-progress. Run `make` for the list of targets.
#
# Three modules: the app (.), the load generator and its yardstick (bench/),
# and the browser tests (e2e/). The app's own needs nothing of the other two.

GO            ?= go
BIN           := bin/gin-sse-progress
GOBIN         := $(shell $(GO) env GOPATH)/bin
LINT_VERSION  := v2.15.0
LINT          := $(GOBIN)/golangci-lint
MODULES       := . bench e2e

# make run listens on 127.0.0.1:3000 unless ADDR or PORT says otherwise.
ADDR ?= $(if $(PORT),,127.0.0.1:3000)

.DEFAULT_GOAL := help
.PHONY: help run run-tls build test soak test-alone e2e screenshot bench microbench cover fuzz fmt fmt-check vet lint tidy check

# help: list the targets
help:
	@awk '/^# [a-z0-9-]+: /{i = index($$0, ": "); printf "  %-10s %s\n", substr($$0, 3, i - 3), substr($$0, i + 2)}' $(MAKEFILE_LIST)

# run: build, then serve the page at http://127.0.0.1:3000 (make run ADDR=:8080, or PORT=8080 make run); Ctrl-C stops it
run: build
	@$(if $(ADDR),ADDR='$(ADDR)' )exec ./$(BIN)

# run-tls: serve HTTPS and HTTP/2 at https://127.0.0.1:3443, with a self-signed certificate it makes in bin/
run-tls: build
	@[ -f bin/localhost.crt ] || ./$(BIN) cert -out bin
	@ADDR='$(or $(TLS_ADDR),127.0.0.1:3443)' exec ./$(BIN) -tls-cert bin/localhost.crt -tls-key bin/localhost.key

# build: build the binary into bin/
build:
	$(GO) build -o $(BIN) .

# test: gofmt and vet, every test of the app and of bench/ with -race, and sse/ alone (installs redis-server if missing)
test: fmt-check vet
	@sh scripts/apt-install.sh redis-server
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'IdleStreamsHoldNoGoroutine' ./handlers # measured without -race, see handlers/stack_test.go
	cd bench && $(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory test-alone

# test-alone: copy sse/ alone into an empty module and test it there, with no network
test-alone:
	@GO="$(GO)" sh scripts/sse-alone.sh

# e2e: the page in headless Chromium against the real server (installs chromium, redis-server if missing)
e2e:
	@sh scripts/apt-install.sh chromium redis-server
	cd e2e && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# screenshot: refresh docs/screenshot.png from the e2e run (a CJK font draws the 中文 button)
screenshot:
	cd e2e && $(GO) test -count=1 -run '^TestScreenshot$$' ./... -args -screenshot=$(CURDIR)/docs/screenshot.png

# bench: load test: CLIENTS streams with a run each, on this server, two of it on Redis, and a bare net/http one
CLIENTS ?= 1000 10000
SERVERS ?= gin-sse-progress redis2 baseline
RATE    ?= 1000
TICK    ?= 1s
bench:
	CLIENTS="$(CLIENTS)" SERVERS="$(SERVERS)" RATE="$(RATE)" TICK="$(TICK)" GO="$(GO)" sh bench/run.sh

# soak: the server under faults for DURATION (default 5m): Redis, three instances behind fault-injecting proxies, hundreds of clients
DURATION ?= 5m
soak: build
	@sh scripts/apt-install.sh redis-server
	cd bench && $(GO) run ./soak -bin ../$(BIN) -duration $(DURATION) -out ../bin/soak.jsonl

# microbench: Go benchmarks of the hot paths, with allocations
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./sse ./handlers

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

# vet: go vet, the app and bench/ (make e2e vets e2e/)
vet:
	$(GO) vet ./...
	cd bench && $(GO) vet ./...

# lint: golangci-lint on every module (installed into GOPATH/bin on first use)
lint: $(LINT)
	@for m in $(MODULES); do echo "lint $$m"; (cd $$m && $(LINT) run ./...) || exit 1; done

$(LINT):
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(LINT_VERSION)

# tidy: tidy go.mod and go.sum of every module
tidy:
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

# check: everything CI runs
check: lint test e2e
