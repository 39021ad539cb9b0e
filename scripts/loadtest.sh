#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/loadtest.sh (make loadtest): measure a built server from another process.
#
# Builds the server and the load generator (scripts/loadtest, a Go program), starts a
# throwaway PostgreSQL cluster in /tmp/tenantgraph-load.XXXXXX, applies the migrations
# (tenantgraph migrate up) and starts the server in production mode (production rate
# limits and argon2 parameters, JSON logs, a random JWT key, the file mail driver,
# TRUSTED_PROXY_CIDRS=127.0.0.1/32 so that the generator can speak for many client
# addresses through X-Forwarded-For), runs the scenario against its /query (the read
# scenarios first seed their data set into the cluster), prints the results and writes
# them as JSON (and, for the read scenarios, a Markdown table). The server, the cluster
# and the directory are removed whatever the outcome.
#
#   SCENARIO       credential-flood (default), dashboard, me, organization, or all (the
#                  three read scenarios)
#   LOADTEST_ARGS  extra flags for the generator, e.g. '-rounds 8 -phase 3s -clients 32',
#                  '-connections 16 -duration 20s -seed-other-orgs 100000'
#                  (go run ./scripts/loadtest -h lists them)
#   SERVER_ENV     extra VAR=value words for the server's environment, e.g. 'GOGC=400'
#   LOADTEST_JSON  where the JSON goes; default .data/loadtest/SCENARIO-YYYYmmdd-HHMMSS.json;
#                  the server's log is kept beside it (.server.log), and the Markdown
#                  table of the read scenarios (.md)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

log() { printf 'loadtest: %s\n' "$*" >&2; }

SCENARIO=${SCENARIO:-credential-flood}
read -ra gen_args <<<"${LOADTEST_ARGS:-}"
read -ra server_env <<<"${SERVER_ENV:-}"
json=${LOADTEST_JSON:-.data/loadtest/$SCENARIO-$(date -u +%Y%m%d-%H%M%S).json}

# shellcheck source=scripts/pg.sh
source "$REPO/scripts/pg.sh"
# shellcheck source=scripts/server.sh
source "$REPO/scripts/server.sh"


tmp=$(mktemp -d /tmp/tenantgraph-load.XXXXXX)
SRV_KEEP_LOG="${json%.json}.server.log"
srv_trap "$tmp"
srv_cluster "$tmp" || exit 1
log "building the server and the load generator"
srv_build "$tmp"
go build -o "$tmp/loadtest" ./scripts/loadtest

env -i PATH="$PATH" DATABASE_URL="$SRV_DATABASE_URL" "$tmp/tenantgraph" migrate up >"$tmp/migrate.log" 2>&1 ||
	{ cat "$tmp/migrate.log" >&2; log "error: migrate up failed"; exit 1; }
# srv_start sets APP_ENV=development; the later APP_ENV wins (env applies them in order).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
srv_start "$tmp" APP_ENV=production JWT_SECRET="$secret" MAIL_DRIVER=file MAIL_DIR="$tmp/mail" \
	TRUSTED_PROXY_CIDRS=127.0.0.1/32 "${server_env[@]}" || exit 1
pg_pid=$(head -n 1 "$tmp/data/postmaster.pid")
log "server (pid $SRV_PID${SERVER_ENV:+, $SERVER_ENV}) on $SRV_BASE, postgres pid $pg_pid; scenario $SCENARIO"

mkdir -p "$(dirname "$json")"
"$tmp/loadtest" -scenario "$SCENARIO" -url "$SRV_BASE" -server-pid "$SRV_PID" -pg-pid "$pg_pid" \
	-database-url "$SRV_DATABASE_URL" -server-log "$tmp/server.log" \
	-json "$json" -markdown "${json%.json}.md" "${gen_args[@]}"
log "results written to $json (server log: ${json%.json}.server.log)"
