"""Bad input and misuse: every public call given wrong types or absurd
values, and every call made out of order (double, foreign or cross-pool
release, use after release, a lease entered twice, calls on closed or
uninitialised pools), raises a clear exception, never crashes, and leaves the
pool usable and unchanged.

The same table is in README.md, section "Safety".
"""
import decimal
import gc
import fractions
import math
import sys
import threading
import time
import warnings

import pytest

from helpers import Thing, run_script, wait_for_waiters
from pool_ext import (MAX_CAPACITY, BufferPool, ObjectPool, PoolClosed, PoolError,
                      PooledBuffer, PoolExhausted)


def snapshot(pool):
    s = pool.stats()
    s.pop("waiting")
    return s


# ---- constructors ---------------------------------------------------------



CAPACITY_CASES = [
    # (capacity, exception)
    (0, ValueError), (-1, ValueError), (-(2**70), ValueError),
    (MAX_CAPACITY + 1, ValueError), (2**32, ValueError), (2**64, ValueError),
    (10**100, ValueError),
    (1.5, TypeError), (2.0, TypeError), (math.inf, TypeError), (math.nan, TypeError),
    ("3", TypeError), (None, TypeError), (True, TypeError), (b"\x03", TypeError),
    ([3], TypeError), (decimal.Decimal(3), TypeError), (fractions.Fraction(3), TypeError),
]


@pytest.mark.parametrize("capacity,exc", CAPACITY_CASES, ids=repr)
def test_objectpool_bad_capacity(capacity, exc):
    with pytest.raises(exc, match="capacity"):
        ObjectPool(Thing, capacity)


@pytest.mark.parametrize("capacity,exc", CAPACITY_CASES, ids=repr)
def test_bufferpool_bad_capacity(capacity, exc):
    with pytest.raises(exc, match="capacity"):
        BufferPool(64, capacity)


def test_numpy_integer_capacity_is_accepted(np):
    # integer arguments go through operator.index, as Python's own do
    assert ObjectPool(Thing, np.int64(3)).capacity == 3
    with pytest.raises(TypeError, match="capacity must be an int"):
        ObjectPool(Thing, np.float64(3))


@pytest.mark.parametrize("kwargs,exc", [
    ({"factory": 42}, TypeError), ({"factory": None}, TypeError),
    ({"reset": 1}, TypeError), ({"validate": "x"}, TypeError), ({"destroy": []}, TypeError),
    ({"prefill": -1}, ValueError), ({"prefill": 3}, ValueError), ({"prefill": 2**70}, ValueError),
    ({"prefill": 1.0}, TypeError), ({"prefill": True}, TypeError), ({"prefill": None}, TypeError),
    ({"unknown": 1}, TypeError),
    ({"check": 1}, TypeError), ({"check": "select 1"}, TypeError),
    ({"min_idle": -1}, ValueError), ({"min_idle": 3}, ValueError), ({"min_idle": 1.0}, TypeError),
    ({"min_idle": True}, TypeError), ({"name": 1}, TypeError), ({"name": b"db"}, TypeError),
] + [({option: value}, exc) for option in ("max_lifetime", "max_idle", "leak_timeout")
     for value, exc in [(-1, ValueError), (-0.001, ValueError), (-math.inf, ValueError),
                        (math.nan, ValueError), (True, TypeError), (False, TypeError),
                        ("1", TypeError), ([1], TypeError), (1j, TypeError),
                        (10**400, OverflowError)]],
    ids=repr)
def test_objectpool_bad_arguments(kwargs, exc):
    args = {"factory": Thing, "capacity": 2}
    args.update(kwargs)
    factory = args.pop("factory")
    capacity = args.pop("capacity")
    with pytest.raises(exc):
        ObjectPool(factory, capacity, **args)


@pytest.mark.parametrize("args,kwargs,exc", [
    ((0, 1), {}, ValueError), ((-1, 1), {}, ValueError), ((-(2**80), 1), {}, ValueError),
    (("8", 1), {}, TypeError), ((8.0, 1), {}, TypeError), ((None, 1), {}, TypeError),
    ((True, 1), {}, TypeError),
    ((8, 1), {"alignment": 0}, ValueError), ((8, 1), {"alignment": 48}, ValueError),
    ((8, 1), {"alignment": -64}, ValueError), ((8, 1), {"alignment": 64.0}, TypeError),
    ((8, 1), {"alignment": None}, TypeError),
    # sizes no allocator can satisfy: MemoryError, checked before allocating
    ((2**64, 1), {}, MemoryError), ((10**30, 1), {}, MemoryError),
    ((1 << 62, 1 << 20), {}, MemoryError), ((2**63 - 1, 3), {}, MemoryError),
    # alignments above 1 GiB are refused outright
    ((8, 1), {"alignment": 2**31}, ValueError), ((8, 1), {"alignment": 2**61}, ValueError),
    ((8, 1), {"alignment": 2**62}, ValueError), ((8, 1), {"alignment": 2**70}, ValueError),
    ((8, 1), {"unknown": 1}, TypeError), ((8,), {}, TypeError),
    ((8, 1), {"leak_timeout": -1}, ValueError), ((8, 1), {"leak_timeout": math.nan}, ValueError),
    ((8, 1), {"leak_timeout": True}, TypeError), ((8, 1), {"name": 3}, TypeError),
], ids=repr)
def test_bufferpool_bad_arguments(args, kwargs, exc):
    with pytest.raises(exc):
        BufferPool(*args, **kwargs)


