"""SharedBufferPool in one process: its arguments, acquire/release/lease,
the buffer protocol, pickling a block to oneself (send and receive once),
arrays, stats(), attach() by name, timeouts and an in-process reclaim().

Across processes: tests/concurrency/test_shared_processes.py; a segment
written over by someone else: tests/concurrency/test_shared_hostile.py.
Linux only (a sealed memfd, futexes, /proc).
"""
import ctypes
import gc
import io
import mmap
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("SharedBufferPool is Linux only", allow_module_level=True)

from pool_ext import PoolClosed, PoolError, PoolExhausted, SharedBuffer, SharedBufferPool


@pytest.fixture
def make():
    """make(block_size, capacity, **kw): a new SharedBufferPool, closed at the
    end of the test."""
    made = []

    def make(block_size=64, capacity=4, **kw):
        pool = SharedBufferPool(block_size, capacity, **kw)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def address(buf):
    """The address of buf's first byte."""
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def unique(tag):
    return f"t-{tag}-{os.getpid()}-{os.urandom(4).hex()}"


# -- construction ------------------------------------------------------------

def test_defaults_and_properties(make):
    pool = make(100, 3)
    assert isinstance(pool.name, str) and pool.name
    assert (pool.block_size, pool.capacity, pool.alignment) == (100, 3, 64)
    assert not pool.closed
    assert (pool.in_use, pool.available) == (0, 3)
    assert repr(pool) == f"<SharedBufferPool {pool.name!r} 3 x 100 bytes>"
    other = make(100, 3)
    assert other.name != pool.name          # automatic names are unique


def test_accepts_index_like_ints_and_a_name(make):
    np = pytest.importorskip("numpy")
    name = unique("ok") + "._-AZaz09"
    pool = make(np.int64(16), np.uint8(2), alignment=np.int32(128), name=name)
    assert (pool.block_size, pool.capacity, pool.alignment, pool.name) == (16, 2, 128, name)


@pytest.mark.parametrize("kw, exc", [
    (dict(block_size=0), ValueError),
    (dict(block_size=-1), ValueError),
    (dict(block_size=1.5), TypeError),
    (dict(block_size="64"), TypeError),
    (dict(block_size=True), TypeError),
    (dict(block_size=None), TypeError),
    (dict(capacity=0), ValueError),
    (dict(capacity=-3), ValueError),
    (dict(capacity=2**24 + 1), ValueError),
    (dict(capacity=2.0), TypeError),
    (dict(capacity=False), TypeError),
    (dict(alignment=0), ValueError),
    (dict(alignment=3), ValueError),
    (dict(alignment=48), ValueError),
    (dict(alignment=2**31), ValueError),
    (dict(alignment=64.0), TypeError),
    (dict(name=5), TypeError),
    (dict(name=b"abc"), TypeError),
    (dict(name=""), ValueError),
    (dict(name="a/b"), ValueError),
    (dict(name="a b"), ValueError),
    (dict(name="caf\u00e9"), ValueError),
    (dict(name="x\x00y"), ValueError),
    (dict(name="x" * 201), ValueError),
    # sizes that do not fit in 64 bits of address
    (dict(block_size=2**63), ValueError),
    (dict(block_size=2**40, capacity=2**24), ValueError),
    (dict(block_size=2**64), (ValueError, OverflowError)),
])
def test_bad_arguments(kw, exc):
    args = dict(block_size=64, capacity=2)
    args.update(kw)
    with pytest.raises(exc):
        SharedBufferPool(**args)


def test_alignment_and_name_are_keyword_only():
    with pytest.raises(TypeError):
        SharedBufferPool(64, 2, 64)
    with pytest.raises(TypeError):
        SharedBufferPool(64)


def test_name_collision_and_reuse(make):
    name = unique("dup")
    first = make(32, 1, name=name)
    with pytest.raises(FileExistsError):
        SharedBufferPool(32, 1, name=name)
    assert SharedBufferPool.attach(name) is first      # the failed one changed nothing
    first.close()                                      # gives the name up
    second = make(32, 1, name=name)
    assert SharedBufferPool.attach(name) is second
    del second
    # a pool garbage-collected without close() gives its name up too
    pools = [SharedBufferPool(32, 1, name=unique("gc"))]
    gone = pools[0].name
    del pools
    gc.collect()
    third = make(32, 1, name=gone)
    assert third.name == gone


@pytest.mark.thread_unsafe(reason="a one-letter name is the same name in every thread")
@pytest.mark.parametrize("length", [1, 90])
def test_name_lengths_that_work(make, length):
    name = (unique("n") + "x" * 200)[:length]
    assert make(8, 1, name=name).name == name


