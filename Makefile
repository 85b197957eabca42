# Flowyard. `make run` starts everything embedded; `make test` is the one test command.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
TEMPORAL_VERSION := v1.5.1
STRIPE_MOCK_VERSION := v0.203.0
TEST_TIMEOUT ?= 30m
export PATH := $(BIN):$(PATH)

.PHONY: all build run test test-short bench lint fuzz clean tools

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
test: tools bin/stripe-mock
	$(GO) vet ./...
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Fuzz every decoder of outside input for $(FUZZTIME) each: API bodies, deployed flows, device state reports
# (HTTP and MQTT status), MQTT topics and replies, snapshot import, Stripe webhooks, Node-RED credentials, the
# validators, list cursors. The seed corpora (testdata/fuzz/<FuzzName>) run as plain tests in `make test`.
FUZZTIME ?= 30s
# Minimising each new interesting input by time stalls short runs on large seeds; a bounded number of tries does not.
FUZZMINIMIZE ?= 200x
FUZZ_TARGETS := ./api:FuzzDecodeJSON ./api:FuzzDeployFlows ./devices:FuzzParseReport ./comms:FuzzDeviceMessages \
	./snapshots:FuzzImportSnapshot ./billing:FuzzStripeWebhook ./nodered:FuzzDecryptCredentials ./domain:FuzzValidators \
	./storage:FuzzDecodeCursor
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
