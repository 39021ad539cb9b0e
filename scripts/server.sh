#!/usr/bin/env bash
# scripts/server.sh: a built server on a throwaway PostgreSQL cluster, for the checks that
# talk to a live server (docs-check.sh, audit-http.sh). Source it after scripts/pg.sh:
#
#   srv_cluster DIR [MODE]  init and start a cluster in DIR/data on a free port (pg_start's
#                           MODE, default test), create the database tenantgraph; sets
#                           SRV_DATABASE_URL and SRV_PG_PORT
#   srv_build DIR           build the server to DIR/tenantgraph
#   srv_start DIR [VAR=...] start DIR/tenantgraph on a free port of 127.0.0.1 in a clean
#                           environment (APP_ENV=development, the cluster's DATABASE_URL,
#                           DATA_DIR=DIR/app, plus the VARs), in a process group of its own,
#                           log in DIR/server.log; waits until it listens (its migrations are
#                           applied by then); sets SRV_PID and SRV_BASE (http://127.0.0.1:PORT)
#   srv_stop                SIGTERM, up to 30s for a graceful stop, then SIGKILL (SRV_PID,
#                           and the pids in SRV_OTHER_PIDS: further servers a script started)
#   srv_trap DIR            on EXIT: srv_cleanup DIR with the script's status (first copying
#                           the server's log to $SRV_KEEP_LOG when set, and calling the
#                           script's srv_exit_hook function if it has one), then exit with it;
#                           on INT and TERM: exit 130 and 143 (which runs the EXIT trap)
#   srv_cleanup DIR [RC]    srv_stop, stop the cluster, remove DIR (for an EXIT trap); with
#                           a non-zero RC, first show the end of the server's log

SRV_PID=""
SRV_BASE=""
SRV_DATABASE_URL=""
SRV_PG_PORT=""
SRV_OTHER_PIDS=()

srv_cluster() {
	local dir=$1 mode=${2:-test} port
	pg_find_bin
	pg_setup_user
	pg_prepare_dir "$dir" || pg_die "user $PG_USER cannot use $dir"
	pg_init "$dir/data" test
	port=$(pg_free_port)
	pg_start "$dir/data" "$port" "$dir/sock" "$mode" || return 1
	pg_createdb "$port" tenantgraph
	SRV_PG_PORT=$port
	SRV_DATABASE_URL="postgres://postgres@127.0.0.1:$port/tenantgraph?sslmode=disable"
}

srv_build() {
	local t0=$SECONDS
	go build -o "$1/tenantgraph" .
	printf 'server: built in %ss\n' "$((SECONDS - t0))" >&2
}

srv_start() {
	local dir=$1 port i
	shift
	port=$(pg_free_port)
	mkdir -p "$dir/home"
	set -m
	env -i PATH="$PATH" HOME="$dir/home" \
		APP_ENV=development DATABASE_URL="$SRV_DATABASE_URL" HTTP_ADDR="127.0.0.1:$port" DATA_DIR="$dir/app" \
		"$@" "$dir/tenantgraph" serve </dev/null >"$dir/server.log" 2>&1 &
	SRV_PID=$!
	set +m
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$SRV_PID" 2>/dev/null; then
			tail -n 20 "$dir/server.log" >&2
			printf 'server: exited at start (log above)\n' >&2
			SRV_PID=""
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			SRV_BASE="http://127.0.0.1:$port"
			return 0
		fi
		sleep 0.1
	done
	printf 'server: not listening on 127.0.0.1:%s within 30s\n' "$port" >&2
	return 1
}

srv_stop() {
	local i other
	if ((${#SRV_OTHER_PIDS[@]} > 0)); then
		for other in "${SRV_OTHER_PIDS[@]}"; do
			SRV_OTHER_PIDS=()
			SRV_PID=$other srv_stop
		done
	fi
	[[ -n "$SRV_PID" ]] || return 0
	if kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID" 2>/dev/null || true
		for ((i = 0; i < 300; i++)); do
			kill -0 "$SRV_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SRV_PID" 2>/dev/null || true
	fi
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=""
}

srv_cleanup() {
	local dir=$1 rc=${2:-0}
	if ((rc != 0)) && [[ -n "$dir" && -s "$dir/server.log" ]]; then
		printf 'server: log (last 40 lines):\n' >&2
		tail -n 40 "$dir/server.log" >&2 || true
	fi
	srv_stop
	[[ -n "$dir" ]] || return 0
	[[ -f "$dir/data/PG_VERSION" ]] && { pg_stop "$dir/data" immediate || true; }
	rm -rf "$dir"
}

srv_trap() {
	SRV_DIR=$1
	trap _srv_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

_srv_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	srv_stop
	if declare -F srv_exit_hook >/dev/null; then srv_exit_hook || true; fi
	if [[ -n "${SRV_KEEP_LOG:-}" && -s "$SRV_DIR/server.log" && -d "$(dirname "$SRV_KEEP_LOG")" ]]; then
		cp "$SRV_DIR/server.log" "$SRV_KEEP_LOG"
	fi
	srv_cleanup "$SRV_DIR" "$rc"
	printf 'server: removed %s\n' "$SRV_DIR" >&2
	exit "$rc"
}
