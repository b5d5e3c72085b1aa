"""The stubs (pool_ext/_pool.pyi, with py.typed) match the compiled module:
`python -m mypy.stubtest pool_ext`, against the installed package.

Justified exceptions are in stubtest_allowlist.txt, each with its reason.
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install .[test] brings it)")

HERE = Path(__file__).resolve().parent


@pytest.mark.slow                   # mypy analyses the whole package: about 10 s
def test_stubs_match_the_runtime(tmp_path):
    # cwd: not the source tree, whose pool_ext/ (no compiled module) `-m`
    # would put first on sys.path; mypy's cache goes there too.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "pool_ext",
         "--allowlist", str(HERE / "stubtest_allowlist.txt"), "--ignore-unused-allowlist",
         "--mypy-config-file", str(HERE / "stubtest_mypy.ini")],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
