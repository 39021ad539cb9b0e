#!/usr/bin/env bash
# scripts/explorer-assets.sh (make explorer-assets; make run, test, build and bench run it
# first): fetch the GraphQL explorer's browser files from the npm registry into
# internal/platform/explorer/dist/, which the binary embeds (go:embed) and which git ignores.
#
# Each package is pinned by version and by the sha256 of its tarball: a tarball whose
# checksum differs is refused and nothing is written. When dist/ already holds the pinned
# files (its .pins file matches this script's pins and every file's recorded checksum),
# nothing is fetched, so it runs offline once it has run once.
#
# Why these: graphiql 4.1.2 is the newest GraphiQL with a prebuilt browser (UMD) bundle
# that runs from plain <script> tags without a bundler or import map; GraphiQL 5 is
# ESM-only and runs Monaco in web workers. The UMD bundle needs React and ReactDOM as
# globals: React 18's UMD builds (React 19 publishes none). graphql-ws's UMD build (the
# global graphqlWs) runs the subscriptions over the websocket.
#
#   NPM_REGISTRY  registry base URL (default https://registry.npmjs.org); a mirror works
#                 as long as it serves the very same tarballs.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DEST="$REPO/internal/platform/explorer/dist"
REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
REGISTRY=${REGISTRY%/}

log() { printf 'explorer-assets: %s\n' "$*" >&2; }

# package version sha256-of-tarball  file-in-tarball:name-in-dist ...
PINS=(
	"graphiql 4.1.2 6aa9cb6d82e656d38b72991264f41545889881e8dc23059199be3b94fff2ad05 package/graphiql.min.js:graphiql.min.js package/graphiql.min.css:graphiql.min.css package/LICENSE:LICENSE.graphiql"
	"react 18.3.1 8d9bed01a672e7eaf387942d781ad47c6a43089a30a0306060f9fd5ac7870347 package/umd/react.production.min.js:react.production.min.js package/LICENSE:LICENSE.react"
	"react-dom 18.3.1 031d4427a99f2f3f6cac18bbbf308594a67e4f47d10f4896fdec446505b040e0 package/umd/react-dom.production.min.js:react-dom.production.min.js package/LICENSE:LICENSE.react-dom"
	"graphql-ws 6.4.2 14516ff4e3feaeded14bd2fcad590276656e8f3b3cc427bfd63e21fa04d4f53c package/umd/graphql-ws.min.js:graphql-ws.min.js package/LICENSE.md:LICENSE.graphql-ws"
)
pins_text=$(printf '%s\n' "${PINS[@]}")

# Up to date: the same pins, and every file as it was written.
if [[ -f "$DEST/.pins" && -f "$DEST/.sha256" ]] && [[ "$(cat "$DEST/.pins")" == "$pins_text" ]] &&
	(cd "$DEST" && sha256sum --quiet --status -c .sha256) 2>/dev/null; then
	exit 0
fi

fetch() { # URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		log "error: need curl or wget to fetch $1 (apt-get install curl)"
		return 1
	fi
}

tmp=$(mktemp -d /tmp/tenantgraph-explorer.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out"
for pin in "${PINS[@]}"; do
	read -r -a f <<<"$pin"
	name=${f[0]} version=${f[1]} sum=${f[2]}
	url="$REGISTRY/$name/-/$name-$version.tgz"
	log "fetching $url"
	fetch "$url" "$tmp/$name.tgz" || { log "error: could not fetch $url (the explorer needs it; see docs/explorer.md)"; exit 1; }
	got=$(sha256sum "$tmp/$name.tgz" | cut -d' ' -f1)
	if [[ "$got" != "$sum" ]]; then
		log "error: $name-$version.tgz has sha256 $got, pinned $sum: refusing it"
		exit 1
	fi
	mkdir -p "$tmp/$name"
	for m in "${f[@]:3}"; do
		tar -xzf "$tmp/$name.tgz" -C "$tmp/$name" "${m%%:*}"
		cp "$tmp/$name/${m%%:*}" "$tmp/out/${m##*:}"
	done
done
(cd "$tmp/out" && sha256sum -- *) >"$tmp/out/.sha256"
printf '%s\n' "$pins_text" >"$tmp/out/.pins"

# Replace what was there (the committed README.md stays).
mkdir -p "$DEST"
find "$DEST" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
cp -a "$tmp/out/." "$DEST/"
log "wrote $(cd "$DEST" && ls -1 | grep -vc '^README.md$') files to ${DEST#"$REPO"/} ($(du -sk --exclude=README.md "$DEST" | cut -f1) KiB)"
