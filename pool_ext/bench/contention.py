"""How ``pool-ext bench --contention`` measures a pool with fewer objects
than callers: is it fair, and what does a contended hand-off cost?

Three scenarios, each run on pool_ext and on a pool written in Python that
hands every released object to its oldest waiter (the fair reference):

* threads: 8 threads share a pool of 2; each acquires, holds its object
  2 ms (``time.sleep``), releases it and comes straight back;
* tasks: 64 asyncio tasks share a pool of 8; each holds its object for one
  loop iteration (``await asyncio.sleep(0)``) and comes straight back;
* hand-off: 2 tasks share a pool of 1 the same way, so every release wakes
  the other task; the cost per hand-out, under asyncio's loop and uvloop.

The rounds are interleaved (a pool_ext round, then the Python pool's, round
after round), and each figure is its median over the rounds.  A thread's or
task's hand-outs are those whose acquire returned within the round; every
acquire begun within the round counts among the waits, so a caller that was
left waiting to the end shows a wait as long as the round.

Every function takes an optional ``progress`` object, told ``step(text, n)``
as the work advances.  Only the standard library is needed; uvloop is used
if it is installed.
"""
import asyncio
import collections
import statistics
import threading
import time

from pool_ext import ObjectPool

THREADS, THREAD_CAPACITY, HOLD = 8, 2, 0.002
TASKS, TASK_CAPACITY = 64, 8
HANDOFF_TASKS, HANDOFFS = 2, 20_000

#: The targets of issue 17: (figure, comparison, bound).
TARGETS = {
    "threads": {"jain": (">=", 0.98), "max_min": ("<=", 1.5), "worst_x_ideal": ("<=", 8.0),
                "throughput_ratio": (">=", 0.95)},
    "tasks": {"jain": (">=", 0.98), "max_min": ("<=", 1.5)},
    "handoff": {"ratio": (">=", 1.5)},
}


class FifoPool:
    """The fair reference for threads: a release that finds waiters hands its
    object straight to the oldest one; a newcomer queues behind them."""

    def __init__(self, factory, capacity):
        self._factory = factory
        self._free = capacity          # objects not made yet
        self._idle = []
        self._waiters = collections.deque()
        self._lock = threading.Lock()

    def acquire(self):
        with self._lock:
            if not self._waiters:
                if self._idle:
                    return self._idle.pop()
                if self._free:
                    self._free -= 1
                    return self._factory()
            waiter = [threading.Lock(), None]
            waiter[0].acquire()
            self._waiters.append(waiter)
        waiter[0].acquire()            # until a release hands it an object
        return waiter[1]

    def release(self, obj):
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter[1] = obj
                waiter[0].release()
            else:
                self._idle.append(obj)


class FairAsyncPool:
    """The fair reference for tasks (psycopg_pool's way): a deque of futures;
    a release hands its object to the oldest waiting future; a waiter
    cancelled after it was handed one passes it on."""

    def __init__(self, factory, capacity):
        self._factory = factory
        self._free = capacity
        self._idle = []
        self._waiters = collections.deque()

    async def acquire_async(self):
        if not self._waiters:
            if self._idle:
                return self._idle.pop()
            if self._free:
                self._free -= 1
                return self._factory()
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())
            raise

    def release(self, obj):
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():         # a cancelled waiter is skipped
                fut.set_result(obj)
                return
        self._idle.append(obj)


def _step(progress, text, n=1):
    if progress:
        progress.step(text, n)


def jain(counts):
    """Jain's fairness index: 1 when all are equal, 1/n when one takes all."""
    sq = sum(x * x for x in counts)
    return sum(counts) ** 2 / (len(counts) * sq) if sq else 0.0


def max_min(counts):
    """The most hand-outs any caller got / the fewest (inf if one got none)."""
    return max(counts) / min(counts) if min(counts) else float("inf")


