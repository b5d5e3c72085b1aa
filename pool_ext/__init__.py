"""pool_ext: lock-free object, buffer and array pools for Python, in C.

>>> from pool_ext import ObjectPool
>>> pool = ObjectPool(dict, capacity=4)
>>> with pool.lease() as d:
...     d["hits"] = 1

See README.md for the full guide.
"""
try:
    from pool_ext._pool import (
        ATOMICS,
        MAX_CAPACITY,
        ArrayPool,
        BufferPool,
        Holder,
        LifoQueue,
        ObjectPool,
        PoolClosed,
        PoolError,
        PoolExhausted,
        PoolLeakWarning,
        PooledBuffer,
        Queue,
        SharedBuffer,
        SharedBufferPool,
        arrays,
    )
except ImportError as _error:
    # Only the extension's own absence is explained here; an ImportError
    # from inside it (a missing shared library, say) goes up unchanged.
    if _error.name != "pool_ext._pool":
        raise
    import os as _os
    _here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.isfile(_os.path.join(_here, "_pool.pyx")):
        raise ImportError(
            f"pool_ext's compiled extension, pool_ext._pool, is not built: this "
            f"Python imported the source checkout's pool_ext/ ({_here}), which "
            f"holds its sources only (Python looks in the current directory "
            f"first).  Install the package, `pip install .` in the checkout, "
            f"then run Python from outside the checkout (cd elsewhere), so that "
            f"it imports the installed pool_ext.") from _error
    raise ImportError(
        f"pool_ext's compiled extension, pool_ext._pool, is missing from {_here}: "
        f"the installation is incomplete or was built for another Python.  "
        f"Reinstall it with this Python (`python -m pip install --force-reinstall "
        f"--no-cache-dir .` in a source checkout).") from _error

__version__ = "0.1.0"

__all__ = [
    "ATOMICS",
    "MAX_CAPACITY",
    "ArrayPool",
    "BufferPool",
    "Holder",
    "LifoQueue",
    "ObjectPool",
    "PoolClosed",
    "PoolError",
    "PoolExhausted",
    "PoolLeakWarning",
    "PooledBuffer",
    "Queue",
    "SharedBuffer",
    "SharedBufferPool",
    "__version__",
    "arrays",
]
