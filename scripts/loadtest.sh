#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/loadtest.sh (make loadtest): measure a built server from another process.
#
# Builds the server and the load generator (scripts/loadtest, a Go program), starts a
# throwaway PostgreSQL cluster in /tmp/tenantgraph-load.XXXXXX (its log also as csvlog, for
# the capture of statements), applies the migrations (tenantgraph migrate up) and starts the
# server in production mode (production rate limits and argon2 parameters, JSON logs, a
# random JWT key, the file mail driver, the request admission limits off, since the
# generator is one client sending far more than one client may: CLIENT_REQUESTS_PER_SECOND,
# CLIENT_CONCURRENT_REQUESTS and MAX_CONCURRENT_REQUESTS = 0, and, but for SCENARIO=fairness,
# which measures it, the organization's share, ORG_CONCURRENT_SHARE = 0, since the read
# scenarios' one viewer sends 64 requests at once in one organization (SCENARIO=fairness sizes
# the pool to the machine's database instead, DATABASE_MAX_CONNECTIONS = 2 x cores + 1);
# SERVER_ENV may set them again; TRUSTED_PROXY_CIDRS=127.0.0.1/32 so that the
# generator can speak for many client addresses through X-Forwarded-For, METRICS_ADDR on a
# free port for the allocations per request), runs the scenario against its /query (the
# read and write scenarios first seed their data set into the cluster; the read ones
# measure the ceiling with pgbench), prints the results and writes them as JSON (and, for
# the read and write scenarios, a Markdown table, and the read ones' captured pgbench
# scripts). The servers, the cluster and the directory are removed whatever the outcome.
#
#   SCENARIO       credential-flood (default), dashboard, me, organization, customers (the
#                  read scenarios), orders, orders-hot (the write scenarios: createOrder from
#                  16 clients, each in its own organization or all on one product), or all
#                  (the read scenarios, then the write ones); subscriptions: a second server
#                  process on the same database, 1,000 organizationEvents subscribers over
#                  both while orders are created at 200 a second (scripts/loadtest/subscriptions.go);
#                  fairness: one member of organization B loads a small dashboard alone, then beside
#                  16 members of organization A (60,000 customers) sending broad searches and
#                  imports (scripts/loadtest/fairness.go); with BASE, both servers in each round
#   BASE           a git ref (read and write scenarios): also build the server of that commit (from
#                  a temporary git worktree, removed afterwards), give it a database of its
#                  own in the same cluster (migrated by its own binary, seeded alike), run
#                  both servers and load them one at a time, alternating, -rounds rounds
#                  (default 3) of -duration (default 5s) each; report the medians and the
#                  ratios new/base
#   LOADTEST_ARGS  extra flags for the generator, e.g. '-rounds 8 -phase 3s -clients 32',
#                  '-connections 16 -duration 20s -seed-other-orgs 100000'
#                  (go run ./scripts/loadtest -h lists them)
#   SERVER_ENV     extra VAR=value words for the servers' environment, e.g. 'GOGC=400'
#   LOADTEST_JSON  where the JSON goes; default .data/loadtest/SCENARIO-YYYYmmdd-HHMMSS.json
#                  (SCENARIO-vs-BASE-... with BASE); the server's log is kept beside it
#                  (.server.log, and .base.server.log), the Markdown table of the read
#                  scenarios (.md) and the captured statements (.SCENARIO[.base|.new].pgbench.sql)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

log() { printf 'loadtest: %s\n' "$*" >&2; }

SCENARIO=${SCENARIO:-credential-flood}
BASE=${BASE:-}
read -ra gen_args <<<"${LOADTEST_ARGS:-}"
read -ra server_env <<<"${SERVER_ENV:-}"
stamp=$(date -u +%Y%m%d-%H%M%S)
if [[ -n "$BASE" ]]; then
	[[ "$SCENARIO" != credential-flood ]] || { log "error: BASE compares the read and write scenarios: set SCENARIO=dashboard, me, organization, customers, orders, orders-hot, all or fairness"; exit 2; }
	base_rev=$(git rev-parse --verify --quiet "$BASE^{commit}") || { log "error: BASE=$BASE is not a commit here"; exit 2; }
	json=${LOADTEST_JSON:-.data/loadtest/$SCENARIO-vs-$(printf '%s' "$BASE" | tr -c 'A-Za-z0-9._-' '_')-$stamp.json}
else
	json=${LOADTEST_JSON:-.data/loadtest/$SCENARIO-$stamp.json}
fi

# shellcheck source=scripts/pg.sh
source "$REPO/scripts/pg.sh"
# shellcheck source=scripts/server.sh
source "$REPO/scripts/server.sh"

tmp=$(mktemp -d /tmp/tenantgraph-load.XXXXXX)
base_src=""
# Called by srv_trap's EXIT handler: a base worktree left by an interrupted build goes.
srv_exit_hook() {
	if [[ -n "$base_src" ]]; then
		git -C "$REPO" worktree remove --force "$base_src" >/dev/null 2>&1 || true
		base_src=""
	fi
	if [[ -n "${base_log_keep:-}" && -s "$tmp/base/server.log" && -d "$(dirname "$base_log_keep")" ]]; then
		cp "$tmp/base/server.log" "$base_log_keep"
	fi
}
SRV_KEEP_LOG="${json%.json}.server.log"
srv_trap "$tmp"
srv_cluster "$tmp" load || exit 1
pg_pid=$(head -n 1 "$tmp/data/postmaster.pid")
log "building the server and the load generator"
srv_build "$tmp"
go build -o "$tmp/loadtest" ./scripts/loadtest

