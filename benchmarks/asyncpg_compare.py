"""pool_ext.ObjectPool, asyncpg's own pool and a pool built on asyncio.Queue,
on one PostgreSQL server: 64 tasks sharing 8 asyncpg connections, each
task doing K hand-offs (acquire, a body, release).

    pip install ".[bench]"
    eval "$(bash tools/pg_server.sh start /tmp/pg)"      # or any server
    python benchmarks/asyncpg_compare.py [--dsn DSN] [--loop both] [--repeat 5] [-k 200]

Bodies (what a task does while it holds a connection):

  yield      ``await asyncio.sleep(0)``: no query, but the task gives the
             loop up once while it holds the connection, so the 64 tasks'
             leases overlap, 56 of them wait, and releases wake waiters.
             This is the pool's own cost under contention (plus one loop
             iteration, which the "no pool" row measures alone).
  empty      nothing: no await inside the lease, so no task ever waits.
             The pool's cost per acquire + release pair, uncontended.
  select 1   ``await conn.fetchval("select 1")``: one round trip per lease.

The contenders (each opens its 8 connections before it is timed):

  pool_ext               ObjectPool(async factory, 8, destroy=async close),
                         ``async with pool.lease_async() as conn``
  pool_ext reset=        the same, plus an async reset that rolls back an
                         open transaction (no round trip on an idle one)
  pool_ext sync hooks    diagnostic: connections made beforehand, prefill=8,
                         destroy=Connection.terminate (sync): no coroutine
                         hook, so acquire_async() keeps its fast path
  asyncpg                asyncpg.create_pool(min_size=8, max_size=8),
                         ``async with pool.acquire() as conn``; its release
                         runs Connection.reset(): a reset query per release
  asyncpg reset=noop     the same with create_pool(reset=<async no-op>)
                         (asyncpg >= 0.30): its release still rolls back an
                         open transaction, like pool_ext reset=, but sends
                         no reset query
  Queue + ctxmanager     an asyncio.Queue of 8 connections behind an
                         @contextlib.asynccontextmanager (get; yield; put_nowait)
  Queue inline           the same Queue, get/put_nowait written inline in
                         the task's loop (the cheapest hand-written pool)
  no pool                the floor: for yield/empty the 64 tasks doing the
                         body with no pool; for select 1, 8 tasks each on its
                         own connection doing the same number of queries

Reported: microseconds per hand-off (a run's time / (64 * K)), the median of
--repeat runs with the lowest and highest; each repeat runs every contender
in turn, so a drift of the machine spreads over all of them.  "x pool_ext"
is a contender's time / pool_ext's time in the same repeat (the median of
those ratios, lowest-highest): above 1, pool_ext is that many times faster.

Waits: with bodies yield and select 1 (64 tasks on 8 connections, so 56
wait at any time), every acquire is timed: time.perf_counter() before
``async with lease()`` (``await queue.get()`` for the inline Queue) and
again on entering the block, so a wait includes the loop's delay in running
the task once it has its connection.  Printed per contender: p50, p99 and max
of each run, the median of the runs, and the worst wait of all runs.  A fair
pool (a release hands its connection to the oldest waiter) keeps max near
p99; an unfair one lets a few tasks take everything while others wait most
of a run.  The two clock calls add about 0.1 us per hand-off to every pooled
contender (not to "no pool"); --no-waits runs the untimed loops instead.

--count (asyncio's loop only, untimed) also reports how many event-loop
iterations and call_soon() callbacks (task steps, future wake-ups) each
contender needs per hand-off.
"""
import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time

import asyncpg

from pool_ext import ObjectPool

TASKS = 64
SIZE = 8
APP_NAME = "pool_ext asyncpg bench"


