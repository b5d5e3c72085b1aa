"""asyncio: acquire_async() and lease_async() on both pools, under asyncio's
loop and uvloop (the loop_kind fixture)."""
import asyncio
import gc
import threading
import time
import warnings
import weakref

import pytest

from helpers import Thing, loop_factories, run_async
from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolExhausted

POOLS = {"objects": lambda n: ObjectPool(Thing, n), "buffers": lambda n: BufferPool(64, n)}


def _release(pool, item):
    pool.release(item)


@pytest.fixture(params=sorted(POOLS))
def make_pool(request):
    return POOLS[request.param]


def test_free_slot_is_taken_without_suspending(make_pool, loop_kind):
    pool = make_pool(2)

    async def main():
        loop = asyncio.get_running_loop()
        before = len(getattr(loop, "_ready", ()))
        coro = pool.acquire_async()
        # driven by hand: the first step finishes, nothing was scheduled
        with pytest.raises(StopIteration) as done:
            coro.send(None)
        assert len(getattr(loop, "_ready", ())) == before
        item = done.value.value
        assert pool.in_use == 1
        _release(pool, item)
        item = await pool.acquire_async(timeout=0)
        _release(pool, item)

    run_async(main(), loop_kind)
    assert pool.in_use == 0


def test_a_waiting_task_is_woken_by_a_release_and_the_loop_keeps_running(make_pool, loop_kind):
    pool = make_pool(1)

    async def main():
        held = await pool.acquire_async()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        waiter = asyncio.create_task(pool.acquire_async())
        await asyncio.sleep(0.02)
        assert not waiter.done() and ticks > 10 and pool.stats()["waiting"] == 1
        _release(pool, held)
        got = await asyncio.wait_for(waiter, 5)
        _release(pool, got)
        t.cancel()

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def test_a_sync_acquire_that_waits_on_the_loop_warns(make_pool, loop_kind):
    """acquire() that must wait, called on a running loop's thread, stops the
    loop for the whole wait: RuntimeWarning naming acquire_async, once per
    call.  A sync acquire that needs no wait (or timeout=0) says nothing."""
    pool = make_pool(1)

    async def main():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            held = pool.acquire()                 # free: no wait, no warning
            with pytest.raises(PoolExhausted):
                pool.acquire(timeout=0)           # never waits: no warning
            assert caught == []
            with pytest.raises(PoolExhausted):
                pool.acquire(timeout=0.01)
        assert [w.category for w in caught] == [RuntimeWarning]
        message = str(caught[0].message)
        assert "running event loop" in message and "acquire_async()" in message
        assert caught[0].filename == __file__
        _release(pool, held)

    run_async(main(), loop_kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        held = pool.acquire()
        with pytest.raises(PoolExhausted):   # no loop in this thread: no warning
            pool.acquire(timeout=0.01)
        _release(pool, held)


def test_release_from_another_thread_wakes_the_task(make_pool, loop_kind):
    pool = make_pool(1)
    held = pool.acquire()

    async def main():
        threading.Timer(0.05, lambda: _release(pool, held)).start()
        item = await asyncio.wait_for(pool.acquire_async(), 5)
        # and released from another thread
        t = threading.Thread(target=_release, args=(pool, item))
        t.start()
        t.join()

    run_async(main(), loop_kind)
    assert pool.in_use == 0


def test_tasks_on_two_loops_in_two_threads_share_one_pool(make_pool, loop_kind):
    pool = make_pool(1)
    errors = []

    async def cycle(n):
        for _ in range(n):
            item = await pool.acquire_async(timeout=10)
            await asyncio.sleep(0)
            _release(pool, item)

    async def four():
        await asyncio.gather(*(cycle(200) for _ in range(4)))

    def thread_main():
        try:
            run_async(four(), loop_kind)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=thread_main) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in ts)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def test_timeouts_and_closed(make_pool, loop_kind):
    pool = make_pool(1)

    async def main():
        held = await pool.acquire_async()
        with pytest.raises(PoolExhausted):
            await pool.acquire_async(timeout=0)
        with pytest.raises(PoolExhausted):
            await pool.acquire_async(timeout=0.02)
        waiter = asyncio.create_task(pool.acquire_async())
        await asyncio.sleep(0.01)
        pool.close()
        with pytest.raises(PoolClosed):
            await waiter
        with pytest.raises(PoolClosed):
            await pool.acquire_async()
        with pytest.raises(PoolClosed):
            pool.lease_async()
        _release(pool, held)

    run_async(main(), loop_kind)
    assert pool.stats()["waiting"] == 0


@pytest.mark.parametrize("how", ["cancel", "asyncio.timeout", "wait_for"])
def test_cancelled_waits_lose_no_slot(make_pool, loop_kind, how):
    if how == "asyncio.timeout" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout is 3.11+")   # (before anything is held)
    pool = make_pool(1)

    async def main():
        held = await pool.acquire_async()
        for _ in range(20):
            if how == "cancel":
                t = asyncio.create_task(pool.acquire_async())
                await asyncio.sleep(0.001)
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
            elif how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(pool.acquire_async(), 0.001)
            else:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.001):
                        await pool.acquire_async()
        assert pool.stats()["waiting"] == 0
        _release(pool, held)
        _release(pool, await pool.acquire_async(timeout=0))

    run_async(main(), loop_kind)
    assert pool.in_use == 0