@pytest.mark.parametrize("length", [120, 200])
def test_name_of_up_to_200_characters(make, length):
    name = (unique("long") + "y" * 200)[:length]
    pool = make(8, 1, name=name)
    assert pool.name == name
    assert SharedBufferPool.attach(name) is pool


def test_init_twice_and_uninitialised_pool():
    pool = SharedBufferPool(8, 1)
    with pytest.raises(PoolError):
        pool.__init__(8, 1)
    pool.close()
    blank = SharedBufferPool.__new__(SharedBufferPool)
    assert repr(blank) == "<SharedBufferPool uninitialised>"
    assert blank.capacity == 0 and blank.block_size == 0
    for call in (blank.acquire, blank.try_acquire, blank.stats, blank.reclaim,
                 lambda: blank.in_use, lambda: pickle.dumps(blank), lambda: blank.empty(1),
                 lambda: blank.lease().__enter__()):
        with pytest.raises(PoolError):
            call()
    blank.close()


def test_unbound_sharedbuffer_is_dead():
    buf = SharedBuffer()
    assert buf.released and buf.pool is None
    assert repr(buf) == "<SharedBuffer released>"
    with pytest.raises(PoolError):
        buf.release()
    for call in (lambda: len(buf), lambda: memoryview(buf), lambda: pickle.dumps(buf),
                 lambda: buf.__enter__()):
        with pytest.raises(ValueError):
            call()


# -- acquire, release, try_acquire, lease --------------------------------------

def test_acquire_release(make):
    pool = make(100, 3)
    bufs = [pool.acquire() for _ in range(3)]
    assert all(type(b) is SharedBuffer for b in bufs)
    assert sorted(b.index for b in bufs) == [0, 1, 2]
    assert all(len(b) == 100 and b.pool is pool and not b.released for b in bufs)
    assert repr(bufs[0]) == f"<SharedBuffer block={bufs[0].index} size=100>"
    assert pool.try_acquire() is None
    assert (pool.in_use, pool.available) == (3, 0)
    bufs[0].release()
    pool.release(bufs[1])
    assert bufs[0].released and bufs[1].released and not bufs[2].released
    assert (pool.in_use, pool.available) == (1, 2)
    again = pool.try_acquire()
    assert again is not None and again.index in (bufs[0].index, bufs[1].index)
    again.release()
    bufs[2].release()
    assert pool.in_use == 0


def test_double_release_and_use_after_release(make):
    pool = make(16, 2)
    buf = pool.acquire()
    buf.release()
    with pytest.raises(PoolError):
        buf.release()
    with pytest.raises(PoolError):
        pool.release(buf)
    for call in (lambda: len(buf), lambda: memoryview(buf), lambda: bytes(buf),
                 lambda: buf.__enter__()):
        with pytest.raises(ValueError):
            call()
    assert repr(buf) == "<SharedBuffer released>"
    assert pool.in_use == 0


def test_release_of_a_foreign_buffer(make):
    a, b = make(16, 1), make(16, 1)
    buf = a.acquire()
    with pytest.raises(PoolError):
        b.release(buf)
    assert not buf.released and a.in_use == 1          # nothing changed
    for thing in (None, b"x" * 16, bytearray(16), 0):
        with pytest.raises(TypeError):
            a.release(thing)
    with pytest.raises(TypeError):
        a.release()
    a.release(buf)


def test_context_managers(make):
    pool = make(16, 2)
    with pool.acquire() as buf:
        assert pool.in_use == 1
    assert buf.released and pool.in_use == 0
    with pool.acquire() as buf:
        buf.release()                 # exit then does nothing more
    assert pool.in_use == 0
    with pytest.raises(ZeroDivisionError):
        with pool.lease() as buf:
            assert type(buf) is SharedBuffer and pool.in_use == 1
            1 / 0
    assert buf.released and pool.in_use == 0
    lease = pool.lease(timeout=0)
    with lease as buf:
        with pytest.raises(PoolError):
            lease.__enter__()         # already entered
    assert pool.in_use == 0
    with pool.lease() as buf:
        buf.release()
    assert pool.in_use == 0


@pytest.mark.parametrize("timeout, exc", [
    (-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError),
    ([], TypeError),
])
def test_bad_timeouts(make, timeout, exc):
    pool = make(16, 1)
    with pytest.raises(exc):
        pool.acquire(timeout=timeout)
    with pytest.raises(exc):
        pool.lease(timeout=timeout)
    assert pool.in_use == 0      # checked even though a block was free


