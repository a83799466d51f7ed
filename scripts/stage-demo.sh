#!/usr/bin/env bash
# Copies the built npm package into www/vendor/outbox-sync/, where the demo's import map finds it, so the demo
# loads exactly the files a user would install.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
[ -f pkg/wasm/outbox_sync_bg.wasm ] || die "pkg/wasm is empty: run scripts/build.sh first"
rm -rf www/vendor/outbox-sync
mkdir -p www/vendor/outbox-sync
cp -R pkg/package.json pkg/index.js pkg/index.d.ts pkg/wasm www/vendor/outbox-sync/
