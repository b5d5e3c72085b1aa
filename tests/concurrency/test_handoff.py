"""The fair hand-off (src/pool_waitq.h): a release grants its slot to the
oldest waiter, threads and tasks in one FIFO; nobody barges past a queue;
a waiter that leaves with a grant passes it on.  Each test orders its
waiters by waiting until the pool counts them queued (wait_for_waiters),
so the expected order is exact, not statistical."""
import asyncio
import threading
import time

import pytest

from helpers import Thing, run_async, wait_for_waiters
from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolExhausted


def make_pool(kind, capacity):
    return ObjectPool(Thing, capacity) if kind == "objects" else BufferPool(16, capacity)


KINDS = ["objects", "buffers"]


@pytest.mark.parametrize("kind", KINDS)
def test_threads_are_served_in_the_order_they_queued(kind):
    pool = make_pool(kind, 1)
    held = pool.acquire()
    order, done = [], []

    def waiter(k):
        item = pool.acquire(timeout=10)
        order.append(k)
        pool.release(item)
        done.append(k)

    threads = []
    for k in range(6):
        t = threading.Thread(target=waiter, args=(k,))
        t.start()
        threads.append(t)
        wait_for_waiters(pool, k + 1)      # k is queued behind 0 .. k-1
    pool.release(held)
    for t in threads:
        t.join(10)
    assert order == list(range(6))
    assert pool.stats()["waiting"] == 0 and pool.in_use == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_released_slot_is_the_waiters_not_a_newcomers(kind):
    """No barging: right after a release that found a waiter, the slot is
    granted to it; try_acquire() and acquire(timeout=0) in the releasing
    thread see nothing free (the old wake-up hint let them take it)."""
    pool = make_pool(kind, 1)
    held = pool.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=10)))
    t.start()
    wait_for_waiters(pool, 1)
    pool.release(held)
    assert pool.try_acquire() is None
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0)
    t.join(10)
    assert len(got) == 1 and pool.in_use == 1
    pool.release(got[0])


@pytest.mark.parametrize("kind", KINDS)
def test_a_newcomer_queues_behind_waiters(kind):
    """While a thread waits, acquire_async() of a newcomer does not take a
    slot that comes free: it queues, and is served after the thread."""
    pool = make_pool(kind, 1)
    held = pool.acquire()
    order = []

    def thread_waiter():
        item = pool.acquire(timeout=10)
        order.append("thread")
        pool.release(item)

    t = threading.Thread(target=thread_waiter)
    t.start()
    wait_for_waiters(pool, 1)

    async def main():
        task = asyncio.ensure_future(pool.acquire_async(timeout=10))
        await asyncio.sleep(0)
        assert pool.stats()["waiting"] == 2      # the task queued behind the thread
        pool.release(held)
        item = await task
        order.append("task")
        pool.release(item)

    run_async(main())
    t.join(10)
    assert order == ["thread", "task"]