def test_timeouts(make):
    pool = make(16, 1)
    held = pool.acquire()
    for timeout in (0, 0.05):
        t0 = time.monotonic()
        with pytest.raises(PoolExhausted) as info:
            pool.acquire(timeout=timeout)
        elapsed = time.monotonic() - t0
        assert timeout <= elapsed + 0.005 and elapsed < 1.0
        assert isinstance(info.value, TimeoutError)
        assert f"pid {os.getpid()}: 1" in str(info.value)     # who holds the blocks
    with pytest.raises(PoolExhausted):
        with pool.lease(timeout=0.01):
            pass
    assert pool.stats()["waiters"] == 0          # the timed-out waits unregistered
    held.release()
    pool.acquire(timeout=5).release()


def test_a_timed_out_waiter_holds_nothing_back(make):
    pool = make(16, 1)
    held = pool.acquire()
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0.02)
    held.release()
    assert pool.stats()["waiters"] == 0 and pool.available == 1
    buf = pool.try_acquire()
    assert buf is not None
    buf.release()
    pool.acquire(timeout=0).release()


def test_waiting_thread_woken_by_release(make):
    pool = make(16, 1)
    held = pool.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=10)))
    t0 = time.monotonic()
    t.start()
    try:
        while pool.stats()["waiters"] < 1 and time.monotonic() - t0 < 5:
            time.sleep(0.001)
        held.release()
        t.join(5)
        assert not t.is_alive() and len(got) == 1
        assert time.monotonic() - t0 < 5
    finally:
        t.join(10)
    got[0].release()
    assert pool.stats()["waiters"] == 0 and pool.in_use == 0


def test_close(make):
    pool = make(16, 2)
    held = pool.acquire()
    pool.close()
    assert pool.closed and "closed" in repr(pool)
    for call in (pool.acquire, pool.try_acquire, lambda: pool.acquire(timeout=0),
                 lambda: pool.lease().__enter__()):
        with pytest.raises(PoolClosed):
            call()
    memoryview(held)[:2] = b"ok"              # still valid until released
    assert bytes(held)[:2] == b"ok"
    held.release()
    pool.close()                              # idempotent
    assert pool.in_use == 0
    with SharedBufferPool(16, 1) as other:
        assert not other.closed
    assert other.closed


def test_close_wakes_a_waiting_thread(make):
    pool = make(16, 1)
    held = pool.acquire()
    errors = []

    def wait():
        try:
            pool.acquire(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    try:
        t0 = time.monotonic()
        while pool.stats()["waiters"] < 1 and time.monotonic() - t0 < 5:
            time.sleep(0.001)
        pool.close()
        t.join(5)
        assert not t.is_alive()
        assert time.monotonic() - t0 < 5
    finally:
        t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], PoolClosed)
    held.release()


# -- the buffer protocol ---------------------------------------------------------

def test_buffer_protocol(make):
    pool = make(100, 2)
    with pool.acquire() as buf:
        mv = memoryview(buf)
        assert (mv.nbytes, mv.format, mv.itemsize, mv.ndim, mv.shape) == (100, "B", 1, 1, (100,))
        assert not mv.readonly and mv.contiguous and mv.obj is buf
        mv[:] = bytes(range(100))
        mv.release()
        assert bytes(buf) == bytes(range(100))
        assert io.BytesIO(b"z" * 100).readinto(buf) == 100
        assert bytes(buf) == b"z" * 100
        assert bytearray(buf)[:3] == b"zzz"


@pytest.mark.parametrize("alignment", [1, 64, 256, 4096])
def test_blocks_are_aligned(make, alignment):
    pool = make(100, 3, alignment=alignment)
    bufs = [pool.acquire() for _ in range(3)]
    try:
        assert all(address(b) % alignment == 0 for b in bufs)
        assert len({address(b) for b in bufs}) == 3
    finally:
        for b in bufs:
            b.release()


def test_blocks_aligned_beyond_the_page_size():
    # a page-sized anonymous mapping between pools moves each segment's start by
    # a page, so they cannot all land on a 64 KiB boundary by chance
    pools, spacers, misaligned = [], [], []
    try:
        for _ in range(6):
            spacers.append(mmap.mmap(-1, mmap.PAGESIZE))
            pool = SharedBufferPool(100, 2, alignment=65536)
            pools.append(pool)
            with pool.acquire() as a, pool.acquire() as b:
                misaligned += [x % 65536 for x in (address(a), address(b)) if x % 65536]
    finally:
        for p in pools:
            p.close()
        for m in spacers:
            m.close()
    assert misaligned == []


def test_exports_defer_the_release(make):
    pool = make(16, 1)
    buf = pool.acquire()
    mv = memoryview(buf)
    mv2 = mv[4:8]
    buf.release()                            # accepted: the block goes back later
    assert buf.released
    with pytest.raises(PoolError):
        buf.release()
    with pytest.raises(ValueError):
        memoryview(buf)                      # no new export of a released handle
    assert pool.in_use == 1 and pool.try_acquire() is None
    mv[:4] = b"live"                         # the exports stay valid
    mv.release()
    assert pool.in_use == 1
    mv2.release()
    assert pool.in_use == 0
    pool.acquire(timeout=0).release()