def test_cancel_after_the_wake_passes_the_slot_to_the_next_waiter(make_pool, loop_kind):
    """The window the issue names: a release has woken the first waiter,
    which is cancelled before it runs; the second waiter must get the slot."""
    pool = make_pool(1)

    async def main():
        held = await pool.acquire_async()
        first = asyncio.create_task(pool.acquire_async())
        second = asyncio.create_task(pool.acquire_async())
        await asyncio.sleep(0.01)
        assert pool.stats()["waiting"] == 2
        _release(pool, held)        # wakes `first` (it has not run yet)...
        first.cancel()              # ...which is cancelled before it runs
        got = await asyncio.wait_for(second, 5)
        assert first.cancelled()
        _release(pool, got)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def test_a_task_left_waiting_on_a_closed_loop_passes_its_wake_up_on(make_pool, loop_kind):
    """A task still waiting when its loop is closed cannot be woken: the
    wake-up goes on to the thread queued behind it (which waits with no
    timeout), and the queue lets go of the dead task."""
    pool = make_pool(1)
    held = pool.acquire()
    loop = loop_factories()[loop_kind]()
    # ("Task was destroyed but it is pending!" is expected; asyncio's report
    # of it would keep the task alive for a while on older Pythons)
    loop.set_exception_handler(lambda loop, context: None)
    task = loop.create_task(pool.acquire_async())
    loop.run_until_complete(asyncio.sleep(0.02))    # the task waits, queued
    assert not task.done() and pool.stats()["waiting"] == 1
    loop.close()                                    # ...and stays pending for ever
    got = []
    thread = threading.Thread(target=lambda: got.append(pool.acquire(timeout=None)),
                              daemon=True)          # (a daemon: never blocks the exit)
    thread.start()
    deadline = time.monotonic() + 2
    while pool.stats()["waiting"] < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool.stats()["waiting"] == 2
    _release(pool, held)                            # wakes the dead task first
    thread.join(2)
    assert got, "the thread behind the dead task never got the free slot"
    assert pool.stats()["waiting"] == 0
    _release(pool, got[0])
    dead = weakref.ref(task)
    del task
    gc.collect()
    assert dead() is None, gc.get_referrers(dead())
    assert pool.in_use == 0


def test_lease_async(make_pool, loop_kind):
    pool = make_pool(1)

    async def main():
        async with pool.lease_async() as item:
            assert pool.in_use == 1
        assert pool.in_use == 0
        with pytest.raises(ZeroDivisionError):
            async with pool.lease_async(timeout=1) as item:
                1 / 0
        assert pool.in_use == 0
        lease = pool.lease_async()
        await lease.__aenter__()
        with pytest.raises(RuntimeError):
            await lease.__aenter__()
        await lease.__aexit__(None, None, None)
        # cancelled inside the body: the item still goes back
        async def body():
            async with pool.lease_async():
                await asyncio.sleep(10)
        t = asyncio.create_task(body())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert pool.in_use == 0
        del item

    run_async(main(), loop_kind)


def test_no_running_loop_is_a_runtime_error(make_pool):
    pool = make_pool(1)
    coro = pool.acquire_async()
    with pytest.raises(RuntimeError, match="running event loop"):
        coro.send(None)
    assert pool.in_use == 0


@pytest.mark.parametrize("timeout,exc", [(-1, ValueError), (float("nan"), ValueError),
                                         (True, TypeError), ("1", TypeError)])
def test_bad_timeouts(make_pool, loop_kind, timeout, exc):
    pool = make_pool(1)

    async def main():
        with pytest.raises(exc):
            await pool.acquire_async(timeout=timeout)
        with pytest.raises(exc):
            pool.lease_async(timeout=timeout)

    run_async(main(), loop_kind)
    assert pool.in_use == 0


@pytest.mark.parametrize("kind", ["ObjectPool", "BufferPool"])
def test_a_grant_to_a_task_whose_loop_closes_before_it_runs_goes_on(kind):
    """A release grants the waiting task its slot (the wake-up queued on its
    loop), then the loop stops and is closed without running it, the task
    still referenced: the next wait takes the grant back out (it stayed
    with the dead task, found by the break-it review)."""
    pool = ObjectPool(object, 1) if kind == "ObjectPool" else BufferPool(64, 1)
    held = pool.acquire()
    loop = asyncio.new_event_loop()

    async def waiter():
        await pool.acquire_async()

    task = loop.create_task(waiter())
    loop.call_later(0.01, loop.stop)
    loop.run_forever()                                # the task waits on the pool

    def grant_and_stop():
        if kind == "ObjectPool":
            pool.release(held)
        else:
            held.release()
        loop.stop()                                   # before the task runs

    loop.call_soon(grant_and_stop)
    loop.run_forever()
    loop.close()
    got = pool.acquire(timeout=5)                     # not PoolExhausted
    assert not task.done()
    if kind == "ObjectPool":
        pool.release(got)
    else:
        got.release()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        del task
        gc.collect()
    assert pool.in_use == 0
