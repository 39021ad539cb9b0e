# tenantgraph — developer commands. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help run test test-pgbouncer fuzz docs-check bench loadtest audit-http lint generate build explorer-assets clean

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z_-]*:.*## / { printf "  make %-15s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: explorer-assets ## Run the server on a local PostgreSQL kept in .data/ (port PGPORT_DEV=54329), or on DATABASE_URL
	@bash scripts/run.sh

test: explorer-assets ## Run all tests (-race) on a throwaway PostgreSQL, or on TEST_DATABASE_URL, then each fuzz target 2 s; extra flags: GOTESTFLAGS='-run X -v'
	@bash scripts/test.sh

test-pgbouncer: explorer-assets ## Run all tests (-race) with the servers' pools through PgBouncer in transaction mode (Debian's pgbouncer, started on a free port), prepared statements off
	@TEST_PGBOUNCER=1 bash scripts/test.sh

fuzz: ## Run each Go fuzz target for FUZZTIME (default 1m); FUZZ_PKGS='./internal/platform/page' narrows
	@bash scripts/fuzz.sh

docs-check: ## Run the docs' walk-throughs (README's tour, docs/walkthroughs/*.md) on a throwaway server and PostgreSQL; fail when their output differs
	@bash scripts/docs-check.sh

bench: explorer-assets ## Run the benchmarks on a throwaway PostgreSQL; extra flags: GOTESTFLAGS='-benchtime 2s'
	@GOTEST_ARGS='-run=^$$ -bench=. -benchmem -count=1' bash scripts/test.sh

loadtest: ## Measure a built server on a throwaway PostgreSQL from another process (SCENARIO=credential-flood|dashboard|me|organization|customers|orders|orders-hot|all|subscriptions|fairness; LOADTEST_ARGS, SERVER_ENV; BASE=<git ref> alternates that commit's server with this one)
	@bash scripts/loadtest.sh

audit-http: ## GraphQL-over-HTTP audit (npm graphql-http) of /query on a throwaway server and PostgreSQL
	@bash scripts/audit-http.sh

lint: ## no tracked file over 1 MiB, gofmt, go vet, and check that go generate leaves the tree unchanged
	@echo "lint: no tracked file over 1 MiB"
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' -- 2>/dev/null | awk '$$1 > 1048576'); \
	 if [[ -n "$$big" ]]; then \
	   echo "lint: these tracked files are over 1 MiB (bytes, path); keep binaries and data out of git:"; \
	   echo "$$big"; exit 1; \
	 fi
	@echo "lint: gofmt -l ."
	@out=$$(gofmt -l .); if [[ -n "$$out" ]]; then echo "lint: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	@echo "lint: go vet ./..."
	@go vet ./...
	@echo "lint: go generate ./... (must change nothing)"
	@state() { git status --porcelain=v1 -uall; git diff --binary; \
	           git ls-files -z --others --exclude-standard | xargs -0 -r sha256sum; }; \
	 before=$$(state | sha256sum); \
	 go generate ./...; \
	 if [[ "$$(state | sha256sum)" != "$$before" ]]; then \
	   echo "lint: go generate changed the tree; run 'make generate' and commit the result:"; \
	   git status --porcelain=v1 -uall; git --no-pager diff; exit 1; \
	 fi

generate: ## Regenerate code (go generate ./...)
	go generate ./...

build: explorer-assets ## Build the server to bin/tenantgraph
	go build -o bin/tenantgraph .

explorer-assets: ## Fetch the explorer's GraphiQL/React files (pinned versions and sha256) from npm into internal/platform/explorer/dist/; run, test, test-pgbouncer, bench, build do it first
	@bash scripts/explorer-assets.sh

# run.sh keeps the cluster in /var/tmp/tenantgraph-dev-* when the postgres user cannot reach .data/.
DEV_ALT = /var/tmp/tenantgraph-dev-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)

clean: ## Stop the development PostgreSQL and remove .data/ and bin/
	@source scripts/pg.sh; for d in .data/postgres "$(DEV_ALT)/postgres"; do \
	   if [[ -f "$$d/postmaster.pid" ]]; then pg_stop "$$d"; fi; \
	 done
	rm -rf .data bin "$(DEV_ALT)"