@pytest.mark.parametrize("kind", KINDS)
def test_threads_and_tasks_share_one_fifo(kind, loop_kind):
    """Threads and tasks (on a loop in another thread) queued alternately
    are served in exactly that order."""
    pool = make_pool(kind, 1)
    held = pool.acquire()
    order = []
    lock = threading.Lock()
    loop_ready = threading.Event()
    box = {}

    def run_loop():
        from helpers import loop_factories
        loop = loop_factories()[loop_kind]()
        box["loop"] = loop
        loop_ready.set()
        loop.run_forever()
        loop.close()

    lt = threading.Thread(target=run_loop)
    lt.start()
    loop_ready.wait(10)
    loop = box["loop"]

    async def task_waiter(k):
        item = await pool.acquire_async(timeout=10)
        with lock:
            order.append(k)
        pool.release(item)

    def thread_waiter(k):
        item = pool.acquire(timeout=10)
        with lock:
            order.append(k)
        pool.release(item)

    futures, threads = [], []
    for k in range(8):
        if k % 2:
            futures.append(asyncio.run_coroutine_threadsafe(task_waiter(k), loop))
        else:
            t = threading.Thread(target=thread_waiter, args=(k,))
            t.start()
            threads.append(t)
        wait_for_waiters(pool, k + 1)
    pool.release(held)
    for f in futures:
        f.result(10)
    for t in threads:
        t.join(10)
    loop.call_soon_threadsafe(loop.stop)
    lt.join(10)
    assert order == list(range(8))
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_tasks_are_served_in_order(kind, loop_kind):
    pool = make_pool(kind, 2)

    async def main():
        a, b = pool.acquire(), pool.acquire()
        order = []

        async def waiter(k):
            item = await pool.acquire_async(timeout=10)
            order.append(k)
            await asyncio.sleep(0)
            pool.release(item)

        tasks = []
        for k in range(10):
            tasks.append(asyncio.ensure_future(waiter(k)))
            await asyncio.sleep(0)
        assert pool.stats()["waiting"] == 10
        pool.release(a)
        pool.release(b)
        await asyncio.gather(*tasks)
        return order

    assert run_async(main(), loop_kind) == list(range(10))


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_cancelled_after_its_grant_passes_the_slot_on(kind, loop_kind):
    pool = make_pool(kind, 1)

    async def main():
        held = pool.acquire()
        first = asyncio.ensure_future(pool.acquire_async())
        second = asyncio.ensure_future(pool.acquire_async())
        await asyncio.sleep(0)
        assert pool.stats()["waiting"] == 2
        pool.release(held)          # granted to `first`, which has not run yet
        first.cancel()
        item = await asyncio.wait_for(second, 10)
        assert first.cancelled()
        pool.release(item)
        assert pool.in_use == 0

    run_async(main(), loop_kind)
    item = pool.try_acquire()                 # no slot lost
    assert item is not None
    pool.release(item)


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_timing_out_at_its_grant_keeps_no_slot(kind, loop_kind):
    """A grant that lands as the task's timeout fires: the task either
    returns the slot's item or passes the slot on; never both, never lost."""
    pool = make_pool(kind, 1)

    async def main():
        for _ in range(50):
            held = pool.acquire()
            task = asyncio.ensure_future(pool.acquire_async(timeout=0.001))
            await asyncio.sleep(0)
            loop = asyncio.get_running_loop()
            loop.call_later(0.001, pool.release, held)
            try:
                item = await task
            except PoolExhausted:
                pass
            else:
                pool.release(item)
            await asyncio.sleep(0.002)
            assert pool.in_use == 0, pool.stats()
            assert pool.stats()["waiting"] == 0

    run_async(main(), loop_kind)
    every = [pool.acquire(timeout=0)]
    assert pool.try_acquire() is None
    pool.release(every[0])


def test_threads_timing_out_at_their_grant_lose_no_slot():
    pool = ObjectPool(Thing, 2)
    stop = threading.Event()
    errors = []

    def churn():
        while not stop.is_set():
            try:
                obj = pool.acquire(timeout=0.0005)
            except PoolExhausted:
                continue
            except BaseException as e:   # pragma: no cover - reported below
                errors.append(e)
                return
            pool.release(obj)

    threads = [threading.Thread(target=churn) for _ in range(6)]
    for t in threads:
        t.start()
    threading.Event().wait(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    s = pool.stats()
    assert s["in_use"] == 0 and s["waiting"] == 0 and s["acquires"] == s["releases"], s
    every = [pool.acquire(timeout=0), pool.acquire(timeout=0)]
    assert pool.try_acquire() is None
    for obj in every:
        pool.release(obj)


def test_a_granted_object_that_fails_check_is_replaced():
    """The waiter granted an idle object still runs check() on it; a failure
    destroys it and the waiter gets a new object from the factory."""
    destroyed = []
    pool = ObjectPool(Thing, 1, check=lambda o: not o.dirty, destroy=destroyed.append)
    held = pool.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=10)))
    t.start()
    wait_for_waiters(pool, 1)
    held.dirty = True
    pool.release(held)
    t.join(10)
    assert destroyed == [held]
    assert len(got) == 1 and got[0] is not held and not got[0].dirty
    assert pool.stats()["checks_failed"] == 1
    pool.release(got[0])


