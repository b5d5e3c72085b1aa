"""ArrayPool and BufferPool.empty/zeros: the API, one point at a time."""
import copy
import gc
import pickle

import pytest

from helpers import run_script, wait_for_waiters

np = pytest.importorskip("numpy")

import pool_ext
from pool_ext import ArrayPool, BufferPool, PoolClosed, PoolError, PoolExhausted, PooledBuffer

KiB, MiB = 1 << 10, 1 << 20


def out_blocks(pool):
    s = pool.stats()
    return sum(c["out"] for c in s["classes"].values()) + s["oversize_out"]


def cached_blocks(pool):
    return sum(c["cached"] for c in pool.stats()["classes"].values())


@pytest.fixture
def pool():
    return ArrayPool(max_bytes=64 * MiB)


# pytest-run-parallel's threads share the one `pool` a test gets: a test that
# counts the blocks it has out (or its hits, retained bytes) counts theirs too.
counts_the_shared_pool = pytest.mark.thread_unsafe(
    reason="asserts exact block counts of the `pool` fixture, which the threads share")


# -- the module ------------------------------------------------------------------

def test_exported():
    assert "ArrayPool" in pool_ext.__all__ and "arrays" in pool_ext.__all__
    assert isinstance(pool_ext.arrays, ArrayPool)
    assert pool_ext.arrays.max_bytes == 256 * MiB
    assert pool_ext.arrays.max_size is None and pool_ext.arrays.alignment == 64
    assert pool_ext.arrays.clear == "never"
    for doc in (ArrayPool.__doc__, ArrayPool.empty.__doc__, BufferPool.empty.__doc__):
        assert doc
    assert ">>>" in ArrayPool.__doc__ and "Thread-safety" in ArrayPool.__doc__


# -- arrays ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [0, 1, 7, (3, 4), [2, 3, 4], (0, 5), (), np.int64(5),
                                   np.array([2, 3]), range(1, 4), (np.int32(2), 3)])
@pytest.mark.parametrize("dtype", [float, np.uint8, "f4", np.complex128, "M8[s]", "S7",
                                   [("a", "i4"), ("b", "f8")], "(2,3)i2"])
def test_empty_matches_numpy(pool, shape, dtype):
    a = pool.empty(shape, dtype)
    b = np.empty(shape, dtype)
    assert type(a) is np.ndarray
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.strides == b.strides or a.size == 0
    assert a.flags.writeable and a.flags.c_contiguous and a.flags.aligned
    assert not a.flags.owndata
    assert a.ctypes.data % 64 == 0


def test_zeros_and_orders(pool):
    a = pool.empty(1000, np.uint8)
    a[:] = 7
    del a
    z = pool.zeros(1000, np.uint8)      # the same block, cleared
    assert not z.any()
    f = pool.zeros((30, 40), np.float64, "F")
    assert f.flags.f_contiguous and not f.flags.c_contiguous and not f.any()
    assert f.strides == np.zeros((30, 40), order="F").strides


def test_like(pool):
    proto = np.arange(12, dtype=np.int32).reshape(3, 4)
    a = pool.empty_like(proto)
    assert a.shape == (3, 4) and a.dtype == np.int32 and a.flags.c_contiguous
    z = pool.zeros_like(proto.T)       # order "K": keeps the F layout
    assert z.shape == (4, 3) and z.flags.f_contiguous and not z.any()
    assert pool.empty_like(proto, dtype=np.float32).dtype == np.float32
    assert pool.empty_like(proto.T, order="C").flags.c_contiguous
    assert pool.zeros_like([[1, 2], [3, 4]]).shape == (2, 2)


@counts_the_shared_pool
def test_block_returns_when_last_view_dies(pool):
    a = pool.empty((100, 100))
    views = [a[1:], a.T, a.reshape(-1), np.asarray(a), a[::2, ::3], a.view(np.uint8),
             memoryview(a)]
    del a
    gc.collect()
    for v in views[:-1]:
        assert out_blocks(pool) == 1
        del v
    views = views[-1:]
    assert out_blocks(pool) == 1
    views.pop().release()
    assert out_blocks(pool) == 0 and cached_blocks(pool) == 1


