#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/docs-check.sh (make docs-check): run the README's walk-throughs against a live
# server and fail when what they print no longer matches what the README shows.
#
# The README marks each walk-through with HTML comments, each directly above a fenced block:
#
#   <!-- docs-check: NAME -->          a ```sh block: commands, run by bash as pasted
#   <!-- docs-check: NAME output -->   a plain ``` block: what those commands print
#
# A walk-through may have several of each; its command blocks run in order in one bash
# process, and their combined output is compared with its output blocks, joined in order.
#
# The check builds the server, starts a throwaway PostgreSQL (scripts/pg.sh) and the server
# on free ports with APP_ENV=development and MAIL_DRIVER=console, its log going to a file,
# and runs each walk-through with two substitutions in its commands:
#   http://localhost:8080  -> the server's address
#   /tmp/tenantgraph.log   -> the server's log file (where the README's `tee` puts it)
# Before comparing, both sides are normalised (see normalise below): UUIDs become <uuid>,
# JWTs <jwt>, opaque tokens <token>, RFC 3339 times <time>, whether real (actual output) or
# shortened with "…" (README: 4e69c132-…, eyJhbGciOiJIUzI1NiIs…, "lBL7uFlf…"). Any other "…"
# must match literally, so the README shows real output. An expected line that starts with
# spaces continues the line above it (long JSON may be wrapped for reading); for the diff,
# both sides are then split between the objects of a list ("},{").
# Whatever the outcome, the server and the cluster are stopped and the directory removed.
# DOCS_CHECK_README=FILE checks another file than README.md (to try the check itself).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
README=${DOCS_CHECK_README:-$REPO/README.md}

log() { printf 'docs-check: %s\n' "$*" >&2; }
die() {
	printf 'docs-check: error: %s\n' "$*" >&2
	exit 1
}

# normalise [--expected]: stdin -> stdout, masking what differs between runs.
normalise() {
	local join=cat
	# Expected output only: a line starting with spaces continues the previous line.
	[[ "${1:-}" == --expected ]] && join=_join_continuations
	$join | LC_ALL=C sed -E \
		-e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
		-e 's/[0-9a-f]{8}-…/<uuid>/g' \
		-e 's/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/<jwt>/g' \
		-e 's/eyJ[A-Za-z0-9_-]*…/<jwt>/g' \
		-e 's/"[A-Za-z0-9_-]{43}"/"<token>"/g' \
		-e 's/"[A-Za-z0-9_-]+…"/"<token>"/g' \
		-e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})/<time>/g' \
		-e 's/\},\{/},\n  {/g'
	# (the last rule puts each element of a list of objects on a line of its own, on both
	# sides, so that a diff points at the element that differs)
}
_join_continuations() {
	awk '/^[ \t]/ && NR > 1 { sub(/^[ \t]+/, ""); buf = buf $0; next }
	     NR > 1 { print buf } { buf = $0 } END { if (NR) print buf }'
}

# extract DIR: write DIR/NAME.sh and DIR/NAME.out for every marked walk-through, in README
# order, and list the names in DIR/names. Fails on a marker not followed by a fenced block.
extract() {
	awk -v dir="$1" '
	function fail(where, msg) {
		printf "docs-check: error: %s, %s: %s\n", FILENAME, where, msg > "/dev/stderr"
		bad = 1; exit 1
	}
	/^<!-- docs-check: / {
		if (want != "") fail("line " NR, "a marker where the block of the marker above was expected")
		if ($0 !~ /^<!-- docs-check: [a-z0-9-]+( output)? -->$/) fail("line " NR, "bad marker: " $0)
		n = split($0, w, " "); name = w[3]; want = (n == 5) ? "output" : "sh"
		next
	}
	want != "" {
		if ($0 ~ /^[ \t]*$/) next
		if (want == "sh" && $0 != "```sh") fail("line " NR, "<!-- docs-check: " name " --> must be followed by a ```sh block")
		if (want == "output" && $0 != "```") fail("line " NR, "<!-- docs-check: " name " output --> must be followed by a plain ``` block")
		file = dir "/" name (want == "sh" ? ".sh" : ".out")
		if (!(name in seen)) { seen[name] = 1; print name > (dir "/names") }
		has[file] = 1; infence = 1; want = ""; next
	}
	infence && $0 == "```" { infence = 0; next }
	infence { print >> file; next }
	END {
		if (bad) exit 1
		if (want != "") fail("end", "a marker with no block after it")
		if (infence) fail("end", "an unclosed block")
		for (name in seen) {
			if (!((dir "/" name ".sh") in has)) fail(name, "no ```sh block")
			if (!((dir "/" name ".out") in has)) fail(name, "no output block")
		}
	}' "$README"
}