def test_dropped_buffer_returns_with_a_resource_warning(make):
    pool = make(16, 1)
    buf = pool.acquire()
    with pytest.warns(ResourceWarning, match="never released"):
        del buf
        gc.collect()
    assert pool.in_use == 0


# -- pickling a block to oneself: sent once ---------------------------------------

def test_pickle_sends_the_block_once(make):
    pool = make(32, 2)
    buf = pool.acquire()
    memoryview(buf)[:5] = b"hello"
    data = pickle.dumps(buf)
    assert buf.released and repr(buf) == "<SharedBuffer released>"
    for call in (lambda: len(buf), lambda: memoryview(buf), lambda: pickle.dumps(buf)):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(PoolError):
        buf.release()                        # it is not this handle's any more
    s = pool.stats()
    assert (s["in_use"], s["in_transit"], pool.in_use) == (0, 1, 1)
    got = pickle.loads(data)
    assert type(got) is SharedBuffer and got is not buf
    assert got.index == buf.index and got.pool is pool and bytes(got)[:5] == b"hello"
    assert pool.stats()["in_transit"] == 0 and pool.stats()["in_use"] == 1
    with pytest.raises(PoolError, match="already received"):
        pickle.loads(data)                   # a pickled block is loaded once
    assert not got.released
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        got = pickle.loads(pickle.dumps(got, protocol))
        assert bytes(got)[:5] == b"hello"
    got.release()
    assert pool.in_use == 0


def test_pickle_while_exported_is_a_buffer_error(make):
    pool = make(16, 1)
    buf = pool.acquire()
    mv = memoryview(buf)
    with pytest.raises(BufferError):
        pickle.dumps(buf)
    assert not buf.released and pool.stats()["in_transit"] == 0   # nothing was sent
    mv[:2] = b"ok"
    mv.release()
    got = pickle.loads(pickle.dumps(buf))
    assert bytes(got)[:2] == b"ok"
    got.release()
    assert pool.in_use == 0


def test_unloaded_pickle_is_reclaimed_only_in_transit(make):
    pool = make(16, 2)
    held = pool.acquire()
    data = pickle.dumps(pool.acquire())
    assert pool.reclaim() == 0                        # ours, and one in transit
    assert pool.stats()["in_transit"] == 1
    assert pool.reclaim(in_transit=True) == 1         # the pickle can no longer be loaded
    assert pool.stats()["in_transit"] == 0 and pool.available == 1
    with pytest.raises(PoolError):
        pickle.loads(data)
    assert pool.stats()["reclaimed"] == 1
    held.release()


def test_pool_pickles_to_itself(make):
    pool = make(16, 1)
    assert pickle.loads(pickle.dumps(pool)) is pool
    pool.close()
    again = pickle.loads(pickle.dumps(pool))        # closed here: a new one, as attach()
    assert again is not pool and not again.closed
    assert pickle.loads(pickle.dumps(pool)) is again
    again.close()


# -- arrays -----------------------------------------------------------------------

def test_empty_and_zeros(make, np):
    pool = make(1024, 2)
    with pool.acquire() as buf:
        memoryview(buf)[:] = b"\xff" * 1024          # the next holder finds garbage
    a = pool.zeros((4, 8), "f8")
    assert (a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable) == ((4, 8), np.float64,
                                                                          True, True)
    assert type(a).__name__ == "SharedArray" and isinstance(a, np.ndarray)
    assert not a.any()
    b = pool.empty(10, order="F")
    assert b.dtype == np.float64 and b.shape == (10,)
    assert pool.in_use == 2
    with pytest.raises(PoolExhausted):
        pool.empty(1, timeout=0.01)
    del a, b
    gc.collect()
    assert pool.in_use == 0
    f = pool.empty((3, 5), np.int16, order="F")
    assert f.flags.f_contiguous and not f.flags.c_contiguous and f.dtype == np.int16
    f[...] = np.arange(15, dtype=np.int16).reshape(3, 5)
    assert f.sum() == 105
    s = pool.empty(4, "U3")                           # numpy zero-fills such dtypes
    assert list(s) == [""] * 4
    del f, s
    assert pool.in_use == 0


@pytest.mark.parametrize("shape, dtype", [((129,), "f8"), ((32, 33), "u1"), (1025, None)])
def test_array_too_big(make, np, shape, dtype):
    pool = make(1024, 1)
    with pytest.raises(ValueError, match="does not fit"):
        pool.empty(shape, dtype)
    with pytest.raises(ValueError):
        pool.zeros(shape, dtype)
    assert pool.in_use == 0                           # refused before taking a block


