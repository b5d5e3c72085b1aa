"""ObjectPool of asyncio stream connections, (reader, writer) pairs from
asyncio.open_connection, to a local echo server (asyncio.start_server on
127.0.0.1, port 0): no PostgreSQL needed.  The factory connects, check()
sends a ping and reads it back, destroy() closes the writer and waits for
it, all awaited.  Every test runs under asyncio's loop and uvloop.

- 200 tasks doing echo round trips through 4 pooled connections: every
  reply is its own request's, and no connection has two holders.
- The server dropping connections: check() finds them dead, and acquire
  hands out fresh ones that work.
- drain_async() closes every client connection: the server sees each one
  reach end-of-file.
"""
import asyncio
import contextlib
import time

import pytest

from helpers import run_async
from pool_ext import ObjectPool


class EchoServer:
    """Echoes each line back; keeps its side of every connection, in order."""

    def __init__(self):
        self.open = {}        # connection number -> the server's writer, while open
        self.closed = set()   # connection numbers the client closed (end-of-file seen)
        self.made = 0
        self.delay = 0.0      # seconds before each echo

    async def handle(self, reader, writer):
        n = self.made
        self.made += 1
        self.open[n] = writer
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            del self.open[n]
            self.closed.add(n)
            writer.close()

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def drop(self, numbers):
        """Closes the server's side of these connections."""
        writers = [self.open[n] for n in numbers]
        for w in writers:
            w.close()
        for w in writers:
            try:
                await w.wait_closed()
            except ConnectionError:
                pass

    async def stop(self):
        await self.drop(list(self.open))
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def serving():
    """A started EchoServer, stopped on the way out (a failing test too:
    nothing is left open when its loop closes)."""
    server = await EchoServer().start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def stream_hooks(server):
    """factory, check and destroy for (reader, writer) pairs to the server."""
    async def connect():
        return await asyncio.open_connection("127.0.0.1", server.port)

    async def alive(stream):
        reader, writer = stream
        if writer.is_closing() or reader.at_eof():
            return False
        writer.write(b"ping\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10) == b"ping\n"

    async def close(stream):
        _, writer = stream
        writer.close()
        await writer.wait_closed()

    return {"factory": connect, "check": alive, "destroy": close}


def stream_pool(server, capacity):
    """A pool of (reader, writer) pairs to the server, its hooks awaited."""
    return ObjectPool(capacity=capacity, name="streams", **stream_hooks(server))


async def echo(stream, payload):
    reader, writer = stream
    writer.write(payload + b"\n")
    await writer.drain()
    return (await reader.readline()).rstrip(b"\n")


def test_200_tasks_echo_through_4_connections_without_a_double_owner(loop_kind):
    tasks_n, per_task, capacity = 200, 5, 4
    holding = set()

    async def task(pool, t):
        for n in range(per_task):
            async with pool.lease_async(timeout=30) as stream:
                assert id(stream) not in holding, "a connection handed to two tasks"
                holding.add(id(stream))
                try:
                    # two round trips per lease, each reply this task's own
                    for part in (b"a", b"b"):
                        request = b"%d:%d:%s" % (t, n, part)
                        assert await echo(stream, request) == request
                finally:
                    holding.discard(id(stream))

    async def main():
        async with serving() as server:
            pool = stream_pool(server, capacity)
            await asyncio.gather(*(task(pool, t) for t in range(tasks_n)))
            assert pool.in_use == 0 and not holding
            assert pool.size <= capacity and server.made == pool.size
            stats = pool.stats()
            assert stats["acquires"] == stats["releases"] == tasks_n * per_task
            assert stats["checks_failed"] == 0
            await pool.drain_async(timeout=10)

    run_async(main(), loop_kind)


def test_connections_the_server_dropped_are_replaced_by_check(loop_kind):
    capacity = 4

    async def main():
        async with serving() as server:
            pool = stream_pool(server, capacity)
            streams = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            for s in streams:
                await pool.release_async(s)
            assert server.made == capacity

            await server.drop([0, 2])
            await asyncio.sleep(0.02)   # the clients may or may not have seen the end
            got = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            assert not {id(s) for s in got} & {id(streams[0]), id(streams[2])}
            for k, s in enumerate(got):
                assert await echo(s, b"after %d" % k) == b"after %d" % k
            for s in got:
                await pool.release_async(s)
            stats = pool.stats()
            assert stats["checks_failed"] == 2 and stats["creations"] == capacity + 2
            assert server.made == capacity + 2 and len(server.open) == capacity
            # the dropped ones were destroyed: their writers closed
            assert streams[0][1].is_closing() and streams[2][1].is_closing()

            # every connection dropped: the next lease gets a new one that works
            await server.drop(list(server.open))
            async with pool.lease_async(timeout=10) as s:
                assert await echo(s, b"fresh") == b"fresh"
            assert pool.stats()["checks_failed"] == 2 + capacity
            await pool.drain_async(timeout=10)

    run_async(main(), loop_kind)


def test_drain_async_closes_every_client_connection(loop_kind):
    capacity = 6

    async def main():
        async with serving() as server:
            pool = stream_pool(server, capacity)
            streams = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            for s in streams[:4]:
                await pool.release_async(s)
            held = streams[4:]   # still out when the drain starts
            drain = asyncio.create_task(pool.drain_async(timeout=10))
            assert await wait_until(lambda: len(server.closed) == 4)   # the idle four
            assert not drain.done() and len(server.open) == 2
            for s in held:
                assert await echo(s, b"still mine") == b"still mine"
                await pool.release_async(s)
            await asyncio.wait_for(drain, 10)
            assert await wait_until(lambda: len(server.closed) == capacity)
            assert server.open == {} and server.made == capacity
            assert all(w.is_closing() for _, w in streams)
            assert pool.closed and pool.size == 0 and pool.in_use == 0
            assert pool.stats()["destructions"] == capacity

    run_async(main(), loop_kind)


def test_cancelled_while_connecting_loses_no_slot_and_no_connection(loop_kind):
    """Tasks cancelled before, during or after the factory's connect: no
    slot is lost, and no connection is left open."""
    capacity = 2
    outcomes = []

    async def main():
        async with serving() as server:
            hooks = stream_hooks(server)

            async def connect():
                await asyncio.sleep(0.01)
                return await hooks["factory"]()

            pool = ObjectPool(connect, capacity, check=hooks["check"],
                              destroy=hooks["destroy"])
            # delay 0 lands in the factory's sleep; the others before, in or
            # after the TCP connect, whatever this loop makes of them
            for delay in (0, 0.005, 0.009, 0.01, 0.011, 0.012, 0.015, 0.02, 0.03):
                task = asyncio.create_task(pool.acquire_async(timeout=10))
                await asyncio.sleep(delay)
                task.cancel()
                try:
                    stream = await task
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
                else:
                    outcomes.append("won")
                    await pool.release_async(stream)
                assert pool.in_use == 0
            streams = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            for s in streams:
                assert await echo(s, b"ok") == b"ok"
                await pool.release_async(s)
            await pool.drain_async(timeout=10)
            assert await wait_until(lambda: server.open == {})
            assert len(server.closed) == server.made

    run_async(main(), loop_kind)
    assert outcomes[0] == "cancelled"


def test_cancelled_in_the_middle_of_check_loses_no_slot_and_closes_the_stream(loop_kind):
    """Tasks cancelled while check() waits for its ping's echo (the server
    answers late): the slot comes back, and the stream is closed (its
    destroy() runs as a task)."""
    capacity = 2

    async def main():
        async with serving() as server:
            hooks = stream_hooks(server)
            pinging = asyncio.Event()

            async def check(stream):
                pinging.set()
                return await hooks["check"](stream)

            pool = ObjectPool(hooks["factory"], capacity, check=check,
                              destroy=hooks["destroy"])
            streams = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            for s in streams:   # idle: each is checked at its next acquire
                await pool.release_async(s)
            server.delay = 0.5
            for _ in range(capacity):
                pinging.clear()
                task = asyncio.create_task(pool.acquire_async(timeout=10))
                await asyncio.wait_for(pinging.wait(), 10)
                await asyncio.sleep(0.01)   # the ping is on the wire
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert pool.in_use == 0
            assert pool.size == 0 and pool.stats()["checks_failed"] == capacity
            assert await wait_until(lambda: all(w.is_closing() for _, w in streams))
            assert await wait_until(lambda: len(server.closed) == capacity)
            server.delay = 0.0
            fresh = [await pool.acquire_async(timeout=10) for _ in range(capacity)]
            for s in fresh:
                assert await echo(s, b"ok") == b"ok"
                await pool.release_async(s)
            await pool.drain_async(timeout=10)
            assert await wait_until(lambda: server.open == {})
            assert server.made == 2 * capacity

    run_async(main(), loop_kind)
