"""ObjectPool with asyncpg connections to a real PostgreSQL server, on the
async path: the factory connects (a coroutine), check() pings, reset()
rolls back an open transaction, destroy() closes, all awaited.  Every test
runs under asyncio's loop and uvloop (loop_kind).

- 64 tasks through 8 connections: no connection has two holders, every
  query's reply is its own, nothing is left in a transaction, all back.
- Backends killed with pg_terminate_backend: check() evicts them, and the
  acquires get fresh, working connections.
- Tasks cancelled in the middle of a query (asyncio.timeout, task.cancel)
  or of the connect and the ping: no slot is lost, and the pool still
  serves `capacity` connections at once.
- drain_async() waits for the connections still out and closes every one:
  no backend of the pool is left on the server.

The server comes from conftest.py (POOL_PG_DSN); asyncpg from the test extra
(the asyncpg_kwargs fixture says when it may be missing).
"""
import asyncio
import time

import pytest

from helpers import run_async
from pool_ext import ObjectPool, PoolClosed

try:
    import asyncpg
except ImportError:   # the asyncpg_kwargs fixture skips (or fails) and says why
    asyncpg = None

CAPACITY = 8


def connector(kwargs, app_name):
    """The factory: a coroutine function, a new connection stamped with the
    pool's application_name (how the server tells its backends)."""
    async def connect():
        return await asyncpg.connect(**kwargs, server_settings={"application_name": app_name})
    return connect


async def ping(conn):
    return await conn.fetchval("select 1") == 1


async def rollback(conn):
    if conn.is_in_transaction():
        await conn.execute("rollback")


async def close(conn):
    await conn.close(timeout=10)


def make_pool(kwargs, app_name, capacity=CAPACITY, **hooks):
    hooks = {"check": ping, "reset": rollback, "destroy": close, **hooks}
    return ObjectPool(connector(kwargs, app_name), capacity, name="asyncpg", **hooks)


def backends(admin, app_name):
    """The pids of the server's backends with this application_name."""
    return sorted(row[0] for row in admin.execute(
        "select pid from pg_stat_activity where application_name = %s", (app_name,)))


async def wait_for_backends(admin, app_name, n, timeout=10.0):
    """Polls until exactly n backends have the name; returns their pids.
    (A closed connection's backend leaves pg_stat_activity a moment later.)"""
    deadline = time.monotonic() + timeout
    while True:
        pids = backends(admin, app_name)
        if len(pids) == n or time.monotonic() > deadline:
            return pids
        await asyncio.sleep(0.02)


async def no_tasks_left(timeout=10.0):
    """Waits for the loop's other tasks (asyncpg's cancel requests, destroy()
    run as a task) to finish: run_async closes the loop without them."""
    deadline = time.monotonic() + timeout
    while True:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not others:
            return
        assert time.monotonic() < deadline, f"tasks still running: {others}"
        await asyncio.sleep(0.01)


async def fill(pool, n):
    """Acquires n connections at once and gives them back: n made, all idle."""
    conns = [await pool.acquire_async(timeout=30) for _ in range(n)]
    for conn in conns:
        await pool.release_async(conn)
    return conns


# -- many tasks, few connections --------------------------------------------------------

def test_64_tasks_share_8_connections_without_a_double_owner(
        asyncpg_kwargs, pg_admin, app_name, loop_kind):
    tasks_n, per_task = 64, 8
    pool = make_pool(asyncpg_kwargs, app_name)
    holding = set()          # id() of every connection inside a lease now
    pids = {}                # id(conn) -> its backend pid, for the connection's life
    seen_open = []           # leases that got a connection still in a transaction

    async def task(t):
        for n in range(per_task):
            async with pool.lease_async(timeout=30) as conn:
                assert id(conn) not in holding, "a connection handed to two tasks"
                holding.add(id(conn))
                try:
                    if conn.is_in_transaction():
                        seen_open.append((t, n))
                    pid = conn.get_server_pid()
                    assert pids.setdefault(id(conn), pid) == pid
                    value = t * 1000 + n
                    # a reply that is this task's own (the await lets others run)
                    assert await conn.fetchval("select $1::int", value) == value
                    if n % 3 == 0:
                        # left open on purpose: reset() must roll it back
                        await conn.execute("begin")
                        assert await conn.fetchval("select $1::int + 1", value) == value + 1
                        assert conn.is_in_transaction()
                finally:
                    holding.discard(id(conn))

    async def main():
        await asyncio.gather(*(task(t) for t in range(tasks_n)))
        assert pool.in_use == 0 and not holding
        assert pool.size <= CAPACITY
        assert len(await wait_for_backends(pg_admin, app_name, pool.size)) == pool.size
        await pool.drain_async(timeout=30)

    run_async(main(), loop_kind)
    stats = pool.stats()
    assert seen_open == []
    assert stats["acquires"] == stats["releases"] == tasks_n * per_task
    assert stats["creations"] <= CAPACITY and stats["checks_failed"] == 0
    assert len(set(pids.values())) == stats["creations"]
    assert pool.closed and pool.size == 0


