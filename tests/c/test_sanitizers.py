"""Runs tests/c/run_sanitizers.sh: the C core's validate programs under
ThreadSanitizer (the atomic variant and the wait queue, with threads) and
AddressSanitizer + UndefinedBehaviorSanitizer (all three).  Any report
fails the test."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "run_sanitizers.sh"
ROOT = SCRIPT.parent.parent.parent              # the source checkout


@pytest.mark.slow
def test_c_core_under_sanitizers(tmp_path, cmake_exe, c_compiler):
    if (os.name != "posix" or not SCRIPT.is_file() or not (ROOT / "src").is_dir()
            or shutil.which("bash") is None):
        pytest.skip("needs bash and the C sources (a source checkout on a POSIX system)")
    cmake = cmake_exe
    cc = c_compiler
    if cmake is None or cc is None:
        pytest.skip("needs cmake and a C compiler")
    env = dict(os.environ, CMAKE=cmake, CC=cc, PYTHON=sys.executable,
               BUILD_ROOT=str(tmp_path))
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                          timeout=1200, env=env)
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "run_sanitizers: all clean" in proc.stdout
    assert proc.stdout.count("ok: test_core_") == 3
    assert proc.stdout.count("ok: test_waitq") == 2
    assert proc.stdout.count("ok: test_classes") == 2
    assert proc.stdout.count("ok: test_shm") == 2


@pytest.mark.skipif(os.name != "posix" or shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("system,leaks", [("Linux", True), ("Darwin", False)])
def test_leak_detection_is_asked_for_only_on_linux(tmp_path, system, leaks):
    """run_sanitizers.sh sets ASAN_OPTIONS=detect_leaks=1 on Linux only: Apple's
    clang aborts every run asked for it.  Stand-ins for uname, the compiler
    and cmake (which records what the script exported, then fails) let this
    check the script on any POSIX system without building anything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "asan_options"
    stand_ins = {
        "uname": f'if [ "$1" = -s ]; then echo {system}; else echo x86_64; fi',
        "cc": 'echo "stand-in cc 1.0"',
        "cmake": f'echo "$ASAN_OPTIONS" > "{record}"; exit 1',
    }
    for name, body in stand_ins.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               CC=str(bin_dir / "cc"), CMAKE=str(bin_dir / "cmake"),
               SANITIZERS="address,undefined", BUILD_ROOT=str(tmp_path / "build"))
    env.pop("ASAN_OPTIONS", None)
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                          timeout=60, env=env)
    print(proc.stdout, proc.stderr)
    assert "FAIL: configure" in proc.stdout and proc.returncode == 1   # the stand-in cmake
    options = record.read_text().split()
    assert ("detect_leaks=1" in options) is leaks, options
    assert "halt_on_error=1" in options and "exitcode=67" in options, options