@pytest.mark.parametrize("kw", [dict(dtype=object), dict(order="K"), dict(shape=(-1,)),
                                dict(shape=(2.0,))])
def test_array_bad_requests(make, np, kw):
    pool = make(1024, 1)
    args = dict(shape=(4,), dtype="f8", order="C")
    args.update(kw)
    with pytest.raises((TypeError, ValueError)):
        pool.empty(args["shape"], args["dtype"], args["order"])
    assert pool.in_use == 0


def test_array_on_a_closed_pool(make, np):
    pool = make(64, 1)
    pool.close()
    with pytest.raises(PoolClosed):
        pool.zeros(2)


def test_block_returns_when_the_array_and_its_views_die(make, np):
    pool = make(64, 1)
    a = pool.zeros(8, "u8")
    view = a[2:5]
    derived = a + 1                                   # a copy: holds no block
    del a
    gc.collect()
    assert pool.in_use == 1                           # the view keeps it
    view[:] = 7
    del view
    assert pool.in_use == 0
    assert derived.sum() == 8
    b = pool.zeros(8, "u8")
    mv = memoryview(b)
    del b
    assert pool.in_use == 1                           # so does an export of the array
    mv.release()
    del mv
    gc.collect()
    assert pool.in_use == 0


def test_pickle_of_the_array_sends_its_block(make, np):
    pool = make(256, 2)
    a = pool.empty((4, 4), "f4", order="F")
    a[...] = np.arange(16, dtype="f4").reshape(4, 4)
    data = pickle.dumps(a)
    assert not a.flags.writeable                      # its block is the receiver's now
    assert pool.stats()["in_transit"] == 1
    b = pickle.loads(data)
    assert type(b).__name__ == "SharedArray" and b.flags.writeable
    assert b.flags.f_contiguous and b.dtype == np.float32 and b.shape == (4, 4)
    assert (b == np.arange(16, dtype="f4").reshape(4, 4)).all()
    assert b.ctypes.data == a.ctypes.data             # the same block, not a copy
    b[0, 0] = 99
    assert a[0, 0] == 99
    with pytest.raises(PoolError):
        pickle.loads(data)
    with pytest.raises((ValueError, PoolError)):
        pickle.dumps(a)                               # sent already
    with pytest.raises(ValueError):
        a.flags.writeable = True                      # read-only for good
    assert pool.stats()["in_use"] == 1
    del a                                             # the sender's array gives nothing back
    gc.collect()
    assert pool.stats()["in_use"] == 1
    del b
    gc.collect()
    assert pool.in_use == 0


@pytest.mark.parametrize("export", ["view", "memoryview"])
def test_pickle_of_the_array_while_a_view_is_alive(make, np, export):
    """A documented limit (docs/shared.md, "Views made before sending stay
    writable"): sending the array makes it read-only, not its earlier views,
    which now write into the receiver's block."""
    pool = make(64, 2)
    a = pool.zeros(8, "u1")
    view = a[2:4] if export == "view" else memoryview(a)[2:4]
    b = pickle.loads(pickle.dumps(a))
    assert not a.flags.writeable
    view[0] = 5
    assert b[2] == 5
    if export == "memoryview":
        view.release()
    del a, b, view
    gc.collect()
    assert pool.in_use == 0


@pytest.mark.parametrize("make_copy", [
    lambda a: a[1:3], lambda a: a[::2], lambda a: a.reshape(2, 2), lambda a: a + 0,
    lambda a: a.T,
], ids=["slice", "strided", "reshape", "derived", "transpose"])
def test_pickle_of_a_view_is_an_ordinary_copy(make, np, make_copy):
    pool = make(64, 1)
    a = pool.zeros(4, "i4")
    a[:] = [1, 2, 3, 4]
    view = make_copy(a)
    data = pickle.dumps(view)
    assert a.flags.writeable and pool.stats()["in_transit"] == 0
    got = pickle.loads(data)
    assert type(got) is np.ndarray and (got == view).all()
    got[...] = 0                                      # a copy: the block is untouched
    assert list(a) == [1, 2, 3, 4]
    assert pickle.loads(data) is not None             # loads any number of times
    del a, view
    gc.collect()
    assert pool.in_use == 0


# -- stats, attach, reclaim -----------------------------------------------------------

