#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/test.sh (make test, make bench): run `go test` against PostgreSQL.
#
# With TEST_DATABASE_URL set, uses that server. Otherwise starts a throwaway cluster in
# /tmp/tenantgraph-test.XXXXXX on a free port and exports TEST_DATABASE_URL for it; the
# cluster and its directory are removed on exit, whether the tests pass, fail or are
# interrupted. The tests make their own databases (internal/platform/dbtest).
#
# The command run is:  go test $GOTEST_ARGS $GOTESTFLAGS $GOTEST_PKGS
#   GOTEST_ARGS  default "-race -count=1"  (make bench replaces it)
#   GOTESTFLAGS  extra flags, e.g. GOTESTFLAGS='-run TestFoo -v' make test
#   GOTEST_PKGS  default "./..."
# Arguments given to this script replace all three.
#
# The whole default suite (no arguments, none of the three variables set) runs twice:
# with prepared statements (or as DATABASE_PREPARED_STATEMENTS says), then with
# DATABASE_PREPARED_STATEMENTS=off; then every fuzz target for FUZZTIME each (default
# 2s; 0 skips them) with scripts/fuzz.sh.
# Exits with go test's status, then fuzz.sh's.
#
# TEST_PGBOUNCER=1 (make test-pgbouncer) runs the suite once, with the test servers'
# pools going through PgBouncer in transaction mode: the script starts Debian's
# pgbouncer (installed as root when missing) on another free port, in front of the
# throwaway cluster, and exports TEST_PGBOUNCER_URL for it (internal/platform/dbtest);
# LISTEN and the tests' administrative connections go straight to PostgreSQL. Prepared
# statements are off (DATABASE_PREPARED_STATEMENTS=off unless set): PgBouncer before 1.21
# cannot keep them in transaction mode. With TEST_DATABASE_URL set, set TEST_PGBOUNCER_URL
# too (a PgBouncer in transaction mode with a wildcard database entry for that server).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

log() { printf 'test: %s\n' "$*" >&2; }

pgbouncer=false
[[ "${TEST_PGBOUNCER:-}" == 1 ]] && pgbouncer=true
full_suite=false
if (($# == 0)) && [[ -z "${GOTEST_ARGS+x}" && -z "${GOTESTFLAGS:-}" && -z "${GOTEST_PKGS:-}" ]]; then
	full_suite=true
fi
if (($# > 0)); then
	args=("$@")
else
	read -r -a a1 <<<"${GOTEST_ARGS--race -count=1}"
	read -r -a a2 <<<"${GOTESTFLAGS:-}"
	read -r -a a3 <<<"${GOTEST_PKGS:-./...}"
	args=("${a1[@]}" "${a2[@]}" "${a3[@]}")
fi

# -race needs cgo and a C compiler.
if [[ " ${args[*]} " == *" -race "* ]] && ! command -v "$(go env CC)" >/dev/null 2>&1; then
	if ((EUID == 0)); then
		log "installing gcc for go test -race (log: /tmp/tenantgraph-apt-gcc.log)"
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev; } \
			</dev/null >/tmp/tenantgraph-apt-gcc.log 2>&1 || { log "error: apt-get install gcc failed"; exit 1; }
	else
		log "error: go test -race needs a C compiler: run 'sudo apt-get install gcc'"
		exit 1
	fi
fi

# The browser test of the explorer (internal/app TestExplorerInBrowser) drives Debian's
# chromium. Installed here when missing and run as root; otherwise that test is skipped
# (and says so), except under CI=true, where a missing chromium fails the run. Not for
# make bench (-run=^$), which runs no test.
find_chromium() { command -v chromium || command -v chromium-browser || command -v google-chrome || command -v google-chrome-stable; }
if [[ " ${args[*]} " != *" -run=^$ "* ]] && ! find_chromium >/dev/null 2>&1; then
	if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
		log "installing chromium for the browser test (log: /tmp/tenantgraph-apt-chromium.log)"
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			-o DPkg::Lock::Timeout=300 chromium; } </dev/null >/tmp/tenantgraph-apt-chromium.log 2>&1 ||
			log "apt-get install chromium failed (see /tmp/tenantgraph-apt-chromium.log)"
	fi
	if ! find_chromium >/dev/null 2>&1; then
		if [[ "${CI:-}" == true ]]; then
			log "error: CI=true needs chromium for the browser test of the explorer, and it could not be installed"
			exit 1
		fi
		log "WARNING: no chromium: the browser test of the explorer (TestExplorerInBrowser) will be SKIPPED."
		log "WARNING: install it to run it: sudo apt-get install chromium"
	fi
fi

tmp=""
gotest_pid=""

stop_gotest() {
	local sig=${1:-TERM} i
	[[ -n "$gotest_pid" ]] || return 0
	if kill -0 "$gotest_pid" 2>/dev/null; then
		# go test and the test binaries share a process group of their own.
		kill -s "$sig" -- "-$gotest_pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$gotest_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$gotest_pid" 2>/dev/null || true
	fi
	wait "$gotest_pid" 2>/dev/null || true
	gotest_pid=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_gotest TERM
	if [[ -n "$tmp" ]]; then
		pgb_stop "$tmp/pgbouncer" || true
		pg_stop "$tmp/data" immediate || true
		rm -rf "$tmp"
		log "removed $tmp"
	fi
	exit "$rc"
}

on_signal() {
	log "got SIG$1: stopping"
	stop_gotest "$1"
	[[ "$1" == INT ]] && exit 130
	exit 143
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
	log "using TEST_DATABASE_URL from the environment"
else
	# shellcheck source=scripts/pg.sh
	source "$REPO/scripts/pg.sh"
	pg_find_bin
	pg_setup_user
	tmp=$(mktemp -d /tmp/tenantgraph-test.XXXXXX)
	pg_prepare_dir "$tmp" || pg_die "user $PG_USER cannot use $tmp"
	pg_init "$tmp/data" test
	port=$(pg_free_port)
	pg_start "$tmp/data" "$port" "$tmp/sock" test || exit 1
	export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	if $pgbouncer && [[ -z "${TEST_PGBOUNCER_URL:-}" ]]; then
		pgb_find_bin
		bport=$(pg_free_port)
		pgb_start "$tmp/pgbouncer" "$port" "$bport" || exit 1
		export TEST_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$bport/postgres?sslmode=disable"
	fi
fi
if $pgbouncer; then
	if [[ -z "${TEST_PGBOUNCER_URL:-}" ]]; then
		log "error: TEST_DATABASE_URL is set but TEST_PGBOUNCER_URL is not: set it to a PgBouncer in transaction mode in front of that server"
		exit 1
	fi
	export DATABASE_PREPARED_STATEMENTS=${DATABASE_PREPARED_STATEMENTS:-off}
	log "pools through PgBouncer (TEST_PGBOUNCER_URL), DATABASE_PREPARED_STATEMENTS=$DATABASE_PREPARED_STATEMENTS"
fi

# run_gotest [VAR=value...]: go test "${args[@]}" with those variables set.
run_gotest() {
	log "go test ${args[*]}${*:+ (with $*)}"
	# go test runs in a process group of its own (set -m), so that an interrupt reaches
	# it through this script exactly once and the cluster is stopped after it.
	set -m
	env "$@" go test "${args[@]}" </dev/null &
	gotest_pid=$!
	set +m
	local rc=0
	wait "$gotest_pid" || rc=$?
	gotest_pid=""
	return "$rc"
}

rc=0
run_gotest || rc=$?
# The whole suite runs a second time with prepared statements off, as a server
# behind PgBouncer in transaction mode runs (DATABASE_PREPARED_STATEMENTS, docs/configuration.md).
if ((rc == 0)) && $full_suite && ! $pgbouncer && [[ "${DATABASE_PREPARED_STATEMENTS:-on}" != off ]]; then
	run_gotest DATABASE_PREPARED_STATEMENTS=off || rc=$?
fi
if ((rc == 0)) && $full_suite && ! $pgbouncer && [[ "${FUZZTIME:-2s}" != 0 ]]; then
	FUZZTIME=${FUZZTIME:-2s} bash "$REPO/scripts/fuzz.sh" </dev/null || rc=$?
fi
exit "$rc"
