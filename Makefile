# pg_lock_exporter — the commands a newcomer needs.
#   make demo    a throwaway PostgreSQL with the seed incident, the exporter naming the root blocker
#   make test    everything CI runs: unit + integration tests (real PostgreSQL), alert and dashboard checks
#   make chart-sync   copy alerts/ and dashboards/ into the Helm chart (after changing them)
#   make fuzz    every libFuzzer target for FUZZ_SECONDS (default 300) each
.PHONY: deps build release test test-swift test-alerts test-packaging test-chart chart-sync test-e2e test-versions test-sanitizers test-fuzz fuzz bench demo clean package mixin
PG_VERSIONS ?= 16 17 18

deps:
	scripts/install-deps

build: deps
	swift build

# Static Swift runtime; lld packs the relocations (DT_RELR, glibc 2.36+), which keeps fewer
# pages of the binary resident. Package.swift links release builds with lld and the function
# order of Sources/pg_lock_exporter/link-order.txt (scripts/link-order). scripts/bench.py builds
# with this target; the Dockerfile the same way.
RELEASE_FLAGS = -c release --static-swift-stdlib -Xlinker -z -Xlinker pack-relative-relocs

release: deps
	swift build $(RELEASE_FLAGS) --product pg_lock_exporter

test: deps
	swift build --build-tests
	swift test --skip-build
	scripts/check_alerts.sh
	$(MAKE) test-packaging
	$(MAKE) test-chart
	$(MAKE) test-e2e
	$(MAKE) test-versions
	$(MAKE) test-sanitizers
	$(MAKE) test-fuzz

# The Debian package and the release tarball (scripts/package): .build/package/. tests/test_package.py
# (in test-e2e) builds them, runs lintian and systemd-analyze, installs, upgrades and purges.
package: deps
	scripts/package

test-swift: deps
	swift test

# The dashboard check reads the metric contract off the built binary (a live scrape).
BINARY = .build/debug/pg_lock_exporter
$(BINARY):
	swift build

test-alerts: $(BINARY)
	scripts/check_alerts.sh

# The Dockerfile and docker-compose.yml by their ecosystems' own checkers, then the wiring no
# schema covers (mounted files exist, roles, promtool/amtool on the mounted configs).
test-packaging:
	hadolint Dockerfile deploy/pgbouncer/Dockerfile
	check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	python3 scripts/check_compose.py

# The Helm chart: helm lint/template per ci/*-values.yaml case, kubernetes-validate, the
# PrometheusRule equal to alerts/ and the dashboard byte for byte, bad values refused, and the
# binary starting with the targets file and web config the chart renders.
test-chart: $(BINARY)
	python3 scripts/check_chart.py

# alerts/ and dashboards/ are the monitoring mixin's output with its defaults (mixin/); after
# changing mixin/, this formats it (jsonnetfmt), renders them again and copies them into the
# chart. check_alerts.sh fails while they differ from what the mixin renders.
mixin:
	jsonnetfmt -i mixin/*.libsonnet mixin/*/*.libsonnet mixin/*.jsonnet tests/rules/*.jsonnet
	scripts/render-mixin .build/mixin
	cp .build/mixin/*.rules.yml alerts/
	cp .build/mixin/*.json dashboards/
	$(MAKE) chart-sync

# Helm reads files only from inside the chart: it keeps copies of the rules and dashboards,
# which test-chart fails on when they differ from alerts/ and dashboards/.
CHART_FILES = deploy/helm/pg-lock-exporter/files
chart-sync:
	rm -f $(CHART_FILES)/alerts/*.rules.yml $(CHART_FILES)/dashboards/*.json
	cp alerts/*.rules.yml $(CHART_FILES)/alerts/
	cp dashboards/*.json $(CHART_FILES)/dashboards/

test-e2e:
	python3 -m pytest -q tests

# The integration suite once more per extra PostgreSQL major (make test runs it on Debian's 15),
# less the suites whose subject is not the server's version, which run once, on 15: the faults
# and deadlines (a stopped, unreachable or full server as the exporter's own deadlines meet it)
# and PgBouncer (the pooler's side, and a join on pg_stat_activity columns every supported major
# has). Every statement the product sends still runs on every major.
VERSION_SKIPS = --skip PgBouncerIntegrationTests --skip FaultIntegrationTests --skip DeadlineIntegrationTests
test-versions: deps
	scripts/pg-versions install $(PG_VERSIONS)
	swift build --build-tests
	@set -e; for v in $(PG_VERSIONS); do \
	  bin=$$(scripts/pg-versions bindir $$v); \
	  echo "== integration tests on PostgreSQL $$v ($$bin)"; \
	  PG_BINDIR=$$bin swift test --skip-build --filter IntegrationTests $(VERSION_SKIPS); \
	done

# AddressSanitizer/LeakSanitizer build of the binary through serve, check, remediate and webhooks.
test-sanitizers:
	scripts/sanitizer-check 500

# libFuzzer with AddressSanitizer over every parser of outside input (Fuzz/Sources/Targets): a
# short pass of each target in make test, FUZZ_SECONDS each with make fuzz (FUZZ_TARGETS to pick).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=
test-fuzz:
	scripts/fuzz 10

fuzz:
	scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Both load shapes at 100, 750 and 2,000 sessions against Debian's postgres_exporter; writes bench/results.md.
bench:
	scripts/install-deps --bench
	python3 scripts/bench.py

demo:
	scripts/demo

clean:
	rm -rf .build .sandbox