def test_stats(make):
    pool = make(16, 4)
    s = pool.stats()
    assert s == {"capacity": 4, "in_use": 0, "in_transit": 0, "free": 4, "corrupt": 0,
                 "holders": {}, "handouts": 0, "releases": 0, "reclaimed": 0, "waiters": 0}
    bufs = [pool.acquire() for _ in range(3)]
    sent = pickle.dumps(bufs.pop())
    s = pool.stats()
    assert (s["in_use"], s["in_transit"], s["free"]) == (2, 1, 1)
    assert s["holders"] == {os.getpid(): 2}
    assert (s["handouts"], s["releases"]) == (3, 0)
    assert (pool.in_use, pool.available) == (3, 1)
    bufs.append(pickle.loads(sent))
    for b in bufs:
        b.release()
    s = pool.stats()
    assert (s["in_use"], s["in_transit"], s["free"], s["holders"]) == (0, 0, 4, {})
    assert (s["handouts"], s["releases"], s["reclaimed"]) == (3, 3, 0)


def test_attach_in_the_same_process(make):
    pool = make(16, 1, name=unique("att"))
    assert SharedBufferPool.attach(pool.name) is pool
    with pytest.raises(FileNotFoundError):
        SharedBufferPool.attach(unique("no-such-pool"))
    with pytest.raises(ValueError):
        SharedBufferPool.attach("bad/name")
    with pytest.raises(ValueError):
        SharedBufferPool.attach("")
    with pytest.raises(TypeError):
        SharedBufferPool.attach(None)
    pool.close()
    with pytest.raises(FileNotFoundError):
        SharedBufferPool.attach(pool.name)            # closed: the name is given up


def test_reclaim_in_process_finds_nothing(make):
    pool = make(16, 3)
    bufs = [pool.acquire(), pool.acquire()]
    assert pool.reclaim() == 0
    assert pool.reclaim(in_transit=True) == 0
    assert pool.stats()["in_use"] == 2 and pool.stats()["reclaimed"] == 0
    with pytest.raises(TypeError):
        pool.reclaim(True)                            # keyword-only
    for b in bufs:
        b.release()
    assert pool.reclaim() == 0


def test_filling_a_big_pool_is_linear():
    def fill_time(n):
        pool = SharedBufferPool(16, n, alignment=16)
        try:
            t0 = time.perf_counter()
            bufs = [pool.acquire() for _ in range(n)]
            per = (time.perf_counter() - t0) / n
            for b in bufs:
                b.release()
            return per
        finally:
            pool.close()

    # a scan from the start would make each acquire at 2**15 16x dearer than
    # at 2**11; best of 3 each, and 5x, so that a busy machine passes
    small = min(fill_time(2**11) for _ in range(3))
    big = min(fill_time(2**15) for _ in range(3))
    assert big < 5 * small, f"{big * 1e6:.1f} us per acquire at 2**15, {small * 1e6:.1f} at 2**11"


def test_a_cycle_holding_the_pool_and_a_handle_is_collected_safely():
    # The GC clears the objects of a cycle in any order: the pool must not
    # drop its mapping while a handle of the same cycle still needs it
    # (a free-threaded build's shutdown collection segfaulted this way).
    import gc
    import warnings

    class Box:
        pass

    for _ in range(20):
        pool = SharedBufferPool(64, 1)
        box = Box()
        box.self, box.pool, box.buf = box, pool, pool.acquire()
        box.view = memoryview(box.buf)
        del pool, box
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)   # the handle was never released
            gc.collect()


def test_a_released_handle_the_caller_keeps_stays_dead():
    # GIL builds reuse a released handle for its slot's next hand-out, but
    # only one that nobody else refers to.
    pool = SharedBufferPool(64, 1)
    for _ in range(3):
        old = pool.acquire()
        old.release()
        new = pool.acquire()
        assert new is not old and old.released and not new.released
        assert old.pool is None and new.pool is pool
        with pytest.raises(ValueError):
            len(old)
        with pytest.raises(PoolError):
            old.release()
        new.release()
        del new
    buf = pool.acquire()
    assert len(buf) == 64 and buf.pool is pool
    buf.release()


# -- what a send pickles --------------------------------------------------------

def ticket_of(payload):
    """The ticket a pickled block carries (the 5th argument of its call)."""
    func, args = payload
    return args[4]


@pytest.mark.parametrize("dtype", ["u1", "<i8", ">f4", "c16", "M8[ns]", "m8[s]", "S3", "U2",
                                   "?", [("a", "<i4"), ("b", "u1", (3,))]])
def test_send_keeps_every_dtype(make, np, dtype):
    pool = make(256, 2)
    a = pool.zeros((2, 3), dtype)
    for _ in range(3):                                # the second and third load a cached dtype
        a = pickle.loads(pickle.dumps(a))
        assert a.dtype == np.dtype(dtype) and a.shape == (2, 3) and a.flags.writeable
    del a
    gc.collect()
    assert pool.in_use == 0