# -- backends killed: check() evicts ---------------------------------------------------

def test_killed_backends_are_evicted_by_check_and_replaced(
        asyncpg_kwargs, pg_admin, app_name, loop_kind):
    capacity = 4
    pool = make_pool(asyncpg_kwargs, app_name, capacity)

    def kill(pids):
        for pid in pids:
            # PostgreSQL 14+: waits (up to 5 s) until the backend has exited
            assert pg_admin.execute("select pg_terminate_backend(%s, 5000)",
                                    (pid,)).fetchone()[0]

    async def main():
        await fill(pool, capacity)
        pids = await wait_for_backends(pg_admin, app_name, capacity)
        assert len(pids) == capacity

        # Two of the four idle connections lose their backends.
        killed = set(pids[:2])
        kill(killed)
        await asyncio.sleep(0.05)   # the clients may or may not have noticed: either way
        conns = [await pool.acquire_async(timeout=30) for _ in range(capacity)]
        got = {conn.get_server_pid() for conn in conns}
        assert not got & killed and len(got) == capacity
        for conn in conns:
            assert await conn.fetchval("select 1") == 1
            await pool.release_async(conn)
        assert pool.stats()["checks_failed"] == 2
        assert pool.stats()["creations"] == capacity + 2

        # All of them: the next acquire gets a fresh, working connection.
        everyone = set(await wait_for_backends(pg_admin, app_name, capacity))
        kill(everyone)
        async with pool.lease_async(timeout=30) as conn:
            assert conn.get_server_pid() not in everyone | killed
            assert await conn.fetchval("select 2") == 2
        await pool.drain_async(timeout=30)
        assert await wait_for_backends(pg_admin, app_name, 0) == []

    run_async(main(), loop_kind)
    stats = pool.stats()
    assert stats["checks_failed"] == 2 + capacity    # every idle one, then the factory
    assert stats["creations"] == capacity + 2 + 1
    assert pool.in_use == 0 and pool.size == 0


# -- cancellation ----------------------------------------------------------------------------

def test_tasks_cancelled_in_the_middle_of_a_query_lose_no_slot(
        asyncpg_kwargs, pg_admin, app_name, loop_kind):
    capacity = 4
    pool = make_pool(asyncpg_kwargs, app_name, capacity)

    async def sleeper():
        async with pool.lease_async(timeout=30) as conn:
            await conn.fetchval("select pg_sleep(30)")

    async def timed_out():
        if hasattr(asyncio, "timeout"):   # Python 3.11+
            async with asyncio.timeout(0.5):
                await sleeper()
        else:
            await asyncio.wait_for(sleeper(), 0.5)

    async def main():
        await fill(pool, capacity)
        # Two cancelled by asyncio.timeout, two by task.cancel(), all four
        # inside their query; four more cancelled while they wait for a slot.
        timers = [asyncio.create_task(timed_out()) for _ in range(2)]
        cancelled = [asyncio.create_task(sleeper()) for _ in range(2)]
        waiting = [asyncio.create_task(sleeper()) for _ in range(4)]
        deadline = time.monotonic() + 10
        while pool.in_use < capacity or pool.stats()["waiting"] < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)   # the queries are running on the server
        for t in cancelled + waiting:
            t.cancel()
        results = await asyncio.gather(*timers, *cancelled, *waiting, return_exceptions=True)
        assert all(isinstance(r, asyncio.TimeoutError) for r in results[:2]), results
        assert all(isinstance(r, asyncio.CancelledError) for r in results[2:])
        assert pool.in_use == 0 and pool.stats()["waiting"] == 0

        # All the slots serve at once, and every connection works (asyncpg
        # waits for its cancel request to finish before the next query).
        conns = [await pool.acquire_async(timeout=30) for _ in range(capacity)]
        assert len({id(c) for c in conns}) == capacity
        assert [await c.fetchval("select 7") for c in conns] == [7] * capacity
        for c in conns:
            await pool.release_async(c)
        assert len(await wait_for_backends(pg_admin, app_name, pool.size)) == pool.size
        assert pool.size <= capacity
        await pool.drain_async(timeout=30)

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size == 0


