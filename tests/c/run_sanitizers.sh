#!/usr/bin/env bash
# Builds the C core's validate program (tests/c) under sanitizers, with POOL_DEBUG
# (pool_slots.h's POOL_ASSERT checks), and runs it:
#   1. -DPOOL_SANITIZE=thread            -> test_core_atomic, test_waitq, test_classes,
#                                           test_shm (threads)
#   2. -DPOOL_SANITIZE=address,undefined -> test_core_atomic, test_core_plain, test_waitq,
#                                           test_classes, test_shm
# Any sanitizer report, or any failed check, makes this script exit non-zero.
#
# Environment:
#   CC          C compiler (default: gcc, else cc, else clang)
#   CMAKE       cmake binary (default: cmake on PATH, else the PyPI cmake
#               package's binary, found through $PYTHON)
#   PYTHON      interpreter used to find the PyPI cmake (default: python3)
#   BUILD_ROOT  where to build (default: a temporary directory, removed after)
#   ITERS       operations per thread (default: test_core.c's 200000)
#   SANITIZERS  which runs, default "thread address,undefined"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

find_cmake() {
    if [[ -n "${CMAKE:-}" ]]; then echo "$CMAKE"; return; fi
    if command -v cmake >/dev/null 2>&1 && cmake --version >/dev/null 2>&1; then
        command -v cmake; return
    fi
    local py=${PYTHON:-python3} dir
    if dir=$("$py" -c 'import cmake, sys; sys.stdout.write(cmake.CMAKE_BIN_DIR)' 2>/dev/null) \
            && [[ -x "$dir/cmake" ]]; then
        echo "$dir/cmake"; return
    fi
    return 1
}

find_cc() {
    if [[ -n "${CC:-}" ]]; then echo "$CC"; return; fi
    local c
    for c in gcc cc clang; do
        if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
    done
    return 1
}

cmake_bin=$(find_cmake) || { echo "run_sanitizers: no cmake (PATH, \$CMAKE or pip install cmake)" >&2; exit 2; }
cc_bin=$(find_cc) || { echo "run_sanitizers: no C compiler (set CC)" >&2; exit 2; }
echo "run_sanitizers: cmake=$cmake_bin cc=$cc_bin ($("$cc_bin" --version | head -n1))"

if [[ -n "${BUILD_ROOT:-}" ]]; then
    root=$BUILD_ROOT
    mkdir -p "$root"
else
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
fi

# Reports are failures: stop at the first one, with a distinctive exit code.
# LeakSanitizer only on Linux: Apple's clang aborts every run with
# "detect_leaks is not supported on this platform" when it is asked for.
leaks=""
if [[ $(uname -s) == Linux ]]; then leaks="detect_leaks=1"; fi
# The builds define POOL_DEBUG (tests/c/CMakeLists.txt): a failed POOL_ASSERT
# prints its message and abort()s; handle_abort=1 adds the sanitizer's stack.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 handle_abort=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="halt_on_error=1 exitcode=67 ${leaks} abort_on_error=0 handle_abort=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"

failed=0
run_one() {   # run_one <sanitizers> <program...>
    local san=$1; shift
    local build="$root/${san//,/-}"
    local defs=(-DPOOL_SANITIZE="$san" -DPOOL_DEBUG=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
    [[ -n "${ITERS:-}" ]] && defs+=(-DITERS="$ITERS")
    echo "== build: -DPOOL_SANITIZE=$san -DPOOL_DEBUG=ON"
    CC="$cc_bin" "$cmake_bin" -S "$here" -B "$build" "${defs[@]}" >"$build.configure.log" 2>&1 \
        || { cat "$build.configure.log"; echo "FAIL: configure ($san)"; failed=1; return; }
    if ! "$cmake_bin" --build "$build" >"$build.build.log" 2>&1; then
        cat "$build.build.log"; echo "FAIL: build ($san)"; failed=1; return
    fi
    local v exe log rc
    for v in "$@"; do
        exe="$build/$v"
        log="$build/run_$v.log"
        echo "== run: $v under $san"
        set +e
        "$exe" >"$log" 2>&1
        rc=$?
        if [[ $rc -ne 0 && "$san" == thread ]] && grep -q "unexpected memory mapping" "$log" \
                && command -v setarch >/dev/null 2>&1; then
            # older TSan runtimes cannot cope with high-entropy ASLR: run without it
            setarch "$(uname -m)" -R "$exe" >"$log" 2>&1
            rc=$?
        fi
        set -e
        tail -n 5 "$log"
        if [[ $rc -ne 0 ]] || grep -Eq "WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: " "$log" \
                || ! grep -q " 0 failed" "$log"; then
            echo "FAIL: $v under $san (exit $rc); full log:"
            cat "$log"
            failed=1
        else
            echo "ok: $v under $san"
        fi
    done
}

for san in ${SANITIZERS:-thread address,undefined}; do
    case $san in
        thread) run_one thread test_core_atomic test_waitq test_classes test_shm ;;  # plain: one thread
        *) run_one "$san" test_core_atomic test_core_plain test_waitq test_classes test_shm ;;
    esac
done

if [[ $failed -ne 0 ]]; then
    echo "run_sanitizers: FAILED"
    exit 1
fi
echo "run_sanitizers: all clean"