def test_send_of_more_dtypes_than_the_caches_hold(make, np):
    """The dtype caches of either side are bounded: past 64 entries they start
    again, and every array still arrives with its own dtype."""
    pool = make(64, 1)
    kinds = [f"S{n}" for n in range(1, 41)] + [f"U{n}" for n in range(1, 11)] + \
        [np.dtype("i4").newbyteorder(">"), "i2", "<f8", "u8"] + [f"V{n}" for n in range(1, 21)]
    for kind in kinds * 2:
        a = pool.empty(1, kind)
        b = pickle.loads(pickle.dumps(a))
        assert b.dtype == np.dtype(kind)
        del a, b
    gc.collect()
    assert pool.in_use == 0


def test_array_reduce_refuses_what_is_not_a_shared_array(np):
    from pool_ext import _pool
    for bad in (5, None, b"x", object()):
        with pytest.raises((AttributeError, TypeError)):
            _pool._shared_array_reduce(bad)
    plain = np.arange(3)
    func, args = _pool._shared_array_reduce(plain)[:2]  # an ndarray: numpy's own pickle
    assert plain.flags.writeable


def test_every_send_has_its_own_ticket(make):
    pool = make(16, 1)
    buf = pool.acquire()
    seen = set()
    for _ in range(200):
        payload = buf.__reduce__()
        seen.add(ticket_of(payload))
        buf = payload[0](*payload[1])                 # receive it, then send again
    assert len(seen) == 200 and all(0 <= t < 1 << 62 for t in seen)
    buf.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.thread_unsafe(reason="forks")
def test_a_fork_child_draws_other_tickets(make):
    """Parent and fork child start from the same ticket count: the child
    draws a new key, or a pickle of one could be taken for the other's."""
    pool = make(16, 2)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            buf = pool.acquire()
            os.write(w, ticket_of(buf.__reduce__()).to_bytes(8, "little"))
        finally:
            os._exit(0)
    os.close(w)
    mine = ticket_of(pool.acquire().__reduce__())
    with os.fdopen(r, "rb") as f:
        theirs = int.from_bytes(f.read(), "little")
    os.waitpid(pid, 0)
    assert theirs != mine
    assert pool.reclaim(in_transit=True) == 2         # both sent blocks, never loaded


def test_an_array_numpy_refuses_raises_numpys_error(make, np):
    """The block is taken before numpy makes the array; numpy's error (too
    many dimensions) must reach the caller, not a PoolError of the clean-up."""
    pool = make(64, 1)
    with pytest.raises(ValueError, match="dimensions") as info:
        pool.empty((1,) * 60, np.dtype(("u1", (1,) * 8)))
    assert not isinstance(info.value, PoolError)
    assert pool.in_use == 0


def test_init_after_close_is_refused():
    pool = SharedBufferPool.__new__(SharedBufferPool)
    pool.close()
    with pytest.raises(PoolError):
        pool.__init__(64, 1, name=unique("born-closed"))


# -- recall: a send whose pickle failed ----------------------------------------------

def test_a_failed_pickle_strands_the_block_until_recalled(make, np):
    """pickle.dumps([buf, a_lock]) puts buf's block in transit, then fails:
    no pickle holds the ticket, so only recall() (or reclaim(in_transit=True))
    gets the block back."""
    pool = make(64, 2)
    buf = pool.acquire()
    memoryview(buf)[:3] = b"abc"
    arr = pool.zeros((2, 4), "i2", order="F")
    arr[1, 2] = 7
    with pytest.raises(TypeError):
        pickle.dumps([buf, threading.Lock()])
    with pytest.raises(Exception):
        pickle.dumps({"a": arr, "f": lambda: 0})
    assert pool.stats()["in_transit"] == 2 and pool.try_acquire() is None
    back = pool.recall(buf)
    assert type(back) is SharedBuffer and not back.released and bytes(back)[:3] == b"abc"
    assert buf.released                               # the sent handle stays dead
    new = pool.recall(arr)
    assert new.flags.writeable and new.flags.f_contiguous and new[1, 2] == 7
    assert (new.dtype, new.shape) == (np.dtype("i2"), (2, 4))
    assert not arr.flags.writeable
    assert pool.stats()["in_transit"] == 0 and pool.stats()["in_use"] == 2
    with pytest.raises(PoolError):
        pool.recall(buf)                              # once
    back.release()
    del new, arr
    gc.collect()
    assert pool.in_use == 0


def test_recall_after_the_pickle_was_loaded_is_refused(make):
    pool = make(64, 1)
    buf = pool.acquire()
    data = pickle.dumps(buf)
    got = pickle.loads(data)
    with pytest.raises(PoolError, match="received already"):
        pool.recall(buf)
    with pytest.raises(PoolError):
        pickle.loads(data)                            # and the pickle after a recall
    got.release()
    buf2 = pool.acquire()
    data = pickle.dumps(buf2)
    back = pool.recall(buf2)
    with pytest.raises(PoolError):
        pickle.loads(data)                            # the recall won: the pickle is void
    back.release()
    assert pool.in_use == 0


