#!/usr/bin/env bash
# Load test of outbox-server on loopback with wrk (Debian package `wrk`; not part of any test suite).
#
#   server/bench/run.sh [DURATION] [CONNECTIONS]      # defaults: 10s, 16
#
# Builds the server in release mode and runs two scenarios against each store, every run on a fresh
# database:
#   put      single PUTs, each with a distinct Idempotency-Key (put.lua)
#   push100  POST /api/push with 100 ops per request (push100.lua)
# Stores: SQLite with `--synchronous full` (default) and `normal`; PostgreSQL with one instance, and with
# two instances on the same database (two wrk processes, half the connections each, one per instance:
# requests/s are summed, p99 is the larger of the two). PostgreSQL is a throw-away cluster
# (scripts/pg-scratch.sh --durable: fsync and synchronous_commit on, like SQLite's `full`).
# Then the cleanup job's cost: 8 s of push100 load with a 10 s key TTL, and a single-PUT run while the
# job deletes those records (it runs every 20 s); the server's log line gives the records deleted, the
# batches and their time, and the PUT p99 shows whether writes were held up.
# Prints a Markdown table, with the load average before each run.
set -euo pipefail
DURATION=${1:-10s}
CONNECTIONS=${2:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -p outbox-server)
BIN="$TARGET_DIR/release/outbox-server"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  [ -n "${PG_DIR:-}" ] && "$ROOT/scripts/pg-scratch.sh" stop "$PG_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT

PG_OUT=$("$ROOT/scripts/pg-scratch.sh" start --durable --owner $$)
PG_DIR=$(sed -n 2p <<<"$PG_OUT")
# Called in $(…), a subshell: the name comes from the clock, not from a counter.
fresh_pg() { "$ROOT/scripts/pg-scratch.sh" createdb "$PG_DIR" "bench_$(date +%s%N)"; }

# start_server DB [ARGS...]: starts one instance; sets URL and LOG, appends to PIDS.
start_server() {
  local db=$1 out
  shift
  out="$WORK/stdout.$RANDOM"
  LOG="$WORK/stderr.$RANDOM"
  "$BIN" --addr 127.0.0.1:0 --db "$db" "$@" >"$out" 2>"$LOG" &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q 'listening on' "$out" 2>/dev/null && break; sleep 0.05; done
  URL=$(sed -n 's/^outbox-server listening on //p' "$out")
  [ -n "$URL" ] || { cat "$LOG" >&2; exit 1; }
}

stop_servers() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
load() { cut -d' ' -f1 /proc/loadavg; }

# run_wrk SCENARIO CONNECTIONS URL: wrk's summary line (see the lua scripts).
# run_wrk SCENARIO CONNECTIONS URL [TAG] [DURATION]: wrk's summary line (see the lua scripts). TAG keeps the keys
# of concurrent wrk processes apart.
run_wrk() { wrk -t1 -c"$2" -d"${5:-$DURATION}" --timeout 10s -s "$HERE/$1.lua" "$3" -- "${4:-w}" | tail -n 1; }

ROWS=()
row() { # store scenario load line [line2]
  local rps p99 errs
  rps=$(field req_per_s "$4")
  p99=$(field p99_ms "$4")
  errs=$(( $(field non2xx "$4") + $(field socket_errors "$4") ))
  if [ -n "${5:-}" ]; then
    rps=$(awk -v a="$rps" -v b="$(field req_per_s "$5")" 'BEGIN { printf "%.1f", a + b }')
    p99=$(awk -v a="$p99" -v b="$(field p99_ms "$5")" 'BEGIN { print (a > b ? a : b) }')
    errs=$((errs + $(field non2xx "$5") + $(field socket_errors "$5")))
  fi
  local ops=$rps
  [ "$2" = push100 ] && ops=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r * 100 }')
  ROWS+=("| $1 | $2 | $rps | $ops | $p99 | $errs | $3 |")
  echo "$1 $2: req/s=$rps ops/s=$ops p99_ms=$p99 errors=$errs load=$3" >&2
}

for scenario in put push100; do
  for sync in full normal; do
    l=$(load)
    start_server "$WORK/bench-$scenario-$sync.sqlite" --synchronous "$sync" --log warn
    row "SQLite ($sync)" "$scenario" "$l" "$(run_wrk "$scenario" "$CONNECTIONS" "$URL")"
    stop_servers
  done
  l=$(load)
  start_server "$(fresh_pg)" --log warn
  row "PostgreSQL x1" "$scenario" "$l" "$(run_wrk "$scenario" "$CONNECTIONS" "$URL")"
  stop_servers
  l=$(load)
  db=$(fresh_pg)
  start_server "$db" --log warn
  URL1=$URL
  start_server "$db" --log warn
  URL2=$URL
  half=$((CONNECTIONS / 2))
  run_wrk "$scenario" "$half" "$URL1" a >"$WORK/wrk1" &
  w1=$!
  run_wrk "$scenario" "$half" "$URL2" b >"$WORK/wrk2"
  wait "$w1"
  row "PostgreSQL x2" "$scenario" "$l" "$(cat "$WORK/wrk1")" "$(cat "$WORK/wrk2")"
  stop_servers
done

echo
echo "machine: $(nproc) cores, $(uname -sr); DURATION=$DURATION CONNECTIONS=$CONNECTIONS"
echo
echo "| store | scenario | requests/s | ops/s | p99 ms | errors | load (1 min) before |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"

echo
echo "Cleanup job: push100 for 8 s with --idempotency-ttl 10s (the job runs at t = 0, 20 s, …); single PUTs for 5 s"
echo "before the job runs (t ≈ 9-14 s), and for 8 s while it deletes the expired records (t ≈ 17-25 s)"
echo
echo "| store | records deleted | batches | total ms | ms per batch (mean) | slowest batch ms | PUT p99 ms before | PUT p99 ms during | PUT errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for store in sqlite postgres; do
  if [ "$store" = sqlite ]; then db="$WORK/cleanup.sqlite"; else db=$(fresh_pg); fi
  t0=$(date +%s)
  start_server "$db" --idempotency-ttl 10s --cleanup-every 20s --log outbox_server=info
  run_wrk push100 "$CONNECTIONS" "$URL" fill 8s >/dev/null
  before=$(run_wrk put "$CONNECTIONS" "$URL" before 5s)
  sleep $((t0 + 17 - $(date +%s)))
  during=$(run_wrk put "$CONNECTIONS" "$URL" during 8s)
  line=""
  for _ in $(seq 240); do
    line=$(grep 'expired idempotency records deleted' "$LOG" | head -n 1 || true)
    [ -n "$line" ] && break
    sleep 0.5
  done
  num() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
  deleted=$(num deleted); batches=$(num batches); total=$(num total_ms); slowest=$(num slowest_batch_ms)
  mean=$(awk -v t="${total:-0}" -v b="${batches:-1}" 'BEGIN { printf "%.2f", t / b }')
  errs=$(( $(field non2xx "$before") + $(field socket_errors "$before") + $(field non2xx "$during") + $(field socket_errors "$during") ))
  printf '| %s | %s | %s | %.0f | %s | %.1f | %s | %s | %s |\n' "$store" "${deleted:-none}" "${batches:--}" "${total:-0}" "$mean" \
    "${slowest:-0}" "$(field p99_ms "$before")" "$(field p99_ms "$during")" "$errs"
  stop_servers
done
