"""ObjectPool health: check on acquire, max_lifetime, max_idle, evict(), the
evictor and min_idle, discard(), drain().

Bad arguments are in test_bad_input.py; races (drain against releasing
threads, fork while the evictor runs, Ctrl-C in drain) in
../concurrency/test_health_races.py.
"""
import asyncio
import gc
import logging
import threading
import time
import weakref

import pytest

from helpers import Boom, Thing, wait_for_waiters
from pool_ext import ObjectPool, PoolClosed, PoolError, PoolExhausted


class Conn(Thing):
    """A connection stand-in: `alive` goes false when the 'server' drops it."""

    made = 0

    def __init__(self):
        super().__init__()
        Conn.made += 1
        self.alive = True
        self.closed = False
        self.resets = 0


def close(conn):
    conn.closed = True


# ---- check ------------------------------------------------------------------


def test_check_runs_on_idle_objects_before_hand_out_not_on_new_ones():
    checked = []
    pool = ObjectPool(Conn, 2, check=lambda c: checked.append(c) or True)
    a = pool.acquire()
    assert checked == []                  # fresh from the factory: not checked
    pool.release(a)
    assert pool.acquire() is a
    assert checked == [a]


def test_a_failed_check_destroys_and_tries_the_next_idle_object_then_the_factory():
    pool = ObjectPool(Conn, 3, check=lambda c: c.alive, destroy=close)
    a, b = pool.acquire(), pool.acquire()
    pool.release(b)
    pool.release(a)                        # idle: a on top, then b
    a.alive = False
    assert pool.acquire() is b             # a failed, b passed
    assert a.closed and pool.size == 1
    b.alive = False
    pool.release(b)
    c = pool.acquire()                     # b failed; none idle: the factory
    assert b.closed and c not in (a, b)
    s = pool.stats()
    assert s["checks_failed"] == 2 and s["destructions"] == 2
    assert s["in_use"] == 1 and s["acquires"] == 4   # rejected objects are no hand-out
    pool.release(c)


@pytest.mark.parametrize("how", ["acquire", "acquire_timeout", "try_acquire", "lease"])
def test_every_way_to_acquire_applies_the_check(how):
    pool = ObjectPool(Conn, 2, check=lambda c: c.alive)
    a = pool.acquire()
    a.alive = False
    pool.release(a)
    if how == "acquire":
        got = pool.acquire()
    elif how == "acquire_timeout":
        got = pool.acquire(timeout=1)
    elif how == "try_acquire":
        got = pool.try_acquire()
    else:
        with pool.lease() as got:
            pass
    assert got is not a and pool.stats()["checks_failed"] == 1


def test_a_check_that_raises_counts_as_failed_and_loses_no_slot(caplog):
    def check(conn):
        raise Boom("server gone")

    pool = ObjectPool(Conn, 1, check=check, destroy=close)
    a = pool.acquire()
    pool.release(a)
    with caplog.at_level(logging.INFO, logger="pool_ext"):
        b = pool.acquire()                 # the exception is not the caller's
    assert b is not a and a.closed
    assert "server gone" in caplog.text
    assert pool.stats()["checks_failed"] == 1 and pool.in_use == 1
    pool.release(b)
    assert pool.size == 1 and pool.available == 1


def test_a_check_interrupted_by_ctrl_c_destroys_the_object_and_propagates():
    calls = []

    def check(conn):
        calls.append(conn)
        if len(calls) == 1:
            raise KeyboardInterrupt

    pool = ObjectPool(Conn, 1, check=check, destroy=close)
    a = pool.acquire()
    pool.release(a)
    with pytest.raises(KeyboardInterrupt):
        pool.acquire()
    assert a.closed                      # its state is unknown: not reused
    assert pool.in_use == 0 and pool.size == 0 and pool.available == 1
    b = pool.acquire(timeout=0)          # the slot is there
    pool.release(b)


def test_a_falsy_result_that_cannot_be_tested_counts_as_failed():
    class NoBool:
        def __bool__(self):
            raise Boom

    pool = ObjectPool(Conn, 1, check=lambda c: NoBool())
    pool.release(pool.acquire())
    pool.release(pool.acquire())
    assert pool.stats()["checks_failed"] == 1


