"""Coroutine hooks: factory, check, reset, validate and destroy may be
coroutine functions; the async methods await them, the sync ones refuse
with TypeError, and a cancellation inside any of them loses no slot.
Every test runs under asyncio's loop and uvloop (loop_kind)."""
import asyncio
import gc
import sys
import threading
import time
import warnings

import pytest

from helpers import Thing, run_async
from pool_ext import ObjectPool, PoolClosed, PoolError, PoolExhausted


class Log(list):
    """What the hooks did, in order: (hook name, object number)."""

    def hooks(self, *, slow=0.0, check_ok=True, valid=True):
        async def factory():
            await asyncio.sleep(slow)
            thing = Thing()
            thing.n = sum(1 for name, _ in self if name == "factory") + 1
            self.append(("factory", thing.n))
            return thing

        async def check(thing):
            await asyncio.sleep(slow)
            self.append(("check", thing.n))
            return check_ok

        async def reset(thing):
            await asyncio.sleep(slow)
            thing.dirty = False
            self.append(("reset", thing.n))

        async def validate(thing):
            await asyncio.sleep(slow)
            self.append(("validate", thing.n))
            return valid

        async def destroy(thing):
            await asyncio.sleep(slow)
            self.append(("destroy", thing.n))

        return dict(factory=factory, check=check, reset=reset, validate=validate,
                    destroy=destroy)


def every_slot_free(pool):
    """All capacity slots can be taken (asynchronously) at once, and given back."""
    async def take_all():
        items = [await pool.acquire_async(timeout=1) for _ in range(pool.capacity)]
        for item in items:
            await pool.release_async(item)
    return take_all()


# -- the async path awaits every hook ------------------------------------------------

def test_every_coroutine_hook_is_awaited_in_order(loop_kind):
    log = Log()
    pool = ObjectPool(capacity=2, **log.hooks())

    async def main():
        thing = await pool.acquire_async()       # factory: not checked
        await pool.release_async(thing)           # reset, validate
        again = await pool.acquire_async()        # check
        assert again is thing
        async with pool.lease_async() as other:   # factory for the second slot
            assert other is not thing
        await pool.release_async(thing)
        await pool.close_async()                  # destroy both

    run_async(main(), loop_kind)
    assert log[:5] == [("factory", 1), ("reset", 1), ("validate", 1), ("check", 1),
                       ("factory", 2)]
    assert sorted(log[-2:]) == [("destroy", 1), ("destroy", 2)]
    assert pool.closed and pool.size == 0 and pool.in_use == 0


def test_sync_and_async_hooks_mix_on_the_async_path(loop_kind):
    seen = []

    async def factory():
        return Thing()

    pool = ObjectPool(factory, 1, reset=lambda t: seen.append("sync reset"),
                      validate=lambda t: True)

    async def main():
        t = await pool.acquire_async()
        await pool.release_async(t)
        pool.release(await pool.acquire_async())   # sync reset: release() runs it

    run_async(main(), loop_kind)
    assert seen == ["sync reset", "sync reset"]


def test_a_sync_factory_returning_an_awaitable_is_awaited_on_the_async_path(loop_kind):
    async def connect():
        return Thing()

    pool = ObjectPool(lambda: connect(), 1)   # not a coroutine function itself

    async def main():
        thing = await pool.acquire_async()
        assert isinstance(thing, Thing)
        pool.release(thing)

    run_async(main(), loop_kind)
    assert pool.size == 1


def test_an_object_with_an_async_call_method_is_a_coroutine_hook():
    class Connect:
        async def __call__(self):
            return Thing()

    pool = ObjectPool(Connect(), 1)
    with pytest.raises(TypeError, match="acquire_async"):
        pool.acquire()


# -- the sync methods refuse, and change nothing ---------------------------------------

