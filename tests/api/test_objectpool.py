"""ObjectPool: the API contract, hooks, misuse, waiting, closing."""
import gc
import os
import threading
import time

import pytest

from helpers import Thing, run_script, wait_for_waiters
from pool_ext import ObjectPool, PoolClosed, PoolError, PoolExhausted


def test_acquire_creates_lazily_then_reuses():
    made = []
    pool = ObjectPool(lambda: made.append(1) or Thing(), 2)
    assert (pool.capacity, pool.size, pool.in_use, pool.available) == (2, 0, 0, 2)
    a = pool.acquire()
    assert (pool.size, pool.in_use, pool.available) == (1, 1, 1)
    pool.release(a)
    assert pool.acquire() is a          # idle object preferred over a new one
    assert len(made) == 1
    b = pool.acquire()
    assert b is not a and len(made) == 2
    assert pool.try_acquire() is None   # full: never waits
    pool.release(a)
    pool.release(b)
    s = pool.stats()
    assert s["acquires"] == 3 and s["releases"] == 3 and s["creations"] == 2
    assert s["in_use"] == 0 and s["size"] == 2 and s["destructions"] == 0


def test_prefill():
    pool = ObjectPool(Thing, 4, prefill=3)
    assert pool.size == 3 and pool.in_use == 0 and pool.idle == 3
    assert pool.stats()["creations"] == 3 and pool.stats()["acquires"] == 0


def test_lease_releases_on_exit_and_on_exception():
    pool = ObjectPool(Thing, 1)
    with pool.lease() as t:
        assert pool.in_use == 1
    assert pool.in_use == 0
    with pytest.raises(KeyError):
        with pool.lease(timeout=0) as t2:
            assert t2 is t
            raise KeyError
    assert pool.in_use == 0
    assert pool.acquire(timeout=0) is t


def test_lease_reuse_and_nesting():
    pool = ObjectPool(Thing, 2)
    lease = pool.lease()
    with lease:
        with pytest.raises(RuntimeError):
            with lease:
                pass
        assert pool.in_use == 1
    with lease:   # a finished lease may be entered again
        pass
    assert pool.in_use == 0


def test_double_release_and_foreign_release_leave_pool_unchanged():
    pool = ObjectPool(Thing, 2)
    other = ObjectPool(Thing, 2)
    a = pool.acquire()
    pool.release(a)
    before = pool.stats()
    with pytest.raises(PoolError, match="not in use"):
        pool.release(a)
    with pytest.raises(PoolError, match="did not hand out"):
        pool.release(Thing())
    b = other.acquire()
    with pytest.raises(PoolError, match="did not hand out"):
        pool.release(b)
    assert pool.stats() == before
    assert isinstance(PoolError("x"), ValueError)
    # the pool still works and hands out each object once
    x, y = pool.acquire(), pool.acquire()
    assert x is not y


def test_bad_construction():
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


def test_uninitialised_pool_refuses_without_crashing():
    pool = ObjectPool.__new__(ObjectPool)
    with pytest.raises(PoolClosed):
        pool.acquire()
    with pytest.raises(PoolError):
        pool.release(object())
    pool.close()


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1", True, [1]])
def test_bad_timeouts(timeout):
    pool = ObjectPool(Thing, 1)
    pool.acquire()
    with pytest.raises((TypeError, ValueError)):
        pool.acquire(timeout=timeout)
    assert pool.in_use == 1


def test_timeout_raises_pool_exhausted():
    pool = ObjectPool(Thing, 1)
    pool.acquire()
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted) as info:
        pool.acquire(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0)
    assert pool.stats()["timeouts"] == 2


def test_waiter_is_woken_by_release():
    pool = ObjectPool(Thing, 1)
    held = pool.acquire()
    got = []

    def waiter():
        got.append(pool.acquire(timeout=10))

    t = threading.Thread(target=waiter)
    t.start()
    wait_for_waiters(pool, 1, timeout=5)
    assert pool.stats()["waiting"] == 1
    pool.release(held)
    t.join(5)
    assert got == [held]
    assert pool.stats()["waits"] == 1


def test_one_release_wakes_one_waiter_each():
    pool = ObjectPool(Thing, 2)
    a, b = pool.acquire(), pool.acquire()
    results = []
    threads = [threading.Thread(target=lambda: results.append(pool.acquire(timeout=10)))
               for _ in range(2)]
    for t in threads:
        t.start()
    assert wait_for_waiters(pool, 2)
    pool.release(a)
    pool.release(b)
    for t in threads:
        t.join(5)
    assert sorted(map(id, results)) == sorted([id(a), id(b)])