def asyncpg_kwargs(dsn):
    """asyncpg.connect() keyword arguments from a libpq conninfo string
    (tools/pg_server.sh's 'host=/socket/dir dbname=postgres user=postgres')
    or a postgresql:// URL (which asyncpg reads itself)."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return {"dsn": dsn}
    from psycopg.conninfo import conninfo_to_dict
    names = {"host": "host", "port": "port", "user": "user", "password": "password",
             "dbname": "database"}
    kw = {}
    for key, value in conninfo_to_dict(dsn).items():
        if key not in names:
            raise SystemExit(f"asyncpg_compare: conninfo key {key!r} not supported here; "
                             f"pass a postgresql:// URL instead")
        kw[names[key]] = int(value) if key == "port" else value
    return kw


# -- the contenders: open(), lease() (an async context manager), close() -------------

class PoolExt:
    name = "pool_ext"

    def __init__(self, kw):
        self.kw = kw

    def reset(self):
        return None

    async def open(self):
        kw = self.kw

        async def connect():
            return await asyncpg.connect(**kw)

        async def close(conn):
            await conn.close()

        self.pool = ObjectPool(connect, SIZE, destroy=close, reset=self.reset())
        conns = [await self.pool.acquire_async() for _ in range(SIZE)]
        for conn in conns:
            await self.pool.release_async(conn)
        self.lease = self.pool.lease_async

    async def close(self):
        await self.pool.drain_async(timeout=10)


class PoolExtReset(PoolExt):
    name = "pool_ext reset="

    def reset(self):
        async def rollback(conn):
            if conn.is_in_transaction():
                await conn.execute("rollback")
        return rollback


class PoolExtSyncHooks(PoolExt):
    """Diagnostic: the same 8 connections, made before the pool (the
    factory pops them) and closed by the sync Connection.terminate(): no
    coroutine hook, so acquire_async() takes its no-suspension fast path
    (_take_idle_plain), which any coroutine hook turns off."""
    name = "pool_ext sync hooks"

    async def open(self):
        conns = [await asyncpg.connect(**self.kw) for _ in range(SIZE)]
        self.pool = ObjectPool(conns.pop, SIZE, prefill=SIZE, destroy=lambda c: c.terminate())
        self.lease = self.pool.lease_async

    async def close(self):
        self.pool.drain(timeout=10)


class AsyncpgPool:
    name = "asyncpg"

    def __init__(self, kw):
        self.kw = kw

    def options(self):
        return {}

    async def open(self):
        self.pool = await asyncpg.create_pool(min_size=SIZE, max_size=SIZE,
                                              **self.options(), **self.kw)
        self.lease = self.pool.acquire

    async def close(self):
        await asyncio.wait_for(self.pool.close(), 10)


async def _no_reset(conn):
    pass


class AsyncpgNoReset(AsyncpgPool):
    name = "asyncpg reset=noop"

    def options(self):
        return {"reset": _no_reset}


class QueuePool:
    """The pool people write by hand: an asyncio.Queue of ready connections."""
    name = "Queue + ctxmanager"

    def __init__(self, kw):
        self.kw = kw

    async def open(self):
        self.queue = asyncio.Queue()
        for _ in range(SIZE):
            self.queue.put_nowait(await asyncpg.connect(**self.kw))
        queue = self.queue

        @contextlib.asynccontextmanager
        async def lease():
            conn = await queue.get()
            try:
                yield conn
            finally:
                queue.put_nowait(conn)
        self.lease = lease

    async def close(self):
        while not self.queue.empty():
            await self.queue.get_nowait().close()


class QueueInline(QueuePool):
    """The same Queue; the tasks call get()/put_nowait() themselves (below)."""
    name = "Queue inline"


class NoPool:
    """The floor: the body without a pool (select 1: 8 tasks, a connection each)."""
    name = "no pool"

    def __init__(self, kw):
        self.kw = kw

    async def open(self):
        self.conns = [await asyncpg.connect(**self.kw) for _ in range(SIZE)]

    async def close(self):
        for conn in self.conns:
            await conn.close()


CONTENDERS = [PoolExt, PoolExtReset, PoolExtSyncHooks, AsyncpgPool, AsyncpgNoReset, QueuePool,
              QueueInline, NoPool]


# -- the tasks ------------------------------------------------------------------------

async def task_yield(lease, k):
    sleep = asyncio.sleep
    for _ in range(k):
        async with lease():
            await sleep(0)


# The same loops, each acquire timed (seconds appended to waits).

async def task_yield_timed(lease, k, waits):
    sleep = asyncio.sleep
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        async with lease():
            append(clock() - t0)
            await sleep(0)


async def task_empty_timed(lease, k, waits):
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        async with lease():
            append(clock() - t0)


async def task_select_timed(lease, k, waits):
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        async with lease() as conn:
            append(clock() - t0)
            await conn.fetchval("select 1")


async def queue_yield_timed(queue, k, waits):
    sleep = asyncio.sleep
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        conn = await queue.get()
        append(clock() - t0)
        try:
            await sleep(0)
        finally:
            queue.put_nowait(conn)


async def queue_empty_timed(queue, k, waits):
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        conn = await queue.get()
        append(clock() - t0)
        queue.put_nowait(conn)


async def queue_select_timed(queue, k, waits):
    clock = time.perf_counter
    append = waits.append
    for _ in range(k):
        t0 = clock()
        conn = await queue.get()
        append(clock() - t0)
        try:
            await conn.fetchval("select 1")
        finally:
            queue.put_nowait(conn)


async def task_empty(lease, k):
    for _ in range(k):
        async with lease():
            pass


async def task_select(lease, k):
    for _ in range(k):
        async with lease() as conn:
            await conn.fetchval("select 1")


async def queue_yield(queue, k):
    sleep = asyncio.sleep
    for _ in range(k):
        conn = await queue.get()
        try:
            await sleep(0)
        finally:
            queue.put_nowait(conn)


async def queue_empty(queue, k):
    for _ in range(k):
        conn = await queue.get()
        queue.put_nowait(conn)


async def queue_select(queue, k):
    for _ in range(k):
        conn = await queue.get()
        try:
            await conn.fetchval("select 1")
        finally:
            queue.put_nowait(conn)


async def bare_yield(conn, k):
    sleep = asyncio.sleep
    for _ in range(k):
        await sleep(0)


async def bare_empty(conn, k):
    for _ in range(k):
        pass


async def bare_select(conn, k):
    for _ in range(k):
        await conn.fetchval("select 1")


BODIES = {
    "yield": (task_yield, queue_yield, bare_yield),
    "empty": (task_empty, queue_empty, bare_empty),
    "select 1": (task_select, queue_select, bare_select),
}

TIMED = {
    "yield": (task_yield_timed, queue_yield_timed),
    "empty": (task_empty_timed, queue_empty_timed),
    "select 1": (task_select_timed, queue_select_timed),
}

# the bodies whose waits are reported: 56 of the 64 tasks wait at any time
CONTENDED = ("yield", "select 1")


def coroutines(target, body, k, waits=None):
    """The coroutines of one run: TASKS * k hand-offs in all.  With a list
    as waits (and a pool), the timed loops: each acquire's wait is appended."""
    pooled, queued, bare = BODIES[body]
    if isinstance(target, NoPool):
        if body == "select 1":   # the same number of queries, on 8 connections
            per = TASKS * k // SIZE
            return [bare(conn, per) for conn in target.conns]
        return [bare(None, k) for _ in range(TASKS)]
    if waits is not None:
        pooled, queued = TIMED[body]
        if isinstance(target, QueueInline):
            return [queued(target.queue, k, waits) for _ in range(TASKS)]
        return [pooled(target.lease, k, waits) for _ in range(TASKS)]
    if isinstance(target, QueueInline):
        return [queued(target.queue, k) for _ in range(TASKS)]
    return [pooled(target.lease, k) for _ in range(TASKS)]