@pytest.mark.parametrize("hook", ["factory", "check", "reset", "validate", "destroy"])
def test_sync_acquire_refuses_a_pool_with_any_coroutine_hook(hook):
    hooks = Log().hooks()
    kwargs = {hook: hooks[hook]}
    pool = ObjectPool(kwargs.pop("factory", Thing), 2, **kwargs)
    for call in (pool.acquire, pool.try_acquire, lambda: pool.lease().__enter__()):
        with pytest.raises(TypeError, match=r"use await pool\.acquire_async\(\)") as refused:
            call()
        assert hook in str(refused.value)        # the message names the coroutine hook
    with pytest.raises(TypeError, match="acquire_async"):
        pool.acquire(timeout=0.01)
    assert pool.size == 0 and pool.in_use == 0 and pool.stats()["acquires"] == 0


@pytest.mark.parametrize("hook", ["reset", "validate"])
def test_sync_release_refuses_a_coroutine_reset_or_validate_and_keeps_the_hand_out(
        hook, loop_kind):
    pool = ObjectPool(Thing, 1, **{hook: Log().hooks()[hook]})

    async def main():
        thing = await pool.acquire_async()
        with pytest.raises(TypeError, match=r"release_async\(obj\)"):
            pool.release(thing)
        assert pool.in_use == 1              # still held: nothing changed
        await pool.release_async(thing)
        assert pool.in_use == 0 and pool.idle == 1

    run_async(main(), loop_kind)


def test_a_lambda_returning_a_coroutine_is_refused_by_the_sync_path_without_a_warning():
    async def connect():
        return Thing()

    async def ping(thing):
        return True

    async def clean(thing):
        pass

    made = ObjectPool(lambda: connect(), 2)
    checked = ObjectPool(Thing, 2, check=lambda t: ping(t))
    cleaned = ObjectPool(Thing, 2, reset=lambda t: clean(t))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "coroutine ... was never awaited"
        with pytest.raises(TypeError, match="factory.*awaitable"):
            made.acquire()
        assert made.size == 0 and made.in_use == 0

        checked.release(checked.acquire())            # fresh objects are not checked
        with pytest.raises(TypeError, match="check.*awaitable"):
            checked.acquire()
        assert checked.in_use == 0                    # the object left, the slot did not
        checked.release(checked.acquire())

        thing = cleaned.acquire()
        with pytest.raises(TypeError, match="reset.*awaitable"):
            cleaned.release(thing)
        assert cleaned.in_use == 0 and cleaned.size == 0   # its state unknown: dropped
        gc.collect()


def test_prefill_and_the_evictor_thread_refuse_coroutine_hooks():
    hooks = Log().hooks()
    with pytest.raises(TypeError, match="prefill"):
        ObjectPool(hooks["factory"], 2, prefill=1)
    pool = ObjectPool(Thing, 2, destroy=hooks["destroy"], max_idle=1)
    with pytest.raises(TypeError, match="start_evictor"):
        pool.start_evictor(1.0)


# -- failures and cancellations give the slot back ----------------------------------

def test_a_failing_or_none_returning_async_factory_loses_no_slot(loop_kind):
    calls = []

    async def factory():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database down")
        if len(calls) == 2:
            return None
        return Thing()

    pool = ObjectPool(factory, 1)

    async def main():
        with pytest.raises(ConnectionError):
            await pool.acquire_async()
        with pytest.raises(PoolError, match="None"):
            await pool.acquire_async()
        thing = await pool.acquire_async(timeout=0)
        await pool.release_async(thing)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size == 1 and pool.stats()["acquires"] == 1


