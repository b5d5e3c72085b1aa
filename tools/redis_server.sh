#!/usr/bin/env bash
# tools/redis_server.sh - makes sure a redis-server binary is on PATH, for
# tests/integration/test_dropin.py (whose fixture starts its own server on
# 127.0.0.1, a free port, a temporary directory, no persistence).
#
#   bash tools/redis_server.sh install     # prints the binary's path
#
# As root it installs Debian's `redis-server` package if none is found
# (apt-get, Debian and Ubuntu); otherwise it fails and says so.  (The
# package's own service may start on port 6379, harmlessly: unused.)
set -euo pipefail

say() { printf 'redis_server: %s\n' "$*" >&2; }

install() {
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "no redis-server found: apt-get install redis-server"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
    else
      say "no redis-server found; install Debian's redis-server (or any)"
      exit 1
    fi
  fi
  command -v redis-server
}

case "${1:-}" in
  install) install ;;
  *) say "usage: $0 install"; exit 2 ;;
esac
