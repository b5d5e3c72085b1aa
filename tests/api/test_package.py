"""The package's public names: __all__, MAX_CAPACITY, the exception hierarchy;
(that the tests see the installed package is test_installed_build.py)."""
import glob
import subprocess
import sys

import pytest

import pool_ext
from helpers import ROOT, SOURCE_TREE
from pool_ext import MAX_CAPACITY, PoolClosed, PoolError, PoolExhausted


def test_max_capacity_is_the_31_bit_index_limit():
    assert MAX_CAPACITY == 2**31 - 1


def test_public_names():
    assert set(pool_ext.__all__) >= {"ATOMICS", "MAX_CAPACITY", "BufferPool", "ObjectPool",
                                     "PoolClosed", "PoolError", "PoolExhausted",
                                     "PooledBuffer"}
    assert issubclass(PoolExhausted, TimeoutError)
    assert issubclass(PoolClosed, PoolError) and issubclass(PoolError, ValueError)


def test_import_from_the_source_checkout_says_what_to_do():
    """`import pool_ext` run from the repository's root finds the checkout's
    pool_ext/ (no compiled module in it): an ImportError that names the cause
    and the fix, not a bare ModuleNotFoundError for pool_ext._pool."""
    package = ROOT / "pool_ext"
    if not SOURCE_TREE or not (package / "_pool.pyx").is_file():
        pytest.skip("not a source checkout (the wheel tests copy tests/ only)")
    if glob.glob(str(package / "_pool.*.so")) + glob.glob(str(package / "_pool*.pyd")):
        pytest.skip("the checkout's pool_ext/ holds a built extension (an in-place build)")
    proc = subprocess.run([sys.executable, "-c", "import pool_ext"], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pool_ext's compiled extension, pool_ext._pool, "
                           "is not built"), proc.stderr
    assert "source checkout" in last and "pip install ." in last
    assert "outside the checkout" in last
