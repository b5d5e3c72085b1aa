"""Thread scaling: acquire/release pairs per second with 1, 2 and 4 threads,
all on one shared pool and on one pool per thread.

On a free-threaded CPython (3.14t) threads really run at once: the shared
pool's figures show what contention on its free-list costs, the per-thread
pools what the machine gives when nothing is shared.  On a GIL build one
thread runs at a time, so neither scales (the run says which build it is).

    python benchmarks/thread_scaling.py                   # a table
    python benchmarks/thread_scaling.py --json out.json   # and the figures

tests.yml runs it on its 3.14t job and uploads the JSON as the artifact
"thread-scaling-<os>-<python>" (docs/performance.md, "Threads").
"""
import argparse
import json
import os
import platform
import statistics
import sys
import sysconfig
import threading
import time

import pool_ext
from pool_ext import BufferPool, ObjectPool

MAKERS = {
    "ObjectPool": lambda cap: ObjectPool(object, cap, prefill=cap),
    "BufferPool": lambda cap: BufferPool(64, cap),
}


def _pairs(pool, k, start):
    acquire, release = pool.acquire, pool.release
    start.wait()
    for _ in range(k):
        release(acquire())


def run(kind, nthreads, shared, per_thread, rounds):
    """Median pairs/s over `rounds` runs of nthreads x per_thread pairs."""
    rates = []
    for _ in range(rounds):
        pools = ([MAKERS[kind](nthreads * 2)] * nthreads if shared
                 else [MAKERS[kind](2) for _ in range(nthreads)])
        start = threading.Barrier(nthreads + 1)
        ts = [threading.Thread(target=_pairs, args=(p, per_thread, start)) for p in pools]
        for t in ts:
            t.start()
        t0 = time.perf_counter()
        start.wait()
        for t in ts:
            t.join()
        rates.append(nthreads * per_thread / (time.perf_counter() - t0))
    return statistics.median(rates), min(rates), max(rates)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=200_000, help="pairs per thread (200,000)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", default="1,2,4")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    result = {
        "python": sys.version, "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": gil, "atomics": pool_ext.ATOMICS, "cpus": os.cpu_count(),
        "machine": platform.machine(), "pairs_per_thread": args.pairs, "rounds": args.rounds,
        "runs": [],
    }
    print(f"{sys.version.split()[0]} {'GIL' if gil else 'free-threaded'}, "
          f"{os.cpu_count()} CPUs, core: {pool_ext.ATOMICS}")
    for kind in MAKERS:
        base = {}
        for shared in (True, False):
            for n in map(int, args.threads.split(",")):
                med, lo, hi = run(kind, n, shared, args.pairs, args.rounds)
                base.setdefault(shared, med if n == 1 else base.get(shared))
                ratio = med / base[shared]
                result["runs"].append({"pool": kind, "shared": shared, "threads": n,
                                       "pairs_per_s": med, "min": lo, "max": hi,
                                       "vs_1_thread": ratio})
                where = "one shared pool " if shared else "a pool per thread"
                print(f"  {kind:10s} {where}  {n} thread(s): {med / 1e6:6.2f} M pairs/s "
                      f"(range {lo / 1e6:.2f}-{hi / 1e6:.2f})  x{ratio:.2f} one thread")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