@counts_the_shared_pool
def test_derived_arrays_and_numpy_functions(pool):
    a = pool.empty(1000)
    a[:] = np.arange(1000)
    b = pool.empty(1000)
    np.multiply(a, 2, out=b)
    assert b[10] == 20 and b.sum() == 999000
    c = a + b                              # an ordinary array
    assert c.base is None and c.flags.owndata
    assert np.sort(a)[0] == 0 and np.linalg.norm(a[:3]) > 0
    d = copy.deepcopy(a)
    assert d.flags.owndata and (d == a).all()
    e = pickle.loads(pickle.dumps(a))
    assert type(e) is np.ndarray and type(e.base) is not type(a.base) and (e == a).all()
    del a, b, d, e
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_nothing_can_alias_a_block(pool):
    a = pool.empty(10)
    base = a.base
    assert not isinstance(base, (np.ndarray, PooledBuffer))
    with pytest.raises(TypeError):
        memoryview(base)
    with pytest.raises(ValueError):
        a.resize(20)           # numpy: it does not own its data
    assert "block" in repr(base)
    del a
    assert out_blocks(pool) == 1   # the base alone keeps the block out
    del base
    assert out_blocks(pool) == 0


def test_arrays_outlive_their_pool():
    pool = ArrayPool()
    a = pool.empty(1000)
    a[:] = 1.5
    buf = pool.acquire(100)
    del pool
    gc.collect()
    assert a.sum() == 1500.0
    a[:] = 2                     # still writable, still its memory
    buf.release()
    del a


@counts_the_shared_pool
def test_reuse_and_stats(pool):
    a = pool.empty(100, np.uint8)
    s = pool.stats()
    assert s["misses"] == 1 and s["hits"] == 0 and s["classes"][128] == {"cached": 0, "out": 1}
    ptr = a.ctypes.data
    del a
    assert pool.retained_bytes == 128
    b = pool.empty(128, np.uint8)
    assert b.ctypes.data == ptr
    s = pool.stats()
    assert s["hits"] == 1 and s["retained_bytes"] == 0 and s["peak_bytes"] == 128
    assert s["blocks"] == 1 and s["max_bytes"] == 64 * MiB
    assert "retained_bytes=0" in repr(pool)


def test_budget_and_class_room():
    pool = ArrayPool(max_bytes=10 * 4096)
    arrs = [pool.empty(4096, np.uint8) for _ in range(16)]
    del arrs
    assert pool.retained_bytes == 10 * 4096 and cached_blocks(pool) == 10
    assert pool.stats()["blocks"] == 10
    big = pool.empty(1 * MiB, np.uint8)   # more than the budget: never kept
    del big
    assert pool.retained_bytes == 10 * 4096


def test_max_size_and_oversize():
    pool = ArrayPool(max_size=1000)
    with pytest.raises(ValueError, match="max_size"):
        pool.empty(1001, np.uint8)
    with pytest.raises(ValueError, match="max_size"):
        pool.acquire(1001)
    assert pool.stats()["misses"] == 0
    small = ArrayPool(max_bytes=4096)       # no max_size: larger blocks are not cached
    a = small.empty(1 * MiB, np.uint8)
    assert small.stats()["oversize_out"] == 1
    del a
    assert small.stats()["oversize_out"] == 0 and small.retained_bytes == 0


@counts_the_shared_pool
def test_trim(pool):
    arrs = [pool.empty(n, np.uint8) for n in (100, 5000, 1 * MiB, 4 * MiB)]
    del arrs
    total = 128 + 8192 + MiB + 4 * MiB
    assert pool.retained_bytes == total
    assert pool.trim(5 * MiB) == 4 * MiB      # the largest first
    assert pool.retained_bytes == total - 4 * MiB
    assert pool.trim() == total - 4 * MiB and pool.retained_bytes == 0
    assert pool.stats()["blocks"] == 0


