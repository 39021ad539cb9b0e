#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions below are called from traps
# scripts/docs-check.sh (make docs-check): run the walk-throughs of the docs (the README's
# tour and docs/walkthroughs/*.md) against a live server and fail when what they print no
# longer matches what the docs show.
#
# The docs mark each walk-through with HTML comments, each directly above a fenced block:
#
#   <!-- docs-check: NAME -->          a ```sh block: commands, run by bash as pasted
#   <!-- docs-check: NAME output -->   a plain ``` block: what those commands print
#
# A walk-through may have several of each, all in one file; its command blocks run in order
# in one bash process, and their combined output is compared with its output blocks, joined
# in order. Names are unique across the files.
#
# The walk-throughs share one set of shell helpers, docs/walkthroughs/helpers.sh (gql, field,
# link, signup), which they `source docs/walkthroughs/helpers.sh` as a reader does from the
# repository's root: each runs in a directory of its own holding that file (with the
# substitutions below applied to it too) at that path.
#
# The check builds the server, starts a throwaway PostgreSQL (scripts/pg.sh) and the server
# on free ports with APP_ENV=development and MAIL_DRIVER=console, its log going to a file,
# and runs each walk-through with two substitutions in its commands and in the helpers:
#   http://localhost:8080  -> the server's address
#   /tmp/tenantgraph.log   -> the server's log file (where the docs' `tee` puts it)
# Before comparing, both sides are normalised (see normalise below): UUIDs become <uuid>,
# JWTs <jwt>, opaque tokens <token>, RFC 3339 times <time>, whether real (actual output) or
# shortened with "…" (docs: 4e69c132-…, eyJhbGciOiJIUzI1NiIs…, "lBL7uFlf…"). Any other "…"
# must match literally, so the docs show real output. An expected line that starts with
# spaces continues the line above it (long JSON may be wrapped for reading); for the diff,
# both sides are then split between the objects of a list ("},{").
# It also checks that the helpers' `link` fails at once, saying why, without a log file.
# Whatever the outcome, the server and the cluster are stopped and the directory removed.
# DOCS_CHECK_FILES="A.md B.md" checks other files than README.md and docs/walkthroughs/*.md
# (to try the check itself).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
HELPERS=docs/walkthroughs/helpers.sh
if [[ -n "${DOCS_CHECK_FILES:-}" ]]; then
	read -r -a FILES <<<"$DOCS_CHECK_FILES"
else
	FILES=(README.md docs/walkthroughs/*.md)
fi

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

# extract DIR FILE...: write DIR/NAME.sh, DIR/NAME.out and DIR/NAME.src (its file) for every
# marked walk-through, in the files' order, and list the names in DIR/names. Fails on a marker
# not followed by a fenced block, and on a name used in two files.
extract() {
	local dir=$1
	shift
	awk -v dir="$dir" '
	function fail(where, msg) { failin(FILENAME, where, msg) }
	function failin(fn, where, msg) {
		printf "docs-check: error: %s, %s: %s\n", fn, where, msg > "/dev/stderr"
		bad = 1; exit 1
	}
	FNR == 1 && NR > 1 {
		if (want != "") failin(prev, "end", "a marker with no block after it")
		if (infence) failin(prev, "end", "an unclosed block")
	}
	{ prev = FILENAME }
	/^<!-- docs-check: / {
		if (want != "") fail("line " FNR, "a marker where the block of the marker above was expected")
		if ($0 !~ /^<!-- docs-check: [a-z0-9-]+( output)? -->$/) fail("line " FNR, "bad marker: " $0)
		n = split($0, w, " "); name = w[3]; want = (n == 5) ? "output" : "sh"
		if ((name in src) && src[name] != FILENAME) fail("line " FNR, "walk-through " name " is also in " src[name])
		next
	}
	want != "" {
		if ($0 ~ /^[ \t]*$/) next
		if (want == "sh" && $0 != "```sh") fail("line " FNR, "<!-- docs-check: " name " --> must be followed by a ```sh block")
		if (want == "output" && $0 != "```") fail("line " FNR, "<!-- docs-check: " name " output --> must be followed by a plain ``` block")
		file = dir "/" name (want == "sh" ? ".sh" : ".out")
		if (!(name in seen)) {
			seen[name] = 1; src[name] = FILENAME
			print name > (dir "/names"); print FILENAME > (dir "/" name ".src")
		}
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
	}' "$@"
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

for f in "${FILES[@]}"; do
	[[ -f "$f" ]] || die "no file $f"
done
[[ -f "$HELPERS" ]] || die "no $HELPERS: the walk-throughs source it"
extract "$tmp/walk" "${FILES[@]}"
[[ -s "$tmp/walk/names" ]] || die "${FILES[*]}: no walk-through marked (<!-- docs-check: NAME --> before a \`\`\`sh block)"
mapfile -t names <"$tmp/walk/names"
log "walk-throughs: ${names[*]} (in ${FILES[*]})"

# The helpers' link must fail at once, saying so, when the log file does not exist (a
# reader who started the server without `tee`), not wait 10 s and print grep errors.
t0=$(date +%s%N)
out=$(env -i PATH="$PATH" TENANTGRAPH_LOG="$tmp/no-such.log" bash --noprofile --norc -c \
	'source "$1"; link a@example.com verify-email' _ "$HELPERS" 2>&1) && die "$HELPERS: link succeeded without a log file"
ms=$((($(date +%s%N) - t0) / 1000000))
if ((ms > 1000)) || [[ "$out" != "link: no server log at $tmp/no-such.log"* ]] || grep -q '^grep' <<<"$out"; then
	die "$HELPERS: link without a log file should fail at once with 'link: no server log at …'; it took ${ms} ms and printed: $out"
fi

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
	src=$(cat "$tmp/walk/$name.src")
	# The commands as the docs show them, pointed at this server and its log, run from a
	# directory that holds the helpers where the repository's root does.
	point() { sed -e "s#http://localhost:8080#$base#g" -e "s#/tmp/tenantgraph\\.log#$serverlog#g"; }
	point <"$tmp/walk/$name.sh" >"$tmp/walk/$name.run.sh"
	mkdir -p "$tmp/walk/$name.cwd/$(dirname "$HELPERS")"
	point <"$HELPERS" >"$tmp/walk/$name.cwd/$HELPERS"
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
	if diff -u --label "$src: $name (expected)" --label "$name: actual output" \
		"$tmp/walk/$name.expected.norm" "$tmp/walk/$name.actual.norm" >"$tmp/walk/$name.diff"; then
		log "ok   $name: $(wc -l <"$tmp/walk/$name.actual") lines of output match ($((SECONDS - t0))s)"
		continue
	fi
	failed+=("$name")
	log "FAIL $name: its output no longer matches $src (ids, tokens and times masked):"
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
	die "${#failed[@]} walk-through(s) out of date: ${failed[*]}; update the docs or fix the server"
fi
log "all ${#names[@]} walk-throughs match the docs"