def _failing_pool(why, coroutine=False):
    """capacity 1; the object held first fails check() (or is past
    max_idle) when it comes back."""
    if why == "max_idle":
        return ObjectPool(Thing, 1, max_idle=0.0)
    if coroutine:
        async def check(o):
            return not o.dirty
    else:
        def check(o):
            return not o.dirty
    return ObjectPool(Thing, 1, check=check)


@pytest.mark.parametrize("why", ["check", "max_idle"])
def test_a_waiter_whose_granted_object_fails_keeps_its_place(why):
    # the oldest waiter's granted object fails: it used to go to the back of
    # the queue (its slot granted on to the next waiter), and timed out
    # behind waiters that came after it
    pool = _failing_pool(why)
    held = pool.acquire()
    order = []

    def waiter(k, timeout):
        try:
            item = pool.acquire(timeout=timeout)
        except PoolExhausted:
            order.append((k, "timed out"))
            return
        order.append(k)
        time.sleep(0.03)
        pool.release(item)

    threads = []
    for k in range(4):
        t = threading.Thread(target=waiter, args=(k, 1.0 if k == 0 else 10))
        t.start()
        threads.append(t)
        wait_for_waiters(pool, k + 1)
    held.dirty = True
    pool.release(held)
    for t in threads:
        t.join(15)
    assert order == [0, 1, 2, 3]
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


@pytest.mark.parametrize("why,coroutine", [("check", False), ("check", True), ("max_idle", False)])
def test_a_task_whose_granted_object_fails_keeps_its_place(why, coroutine, loop_kind):
    pool = _failing_pool(why, coroutine)

    async def main():
        held = await pool.acquire_async()
        order = []

        async def waiter(k):
            item = await pool.acquire_async(timeout=10)
            order.append(k)
            await asyncio.sleep(0.01)
            await pool.release_async(item)

        tasks = []
        for k in range(3):
            tasks.append(asyncio.ensure_future(waiter(k)))
            while pool.stats()["waiting"] < k + 1:
                await asyncio.sleep(0.001)
        held.dirty = True
        await pool.release_async(held)
        await asyncio.gather(*tasks)
        return order

    assert run_async(main(), loop_kind) == [0, 1, 2]
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_close_wakes_threads_and_tasks_with_poolclosed(kind, loop_kind):
    pool = make_pool(kind, 1)
    held = pool.acquire()
    results = []
    t = threading.Thread(target=lambda: results.append(_outcome(pool.acquire, 10)))
    t.start()
    wait_for_waiters(pool, 1)

    async def main():
        task = asyncio.ensure_future(pool.acquire_async(timeout=10))
        await asyncio.sleep(0)
        pool.close()
        with pytest.raises(PoolClosed):
            await task

    run_async(main(), loop_kind)
    t.join(10)
    assert results == [PoolClosed]
    if kind == "objects":
        pool.release(held)     # (destroyed: the pool is closed)
    else:
        held.release()


def _outcome(fn, *args):
    try:
        fn(*args)
    except BaseException as e:
        return type(e)
    return None


def test_drain_waits_for_a_waiters_grant():
    """drain() closes the pool right after a release granted the slot to a
    waiter: the waiter either got the object (and releases it) or gives the
    slot back (PoolClosed); drain() returns with the object destroyed."""
    destroyed = []
    pool = ObjectPool(Thing, 1, destroy=destroyed.append)
    held = pool.acquire()
    results = []

    def waiter():
        try:
            obj = pool.acquire(timeout=10)
        except PoolClosed:
            results.append(PoolClosed)
        else:
            results.append(None)
            pool.release(obj)

    t = threading.Thread(target=waiter)
    t.start()
    wait_for_waiters(pool, 1)
    pool.release(held)
    pool.drain(timeout=10)
    t.join(10)
    assert results in ([None], [PoolClosed])
    assert destroyed == [held]
    assert pool.size == 0 and pool.in_use == 0