@pytest.mark.parametrize("alignment", [1, 64, 256, 4096, 1 << 16, 1 << 21])
def test_alignment(alignment):
    pool = ArrayPool(alignment=alignment)
    for n in (1, 100, 70000, 3 * MiB):
        a = pool.empty(n, np.uint8)
        assert a.ctypes.data % max(alignment, 64) == 0
        with pool.lease(n) as buf:
            assert np.frombuffer(buf, np.uint8).ctypes.data % max(alignment, 64) == 0


# -- clear -------------------------------------------------------------------------

def test_clear_on_release():
    pool = ArrayPool(clear="on_release")
    a = pool.empty(5000, np.uint8)
    a[:] = 9
    del a
    assert not pool.empty(5000, np.uint8).any()


def test_clear_poison_catches_a_write_after_release():
    pool = ArrayPool(clear="poison")
    a = pool.empty(1000, np.uint8)
    ptr = a.ctypes.data
    del a
    b = pool.empty(1000, np.uint8)
    assert (b == 0xDB).all()          # poisoned when given back
    del b
    # A write after release, through a pointer someone kept (ctypes here):
    import ctypes
    ctypes.memset(ptr + 10, 0, 1)
    with pytest.raises(PoolError, match="1024-byte size class"):
        pool.empty(1000, np.uint8)
    c = pool.empty(1000, np.uint8)    # the bad block was freed; a new one works
    del c
    assert pool.stats()["blocks"] == 1


# -- PooledBuffer hand-outs ---------------------------------------------------------

@counts_the_shared_pool
def test_acquire(pool):
    buf = pool.acquire(1000)
    assert isinstance(buf, PooledBuffer) and len(buf) == 1000 and buf.pool is pool
    view = memoryview(buf)
    assert not view.readonly and view.nbytes == 1000
    view[:3] = b"abc"
    view.release()
    buf.release()
    assert buf.released and buf.pool is None
    with pytest.raises(PoolError):
        buf.release()
    with pytest.raises(ValueError):
        len(buf)
    with pytest.raises(ValueError):
        memoryview(buf)
    assert out_blocks(pool) == 0 and cached_blocks(pool) == 1


def test_acquire_zero_and_context_manager(pool):
    with pool.acquire(0) as buf:
        assert len(buf) == 0
    with pool.acquire(10) as buf:
        pass
    assert buf.released


@counts_the_shared_pool
def test_deferred_release_while_exported(pool):
    buf = pool.acquire(4096)
    arr = np.frombuffer(buf, np.uint8)
    buf.release()
    assert out_blocks(pool) == 1   # the array still sees the memory
    del arr
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_dropped_buffer_warns_and_returns(pool):
    buf = pool.acquire(100)
    with pytest.warns(ResourceWarning, match="never released"):
        del buf
        gc.collect()
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_lease(pool):
    with pool.lease(300) as buf:
        assert len(buf) == 300
        memoryview(buf)[:] = b"x" * 300
    assert buf.released and out_blocks(pool) == 0
    lease = pool.lease(10)
    with lease:
        with pytest.raises(RuntimeError):
            lease.__enter__()
    with pytest.raises(ValueError):
        pool.lease(-1)


@counts_the_shared_pool
def test_lease_entered_and_dropped_warns(pool):
    lease = pool.lease(10)
    lease.__enter__()
    with pytest.warns(ResourceWarning, match="never exited"):
        del lease
        gc.collect()
    assert out_blocks(pool) == 0


def test_buffer_pool_refuses_array_pool_buffers(pool):
    bufs = BufferPool(64, 1)
    buf = pool.acquire(10)
    with pytest.raises(PoolError, match="another pool"):
        bufs.release(buf)
    buf.release()


# -- borrow -------------------------------------------------------------------------

@counts_the_shared_pool
def test_borrow_gives_back_at_exit(pool):
    with pool.borrow((10, 10), np.float32) as a:
        a[:] = 1
        assert out_blocks(pool) == 1
    assert out_blocks(pool) == 0
    assert a.size == 0            # the name is left with an empty array