if [[ -n "$BASE" ]]; then
	log "building the base server from $BASE ($base_rev) in a temporary worktree"
	base_src="$tmp/base-src"
	git worktree add --quiet --detach "$base_src" "$base_rev"
	mkdir -p "$tmp/base"
	(cd "$base_src" && go build -o "$tmp/base/tenantgraph" .)
	git worktree remove --force "$base_src"
	base_src=""
	pg_createdb "$SRV_PG_PORT" tenantgraph_base
	base_db="postgres://postgres@127.0.0.1:$SRV_PG_PORT/tenantgraph_base?sslmode=disable"
	env -i PATH="$PATH" DATABASE_URL="$base_db" "$tmp/base/tenantgraph" migrate up >"$tmp/base-migrate.log" 2>&1 ||
		{ cat "$tmp/base-migrate.log" >&2; log "error: migrate up of the base binary failed"; exit 1; }
fi
env -i PATH="$PATH" DATABASE_URL="$SRV_DATABASE_URL" "$tmp/tenantgraph" migrate up >"$tmp/migrate.log" 2>&1 ||
	{ cat "$tmp/migrate.log" >&2; log "error: migrate up failed"; exit 1; }

# srv_start sets APP_ENV=development; the later APP_ENV wins (env applies them in order).
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
org_share=0 pool=()
if [[ "$SCENARIO" == fairness ]]; then
	org_share=0.25 # the default, which the scenario measures
	# A pool sized to this machine's database (2 x its cores + 1): the share is a quarter
	# of the pool, so this leaves an organization one statement at a time on 2 cores.
	# SERVER_ENV='DATABASE_MAX_CONNECTIONS=20' measures the default pool.
	pool=(DATABASE_MAX_CONNECTIONS=$((2 * $(nproc) + 1)))
fi
start() { # start DIR METRICS_PORT: one server of the run
	srv_start "$1" APP_ENV=production JWT_SECRET="$secret" MAIL_DRIVER=file MAIL_DIR="$1/mail" \
		CLIENT_REQUESTS_PER_SECOND=0 CLIENT_CONCURRENT_REQUESTS=0 MAX_CONCURRENT_REQUESTS=0 ORG_CONCURRENT_SHARE="$org_share" \
		TRUSTED_PROXY_CIDRS=127.0.0.1/32 METRICS_ADDR="127.0.0.1:$2" "${pool[@]}" "${server_env[@]}"
}
mkdir -p "$(dirname "$json")"
cmp_args=()
if [[ -n "$BASE" ]]; then
	base_metrics=$(pg_free_port)
	new_db=$SRV_DATABASE_URL
	SRV_DATABASE_URL=$base_db
	start "$tmp/base" "$base_metrics" || exit 1
	SRV_DATABASE_URL=$new_db
	SRV_OTHER_PIDS=("$SRV_PID")
	base_log_keep="${json%.json}.base.server.log"
	base_name="$BASE (${base_rev:0:7})"
	[[ "$base_rev" != "$BASE"* ]] || base_name=$BASE
	new_name=$(git rev-parse --short HEAD)
	[[ -z "$(git status --porcelain --untracked-files=no)" ]] || new_name+=" + uncommitted changes"
	cmp_args=(-base-url "$SRV_BASE" -base-server-pid "$SRV_PID" -base-database-url "$base_db" -base-server-log "$tmp/base/server.log"
		-base-metrics-url "http://127.0.0.1:$base_metrics/metrics" -base-name "$base_name" -new-name "$new_name")
	log "base server $BASE (pid $SRV_PID) on $SRV_BASE"
fi
peer_args=()
if [[ "$SCENARIO" == subscriptions ]]; then
	# A second process of the same binary on the same database (a replica).
	[[ -z "$BASE" ]] || { log "error: SCENARIO=subscriptions compares nothing: unset BASE"; exit 2; }
	mkdir -p "$tmp/peer"
	cp "$tmp/tenantgraph" "$tmp/peer/tenantgraph"
	start "$tmp/peer" "$(pg_free_port)" || exit 1
	SRV_OTHER_PIDS=("$SRV_PID")
	peer_args=(-peer-url "$SRV_BASE" -peer-pid "$SRV_PID")
	log "second server (pid $SRV_PID) on $SRV_BASE"
fi
metrics=$(pg_free_port)
start "$tmp" "$metrics" || exit 1
log "server (pid $SRV_PID${SERVER_ENV:+, $SERVER_ENV}) on $SRV_BASE, metrics on 127.0.0.1:$metrics, postgres pid $pg_pid; scenario $SCENARIO"

ceiling_args=()
if [[ -x "$PG_BIN/pgbench" ]]; then
	ceiling_args=(-pgbench "$PG_BIN/pgbench" -pg-csvlog "$tmp/data/log/postgresql.csv")
else
	log "no pgbench in $PG_BIN: no ceiling"
fi
"$tmp/loadtest" -scenario "$SCENARIO" -url "$SRV_BASE" -server-pid "$SRV_PID" -pg-pid "$pg_pid" \
	-database-url "$SRV_DATABASE_URL" -server-log "$tmp/server.log" -metrics-url "http://127.0.0.1:$metrics/metrics" \
	"${ceiling_args[@]}" "${cmp_args[@]}" "${peer_args[@]}" -json "$json" -markdown "${json%.json}.md" "${gen_args[@]}"
log "results written to $json (server log: ${json%.json}.server.log)"