@pytest.mark.parametrize("option", ["max_lifetime", "max_idle", "leak_timeout"])
def test_time_limits_accept_zero_inf_none_and_numbers(option, np):
    for value in (0, 0.5, 3, math.inf, None, np.float64(2.5), decimal.Decimal("1.5"),
                  fractions.Fraction(1, 2)):
        pool = ObjectPool(Thing, 1, **{option: value})
        expected = None if value in (None, math.inf) else float(value)
        assert getattr(pool, option) == expected
        pool.release(pool.acquire())


def test_a_name_that_is_a_str_subclass_is_kept_as_a_plain_str():
    class Name(str):
        def __repr__(self):
            raise RuntimeError("never called")

    pool = ObjectPool(Thing, 1, name=Name("db"))
    assert type(pool.name) is str and "'db'" in repr(pool)


@pytest.mark.parametrize("interval,exc", [
    (0, ValueError), (-1, ValueError), (math.nan, ValueError), (math.inf, ValueError),
    (None, TypeError), (True, TypeError), ("1", TypeError),
], ids=repr)
def test_start_evictor_bad_interval(interval, exc):
    pool = ObjectPool(Thing, 1)
    with pytest.raises(exc, match="interval"):
        pool.start_evictor(interval)
    pool.stop_evictor()                    # none started


@pytest.mark.parametrize("timeout,exc", [(-1, ValueError), (math.nan, ValueError),
                                         ("1", TypeError), (True, TypeError)], ids=repr)
def test_drain_bad_timeout_leaves_the_pool_open(timeout, exc):
    pool = ObjectPool(Thing, 1)
    with pytest.raises(exc):
        pool.drain(timeout)
    assert not pool.closed


def test_objectpool_bad_construction():
    with pytest.raises(TypeError):
        ObjectPool(42, 1)
    with pytest.raises(ValueError):
        ObjectPool(Thing, 0)
    with pytest.raises(ValueError):
        ObjectPool(Thing, -3)
    with pytest.raises(TypeError):
        ObjectPool(Thing, 1.5)
    with pytest.raises(TypeError):
        ObjectPool(Thing, "3")
    with pytest.raises(ValueError):
        ObjectPool(Thing, 2**31)
    with pytest.raises(TypeError):
        ObjectPool(Thing, 1, reset=3)
    with pytest.raises(ValueError):
        ObjectPool(Thing, 2, prefill=3)
    with pytest.raises(TypeError):
        ObjectPool(Thing, 2, 0)   # hooks and prefill are keyword-only


def test_bufferpool_bad_construction():
    for args, kwargs, exc in [
        ((0, 1), {}, ValueError), ((8, 0), {}, ValueError), ((-1, 1), {}, ValueError),
        ((8, 1), {"alignment": 48}, ValueError), ((8, 1), {"alignment": 0}, ValueError),
        (("8", 1), {}, TypeError), ((8.0, 1), {}, TypeError), ((8, 1.0), {}, TypeError),
        ((8, 2**31), {}, ValueError), ((1 << 62, 1 << 20), {}, MemoryError),
    ]:
        with pytest.raises(exc):
            BufferPool(*args, **kwargs)


def test_init_twice_is_refused():
    pool = ObjectPool(Thing, 2)
    with pytest.raises(RuntimeError, match="called twice"):
        pool.__init__(Thing, 5)
    assert pool.capacity == 2
    bufs = BufferPool(8, 2)
    with pytest.raises(RuntimeError, match="called twice"):
        bufs.__init__(16, 5)
    assert bufs.capacity == 2 and bufs.buffer_size == 8


def test_failed_init_then_retry():
    pool = ObjectPool.__new__(ObjectPool)
    with pytest.raises(ValueError):
        pool.__init__(Thing, 0)
    pool.__init__(Thing, 1)
    pool.release(pool.acquire(timeout=0))


