"""pool_ext: lock-free object and buffer pools for Python, in C.

>>> from pool_ext import ObjectPool
>>> pool = ObjectPool(dict, capacity=4)
>>> with pool.lease() as d:
...     d["hits"] = 1

See README.md for the full guide.
"""
from pool_ext._pool import (
    ATOMICS,
    MAX_CAPACITY,
    BufferPool,
    Holder,
    ObjectPool,
    PoolClosed,
    PoolError,
    PoolExhausted,
    PooledBuffer,
    PoolLeakWarning,
)

__version__ = "0.1.0"

__all__ = [
    "ATOMICS",
    "MAX_CAPACITY",
    "BufferPool",
    "Holder",
    "ObjectPool",
    "PoolClosed",
    "PoolError",
    "PoolExhausted",
    "PoolLeakWarning",
    "PooledBuffer",
    "__version__",
]