def test_cancelled_while_connecting_or_pinging_loses_no_slot(
        asyncpg_kwargs, pg_admin, app_name, loop_kind, rng):
    capacity = 3
    slow = {"connect": 0.0, "ping": 0.0}   # a sleep before the handshake, the ping
    ping_takes = {"s": 0.0}                # the ping's pg_sleep on the server
    started = {"connect": 0, "ping": 0}    # handshakes and pings begun
    cancelled = {"connect": 0, "ping": 0}  # ... and cancelled on the wire

    async def on_the_wire(what, coro):
        started[what] += 1
        try:
            return await coro
        except asyncio.CancelledError:
            cancelled[what] += 1
            raise

    async def connect():
        await asyncio.sleep(slow["connect"])
        return await on_the_wire("connect", connector(asyncpg_kwargs, app_name)())

    async def slow_ping(conn):
        await asyncio.sleep(slow["ping"])
        return await on_the_wire("ping", conn.fetchval(
            "select 1 from pg_sleep($1)", ping_takes["s"])) == 1

    pool = ObjectPool(connect, capacity, check=slow_ping, reset=rollback, destroy=close)

    async def cancel_once_begun(what):
        """An acquire cancelled in the loop iteration after its handshake or
        ping began; True if the cancel won, False if the acquire did."""
        before = started[what]
        task = asyncio.create_task(pool.acquire_async(timeout=30))
        deadline = time.monotonic() + 30
        while started[what] == before:
            assert time.monotonic() < deadline
            await asyncio.sleep(0)
        task.cancel()
        try:
            conn = await task
        except asyncio.CancelledError:
            assert pool.in_use == 0
            return True
        await pool.release_async(conn)
        return False

    async def cancel_soon(delay):
        task = asyncio.create_task(pool.acquire_async(timeout=30))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            conn = await task
        except asyncio.CancelledError:
            return
        await pool.release_async(conn)   # it won the race with the cancel

    async def main():
        # In the handshake: a local one may finish before the cancel lands;
        # then the connection is kept, and the next attempt checks it first.
        for _ in range(capacity):
            await cancel_once_begun("connect")
        assert cancelled["connect"] >= 1
        await fill(pool, capacity)
        # In the ping (pg_sleep keeps it on the wire): each idle connection
        # in turn is destroyed, and its slot comes back empty.
        ping_takes["s"] = 0.2
        for _ in range(capacity):
            assert await cancel_once_begun("ping")
        assert cancelled["ping"] == capacity
        assert pool.stats()["checks_failed"] == capacity and pool.size == 0
        ping_takes["s"] = 0.0
        # And at random moments, 12 tasks on 3 slots: in the factory's sleep
        # or handshake, in check()'s sleep or ping, or waiting for a slot.
        slow["connect"] = slow["ping"] = 0.01
        await asyncio.gather(*(cancel_soon(rng.uniform(0, 0.04)) for _ in range(12)))
        assert pool.in_use == 0 and pool.stats()["waiting"] == 0
        slow["connect"] = slow["ping"] = 0.0
        conns = [await pool.acquire_async(timeout=30) for _ in range(capacity)]
        assert [await c.fetchval("select 1") for c in conns] == [1] * capacity
        for c in conns:
            await pool.release_async(c)
        await pool.drain_async(timeout=30)
        # the connections dropped mid-ping were closed (destroy() ran as a
        # task), and those dropped mid-handshake by asyncpg itself
        assert await wait_for_backends(pg_admin, app_name, 0) == []
        await no_tasks_left()

    run_async(main(), loop_kind)
    assert pool.in_use == 0 and pool.size == 0


# -- drain -------------------------------------------------------------------------------------

def test_drain_async_waits_for_leases_and_closes_every_connection(
        asyncpg_kwargs, pg_admin, app_name, loop_kind):
    # the factory as a lambda returning asyncpg.connect()'s coroutine
    pool = ObjectPool(lambda: asyncpg.connect(**asyncpg_kwargs,
                                              server_settings={"application_name": app_name}),
                      CAPACITY, check=ping, reset=rollback, destroy=close)

    async def main():
        await fill(pool, CAPACITY)
        assert len(await wait_for_backends(pg_admin, app_name, CAPACITY)) == CAPACITY
        release = asyncio.Event()
        inside = 0

        async def holder():
            nonlocal inside
            async with pool.lease_async(timeout=30) as conn:
                inside += 1
                await release.wait()
                await conn.fetchval("select 1")   # still usable while the drain waits

        holders = [asyncio.create_task(holder()) for _ in range(3)]
        while inside < 3:
            await asyncio.sleep(0.01)
        drain = asyncio.create_task(pool.drain_async(timeout=30))
        await asyncio.sleep(0.05)
        assert not drain.done() and pool.closed
        # the idle five are closed already; the three held ones are not
        assert len(await wait_for_backends(pg_admin, app_name, 3)) == 3
        with pytest.raises(PoolClosed):
            await pool.acquire_async(timeout=1)
        release.set()
        await asyncio.gather(*holders)
        await asyncio.wait_for(drain, 30)
        assert await wait_for_backends(pg_admin, app_name, 0) == []

    run_async(main(), loop_kind)
    assert pool.closed and pool.size == 0 and pool.in_use == 0
    assert pool.stats()["destructions"] == CAPACITY
