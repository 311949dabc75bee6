# x402-Nexus. `make demo` runs the node on the embedded default; `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo run test test-contract test-e2e test-rust lint services check-deploy bench-ingest bench-import bench-ws bench-reconcile bench-relay bench-x402 fmt

## The recorded escrow scenario through a real node (memory + SQLite, no services).
demo:
	$(CARGO) run -q -p nexus-node -- demo

## The node on the embedded default (observer :8403, API :8402).
run:
	$(CARGO) run -q -p nexus-node -- run

## Everything CI runs: contract tests, fixture drift, fuzzing, type-check, Rust gates and tests, end to end, the alert rules.
test: test-contract lint test-rust test-e2e check-deploy

test-contract:
	npm ci --no-audit --no-fund
	npm test
	npm run typecheck
	npm run fixtures:check
	npm run relay-fixtures:check
	npm run x402-fixtures:check
	npm run fuzz

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	CARGO=$(CARGO) scripts/check-core-purity.sh

# Captured stacks-node payloads (third-party data, not in the repository).
NEXUS_CAPTURED_FIXTURES ?= $(abspath ../shared/fixtures/stacks-node-events)
export NEXUS_CAPTURED_FIXTURES

## End to end against the real nexus-node binary: x402-stacks' middleware and client with the chain double;
## the dashboard in Debian's chromium (skipped without it unless NEXUS_REQUIRE_BROWSER=1); the metric names the deploy files use.
test-e2e:
	$(CARGO) build -q -p nexus-node
	npm run test:e2e

test-rust: services
	@if [ ! -d "$(NEXUS_CAPTURED_FIXTURES)" ]; then \
	  if [ "$$NEXUS_REQUIRE_CAPTURED" = 1 ]; then \
	    echo "error: NEXUS_REQUIRE_CAPTURED=1 but no captured stacks-node payloads at $(NEXUS_CAPTURED_FIXTURES)" >&2; exit 1; \
	  fi; \
	  echo "note: no captured stacks-node payloads at $(NEXUS_CAPTURED_FIXTURES): the tests that replay them pass without running (set NEXUS_CAPTURED_FIXTURES to their folder)"; \
	fi
	$(CARGO) test --workspace

services:
	@scripts/ensure-services.sh

## The operator pack's Prometheus rules: syntax and their unit tests (promtool, from Debian's `prometheus`).
check-deploy:
	@if ! command -v promtool >/dev/null; then \
	  echo "note: promtool is not installed (Debian: apt-get install prometheus): the alert rules were not checked"; \
	else \
	  promtool check rules deploy/prometheus/alerts.yml && promtool test rules deploy/prometheus/alerts.test.yml; \
	fi

fmt:
	$(CARGO) fmt --all

## Ingest throughput over loopback into real Redis + PostgreSQL, then the durable floors of the same rows (last line: JSON figures).
bench-ingest: services
	$(CARGO) bench -q -p nexus-node --bench ingest

## 100,000-block TSV import into real Redis + PostgreSQL, plus a 100-deep reorg (last line: JSON figures).
bench-import: services
	$(CARGO) bench -q -p nexus-node --bench import

## WebSocket delivery: 1,000 subscribers' latency per event, then 10,000 subscribers at 1,000 events/s (last line: JSON figures).
bench-ws: services
	ulimit -n $$(ulimit -Hn) && $(CARGO) bench -q -p nexus-node --bench ws
## One reconcile cycle over 10,000 open payments in real Redis + PostgreSQL, RPC double at 2 ms (last line: JSON figures).
bench-reconcile: services
	$(CARGO) bench -q -p nexus-node --bench reconcile
## Sustained POST /api/payments into real Redis + PostgreSQL, RPC double at 1 ms, then replays and a bare-JSON floor (last line: JSON figures).
bench-relay: services
	$(CARGO) bench -q -p nexus-node --bench relay
## x402: /x402/verify per second beside its decode+signature floor, and settle overhead after the confirming block at 100 concurrent settles (last line: JSON figures).
bench-x402:
	$(CARGO) bench -q -p nexus-node --bench x402
