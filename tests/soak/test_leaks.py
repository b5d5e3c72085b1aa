"""Reference and memory leaks: many acquire/release cycles of every kind,
measured with tracemalloc (Python allocations, raw ones included) and RSS
(/proc/self/statm: also sees C allocations tracemalloc cannot), before and
after, each after a warm-up.  Growth beyond a small fixed bound fails.

Cycles per kind: POOL_LEAK_CYCLES (default 1,000,000).  1M of every kind
takes about 95 s here (error paths build an exception per cycle, ~7 us under
tracemalloc), over this file's budget, so by default the error paths run a
quarter of that and the wait-path and whole-pool kinds 1-2 % (see SCALE):
about 30 s.  POOL_LEAK_FULL=1 runs every kind for the full POOL_LEAK_CYCLES
(but the really sleeping waits, capped at 20,000).  Both are read in
conftest.py (the `knobs` fixture).
"""
import asyncio
import gc
import sys
import tracemalloc

import pytest

from helpers import Boom, Thing, rss
from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolError, PoolExhausted

pytestmark = pytest.mark.slow

TRACED_BOUND = 64 * 1024            # bytes of Python allocations still alive
RSS_BOUND = 2 * 1024 * 1024         # bytes of resident memory


# ---- one function per kind: runs n cycles -----------------------------------

def objects(n):
    pool = ObjectPool(Thing, 2)
    acquire, release = pool.acquire, pool.release
    for _ in range(n):
        release(acquire())
    assert pool.in_use == 0 and pool.size == 1


def objects_with_hooks(n):
    """reset on every release; validate drops every 4th: destroy + refill."""
    k = [0]

    def validate(o):
        k[0] += 1
        return k[0] % 4 != 0

    pool = ObjectPool(Thing, 2, reset=lambda o: None, validate=validate,
                      destroy=lambda o: None)
    acquire, release = pool.acquire, pool.release
    for _ in range(n):
        release(acquire())
    assert pool.in_use == 0


def object_leases(n):
    pool = ObjectPool(Thing, 1)
    lease = pool.lease
    for _ in range(n):
        with lease(timeout=0) as o:
            o.n += 1
    assert pool.in_use == 0


def object_lease_exceptions(n):
    pool = ObjectPool(Thing, 1)
    for _ in range(n):
        try:
            with pool.lease():
                raise Boom
        except Boom:
            pass
    assert pool.in_use == 0


def object_double_release(n):
    pool = ObjectPool(Thing, 1)
    o = pool.acquire()
    pool.release(o)
    release = pool.release
    for _ in range(n):
        try:
            release(o)
        except PoolError:
            pass
    assert pool.stats()["releases"] == 1


def object_foreign_release(n):
    pool = ObjectPool(Thing, 1)
    stranger = Thing()
    for _ in range(n):
        try:
            pool.release(stranger)
        except PoolError:
            pass


def object_timeout_zero(n):
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    acquire = pool.acquire
    for _ in range(n):
        try:
            acquire(timeout=0)
        except PoolExhausted:
            pass
    assert pool.try_acquire() is None
    pool.release(held)
    assert pool.stats()["timeouts"] == n


def object_factory_exceptions(n):
    def factory():
        raise Boom("no connection")

    pool = ObjectPool(factory, 1)
    for _ in range(n):
        try:
            pool.acquire()
        except Boom:
            pass
    assert pool.in_use == 0 and pool.available == 1


def object_hook_exceptions(n):
    def reset(o):
        raise Boom

    pool = ObjectPool(Thing, 1, reset=reset)
    for _ in range(n):
        o = pool.acquire()
        try:
            pool.release(o)
        except Boom:
            pass
    assert pool.in_use == 0 and pool.size == 0


def object_closed(n):
    pool = ObjectPool(Thing, 1)
    pool.close()
    for _ in range(n):
        try:
            pool.try_acquire()
        except PoolClosed:
            pass


