"""Builds the C core's validate programs with CMake and runs them: the core
in both atomics variants, and the wait queue with real threads."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

C_TESTS = Path(__file__).resolve().parent      # tests/c
ROOT = C_TESTS.parent.parent                    # the source checkout

pytestmark = pytest.mark.slow       # builds the C core with CMake: about 4 s


@pytest.fixture(scope="module")
def built(tmp_path_factory, cmake_exe, c_compiler):
    cmake = cmake_exe
    if cmake is None or c_compiler is None:
        pytest.skip("needs cmake and a C compiler (pip install -e .[test] brings cmake)")
    if not (C_TESTS.is_dir() and (ROOT / "src").is_dir()):
        pytest.skip("C sources not present (testing an installed wheel)")
    if os.name != "posix":
        pytest.skip("the validate program uses pthreads")
    build = tmp_path_factory.mktemp("ctest")
    subprocess.run([cmake, "-S", str(C_TESTS), "-B", str(build)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([cmake, "--build", str(build)], check=True)
    return build


@pytest.mark.parametrize("variant", ["atomic", "plain"])
def test_core_validate_program(built, variant):
    exe = built / (f"test_core_{variant}" + (".exe" if os.name == "nt" else ""))
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
    if variant == "atomic":
        assert "8 threads" in proc.stdout


def test_wait_queue_validate_program(built):
    exe = built / ("test_waitq" + (".exe" if os.name == "nt" else ""))
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout
    assert "no lost wake-up" in proc.stdout and "wakes them all" in proc.stdout


def test_shared_segment_validate_program(built):
    exe = built / ("test_shm" + (".exe" if os.name == "nt" else ""))
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 failed" in proc.stdout and "none held twice" in proc.stdout


@pytest.mark.parametrize("broken,message", [
    ("push_held", "push: the slot was not made FREE"),
    ("hold_held", "hold: the slot is not owned"),
    ("free_push_free", "free_push: the slot is not owned"),
    ("export_end_free", "export_end: an exported slot is neither HELD nor RETIRING"),
    ("out_of_range", "release_handle: index out of range"),
])
def test_pool_debug_asserts_stop_a_broken_life_cycle(built, broken, message):
    """POOL_DEBUG (the sanitizer builds): pool_slots.h's POOL_ASSERT aborts,
    with its message, on a transition the life cycle does not allow."""
    exe = built / ("test_debug" + (".exe" if os.name == "nt" else ""))
    ok = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "life cycle ok" in ok.stdout, ok.stdout + ok.stderr
    proc = subprocess.run([str(exe), broken], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "POOL_ASSERT" in proc.stderr and message in proc.stderr, proc.stderr