def test_reset_validate_destroy():
    destroyed = []
    pool = ObjectPool(Thing, 2, reset=lambda t: setattr(t, "dirty", False),
                      validate=lambda t: not getattr(t, "broken", False),
                      destroy=destroyed.append)
    a = pool.acquire()
    a.dirty = True
    pool.release(a)
    assert a.dirty is False and pool.acquire() is a
    a.broken = True
    pool.release(a)                      # validate False: destroyed, slot refilled lazily
    assert destroyed == [a] and pool.size == 0 and pool.in_use == 0
    b = pool.acquire()
    assert b is not a and pool.size == 1


def test_hook_exceptions_reach_the_caller_and_lose_no_slot():
    def bad_factory():
        raise OSError("cannot connect")

    pool = ObjectPool(bad_factory, 1)
    for _ in range(3):
        with pytest.raises(OSError):
            pool.acquire()
    assert pool.in_use == 0 and pool.available == 1

    def bad_reset(t):
        raise RuntimeError("reset failed")

    destroyed = []
    pool = ObjectPool(Thing, 1, reset=bad_reset, destroy=destroyed.append)
    a = pool.acquire()
    with pytest.raises(RuntimeError):
        pool.release(a)
    assert destroyed == [a] and pool.in_use == 0 and pool.size == 0
    assert pool.acquire(timeout=0) is not a   # the slot came back

    pool = ObjectPool(Thing, 1, validate=lambda t: 1 / 0)
    a = pool.acquire()
    with pytest.raises(ZeroDivisionError):
        pool.release(a)
    assert pool.in_use == 0
    pool.acquire(timeout=0)


def test_factory_returning_the_same_object_twice():
    singleton = Thing()
    pool = ObjectPool(lambda: singleton, 2)
    assert pool.acquire() is singleton
    with pytest.raises(PoolError, match="already in this pool"):
        pool.acquire()
    assert pool.in_use == 1
    pool.release(singleton)
    assert pool.acquire() is singleton


def test_close():
    destroyed = []
    pool = ObjectPool(Thing, 3, destroy=destroyed.append)
    a, b = pool.acquire(), pool.acquire()
    pool.release(b)
    pool.close()
    assert destroyed == [b] and pool.closed
    with pytest.raises(PoolClosed):
        pool.acquire()
    with pytest.raises(PoolClosed):
        pool.try_acquire()
    pool.release(a)                       # later release destroys
    assert destroyed == [b, a] and pool.size == 0
    pool.close()                          # idempotent
    assert isinstance(PoolClosed("x"), PoolError)


def test_close_wakes_waiters_with_pool_closed():
    pool = ObjectPool(Thing, 1)
    pool.acquire()
    errors = []

    def waiter():
        try:
            pool.acquire()
        except PoolClosed as e:
            errors.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    assert wait_for_waiters(pool)
    pool.close()
    t.join(5)
    assert len(errors) == 1


def test_context_manager_closes():
    with ObjectPool(Thing, 1) as pool:
        pool.release(pool.acquire())
    assert pool.closed


def test_any_object_even_none_and_unhashables():
    pool = ObjectPool(lambda: None, 1)
    assert pool.acquire() is None
    pool.release(None)
    pool = ObjectPool(dict, 2)
    d = pool.acquire()
    pool.release(d)


def test_pool_dropped_while_objects_out():
    pool = ObjectPool(Thing, 2)
    a = pool.acquire()
    lease = pool.lease()
    with lease as b:
        del pool
        gc.collect()
    assert isinstance(a, Thing) and isinstance(b, Thing)


def test_reference_cycle_through_factory_is_collected():
    class Holder:
        pass

    h = Holder()
    h.pool = ObjectPool(lambda: h, 1)
    h.pool.acquire()
    del h
    gc.collect()


def test_repr():
    assert "ObjectPool open capacity=1" in repr(ObjectPool(Thing, 1))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_is_not_stuck_behind_the_parents_waiters(tmp_path):
    # A parent thread sleeps in acquire() when the process forks.  In the
    # child that thread does not exist; a release there must still wake the
    # child's own waiter, not the dead one.
    proc = run_script(tmp_path, """
        import os, sys, threading, time, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1)
        held = pool.acquire()
        threading.Thread(target=lambda: pool.acquire(timeout=30), daemon=True).start()
        while pool.stats()["waiting"] == 0:
            time.sleep(0.001)
        pid = os.fork()
        if pid == 0:
            got = []
            started = threading.Event()
            def child_waiter():
                started.set()
                got.append(pool.acquire(timeout=20))
            t = threading.Thread(target=child_waiter)
            t.start()
            started.wait()
            time.sleep(0.3)                  # let it fall asleep
            if pool.stats()["waiting"] != 1:  # the parent's waiter was dropped
                os._exit(2)
            t0 = time.monotonic()
            pool.release(held)
            t.join(30)
            woke_promptly = time.monotonic() - t0 < 5
            os._exit(0 if got == [held] and woke_promptly else 1)
        _, status = os.waitpid(pid, 0)
        pool.release(held)
        sys.exit(os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