def test_uninitialised_pools_refuse_every_call():
    for pool in (ObjectPool.__new__(ObjectPool), BufferPool.__new__(BufferPool)):
        for call in (pool.acquire, pool.try_acquire, lambda: pool.acquire(timeout=0),
                     lambda: pool.lease().__enter__()):
            with pytest.raises(PoolClosed):
                call()
        with pytest.raises(PoolError):
            pool.release(object())
        assert pool.stats()["capacity"] == 0 and pool.available == 0
        repr(pool)
        pool.close()
        with pytest.raises(PoolError):
            pool.holders()
    pool = ObjectPool.__new__(ObjectPool)
    with pytest.raises(PoolClosed):
        pool.start_evictor(1)
    with pytest.raises(PoolClosed):
        pool.discard(object())
    pool.stop_evictor()
    pool.drain()
    assert pool.evict() == 0


def test_uninitialised_pool_refuses_without_crashing():
    pool = ObjectPool.__new__(ObjectPool)
    with pytest.raises(PoolClosed):
        pool.acquire()
    with pytest.raises(PoolError):
        pool.release(object())
    pool.close()


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


def test_not_subclassable_not_picklable():
    import copy
    import pickle
    for cls in (ObjectPool, BufferPool, PooledBuffer):
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})
    bufs = BufferPool(8, 1)
    buf = bufs.acquire()
    for obj in (ObjectPool(Thing, 1), bufs, buf, ObjectPool(Thing, 1).lease(), bufs.lease()):
        for f in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError):
                f(obj)
    buf.release()
    assert bufs.in_use == 0


def test_factory_returning_the_same_object_twice():
    singleton = Thing()
    pool = ObjectPool(lambda: singleton, 2)
    assert pool.acquire() is singleton
    with pytest.raises(PoolError, match="already in this pool"):
        pool.acquire()
    assert pool.in_use == 1
    pool.release(singleton)
    assert pool.acquire() is singleton


# ---- allocation failure must be MemoryError, not a crash ------------------



ALLOC_SCRIPT = """
    import resource, sys
    from pool_ext import BufferPool, ObjectPool, MAX_CAPACITY
    GiB = 1 << 30
    # cap the address space at what we use now + 1.5 GiB: allocations fail
    # deterministically, whatever this machine's RAM and overcommit policy
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    limit = vm + 3 * GiB // 2
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cases = [
        ("ObjectPool(MAX_CAPACITY)", lambda: ObjectPool(object, MAX_CAPACITY)),
        ("ObjectPool(2**27)", lambda: ObjectPool(object, 2**27)),   # slot arrays fail
        ("ObjectPool(2**26)", lambda: ObjectPool(object, 2**26)),   # address map fails
        ("BufferPool(1 GiB x 4)", lambda: BufferPool(GiB, 4)),
        ("BufferPool(64 x MAX_CAPACITY)", lambda: BufferPool(64, MAX_CAPACITY)),
        ("BufferPool(1 x 2**28)", lambda: BufferPool(1, 2**28)),    # arena ok? slots
    ]
    for name, make in cases:
        try:
            pool = make()
        except MemoryError as e:
            print(name, "MemoryError", e, flush=True)
        else:
            print(name, "BUILT", pool, flush=True)
            sys.exit(3)
    # the process is still healthy and pools still work
    p = ObjectPool(object, 4)
    p.release(p.acquire())
    b = BufferPool(4096, 4)
    b.acquire().release()
    print("OK")
"""


def test_allocation_failure_is_memory_error(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("uses RLIMIT_AS and /proc")
    proc = run_script(tmp_path, ALLOC_SCRIPT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("MemoryError") == 6
    assert proc.stdout.rstrip().endswith("OK")


# ---- timeouts -------------------------------------------------------------



BAD_TIMEOUTS = [
    # (timeout, exception)
    (-1, ValueError), (-0.001, ValueError), (-math.inf, ValueError), (math.nan, ValueError),
    (-(10**400), OverflowError), (10**400, OverflowError),
    ("1", TypeError), (b"1", TypeError), (True, TypeError), (False, TypeError),
    ([1], TypeError), (1j, TypeError), (object(), TypeError),
]


def _id(x):
    if type(x) is object:
        return "object()"
    r = repr(x)
    return r if len(r) < 20 else r[:8] + "..." + r[-4:]


def _pools():
    return [("ObjectPool", ObjectPool(Thing, 1)), ("BufferPool", BufferPool(16, 1))]


def _release(pool, item):
    pool.release(item)


@pytest.mark.parametrize("timeout,exc", BAD_TIMEOUTS, ids=_id)
def test_bad_timeout_on_exhausted_pool(timeout, exc):
    for _, pool in _pools():
        held = pool.acquire()
        before = snapshot(pool)
        with pytest.raises(exc):
            pool.acquire(timeout=timeout)
        with pytest.raises(exc):
            with pool.lease(timeout=timeout):
                pass
        assert snapshot(pool) == before
        _release(pool, held)
        assert pool.in_use == 0


# Was a bug in 916e158: the timeout was validated only when acquire() had to
# wait, so with a free slot any timeout (even "x" or NaN) was accepted.
@pytest.mark.parametrize("timeout,exc", BAD_TIMEOUTS, ids=_id)
def test_bad_timeout_on_free_pool(timeout, exc):
    for _, pool in _pools():
        before = snapshot(pool)
        with pytest.raises(exc):
            item = pool.acquire(timeout=timeout)
            _release(pool, item)     # (only reached if the timeout was accepted)
        with pytest.raises(exc):
            with pool.lease(timeout=timeout):
                pass
        assert snapshot(pool) == before


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1", True, [1]])
def test_objectpool_bad_timeouts(timeout):
    pool = ObjectPool(Thing, 1)
    pool.acquire()
    with pytest.raises((TypeError, ValueError)):
        pool.acquire(timeout=timeout)
    assert pool.in_use == 1


@pytest.mark.parametrize("timeout", [0, 0.0, -0.0, 1e-300, 5e-324, 0.001,
                                     decimal.Decimal("0.001"), fractions.Fraction(1, 1000)],
                         ids=repr)
def test_small_timeouts_raise_pool_exhausted(timeout):
    for _, pool in _pools():
        held = pool.acquire()
        with pytest.raises(PoolExhausted):
            pool.acquire(timeout=timeout)
        with pytest.raises(PoolExhausted):
            with pool.lease(timeout=timeout):
                pass
        _release(pool, held)
        assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def test_numpy_float_timeout(np):
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=np.float64(0.001))
    pool.release(held)


@pytest.mark.parametrize("timeout", [None, math.inf, 1e300, 1e15, float(2**63)], ids=repr)
def test_huge_and_infinite_timeouts_wait_until_released(timeout):
    """timeout=inf is documented as waiting forever; so do None and absurdly
    large finite timeouts (1e300 s): the wait ends when a slot is released."""
    for _, pool in _pools():
        held = pool.acquire()
        got = []
        t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=timeout)))
        t.start()
        assert wait_for_waiters(pool)
        time.sleep(0.05)
        assert not got and t.is_alive()       # it waits, it did not time out
        _release(pool, held)
        t.join(10)
        assert not t.is_alive() and len(got) == 1
        _release(pool, got[0])
        assert pool.in_use == 0 and pool.stats()["timeouts"] == 0


# ---- release / lease / handle misuse --------------------------------------



def test_double_release_and_foreign_release_leave_pool_unchanged():
    pool = ObjectPool(Thing, 2)
    other = ObjectPool(Thing, 2)
    a = pool.acquire()
    pool.release(a)
    before = pool.stats()
    with pytest.raises(PoolError, match="not in use"):
        pool.release(a)
    with pytest.raises(PoolError, match="was not handed out by this pool"):
        pool.release(Thing())
    b = other.acquire()
    with pytest.raises(PoolError, match="was not handed out by this pool"):
        pool.release(b)
    assert pool.stats() == before
    assert isinstance(PoolError("x"), ValueError)
    # the pool still works and hands out each object once
    x, y = pool.acquire(), pool.acquire()
    assert x is not y


@pytest.mark.parametrize("how", ["release", "discard"])
@pytest.mark.parametrize("foreign", [None, 0, "s", Thing(), object, ObjectPool],
                         ids=repr)
def test_objectpool_foreign_release(foreign, how):
    pool = ObjectPool(Thing, 2)
    a = pool.acquire()
    before = snapshot(pool)
    with pytest.raises(PoolError, match=f"{how} of an object that was not handed out by this pool"):
        getattr(pool, how)(foreign)
    assert snapshot(pool) == before
    pool.release(a)


def test_objectpool_discard_arity():
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    with pytest.raises(TypeError):
        pool.discard()
    with pytest.raises(TypeError):
        pool.discard(held, held)
    pool.release(held)


def test_objectpool_release_arity():
    pool = ObjectPool(Thing, 1)
    with pytest.raises(TypeError):
        pool.release()
    with pytest.raises(TypeError):
        pool.release(1, 2)
    for call in (lambda: pool.try_acquire(1), lambda: pool.stats(1), lambda: pool.close(1),
                 lambda: pool.acquire(1, 2), lambda: pool.acquire(tiemout=1),
                 lambda: pool.lease(1, 2)):
        with pytest.raises(TypeError):
            call()
    assert pool.in_use == 0


@pytest.mark.parametrize("foreign", [None, b"12345678", bytearray(8), memoryview(bytearray(8)),
                                     PooledBuffer.__new__(PooledBuffer), Thing()],
                         ids=lambda x: type(x).__name__)
def test_bufferpool_foreign_release(foreign):
    bufs = BufferPool(8, 1)
    buf = bufs.acquire()
    before = snapshot(bufs)
    with pytest.raises(PoolError):
        bufs.release(foreign)
    assert snapshot(bufs) == before
    buf.release()


def test_buffer_from_another_pool():
    a, b = BufferPool(8, 1), BufferPool(8, 1)
    buf = a.acquire()
    with pytest.raises(PoolError, match="another pool"):
        b.release(buf)
    assert a.in_use == 1 and b.in_use == 0
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


def test_released_handle_refuses_everything():
    bufs = BufferPool(8, 1)
    buf = bufs.acquire()
    buf.release()
    for call in (len, memoryview, bytes, bytearray, lambda b: b.__enter__()):
        with pytest.raises(ValueError):
            call(buf)
    for call in (buf.release, lambda: bufs.release(buf)):
        with pytest.raises(PoolError, match="already released"):
            call()
    assert buf.__exit__(None, None, None) is False      # exit of a released handle: no-op
    assert bufs.in_use == 0 and bufs.stats()["releases"] == 1


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


def test_dead_handle_made_without_a_pool():
    buf = PooledBuffer.__new__(PooledBuffer)
    for call in (len, memoryview, bytes, lambda b: b.__enter__()):
        with pytest.raises(ValueError):
            call(buf)
    with pytest.raises(PoolError):
        buf.release()
    assert buf.pool is None and buf.released and "released" in repr(buf)


def test_lease_exit_without_enter_and_double_enter():
    pool, bufs = ObjectPool(Thing, 2), BufferPool(8, 2)
    for p in (pool, bufs):
        assert p.lease().__exit__(None, None, None) is False
        lease = p.lease()
        with lease:
            with pytest.raises(RuntimeError, match="already active"):
                lease.__enter__()
            assert p.in_use == 1
        assert p.in_use == 0


def test_objectpool_release_inside_lease_then_exit():
    pool = ObjectPool(Thing, 1)
    with pytest.raises(PoolError, match="not in use"):
        with pool.lease() as obj:
            pool.release(obj)
    assert pool.in_use == 0
    pool.release(pool.acquire(timeout=0))


def test_calls_on_closed_pools():
    for _, pool in _pools():
        held = pool.acquire()
        pool.close()
        for call in (pool.acquire, pool.try_acquire, lambda: pool.acquire(timeout=0),
                     lambda: pool.lease().__enter__()):
            with pytest.raises(PoolClosed):
                call()
        _release(pool, held)
        with pytest.raises(PoolError):
            _release(pool, held)
        assert pool.in_use == 0 and pool.available == 0
        pool.close()


# ---- the break-it review (each of these crashed, hung or misled before) ----

def test_prefill_whose_factory_acquires_from_the_pool_being_built():
    pool = ObjectPool.__new__(ObjectPool)
    taken = []

    def factory():
        item = pool.try_acquire()
        if item is not None:
            taken.append(item)
        return Thing()

    with pytest.raises(PoolError, match="prefill"):
        pool.__init__(factory, 2, prefill=2)
    for item in taken:
        pool.release(item)
    assert pool.in_use == 0
    items = [pool.acquire(timeout=0) for _ in range(2)]
    assert pool.try_acquire() is None
    for item in items:
        pool.release(item)


class LyingInt(int):
    """Its comparisons all say False and its __index__ says 5."""
    def __lt__(self, other): return False
    def __le__(self, other): return False
    def __gt__(self, other): return False
    def __ge__(self, other): return False
    def __eq__(self, other): return False
    def __ne__(self, other): return False
    __hash__ = int.__hash__
    def __index__(self): return 5
    def __int__(self): return 5


class IndexLiar:
    """Not an int; __index__ returns a lying int subclass."""
    def __init__(self, value): self.value = value
    def __index__(self): return LyingInt(self.value)


def _index_accepts_subclasses():
    """Python warns (DeprecationWarning) when __index__ returns an int
    subclass, and newer versions refuse it (TypeError)."""
    import operator
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            operator.index(IndexLiar(1))
        except TypeError:
            return False
    return True


@pytest.mark.filterwarnings("ignore:__index__ returned non-int:DeprecationWarning")
@pytest.mark.parametrize("make", [LyingInt, IndexLiar])
# Python's own DeprecationWarning for an __index__ that returns an int
# subclass (3.14, 3.15) is not what this tests
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_lying_integers_are_converted_once(make):
    # a refused integer is a ValueError; where Python refuses the __index__
    # result itself, a TypeError: either way a clear error, never a crash
    refused = ValueError if make is LyingInt or _index_accepts_subclasses() else TypeError
    with pytest.raises(refused):
        ObjectPool(Thing, make(0))
    with pytest.raises(refused):
        ObjectPool(Thing, make(-3))
    with pytest.raises(refused):
        ObjectPool(Thing, 2, prefill=make(3))
    with pytest.raises(refused):
        ObjectPool(Thing, 2, prefill=make(-1))
    with pytest.raises(refused):
        BufferPool(make(0), 2)
    with pytest.raises(refused):
        BufferPool(64, make(0))
    with pytest.raises(refused):
        BufferPool(64, 2, alignment=make(3))
    if refused is TypeError:
        return
    pool = ObjectPool(Thing, make(2), prefill=make(2))
    assert pool.capacity == 2 and pool.idle == 2
    bufs = BufferPool(make(100), make(2), alignment=make(128))
    assert bufs.buffer_size == 100 and bufs.capacity == 2 and bufs.alignment == 128


def test_index_protocol_integers_are_accepted(np):
    pool = ObjectPool(Thing, np.int64(3), prefill=np.uint8(1))
    assert pool.capacity == 3 and pool.idle == 1
    assert BufferPool(np.int32(64), np.int64(2)).capacity == 2


@pytest.mark.parametrize("full", [True, False])
def test_entering_an_active_lease_raises_at_once_without_acquiring(full):
    pool = ObjectPool(Thing, 1 if full else 3)
    lease = pool.lease()        # timeout=None: a full pool would block for ever
    obj = lease.__enter__()
    before = pool.stats()
    done = []

    def enter_again():
        try:
            lease.__enter__()
        except RuntimeError:
            done.append("RuntimeError")
        except BaseException as e:  # pragma: no cover - the failure we test for
            done.append(repr(e))

    t = threading.Thread(target=enter_again, daemon=True)
    t.start()
    t.join(5)
    if not done:                 # still blocked: unblock it, then fail
        lease.__exit__(None, None, None)
        t.join(5)
        pytest.fail("entering an active lease blocked")
    assert done == ["RuntimeError"]
    after = pool.stats()
    assert after["acquires"] == before["acquires"]
    assert after["creations"] == before["creations"]
    assert after["destructions"] == before["destructions"]
    lease.__exit__(None, None, None)
    assert pool.in_use == 0 and pool.acquire(timeout=0) is obj


def test_buffer_lease_entered_twice_raises_at_once():
    bufs = BufferPool(64, 1)
    lease = bufs.lease(timeout=0)
    lease.__enter__()
    with pytest.raises(RuntimeError):
        lease.__enter__()
    lease.__exit__(None, None, None)
    assert bufs.in_use == 0


def test_lease_dropped_without_exit_returns_its_object_with_a_warning():
    pool = ObjectPool(Thing, 1)
    lease = pool.lease()
    obj = lease.__enter__()
    assert pool.in_use == 1
    with pytest.warns(ResourceWarning, match="lease"):
        del lease
        gc.collect()
    assert pool.in_use == 0
    assert pool.acquire(timeout=0) is obj


def test_lease_dropped_without_exit_reports_what_its_give_back_raised(monkeypatch):
    # the error reaches sys.unraisablehook (type, value, traceback), not lost
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def reset(obj):
        raise RuntimeError("reset failed")
    pool = ObjectPool(list, 1, reset=reset)
    lease = pool.lease()
    lease.__enter__()
    del lease
    gc.collect()
    assert [type(u.exc_value) for u in seen] == [RuntimeError]
    assert seen[0].exc_traceback is not None and pool.in_use == 0
    # the hook's `object` is the pool, which it may keep: not the lease,
    # which is being freed
    assert seen[0].object is pool


