"""asyncio under load: a cancellation storm with threads on the same pool,
the loop's responsiveness while many tasks wait, and a hypothesis state
machine with async steps; under asyncio's loop and uvloop."""
import asyncio
import sys
import threading
import time

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from helpers import Thing, loop_factories, run_async
from pool_ext import ObjectPool, PoolExhausted


class Owners:
    """Fails on any object held by two owners at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held = {}
        self.violations = []

    def take(self, obj, who):
        with self.lock:
            if id(obj) in self.held:
                self.violations.append((obj, self.held[id(obj)], who))
            self.held[id(obj)] = who

    def give(self, obj):
        with self.lock:
            self.held.pop(id(obj), None)


def storm(loop_kind, tasks, capacity, threads, rng):
    pool = ObjectPool(Thing, capacity)
    owners = Owners()
    stop = threading.Event()

    def churn(k):
        while not stop.is_set():
            try:
                obj = pool.acquire(timeout=0.05)
            except PoolExhausted:
                continue
            owners.take(obj, f"thread {k}")
            time.sleep(0.0002)
            owners.give(obj)
            pool.release(obj)

    async def one(k):
        mode = rng.random()
        timeout = rng.choice([None, 0, 0.001, 0.01, 0.1])
        if mode < 0.5:
            async with pool.lease_async(timeout=timeout) as obj:
                owners.take(obj, f"task {k}")
                try:
                    await asyncio.sleep(rng.choice([0, 0, 0.0005, 0.002]))
                finally:
                    owners.give(obj)
        else:
            obj = await pool.acquire_async(timeout=timeout)
            owners.take(obj, f"task {k}")
            try:
                await asyncio.sleep(rng.choice([0, 0.001]))
            finally:
                owners.give(obj)
                pool.release(obj)

    async def main():
        running = [asyncio.ensure_future(one(k)) for k in range(tasks)]
        # cancel a third of them at random moments: before, while waiting,
        # just after a wake-up, inside the lease body
        for t in rng.sample(running, tasks // 3):
            await asyncio.sleep(rng.choice([0, 0, 0.0001, 0.001]))
            t.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)
        bad = [r for r in results if isinstance(r, BaseException)
               and not isinstance(r, (asyncio.CancelledError, PoolExhausted,
                                      asyncio.TimeoutError))]
        assert not bad, bad[:3]

    ths = [threading.Thread(target=churn, args=(k,)) for k in range(threads)]
    for t in ths:
        t.start()
    try:
        run_async(main(), loop_kind)
    finally:
        stop.set()
        for t in ths:
            t.join()
    assert not owners.violations, owners.violations[:3]
    s = pool.stats()
    assert s["in_use"] == 0 and s["waiting"] == 0 and s["acquires"] == s["releases"], s
    every = [pool.acquire(timeout=0) for _ in range(capacity)]   # no slot lost
    assert pool.try_acquire() is None
    for obj in every:
        pool.release(obj)
    return s


def test_cancellation_storm_short(loop_kind, rng):
    s = storm(loop_kind, tasks=1000, capacity=4, threads=2, rng=rng)
    assert s["waits"] > 0


@pytest.mark.slow
def test_cancellation_storm(loop_kind, rng):
    """The issue's storm: 10,000 tasks with random timeouts, cancelled at
    random points (inside lease bodies too), threads churning the pool."""
    s = storm(loop_kind, tasks=10_000, capacity=8, threads=4, rng=rng)
    assert s["waits"] > 1000


def ticker_under_load(loop_kind):
    """1,000 tasks wait on a pool of 4 while 4 threads acquire and release
    it; returns the worst delay of a 1 ms ticker task on the same loop."""
    pool = ObjectPool(Thing, 4)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            obj = pool.acquire()
            time.sleep(0.0005)        # holding it, as a thread doing I/O does
            pool.release(obj)

    async def waiter():
        while True:                   # a winner uses its object, gives it back, waits again
            obj = await pool.acquire_async(timeout=30)
            try:
                await asyncio.sleep(0.002)
            finally:
                pool.release(obj)

    async def main():
        waiters = [asyncio.ensure_future(waiter()) for _ in range(1000)]
        await asyncio.sleep(0.05)
        worst, ticks, queued = 0.0, 0, []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while loop.time() < deadline:
            # perf_counter: uvloop's loop.time() counts whole milliseconds
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)
            ticks += 1
            queued.append(pool.stats()["waiting"])
        assert sorted(queued)[len(queued) // 2] > 900, "the tasks were meant to be waiting"
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        return worst, ticks

    # A thread that wants the GIL waits up to the switch interval (5 ms by
    # default) for the holder to let go: with 4 busy threads that alone can
    # hold the ticker up 5 ms, whatever the pool does.  1 ms keeps the
    # interpreter's scheduling out of what this measures.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    ths = [threading.Thread(target=churn) for _ in range(4)]
    for t in ths:
        t.start()
    try:
        worst, ticks = run_async(main(), loop_kind)
    finally:
        stop.set()
        for t in ths:
            t.join()
        sys.setswitchinterval(interval)
    assert pool.in_use == 0 and pool.stats()["waiting"] == 0
    return worst, ticks


def idle_ticker_worst(loop_kind):
    """The worst delay of the same ticker on an idle loop: what the machine
    itself (other processes, the OS scheduler) adds."""
    async def main():
        loop, worst = asyncio.get_running_loop(), 0.0
        deadline = loop.time() + 0.5
        while loop.time() < deadline:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)
        return worst
    return run_async(main(), loop_kind)


def test_the_loop_keeps_ticking_while_tasks_wait(loop_kind):
    """The waiting tasks never block their loop: the ticker is never held up
    5 ms or more.  This machine is shared: a ticker on an idle loop is itself
    held up by other processes now and then (4 ms seen on 2 busy cores), so
    what an idle loop suffers beyond 1 ms is allowed on top, and the
    measurement gets three tries."""
    tries = []
    for _ in range(3):
        noise = max(0.0, idle_ticker_worst(loop_kind) - 0.001)
        worst, ticks = ticker_under_load(loop_kind)
        tries.append(f"{worst * 1e3:.2f} ms over {ticks} ticks "
                     f"(allowed {(0.005 + noise) * 1e3:.2f} ms)")
        if worst < 0.005 + noise:
            break
    print(f"{loop_kind}: worst tick delay " + "; ".join(tries))
    assert worst < 0.005 + noise, f"the loop was held up: {tries}"


class AsyncPoolMachine(RuleBasedStateMachine):
    """acquire, release, wait, cancel and time out, against a model: the
    pool's counts match, no object has two owners, no slot is lost; and the
    hand-off's rules: waiters are served in the order they started (a
    later one never gets an object while an earlier one still waits), a
    newcomer never takes a slot from them, and a grant whose task is
    cancelled or times out at that moment goes on to the next waiter."""

    CAPACITY = 3

    def __init__(self):
        super().__init__()
        self.loop = loop_factories()["asyncio"]()
        self.pool = ObjectPool(Thing, self.CAPACITY)
        self.held = []          # objects the test holds
        self.waiters = []       # pending acquire_async tasks
        self.order = []         # every waiter, in the order it started

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def settle(self):
        """Lets the loop run until no waiter can make progress."""
        for _ in range(5):
            self.run(asyncio.sleep(0))
        for t in list(self.waiters):
            if t.done():
                self.waiters.remove(t)
                if not t.cancelled() and t.exception() is None:
                    self.held.append(t.result())

    @rule()
    def acquire_now(self):
        async def go():
            return await self.pool.acquire_async(timeout=0)
        free = self.CAPACITY - len(self.held)
        if free > 0 and not self.waiters:
            self.held.append(self.run(go()))
        elif free == 0:
            with pytest.raises(PoolExhausted):
                self.run(go())

    @rule(timeout=st.sampled_from([None, 10.0]))
    def start_waiter(self, timeout):
        task = self.loop.create_task(self.pool.acquire_async(timeout=timeout))
        self.waiters.append(task)
        self.order.append(task)
        self.settle()

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data):
        obj = data.draw(st.sampled_from(self.held))
        self.held.remove(obj)
        self.pool.release(obj)
        self.settle()

    @precondition(lambda self: self.waiters)
    @rule(data=st.data(), settle_first=st.booleans())
    def cancel_waiter(self, data, settle_first):
        t = data.draw(st.sampled_from(self.waiters))
        if settle_first:
            self.settle()
        t.cancel()
        self.settle()

    @precondition(lambda self: self.waiters)
    @rule()
    def newcomer_does_not_barge(self):
        """While tasks wait, try_acquire() and a timeout=0 acquire find
        nothing, even in the moment after a release granted a slot."""
        if self.held:
            self.pool.release(self.held.pop())   # granted to the oldest, not run yet
        assert self.pool.try_acquire() is None
        with pytest.raises(PoolExhausted):
            self.pool.acquire(timeout=0)
        self.settle()

    @precondition(lambda self: self.held and self.waiters)
    @rule(data=st.data())
    def cancel_at_the_grant(self, data):
        """A release grants the oldest waiter's slot; that task is cancelled
        before it runs: the slot goes on to the next waiter."""
        oldest = next((t for t in self.order if t in self.waiters and not t.done()), None)
        self.pool.release(self.held.pop(data.draw(st.integers(0, len(self.held) - 1))))
        if oldest is not None:
            oldest.cancel()
        self.settle()

    @precondition(lambda self: len(self.held) == self.CAPACITY and not self.waiters)
    @rule(delay=st.sampled_from([0.0005, 0.001, 0.002]))
    def grant_races_the_timeout(self, delay):
        """A waiter's timeout and a release land together: the task ends
        with the object or PoolExhausted, and either way no slot is lost.
        (Whichever happens, the test holds the object again after, so that
        the next steps do not depend on the timing.)"""
        obj = self.held.pop()
        task = self.loop.create_task(self.pool.acquire_async(timeout=0.001))
        self.loop.call_later(delay, self.pool.release, obj)
        self.run(asyncio.wait([task]))
        self.run(asyncio.sleep(delay))       # the release has come by now
        if task.exception() is None:
            assert task.result() is obj       # the slot released, granted
            self.held.append(obj)
        else:
            assert isinstance(task.exception(), PoolExhausted)
            self.held.append(self.pool.acquire(timeout=0))

    @rule()
    def timed_out_wait(self):
        async def go():
            return await self.pool.acquire_async(timeout=0.001)
        if len(self.held) == self.CAPACITY:
            with pytest.raises(PoolExhausted):
                self.run(go())
            self.settle()

    @invariant()
    def matches_model(self):
        assert len({id(o) for o in self.held}) == len(self.held), "double owner"
        s = self.pool.stats()
        pending = sum(1 for t in self.waiters if not t.done())
        assert s["in_use"] == len(self.held) + sum(
            1 for t in self.waiters if t.done() and not t.cancelled() and t.exception() is None)
        assert s["waiting"] <= pending
        if len(self.held) < self.CAPACITY:
            assert pending == 0 or s["in_use"] == self.CAPACITY   # nobody waits for a free slot
        # FIFO: a waiter that got its object started after every one still waiting
        served = [k for k, t in enumerate(self.order)
                  if t.done() and not t.cancelled() and t.exception() is None]
        waiting = [k for k, t in enumerate(self.order) if not t.done()]
        if served and waiting:
            assert max(served) < min(waiting), ("served out of order", served, waiting)

    def teardown(self):
        for t in self.waiters:
            t.cancel()
        self.settle()
        for obj in self.held:
            self.pool.release(obj)
        assert self.pool.in_use == 0 and self.pool.stats()["waiting"] == 0
        self.loop.close()


@pytest.mark.slow
def test_async_pool_matches_model(knobs):
    AsyncPoolMachine.TestCase.settings = settings(
        max_examples=knobs.hypothesis_examples, stateful_step_count=30, deadline=None)
    AsyncPoolMachine.TestCase().runTest()
