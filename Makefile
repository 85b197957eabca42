# Flowyard. `make run` starts everything embedded; `make test` is the one test command.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TEMPORAL_VERSION := v1.5.1
STRIPE_MOCK_VERSION := v0.203.0
# The linters `make lint` runs, at pinned versions (go run builds each once and keeps it in Go's cache).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
WORKFLOWCHECK := go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
TEST_TIMEOUT ?= 30m
export PATH := $(BIN):$(PATH)

.PHONY: all build run test test-crash web-test-deps sandbox-deps broker-deps bench lint fuzz clean tools

all: build

build: bin/flowyard bin/flowyard-agent bin/temporal

bin/flowyard: FORCE
	$(GO) build -o $@ ./cmd/flowyard

bin/flowyard-agent: FORCE
	@if [ -d cmd/flowyard-agent ]; then $(GO) build -o $@ ./cmd/flowyard-agent; fi

# The Temporal CLI dev server: built once from the Go module proxy (about 5 minutes on 2 cores).
bin/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)

# Stripe's mock API server, which the billing tests start (seconds to build).
bin/stripe-mock:
	GOBIN=$(BIN) $(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

tools: bin/temporal bin/stripe-mock

run: build
	./bin/flowyard dev

# Runs every test: SQLite and Postgres stores (Postgres where reachable; FLOWYARD_REQUIRE_POSTGRES=1 makes it
# mandatory), the Temporal dev server, real Node-RED (installed with npm on first use).
# `make lint` runs first (CI runs `make test`, so CI lints too).
test: tools bin/stripe-mock web-test-deps sandbox-deps broker-deps lint
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

# The crash tests alone: SIGKILL of the platform (`flowyard dev`, a worker process) in the middle of provisioning,
# a rollback, a promotion and a rollout, and Postgres restarts under load. `make test` runs them too (./...).
CRASH_PKGS := ./api ./platform
test-crash: bin/temporal
	$(GO) test -timeout $(TEST_TIMEOUT) -count=1 -run '^TestCrash' $(CRASH_PKGS)

# The web dashboard's browser tests (platform/dashboard_browser_test.go) drive Debian's chromium with
# playwright-core from npm: both are installed here when missing, so `make test` works on a fresh machine.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
web-test-deps: web/e2e/node_modules/.package-lock.json
	@[ -x $(CHROMIUM) ] || $(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

# Local instances run in bubblewrap sandboxes (drivers/local/sandbox.go), and the red-team tests insist on them:
# Debian's bubblewrap is installed here when bwrap is missing.
sandbox-deps:
	@command -v bwrap >/dev/null || $(SUDO) apt-get install -y bubblewrap || { $(SUDO) apt-get update && $(SUDO) apt-get install -y bubblewrap; }

# The external broker mode's tests (broker, broker/mosquitto, platform) start throwaway Mosquitto brokers with the
# dynamic-security plugin: Debian's mosquitto is installed here when missing.
broker-deps:
	@command -v mosquitto_ctrl >/dev/null || $(SUDO) apt-get install -y mosquitto || { $(SUDO) apt-get update && $(SUDO) apt-get install -y mosquitto; }

web/e2e/node_modules/.package-lock.json: web/e2e/package.json web/e2e/package-lock.json
	cd web/e2e && npm ci --no-audit --no-fund

# gofmt, a tidy go.mod, go vet, staticcheck (its default checks, unused code included) and Temporal's
# workflowcheck (non-deterministic calls reachable from a workflow function).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(WORKFLOWCHECK) ./...

# Fuzz every decoder of outside input for $(FUZZTIME) each: API bodies, deployed flows, device state reports
# (HTTP and MQTT status), MQTT topics and replies, snapshot import, Stripe webhooks, Node-RED credentials, the
# validators, list cursors, the editor proxy's paths. The seed corpora (testdata/fuzz/<FuzzName>) run as plain
# tests in `make test`.
FUZZTIME ?= 30s
# Minimising each new interesting input by time stalls short runs on large seeds; a bounded number of tries does not.
FUZZMINIMIZE ?= 200x
FUZZ_TARGETS := ./api:FuzzDecodeJSON ./api:FuzzDeployFlows ./devices:FuzzParseReport ./broker:FuzzDeviceMessages \
	./snapshots:FuzzImportSnapshot ./billing:FuzzStripeWebhook ./nodered:FuzzDecryptCredentials ./domain:FuzzValidators \
	./storage:FuzzDecodeCursor ./api:FuzzEditorPath
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} ($${t%%:*})"; \
		$(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE); \
	done

bench: build
	./bench/run.sh

clean:
	rm -rf bin data

FORCE:
