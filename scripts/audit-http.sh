#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/audit-http.sh (make audit-http): GraphQL-over-HTTP compliance audit.
#
# Builds the server, starts it (APP_ENV=development) on a throwaway PostgreSQL cluster
# in /tmp/tenantgraph-audit.XXXXXX, installs the pinned graphql-http audit suite
# (test/graphql-http, npm ci) and runs it against /query. Fails on any audit error or
# warning. The server, the cluster and the directory are removed whatever the outcome.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

log() { printf 'audit-http: %s\n' "$*" >&2; }

command -v npm >/dev/null 2>&1 || { log "error: npm (Node.js 18 or later) is needed: apt-get install nodejs npm"; exit 1; }

# shellcheck source=scripts/pg.sh
source "$REPO/scripts/pg.sh"

tmp=""
server_pid=""

stop_server() {
	local i
	[[ -n "$server_pid" ]] || return 0
	if kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null || true
	fi
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server
	if [[ -n "$tmp" ]]; then
		if ((rc != 0)) && [[ -s "$tmp/server.log" ]]; then
			log "server log (last 40 lines):"
			tail -n 40 "$tmp/server.log" >&2 || true
		fi
		pg_stop "$tmp/data" immediate || true
		rm -rf "$tmp"
		log "removed $tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_find_bin
pg_setup_user
tmp=$(mktemp -d /tmp/tenantgraph-audit.XXXXXX)
pg_prepare_dir "$tmp" || pg_die "user $PG_USER cannot use $tmp"
pg_init "$tmp/data" test
pgport=$(pg_free_port)
pg_start "$tmp/data" "$pgport" "$tmp/sock" test || exit 1
pg_createdb "$pgport" tenantgraph

log "building the server"
go build -o "$tmp/tenantgraph" .

httpport=$(pg_free_port)
url="http://127.0.0.1:$httpport/query"
log "starting the server on 127.0.0.1:$httpport (log: $tmp/server.log)"
APP_ENV=development \
	DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/tenantgraph?sslmode=disable" \
	JWT_SECRET="audit-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
	HTTP_ADDR="127.0.0.1:$httpport" \
	MAIL_DRIVER=file MAIL_DIR="$tmp/mail" DATA_DIR="$tmp" \
	"$tmp/tenantgraph" serve </dev/null >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=""
for ((i = 0; i < 300; i++)); do
	kill -0 "$server_pid" 2>/dev/null || { log "error: the server exited"; exit 1; }
	# The server listens once its migrations are applied.
	if (exec 3<>"/dev/tcp/127.0.0.1/$httpport") 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
[[ -n "$ready" ]] || { log "error: the server was not ready within 30s"; exit 1; }

log "npm ci (test/graphql-http)"
(cd test/graphql-http && npm ci --no-audit --no-fund --loglevel=error)
log "auditing $url"
node test/graphql-http/audit.mjs "$url"
