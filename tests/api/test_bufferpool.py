"""BufferPool / PooledBuffer: the buffer protocol, deferred release, misuse."""
import gc
import io
import socket

import pytest

from pool_ext import BufferPool, PoolClosed, PoolError, PooledBuffer, PoolExhausted


def test_buffer_protocol_and_alignment(np):
    bufs = BufferPool(1000, 3, alignment=256)
    held = [bufs.acquire() for _ in range(3)]
    addrs = []
    for buf in held:
        assert len(buf) == 1000
        mv = memoryview(buf)
        assert mv.nbytes == 1000 and not mv.readonly and mv.format == "B"
        arr = np.frombuffer(buf, np.uint8)
        assert arr.ctypes.data % 256 == 0
        addrs.append(arr.ctypes.data)
        del arr
        mv.release()
    assert len(set(a // 64 for a in addrs)) == 3          # no shared cache line
    assert bufs.stride >= 1000 and bufs.stride % 256 == 0
    for buf in held:
        buf.release()
    assert bufs.in_use == 0 and bufs.available == 3 and bufs.size == 3


def test_readinto_recv_into_bytes(np):
    bufs = BufferPool(16, 1)
    with bufs.acquire() as buf:
        assert io.BytesIO(b"0123456789abcdefXYZ").readinto(buf) == 16
        assert bytes(buf) == b"0123456789abcdef"
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"hello")
            assert b.recv_into(buf) == 5
        assert bytes(buf)[:5] == b"hello"
        arr = np.frombuffer(buf, np.float32)
        assert arr.shape == (4,)
        del arr
    assert buf.released and bufs.in_use == 0


def test_use_after_release_raises_value_error(np):
    bufs = BufferPool(8, 1)
    buf = bufs.acquire()
    buf.release()
    for use in (memoryview, bytes, len, lambda b: np.frombuffer(b, np.uint8)):
        with pytest.raises(ValueError):
            use(buf)
    with pytest.raises(PoolError, match="already released"):
        buf.release()
    with pytest.raises(PoolError):
        bufs.release(buf)
    # the slot went back once: it can be handed out again, to one owner
    again = bufs.acquire(timeout=0)
    assert bufs.try_acquire() is None
    with pytest.raises(ValueError):
        memoryview(buf)                 # the old handle does not see the new owner's memory
    again.release()


def test_deferred_release_while_exported(np):
    bufs = BufferPool(64, 1)
    buf = bufs.acquire()
    mv = memoryview(buf)
    arr = np.frombuffer(buf, np.uint8)
    buf.release()
    assert buf.released
    assert bufs.in_use == 1 and bufs.try_acquire() is None   # still exported
    mv[0] = 7                            # the exporter may still use it
    del arr
    assert bufs.try_acquire() is None
    mv.release()                         # last export ends: slot is back
    assert bufs.in_use == 0
    bufs.acquire(timeout=0).release()


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


@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
def test_dropped_buffer_warns_and_returns_slot(reused):
    bufs = BufferPool(8, 1)
    if reused:
        bufs.acquire().release()           # cache the handle: the next one is reused
    buf = bufs.acquire()
    with pytest.warns(ResourceWarning, match="never released"):
        del buf
        gc.collect()
    assert bufs.in_use == 0
    bufs.acquire(timeout=0).release()


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


def test_release_through_the_pool_and_misuse():
    bufs, other = BufferPool(8, 1), BufferPool(8, 1)
    buf = bufs.acquire()
    with pytest.raises(PoolError):
        other.release(buf)
    with pytest.raises(PoolError):
        bufs.release(bytearray(8))
    assert bufs.in_use == 1
    bufs.release(buf)
    assert bufs.in_use == 0


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


def test_bad_construction():
    for args, kwargs, exc in [
        ((0, 1), {}, ValueError), ((8, 0), {}, ValueError), ((-1, 1), {}, ValueError),
        ((8, 1), {"alignment": 48}, ValueError), ((8, 1), {"alignment": 0}, ValueError),
        (("8", 1), {}, TypeError), ((8.0, 1), {}, TypeError), ((8, 1.0), {}, TypeError),
        ((8, 2**31), {}, ValueError), ((1 << 62, 1 << 20), {}, MemoryError),
    ]:
        with pytest.raises(exc):
            BufferPool(*args, **kwargs)


def test_handles_not_made_by_a_pool_are_dead():
    buf = PooledBuffer.__new__(PooledBuffer)
    with pytest.raises(ValueError):
        len(buf)
    with pytest.raises(ValueError):
        memoryview(buf)
    with pytest.raises(PoolError):
        buf.release()
    pool = BufferPool.__new__(BufferPool)
    with pytest.raises(PoolClosed):
        pool.acquire()


def test_close():
    bufs = BufferPool(8, 2)
    buf = bufs.acquire()
    bufs.close()
    with pytest.raises(PoolClosed):
        bufs.acquire()
    memoryview(buf)[0] = 1                # still valid until released
    buf.release()
    assert bufs.closed and bufs.available == 0


def test_released_handle_is_reused_only_when_nobody_holds_it():
    bufs = BufferPool(16, 1)
    first = bufs.acquire()
    first.release()
    again = bufs.acquire()                 # we still hold `first`: a new handle
    assert again is not first
    with pytest.raises(ValueError):
        memoryview(first)                  # the old one stays dead
    assert first.released and first.pool is None
    again.release()
    del first, again
    reused = bufs.acquire()                # nobody holds the cached handle
    memoryview(reused)[:3] = b"abc"        # and it works as a fresh one
    assert not reused.released and reused.pool is bufs and len(reused) == 16
    reused.release()
    assert bufs.in_use == 0


def test_pool_with_cached_handles_is_freed():
    bufs = BufferPool(16, 4)
    for _ in range(3):
        held = [bufs.acquire() for _ in range(4)]
        for b in held:
            b.release()
        del held
    del bufs
    gc.collect()
