"""The package's public names: __all__, MAX_CAPACITY, the exception hierarchy;
(that the tests see the installed package is test_installed_build.py)."""
import pool_ext
from pool_ext import MAX_CAPACITY, PoolClosed, PoolError, PoolExhausted


def test_max_capacity_is_the_31_bit_index_limit():
    assert MAX_CAPACITY == 2**31 - 1


def test_public_names():
    assert set(pool_ext.__all__) >= {"ATOMICS", "MAX_CAPACITY", "BufferPool", "ObjectPool",
                                     "PoolClosed", "PoolError", "PoolExhausted",
                                     "PooledBuffer"}
    assert issubclass(PoolExhausted, TimeoutError)
    assert issubclass(PoolClosed, PoolError) and issubclass(PoolError, ValueError)