def test_a_check_cannot_release_or_discard_the_object_it_checks():
    errors = []

    def check(conn):
        for act in (pool.release, pool.discard):
            try:
                act(conn)
            except PoolError as e:
                errors.append(e)
        return True

    pool = ObjectPool(Conn, 2, check=check)
    a = pool.acquire()
    pool.release(a)
    assert pool.acquire() is a           # handed out once, to us
    assert len(errors) == 2 and all("not in use" in str(e) for e in errors)
    assert pool.in_use == 1 and pool.idle == 0
    pool.release(a)


def test_a_check_that_acquires_from_its_own_pool():
    holder = {}

    def check(conn):
        holder["inner"] = pool.acquire(timeout=0)   # another object, or PoolExhausted
        return True

    pool = ObjectPool(Conn, 2, check=check)
    a = pool.acquire()
    pool.release(a)
    assert pool.acquire() is a            # the check made and kept a second one
    assert holder["inner"] is not a and pool.in_use == 2
    pool.release(holder.pop("inner"))
    pool.release(a)

    one = ObjectPool(Conn, 1, check=lambda c: one.acquire(timeout=0))
    a = one.acquire()
    one.release(a)
    b = one.acquire()                     # inner acquire: PoolExhausted -> check failed
    assert b is not a and one.stats()["checks_failed"] == 1 and one.in_use == 1
    one.release(b)


def test_failed_checks_and_the_wait_share_the_callers_one_timeout():
    def slow_failing_check(conn):
        time.sleep(0.3)
        return False

    pool = ObjectPool(Conn, 3, check=slow_failing_check)
    objs = [pool.acquire() for _ in range(3)]
    for o in objs[:2]:
        pool.release(o)                   # two idle, each failing after 0.3 s
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted, match="check"):
        pool.acquire(timeout=0.2)         # over after the first failed check
    assert time.monotonic() - t0 < 0.55
    pool.release(objs[2])
    assert pool.in_use == 0 and pool.stats()["timeouts"] == 1


def test_without_a_timeout_failed_checks_end_in_the_factory():
    pool = ObjectPool(Conn, 2, check=lambda c: False)
    a, b = pool.acquire(), pool.acquire()
    pool.release(a)
    pool.release(b)
    c = pool.acquire(timeout=0)           # never sleeps, still checks and creates
    assert c not in (a, b) and pool.stats()["checks_failed"] == 2
    pool.release(c)


def test_a_check_that_closes_the_pool_hands_nothing_out():
    pool = ObjectPool(Conn, 1, check=lambda c: pool.close() or True, destroy=close)
    a = pool.acquire()
    pool.release(a)
    with pytest.raises(PoolClosed):
        pool.acquire()
    assert a.closed and pool.in_use == 0 and pool.size == 0


# ---- max_lifetime and max_idle --------------------------------------------------


def test_max_lifetime_destroys_old_objects_at_acquire_and_at_release():
    pool = ObjectPool(Conn, 2, max_lifetime=0.3, destroy=close,
                      reset=lambda c: setattr(c, "resets", c.resets + 1))
    a = pool.acquire()
    pool.release(a)
    assert pool.acquire() is a and a.resets == 1     # young: reused
    time.sleep(0.35)
    pool.release(a)                                  # too old: destroyed, no reset
    assert a.closed and a.resets == 1 and pool.size == 0
    b = pool.acquire()
    pool.release(b)
    time.sleep(0.35)
    c = pool.acquire()                               # b expired while idle
    assert c is not b and b.closed
    assert pool.stats()["expired"] == 2
    pool.release(c)


def test_max_idle_destroys_objects_idle_too_long_but_not_busy_ones():
    pool = ObjectPool(Conn, 2, max_idle=0.3, destroy=close)
    a = pool.acquire()
    for _ in range(4):                    # in use more often than every 0.3 s
        pool.release(a)
        time.sleep(0.03)
        assert pool.acquire() is a
    pool.release(a)
    time.sleep(0.35)
    b = pool.acquire()
    assert b is not a and a.closed and pool.stats()["expired"] == 1
    pool.release(b)


