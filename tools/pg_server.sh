#!/usr/bin/env bash
# tools/pg_server.sh - a throwaway PostgreSQL server for tests/integration/
# and the PostgreSQL benchmark: Debian's (or any) PostgreSQL binaries, a
# fresh data directory, a Unix socket only (no TCP port), trust auth.
#
#   eval "$(bash tools/pg_server.sh start DIR)"   # prints export POOL_PG_DSN=...
#   pytest tests/integration
#   bash tools/pg_server.sh stop DIR              # stops it; DIR can then go
#
# DIR must be empty or absent, and short (a socket path has ~100 bytes).
# As root it installs the `postgresql` package if no server is found (apt-get,
# Debian and Ubuntu), and runs the server as the `postgres` user (PostgreSQL
# refuses root).  Otherwise the server runs as the calling user.
# Env: PG_BINDIR, the directory holding initdb and pg_ctl (default: the
# newest /usr/lib/postgresql/*/bin, else pg_config --bindir, else PATH).
set -euo pipefail

say() { printf 'pg_server: %s\n' "$*" >&2; }

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
  return 1
}

# as_server CMD...: runs CMD as the user the server runs as
as_server() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=$1 bindir
  if ! bindir=$(find_bindir); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "no PostgreSQL server found: apt-get install postgresql"
      # (the package's own cluster is not used; it may start, harmlessly)
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
      bindir=$(find_bindir) || { say "still no initdb after the install"; exit 1; }
    else
      say "no PostgreSQL server found (initdb); install one, or set PG_BINDIR"
      exit 1
    fi
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { say "no postgres user to run the server as"; exit 1; }
    chown postgres: "$dir"
  fi
  chmod 755 "$dir"   # the socket's directory: the client may be another user
  as_server "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # fsync off: a test server, thrown away; the transactions' outcome under
  # killed backends does not depend on it (the server itself never crashes).
  as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -c listen_addresses= -c fsync=off -c max_connections=200" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on socket $dir"
  echo "export POOL_PG_DSN='host=$dir dbname=postgres user=postgres'"
}

stop() {
  local dir=$1 bindir
  [ -d "$dir/data" ] || return 0
  bindir=$(find_bindir) || return 0
  as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "${2:?usage: pg_server.sh start DIR}" ;;
  stop)  stop "${2:?usage: pg_server.sh stop DIR}" ;;
  *)     echo "usage: pg_server.sh start|stop DIR" >&2; exit 2 ;;
esac