def test_lease_dropped_with_warnings_as_errors_and_a_hook_that_keeps_everything(monkeypatch):
    kept = []
    monkeypatch.setattr(sys, "unraisablehook", kept.append)
    pool = ObjectPool(object, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        lease = pool.lease()
        lease.__enter__()
        del lease
        gc.collect()
    assert [type(u.exc_value) for u in kept] == [ResourceWarning]
    junk = [ObjectPool(object, 1).lease() for _ in range(200)]   # (reuses freed memory)
    assert repr(kept[0].object).startswith("<ObjectPool") and pool.in_use == 0
    del junk, kept[:]


def test_a_dropped_lease_is_out_of_the_gcs_reach_while_its_give_back_runs():
    # a reset hook that looks for the pool's referrers must not find the
    # lease being freed (it would hold freed memory after)
    kept = []

    def reset(obj):
        kept.extend(r for r in gc.get_referrers(pool) if type(r).__name__ == "_Lease")
    pool = ObjectPool(object, 1, reset=reset)
    lease = pool.lease()
    lease.__enter__()
    with pytest.warns(ResourceWarning):
        del lease
        gc.collect()
    for k in kept:                   # (none expected; any kept must still work)
        with k:
            pass
    assert kept == [] and pool.in_use == 0


def test_buffer_lease_dropped_without_exit_returns_its_buffer():
    bufs = BufferPool(64, 1)
    lease = bufs.lease()
    buf = lease.__enter__()
    del buf                      # the lease still holds it
    with pytest.warns(ResourceWarning):
        del lease
        gc.collect()
    assert bufs.in_use == 0


@pytest.mark.parametrize("how", ["acquire", "try_acquire", "lease"])
def test_factory_returning_none_raises_and_loses_no_slot(how):
    pool = ObjectPool(lambda: None, 1)
    with pytest.raises(PoolError, match="factory returned None"):
        if how == "lease":
            with pool.lease():
                pass
        else:
            getattr(pool, how)()
    s = pool.stats()
    assert s["in_use"] == 0 and pool.size == 0 and pool.available == 1


@pytest.mark.parametrize("make", [lambda: ObjectPool(Thing, 1), lambda: BufferPool(64, 1)])
def test_lease_on_a_closed_pool_raises_when_called(make):
    pool = make()
    pool.close()
    with pytest.raises(PoolClosed):
        pool.lease()


def test_numpy_bool_timeout_is_a_type_error(np):
    for pool in (ObjectPool(Thing, 1), BufferPool(64, 1)):
        for t in (np.True_, np.False_):
            with pytest.raises(TypeError):
                pool.acquire(timeout=t)
            with pytest.raises(TypeError):
                pool.lease(timeout=t)


def test_private_base_class_cannot_be_made_or_subclassed():
    base = ObjectPool.__mro__[1]
    assert base.__name__ == "_PoolBase"
    with pytest.raises(TypeError):
        base()
    with pytest.raises(TypeError):
        base.__new__(base)
    with pytest.raises(TypeError):
        type("Sub", (base,), {})


def test_second_release_after_validate_discarded_says_not_in_use():
    pool = ObjectPool(Thing, 2, validate=lambda o: False)
    obj = pool.acquire()
    pool.release(obj)            # validate -> discarded
    with pytest.raises(PoolError, match="not in use"):
        pool.release(obj)
    stranger = Thing()
    with pytest.raises(PoolError, match="was not handed out by this pool"):
        pool.release(stranger)
    assert pool.in_use == 0


# Every private class of pool_ext._pool: what the pools make for themselves
# (records, stores, array bases, leases).  Python code must not make one: a
# half-built one (no pool, no memory) would read through its NULL fields.
_PRIVATE_TYPES = {"_PoolBase", "_Hold", "_Holders", "_Lease", "_ArrayLease", "_AsyncLease",
                  "_Store", "_BufferStore", "_ArrayCache", "_Block", "_BufferArrayBase",
                  "_SlotAfterDestroy", "_Round", "_Segment", "_SharedLease",
                  "_SharedArrayBase"}
# ...but for _AsyncWaiter, whose __cinit__ builds it whole (a loop is all it
# needs) and which has no method Python can call, and _Deadline, an
# exception class (the async hooks' internal signal).
_PRIVATE_BUILT_WHOLE = {"_AsyncWaiter", "_Deadline", "_NotASegment"}   # (exceptions, a Python class)


def test_private_types_refuse_creation(tmp_path):
    import pool_ext._pool as m
    private = {name for name, v in vars(m).items()
               if isinstance(v, type) and name.startswith("_")}
    assert private == _PRIVATE_TYPES | _PRIVATE_BUILT_WHOLE   # a new one: sort it here
    # In a child: a type that lets itself be made may crash its repr.
    proc = run_script(tmp_path, f"""
        import asyncio, pool_ext._pool as m
        pool = m.ObjectPool(object, 1)
        for name in sorted({sorted(_PRIVATE_TYPES)!r}):
            T = getattr(m, name)
            for args in ((), (1, 0), (pool, 0), (None, None)):
                for make in (T, lambda *a: T.__new__(T, *a)):
                    try:
                        x = make(*args)
                    except TypeError as e:
                        continue
                    print("made", name, args, flush=True)
                    repr(x)
                    for f in ("__enter__", "__aenter__"):
                        if hasattr(x, f):
                            try:
                                r = getattr(x, f)()
                                if asyncio.iscoroutine(r):
                                    asyncio.run(r)
                            except Exception:
                                pass
            try:
                type("Sub", (T,), {{}})
                print("subclassed", name, flush=True)
            except TypeError:
                pass
        print("done")
        """)
    assert proc.returncode == 0 and proc.stdout == "done\n"


def test_private_types_refuse_creation_with_a_clear_message():
    import pool_ext._pool as m
    for name in _PRIVATE_TYPES - {"_PoolBase"}:    # (which says what to use instead)
        T = getattr(m, name)
        with pytest.raises(TypeError, match=f"cannot create 'pool_ext._pool.{name}' instances"):
            T.__new__(T)


@pytest.mark.parametrize("cls", ["ObjectPool", "BufferPool", "ArrayPool", "PooledBuffer"])
def test_half_built_public_objects_never_crash(tmp_path, cls):
    # Made with __new__ and never __init__ed: repr() and every method and
    # property either work or raise an Exception.  (In a child: a crash
    # fails this test only.)
    proc = run_script(tmp_path, f"""
        import asyncio, pool_ext
        T = getattr(pool_ext, {cls!r})
        x = T.__new__(T)
        repr(x), str(x)
        for name in sorted(dir(x)):
            if name.startswith("__") and name not in (
                    "__len__", "__enter__", "__exit__", "__aenter__", "__aexit__"):
                continue
            try:
                attr = getattr(x, name)
            except Exception:
                continue
            if not callable(attr):
                continue
            for args in ((), (None,), (1,), (None, None, None), ((4,),)):
                try:
                    r = attr(*args)
                    if asyncio.iscoroutine(r):
                        asyncio.run(asyncio.wait_for(r, 5))
                except Exception:
                    pass
        repr(x)
        print("done")
        """)
    assert proc.returncode == 0 and proc.stdout.endswith("done\n")

def test_wrong_pool_release_has_one_wording_in_both_pools():
    objects, other_objects = ObjectPool(Thing, 1, name="db"), ObjectPool(Thing, 1)
    bufs, other_bufs = BufferPool(8, 1, name="io"), BufferPool(8, 1)
    obj, buf = other_objects.acquire(), other_bufs.acquire()
    with pytest.raises(PoolError, match=r"^release of an object that was not handed out "
                                        r"by this pool 'db': Thing at 0x"):
        objects.release(obj)
    with pytest.raises(PoolError, match=r"^release of a PooledBuffer that was not handed "
                                        r"out by this pool 'io': another pool's$"):
        bufs.release(buf)
    with pytest.raises(PoolError, match=r"^release of an object that was not handed out "
                                        r"by this pool 'io': Thing is not a PooledBuffer$"):
        bufs.release(Thing())
    other_objects.release(obj)
    buf.release()


def test_double_release_names_the_pool():
    pool = ObjectPool(Thing, 1, name="db")
    obj = pool.acquire()
    pool.release(obj)
    with pytest.raises(PoolError, match=r"^release of an object that is not in use in "
                                        r"this pool 'db' \(already released\?\)"):
        pool.release(obj)


@pytest.mark.parametrize("make", [lambda: ObjectPool(Thing, 1, name="db"),
                                  lambda: BufferPool(8, 1, name="db")],
                         ids=["ObjectPool", "BufferPool"])
def test_try_acquire_on_a_closed_pool_says_try_acquire(make):
    pool = make()
    pool.close()
    with pytest.raises(PoolClosed, match=r"^try_acquire\(\) on a closed pool 'db'$"):
        pool.try_acquire()


@pytest.mark.parametrize("make", [lambda: ObjectPool(Thing, 1), lambda: BufferPool(16, 1)])
def test_plain_number_timeouts_take_the_fast_path_and_odd_ones_still_work(make):
    """The timeout fast path accepts exact floats and small exact ints; every
    other number (a subclass, numpy's, a big int) is parsed in full and
    behaves as before: accepted when valid, never lost."""
    np = pytest.importorskip("numpy")

    class F(float):
        pass

    class Int(int):
        pass

    pool = make()
    for t in (0, 5, 5.0, 2**59, 2**61, 10**300, math.inf, F(1.5), Int(2), np.float64(1.0),
              np.int64(3)):
        for call in (lambda: pool.acquire(t), lambda: pool.acquire(timeout=t)):
            item = call()
            _release(pool, item)
    held = pool.acquire()
    for t in (0, 0.0, Int(0), np.float64(0.0)):
        with pytest.raises(PoolExhausted):
            pool.acquire(t)
    _release(pool, held)
