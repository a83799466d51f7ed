#!/usr/bin/env bash
# Stages the built npm package into www/vendor/outbox-sync/, where the demo's import map finds it. It packs
# the package as published (dist/, from scripts/dist.mjs) with `npm pack` and unpacks the tarball there, so
# the demo loads exactly the files a user would install: a file missing from package.json's "files" breaks
# the demo too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
[ -f dist/wasm/outbox_sync_bg.wasm ] || die "dist/ holds no build: run scripts/build.sh first"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tarball="$(cd dist && npm pack --silent --pack-destination "$tmp" 2>/dev/null | tail -n 1)"
[ -f "$tmp/$tarball" ] || die "npm pack did not produce a tarball in $tmp"
rm -rf www/vendor/outbox-sync
mkdir -p www/vendor/outbox-sync
tar -xzf "$tmp/$tarball" -C www/vendor/outbox-sync --strip-components=1
info "staged $tarball into www/vendor/outbox-sync/"
