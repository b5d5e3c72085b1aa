"""BufferPool and its leases: zeroing, closing, the pool's lifetime.

What a PooledBuffer does is in test_pooledbuffer.py; bad arguments and
misuse in test_bad_input.py.
"""
import gc

import pytest

from pool_ext import BufferPool, PoolClosed, PooledBuffer, PoolExhausted


def test_zero_on_release():
    bufs = BufferPool(32, 1, zero_on_release=True)
    with bufs.acquire() as buf:
        memoryview(buf)[:] = b"\xff" * 32
    with bufs.acquire() as buf:
        assert bytes(buf) == bytes(32)
    plain = BufferPool(32, 1)
    with plain.acquire() as buf:
        memoryview(buf)[:4] = b"keep"
    with plain.acquire() as buf:
        assert bytes(buf)[:4] == b"keep"


def test_lease_and_exit_after_manual_release():
    bufs = BufferPool(8, 1)
    with bufs.lease() as buf:
        assert isinstance(buf, PooledBuffer)
        buf.release()                     # exit then does nothing more
    with bufs.acquire() as buf:
        pass
    assert bufs.in_use == 0
    with pytest.raises(PoolExhausted):
        with bufs.lease(timeout=0):
            with bufs.lease(timeout=0):
                pass
    assert bufs.in_use == 0


def test_close():
    bufs = BufferPool(8, 2)
    buf = bufs.acquire()
    bufs.close()
    with pytest.raises(PoolClosed):
        bufs.acquire()
    memoryview(buf)[0] = 1                # still valid until released
    buf.release()
    assert bufs.closed and bufs.available == 0


def test_pool_dropped_while_buffers_out():
    bufs = BufferPool(4096, 2)
    buf = bufs.acquire()
    mv = memoryview(buf)
    del bufs
    gc.collect()
    mv[:5] = b"alive"
    assert bytes(mv[:5]) == b"alive"
    mv.release()
    buf.release()


def test_pool_with_cached_handles_is_freed():
    bufs = BufferPool(16, 4)
    for _ in range(3):
        held = [bufs.acquire() for _ in range(4)]
        for b in held:
            b.release()
        del held
    del bufs
    gc.collect()
