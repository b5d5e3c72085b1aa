"""ObjectPool and its leases: acquiring, hooks, waiting, closing.

Bad arguments and misuse (double or foreign release, ...) are in
test_bad_input.py; fork() in ../concurrency/test_fork.py.
"""
import gc
import threading
import time

import pytest

from helpers import Thing, wait_for_waiters
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


def test_factory_is_called_with_no_argument_unless_pass_slot():
    calls = []
    ObjectPool(lambda: calls.append("none") or object(), 1).acquire()
    # A parameter with a default is not filled in: no signature guessing.
    ObjectPool(lambda config="default": calls.append(config) or object(), 1).acquire()
    ObjectPool(list, 1).acquire()
    pool = ObjectPool(lambda slot: calls.append(slot) or object(), 3, pass_slot=True)
    held = [pool.acquire() for _ in range(3)]
    assert calls == ["none", "default", 0, 1, 2]
    for obj in held:
        pool.release(obj)


def test_a_factory_that_needs_an_argument_fails_without_pass_slot():
    def parser(config):
        return object()

    pool = ObjectPool(parser, 1)
    with pytest.raises(TypeError):
        pool.acquire()
    assert pool.in_use == 0 and pool.size == 0     # no slot lost
    assert pool.available == 1


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


def test_any_object_even_unhashables():
    # (but not None: see test_factory_returning_none_raises_and_loses_no_slot)
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
    h.pool = ObjectPool(lambda: h, 1)  # noqa: F821 (bound when the factory runs)
    h.pool.acquire()
    del h
    gc.collect()


def test_repr():
    assert "ObjectPool open capacity=1" in repr(ObjectPool(Thing, 1))


def test_lease_exit_after_the_object_went_to_someone_else_leaves_them_alone():
    # A lease ends its own hand-out (by slot and generation): if its object
    # was released inside the block and handed out again, the exit must not
    # take it from the new holder.
    pool = ObjectPool(Thing, 1)
    lease = pool.lease()
    obj = lease.__enter__()
    pool.release(obj)
    again = pool.acquire(timeout=0)
    assert again is obj
    with pytest.raises(PoolError, match="not in use"):
        lease.__exit__(None, None, None)
    assert pool.in_use == 1                 # still the new holder's
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0)
    pool.release(again)
    assert pool.in_use == 0


@pytest.mark.parametrize("keep", [True, False])
def test_lease_exit_runs_the_hooks(keep):
    calls = []
    pool = ObjectPool(Thing, 1, reset=lambda o: calls.append(("reset", o)),
                      validate=lambda o: calls.append(("validate", o)) or keep,
                      destroy=lambda o: calls.append(("destroy", o)))
    with pool.lease() as obj:
        pass
    assert calls[:2] == [("reset", obj), ("validate", obj)]
    assert (("destroy", obj) in calls) is (not keep)
    assert pool.in_use == 0 and pool.size == (1 if keep else 0)
