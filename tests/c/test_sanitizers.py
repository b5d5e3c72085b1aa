"""Runs tests/c/run_sanitizers.sh: the C core's validate program under
ThreadSanitizer (8 threads, atomic variant) and AddressSanitizer +
UndefinedBehaviorSanitizer (both variants).  Any report fails the test."""
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
