#!/usr/bin/env bash
# Load test of outbox-server on loopback with wrk (Debian package `wrk`; not part of any test suite).
#
#   server/bench/run.sh [DURATION] [CONNECTIONS]      # defaults: 10s, 16
#
# Builds the server in release mode, starts it on a free port with a fresh database in a temp dir,
# and runs two scenarios, each with `--synchronous full` (default) and `normal`:
#   put      single PUTs, each with a distinct Idempotency-Key (put.lua)
#   push100  POST /api/push with 100 ops per request (push100.lua)
set -euo pipefail
DURATION=${1:-10s}
CONNECTIONS=${2:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p outbox-server)
BIN="$TARGET_DIR/release/outbox-server"

run_one() { # scenario synchronous
  local scenario=$1 sync=$2 dir out pid url
  dir=$(mktemp -d)
  out="$dir/stdout"
  "$BIN" --addr 127.0.0.1:0 --db "$dir/bench.sqlite" --synchronous "$sync" --log warn >"$out" 2>"$dir/stderr" &
  pid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
  url=$(sed -n 's/^outbox-server listening on //p' "$out")
  printf '%-8s synchronous=%-6s ' "$scenario" "$sync"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$HERE/$scenario.lua" "$url" | tail -n 1
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$dir"
}

for sync in full normal; do
  run_one put "$sync"
  run_one push100 "$sync"
done
