"""Instructions per await, counted by callgrind: acquire_async()'s fast path
against an empty await.

The issue's bound: ``release(await pool.acquire_async())`` with a free slot
costs at most 1.5x ``await noop()`` (a coroutine that returns at once).
Method and runner as benchmarks/callgrind.py: each case runs N and 2N times
in a fresh interpreter, in an empty directory; (instructions(2N) -
instructions(N)) / N is the figure.

    python benchmarks/callgrind_async.py            # N=20,000
    python benchmarks/callgrind_async.py -n 50000 --python /path/to/python
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from callgrind import count  # noqa: E402  (the same runner: an empty cwd, fixed hashes)

CHILD = r"""
import asyncio, gc, sys
from pool_ext import BufferPool, ObjectPool
case, n = sys.argv[1], int(sys.argv[2])
objects = ObjectPool(object, 4, prefill=4)
buffers = BufferPool(64, 4)

async def noop():
    return None

class NoopCM:
    async def __aenter__(self):
        return None
    async def __aexit__(self, *exc):
        return False

async def run(k):
    if case == "await_noop":
        for _ in range(k):
            await noop()
    elif case == "obj_async_pair":
        acquire, release = objects.acquire_async, objects.release
        for _ in range(k):
            release(await acquire())
    elif case == "buf_async_pair":
        acquire = buffers.acquire_async
        for _ in range(k):
            (await acquire()).release()
    elif case == "obj_async_pair_t":
        acquire, release = objects.acquire_async, objects.release
        for _ in range(k):
            release(await acquire(5.0))
    elif case == "buf_async_pair_t":
        acquire = buffers.acquire_async
        for _ in range(k):
            (await acquire(5.0)).release()
    elif case == "obj_lease_async_t":
        lease = objects.lease_async
        for _ in range(k):
            async with lease(5.0):
                pass
    elif case == "obj_lease_async":
        lease = objects.lease_async
        for _ in range(k):
            async with lease():
                pass
    elif case == "async_with_noop":
        for _ in range(k):
            async with NoopCM():
                pass
    elif case == "obj_sync_pair_and_await":
        acquire, release = objects.acquire, objects.release
        for _ in range(k):
            await noop()
            release(acquire())

async def main():
    await run(1000)     # warm-up: the same in both runs
    gc.disable()
    await run(n)

asyncio.run(main())
"""

CASES = ["await_noop", "obj_async_pair", "buf_async_pair", "obj_sync_pair_and_await",
         "async_with_noop", "obj_lease_async", "obj_async_pair_t", "buf_async_pair_t",
         "obj_lease_async_t"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", default=CASES)
    p.add_argument("-n", type=int, default=20_000)
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    per = {case: (count(args.python, case, 2 * args.n, child=CHILD)
                  - count(args.python, case, args.n, child=CHILD)) / args.n
           for case in args.cases}
    base = per.get("await_noop")
    print(f"instructions per iteration ({args.python}, N={args.n:,}):")
    for case, value in per.items():
        ratio = f"  {value / base:5.2f}x await_noop" if base else ""
        print(f"  {case:24s} {value:8.1f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