@counts_the_shared_pool
@pytest.mark.parametrize("dtype", [np.float64, "S1048576", [("a", "i4"), ("b", "f8")]])
def test_borrow_of_a_0d_array_keeps_its_memory_until_it_dies(pool, dtype):
    # a 0-d array has no dimension to zero: emptied at the exit it would keep
    # its one element, over a small static buffer (shared by all of them)
    with pool.borrow((), dtype) as a:
        pass
    with pool.borrow((), dtype) as b:
        pass
    assert a.shape == b.shape == () and out_blocks(pool) == 2
    a[()] = b[()]                       # (1 MiB each for the bytes dtype)
    assert a.__array_interface__["data"][0] != b.__array_interface__["data"][0]
    del a, b
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_borrow_with_a_view_alive(pool):
    with pool.borrow(100) as a:
        v = a[10:]
    assert out_blocks(pool) == 1 and v.shape == (90,) and a.shape == (100,)
    del v, a
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_borrow_without_as(pool):
    with pool.borrow(5):
        pass
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_borrow_nested_and_exception(pool):
    with pytest.raises(KeyError):
        with pool.borrow(5):
            raise KeyError
    assert out_blocks(pool) == 0


def _address(a):
    return a.__array_interface__["data"][0]     # an int: holds nothing


# Every way for the `as` name to stop naming the borrowed array while
# something else still reaches its memory: a view, an export through the
# buffer protocol, or an object that holds the array and keeps a raw pointer
# into it.  Each form takes the name `a` and returns what reaches the memory.
_BORROW_FORMS = {
    "slice": lambda a: a[:10],
    "memoryview": memoryview,
    "frombuffer": lambda a: np.frombuffer(a, np.uint8),
    "reshape_in_list": lambda a: [a.reshape(10, 100)],
    "base": lambda a: a.base,
    "transpose": lambda a: a.T,
    "flatiter": lambda a: a.flat,
    "nditer": lambda a: np.nditer(a, op_flags=["readwrite"]),
    "as_strided": lambda a: np.lib.stride_tricks.as_strided(a, (10,), (1,)),
    "dlpack": lambda a: a.__dlpack__(),
    "array_struct": lambda a: a.__array_struct__,
    "ctypes": lambda a: a.ctypes,
    "pickle_buffer": pickle.PickleBuffer,
}


@pytest.mark.parametrize("form", sorted(_BORROW_FORMS))
@counts_the_shared_pool
def test_borrow_never_gives_back_a_block_that_something_reaches(pool, form):
    """The block stays out while anything made from the array inside the
    `with` survives it; the next hand-out gets other memory; the block comes
    back when the last of them dies."""
    def borrow():
        # in a frame of its own: on 3.9-3.12 the exit's look at the frame's
        # names leaves a snapshot of them (frame.f_locals) until it returns
        with pool.borrow(1000, np.uint8) as a:
            addr = _address(a)
            a = _BORROW_FORMS[form](a)
        return a, addr

    a, addr = borrow()
    assert out_blocks(pool) == 1
    other = pool.empty(1000, np.uint8)
    assert _address(other) != addr
    del other
    assert out_blocks(pool) == 1
    del a
    gc.collect()
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_borrow_unpacked_row_keeps_the_block(pool):
    with pool.borrow((1, 1000), np.uint8) as (row,):
        pass
    assert out_blocks(pool) == 1
    row[:] = 1
    del row
    assert out_blocks(pool) == 0


@counts_the_shared_pool
def test_borrow_gives_back_at_exit_in_a_function(pool):
    def work():
        with pool.borrow(1000, np.uint8) as a:
            a[:] = 3
        return a
    assert work().size == 0 and out_blocks(pool) == 0


def test_borrow_view_outliving_the_block_cannot_crash(tmp_path):
    """max_bytes=0 frees every given-back block, and 1 MiB blocks are mapped
    pages: a block given back while a view reaches it would be unmapped,
    and writing through the view would kill the process."""
    proc = run_script(tmp_path, """
import numpy as np
from pool_ext import ArrayPool
pool = ArrayPool(max_bytes=0)
n = 1 << 20
kept = []
with pool.borrow(n, np.uint8) as a:
    a = a[: n // 2]
kept.append(a)
with pool.borrow(n, np.uint8) as a:
    a = memoryview(a)
kept.append(np.asarray(a))
with pool.borrow((1, n), np.uint8) as (row,):
    pass
kept.append(row)
for v in kept:
    v[:] = 1                  # would fault on an unmapped block
    assert v.sum() == v.size
print("ok", pool.stats()["oversize_out"] + sum(
    c["out"] for c in pool.stats()["classes"].values()))
""")
    assert proc.returncode == 0 and proc.stdout.split() == ["ok", "3"]


