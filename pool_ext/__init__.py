"""pool_ext: lock-free object, buffer and array pools for Python, in C.

>>> from pool_ext import ObjectPool
>>> pool = ObjectPool(dict, capacity=4)
>>> with pool.lease() as d:
...     d["hits"] = 1

See README.md for the full guide.
"""
from pool_ext._pool import (
    ATOMICS,
    MAX_CAPACITY,
    ArrayPool,
    BufferPool,
    Holder,
    ObjectPool,
    PoolClosed,
    PoolError,
    PoolExhausted,
    PoolLeakWarning,
    PooledBuffer,
    arrays,
)

__version__ = "0.1.0"

__all__ = [
    "ATOMICS",
    "MAX_CAPACITY",
    "ArrayPool",
    "BufferPool",
    "Holder",
    "ObjectPool",
    "PoolClosed",
    "PoolError",
    "PoolExhausted",
    "PoolLeakWarning",
    "PooledBuffer",
    "__version__",
    "arrays",
]
