"""Worker processes and the parent pass numpy arrays through a
SharedBufferPool: each array lives in a block of one shared-memory segment,
and pickling it (a task's argument or result) sends the block, not a copy
of its bytes.  Linux only.

    python examples/shared_workers.py
"""
import concurrent.futures as cf
import sys

import numpy as np

from pool_ext import SharedBufferPool

SHAPE = (512, 256)            # 1 MiB of float64: one block
blocks = None                 # in each worker: the pool (attached by init)


def init(pool):
    global blocks
    blocks = pool


def simulate(seed):
    """A worker fills a block and returns it: the parent holds it next."""
    a = blocks.empty(SHAPE, np.float64, timeout=60)
    a[:] = np.random.default_rng(seed).standard_normal(SHAPE)
    return a


def normalise(a):
    """A worker gets a block the parent sent, works in place, sends it back."""
    a -= a.mean()
    a /= a.std()
    return a


def as_completed(ex, fn, args, window):
    """fn(arg) in the workers for each arg, at most `window` outstanding
    (each holds a block), the results in the order they finish."""
    pending = set()
    for arg in args:
        pending.add(ex.submit(fn, arg))
        while len(pending) >= window:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            while done:
                yield done.pop().result()
    for f in cf.as_completed(pending):
        yield f.result()


def main():
    with SharedBufferPool(block_size=1 << 20, capacity=8) as pool, \
            cf.ProcessPoolExecutor(4, initializer=init, initargs=(pool,)) as ex:
        # Workers to parent: 32 results, fewer outstanding than there are
        # blocks (the parent holds one more while it sums it).
        total = 0.0
        for a in as_completed(ex, simulate, range(32), window=pool.capacity - 1):
            total += a.sum()          # the worker's block, no copy
        del a                         # the last one goes back to the pool
        print(f"32 arrays summed: {total:.1f}")

        # Parent to worker and back: the same block both ways.
        x = pool.empty(SHAPE, np.float64)
        x[:] = np.arange(x.size).reshape(SHAPE)
        y = ex.submit(normalise, x).result()
        print(f"normalised in a worker: mean {abs(y.mean()):.3f}, std {y.std():.3f}; "
              f"the sender's copy is read-only: {not x.flags.writeable}")
        print(f"blocks held now: {pool.stats()['in_use']} (y)")
        del x, y
    # Every block is back.  (On a free-threaded build, an array that the
    # executor's result thread unpickled is freed by that thread when it
    # next runs: at the latest when the executor shuts down, as here.)
    print(f"and after del: {pool.stats()['in_use']}")


if __name__ == "__main__":
    if sys.platform.startswith("linux"):
        main()
    else:
        print("SharedBufferPool needs Linux (docs/shared.md: the plan for macOS and Windows)")
