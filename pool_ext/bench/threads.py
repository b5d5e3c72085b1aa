"""Thread scaling: acquire/release pairs per second with 1 and 2 threads (or
more), on one shared pool and on one pool per thread, for ObjectPool,
BufferPool and ArrayPool (``arrays.empty`` of 4 KiB).

On a free-threaded CPython threads really run at once: the shared pool's
figure against one thread's says what sharing costs (the target is 1.6x for
two threads), the pools per thread what the machine gives when nothing is
shared.  On a GIL build one thread runs at a time, so neither scales (the
result says which build it is).  ``pool-ext bench --threads`` prints it;
``benchmarks/thread_scaling.py`` is the same with more options.
"""
import os
import statistics
import sys
import threading
import time

from pool_ext import ATOMICS, ArrayPool, BufferPool, ObjectPool


def _object_pair(pool):
    acquire, release = pool.acquire, pool.release

    def run(k):
        for _ in range(k):
            release(acquire())
    return run


def _buffer_pair(pool):
    acquire = pool.acquire

    def run(k):
        for _ in range(k):
            acquire().release()
    return run


def _array_pair(pool):
    import numpy as np
    empty, u8 = pool.empty, np.uint8

    def run(k):
        for _ in range(k):
            empty(4096, u8)      # dropped at once: its block goes back
    return run


#: kind -> (make a pool for n threads, the loop one thread runs on it)
KINDS = {
    "ObjectPool": (lambda n: ObjectPool(object, 2 * n, prefill=2 * n), _object_pair),
    "BufferPool": (lambda n: BufferPool(64, 2 * n), _buffer_pair),
    "ArrayPool": (lambda n: ArrayPool(max_bytes=1 << 22), _array_pair),
}


def have_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def one_run(kind, nthreads, shared, pairs):
    """Pairs per second of nthreads threads doing `pairs` pairs each."""
    make, loop = KINDS[kind]
    pools = [make(nthreads)] * nthreads if shared else [make(1) for _ in range(nthreads)]
    runs = [loop(p) for p in pools]
    start = threading.Barrier(nthreads + 1)

    def work(run):
        start.wait()
        run(pairs)

    ts = [threading.Thread(target=work, args=(r,)) for r in runs]
    for t in ts:
        t.start()
    t0 = time.perf_counter()
    start.wait()
    for t in ts:
        t.join()
    return nthreads * pairs / (time.perf_counter() - t0)


def run(pairs=200_000, rounds=5, threads=(1, 2), kinds=None, progress=None):
    """Median pairs/s per (kind, shared, threads), rounds interleaved; and
    each median's ratio to one thread's."""
    kinds = [k for k in (kinds or KINDS) if k != "ArrayPool" or have_numpy()]
    samples = {}
    for _ in range(rounds):
        for kind in kinds:
            for shared in (True, False):
                for n in threads:
                    samples.setdefault((kind, shared, n), []).append(
                        one_run(kind, n, shared, pairs))
            if progress:
                progress.step(f"threads, {kind}")
    rows = []
    for (kind, shared, n), xs in samples.items():
        base = statistics.median(samples[(kind, shared, threads[0])])
        med = statistics.median(xs)
        rows.append({"pool": kind, "shared": shared, "threads": n, "pairs_per_s": med,
                     "min": min(xs), "max": max(xs), "vs_1_thread": med / base})
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return {"python": sys.version.split()[0], "gil_enabled": gil, "atomics": ATOMICS,
            "cpus": os.cpu_count(), "pairs_per_thread": pairs, "rounds": rounds,
            "numpy": have_numpy(), "runs": rows}


def steps(rounds, kinds=None):
    """How many progress steps run() makes."""
    return rounds * len([k for k in (kinds or KINDS) if k != "ArrayPool" or have_numpy()])


def format_table(result):
    """The table: one line per pool kind, sharing and thread count."""
    build = "GIL" if result["gil_enabled"] else "free-threaded (GIL off)"
    lines = [f"Thread scaling: CPython {result['python']} {build}, {result['cpus']} CPUs, "
             f"core {result['atomics']}; medians of {result['rounds']} interleaved rounds of "
             f"{result['pairs_per_thread']:,} pairs per thread.",
             "  (the target, free-threaded: two threads on one shared pool >= 1.6x one "
             "thread; a GIL build runs one thread at a time)"]
    for r in result["runs"]:
        where = "one shared pool " if r["shared"] else "a pool per thread"
        lines.append(f"  {r['pool']:10s} {where}  {r['threads']} thread(s): "
                     f"{r['pairs_per_s'] / 1e6:6.2f} M pairs/s "
                     f"(range {r['min'] / 1e6:.2f}-{r['max'] / 1e6:.2f})  "
                     f"{r['vs_1_thread']:.2f}x one thread")
    if not result["numpy"]:
        lines.append("  (ArrayPool left out: numpy is not installed; pip install numpy)")
    return "\n".join(lines)