# -- BufferPool.empty / zeros ----------------------------------------------------

def test_bufferpool_empty():
    bufs = BufferPool(4096, 2)
    a = bufs.empty((32, 32), np.float32)
    assert type(a) is np.ndarray and a.shape == (32, 32) and bufs.in_use == 1
    z = bufs.zeros(512, np.float64, "F")
    assert not z.any() and bufs.in_use == 2
    with pytest.raises(PoolExhausted):
        bufs.empty(1, timeout=0)
    v = a[1:]
    del a
    assert bufs.in_use == 2
    del v, z
    assert bufs.in_use == 0
    with pytest.raises(ValueError, match="does not fit"):
        bufs.empty(4097, np.uint8)
    assert bufs.stats()["acquires"] == 2
    bufs.close()
    with pytest.raises(PoolClosed):
        bufs.empty(1)


def test_bufferpool_array_base_cannot_release():
    bufs = BufferPool(64, 1)
    a = bufs.empty(8, np.uint8)
    assert not hasattr(a.base, "release")
    with pytest.raises(TypeError):
        memoryview(a.base)
    del a
    assert bufs.in_use == 0


def test_bufferpool_array_waits_for_a_slot():
    import threading
    bufs = BufferPool(64, 1)
    holder = [bufs.empty(8)]
    # the array dies in another thread, once we wait (not a fixed delay: a
    # loaded machine may run us later than it)
    t = threading.Thread(target=lambda: wait_for_waiters(bufs) and holder.clear())
    t.start()
    b = bufs.empty(8, timeout=10)
    assert b.shape == (8,) and bufs.stats()["waits"] == 1
    t.join()


def test_bufferpool_zeros_with_zero_on_release():
    bufs = BufferPool(256, 1, zero_on_release=True)
    a = bufs.empty(256, np.uint8)
    a[:] = 3
    del a
    assert not bufs.zeros(256, np.uint8).any()


# -- refused, and nothing lost ------------------------------------------------------

class LyingInt(int):
    def __index__(self):
        return -5

    def __lt__(self, other):
        return False


@pytest.mark.parametrize("shape, exc", [
    (-1, ValueError), ((3, -1), ValueError), (1 << 70, ValueError), ((1 << 40, 1 << 40), ValueError),
    ((1 << 62, 4), ValueError), (2.5, TypeError), ((2, 2.0), TypeError), (True, TypeError),
    ((3, True), TypeError), ("12", TypeError), (None, TypeError), ((1,) * 65, ValueError),
    (np.bool_(True), TypeError), ((np.bool_(True), 2), TypeError), (np.array([2.0, 3.0]), TypeError),
    (np.int64(-3), ValueError), (b"12", TypeError), (object(), TypeError),
])
def test_bad_shapes(pool, shape, exc):
    with pytest.raises(exc):
        pool.empty(shape, np.uint8)
    with pytest.raises(exc):
        BufferPool(64, 1).empty(shape, np.uint8)
    assert pool.stats()["misses"] == 0 and out_blocks(pool) == 0


def test_lying_int_subclass(pool):
    a = pool.empty(LyingInt(4), np.uint8)   # its plain value, 4, not its methods
    assert a.shape == (4,)
    b = pool.empty((LyingInt(2), 3), np.uint8)
    assert b.shape == (2, 3)


@pytest.mark.parametrize("dtype", [object, "O", [("a", "f8"), ("b", "O")], "S", "U"])
def test_refused_dtypes(pool, dtype):
    with pytest.raises(TypeError):
        pool.empty(3, dtype)
    with pytest.raises(TypeError):
        BufferPool(64, 1).zeros(3, dtype)
    assert out_blocks(pool) == 0 and pool.stats()["misses"] == 0