@pytest.mark.parametrize("timeout", [None, 5])   # 5: the hooks' awaits are bounded
@pytest.mark.parametrize("where", ["factory", "check", "reset", "validate", "destroy"])
def test_a_cancellation_inside_any_hook_loses_no_slot(where, timeout, loop_kind):
    hooks = Log().hooks()
    slow_in = [None]            # the hook that hangs, until the cancellation
    entered = []

    def hanging(name):
        inner = hooks[name]

        async def hook(*args):
            if slow_in[0] == name:
                entered[0].set()
                await asyncio.sleep(10)
            return await inner(*args)
        return hook

    pool = ObjectPool(capacity=1, **{name: hanging(name) for name in hooks})

    async def main():
        entered.append(asyncio.Event())
        if where == "factory":
            slow_in[0] = where
            task = asyncio.create_task(pool.acquire_async(timeout=timeout))
        elif where == "check":
            await pool.release_async(await pool.acquire_async())   # one idle object
            slow_in[0] = where
            task = asyncio.create_task(pool.acquire_async(timeout=timeout))
        else:
            thing = await pool.acquire_async()
            slow_in[0] = where
            task = asyncio.create_task(pool.discard_async(thing) if where == "destroy"
                                       else pool.release_async(thing))
        await asyncio.wait_for(entered[0].wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        slow_in[0] = None
        await asyncio.sleep(0.01)          # a destroy() task runs
        assert pool.in_use == 0 and pool.stats()["waiting"] == 0
        thing = await asyncio.wait_for(pool.acquire_async(timeout=1), 2)
        await asyncio.wait_for(pool.release_async(thing), 2)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size <= 1


class Live:
    """Counts the objects alive (made by the factory, not yet destroyed),
    and the most ever alive at once; destroy() takes a while."""

    def __init__(self):
        self.now = self.most = 0

    async def factory(self):
        self.now += 1
        self.most = max(self.most, self.now)
        return Thing()

    async def destroy(self, thing):
        await asyncio.sleep(0.05)
        self.now -= 1


def test_a_destroy_task_left_on_a_closed_loop_gives_its_slot_back(loop_kind):
    """A sync discard() at the end of a run leaves destroy() as a task that
    never runs if the loop is then closed without running its leftover
    tasks: the slot it keeps must come back once that loop is closed."""
    from helpers import loop_factories
    live = Live()
    pool = ObjectPool(live.factory, 1, destroy=live.destroy)

    async def discard_one():
        pool.discard(await pool.acquire_async())   # destroy(): a task, not run

    loop = loop_factories()[loop_kind]()
    loop.set_exception_handler(lambda loop, context: None)
    loop.run_until_complete(discard_one())
    loop.close()                                     # the task never runs

    async def main():
        fresh = await asyncio.wait_for(pool.acquire_async(timeout=1), 2)
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size == 1


@pytest.mark.parametrize("where", ["check", "reset", "validate", "sync discard"])
def test_the_slot_stays_taken_until_destroy_has_finished(where, loop_kind):
    """Cancelled inside check(), reset() or validate(), the object is
    destroyed in a task; its slot must not be refilled before destroy()
    has finished: never two objects alive in a pool of capacity 1."""
    live = Live()
    hang = {}

    async def hook(thing):
        if hang.get("on"):
            hang["entered"].set()
            await asyncio.sleep(10)
        return True

    kwargs = {} if where == "sync discard" else {where: hook}
    pool = ObjectPool(live.factory, 1, destroy=live.destroy, **kwargs)

    async def main():
        hang["entered"] = asyncio.Event()
        thing = await pool.acquire_async()
        if where == "sync discard":
            pool.discard(thing)                 # destroy() runs as a task
        else:
            if where == "check":
                await pool.release_async(thing)
                hang["on"] = True
                task = asyncio.create_task(pool.acquire_async())
            else:
                hang["on"] = True
                task = asyncio.create_task(pool.release_async(thing))
            await asyncio.wait_for(hang["entered"].wait(), 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            hang["on"] = False
        fresh = await asyncio.wait_for(pool.acquire_async(timeout=2), 3)
        assert live.most <= 1, "the factory ran while the old object was not destroyed"
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert live.most == 1 and pool.in_use == 0 and pool.size == 1


def test_cancelling_a_task_waiting_for_a_slot_on_a_hooked_pool(loop_kind):
    pool = ObjectPool(capacity=1, **Log().hooks())

    async def main():
        held = await pool.acquire_async()
        waiters = [asyncio.create_task(pool.acquire_async()) for _ in range(3)]
        await asyncio.sleep(0.01)
        waiters[0].cancel()
        with pytest.raises(PoolExhausted):
            await pool.acquire_async(timeout=0.01)
        await pool.release_async(held)
        got = await waiters[1]
        await pool.release_async(got)
        got = await waiters[2]
        await pool.release_async(got)
        with pytest.raises(asyncio.CancelledError):
            await waiters[0]

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0


def test_asyncio_timeout_around_a_slow_factory(loop_kind):
    pool = ObjectPool(capacity=1, **Log().hooks(slow=0.5))

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.acquire_async(), 0.05)
        assert pool.in_use == 0 and pool.size == 0

    run_async(main(), loop_kind)


# -- the timeout bounds the whole call, hooks included -----------------------------------

@pytest.mark.parametrize("how", ["acquire_async", "lease_async", "after a wait"])
@pytest.mark.parametrize("stalled", ["factory", "check"])
def test_the_timeout_bounds_a_stalled_hook(stalled, how, loop_kind):
    """acquire_async(timeout=0.3) awaiting a factory() or check() that
    stalls: PoolExhausted well within 2 s, the hook's await cancelled, and
    the slot free again."""
    stall = {"on": False}
    destroyed = []

    async def hook(*args):
        if stall["on"]:
            await asyncio.sleep(30)
        return Thing() if not args else True

    async def destroy(thing):
        destroyed.append(thing)

    kwargs = {"check": hook} if stalled == "check" else {}
    pool = ObjectPool(hook if stalled == "factory" else Thing, 1, destroy=destroy, **kwargs)

    async def acquire():
        if how == "lease_async":
            async with pool.lease_async(timeout=0.3):
                pass
        else:
            await pool.acquire_async(timeout=0.3)

    async def main():
        loop = asyncio.get_running_loop()
        thing = await pool.acquire_async()
        if stalled == "factory":
            await pool.discard_async(thing)     # the next acquire calls the factory
        if how == "after a wait":               # the slot comes free after 0.1 s
            if stalled == "check":
                loop.call_later(0.1, pool.release, thing)
            else:
                held = await pool.acquire_async()
                loop.call_later(0.1, lambda: asyncio.ensure_future(
                    pool.discard_async(held)))
        elif stalled == "check":
            await pool.release_async(thing)     # idle: the next acquire checks it
        stall["on"] = True
        start = loop.time()
        with pytest.raises(PoolExhausted, match="0.3 s"):
            await asyncio.wait_for(acquire(), 3)
        assert loop.time() - start < 2
        stall["on"] = False
        await asyncio.sleep(0.01)               # a destroy() task ends
        assert pool.in_use == 0 and pool.size == 0 and pool.stats()["waiting"] == 0
        if stalled == "check":
            assert destroyed[-1] is thing       # checked half-way: destroyed
        fresh = await asyncio.wait_for(pool.acquire_async(timeout=1), 2)
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert pool.in_use == 0


def test_a_hooks_own_timeout_error_is_not_taken_for_the_acquires_deadline(loop_kind):
    """Under a deadline, a TimeoutError the factory raises itself reaches the
    caller as it is; one from check() fails the check (the factory then
    makes a fresh object)."""
    calls = []

    async def factory():
        calls.append("factory")
        if len(calls) == 1:
            raise TimeoutError("connect timed out")
        return Thing()

    async def check(thing):
        raise TimeoutError("ping timed out")

    pool = ObjectPool(factory, 1, check=check)

    async def main():
        with pytest.raises(TimeoutError, match="connect timed out") as caught:
            await pool.acquire_async(timeout=5)
        assert not isinstance(caught.value, PoolExhausted)
        first = await pool.acquire_async(timeout=5)
        await pool.release_async(first)
        fresh = await pool.acquire_async(timeout=5)   # first failed its check
        assert fresh is not first and pool.stats()["checks_failed"] == 1
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size == 1


def test_the_timeout_bounds_a_stalled_destroy_of_a_rejected_object(loop_kind):
    """An idle object fails check() and its destroy() stalls: the acquire
    ends at its deadline; destroy() goes on in a task, whose end frees the
    slot."""
    async def check(thing):
        return False

    gate = []

    async def destroy(thing):
        await gate[0].wait()

    pool = ObjectPool(Thing, 1, check=check, destroy=destroy)

    async def main():
        loop = asyncio.get_running_loop()
        gate.append(asyncio.Event())
        await pool.release_async(await pool.acquire_async())
        start = loop.time()
        with pytest.raises(PoolExhausted, match="0.3 s"):
            await asyncio.wait_for(pool.acquire_async(timeout=0.3), 3)
        assert loop.time() - start < 2
        assert pool.in_use == 0 and pool.size == 0
        with pytest.raises(PoolExhausted):      # destroy() has not ended: slot taken
            await pool.acquire_async(timeout=0)
        gate[0].set()
        fresh = await asyncio.wait_for(pool.acquire_async(timeout=1), 2)
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert pool.in_use == 0


# -- destroy() from sync methods, closing -----------------------------------------------

def test_sync_close_and_discard_run_a_coroutine_destroy_as_tasks(loop_kind):
    log = Log()
    hooks = log.hooks()
    pool = ObjectPool(Thing, 3, destroy=hooks["destroy"])

    async def main():
        a, b = await pool.acquire_async(), await pool.acquire_async()
        a.n, b.n = 1, 2
        await pool.release_async(a)
        pool.discard(b)        # sync, inside the loop: a task
        pool.close()           # sync: a task for the idle one
        await asyncio.sleep(0.05)

    run_async(main(), loop_kind)
    assert sorted(log) == [("destroy", 1), ("destroy", 2)]


def test_sync_close_with_no_loop_warns_that_destroy_cannot_run(loop_kind):
    log = Log()
    pool = ObjectPool(Thing, 2, destroy=log.hooks()["destroy"])

    async def fill():
        await pool.release_async(await pool.acquire_async())

    run_async(fill(), loop_kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool.close()
        gc.collect()
    messages = [str(w.message) for w in caught]
    assert any("close_async()" in m for m in messages), messages
    assert not any("never awaited" in m for m in messages), messages
    assert pool.size == 0 and log == []


def test_discard_async_awaits_destroy(loop_kind):
    log = Log()
    pool = ObjectPool(capacity=1, **log.hooks())

    async def main():
        thing = await pool.acquire_async()
        await pool.discard_async(thing)
        with pytest.raises(PoolError):
            await pool.discard_async(thing)
        assert log[-1] == ("destroy", 1) and pool.size == 0

    run_async(main(), loop_kind)


def test_drain_async_waits_for_the_held_objects_without_blocking_the_loop(loop_kind):
    log = Log()
    pool = ObjectPool(capacity=2, **log.hooks())

    async def main():
        a = await pool.acquire_async()
        b = await pool.acquire_async()
        await pool.release_async(b)
        waiter = asyncio.create_task(pool.acquire_async())   # gets b at once
        other = asyncio.create_task(pool.acquire_async())    # waits
        await asyncio.sleep(0.01)
        drain = asyncio.create_task(pool.drain_async(timeout=5))
        await asyncio.sleep(0.01)
        with pytest.raises(PoolClosed):
            await other                      # drain wakes waiting tasks with PoolClosed
        assert not drain.done()
        await pool.release_async(a)
        await pool.release_async(await waiter)
        await asyncio.wait_for(drain, 5)
        assert pool.size == 0 and pool.closed

    run_async(main(), loop_kind)
    assert sorted(x for x in log if x[0] == "destroy") == [("destroy", 1), ("destroy", 2)]


def test_drain_async_returns_only_after_a_released_objects_destroy_has_ended(loop_kind):
    log = []

    def destroy(o):
        log.append("destroy start")
        time.sleep(0.1)
        log.append("destroy end")

    pool = ObjectPool(Thing, 1, destroy=destroy)
    a = pool.acquire()
    t = threading.Thread(target=lambda: (time.sleep(0.05), pool.release(a)))

    async def main():
        t.start()
        await pool.drain_async(timeout=10)
        log.append("drain returned")

    run_async(main(), loop_kind)
    t.join()
    assert log == ["destroy start", "destroy end", "drain returned"]


def test_drain_async_times_out_and_the_pool_stays_closed(loop_kind):
    pool = ObjectPool(Thing, 1)

    async def main():
        thing = await pool.acquire_async()
        with pytest.raises(PoolExhausted, match="drain_async"):
            await pool.drain_async(timeout=0.02)
        assert pool.closed
        pool.release(thing)                 # destroyed as it comes back
        assert pool.size == 0

    run_async(main(), loop_kind)


def test_sync_drain_from_a_thread_wakes_waiting_tasks_with_pool_closed(loop_kind):
    import threading
    pool = ObjectPool(Thing, 1)

    async def main():
        thing = await pool.acquire_async()
        waiters = [asyncio.create_task(pool.acquire_async()) for _ in range(3)]
        await asyncio.sleep(0.01)
        drainer = threading.Thread(target=pool.drain, kwargs={"timeout": 5})
        drainer.start()
        for w in waiters:
            with pytest.raises(PoolClosed):
                await asyncio.wait_for(w, 5)
        pool.release(thing)
        await asyncio.get_running_loop().run_in_executor(None, drainer.join, 5)
        assert not drainer.is_alive() and pool.size == 0

    run_async(main(), loop_kind)


def test_async_methods_need_a_running_loop():
    pool = ObjectPool(Thing, 1)
    for make in (pool.drain_async, lambda: pool.acquire_async()):
        coro = make()
        with pytest.raises(RuntimeError, match="running event loop"):
            coro.send(None)
        coro.close()


def test_a_failing_async_destroy_after_a_failed_check_does_not_fail_the_acquire(loop_kind, caplog):
    async def check(thing):
        return False

    async def destroy(thing):
        raise ConnectionResetError("the peer reset it")

    async def factory():
        return Thing()

    pool = ObjectPool(factory, 1, check=check, destroy=destroy)

    async def main():
        first = await pool.acquire_async()
        await pool.release_async(first)
        with caplog.at_level("WARNING", logger="pool_ext"):
            fresh = await pool.acquire_async()
        assert fresh is not first and pool.in_use == 1
        await pool.release_async(fresh)

    run_async(main(), loop_kind)
    assert "destroy() failed" in caplog.text


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.9 and 3.10 have only wait_for, "
                    "which can swallow such a cancel (a CPython bug fixed in 3.12)")
def test_a_cancel_as_the_factory_finishes_is_not_swallowed():
    """acquire_async(timeout) awaited a coroutine factory through wait_for,
    which on 3.11 returned the result when the task was cancelled just as
    the factory finished: the task went on uncancelled (break-it review)."""
    async def main():
        me = asyncio.current_task()

        async def factory():
            await asyncio.sleep(0.001)
            asyncio.get_running_loop().call_soon(me.cancel)   # lands as the factory ends
            return object()

        pool = ObjectPool(factory, 1)
        obj = None
        try:
            obj = await pool.acquire_async(timeout=5)
            await asyncio.sleep(1)                    # a cancelled task stops here
        except asyncio.CancelledError:
            if obj is not None:
                pool.release(obj)
            return "cancelled", pool.in_use
        return "not cancelled", pool.in_use

    assert asyncio.run(main()) == ("cancelled", 0)


@pytest.mark.parametrize("coroutine", [False, True], ids=["sync-factory", "async-factory"])
def test_drain_from_inside_the_factory_of_acquire_async_is_refused(coroutine):
    seen = []
    pool = None

    def sync_factory():
        try:
            pool.drain()
        except RuntimeError as exc:
            seen.append(str(exc))
        return object()

    async def async_factory():
        try:
            await pool.drain_async()
        except RuntimeError as exc:
            seen.append(str(exc))
        return object()

    async def main():
        nonlocal pool
        pool = ObjectPool(async_factory if coroutine else sync_factory, 1)
        obj = await asyncio.wait_for(pool.acquire_async(timeout=5), 10)
        pool.release(obj)
        return pool.closed

    assert asyncio.run(main()) is False and seen and "factory" in seen[0]
