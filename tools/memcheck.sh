#!/usr/bin/env bash
# Runs a subset of the Python test suite under valgrind memcheck, with
# PYTHONMALLOC=malloc so every Python allocation is visible to valgrind.
# Any memcheck error (invalid read/write, use of uninitialised memory,
# invalid free, definite leak) whose stack passes through pool_ext (the
# _pool extension or the C core) fails the script.  Errors entirely inside
# CPython or glibc (valgrind false positives such as AVX2 wmemcmp reads, or
# int.from_bytes on getrandom() output) are counted and listed, not fatal.
# A pytest failure under valgrind also fails the script.  Not part of
# .ci/run: it takes several minutes.
#
#   tools/memcheck.sh                     # the default subset
#   tools/memcheck.sh tests/api/test_foo.py  # your own pytest arguments
#
# Environment:
#   PYTHON   the interpreter whose environment has pool_ext and pytest
#            installed (default: python3); pytest is run as the script next
#            to it, so the installed package is tested, not the source tree
#   VALGRIND valgrind binary (default: valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VALGRIND=${VALGRIND:-valgrind}
command -v "$VALGRIND" >/dev/null || { echo "memcheck: valgrind not found" >&2; exit 2; }
bindir=$("$PYTHON" -c 'import sys, os; print(os.path.dirname(sys.executable))')
pytest_script="$bindir/pytest"
[[ -x "$pytest_script" ]] || { echo "memcheck: no pytest next to $PYTHON" >&2; exit 2; }

if [[ $# -eq 0 ]]; then
    # the API tests, the bad-input table, a short stateful run and a short
    # stress run: every code path of both pools, small counts
    set -- tests/api tests/concurrency/test_statemachine.py tests/concurrency/test_stress.py \
        -k "not allocation_failure and not huge_and_infinite and not fork" \
        -p no:cacheprovider -q
fi

log=$(mktemp /tmp/memcheck.XXXXXX.log)
echo "memcheck: log in $log"
export PYTHONMALLOC=malloc
export POOL_STRESS_OPS=${POOL_STRESS_OPS:-300} POOL_STRESS_THREADS=${POOL_STRESS_THREADS:-4}
export POOL_HYPOTHESIS_EXAMPLES=${POOL_HYPOTHESIS_EXAMPLES:-15}
set +e
"$VALGRIND" --tool=memcheck --errors-for-leak-kinds=definite \
    --leak-check=full --show-leak-kinds=definite --track-origins=yes \
    --num-callers=40 --log-file="$log" \
    "$PYTHON" "$pytest_script" "$@"
rc=$?
set -e
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$log" || true
set +e
"$PYTHON" - "$log" <<'PARSE'
import collections, re, sys
blocks, cur = [], None
start = re.compile(r"(Invalid |Use of uninit|Conditional jump|Syscall param|Mismatched|"
                   r"Source and destination|Argument |.*definitely lost in loss record)")
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"==\d+== ?(.*)$", line.rstrip("\n"))
    if not m:
        continue
    body = m.group(1)
    if cur is None:
        if start.match(body):
            cur = [body]
    elif body.strip() == "":
        blocks.append(cur)
        cur = None
    else:
        cur.append(body)
ours = re.compile(r"_pool\.c|_pool\.cpython|pool_ext|[/ ]pool_[a-z]+\.[ch]:|\bpool_[a-z_]+ \(")
mine = [b for b in blocks if any(ours.search(l) for l in b)]
kinds = collections.Counter("definite leak" if "definitely lost" in b[0]
                            else b[0].split(" of size")[0] for b in blocks)
print(f"memcheck: {len(blocks)} error contexts, {len(mine)} in pool_ext; "
      f"by kind: {dict(kinds)}")
for b in mine[:20]:
    print("\n".join(b[:30]))
    print("----")
sys.exit(1 if mine else 0)
PARSE
ours_rc=$?
set -e
if [[ $ours_rc -ne 0 ]]; then
    echo "memcheck: valgrind reported errors in pool_ext (see $log)"
    exit 1
elif [[ $rc -ne 0 ]]; then
    echo "memcheck: pytest failed under valgrind (exit $rc; see $log)"
    exit "$rc"
fi
echo "memcheck: clean (no error in pool_ext; full log $log)"