async def run(target, body, k, waits=None):
    """Microseconds per hand-off of one run (waits: see coroutines())."""
    coros = coroutines(target, body, k, waits)
    t0 = time.perf_counter()
    await asyncio.gather(*coros)
    return (time.perf_counter() - t0) / (TASKS * k) * 1e6


def percentiles(waits):
    """(p50, p99, max) of a list of waits, in milliseconds."""
    if not waits:
        return (float("nan"),) * 3
    w = sorted(waits)
    n = len(w)
    return (w[(n - 1) // 2] * 1e3, w[min(n - 1, int(n * 0.99))] * 1e3, w[-1] * 1e3)


async def interleaved(targets, body, k, repeat, waits=None):
    """{name: [us per hand-off, one per repeat]}; a warm-up run of each
    first.  With a dict as waits, the timed loops, and waits[name] gets
    (p50, p99, max) in ms of each repeat (not of the warm-up)."""
    runs = {t.name: [] for t in targets}
    timed = waits is not None and body in CONTENDED
    for t in targets:
        await run(t, body, max(1, k // 10), [] if timed else None)
    for _ in range(repeat):
        for t in targets:
            w = [] if timed and not isinstance(t, NoPool) else None
            runs[t.name].append(await run(t, body, k, w))
            if w is not None:
                waits.setdefault(t.name, []).append(percentiles(w))
    return runs


# -- counting loop iterations (asyncio's loop) -------------------------------------------

class CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting its iterations and call_soon() callbacks."""
    iterations = 0
    callbacks = 0

    def _run_once(self):
        self.iterations += 1
        super()._run_once()

    def call_soon(self, *args, **kwargs):
        self.callbacks += 1
        return super().call_soon(*args, **kwargs)


async def count(targets, body, k):
    """{name: (loop iterations, callbacks) per hand-off}."""
    loop = asyncio.get_running_loop()
    out = {}
    for t in targets:
        coros = coroutines(t, body, k)
        i0, c0 = loop.iterations, loop.callbacks
        await asyncio.gather(*coros)
        n = TASKS * k
        out[t.name] = ((loop.iterations - i0) / n, (loop.callbacks - c0) / n)
    return out


# -- the report ---------------------------------------------------------------------------

def summary(values):
    return statistics.median(values), min(values), max(values)


def ratios(runs, name, base):
    """name's time / base's time, repeat by repeat: (median, lowest, highest)."""
    return summary([a / b for a, b in zip(runs[name], runs[base])])


async def opened(kw):
    """Every contender, its connections open."""
    classes = [cls for cls in CONTENDERS
               if cls is not AsyncpgNoReset or asyncpg_has_reset()]
    targets = []
    try:
        for cls in classes:
            targets.append(cls(kw))
            await targets[-1].open()
    except BaseException:
        await close_all(targets)
        raise
    return targets


async def close_all(targets):
    for t in targets:
        with contextlib.suppress(Exception):
            await t.close()


async def measure(kw, bodies, ks, repeat, timed=True):
    """([(body, {name: [us per hand-off, one per repeat]})],
    {body: {name: [(p50, p99, max) wait in ms, one per repeat]}})."""
    targets = await opened(kw)
    results, waits = [], {}
    try:
        for body in bodies:
            w = {} if timed else None
            results.append((body, await interleaved(targets, body, ks[body], repeat, w)))
            if w:
                waits[body] = w
        return results, waits
    finally:
        await close_all(targets)


async def count_all(kw, bodies, ks):
    """{body: {name: (loop iterations, callbacks) per hand-off}} (CountingLoop)."""
    targets = await opened(kw)
    try:
        return {body: await count(targets, body, ks[body]) for body in bodies}
    finally:
        await close_all(targets)


def asyncpg_has_reset():
    """create_pool(reset=...) came with asyncpg 0.30."""
    import inspect
    return "reset" in inspect.signature(asyncpg.create_pool).parameters


def print_results(loop_name, results, counts, ks, repeat):
    for body, runs in results:
        k = ks[body]
        counted = counts and counts.get(body)
        print(f"\n{loop_name}, body {body!r}: {TASKS} tasks x K={k} hand-offs, {SIZE} "
              f"connections; us per hand-off, median (lowest-highest) of {repeat} runs")
        head = f"  {'':22s} {'us':>8s}  {'(range)':17s} {'x pool_ext':>10s}  {'(range)':13s}"
        if counted:
            head += "  loop iters  callbacks"
        print(head)
        for name, values in runs.items():
            med, lo, hi = summary(values)
            if name == PoolExt.name:
                rel = f"{'1':>10s}  {'':13s}"
            else:
                r, rlo, rhi = ratios(runs, name, PoolExt.name)
                rel = f"{r:9.2f}x  ({rlo:.2f}-{rhi:.2f})".ljust(26)
            line = f"  {name:22s} {med:8.2f}  ({lo:.2f}-{hi:.2f})".ljust(50) + rel
            if counted:
                it, cb = counted[name]
                line += f"  {it:10.2f}  {cb:9.2f}"
            print(line.rstrip())
        if body in ("yield", "empty"):
            floor = summary(runs[NoPool.name])[0]
            print("  minus the floor (no pool): " + ", ".join(
                f"{name} {summary(runs[name])[0] - floor:.2f}"
                for name in (PoolExt.name, QueueInline.name, QueuePool.name))
                + " us")


def print_waits(loop_name, waits, repeat):
    """Each contender's waits per acquire on the contended bodies."""
    for body, per in waits.items():
        print(f"\n{loop_name}, body {body!r}: wait per acquire, ms: p50 / p99 / max of "
              f"each run, median of {repeat} runs (worst of all runs)")
        for name, runs in per.items():
            p50, p99, mx = zip(*runs)
            print(f"  {name:22s} p50 {statistics.median(p50):8.3f}  "
                  f"p99 {statistics.median(p99):8.3f}  max {statistics.median(mx):9.3f}  "
                  f"({max(mx):.3f})")


def print_targets(loop_name, results):
    """The issue's targets, on the contended hand-off (body yield) and on
    select 1: pool_ext >= 3x faster than the Queue pool, and no slower than
    asyncpg's pool.  x: the contender's time / pool_ext's, median of the
    repeats."""
    print(f"\n{loop_name}: targets (x = contender / pool_ext, per repeat; median)")
    for body, runs in results:
        if body == "empty":
            continue
        for name, want in ((QueueInline.name, 3.0), (QueuePool.name, 3.0),
                           (AsyncpgPool.name, 1.0), (AsyncpgNoReset.name, 1.0)):
            if name not in runs:
                continue
            r = ratios(runs, name, PoolExt.name)[0]
            verdict = "met" if r >= want else "MISSED"
            print(f"  {body:9s} pool_ext vs {name:20s} {r:6.2f}x  (target >= {want:g}x: "
                  f"{verdict})")


def new_loop(kind):
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_on(kind, coro):
    loop = new_loop(kind)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("POOL_PG_DSN"),
                    help="libpq conninfo or postgresql:// URL (default: $POOL_PG_DSN)")
    ap.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both",
                    help="the event loop (default: both, one after the other)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("-k", type=int, default=200,
                    help="hand-offs per task, bodies yield and empty (default 200)")
    ap.add_argument("--k-select", type=int, default=25,
                    help="hand-offs per task, body select 1 (default 25)")
    ap.add_argument("--body", action="append", choices=list(BODIES),
                    help="only this body (repeatable; default: all)")
    ap.add_argument("--no-waits", action="store_true",
                    help="run the untimed loops: no wait per acquire (nor its two clock "
                         "calls per hand-off)")
    ap.add_argument("--count", action="store_true",
                    help="also count loop iterations and callbacks per hand-off "
                         "(asyncio's loop only, untimed)")
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("no server: pass --dsn or set POOL_PG_DSN (tools/pg_server.sh starts one)")
    kw = asyncpg_kwargs(args.dsn)
    kw.setdefault("server_settings", {})["application_name"] = APP_NAME
    bodies = args.body or list(BODIES)
    ks = {b: args.k_select if b == "select 1" else args.k for b in BODIES}
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]

    async def version():
        conn = await asyncpg.connect(**kw)
        try:
            return await conn.fetchval("show server_version")
        finally:
            await conn.close()

    import pool_ext
    try:
        import uvloop
        uv = f"uvloop {uvloop.__version__}"
    except ImportError:
        uv = "no uvloop"
        if args.loop == "uvloop":
            ap.error("--loop uvloop: uvloop is not installed")
        loops = ["asyncio"]
    la = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"PostgreSQL {run_on('asyncio', version())}, pool_ext {pool_ext.__version__}, "
          f"asyncpg {asyncpg.__version__}, {uv}, CPython {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {la:.2f}")
    for kind in loops:
        results, waits = run_on(kind, measure(kw, bodies, ks, args.repeat,
                                              timed=not args.no_waits))
        counts = None
        if args.count and kind == "asyncio":
            loop = CountingLoop()
            try:
                asyncio.set_event_loop(loop)
                counts = loop.run_until_complete(count_all(kw, bodies, ks))
            finally:
                asyncio.set_event_loop(None)
                loop.close()
        print_results(kind, results, counts, ks, args.repeat)
        print_waits(kind, waits, args.repeat)
        print_targets(kind, results)


if __name__ == "__main__":
    main()
