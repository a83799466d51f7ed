#!/usr/bin/env bash
# The main job: installs what is missing, builds the package, and serves the demo app. Prints the URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

scripts/bootstrap.sh
scripts/build.sh
scripts/stage-demo.sh

step "demo: building the reference server"
cargo build --release -p outbox-server

addr="${OUTBOX_DEMO_ADDR:-127.0.0.1:8787}"
db="${OUTBOX_DEMO_DB:-target/demo/outbox.sqlite}"
mkdir -p "$(dirname "$db")"
step "demo: starting outbox-server with the demo app (Ctrl-C stops it)"
info "database: $db"
# The server prints "outbox-server listening on http://ADDR" once it is bound: that is the demo's URL.
exec target/release/outbox-server --addr "$addr" --db "$db" --www www
