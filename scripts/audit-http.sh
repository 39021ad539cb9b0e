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
# shellcheck source=scripts/server.sh
source "$REPO/scripts/server.sh"


tmp=$(mktemp -d /tmp/tenantgraph-audit.XXXXXX)
srv_trap "$tmp"
srv_cluster "$tmp" || exit 1
log "building the server"
srv_build "$tmp"
srv_start "$tmp" MAIL_DRIVER=console || exit 1
url="$SRV_BASE/query"
log "server listening on $SRV_BASE (log: $tmp/server.log)"

log "npm ci (test/graphql-http)"
(cd test/graphql-http && npm ci --no-audit --no-fund --loglevel=error)
log "auditing $url"
node test/graphql-http/audit.mjs "$url"