def test_max_lifetime_jitter_only_shortens_and_at_most_by_5_percent():
    made = time.monotonic()
    pool = ObjectPool(Conn, 64, max_lifetime=1.0, prefill=64)
    time.sleep(0.6)
    if time.monotonic() - made < 0.95:    # (a machine that slept past 95 % proves nothing)
        assert pool.evict() == 0          # none before 95 % of the lifetime
    time.sleep(max(0.0, made + 1.05 - time.monotonic()))
    assert pool.evict() == 64             # all past 100 %


def test_evict_destroys_what_is_past_the_limits_and_says_how_many():
    pool = ObjectPool(Conn, 4, max_idle=0.1, destroy=close)
    objs = [pool.acquire() for _ in range(4)]
    for o in objs[:3]:
        pool.release(o)
    time.sleep(0.15)
    fresh = objs[3]
    pool.release(fresh)                   # idle only just now
    assert pool.evict() == 3
    assert [o.closed for o in objs] == [True, True, True, False]
    assert pool.size == 1 and pool.idle == 1 and pool.acquire() is fresh
    assert pool.evict() == 0
    pool.release(fresh)


def test_evict_keeps_the_most_recently_used_object_on_top():
    pool = ObjectPool(Conn, 3, max_idle=10)
    a, b, c = (pool.acquire() for _ in range(3))
    for o in (a, b, c):
        pool.release(o)                   # c most recent
    assert pool.evict() == 0
    assert [pool.acquire() for _ in range(3)] == [c, b, a]


def test_evict_without_limits_destroys_nothing():
    pool = ObjectPool(Conn, 2, prefill=2)
    assert pool.evict() == 0 and pool.size == 2


def test_evict_destroys_all_it_must_even_if_destroy_raises():
    def destroy(conn):
        conn.closed = True
        raise Boom

    pool = ObjectPool(Conn, 3, max_idle=0.01, destroy=destroy, prefill=3)
    time.sleep(0.03)
    with pytest.raises(Boom):
        pool.evict()
    assert pool.size == 0 and pool.available == 3


# ---- the evictor and min_idle ----------------------------------------------------


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.thread_unsafe(reason="asserts that no evictor thread is left, and "
                                  "threading.enumerate() lists the other threads' too")
def test_the_evictor_keeps_min_idle_objects_ready_and_evicts():
    pool = ObjectPool(Conn, 4, min_idle=2, max_idle=0.2, destroy=close)
    assert pool.size == 0
    pool.start_evictor(0.05)
    try:
        assert wait_until(lambda: pool.idle == 2)
        first = [pool.acquire(), pool.acquire()]
        assert wait_until(lambda: pool.idle == 2)        # refilled
        for o in first:
            pool.release(o)                               # 4 idle now
        assert wait_until(lambda: all(o.closed for o in first) and pool.idle == 2)
        assert pool.stats()["expired"] >= 2
    finally:
        pool.stop_evictor()
    assert not [t for t in threading.enumerate() if t.name.startswith("pool_ext evictor")]


def test_start_evictor_twice_and_on_a_closed_pool():
    pool = ObjectPool(Conn, 1, name="p")
    pool.start_evictor(10)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            pool.start_evictor(10)
    finally:
        pool.stop_evictor()
    pool.stop_evictor()                   # stopped already: nothing to do
    pool.start_evictor(10)                # and it can start again
    pool.close()                          # close() stops it
    assert wait_until(lambda: not [t for t in threading.enumerate()
                                   if t.name == "pool_ext evictor of pool 'p'"])
    with pytest.raises(PoolClosed):
        pool.start_evictor(10)


@pytest.mark.parametrize("interval", [1e-9, 0.0005, 0.000999, -1, 0, float("inf"), 1e300],
                         ids=repr)
def test_start_evictor_refuses_intervals_it_cannot_keep_saying_what_it_accepts(interval):
    # Below 1 ms the evictor would be a busy loop; past threading.TIMEOUT_MAX
    # its thread's wait fails.  The message says what is accepted.
    pool = ObjectPool(Conn, 1)
    with pytest.raises(ValueError, match=r"interval must be a finite number of seconds "
                                         r"from 0\.001 \(1 ms\) to ") as info:
        pool.start_evictor(interval)
    assert "None" not in str(info.value)
    with pytest.raises(TypeError, match="interval must be a number of seconds, not NoneType"):
        pool.start_evictor(None)
    pool.start_evictor(0.001)                # the least accepted
    pool.stop_evictor()


