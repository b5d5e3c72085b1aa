"""numpy is a build requirement of pool_ext, not a runtime one.

A fresh virtual environment with no numpy in it (python -m venv
--without-pip: nothing is installed, nothing downloaded) imports a copy
of the installed pool_ext package: `import pool_ext` works, ObjectPool,
BufferPool and ArrayPool's buffers work, and every array call raises
ImportError saying `pip install numpy`.
"""
import os
import shutil
import subprocess
import sys
import textwrap
import venv

import pytest

import pool_ext
import pool_ext._pool

CHILD = textwrap.dedent("""
    import sys
    try:
        import numpy
    except ImportError:
        pass
    else:
        raise SystemExit(f"numpy is importable here: {numpy.__file__}")
    import pool_ext
    from pool_ext import ArrayPool, BufferPool, ObjectPool, arrays
    assert "numpy" not in sys.modules
    with arrays.lease(100) as buf:                 # buffers need no numpy
        memoryview(buf)[:3] = b"abc"
    pool = ArrayPool(max_bytes=1 << 20)
    pool.acquire(10).release()
    BufferPool(64, 1).acquire().release()
    ObjectPool(dict, 1).acquire()
    calls = [lambda: arrays.empty(3), lambda: arrays.zeros((2, 2)),
             lambda: arrays.empty_like([1, 2]), lambda: pool.borrow(3).__enter__(),
             lambda: BufferPool(64, 1).empty(3), lambda: BufferPool(64, 1).zeros(3)]
    for call in calls:
        try:
            call()
        except ImportError as exc:
            assert "pip install numpy" in str(exc) or (
                not pool_ext._pool._NUMPY_HEADERS and "built without numpy" in str(exc)), exc
        else:
            raise SystemExit("an array call worked without numpy")
    assert sum(c["out"] for c in pool.stats()["classes"].values()) == 0
    print("no-numpy ok")
""")


def test_import_does_not_import_numpy(tmp_path):
    # Run outside the checkout, so the installed build is imported, not the
    # source tree's pool_ext/ (which has no compiled module).
    proc = subprocess.run([sys.executable, "-c",
                           "import sys, pool_ext; from pool_ext import arrays; "
                           "assert 'numpy' not in sys.modules, 'numpy imported'"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_without_numpy(tmp_path):
    env_dir = tmp_path / "venv"
    try:
        venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    except Exception as exc:   # pragma: no cover - no venv module support here
        pytest.skip(f"cannot create a virtual environment here: {exc!r}")
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # A copy of the installed package (its Python files and compiled modules),
    # on PYTHONPATH: the venv itself has nothing installed.
    pkg = tmp_path / "site" / "pool_ext"
    shutil.copytree(os.path.dirname(pool_ext.__file__), pkg,
                    ignore=shutil.ignore_patterns("*.pyx", "*.pxi", "*.pxd", "includes",
                                                  "__pycache__"))
    for mod in (pool_ext._pool,):
        shutil.copy2(mod.__file__, pkg)
    floor = [f for f in os.listdir(os.path.dirname(pool_ext._pool.__file__))
             if f.startswith("_floor")]
    for f in floor:
        shutil.copy2(os.path.join(os.path.dirname(pool_ext._pool.__file__), f), pkg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(pkg.parent)
    proc = subprocess.run([str(python), "-c", CHILD], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no-numpy ok" in proc.stdout
