# pg_lock_exporter — the commands a newcomer needs.
#   make demo    a throwaway PostgreSQL with the seed incident, the exporter naming the root blocker
#   make test    everything CI runs: unit + integration tests (real PostgreSQL), alert and dashboard checks
.PHONY: deps build release test test-swift test-alerts test-e2e demo clean

deps:
	scripts/install-deps

build: deps
	swift build

release: deps
	swift build -c release --static-swift-stdlib

test: deps
	swift build --build-tests
	swift test --skip-build
	scripts/check_alerts.sh
	$(MAKE) test-e2e

test-swift: deps
	swift test

test-alerts:
	scripts/check_alerts.sh

test-e2e:
	@if [ -d tests ]; then python3 -m pytest -q tests; fi

demo:
	scripts/demo

clean:
	rm -rf .build .sandbox
