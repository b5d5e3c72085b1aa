#!/usr/bin/env bash
# tools/newer-pythons.sh: run a command under the CPython versions newer than
# what pyenv or the distribution usually has (3.14 and 3.15, GIL builds).
#
#   bash tools/newer-pythons.sh 'pip install -q ".[test]" && python -m pytest -q -x'
#   bash tools/newer-pythons.sh --only 3.15 'python -c "import sys; print(sys.version)"'
#   bash tools/newer-pythons.sh --list      # which versions it would use, and how
#   bash tools/newer-pythons.sh --dry-run 'pytest'   # say what it would do, do nothing
#
# The interpreters come from Debian sid, which packages them: on first use the
# script builds a minimal sid chroot with debootstrap (as root: it installs
# debootstrap with apt-get if missing; about 4 minutes and 600 MB), in
# $NEWER_PY_ROOT (default /var/tmp/newer-pythons), and keeps it.  Each run
# bind-mounts this repository at /src in the chroot and runs the command there,
# from /src, once per version, as root with a clean environment: `python` and
# `pip` are those of /venv-3.X (made on first use, kept), and $PY is that
# python.  The exit status is the last failing run's, or 0.
#
# Without root, or to use interpreters you built yourself: --list says which
# python3.14 / python3.15 are on PATH; run your command with those (python3.X
# -m venv ...).  Sources: https://www.python.org/downloads/ (3.15 as a
# pre-release), `pyenv install 3.14`, or Debian sid's python3.14 / python3.15
# packages.  Debian has no free-threaded (3.14t) build: this gives you none.
#
# benchmarks/callgrind.py --all-pythons runs through this script (it reads the
# `versions=` line below and calls it with --only).
set -euo pipefail

versions="3.14 3.15"
root=${NEWER_PY_ROOT:-/var/tmp/newer-pythons}
packages=gcc,g++,make,cmake,ninja-build,git,ca-certificates
dry_run=0
list=0

usage() {   # the usage line; with --help the whole header comment first
  if [ "${1:-2}" = 0 ]; then sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; fi
  echo "usage: $0 [--only '3.14 3.15'] [--root DIR] [--dry-run] 'command' | --list" >&2
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case $1 in
    --only) [ $# -ge 2 ] || usage; versions=$2; shift 2 ;;
    --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
    --dry-run|-n) dry_run=1; shift ;;
    --list) list=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
for v in $versions; do
  case $v in 3.1[4-9]) ;; *) echo "$0: --only takes 3.14 and/or 3.15, not '$v'" >&2; exit 2 ;; esac
done

if [ "$list" = 1 ]; then
  for v in $versions; do
    if [ -x "$root/usr/bin/python$v" ]; then
      echo "$v: $root/usr/bin/python$v (the chroot; this script runs commands there)"
    else
      echo "$v: not in the chroot yet ($root; built on first run, as root)"
    fi
    if p=$(command -v "python$v" 2>/dev/null); then
      echo "$v: $p (on PATH; use it directly: python$v -m venv DIR)"
    fi
  done
  exit 0
fi

[ $# -eq 1 ] || usage
cmd=$1
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)

run() {   # run a command, or with --dry-run print it
  if [ "$dry_run" = 1 ]; then printf '+ %s\n' "$*" >&2; else "$@"; fi
}

if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "$0: needs root (debootstrap, mount, chroot); see --list for interpreters on PATH" >&2
  exit 1
fi

need_build=0
for v in $versions; do [ -x "$root/usr/bin/python$v" ] || need_build=1; done
if [ "$need_build" = 1 ]; then
  include=$packages
  for v in 3.14 3.15; do include="$include,python$v-dev,python$v-venv"; done
  # The Debian mirror this machine's apt uses, else deb.debian.org.
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  echo "building a Debian sid chroot in $root (once; a few minutes)" >&2
  if ! command -v debootstrap >/dev/null; then
    run apt-get update -qq
    run apt-get install -y -qq debootstrap
  fi
  run mkdir -p "$root"
  if [ "$dry_run" = 1 ]; then
    run debootstrap --variant=minbase "--include=$include" sid "$root" "$mirror"
  elif ! debootstrap --variant=minbase "--include=$include" sid "$root" "$mirror" \
        >"$root.log" 2>&1; then
    tail -n 20 "$root.log" >&2
    echo "$0: debootstrap failed (log: $root.log)" >&2
    exit 1
  fi
fi

# Name resolution, certificates and pip settings, so that pip works inside.
run cp /etc/resolv.conf "$root/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  run cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
if [ "$dry_run" = 0 ]; then
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndefault-timeout = 180\n' \
    >"$root/etc/pip.conf"
fi
run mkdir -p "$root/src"
for m in proc sys dev; do
  mountpoint -q "$root/$m" 2>/dev/null || run mount --bind "/$m" "$root/$m"
done
mountpoint -q "$root/src" 2>/dev/null || run mount --bind "$repo" "$root/src"

rc=0
for v in $versions; do
  [ -x "$root/venv-$v/bin/python" ] || run chroot "$root" "/usr/bin/python$v" -m venv "/venv-$v"
  echo "=== CPython $v" >&2
  run chroot "$root" /usr/bin/env -i HOME=/root PATH="/venv-$v/bin:/usr/bin:/bin" \
    PY="/venv-$v/bin/python" LANG=C.UTF-8 \
    bash -c "cd /src && git config --global --add safe.directory /src && $cmd" || rc=$?
done
exit $rc