def test_recall_refuses_what_was_not_sent(make, np):
    pool, other = make(64, 2), make(64, 1)
    buf = pool.acquire()
    with pytest.raises(PoolError, match="was not"):
        pool.recall(buf)                              # held, not sent
    buf.release()
    with pytest.raises(PoolError, match="was not"):
        pool.recall(buf)                              # released
    for bad in (None, 5, b"x", np.zeros(3), memoryview(b"x")):
        with pytest.raises(TypeError):
            pool.recall(bad)
    theirs = other.acquire()
    pickle.dumps(theirs)
    with pytest.raises(PoolError, match="not a block of"):
        pool.recall(theirs)
    other.recall(theirs).release()
    assert pool.in_use == 0 and other.in_use == 0


def test_recall_trusts_only_the_array_itself(make, np):
    # something with a sent array's .base (and a huge .shape) is not that
    # array: its shape would make a new array past the block
    pool = make(4096, 1)
    a = pool.empty(16, np.uint8)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps([a, lambda: 0])                   # a's block is in transit

    class Fake:
        base = a.base
        shape = (1 << 30,)
        dtype = np.dtype(np.uint8)
    with pytest.raises(TypeError):
        pool.recall(Fake())
    b = pool.recall(a)
    assert b.shape == (16,) and b.dtype == np.uint8
    del a, b
    assert pool.in_use == 0


@pytest.mark.parametrize("bad", ["3", "numpy.zeros(3)", "None"])
def test_recall_of_a_non_block_before_any_array_was_made_here(bad, tmp_path):
    # a fresh process that made no array has not loaded numpy's C API:
    # recall() used to test "is it an ndarray" through it and crashed
    code = (
        "import numpy, pool_ext\n"
        "pool = pool_ext.SharedBufferPool(64, 1)\n"
        "try:\n"
        f"    pool.recall({bad})\n"
        "except TypeError as e:\n"
        "    print('TypeError', e)\n"
        "pool.close()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("TypeError recall() takes a SharedBuffer")


def test_a_second_release_through_the_pool_says_released():
    pool = SharedBufferPool(64, 1)
    buf = pool.acquire()
    pool.release(buf)
    with pytest.raises(PoolError, match="already released"):
        pool.release(buf)
    pool.close()


def test_unpickling_a_pool_with_forged_locators_raises_clearly():
    from pool_ext._pool import _shm_unpickle_pool
    with pytest.raises(FileNotFoundError, match="cannot attach"):
        _shm_unpickle_pool(b"x" * 16, f"forged-{os.getpid()}", ((2**40, 3), (1, 2**70)))


def test_unpickling_after_close_gives_a_pool_that_works():
    # as attach() does: a pool this process closed stays closed for what it
    # handed out, and the pool sent again is a new, open one
    pool = SharedBufferPool(64, 2)
    data = pickle.dumps(pool)
    held = pool.acquire()
    pool.close()
    again = pickle.loads(data)
    assert again is not pool and not again.closed
    again.acquire(timeout=0).release()
    sent = pickle.dumps(again.acquire())         # a block sent to this process
    got = pickle.loads(sent)
    assert got.pool is again or not got.pool.closed
    got.release()
    held.release()
    again.close()


def test_a_shared_arrays_state_cannot_be_replaced(make, np):
    pool = make(64, 1)
    a = pool.empty(8, np.uint8)
    view = a[2:]
    with pytest.raises(TypeError, match="cannot be replaced"):
        a.__setstate__((1, (8,), np.dtype("u1"), False, bytes(8)))
    assert pool.in_use == 1 and view.base is a
    b = pickle.loads(pickle.dumps(view))          # (a view pickles as a plain copy)
    assert type(b) is np.ndarray and b.shape == (6,)
    del a, view


@pytest.mark.thread_unsafe(reason="sets the process's fd limit; 2,000 pools per thread")
def test_thousands_of_pools_in_one_process():
    # two name sockets each, all kept in one table for fork children to close
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if want < 5000:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    pools = []
    try:
        for _ in range(2000):
            pools.append(SharedBufferPool(64, 1))
        assert all(p.acquire(timeout=0).release() is None for p in pools[::97])
    finally:
        for p in pools:
            p.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_argument_messages_name_the_argument():
    with pytest.raises(ValueError, match="block_size"):
        SharedBufferPool(2**64, 1)
    with pytest.raises(TypeError, match="must be a str, not NoneType"):
        SharedBufferPool.attach(None)