def test_the_evictor_survives_a_failing_factory_and_logs_it(caplog):
    fail = [True]

    def factory():
        if fail[0]:
            raise Boom("database down")
        return Conn()

    pool = ObjectPool(factory, 2, min_idle=1)
    with caplog.at_level(logging.WARNING, logger="pool_ext"):
        pool.start_evictor(0.02)
        try:
            assert wait_until(lambda: "database down" in caplog.text)
            fail[0] = False
            assert wait_until(lambda: pool.idle == 1)    # a later round succeeds
        finally:
            pool.stop_evictor()
    assert pool.in_use == 0 and pool.size == 1


def test_the_evictor_does_not_keep_the_pool_alive():
    pool = ObjectPool(Conn, 1)
    pool.start_evictor(0.01)
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    assert wait_until(lambda: not [t for t in threading.enumerate()
                                   if t.name.startswith("pool_ext evictor")])


# ---- discard ----------------------------------------------------------------------


def test_discard_destroys_without_reset_or_validate_and_frees_the_slot():
    seen = []
    pool = ObjectPool(Conn, 1, reset=lambda c: seen.append("reset"),
                      validate=lambda c: seen.append("validate") or True, destroy=close)
    a = pool.acquire()
    pool.discard(a)
    assert a.closed and seen == []
    assert pool.size == 0 and pool.in_use == 0 and pool.available == 1
    b = pool.acquire(timeout=0)
    assert b is not a
    s = pool.stats()
    assert s["discarded"] == 1 and s["destructions"] == 1 and s["releases"] == 1
    pool.release(b)


def test_discard_of_an_object_not_held_raises_pool_error():
    pool = ObjectPool(Conn, 2)
    a = pool.acquire()
    with pytest.raises(PoolError, match="discard of an object that was not handed out by this pool"):
        pool.discard(Conn())
    pool.release(a)
    with pytest.raises(PoolError, match="not in use"):
        pool.discard(a)                   # idle: not held
    b = pool.acquire()
    pool.discard(b)
    with pytest.raises(PoolError, match="not in use"):
        pool.discard(b)                   # discarded already
    with pytest.raises(PoolError, match="not in use"):
        pool.release(b)
    assert pool.in_use == 0 and pool.size == 0


def test_discard_inside_a_lease_leaves_the_lease_nothing_to_give_back():
    pool = ObjectPool(Conn, 1, destroy=close)
    with pool.lease() as conn:
        pool.discard(conn)                # broken mid-way: out of the pool
    assert conn.closed and pool.in_use == 0 and pool.size == 0
    with pytest.raises(PoolError):        # a release inside a lease still is one too many
        with pool.lease() as other:
            pool.release(other)
    assert pool.in_use == 0


def test_discard_inside_a_lease_then_a_new_object_at_its_address():
    # the exit tells a discard by its hand-out, not by the object's address,
    # which the factory's next object may take at once (CPython reuses it)
    class Slotted:
        __slots__ = tuple(f"s{i}" for i in range(30))   # a size class of its own
    pool = ObjectPool(Slotted, 2)
    with pool.lease() as obj:
        old = id(obj)
        pool.discard(obj)
        del obj
        other = pool.acquire()
        reused = id(other) == old
        pool.release(other)
    assert pool.in_use == 0 and pool.size == 1
    if not reused:
        pytest.skip("the allocator did not reuse the address (the case is not reached)")


def test_discard_inside_a_lease_survives_the_slots_next_hand_outs():
    # the record is per leased hand-out: the slot handed out and discarded
    # again inside the block (capacity 1), or hundreds of other discards
    # meanwhile, do not make the exit raise
    pool = ObjectPool(object, 1)
    with pool.lease() as obj:
        pool.discard(obj)
        again = pool.acquire()
        pool.discard(again)
        with pool.lease() as nested:     # a second lease on the same slot
            pool.discard(nested)
    assert pool.in_use == 0
    with pytest.raises(PoolError):       # a release inside a lease is still one too many
        with pool.lease() as obj:
            pool.release(obj)
            pool.discard(pool.acquire())
    assert pool.in_use == 0