def object_waits(n):
    """The slow path of acquire(): queue a waiter (a lock allocated each
    time), find the deadline already passed, leave the queue, PoolExhausted."""
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    for _ in range(n):
        try:
            pool.acquire(timeout=1e-6)
        except PoolExhausted:
            pass
    pool.release(held)
    assert pool.stats()["waiting"] == 0


def object_sleeping_waits(n):
    """Real sleeps: every other acquire waits 0.2 ms and times out; the others
    are woken by a release from another thread."""
    import threading
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    for i in range(n):
        if i & 1:
            try:
                pool.acquire(timeout=0.0002)
            except PoolExhausted:
                pass
        else:
            t = threading.Timer(0.0001, pool.release, args=(held,))
            t.start()
            held = pool.acquire(timeout=10)
            t.join()
    pool.release(held)
    assert pool.stats()["waiting"] == 0 and pool.in_use == 0


def buffers(n):
    bufs = BufferPool(4096, 2)
    acquire = bufs.acquire
    for _ in range(n):
        acquire().release()
    assert bufs.in_use == 0


def buffer_leases(n):
    bufs = BufferPool(64, 1)
    for _ in range(n):
        with bufs.lease(timeout=0):
            pass
    assert bufs.in_use == 0


def buffer_lease_exceptions(n):
    bufs = BufferPool(64, 1)
    for _ in range(n):
        try:
            with bufs.acquire():
                raise Boom
        except Boom:
            pass
    assert bufs.in_use == 0


def buffer_exports(n):
    """memoryview of a buffer, and release while it is exported (deferred)."""
    bufs = BufferPool(64, 1, zero_on_release=True)
    for i in range(n):
        b = bufs.acquire()
        v = memoryview(b)
        v[0] = 1
        if i & 1:
            b.release()
            v.release()
        else:
            v.release()
            b.release()
    assert bufs.in_use == 0


def buffer_double_release(n):
    bufs = BufferPool(64, 1)
    b = bufs.acquire()
    b.release()
    for _ in range(n):
        try:
            b.release()
        except PoolError:
            pass
        try:
            len(b)
        except ValueError:
            pass


def buffer_timeout_zero(n):
    bufs = BufferPool(64, 1)
    held = bufs.acquire()
    for _ in range(n):
        try:
            bufs.acquire(timeout=0)
        except PoolExhausted:
            pass
    held.release()


def buffer_waits(n):
    bufs = BufferPool(64, 1)
    held = bufs.acquire()
    for _ in range(n):
        try:
            bufs.acquire(timeout=1e-6)
        except PoolExhausted:
            pass
    held.release()


def pools(n):
    """Whole pools built and dropped, some with hand-outs still out."""
    for i in range(n):
        p = ObjectPool(Thing, 4, prefill=2)
        o = p.acquire()
        if i & 1:
            p.release(o)
        b = BufferPool(256, 4)
        h = b.acquire()
        h.release()
        if i & 1:
            p.close()
        del p, b, h, o


def object_async(n):
    """acquire_async / release on a loop, the fast path."""
    pool = ObjectPool(Thing, 2)

    async def main():
        acquire, release = pool.acquire_async, pool.release
        for _ in range(n):
            release(await acquire())

    asyncio.run(main())
    assert pool.in_use == 0


def object_async_cancelled_waits(n):
    """A task waits (a future, a queue record, a timer) and is cancelled."""
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()

    async def main():
        for _ in range(n):
            t = asyncio.ensure_future(pool.acquire_async(timeout=10))
            await asyncio.sleep(0)
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass

    asyncio.run(main())
    pool.release(held)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def objects_tracked(n):
    """Tracked hand-outs of both pools (a record per hand-out), read now and then."""
    pool = ObjectPool(Thing, 2, track=True)
    bufs = BufferPool(64, 2, track=True)
    for i in range(n):
        o = pool.acquire()
        b = bufs.acquire()
        if i % 1000 == 0:
            assert len(pool.holders()) == 1 and len(bufs.holders()) == 1
        b.release()
        pool.release(o)
    assert pool.stats()["holds"] == n


