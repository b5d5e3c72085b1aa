"""Garbage collection with hand-outs out: a pool collected while its
objects, leases, buffers and exports are still held, and pools in reference
cycles with what they handed out."""
import gc

import pytest

from helpers import run_script
from pool_ext import BufferPool, ObjectPool, PoolError


def test_objectpool_collected_while_leases_and_objects_are_out():
    class Conn:
        pass

    destroyed = []
    pool = ObjectPool(Conn, 3, destroy=destroyed.append)
    a = pool.acquire()
    lease = pool.lease()
    b = lease.__enter__()
    del pool
    gc.collect()
    # the lease keeps its pool alive; exiting it releases into that pool
    assert lease.__exit__(None, None, None) is False
    del lease
    gc.collect()
    assert isinstance(a, Conn) and isinstance(b, Conn)
    assert destroyed == []          # destroy() is for close(), not for GC


@pytest.mark.slow                   # 50 rounds of gc.collect(): about 4 s
def test_objectpool_in_a_cycle_with_objects_that_release_themselves():
    """obj -> pool -> obj: the collector runs __del__ (which releases into
    the pool) before it clears anything."""
    log = []

    class SelfReleasing:
        def __del__(self):
            try:
                self.pool.release(self)
                log.append("released")
            except PoolError as e:
                log.append(type(e).__name__)

    current = {}

    def make():
        o = SelfReleasing()
        o.pool = current["pool"]
        return o

    for _ in range(50):
        pool = current["pool"] = ObjectPool(make, 4, reset=lambda o: None)
        held = [pool.acquire() for _ in range(4)]
        for o in held[:2]:
            pool.release(o)
        lease = pool.lease()
        lease.__enter__()
        current.clear()
        del held, o, pool
        with pytest.warns(ResourceWarning, match="never exited"):
            del lease            # entered, never exited: gives its object back
            gc.collect()
    # held ones release themselves; idle ones find they are not in use
    assert set(log) == {"released", "PoolError"}, log


def test_bufferpool_collected_while_buffers_and_exports_are_out():
    import warnings
    bufs = BufferPool(4096, 4, zero_on_release=True)
    kept = bufs.acquire()
    lease = bufs.lease()
    leased = lease.__enter__()
    exported = bufs.acquire()
    view = memoryview(exported)
    exported.release()              # deferred: the view still exports it
    dropped = bufs.acquire()
    del bufs
    gc.collect()
    view[:3] = b"abc"
    assert bytes(view[:3]) == b"abc"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del dropped                 # unreleased handle: warns, returns its slot
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)
    pool = kept.pool
    assert pool.in_use == 3
    view.release()
    lease.__exit__(None, None, None)
    kept.release()
    assert pool.in_use == 0 and pool.stats()["acquires"] == pool.stats()["releases"] == 4
    del pool, kept, leased, lease, exported
    gc.collect()


def test_buffer_in_a_reference_cycle_is_collected_and_returned():
    import warnings
    bufs = BufferPool(64, 2)

    class Holder:
        pass

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(20):
            h = Holder()
            h.me = h
            h.buf = bufs.acquire()
            h.view = memoryview(h.buf)
            del h
            gc.collect()
    assert bufs.in_use == 0
    assert sum(issubclass(x.category, ResourceWarning) for x in w) == 20


def test_ndarray_over_a_released_cached_handle_never_sees_freed_memory(tmp_path, np):
    """np.ndarray(buffer=buf) keeps the handle as its base, not an export:
    after release, the handle must still keep the memory alive (it was
    cached, let go of its pool, and the arena was freed: a segfault)."""
    proc = run_script(tmp_path, """
        import gc
        import numpy as np
        from pool_ext import BufferPool
        size = 4 << 20           # above glibc's mmap threshold: freeing unmaps
        bufs = BufferPool(size, 2)
        buf = bufs.acquire()
        a = np.ndarray((size,), np.uint8, buffer=buf)   # drops its export at once
        buf.release()            # the handle goes to the pool's cache
        b2 = bufs.acquire()      # the pool must not hand this handle out again...
        assert b2 is not buf
        b2.release()
        del buf, b2, bufs
        gc.collect()             # ...nor free the memory `a` still reaches
        a[:] = 7
        assert int(a.sum()) == 7 * size
        print("OK")
    """)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


@pytest.mark.parametrize("hooks", [{}, {"reset": "reset"}, {"validate": "validate"}],
                         ids=["plain", "reset", "validate"])
def test_objectpool_in_a_cycle_with_a_lease_never_exited(tmp_path, hooks):
    """obj -> lease -> pool -> obj: the collector's tp_clear of the pool drops
    its objects, whose death drops the lease, which gives its slot back into
    the cleared pool: that read a NULL object (a segfault, found by the
    break-it review).  A child process, so a crash fails one test."""
    proc = run_script(tmp_path, """
        import gc, sys, warnings
        from pool_ext import ObjectPool
        class Obj:
            pass
        kw = {name: (lambda o: True) for name in sys.argv[1:]}
        def make():
            pool = ObjectPool(Obj, 2, **kw)
            lease = pool.lease()
            obj = lease.__enter__()
            obj.lease = lease
            other = pool.lease()
            o2 = other.__enter__()
            o2.lease, o2.pool = other, pool
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(20):
            make()
            gc.collect()
        print("collected")
    """, *hooks.values())
    assert proc.returncode == 0 and "collected" in proc.stdout