def test_discard_inside_an_async_lease_then_hundreds_of_discards():
    async def main():
        pool = ObjectPool(object, 4)
        async with pool.lease_async() as obj:
            await pool.discard_async(obj)
            for _ in range(300):
                pool.discard(pool.acquire())
        async with pool.lease_async() as obj:
            pool.discard(obj)
        with pytest.raises(PoolError):
            async with pool.lease_async() as obj:
                pool.release(obj)
        return pool.in_use
    assert asyncio.run(main()) == 0


@pytest.mark.parametrize("hooks", ["plain", "reset", "async reset"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_lease_whose_object_was_released_and_handed_out_again_leaves_it_alone(kind, hooks):
    # misuse: the block releases the object and another holder acquires it;
    # the lease's exit must not end that holder's hand-out (the async lease
    # gave back by object, so the next acquire got the same object twice)
    async def areset(o):
        pass

    extra = {"plain": {}, "reset": {"reset": lambda o: None},
             "async reset": {"reset": areset}}[hooks]
    if kind == "sync" and hooks == "async reset":
        pytest.skip("a coroutine reset needs the async methods")
    pool = ObjectPool(object, 1, **extra)

    async def main():
        with pytest.raises(PoolError, match="not in use"):
            if kind == "sync":
                with pool.lease() as o:
                    pool.release(o)
                    other = pool.acquire()
            else:
                async with pool.lease_async() as o:
                    await pool.release_async(o)
                    other = await pool.acquire_async()
        assert other is o and pool.in_use == 1
        with pytest.raises(PoolExhausted):      # still held by `other`
            await pool.acquire_async(timeout=0)
        await pool.release_async(other)
        return pool.in_use

    assert asyncio.run(main()) == 0


def test_discard_when_destroy_raises_still_frees_the_slot():
    def destroy(conn):
        raise Boom

    pool = ObjectPool(Conn, 1, destroy=destroy)
    a = pool.acquire()
    with pytest.raises(Boom):
        pool.discard(a)
    assert pool.in_use == 0 and pool.available == 1 and pool.size == 0


def test_discard_works_on_a_closed_pool():
    pool = ObjectPool(Conn, 1, destroy=close)
    a = pool.acquire()
    pool.close()
    pool.discard(a)
    assert a.closed and pool.in_use == 0


# ---- drain ----------------------------------------------------------------------------


def test_drain_waits_for_every_hand_out_then_destroys_all_and_closes():
    pool = ObjectPool(Conn, 3, destroy=close)
    objs = [pool.acquire() for _ in range(3)]
    pool.release(objs[0])

    def release_later():
        for o in objs[1:]:
            time.sleep(0.05)
            pool.release(o)

    t = threading.Thread(target=release_later)
    t.start()
    pool.drain(timeout=10)
    t.join()
    assert all(o.closed for o in objs)
    assert pool.closed and pool.in_use == 0 and pool.size == 0
    with pytest.raises(PoolClosed):
        pool.acquire()


@pytest.mark.parametrize("hooks", ["plain", "reset"])
def test_drain_returns_only_after_the_last_objects_destroy_has_ended(hooks):
    # A release into the draining pool destroys its object in the releasing
    # thread; drain() used to be woken before that destroy() ran (the plain
    # release path), and returned while a connection was still closing.
    log = []

    def destroy(o):
        log.append("destroy start")
        time.sleep(0.2)
        log.append("destroy end")

    extra = {"reset": lambda o: None} if hooks == "reset" else {}
    pool = ObjectPool(Thing, 1, destroy=destroy, **extra)
    a = pool.acquire()
    t = threading.Thread(target=lambda: (time.sleep(0.05), pool.release(a)))
    t.start()
    pool.drain(timeout=10)
    log.append("drain returned")
    t.join()
    assert log == ["destroy start", "destroy end", "drain returned"]
    assert pool.in_use == 0 and pool.size == 0


def test_drain_times_out_while_a_released_object_is_still_being_destroyed():
    started, finish = threading.Event(), threading.Event()

    def destroy(o):
        started.set()
        finish.wait(10)

    pool = ObjectPool(Thing, 1, destroy=destroy)
    a = pool.acquire()
    t = threading.Thread(target=lambda: (time.sleep(0.05), pool.release(a)))
    t.start()
    try:
        with pytest.raises(PoolExhausted, match="still being destroyed"):
            pool.drain(timeout=0.5)
        assert started.is_set() and pool.closed
    finally:
        finish.set()
        t.join()
    assert pool.size == 0 and pool.in_use == 0


def test_drain_times_out_with_pool_exhausted_and_the_pool_stays_closed():
    pool = ObjectPool(Conn, 2, destroy=close, name="db")
    a = pool.acquire()
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted, match=r"drain\(\): 1 objects still held after 0.1 s.*'db'"):
        pool.drain(timeout=0.1)
    assert 0.09 < time.monotonic() - t0 < 2
    assert pool.closed
    with pytest.raises(PoolClosed):
        pool.acquire()
    pool.release(a)                       # released later: destroyed
    assert a.closed and pool.size == 0


def test_drain_with_timeout_0_does_not_wait():
    pool = ObjectPool(Conn, 1)
    a = pool.acquire()
    with pytest.raises(PoolExhausted, match="1 objects still held"):
        pool.drain(timeout=0)
    pool.release(a)
    assert pool.size == 0


def test_drain_wakes_waiters_with_pool_closed():
    pool = ObjectPool(Conn, 1)
    a = pool.acquire()
    errors = []

    def waiter():
        try:
            pool.acquire(timeout=10)
        except PoolClosed as e:
            errors.append(e)

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_for_waiters(pool, 3)
    releaser = threading.Timer(0.1, pool.release, (a,))
    releaser.start()
    pool.drain(timeout=10)
    for t in threads:
        t.join(10)
    assert len(errors) == 3 and pool.size == 0


@pytest.mark.parametrize("hook", ["reset", "validate", "check"])
def test_drain_from_inside_a_hook_of_the_same_pool_refuses_at_once(hook):
    # It would wait for the very object whose hook is running: PoolExhausted
    # at its timeout, or a hang without one.  It refuses before closing.
    seen = []

    def call_drain(obj):
        t0 = time.monotonic()
        try:
            pool.drain(timeout=1)
        except BaseException as e:
            seen.append((e, time.monotonic() - t0))
        return True

    pool = ObjectPool(Conn, 2, destroy=close, **{hook: call_drain})
    obj = pool.acquire()
    pool.release(obj)
    if hook == "check":
        assert pool.acquire() is obj      # check() runs on the idle object
        pool.release(obj)
    ((e, took),) = seen
    assert isinstance(e, RuntimeError) and took < 0.5
    assert "drain() from inside a hook of the same pool" in str(e) and hook in str(e)
    assert not pool.closed and pool.in_use == 0 and pool.idle == 1   # nothing lost
    assert pool.acquire(timeout=0) is obj
    pool.release(obj)
    pool.drain(timeout=5)                 # from outside any hook: drains
    assert obj.closed and pool.size == 0


@pytest.mark.parametrize("hook", ["reset", "validate", "check"])
def test_drain_from_inside_a_sync_hook_reached_through_the_async_methods(hook):
    # release_async() and acquire_async() call the same sync hooks: drain()
    # from one of them refuses at once too, instead of stopping the loop
    # until its timeout.
    seen = []

    def call_drain(obj):
        t0 = time.monotonic()
        try:
            pool.drain(timeout=1)
        except BaseException as e:
            seen.append((e, time.monotonic() - t0))
        return True

    pool = ObjectPool(Conn, 2, destroy=close, **{hook: call_drain})

    async def main():
        obj = await pool.acquire_async()
        await pool.release_async(obj)
        if hook == "check":
            assert await pool.acquire_async() is obj   # check() runs on the idle object
            await pool.release_async(obj)
        return obj

    obj = asyncio.run(main())
    ((e, took),) = seen
    assert isinstance(e, RuntimeError) and took < 0.5
    assert "drain() from inside a hook of the same pool" in str(e)
    assert not pool.closed and pool.in_use == 0 and pool.idle == 1   # nothing lost
    pool.drain(timeout=5)
    assert obj.closed and pool.size == 0


def test_drain_from_a_hook_of_another_pool_and_while_another_thread_runs_a_hook():
    # The refusal is for the hook's own pool, in the hook's own thread.
    other = ObjectPool(Conn, 1)
    other.release(other.acquire())
    running, go_on = threading.Event(), threading.Event()

    def reset(obj):
        other.drain(timeout=5)            # another pool: drains
        running.set()
        assert go_on.wait(10)

    pool = ObjectPool(Conn, 1, reset=reset)
    obj = pool.acquire()
    t = threading.Thread(target=pool.release, args=(obj,))
    t.start()
    assert running.wait(10) and other.closed and other.size == 0
    threading.Timer(0.1, go_on.set).start()
    pool.drain(timeout=10)                # another thread's hook: waits for it
    t.join(10)
    assert pool.closed and pool.size == 0


def test_drain_on_a_closed_pool_returns_at_once():
    pool = ObjectPool(Conn, 1)
    a = pool.acquire()
    pool.close()
    t0 = time.monotonic()
    pool.drain()                          # no timeout, one still held: at once
    assert time.monotonic() - t0 < 1
    pool.release(a)


def test_drain_with_nothing_out_and_twice():
    pool = ObjectPool(Conn, 2, prefill=2, destroy=close)
    pool.drain(timeout=0)
    assert pool.size == 0 and pool.closed
    pool.drain(timeout=0)


@pytest.mark.thread_unsafe(reason="asserts that no evictor thread is left, and "
                                  "threading.enumerate() lists the other threads' too")
def test_drain_stops_the_evictor():
    pool = ObjectPool(Conn, 2, min_idle=2)
    pool.start_evictor(0.01)
    assert wait_until(lambda: pool.idle == 2)
    pool.drain(timeout=10)
    assert pool.size == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("pool_ext evictor")]


