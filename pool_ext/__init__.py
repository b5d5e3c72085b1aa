"""pool_ext: lock-free object and buffer pools for Python, in C.

>>> from pool_ext import ObjectPool
>>> pool = ObjectPool(dict, capacity=4)
>>> with pool.lease() as d:
...     d["hits"] = 1

See README.md for the full guide.
"""
def _borrow_installed_build():
    """`python -m pool_ext ...` run from a source checkout puts the checkout
    (which has no compiled modules) first on sys.path, ahead of the installed
    package.  Let this package also search the installed copy's directory,
    so the README's `pip install . && python -m pool_ext bench` works from
    the repository root.  Never used when pool_ext is imported normally."""
    import importlib.machinery
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or "."), "pool_ext")
        if candidate == here or not os.path.isdir(candidate):
            continue
        names = os.listdir(candidate)
        if any(n.startswith("_pool.") and n.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
               for n in names):
            __path__.append(candidate)
            return
    raise ImportError("pool_ext's compiled module is missing: install the package "
                      "(pip install .) and run from outside the source tree")


try:
    import pool_ext._pool  # noqa: F401
except ModuleNotFoundError as _e:
    if _e.name != "pool_ext._pool":
        raise
    _borrow_installed_build()

from pool_ext._pool import (
    ATOMICS,
    MAX_CAPACITY,
    BufferPool,
    ObjectPool,
    PoolClosed,
    PoolError,
    PoolExhausted,
    PooledBuffer,
)

__version__ = "0.1.0"

__all__ = [
    "ATOMICS",
    "MAX_CAPACITY",
    "BufferPool",
    "ObjectPool",
    "PoolClosed",
    "PoolError",
    "PoolExhausted",
    "PooledBuffer",
    "__version__",
]
