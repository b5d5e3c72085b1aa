"""PooledBuffer: the buffer protocol, alignment, deferred release while
exported, a dropped handle, handle reuse."""
import gc
import io
import socket

import pytest

from pool_ext import BufferPool


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


def test_pooled_buffer_pool_is_none_after_any_release():
    bufs = BufferPool(64, 1)
    buf = bufs.acquire()
    assert buf.pool is bufs
    view = memoryview(buf)
    buf.release()                # deferred: the view is alive
    assert buf.released and buf.pool is None
    assert bufs.in_use == 1
    view.release()
    assert buf.pool is None and bufs.in_use == 0


def test_a_weakly_referenced_handle_is_not_reused():
    """GIL builds reuse a released handle nobody references; a weak
    reference is not counted in the refcount, so it came back to life as the
    next owner's live handle (found by the break-it review)."""
    import weakref
    bufs = BufferPool(64, 1)
    b = bufs.acquire()
    w = weakref.ref(b)
    finalized = []
    weakref.finalize(b, finalized.append, True)
    b.release()
    del b
    gc.collect()
    assert w() is None and finalized == [True]
    b2 = bufs.acquire()
    assert w() is None and not b2.released
    b2.release()


def test_a_handle_weakly_referenced_after_its_release_is_not_reused():
    import weakref
    bufs = BufferPool(64, 1)
    b = bufs.acquire()
    b.release()
    w = weakref.ref(b)                                # taken after the release
    del b
    b2 = bufs.acquire()
    assert w() is None or w() is not b2
    with memoryview(b2) as m:
        m[:3] = b"new"
    if w() is not None:
        with pytest.raises(ValueError):
            memoryview(w())
    b2.release()
