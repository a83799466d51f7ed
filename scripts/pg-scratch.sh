#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on 127.0.0.1, for the tests, the e2e suite and the benchmark.
#
#   scripts/pg-scratch.sh start [--owner PID] [--durable]   prints the cluster's URL, then its directory
#   scripts/pg-scratch.sh createdb DIR NAME                 creates database NAME, prints its URL
#   scripts/pg-scratch.sh stop DIR                          stops the cluster and deletes DIR
#
# `start` runs initdb in a new temp directory and starts the server on a free port, listening on
# 127.0.0.1 only, with trust authentication for the superuser `outbox` (nothing else can reach it).
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user that
# Debian's package creates (or OUTBOX_PG_USER). With --owner PID, a watchdog stops the cluster and
# deletes its directory once process PID has exited, whatever way it exits: a test binary that
# panics or is killed leaves nothing running. Without --durable, fsync is off: the tests crash
# server processes, never PostgreSQL, so they lose nothing by it and run faster.
# Binaries: OUTBOX_PG_BIN, else initdb on PATH, else the newest /usr/lib/postgresql/*/bin
# (scripts/bootstrap.sh installs Debian's `postgresql` when none is found).
set -euo pipefail

die() {
  echo "pg-scratch: $*" >&2
  exit 1
}

pg_bin() {
  if [ -n "${OUTBOX_PG_BIN:-}" ]; then
    echo "$OUTBOX_PG_BIN"
  elif command -v initdb >/dev/null; then
    dirname "$(realpath "$(command -v initdb)")"
  else
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$newest" ] && [ -x "$newest/initdb" ] ||
      die "PostgreSQL is not installed (no initdb found): run scripts/bootstrap.sh, or apt-get install postgresql"
    echo "$newest"
  fi
}

# Runs a command as the cluster's owner: as root, the unprivileged user; otherwise ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${OUTBOX_PG_USER:-postgres}" -- "$@"
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_stop() {
  local dir=$1
  [ -f "$dir/port" ] || die "$dir is not a pg-scratch cluster"
  as_owner "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

cmd_start() {
  local owner="" durable=""
  while [ $# -gt 0 ]; do
    case $1 in
      --owner) owner=$2; shift 2 ;;
      --durable) durable=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  local bin dir port settings
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ]; then
    id -u "${OUTBOX_PG_USER:-postgres}" >/dev/null 2>&1 ||
      die "running as root, and user ${OUTBOX_PG_USER:-postgres} does not exist to run PostgreSQL (set OUTBOX_PG_USER)"
  fi
  # As root, /tmp rather than $TMPDIR: root's TMPDIR may be a place the postgres user cannot reach.
  if [ "$(id -u)" -eq 0 ]; then dir=$(mktemp -d /tmp/outbox-pg.XXXXXX); else dir=$(mktemp -d "${TMPDIR:-/tmp}/outbox-pg.XXXXXX"); fi
  chmod 755 "$dir"
  echo "$bin" >"$dir/bin"
  if [ "$(id -u)" -eq 0 ]; then chown "${OUTBOX_PG_USER:-postgres}" "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U outbox --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"; }
  settings="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=300"
  [ -n "$durable" ] || settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "-p $port $settings" start >/dev/null 2>&1; then
      echo "$port" >"$dir/port"
      break
    fi
  done
  [ -f "$dir/port" ] || { cat "$dir/server.log" >&2 || true; rm -rf "$dir"; die "could not start PostgreSQL"; }
  if [ -n "$owner" ]; then
    # Detached, and with every descriptor closed, so whoever reads our stdout sees EOF at once.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec "$2" stop "$3"' \
      watchdog "$owner" "$(realpath "$0")" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  echo "postgres://outbox@127.0.0.1:$port/postgres"
  echo "$dir"
}

cmd_createdb() {
  local dir=$1 name=$2 port
  port=$(cat "$dir/port")
  "$(cat "$dir/bin")/createdb" -h 127.0.0.1 -p "$port" -U outbox "$name" ||
    die "createdb $name failed"
  echo "postgres://outbox@127.0.0.1:$port/$name"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  createdb) [ $# -eq 3 ] || die "usage: $0 createdb DIR NAME"; cmd_createdb "$2" "$3" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 start [--owner PID] [--durable] | createdb DIR NAME | stop DIR" ;;
esac
