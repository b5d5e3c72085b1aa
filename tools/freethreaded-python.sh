#!/usr/bin/env bash
# freethreaded-python.sh - a free-threaded CPython 3.13t, built from Debian's
# source package, and a venv with pool_ext installed into it.
#
#   bash tools/freethreaded-python.sh            # prints the venv's python
#   bash tools/freethreaded-python.sh --tsan     # the same, with ThreadSanitizer
#   PY=$(bash tools/freethreaded-python.sh) && PYTHON_GIL=0 "$PY" -m pytest ...
#
# The interpreter is built once into $POOL_FT_CACHE (default
# /var/tmp/pool_ext-cpython313t[-tsan]) and reused while it is there: about
# 5 minutes of CPU on 2 cores.  The source comes from Debian trixie's
# python3.13 package (3.13.5 at the time of writing), fetched through a
# private apt configuration (a deb-src line in a directory of our own): the
# system's apt sources are left alone.  Every -dev library the build needs
# is one Debian's python3 build uses; missing ones are installed with
# apt-get (as root).
#
# The venv ($cache/venv, or $POOL_FT_VENV) gets the build tools as wheels (numpy has cp313t
# wheels; pip must not compile it from source), then pool_ext from this
# checkout, built without isolation (the build requirements are there).
# With --tsan the interpreter is configured --with-thread-sanitizer and the
# extension is compiled with -fsanitize=thread (CFLAGS), as the
# free-threading guide for extension authors describes.
# Everything it prints on stdout is the venv's python path; progress goes to
# stderr.
set -euo pipefail
tsan=0
if [ "${1:-}" = "--tsan" ]; then tsan=1; shift; fi
repo=$(cd "$(dirname "$0")/.." && pwd)
suffix=$([ $tsan = 1 ] && echo -tsan || true)
cache=${POOL_FT_CACHE:-/var/tmp/pool_ext-cpython313t$suffix}
prefix=$cache/install
py=$prefix/bin/python3.13t
say() { echo "freethreaded-python: $*" >&2; }

if [ ! -x "$py" ]; then
  mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/src"
  printf 'deb-src http://deb.debian.org/debian trixie main\n' >"$cache/apt/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o "Dir::Etc::SourceParts=-"
           -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
           -o "APT::Sandbox::User=root")
  if ! ls "$cache"/src/python3.13_*.orig.tar.xz >/dev/null 2>&1; then
    say "fetching Debian trixie's python3.13 source package"
    apt-get "${aptopts[@]}" update -qq >&2
    (cd "$cache/src" && apt-get "${aptopts[@]}" source --download-only python3.13 >&2)
  fi
  # the libraries CPython's optional modules link against (already on most
  # build machines; installed from the system's own sources if missing)
  need=(libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev
        libreadline-dev libncurses-dev libgdbm-dev uuid-dev)
  missing=()
  for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
  fi
  build=$cache/build
  rm -rf "$build" && mkdir -p "$build"
  tarball=$(ls "$cache"/src/python3.13_*.orig.tar.* | grep -v '\.asc$' | head -1)
  tar -xf "$tarball" -C "$build" --strip-components=1
  conf=(--prefix="$prefix" --disable-gil --without-ensurepip --disable-test-modules)
  [ $tsan = 1 ] && conf+=(--with-thread-sanitizer)
  say "building CPython 3.13t in $build (a few minutes)"
  (cd "$build" && ./configure "${conf[@]}" >"$cache/configure.log" 2>&1 \
     && make -j"$(nproc)" >"$cache/make.log" 2>&1 && make install >"$cache/install.log" 2>&1) \
    || { say "build failed; see $cache/*.log"; tail -20 "$cache/make.log" >&2 || true; exit 1; }
  rm -rf "$build"
fi

venv=${POOL_FT_VENV:-$cache/venv}   # .ci/run: one of its own, in its scratch dir
if [ ! -x "$venv/bin/python" ]; then
  say "making $venv"
  "$py" -m venv "$venv"          # pip from the interpreter's bundled wheel
fi
"$venv/bin/python" -m pip install -q --only-binary=:all: \
  "scikit-build-core>=0.11" "cython>=3.1" "cython-cmake>=0.2" cmake ninja numpy >&2
if [ $tsan = 1 ]; then
  export CFLAGS="-fsanitize=thread -g -O1" LDFLAGS="-fsanitize=thread"
fi
say "installing pool_ext from $repo"
"$venv/bin/python" -m pip install -q --no-build-isolation \
  --config-settings=build-dir="$venv-build" "$repo" >&2
echo "$venv/bin/python"