def objects_health(n):
    """check() failing every 3rd, max_lifetime expiring, discard() every 5th,
    stats(reset=True): rejected objects, refills and discards."""
    k = [0]

    def check(o):
        k[0] += 1
        return k[0] % 3 != 0

    pool = ObjectPool(Thing, 2, check=check, max_lifetime=0.0005, max_idle=60,
                      destroy=lambda o: None)
    for i in range(n):
        o = pool.acquire()
        if i % 5 == 0:
            pool.discard(o)
        else:
            pool.release(o)
        if i % 100 == 0:
            pool.stats(reset=True)
            pool.evict()
    assert pool.in_use == 0


def pools_with_health(n):
    """Whole pools with an evictor thread, drained or dropped."""
    for i in range(n):
        p = ObjectPool(Thing, 2, min_idle=1, max_idle=0.001, track=True)
        p.start_evictor(0.001)
        o = p.acquire()
        p.release(o)
        if i & 1:
            p.drain(timeout=5)
        else:
            p.stop_evictor()
        del p, o


# kind -> fraction of POOL_LEAK_CYCLES by default (1: all of them);
# POOL_LEAK_FULL=1: all 1
ERR = 0.25
SCALE = {
    objects: 1, objects_with_hooks: 1, object_leases: 1, object_lease_exceptions: 1,
    object_double_release: ERR, object_foreign_release: ERR, object_timeout_zero: ERR,
    object_factory_exceptions: ERR, object_hook_exceptions: ERR, object_closed: ERR,
    object_waits: 0.01, object_sleeping_waits: 0.002,
    buffers: 1, buffer_leases: 1, buffer_lease_exceptions: 1, buffer_exports: 1,
    buffer_double_release: ERR, buffer_timeout_zero: ERR, buffer_waits: 0.01,
    pools: 0.02, objects_tracked: ERR, objects_health: ERR, pools_with_health: 0.002,
    object_async: 1, object_async_cancelled_waits: 0.1,
}


@pytest.mark.parametrize("kind", list(SCALE), ids=lambda f: f.__name__)
def test_no_leak(kind, knobs):
    n = max(1000, int(knobs.leak_cycles * (1 if knobs.leak_full else SCALE[kind])))
    if kind is object_sleeping_waits:
        n = min(n, 20000)          # each cycle sleeps: 1M would take an hour
    warm = max(1000, n // 10)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        kind(warm)                 # warm-up: caches, free-lists, arenas settle
        gc.collect()
        traced0 = tracemalloc.get_traced_memory()[0]
        rss0 = rss()
        kind(n)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced0
        grown = rss() - rss0
    finally:
        if not was_tracing:
            tracemalloc.stop()
    print(f"{kind.__name__}: {n} cycles, traced growth {traced} B, RSS growth {grown} B")
    assert traced < TRACED_BOUND, f"{traced} bytes of Python allocations leaked over {n} cycles"
    assert grown < RSS_BOUND, f"RSS grew {grown} bytes over {n} cycles"


def test_the_leak_check_can_fail():
    """A deliberate leak of one small object per cycle is caught by
    tracemalloc, and 100 bytes of C memory per cycle by RSS."""
    leaked = []

    def leaky(n):
        for _ in range(n):
            leaked.append(Thing())

    tracemalloc.start()
    try:
        leaky(1000)
        traced0 = tracemalloc.get_traced_memory()[0]
        leaky(20000)
        traced = tracemalloc.get_traced_memory()[0] - traced0
    finally:
        tracemalloc.stop()
    assert traced > TRACED_BOUND
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    # Free heap left by earlier tests would absorb the leak unseen: give it
    # back to the OS first (glibc), and leak far more than the bound.
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    rss0 = rss()
    blocks = []
    for _ in range(100000):       # 1M cycles' worth at 40 bytes per cycle
        p = libc.malloc(400)
        libc.memset(p, 1, 400)
        blocks.append(p)
    grown = rss() - rss0
    for p in blocks:
        libc.free(p)
    assert grown > RSS_BOUND, grown
