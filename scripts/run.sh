#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/run.sh (make run): run the server for development.
#
# Runs the server with APP_ENV=development (the binary's default is production) unless
# APP_ENV is set. With DATABASE_URL set, runs `go run . serve` against it. Otherwise
# starts a private PostgreSQL cluster kept in .data/postgres (port $PGPORT_DEV, default
# 54329), creates the database tenantgraph, builds the server to .data/tenantgraph and
# runs it in the foreground; on exit (Ctrl-C, SIGTERM or a crash) it stops the server, then the cluster.
# Extra arguments go to `serve`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

log() { printf 'run: %s\n' "$*" >&2; }

# The server defaults to production; `make run` is development unless APP_ENV says otherwise.
export APP_ENV=${APP_ENV:-development}

if [[ -n "${DATABASE_URL:-}" ]]; then
	log "using DATABASE_URL from the environment (APP_ENV=$APP_ENV)"
	exec go run . serve "$@"
fi

# shellcheck source=scripts/pg.sh
source "$REPO/scripts/pg.sh"

port=${PGPORT_DEV:-54329}
[[ "$port" =~ ^[0-9]+$ ]] || pg_die "PGPORT_DEV must be a port number, not '$port'"

pg_find_bin
pg_setup_user

data="$REPO/.data"
mkdir -p "$data"
# One `make run` per checkout at a time. Long-lived children get fd 9 closed (9>&-)
# so that the lock dies with this script.
exec 9>"$data/run.lock"
flock -n 9 || pg_die "another 'make run' is already running in $REPO"
pgdata="$data/postgres"
sock="$data/pgsock"
if ! pg_prepare_dir "$pgdata" 2>/dev/null; then
	# The server's user cannot reach the repository (e.g. it lives under /root): keep the
	# cluster in a per-repository directory it can use instead.
	alt="/var/tmp/tenantgraph-dev-$(printf '%s' "$REPO" | cksum | cut -d' ' -f1)"
	log "user $PG_USER cannot write $pgdata: keeping the cluster in $alt instead"
	mkdir -p "$alt"
	chmod 755 "$alt"
	pgdata="$alt/postgres"
	sock="$alt/pgsock"
	pg_prepare_dir "$pgdata" || pg_die "user $PG_USER cannot write $pgdata either"
fi
# A unix socket path must fit in 107 bytes.
if ((${#sock} + 20 > 107)); then
	sock="/tmp/tenantgraph-sock-$(printf '%s' "$REPO" | cksum | cut -d' ' -f1)"
fi

server_pid=""

# stop_server SIG: signal the server, wait for it (30s, then KILL); sets server_rc.
server_rc=0
stop_server() {
	local sig=${1:-TERM} i
	[[ -n "$server_pid" ]] || return 0
	if kill -0 "$server_pid" 2>/dev/null; then
		kill -s "$sig" -- "-$server_pid" 2>/dev/null || kill -s "$sig" "$server_pid" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			log "server did not stop within 30s: killing it"
			kill -KILL -- "-$server_pid" 2>/dev/null || kill -KILL "$server_pid" 2>/dev/null || true
		fi
	fi
	server_rc=0
	wait "$server_pid" 2>/dev/null || server_rc=$?
	server_pid=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server TERM
	pg_stop "$pgdata" || true
	exit "$rc"
}

# A stop asked for by Ctrl-C or SIGTERM is a success when the server shuts down cleanly.
on_signal() {
	log "got SIG$1: stopping"
	if [[ -z "$server_pid" ]]; then
		[[ "$1" == INT ]] && exit 130
		exit 143
	fi
	stop_server "$1"
	exit "$server_rc"
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

pg_init "$pgdata"
if pg_port_busy "$port" && ! pg_running "$pgdata"; then
	pg_die "port $port on 127.0.0.1 is in use by another program: stop it or pick another port with PGPORT_DEV=NNNNN make run"
fi
pg_start "$pgdata" "$port" "$sock" dev 9>&- || exit 1
pg_createdb "$port" tenantgraph

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/tenantgraph?sslmode=disable"
export MAIL_DRIVER=${MAIL_DRIVER:-console}

log "building .data/tenantgraph"
go build -o "$data/tenantgraph" .

log "serving (APP_ENV=$APP_ENV, DATABASE_URL=$DATABASE_URL); Ctrl-C stops the server and the database"
# The server gets its own process group (set -m) so that only this script signals it,
# once, and then stops the cluster after it.
set -m
"$data/tenantgraph" serve "$@" </dev/null 9>&- &
server_pid=$!
set +m
rc=0
wait "$server_pid" || rc=$?
server_pid=""
log "server exited with status $rc"
exit "$rc"