def test_two_drains_at_once_both_return():
    pool = ObjectPool(Conn, 1)
    a = pool.acquire()
    done = []
    t = threading.Thread(target=lambda: done.append(pool.drain(timeout=10)))
    t.start()
    assert wait_until(lambda: pool.closed)
    pool.drain(timeout=10)                # closed already: at once
    pool.release(a)
    t.join(10)
    assert done == [None] and pool.size == 0


# ---- hooks that turn on the pool ------------------------------------------------------


def test_a_destroy_that_raises_after_a_failed_check_is_logged_and_the_acquire_goes_on(caplog):
    # A broken connection's close often fails too: that must not fail the
    # acquire that found it broken (HikariCP and psycopg_pool log it too).
    def destroy(conn):
        raise Boom("close failed")

    pool = ObjectPool(Conn, 1, check=lambda c: False, destroy=destroy)
    first = pool.acquire()
    pool.release(first)
    with caplog.at_level("WARNING", logger="pool_ext"):
        fresh = pool.acquire()                  # checked, rejected, destroy failed: a new one
    assert fresh is not first and pool.in_use == 1 and pool.size == 1
    assert "destroy() failed" in caplog.text and "close failed" in caplog.text
    pool.release(fresh)
    assert pool.stats()["checks_failed"] == 1