def percentile(sorted_values, q):
    """The nearest-rank q-quantile (0..1) of already sorted values."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def fairness(counts, waits, seconds):
    """The figures of one round: counts per caller, every wait in seconds."""
    waits = sorted(waits)
    return {"handouts": sum(counts), "throughput": sum(counts) / seconds,
            "jain": jain(counts), "max_min": max_min(counts),
            "p50_wait": percentile(waits, 0.5), "p99_wait": percentile(waits, 0.99),
            "max_wait": waits[-1] if waits else 0.0}


def _thread_loop(pool, hold, start, end, out):
    acquire, release, sleep, clock = pool.acquire, pool.release, time.sleep, time.perf_counter
    count, waits = 0, []
    start.wait()
    stop = end[0]
    while True:
        t0 = clock()
        if t0 >= stop:
            break
        obj = acquire()
        t1 = clock()
        waits.append(t1 - t0)
        count += t1 < stop
        sleep(hold)
        release(obj)
    out.append((count, waits))


def thread_round(pool, duration, threads=THREADS, hold=HOLD):
    """One round of the threads scenario on `pool`: its figures."""
    start, end, out = threading.Barrier(threads + 1), [0.0], []
    ts = [threading.Thread(target=_thread_loop, args=(pool, hold, start, end, out))
          for _ in range(threads)]
    for t in ts:
        t.start()
    end[0] = time.perf_counter() + duration
    start.wait()
    for t in ts:
        t.join()
    return fairness([c for c, _ in out], [w for _, ws in out for w in ws], duration)


async def _task_loop(pool, stop, waits):
    acquire, release, sleep, clock = pool.acquire_async, pool.release, asyncio.sleep, time.perf_counter
    count = 0
    while True:
        t0 = clock()
        if t0 >= stop:
            return count
        obj = await acquire()
        t1 = clock()
        waits.append(t1 - t0)
        count += t1 < stop
        await sleep(0)
        release(obj)


async def _tasks(pool, duration, tasks):
    waits = []
    stop = time.perf_counter() + duration
    counts = await asyncio.gather(*(_task_loop(pool, stop, waits) for _ in range(tasks)))
    return fairness(list(counts), waits, duration)


def run_loop(coro, loop_factory=None):
    """Runs coro to completion on a new loop from loop_factory (asyncio's
    default loop if None), then closes the loop."""
    loop = (loop_factory or asyncio.new_event_loop)()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def task_round(pool, duration, tasks=TASKS):
    """One round of the tasks scenario on `pool` (asyncio's loop)."""
    return run_loop(_tasks(pool, duration, tasks))


async def _pingpong(pool, n, me, last):
    """n hand-outs; last[0] is the latest holder, last[1] counts the times the
    object changed hands (a barging pool keeps giving it to the same task)."""
    acquire, release, sleep = pool.acquire_async, pool.release, asyncio.sleep
    for _ in range(n):
        obj = await acquire()
        if last[0] != me:
            last[0] = me
            last[1] += 1
        await sleep(0)
        release(obj)


async def _no_pool(n):
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


async def _timed(coros):
    t0 = time.perf_counter()
    await asyncio.gather(*coros)
    return time.perf_counter() - t0


def handoff_round(make, loop_factory=None, handoffs=HANDOFFS, tasks=HANDOFF_TASKS):
    """(ns per hand-out, changes of hands per hand-out) with `tasks` tasks on
    a pool of 1 from make(1); with make None, the same loops without a pool
    (the floor; no changes)."""
    per, last = handoffs // tasks, [None, 0]
    if make is None:
        coros = [_no_pool(per) for _ in range(tasks)]
    else:
        pool = make(1)
        coros = [_pingpong(pool, per, me, last) for me in range(tasks)]
    seconds = run_loop(_timed(coros), loop_factory)
    return seconds / (per * tasks) * 1e9, last[1] / (per * tasks)


def loops():
    """{name: loop factory}: asyncio's loop, and uvloop's if installed."""
    out = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        return out
    out["uvloop"] = uvloop.new_event_loop
    return out


def _medians(rounds):
    """{figure: median over the rounds} of a list of per-round dicts."""
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def scenario(round_fn, make_ext, make_ref, rounds, progress=None, label=""):
    """Interleaved rounds of round_fn on a new pool_ext pool and a new
    reference pool; {"pool_ext": medians, "python": medians}."""
    samples = {"pool_ext": [], "python": []}
    for r in range(rounds):
        for name, make in (("pool_ext", make_ext), ("python", make_ref)):
            samples[name].append(round_fn(make()))
            _step(progress, f"{label}: round {r + 1}/{rounds}, {name}")
    return {name: _medians(s) for name, s in samples.items()}


def threads(duration, rounds, progress=None):
    """The threads scenario: medians, the FIFO ideal wait and the ratios."""
    res = scenario(lambda pool: thread_round(pool, duration),
                   lambda: ObjectPool(object, THREAD_CAPACITY),
                   lambda: FifoPool(object, THREAD_CAPACITY), rounds, progress, "threads")
    ideal = (THREADS / THREAD_CAPACITY - 1) * HOLD
    for v in res.values():
        v["worst_x_ideal"] = v["max_wait"] / ideal
    res.update(threads=THREADS, capacity=THREAD_CAPACITY, hold=HOLD, ideal_wait=ideal,
               throughput_ratio=res["pool_ext"]["throughput"] / res["python"]["throughput"])
    return res


def tasks(duration, rounds, progress=None):
    """The tasks scenario: medians for pool_ext and the fair asyncio pool."""
    res = scenario(lambda pool: task_round(pool, duration),
                   lambda: ObjectPool(object, TASK_CAPACITY),
                   lambda: FairAsyncPool(object, TASK_CAPACITY), rounds, progress, "tasks")
    res.update(tasks=TASKS, capacity=TASK_CAPACITY)
    return res


def handoff(rounds, handoffs=HANDOFFS, progress=None):
    """{loop name: {"pool_ext", "python", "no_pool": median ns per hand-out,
    "ratio": median of the per-round python / pool_ext, "pool_ext_changes",
    "python_changes": median changes of hands per hand-out (1: every release
    went to the other task)}}."""
    makers = {"pool_ext": lambda cap: ObjectPool(object, cap),
              "python": lambda cap: FairAsyncPool(object, cap), "no_pool": None}
    res = {}
    for name, factory in loops().items():
        ns = {key: [] for key in makers}
        changes = {key: [] for key in makers}
        for r in range(rounds):
            for key, make in makers.items():
                t, c = handoff_round(make, factory, handoffs)
                ns[key].append(t)
                changes[key].append(c)
            _step(progress, f"hand-off, {name}: round {r + 1}/{rounds}")
        res[name] = {key: statistics.median(v) for key, v in ns.items()}
        for key in ("pool_ext", "python"):
            res[name][key + "_changes"] = statistics.median(changes[key])
        res[name]["ratio"] = statistics.median(p / e for p, e in zip(ns["python"], ns["pool_ext"]))
    return res


def steps(rounds):
    """How many progress steps run() takes."""
    return 2 * 2 * rounds + len(loops()) * rounds


def run(duration=1.5, rounds=3, handoffs=HANDOFFS, progress=None):
    """All three scenarios: a JSON-ready dict (report.format_contention
    prints it).  Lasts about 4 x rounds x duration seconds."""
    from pool_ext.bench import report
    t0 = time.perf_counter()
    result = {"machine": report.machine(),
              "settings": {"duration": duration, "rounds": rounds, "handoffs": handoffs},
              "targets": TARGETS}
    result["threads"] = threads(duration, rounds, progress)
    result["tasks"] = tasks(duration, rounds, progress)
    result["handoff"] = handoff(rounds, handoffs, progress)
    result["seconds"] = time.perf_counter() - t0
    result["machine"]["loadavg_end"] = report.load_average()
    return result


def jsonable(obj):
    """obj with every infinite float replaced by None (JSON has no inf)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return None
    return obj
