"""The package's public names: __all__, MAX_CAPACITY, the exception hierarchy;
and that the tests see the installed package, not the checkout."""
import sys
from pathlib import Path

import pool_ext
from helpers import ROOT
from pool_ext import MAX_CAPACITY, PoolClosed, PoolError, PoolExhausted


def test_max_capacity_is_the_31_bit_index_limit():
    assert MAX_CAPACITY == 2**31 - 1


def test_public_names():
    assert set(pool_ext.__all__) >= {"ATOMICS", "MAX_CAPACITY", "BufferPool", "ObjectPool",
                                     "PoolClosed", "PoolError", "PoolExhausted",
                                     "PooledBuffer"}
    assert issubclass(PoolExhausted, TimeoutError)
    assert issubclass(PoolClosed, PoolError) and issubclass(PoolError, ValueError)


def test_the_tests_import_the_installed_package():
    """The checkout's pool_ext/ has no compiled module: the tests must import
    the installed one, so the directory that holds tests/ must not be on
    sys.path (no tests/__init__.py; helpers come through pytest's pythonpath).
    `python -m pytest` from the checkout fails here; plain `pytest` passes."""
    assert str(ROOT) not in [str(Path(p).resolve()) for p in sys.path if p]
    package = Path(pool_ext.__file__).resolve().parent
    assert package != ROOT / "pool_ext"
    assert Path(pool_ext._pool.__file__).resolve().parent == package   # compiled, beside it