@pytest.mark.parametrize("how", ["stop_evictor", "close", "drain"])
def test_a_hook_that_stops_its_own_evictor_from_the_evictor_thread(how):
    calls = []

    def destroy(conn):
        calls.append(threading.current_thread().name)
        getattr(pool, how)()              # from the evictor thread: no self-join

    pool = ObjectPool(Conn, 2, max_idle=0.01, destroy=destroy)
    pool.release(pool.acquire())
    pool.start_evictor(0.005)
    assert wait_until(lambda: calls)
    assert calls[0].startswith("pool_ext evictor")
    assert wait_until(lambda: not [t for t in threading.enumerate()
                                   if t.name.startswith("pool_ext evictor")])
    pool.close()


def test_drain_from_inside_the_factory_is_refused():
    """drain() in the factory would wait for the very slot the factory is
    filling (it hung with no timeout, found by the break-it review)."""
    seen = []
    pool = None

    def factory():
        try:
            pool.drain()
        except RuntimeError as exc:
            seen.append(str(exc))
        return object()

    pool = ObjectPool(factory, 2)
    obj = pool.acquire(timeout=5)
    assert seen and "factory" in seen[0] and not pool.closed
    pool.release(obj)
    pool.drain(timeout=5)                             # from outside: fine
    assert pool.closed


def test_a_factory_that_closes_its_pool_hands_nothing_out():
    destroyed = []
    pool = None

    def factory():
        pool.close()
        return Thing()

    pool = ObjectPool(factory, 1, destroy=destroyed.append)
    with pytest.raises(PoolClosed):
        pool.acquire(timeout=1)
    assert pool.in_use == 0 and len(destroyed) == 1