def test_refused_stringdtype(pool):
    if not hasattr(np, "dtypes") or not hasattr(np.dtypes, "StringDType"):
        pytest.skip("numpy without StringDType")
    with pytest.raises(TypeError, match="references"):
        pool.empty(3, np.dtypes.StringDType())


def test_bad_dtype_and_order(pool):
    with pytest.raises(TypeError):
        pool.empty(3, "not a dtype")
    with pytest.raises(ValueError):
        pool.empty(3, float, "Q")
    with pytest.raises(ValueError):
        pool.empty(3, float, "K")
    with pytest.raises(TypeError):
        pool.empty(3, float, 1)
    assert pool.stats()["misses"] == 0


@pytest.mark.parametrize("kwargs, exc", [
    ({"max_bytes": -1}, ValueError), ({"max_bytes": True}, TypeError), ({"max_bytes": 1.0}, TypeError),
    ({"max_size": 0}, ValueError), ({"max_size": False}, TypeError), ({"alignment": 3}, ValueError),
    ({"alignment": 0}, ValueError), ({"alignment": True}, TypeError), ({"alignment": 1 << 31}, ValueError),
    ({"clear": "sometimes"}, ValueError), ({"clear": 1}, TypeError), ({"clear": None}, TypeError),
])
def test_bad_constructor_arguments(kwargs, exc):
    with pytest.raises(exc):
        ArrayPool(**kwargs)


def test_positional_arguments_refused():
    with pytest.raises(TypeError):
        ArrayPool(1024)


def test_bad_nbytes(pool):
    for bad, exc in ((-1, ValueError), (True, TypeError), (1.0, TypeError), ("3", TypeError)):
        with pytest.raises(exc):
            pool.acquire(bad)
    with pytest.raises(TypeError):
        pool.trim(True)
    with pytest.raises(ValueError):
        pool.trim(-1)
    assert out_blocks(pool) == 0


def test_huge_request_is_memory_error_not_a_crash():
    pool = ArrayPool()
    with pytest.raises(MemoryError):
        pool.empty(1 << 52, np.uint8)
    assert out_blocks(pool) == 0


def test_init_twice_refused(pool):
    with pytest.raises(RuntimeError):
        pool.__init__()


def test_uninitialised_pool_refuses():
    p = ArrayPool.__new__(ArrayPool)
    for call in (lambda: p.empty(3), lambda: p.acquire(3), p.stats):
        with pytest.raises(RuntimeError):
            call()
    assert p.trim() == 0 and p.retained_bytes == 0


def test_dtypes_numpy_zero_fills_start_zeroed(np):
    # numpy gives 'U' arrays from np.empty zero-filled (NPY_NEEDS_INIT): so
    # does the pool, even over a block that held other bytes
    from pool_ext import ArrayPool, BufferPool
    arrays = ArrayPool()
    dirty = arrays.empty(64, np.uint8)
    dirty[:] = 0xFF
    del dirty
    u = arrays.empty(4, "U4")
    assert (u == "").all() and u.dtype == np.dtype("U4")
    bufs = BufferPool(64, 1)
    dirty = bufs.empty(64, np.uint8)
    dirty[:] = 0xFF
    del dirty
    assert (bufs.empty(2, "U8") == "").all()


def test_borrow_gives_back_early_only_through_a_plain_local():
    """At exit borrow() gives the block back at once when only the `as` name
    still reaches the array.  On a free-threaded build that name must be a
    function's plain local: a closure cell (or a global) can be read by
    another thread, running at once, after the check and before the block
    goes back, leaving it a view of a block handed on (found by the
    break-it review).  There the block goes back when the array dies."""
    import sysconfig
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    pool = ArrayPool()

    def plain():
        with pool.borrow(64, np.uint8) as a:
            a[:] = 1
        return a.size                                 # 0: given back, emptied

    def cell():
        with pool.borrow(64, np.uint8) as a:
            a[:] = 1
        size = a.size
        return size, (lambda: a)                      # `a` is a closure cell

    assert plain() == 0
    size, keep = cell()
    assert size == (64 if free_threaded else 0)
    del keep


def test_clear_may_be_a_str_subclass():
    pool = ArrayPool(clear=np.str_("poison"))
    assert pool.clear == "poison" and type(pool.clear) is str
