"""Threads: total acquire/release pairs per second, 2 threads on one pool vs
1 thread (the GIL build runs one at a time; the question is what contention
costs).  Each round runs N pairs in total, split between the threads."""
import threading

import pytest

from pool_ext import ObjectPool
from pool_ext.bench import cases as B

N = 100_000
MAKERS = {
    "pool_ext": lambda: ObjectPool(object, 8, prefill=8),
    "locklist": lambda: B.LockListPool(object, 8),
    "simplequeue": lambda: B.simple_queue_pool(object, 8),
    "lifoqueue": lambda: B.lifo_queue_pool(object, 8),
}


def _run(pool, nthreads, n):
    acquire, release = pool.acquire, pool.release

    def work(k):
        for _ in range(k):
            release(acquire())

    ts = [threading.Thread(target=work, args=(n // nthreads,)) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("who", sorted(MAKERS))
def test_threads(benchmark, who, nthreads):
    n = N // 10 if who in ("lifoqueue", "locklist") else N
    benchmark.group = f"threads: {n:,d} pairs in total, {who}"
    benchmark.extra_info["pairs"] = n
    pool = MAKERS[who]()
    benchmark.pedantic(_run, args=(pool, nthreads, n), rounds=10, warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["pairs_per_s"] = n / benchmark.stats.stats.median