tmp=""
walk_pid=""

# The server and each walk-through run in process groups of their own (set -m), so that a
# Ctrl-C reaches only this script, which then stops them in order.
stop_walk() {
	[[ -n "$walk_pid" ]] || return 0
	kill -TERM -- "-$walk_pid" 2>/dev/null || true
	wait "$walk_pid" 2>/dev/null || true
	walk_pid=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_walk
	srv_cleanup "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

if ! command -v curl >/dev/null 2>&1; then
	if ((EUID == 0)); then
		log "installing curl (log: /tmp/tenantgraph-apt-curl.log)"
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates; } \
			</dev/null >/tmp/tenantgraph-apt-curl.log 2>&1 || die "apt-get install curl failed"
	else
		die "the walk-throughs need curl: run 'sudo apt-get install curl'"
	fi
fi

# shellcheck source=scripts/pg.sh
source "$REPO/scripts/pg.sh"
# shellcheck source=scripts/server.sh
source "$REPO/scripts/server.sh"
tmp=$(mktemp -d /tmp/tenantgraph-docs.XXXXXX)
mkdir -p "$tmp/walk" "$tmp/home"

extract "$tmp/walk"
[[ -s "$tmp/walk/names" ]] || die "README.md marks no walk-through (<!-- docs-check: NAME --> before a \`\`\`sh block)"
mapfile -t names <"$tmp/walk/names"
log "walk-throughs in README.md: ${names[*]}"

log "building the server"
srv_build "$tmp"
srv_cluster "$tmp" || exit 1
# A clean environment: only what the walk-throughs assume.
srv_start "$tmp" MAIL_DRIVER=console || die "the server did not start (log above)"
base=$SRV_BASE
serverlog="$tmp/server.log"
log "server ready on $base (APP_ENV=development, MAIL_DRIVER=console)"

failed=()
for name in "${names[@]}"; do
	# The commands as the README shows them, pointed at this server and its log.
	sed -e "s#http://localhost:8080#$base#g" -e "s#/tmp/tenantgraph\\.log#$serverlog#g" \
		"$tmp/walk/$name.sh" >"$tmp/walk/$name.run.sh"
	mkdir -p "$tmp/walk/$name.cwd"
	t0=$SECONDS
	set -m
	(cd "$tmp/walk/$name.cwd" && exec env -i PATH="$PATH" HOME="$tmp/home" LANG=C.UTF-8 \
		timeout 120 bash --noprofile --norc "$tmp/walk/$name.run.sh") \
		</dev/null >"$tmp/walk/$name.actual" 2>"$tmp/walk/$name.stderr" &
	walk_pid=$!
	set +m
	rc=0
	wait "$walk_pid" || rc=$?
	walk_pid=""
	normalise --expected <"$tmp/walk/$name.out" >"$tmp/walk/$name.expected.norm"
	normalise <"$tmp/walk/$name.actual" >"$tmp/walk/$name.actual.norm"
	if diff -u --label "README.md: $name (expected)" --label "$name: actual output" \
		"$tmp/walk/$name.expected.norm" "$tmp/walk/$name.actual.norm" >"$tmp/walk/$name.diff"; then
		log "ok   $name: $(wc -l <"$tmp/walk/$name.actual") lines of output match ($((SECONDS - t0))s)"
		continue
	fi
	failed+=("$name")
	log "FAIL $name: its output no longer matches README.md (ids, tokens and times masked):"
	cat "$tmp/walk/$name.diff" >&2
	((rc == 0)) || log "$name: bash exited with status $rc"
	if [[ -s "$tmp/walk/$name.stderr" ]]; then
		log "$name: stderr:"
		sed 's/^/  /' "$tmp/walk/$name.stderr" >&2
	fi
done

if ((${#failed[@]} > 0)); then
	if ! kill -0 "$SRV_PID" 2>/dev/null; then
		log "the server is no longer running; its log ends with:"
		tail -n 20 "$serverlog" | sed 's/^/  /' >&2
	elif grep -qE 'level=ERROR' "$serverlog"; then
		log "errors in the server log:"
		grep -E 'level=ERROR' "$serverlog" | tail -n 20 | sed 's/^/  /' >&2
	fi
	die "${#failed[@]} walk-through(s) out of date: ${failed[*]}; update README.md or fix the server"
fi
log "all ${#names[@]} walk-throughs match README.md"
